"""The gateway's HTTP API as the command line uses it: where it is, the token, and its error shape.

Every failure the user can meet (no token, a refused request, a gateway that cannot be reached)
becomes an ApiError, which the entry point prints as `error: <detail>`; nothing else is expected.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:4080"
TIMEOUT_S = 60.0
# The answer to an upload comes once the datasets service has checked the whole file.
UPLOAD_TIMEOUT = httpx.Timeout(TIMEOUT_S, read=600.0)
RESULTS_PAGE = 1000  # the gateway's largest page of results
TRANSPORT_RETRIES = 3  # for a request that is safe to repeat (a run start carries its request id)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a refused file: its line (or row), the field (empty: the line as a whole), why."""

    line: int
    field: str
    reason: str
    line_word: str = "line"

    def __str__(self) -> str:
        where = f'field "{self.field}" ' if self.field else ""
        return f"{self.line_word} {self.line}: {where}{self.reason}"


@dataclass(frozen=True, slots=True)
class ModelError:
    """Why one model's run did not start."""

    model_id: str
    detail: str


class ApiError(Exception):
    """A request the gateway refused or could not answer, in the words of its error body."""

    def __init__(
        self,
        detail: str,
        status: int = 0,
        error: str = "",
        problems: tuple[Problem, ...] = (),
        more: int = 0,
        model_errors: tuple[ModelError, ...] = (),
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status  # 0: no HTTP answer at all
        self.error = error
        self.problems = problems
        self.more = more
        self.model_errors = model_errors


def problems_of(body: Mapping[str, Any]) -> tuple[tuple[Problem, ...], int]:
    """The problems (and how many more) of a validation report or a refused upload's error body."""
    word = str(body.get("line_word") or "line")
    listed = body.get("problems") or []
    problems = tuple(
        Problem(
            line=int(p.get("line", 0)), field=str(p.get("field", "")), reason=str(p.get("reason", "")), line_word=word
        )
        for p in listed
        if isinstance(p, dict)
    )
    return problems, int(body.get("more") or 0)


def model_errors_of(body: Mapping[str, Any]) -> tuple[ModelError, ...]:
    """The per-model errors of a run start ({"errors": [{model_id, error, detail}]})."""
    listed = body.get("errors") or []
    return tuple(
        ModelError(model_id=str(e.get("model_id", "")), detail=str(e.get("detail") or e.get("error") or ""))
        for e in listed
        if isinstance(e, dict)
    )


def error_from_response(response: httpx.Response) -> ApiError:
    """The ApiError for a non-2xx answer: the gateway's detail, or what the status says when it has none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200]
        return ApiError(
            f"HTTP {response.status_code} from the gateway" + (f": {text}" if text else ""), response.status_code
        )
    if response.status_code == 401:
        return ApiError(
            "the gateway refused the API token: set WB_API_TOKEN or --token", 401, str(body.get("error", ""))
        )
    detail = str(body.get("detail") or body.get("error") or f"HTTP {response.status_code}")
    problems, more = problems_of(body)
    return ApiError(detail, response.status_code, str(body.get("error", "")), problems, more, model_errors_of(body))


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the gateway is and the token, from the options or else WB_URL and WB_API_TOKEN."""

    url: str
    token: str

    @classmethod
    def resolve(cls, url: str | None, token: str | None, environ: Mapping[str, str] = os.environ) -> "Settings":
        url = (url or environ.get("WB_URL") or DEFAULT_URL).rstrip("/")
        token = token or environ.get("WB_API_TOKEN", "")
        if not token:
            raise ApiError("no API token: set WB_API_TOKEN or pass --token (`make run` prints it)")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ApiError(f"the gateway URL {url!r} must start with http:// or https:// (WB_URL or --url)")
        return cls(url=url, token=token)

    @property
    def websocket_url(self) -> str:
        """WS /ws/workbench on the same host (the token goes in a header: see auth_headers)."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/ws/workbench"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    """One HTTP connection pool to the gateway; each method is one endpoint and returns its JSON."""

    settings: Settings
    transport: httpx.AsyncBaseTransport | None = None  # tests answer without a socket
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(
            base_url=self.settings.url,
            headers={"Authorization": f"Bearer {self.settings.token}"},
            timeout=TIMEOUT_S,
            transport=self.transport,
        )

    async def __aenter__(self) -> "Api":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, retries: int = 0, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of a 2xx answer; an ApiError for anything else."""
        for attempt in range(retries + 1):
            try:
                response = await self.client.request(method, path, **kwargs)
                break
            except httpx.TransportError as error:
                if attempt < retries:
                    continue
                raise ApiError(unreachable(self.settings.url, error)) from None
        if not response.is_success:
            raise error_from_response(response)
        if response.status_code == 204:  # done, nothing to say
            return 204, {}
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"the gateway answered {method} {path} with something that is not JSON") from None
        return response.status_code, body if isinstance(body, dict) else {}

    async def upload(self, path: Path, file: BinaryIO, skip_invalid: bool) -> tuple[int, dict[str, Any]]:
        params = {"skip_invalid": "true"} if skip_invalid else {}
        files = {"file": (path.name, file, "application/octet-stream")}
        return await self.request("POST", "/admin/datasets/upload", params=params, files=files, timeout=UPLOAD_TIMEOUT)

    async def models(self) -> list[dict[str, Any]]:
        _, body = await self.request("GET", "/admin/models")
        return list(body.get("models", []))

    async def start_runs(self, body: dict[str, Any]) -> dict[str, Any]:
        # Repeating it is safe: the request id makes the inference service start nothing twice.
        _, answer = await self.request("POST", "/admin/benchmarks/run", retries=TRANSPORT_RETRIES, json=body)
        return answer

    async def runs(self, dataset_id: str = "") -> list[dict[str, Any]]:
        params = {"dataset_id": dataset_id} if dataset_id else {}
        _, body = await self.request("GET", "/admin/benchmarks", params=params)
        return list(body.get("runs", []))

    async def run(self, run_id: str) -> dict[str, Any]:
        _, body = await self.request("GET", f"/admin/benchmarks/{quote(run_id, safe='')}", retries=1)
        return dict(body["run"])

    async def cancel(self, run_id: str) -> dict[str, Any]:
        _, body = await self.request("POST", f"/admin/benchmarks/{quote(run_id, safe='')}/cancel")
        return dict(body["run"])

    async def results_page(
        self, run_id: str, offset: int, limit: int = RESULTS_PAGE
    ) -> tuple[list[dict[str, Any]], int]:
        path = f"/admin/benchmarks/{quote(run_id, safe='')}/results"
        _, body = await self.request("GET", path, params={"offset": offset, "limit": limit})
        return list(body.get("results", [])), int(body.get("total", 0))


def unreachable(url: str, error: httpx.TransportError) -> str:
    reason = str(error) or type(error).__name__
    return f"cannot reach the workbench at {url} ({reason}): is it running? (WB_URL or --url)"
