"""Disagreement between the models' answers to one record: text normalised, JSON field by field."""

import json

from annotations_service.domain.disagreement import Answer, disagreement, normalise_text

# The seed's example: two models judge a candidate; they agree on the recommendation only.
SEED_A = json.dumps({"recommendation": "hire", "trajectory": "rising", "pedigree": "strong"})
SEED_B = json.dumps({"recommendation": "Hire.", "trajectory": "flat", "pedigree": "average"})


def test_the_seeds_candidate_differs_in_trajectory_and_pedigree() -> None:
    found = disagreement([Answer("gemma", SEED_A), Answer("olmo", SEED_B)])

    assert found.differs
    assert found.differing_paths == ("$.trajectory", "$.pedigree")
    assert found.score == 2 / 3  # two of the three fields differ
    assert found.differing_models == {"gemma", "olmo"}


def test_text_answers_differing_only_in_case_whitespace_and_punctuation_agree() -> None:
    found = disagreement([Answer("a", "Yes, it is blue."), Answer("b", "  yes it is BLUE\n")])

    assert not found.differs
    assert (found.score, found.differing_paths, found.differing_models) == (0.0, (), frozenset())
    assert normalise_text("¿Qué   tal?") == "qué tal"


def test_different_text_answers_score_one_and_name_no_path() -> None:
    found = disagreement([Answer("a", "Paris"), Answer("b", "Lyon")])

    assert (found.differs, found.score, found.differing_paths) == (True, 1.0, ())


def test_nested_fields_and_list_items_are_named_by_their_path() -> None:
    left = {"scores": [1, 2, 3], "meta": {"name": "x", "ok": True}, "only left": 1}
    right = {"scores": [1, 2, 4, 5], "meta": {"name": "X", "ok": 1}}

    found = disagreement([Answer("a", json.dumps(left)), Answer("b", json.dumps(right))])

    assert found.differing_paths == ("$.scores[2]", "$.scores[3]", "$.meta.ok", '$["only left"]')
    assert found.score == 4 / 7  # scores 0..3, meta.name, meta.ok, "only left"


def test_json_against_text_is_a_whole_answer_difference() -> None:
    found = disagreement([Answer("a", '{"verdict": "yes"}'), Answer("b", "yes")])

    assert (found.differs, found.score, found.differing_paths) == (True, 1.0, ())


def test_failed_answers_do_not_count_as_disagreeing() -> None:
    found = disagreement([Answer("a", "Paris"), Answer("b", "", error="engine crashed")])

    assert not found.differs
    assert found.score == 0.0


def test_with_three_models_every_pair_counts() -> None:
    # a and b agree, c differs from both: two of the three pairs differ.
    found = disagreement([Answer("a", "Paris"), Answer("b", "paris"), Answer("c", "Lyon")])

    assert found.differs
    assert found.score == 2 / 3
    assert found.differing_models == {"a", "b", "c"}


def test_three_json_answers_collect_the_paths_of_every_pair() -> None:
    answers = [
        Answer("a", '{"x": 1, "y": 1}'),
        Answer("b", '{"x": 1, "y": 2}'),
        Answer("c", '{"x": 2, "y": 1}'),
    ]

    found = disagreement(answers)

    assert found.differing_paths == ("$.y", "$.x")
    assert found.score == (1 / 2 + 1 / 2 + 1) / 3


def test_a_lone_answer_has_nothing_to_disagree_with() -> None:
    assert not disagreement([Answer("a", "Paris")]).differs
    assert not disagreement([]).differs
