"""Two-way sync with Label Studio: link a dataset to a project, push tasks, pull annotations back.

The link and the tasks pushed are events of the dataset's link subject (domain/label_studio_link.py);
the project and its tasks are Label Studio's; the annotations made there come back as
AnnotationRecorded events with source "label_studio", decided by the same domain code as the
workbench's own marks. One push or pull of a dataset runs at a time in this process, so a task is
not created twice by two pushes racing each other.
"""

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from annotations_service.adapters.curation import CurationReadModel
from annotations_service.adapters.dataset_answers import DatasetAnswers
from annotations_service.adapters.label_studio import LabelStudioAnnotation
from annotations_service.adapters.read_model import AnnotationsReadModel
from annotations_service.domain.annotation import JudgedOutput
from annotations_service.domain.commands import RecordAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from annotations_service.domain.label_studio_link import (
    SOURCE,
    LabelStudioLink,
    decide_link,
    decide_pushed,
    evolve,
    link_subject,
)
from annotations_service.domain.label_studio_tasks import Mark, label_config, marks_in_result, model_id_of, task
from annotations_service.domain.names import record_subject
from annotations_service.domain.state import RecordAnnotations, decide
from annotations_service.domain.state import evolve as evolve_record
from eventlog import ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, StoredEvent, load_aggregate
from eventlog.codec import CORRELATION_HEADER
from servicehost.clock import Clock, utc_now
from servicehost.text import storable
from workbench.annotations.v1.annotations_pb2 import AnnotationRecorded
from workbench.datasets.v1.datasets_pb2 import Record

log = logging.getLogger(__name__)

# Tasks per import call and per LabelStudioTasksPushed event (which stays far below NATS's 1 MiB).
PUSH_BATCH = 500
_TASK_DATA = ("record_id", "prompt")  # the task's data keys that are not a model's answer
_ANSWER_TAG = re.compile(r'<Text\s+name="answer_([A-Za-z0-9_]+)"')
_APPEND_ATTEMPTS = 3


class LabelStudioServer(Protocol):
    """What the sync needs of a Label Studio server (adapters/label_studio.py)."""

    def project_url(self, project_id: int) -> str: ...
    async def create_project(self, title: str, label_config: str) -> int: ...
    async def label_config(self, project_id: int) -> str: ...
    async def set_label_config(self, project_id: int, label_config: str) -> None: ...
    async def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]: ...
    async def annotations(self, project_id: int) -> list[LabelStudioAnnotation]: ...


class DatasetSource(Protocol):
    """The datasets service: a dataset's name and its records in file order."""

    async def dataset_name(self, dataset_id: str) -> str: ...
    def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]: ...


@dataclass(frozen=True, slots=True)
class PushOutcome:
    pushed: int  # tasks created now
    skipped: int  # records already pushed, or without any answer yet


@dataclass(frozen=True, slots=True)
class PullOutcome:
    recorded: int  # AnnotationRecorded events appended
    unchanged: int  # marks already on the log as Label Studio holds them


