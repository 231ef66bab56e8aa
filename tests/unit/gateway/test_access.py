"""Users with roles, API tokens, one-time login links and session cookies, through the gateway's API
(the access list on an in-memory event log; the same events on NATS in the e2e tests)."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.access import AccessList, Role
from gateway.auth import SESSION_COOKIE, RateLimiter, SessionSigner
from gateway.settings import LOGIN_BURST
from workbench.access.v1 import access_pb2 as acc

AddUser = Callable[[str, str], Awaitable[str]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login_link_code(client: AsyncTestClient[Litestar], auth: dict[str, str], name: str) -> str:
    response = await client.post(f"/admin/users/{name}/login-link", headers=auth)
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert url.startswith("http://testserver.local/#login=")  # a fragment: never sent to a server, never logged
    return str(url.split("#login=")[1])


async def test_each_role_can_do_what_it_includes_and_nothing_more(
    client: AsyncTestClient[Litestar], add_user: AddUser
) -> None:
    viewer = bearer(await add_user("vic", "viewer"))
    annotator = bearer(await add_user("ana", "annotator"))
    mark = {"kind": "golden", "dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma"}

    assert (await client.get("/admin/datasets", headers=viewer)).status_code == 200
    refused = await client.post("/admin/annotations", json=mark, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this needs the annotator role; vic is viewer (an admin can change it)"
    assert (await client.post("/admin/annotations", json=mark, headers=annotator)).status_code == 201
    assert (await client.get("/admin/export/ds-1", headers=annotator)).status_code == 200
    assert (await client.delete("/admin/datasets/ds-1", headers=annotator)).status_code == 403
    assert (await client.get("/admin/users", headers=annotator)).status_code == 403
    assert (await client.get("/admin/me", headers=annotator)).json() == {"name": "ana", "role": "annotator"}


async def test_a_role_change_and_a_revocation_take_effect_at_once(
    client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    ana = bearer(await add_user("ana", "viewer"))
    mark = {"kind": "wrong", "dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma"}
    assert (await client.post("/admin/annotations", json=mark, headers=ana)).status_code == 403

    promoted = await client.patch("/admin/users/ana", json={"role": "annotator"}, headers=auth)
    assert promoted.status_code == 200 and promoted.json() == {"name": "ana", "role": "annotator"}
    assert (await client.post("/admin/annotations", json=mark, headers=ana)).status_code == 201

    assert (await client.delete("/admin/users/ana", headers=auth)).status_code == 204
    assert (await client.get("/admin/datasets", headers=ana)).status_code == 401
    listed = (await client.get("/admin/users", headers=auth)).json()["users"]
    assert [u["name"] for u in listed] == []


async def test_tokens_rotate_new_one_first_then_the_old_one_revoked(
    client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    old = await add_user("ana", "annotator")
    [before] = (await client.get("/admin/users", headers=auth)).json()["users"]
    issued = await client.post("/admin/users/ana/tokens", headers=auth)
    assert issued.status_code == 201
    new = issued.json()["token"]
    assert (await client.get("/admin/datasets", headers=bearer(old))).status_code == 200
    assert (await client.get("/admin/datasets", headers=bearer(new))).status_code == 200

    [old_id] = before["token_ids"]
    assert (await client.delete(f"/admin/users/ana/tokens/{old_id}", headers=auth)).status_code == 204

    assert (await client.get("/admin/datasets", headers=bearer(old))).status_code == 401
    assert (await client.get("/admin/datasets", headers=bearer(new))).status_code == 200
    unknown = await client.delete(f"/admin/users/ana/tokens/{old_id}", headers=auth)
    assert unknown.status_code == 404 and old_id in unknown.json()["detail"]


async def test_adding_a_user_twice_or_with_an_unknown_role_or_the_bootstrap_name_is_refused(
    client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    await add_user("ana", "annotator")
    twice = await client.post("/admin/users", json={"name": "ana", "role": "viewer"}, headers=auth)
    bad_role = await client.post("/admin/users", json={"name": "bo", "role": "owner"}, headers=auth)
    bootstrap = await client.post("/admin/users", json={"name": "admin", "role": "viewer"}, headers=auth)
    nobody = await client.patch("/admin/users/nobody", json={"role": "viewer"}, headers=auth)

    assert twice.status_code == 400 and "exists already" in twice.json()["detail"]
    assert bad_role.status_code == 400 and "one of viewer, annotator, admin" in bad_role.json()["detail"]
    assert bootstrap.status_code == 400 and "WB_ADMIN_NAME" in bootstrap.json()["detail"]
    assert nobody.status_code == 404


async def test_no_secret_is_stored_in_an_event(app: Litestar, client: AsyncTestClient[Litestar], add_user) -> None:
    token = await add_user("ana", "annotator")
    store = app.state.access._store
    events = [stored.event for stored in await store.read("wb.access.>")]

    assert [type(e).__name__ for e in events] == ["UserAdded", "TokenIssued"]
    assert all(token not in str(e) for e in events)
    assert events[1].token_sha256 and len(events[1].token_sha256) == 64


async def test_a_login_link_gives_an_httponly_strict_session_once(
    client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    await add_user("ana", "annotator")
    code = await login_link_code(client, auth, "ana")

    first = await client.post("/auth/login", json={"code": code})
    assert first.status_code == 200 and first.json() == {"name": "ana", "role": "annotator"}
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower() and "Path=/" in set_cookie
    # The cookie alone now opens the API (the test client keeps it like a browser).
    assert (await client.get("/admin/me")).json() == {"name": "ana", "role": "annotator"}

    client.cookies.clear()
    again = await client.post("/auth/login", json={"code": code})
    assert again.status_code == 401 and "used already" in again.json()["detail"]
    assert (await client.get("/admin/me")).status_code == 401


async def test_a_token_can_be_exchanged_for_a_session_and_logout_drops_it(
    client: AsyncTestClient[Litestar], add_user: AddUser
) -> None:
    token = await add_user("vic", "viewer")
    assert (await client.post("/auth/login", json={"token": "not-a-token"})).status_code == 401
    assert (await client.post("/auth/login", json={"token": token})).status_code == 200
    assert (await client.get("/admin/me")).json()["name"] == "vic"

    out = await client.post("/auth/logout")
    assert out.status_code == 200 and 'wb_session=""' in out.headers["set-cookie"]
    client.cookies.clear()  # what the browser does with a cookie whose max-age is 0
    assert (await client.get("/admin/me")).status_code == 401


async def test_an_expired_login_link_is_refused(
    app: Litestar, client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    await add_user("ana", "annotator")
    code = await login_link_code(client, auth, "ana")
    later = datetime.now(UTC) + timedelta(hours=1)
    app.state.access.clock = lambda: later

    assert (await client.post("/auth/login", json={"code": code})).status_code == 401


async def test_a_session_dies_with_its_user_even_when_the_name_is_added_again(
    client: AsyncTestClient[Litestar], auth: dict[str, str], add_user: AddUser
) -> None:
    await add_user("ana", "annotator")
    assert (await client.post("/auth/login", json={"code": await login_link_code(client, auth, "ana")})).is_success
    cookie = client.cookies[SESSION_COOKIE]
    await client.delete("/admin/users/ana", headers=auth)
    await add_user("ana", "viewer")

    client.cookies.clear()
    client.cookies[SESSION_COOKIE] = cookie
    assert (await client.get("/admin/me")).status_code == 401


async def test_a_tampered_or_foreign_session_cookie_is_refused(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    assert (await client.post("/auth/login", json={"code": await login_link_code(client, auth, "admin")})).is_success
    payload, _, mac = client.cookies[SESSION_COOKIE].partition(".")
    forged = SessionSigner.from_secret("another-secret", 3600).sign_raw(payload.encode())

    client.cookies.clear()
    client.cookies[SESSION_COOKIE] = f"{payload}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}"
    assert (await client.get("/admin/me")).status_code == 401
    client.cookies[SESSION_COOKIE] = forged
    assert (await client.get("/admin/me")).status_code == 401


async def test_a_cookie_borne_change_from_another_site_is_refused(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    assert (await client.post("/auth/login", json={"code": await login_link_code(client, auth, "admin")})).is_success
    mark = {"kind": "golden", "dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma"}

    foreign = await client.post("/admin/annotations", json=mark, headers={"Origin": "https://evil.example"})
    own = await client.post("/admin/annotations", json=mark, headers={"Origin": "http://testserver.local"})

    assert foreign.status_code == 403 and "evil.example" in foreign.json()["detail"]
    assert own.status_code == 201


async def test_too_many_requests_get_429_with_retry_after(make_app, add_user) -> None:
    async with AsyncTestClient(make_app(rate_limit_per_s=1, rate_limit_burst=3)) as client:
        token = (
            await client.post(
                "/admin/users", json={"name": "ana", "role": "viewer"}, headers=bearer("unit-test-token-0123456789")
            )
        ).json()["token"]
        answers = [(await client.get("/admin/datasets", headers=bearer(token))).status_code for _ in range(5)]
        limited = await client.get("/admin/datasets", headers=bearer(token))

    assert answers[:3] == [200, 200, 200] and 429 in answers[3:]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "WB_RATE_LIMIT_PER_S" in limited.json()["detail"]


async def test_the_rate_limit_counts_each_token_apart_from_the_users_page(make_app) -> None:
    # A script hammering the API with the admin token must not starve the admin's own page.
    admin = bearer("unit-test-token-0123456789")
    async with AsyncTestClient(make_app(rate_limit_per_s=0.001, rate_limit_burst=2)) as client:
        code = (await client.post("/admin/users/admin/login-link", headers=admin)).json()["url"].split("#login=")[1]
        assert (await client.post("/auth/login", json={"code": code})).status_code == 200
        token = [(await client.get("/admin/me", headers=admin)).status_code for _ in range(2)]
        page = [(await client.get("/admin/me")).status_code for _ in range(3)]

    assert token == [200, 429]  # its burst of 2: the login link, then one more
    assert page == [200, 200, 429]  # the same admin's page has a bucket of its own


async def test_login_tries_are_limited_per_address_so_guessing_costs_time(make_app) -> None:
    async with AsyncTestClient(make_app(login_rate_per_s=0.001)) as client:
        wrong = [
            (await client.post("/auth/login", json={"token": f"guess-{n}"})).status_code for n in range(LOGIN_BURST)
        ]
        limited = await client.post("/auth/login", json={"token": "unit-test-token-0123456789"})
        api = await client.get("/admin/me", headers=bearer("unit-test-token-0123456789"))

    assert wrong == [401] * LOGIN_BURST
    assert limited.status_code == 429  # even the right token, until the address's bucket refills
    assert int(limited.headers["retry-after"]) >= 1
    assert "WB_LOGIN_RATE_PER_S" in limited.json()["detail"]
    assert api.status_code == 200  # the API's own limit is apart: a bearer token is not a login


def test_the_rate_limiter_refills_at_its_rate_and_keeps_callers_apart() -> None:
    limiter = RateLimiter(rate=2.0, burst=2)
    assert limiter.retry_after("a", now=0.0) is None
    assert limiter.retry_after("a", now=0.0) is None
    assert limiter.retry_after("a", now=0.0) == pytest.approx(0.5)
    assert limiter.retry_after("b", now=0.0) is None  # another caller has their own bucket
    assert limiter.retry_after("a", now=0.5) is None  # one request's worth refilled


def test_the_access_list_folds_the_events_in_order() -> None:
    access = AccessList()
    access.apply(1, acc.UserAdded(name="ana", role=acc.ROLE_VIEWER))
    access.apply(2, acc.TokenIssued(name="ana", token_id="t1", token_sha256="aa"))
    access.apply(3, acc.UserRoleChanged(name="ana", role=acc.ROLE_ADMIN))
    access.apply(4, acc.UserRevoked(name="ana"))
    access.apply(5, acc.UserAdded(name="ana", role=acc.ROLE_VIEWER))

    user = access.active("ana")
    assert user is not None and (user.role, user.generation, user.tokens) == (Role.VIEWER, 5, {})
    assert access.by_token == {}  # the revoked user's token went with them
    assert access.position == 5
