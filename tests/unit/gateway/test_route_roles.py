"""Walks the gateway's OpenAPI schema: every API route refuses a missing credential (401) and every
role below the one it declares (403); the routes anyone may call are exactly the listed ones."""

import re
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from gateway.access import Role
from gateway.auth import ROLE_OPT

# Probes and Prometheus call health and metrics without credentials (metrics count requests by route
# template: no ids, no text); logging in needs none by its nature.
PUBLIC = {("GET", "/health"), ("GET", "/metrics"), ("POST", "/auth/login"), ("POST", "/auth/logout")}


def declared_roles(app: Litestar) -> dict[str, Role]:
    """operationId -> the role the route declares."""
    roles = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if ROLE_OPT in handler.opt and handler.operation_id:
                    roles[str(handler.operation_id)] = handler.opt[ROLE_OPT]
    return roles


def operations(schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, concrete path, operationId) of every operation, path parameters filled in."""
    found = []
    for template, item in schema["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x1", template)
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                found.append((method.upper(), path, operation["operationId"]))
    return found


async def test_every_route_refuses_no_credential_and_too_small_a_role(
    app: Litestar, client: AsyncTestClient[Litestar], add_user
) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    roles = declared_roles(app)
    tokens = {role: await add_user(f"a-{role.word}", role.word) for role in Role}
    walked = operations(schema)
    assert len(walked) > 30  # the walk sees the whole API, not an empty schema

    public = set()
    for method, path, operation_id in walked:
        anonymous = await client.request(method, path)
        if (method, path) in PUBLIC:
            public.add((method, path))
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert operation_id in roles, f"{method} {path} declares no role"
        for role in Role:
            if role < roles[operation_id]:
                headers = {"Authorization": f"Bearer {tokens[role]}"}
                refused = await client.request(method, path, headers=headers)
                assert refused.status_code == 403, (method, path, role, refused.text)

    assert public == PUBLIC
    assert {r for r in roles.values()} == set(Role)  # each role guards something


async def test_the_declared_roles_follow_the_issue(app: Litestar) -> None:
    roles = declared_roles(app)
    admin_only = {"uploadDataset", "deleteDataset", "renameDataset", "startRuns", "cancelRun", "addUser"}
    annotator = {"recordAnnotation", "clearAnnotation", "markGolden", "markFixed", "markWrong", "exportDataset"}

    assert {op for op in admin_only if roles[op] is Role.ADMIN} == admin_only
    assert {op for op in annotator if roles[op] is Role.ANNOTATOR} == annotator
    assert roles["getWorkbenchResults"] is Role.VIEWER and roles["listDatasets"] is Role.VIEWER