@dataclass
class LabelStudioSync:
    """Links datasets to Label Studio projects, pushes their records as tasks, pulls the marks back.

    server is None when no Label Studio is configured: then every command fails with
    FailedPrecondition and the link reads as not configured.
    """

    store: EventStore
    projection: ProjectionRunner
    read_model: AnnotationsReadModel
    answers: DatasetAnswers
    curation: CurationReadModel  # the records' disagreement scores
    datasets: DatasetSource
    server: LabelStudioServer | None
    clock: Clock = utc_now
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock), repr=False)

    @property
    def configured(self) -> bool:
        return self.server is not None

    async def link(self, dataset_id: str, project_id: int = 0, title: str = "") -> LabelStudioLink:
        """Links the dataset to a project: the given one, or (project_id 0) a new one named title (empty:
        the dataset's name) whose labelling config compares the answers of the models that have some.

        An existing project without a labelling config gets that config; one with a config of its own
        is refused (FailedPrecondition), never overwritten. Linking again to
        the same project changes nothing; to another, the next push starts over there.
        """
        server = self._server()
        await self._check_live(dataset_id)
        if project_id < 0:
            raise InvalidInput("project_id must be a Label Studio project id, or 0 to create a project")
        async with self._locks[dataset_id]:
            state = await self._load(dataset_id)
            models = await self._models(dataset_id)
            if project_id == 0:
                name = title.strip() or await self.datasets.dataset_name(dataset_id) or dataset_id
                project_id = await server.create_project(name, label_config(models))
            else:
                config = await server.label_config(project_id)
                if 'name="' not in config:  # an empty project: give it the comparison config
                    await server.set_label_config(project_id, label_config(models))
                elif not models_in_config(config):
                    raise FailedPrecondition(
                        f"Label Studio project {project_id} has a labelling config of its own: link a new "
                        "project (no project id) or an empty one"
                    )
            new = decide_link(state, project_id, server.project_url(project_id), self.clock())
            return await self._append_link(state, new)

    async def get_link(self, dataset_id: str) -> LabelStudioLink | None:
        """The dataset's link; None when it was never linked."""
        state = await self._load(dataset_id)
        return state if state.linked else None

    async def push(self, dataset_id: str) -> PushOutcome:
        """Creates a task (one prediction per model) for every record of the dataset that has answers and
        was not pushed to the linked project yet, most-disagreed records first.

        Each batch of tasks is recorded as soon as Label Studio has created it, so a push cut short
        leaves nothing to push twice.
        """
        server = self._server()
        await self._check_live(dataset_id)
        async with self._locks[dataset_id]:
            state = await self._linked(dataset_id)
            answers = await asyncio.to_thread(self.answers.answers, dataset_id)
            models = await self._project_models(server, state, answers)
            waiting: list[tuple[Record, dict[str, str]]] = []
            skipped = 0
            async for batch in self.datasets.record_batches(dataset_id):
                for record in batch:
                    answered = answers.get(record.record_id)
                    if not answered or record.record_id in state.task_ids:
                        skipped += 1
                    else:
                        waiting.append((record, answered))
            facts = await asyncio.to_thread(self.curation.facts, dataset_id)
            scores = {fact.record_id: fact.disagreement.score for fact in facts}
            ordered = most_disagreed_first(waiting, scores)
            for start in range(0, len(ordered), PUSH_BATCH):
                chunk = ordered[start : start + PUSH_BATCH]
                task_ids = await server.import_tasks(
                    state.project_id, [task(record, answered, {}, models) for record, answered in chunk]
                )
                pushed = {record.record_id: task_id for (record, _), task_id in zip(chunk, task_ids, strict=True)}
                state = await self._append_link(state, decide_pushed(state, pushed, self.clock()))
            return PushOutcome(pushed=len(ordered), skipped=skipped)

    async def pull(self, dataset_id: str) -> PullOutcome:
        """Records the marks made in the linked project's tasks as annotations with source "label_studio".

        Only the tasks this dataset pushed are read (another dataset's, or hand-imported ones, name
        records that need not be this dataset's). A Label Studio annotation whose mark of an answer is
        on the log as it is (recorded with that annotation's id) is not recorded again, so pulling
        twice changes nothing, and a workbench mark made since stands.
        """
        server = self._server()
        await self._check_live(dataset_id)
        async with self._locks[dataset_id]:
            state = await self._linked(dataset_id)
            records = {task_id: record_id for record_id, task_id in state.task_ids.items()}
            recorded = unchanged = 0
            last_sequence = 0
            for annotation in await server.annotations(state.project_id):
                record_id = records.get(annotation.task_id)
                if record_id is None:
                    continue
                shown = task_answers(annotation.data)
                for model_id, mark in marks_in_result(annotation.result, shown).items():
                    sequence = await self._record(dataset_id, record_id, model_id, mark, annotation, shown)
                    if sequence is None:
                        unchanged += 1
                    else:
                        recorded += 1
                        last_sequence = max(last_sequence, sequence)
            if last_sequence:
                await self.projection.wait_for(last_sequence)
            return PullOutcome(recorded=recorded, unchanged=unchanged)

    async def _record(
        self,
        dataset_id: str,
        record_id: str,
        model_id: str,
        mark: Mark,
        annotation: LabelStudioAnnotation,
        shown: Mapping[str, str],
    ) -> int | None:
        """Appends the mark unless the log has it already; the sequence appended, or None."""
        command = RecordAnnotation(
            dataset_id=dataset_id,
            record_id=record_id,
            model_id=model_id,
            kind=mark.kind,
            # A Label Studio user's text is outside text, as a model's answer is: stored safely.
            fixed_text=storable(mark.fixed_text),
            annotator=storable(annotation.annotator),
        )
        judged = await self._shown_output(dataset_id, record_id, model_id, shown)
        subject = record_subject(dataset_id, record_id)
        for _ in range(_APPEND_ATTEMPTS):
            stored = await self.store.read(subject)
            state = RecordAnnotations(dataset_id, record_id)
            for item in stored:
                state = evolve_record(state, item.event, item.sequence)
            try:
                new = decide(state, command, judged, self.clock(), source=SOURCE)
            except (InvalidInput, FailedPrecondition) as error:
                # E.g. a verdict on a model that had no answer in the task: nothing to judge.
                log.warning("Label Studio task %d: mark of %r not recorded: %s", annotation.task_id, model_id, error)
                return None
            origin = f"label-studio:{annotation.annotation_id}"
            if not new or _already_pulled(stored, new[0].event, origin):
                return None
            try:
                return await self.store.append(replace(new[0], correlation_id=origin))
            except ConcurrencyConflict:
                continue  # a workbench mark landed meanwhile: look again
        raise Conflict(f"the annotations of record {record_id!r} keep changing: pull again")

    async def _shown_output(
        self, dataset_id: str, record_id: str, model_id: str, shown: Mapping[str, str]
    ) -> JudgedOutput | None:
        if model_id not in shown or not shown[model_id]:
            return None
        text = shown[model_id]
        run_id = await asyncio.to_thread(self.answers.shown_run, dataset_id, record_id, model_id, text)
        return JudgedOutput(text, run_id=run_id)

    async def _project_models(
        self, server: LabelStudioServer, state: LabelStudioLink, answers: Mapping[str, Mapping[str, str]]
    ) -> list[str]:
        """The models of the project's config, widened to every model that has answers when Label Studio
        takes the wider config (it refuses one that its existing tasks' data do not fit)."""
        models = models_in_config(await server.label_config(state.project_id))
        wanted = models + sorted({m for answered in answers.values() for m in answered} - set(models))
        if wanted == models:
            return models
        try:
            await server.set_label_config(state.project_id, label_config(wanted))
        except InvalidInput as error:
            log.warning("project %d keeps its models %s: %s", state.project_id, models, error)
            return models
        return wanted

    async def _models(self, dataset_id: str) -> list[str]:
        answers = await asyncio.to_thread(self.answers.answers, dataset_id)
        return sorted({model_id for answered in answers.values() for model_id in answered})

    def _server(self) -> LabelStudioServer:
        if self.server is None:
            raise FailedPrecondition(
                "no Label Studio server is configured: set WB_LABEL_STUDIO_URL and WB_LABEL_STUDIO_TOKEN"
            )
        return self.server

    async def _check_live(self, dataset_id: str) -> None:
        if await asyncio.to_thread(self.read_model.is_deleted, dataset_id):
            raise NotFound(f"dataset {dataset_id!r} has been deleted")

    async def _load(self, dataset_id: str) -> LabelStudioLink:
        if not dataset_id:
            raise InvalidInput("dataset_id is required")
        return await load_aggregate(self.store, link_subject(dataset_id), LabelStudioLink(dataset_id), evolve)

    async def _linked(self, dataset_id: str) -> LabelStudioLink:
        state = await self._load(dataset_id)
        if not state.linked:
            raise FailedPrecondition(f"dataset {dataset_id!r} is not linked to a Label Studio project: link it first")
        return state

    async def _append_link(self, state: LabelStudioLink, new_events: list[NewEvent]) -> LabelStudioLink:
        for new in new_events:
            try:
                sequence = await self.store.append(new)
            except ConcurrencyConflict:
                raise Conflict(
                    f"the Label Studio link of dataset {state.dataset_id!r} changed just now: try again"
                ) from None
            state = evolve(state, new.event, sequence)
        return state


def models_in_config(config: str) -> list[str]:
    """The model ids whose answers a labelling config shows (in its order)."""
    return [model_id_of(key) for key in _ANSWER_TAG.findall(config)]


def task_answers(data: Mapping[str, Any]) -> dict[str, str]:
    """Each model's answer as a task's data holds it (what the annotator was shown)."""
    return {model_id_of(key): str(value) for key, value in data.items() if key not in _TASK_DATA}


def most_disagreed_first(
    waiting: Sequence[tuple[Record, dict[str, str]]], scores: Mapping[str, float]
) -> list[tuple[Record, dict[str, str]]]:
    """The records by their disagreement score, most first; ties keep the dataset's order."""
    return sorted(waiting, key=lambda item: -scores.get(item[0].record_id, 0.0))


def _already_pulled(history: Sequence[StoredEvent], event: Any, origin: str) -> bool:
    """Whether this Label Studio annotation's mark of this answer, as event says it, is on the log."""
    return any(
        isinstance(earlier.event, AnnotationRecorded)
        and earlier.headers.get(CORRELATION_HEADER) == origin
        and (earlier.event.model_id, earlier.event.kind, earlier.event.output_text)
        == (event.model_id, event.kind, event.output_text)
        for earlier in history
    )
