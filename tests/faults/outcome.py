"""What one fault run found, and the totals bench/faults.py ends with."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class FaultOutcome:
    """The counts of one fault run; `problems` says what each count is made of, and the timeline
    what happened when (printed with a run that was not clean)."""

    kind: str
    seed: str
    point: str = ""
    results_lost: int = 0
    results_duplicated: int = 0
    results_failed: int = 0
    marks_made: int = 0
    annotations_acknowledged: int = 0
    annotations_lost: int = 0
    rebuild_mismatches: list[str] = field(default_factory=list)
    frames_missed: int = 0
    frames_twice: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.began:6.1f} s  {what}")

    def problem(self, what: str) -> None:
        self.problems.append(what)
        self.note(f"problem: {what}")

    @property
    def clean(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return (
            f"{self.kind} (WB_FAULT_SEED={self.seed}, {self.point}): results lost {self.results_lost}, "
            f"duplicated {self.results_duplicated}, failed {self.results_failed}; annotations acknowledged "
            f"{self.annotations_acknowledged} of {self.marks_made}, lost {self.annotations_lost}; rebuild "
            f"mismatches {len(self.rebuild_mismatches)}; socket frames missed {self.frames_missed}, twice "
            f"{self.frames_twice}; {self.seconds:.0f} s"
        )

    def report(self, timeline: bool = False) -> str:
        lines = [self.line(), *(f"  {problem}" for problem in self.problems)]
        if timeline or not self.clean:
            lines += [f"    {step}" for step in self.timeline]
        return "\n".join(lines)


def summary(outcomes: Sequence[FaultOutcome], rounds: int, kinds: Sequence[str]) -> list[str]:
    """The closing lines of bench/faults.py; fault_runs counts rounds, each one point of every kind."""
    return [
        f"kinds: {', '.join(kinds)}",
        f"results_failed: {sum(o.results_failed for o in outcomes)}",
        f"socket_frames_missed: {sum(o.frames_missed + o.frames_twice for o in outcomes)}",
        f"runs_with_problems: {sum(not o.clean for o in outcomes)} of {len(outcomes)}",
        f"fault_runs: {rounds}",
        f"results_lost: {sum(o.results_lost for o in outcomes)}",
        f"results_duplicated: {sum(o.results_duplicated for o in outcomes)}",
        f"annotations_lost: {sum(o.annotations_lost for o in outcomes)}",
        f"rebuild_mismatches: {sum(len(o.rebuild_mismatches) for o in outcomes)}",
    ]
