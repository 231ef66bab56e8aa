"""A Label Studio server, through label-studio-sdk: projects, task imports, and the annotations made there.

The SDK is blocking (httpx), so every call runs in a worker thread. Its failures become the error
kinds of servicehost.errors here; the token stays inside the SDK's client (never in a message,
a log line or a repr).
"""

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotations_service.domain.errors import FailedPrecondition, InvalidInput, NotFound, Unavailable

T = TypeVar("T")
_PAGE_SIZE = 500
# An import must not be retried by the SDK: a retry after a lost answer would create the tasks twice.
_NO_RETRY = {"max_retries": 0}


@dataclass(frozen=True, slots=True)
class LabelStudioAnnotation:
    """One annotation made in Label Studio, with the data of its task (what the annotator was shown)."""

    task_id: int
    annotation_id: int
    data: dict[str, Any]
    result: list[dict[str, Any]]
    annotator: str


@dataclass
class LabelStudioClient:
    """The Label Studio server at url, called with an API token (a legacy token or a personal access token)."""

    url: str
    token: str = field(repr=False)
    timeout_s: float = 60.0
    _client: LabelStudio = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        # The SDK's subclass re-declares __init__ without types.
        self._client = LabelStudio(  # type: ignore[no-untyped-call]
            base_url=self.url, api_key=self.token, timeout=self.timeout_s
        )

    def project_url(self, project_id: int) -> str:
        """Where people open the project in a browser."""
        return f"{self.url}/projects/{project_id}/data"

    async def create_project(self, title: str, label_config: str) -> int:
        """Creates a project with the labelling config; returns its id."""
        project = await self._call(lambda: self._client.projects.create(title=title, label_config=label_config))
        if project.id is None:
            raise Unavailable(f"Label Studio at {self.url} created a project but did not say its id")
        return project.id

    async def label_config(self, project_id: int) -> str:
        """The project's labelling config (NotFound when there is no such project)."""
        project = await self._call(lambda: self._client.projects.get(project_id), project_id)
        return project.label_config or ""

    async def set_label_config(self, project_id: int, label_config: str) -> None:
        await self._call(lambda: self._client.projects.update(project_id, label_config=label_config), project_id)

    async def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Creates the tasks in the project; returns their ids in the order of tasks."""
        response = await self._call(
            lambda: self._client.projects.import_tasks(
                project_id,
                request=tasks,  # type: ignore[arg-type]  # plain dicts are what the server reads
                return_task_ids=True,
                request_options=_NO_RETRY,  # type: ignore[arg-type]
            ),
            project_id,
        )
        task_ids = [int(task_id) for task_id in (response.model_extra or {}).get("task_ids", [])]
        if len(task_ids) != len(tasks):
            raise Unavailable(
                f"Label Studio at {self.url} imported {response.task_count} tasks into project {project_id} "
                f"but named {len(task_ids)} task ids for {len(tasks)} tasks"
            )
        return task_ids

    async def annotations(self, project_id: int) -> list[LabelStudioAnnotation]:
        """Every annotation of the project that was submitted (not cancelled), by task then annotation."""
        return await self._call(lambda: list(self._annotations(project_id)), project_id)

    def _annotations(self, project_id: int) -> Iterator[LabelStudioAnnotation]:
        tasks: Iterable[Any] = self._client.tasks.list(project=project_id, fields="all", page_size=_PAGE_SIZE)
        for task in tasks:
            task_id = task.id or 0
            for annotation in getattr(task, "annotations", None) or []:
                values = annotation if isinstance(annotation, dict) else annotation.model_dump()
                if values.get("was_cancelled"):
                    continue
                yield LabelStudioAnnotation(
                    task_id=task_id,
                    annotation_id=int(values.get("id") or 0),
                    data=dict(task.data or {}),
                    result=list(values.get("result") or []),
                    annotator=_annotator(values),
                )

    async def _call(self, call: Callable[[], T], project_id: int | None = None) -> T:
        with self._errors(project_id):
            return await asyncio.to_thread(call)

    @contextmanager
    def _errors(self, project_id: int | None) -> Iterator[None]:
        where = f"Label Studio at {self.url}"
        try:
            yield
        except ApiError as error:
            status = error.status_code or 0
            if status == 404 and project_id is not None:
                raise NotFound(f"{where} has no project {project_id} (or the token cannot see it)") from None
            if status in (401, 403):
                raise FailedPrecondition(f"{where} refused the token: check WB_LABEL_STUDIO_TOKEN") from None
            if status == 400:
                raise InvalidInput(f"{where} refused the request: {_short(error.body)}") from None
            raise Unavailable(f"{where} answered {status or 'an error'}: {_short(error.body)}") from None
        except httpx.HTTPError as error:
            raise Unavailable(f"{where} did not answer ({type(error).__name__}): is it running?") from None


def _annotator(values: dict[str, Any]) -> str:
    username = values.get("created_username") or ""
    # Label Studio writes "email, id"; the email alone names the person.
    name = str(username).split(",")[0].strip()
    return name or f"label-studio user {values.get('completed_by') or '?'}"


def _short(body: object, limit: int = 300) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."
