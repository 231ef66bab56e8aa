"""Users and roles on the real stack: the CLI manages them, a login link gives a browser session that
opens the API and the WebSocket, annotations record who made them, the gateway's log holds no secret,
and a restarted gateway rebuilds the access list from the event log."""

import json
import os
import subprocess

import httpx
import pytest
from websockets.asyncio.client import connect

from devstack import Stack
from tests.conftest import REPO, store_answers, upload_records

WORKBENCH = REPO / ".venv" / "bin" / "workbench"


def users(stack: Stack, *argv: str) -> str:
    """`workbench users ...` as the bootstrap admin; its stdout."""
    env = {**os.environ, "WB_URL": stack.url, "WB_API_TOKEN": stack.token}
    done = subprocess.run([str(WORKBENCH), "users", *argv], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.restarts_stack
async def test_users_roles_sessions_and_the_log_they_leave(stack: Stack, api: httpx.AsyncClient) -> None:
    dataset_id = await upload_records(api, "access.jsonl", [{"id": "a0", "prompt": "Capital?"}])
    await store_answers(stack, dataset_id, {"a0": {"tiny-a": "Paris"}})
    mark = {"kind": "golden", "dataset_id": dataset_id, "record_id": "a0", "model_id": "tiny-a"}

    token = users(stack, "add", "ana", "--role", "annotator")
    assert "ana\tannotator" in users(stack, "list")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        assert (await client.post("/admin/annotations", json=mark, headers=bearer(token))).status_code == 201
        refused = await client.delete(f"/admin/datasets/{dataset_id}", headers=bearer(token))
        assert refused.status_code == 403 and "needs the admin role" in refused.json()["detail"]

        # A browser: the one-time link's code for a session cookie, which opens the API and the socket.
        link = users(stack, "link", "ana")
        code = link.split("#login=")[1]
        assert (await client.post("/auth/login", json={"code": code})).json() == {"name": "ana", "role": "annotator"}
        assert (await client.post("/auth/login", json={"code": code})).status_code == 401  # once only
        cookie = f"wb_session={client.cookies['wb_session']}"
        assert (await client.get("/admin/me")).json()["name"] == "ana"
        async with connect(
            f"ws://127.0.0.1:{stack.ports.gateway}/ws/workbench", additional_headers={"Cookie": cookie}
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        history = await client.get("/admin/annotations/history", params={"dataset_id": dataset_id, "record_id": "a0"})
        assert [entry["annotator"] for entry in history.json()["history"]] == ["ana"]

    # The gateway restarts: the access list comes back from the log.
    stack.stop(("gateway",))
    stack.start(("gateway",))
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        assert (await client.get("/admin/me", headers=bearer(token))).json() == {"name": "ana", "role": "annotator"}
        users(stack, "role", "ana", "viewer")
        assert (await client.post("/admin/annotations", json=mark, headers=bearer(token))).status_code == 403
        users(stack, "revoke", "ana")
        assert (await client.get("/admin/me", headers=bearer(token))).status_code == 401
        client.headers["Cookie"] = cookie
        assert (await client.get("/admin/me")).status_code == 401  # the session went with the user

    log = stack.log("gateway")
    assert "/admin/me" in log  # the access log is on: what it shows is checked
    assert token not in log and code not in log and stack.token not in log
