"""Logging in (a one-time link or a token for a session cookie) and managing users (admin)."""

from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from gateway.access import AccessBook, Principal, Role
from gateway.auth import ROLE_OPT, SESSION_COOKIE, RateLimiter, SessionSigner
from gateway.settings import GatewaySettings


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    """Either the code of a one-time login link, or an API token."""

    code: str = ""
    token: str = ""


class MeView(msgspec.Struct):
    name: str
    role: str


class UserView(msgspec.Struct):
    name: str
    role: str
    added_at: datetime | None
    added_by: str
    token_ids: list[str]


class UsersView(msgspec.Struct):
    users: list[UserView]


class AddUserBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str = "annotator"


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: str


class IssuedToken(msgspec.Struct):
    """A new API token: shown this once, stored only as its hash."""

    name: str
    role: str
    token_id: str
    token: str


class LoginLinkView(msgspec.Struct):
    name: str
    url: str
    expires_at: datetime


def session_cookie(settings: GatewaySettings, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


def me_view(principal: Principal) -> MeView:
    return MeView(principal.name, principal.role.word)


class SessionController(Controller):
    """Public: how a page gets and drops its session. Nothing here needs a credential beforehand."""

    path = "/auth"
    tags = ["access"]

    @post("/login", operation_id="login", status_code=HTTP_200_OK)
    async def login(
        self, request: Request[Any, Any, Any], data: LoginBody, settings: GatewaySettings, access: AccessBook
    ) -> Response[MeView]:
        """Exchanges a one-time login code (the `#login=` of a link) or an API token for a session cookie.

        Tries are limited per client address (WB_LOGIN_RATE_PER_S): a refused one costs a hash, and
        nothing else here is limited, as the caller is nobody yet."""
        limiter: RateLimiter = request.app.state.login_limiter
        limiter.take(
            request.client.host if request.client else "",
            "too many login tries from this address",
            "WB_LOGIN_RATE_PER_S",
        )
        principal: Principal | None = None
        if data.code:
            principal = await access.use_login_link(data.code)
        elif data.token:
            principal = access.principal_for_token(data.token)
        if principal is None:
            raise NotAuthorizedException(
                "this login link was used already, has expired or is unknown (ask an admin for a new one: "
                "`workbench users link NAME`), or the token is wrong"
            )
        signer: SessionSigner = request.app.state.sessions
        cookie = session_cookie(settings, signer.sign(principal), signer.lifetime_s)
        return Response(me_view(principal), cookies=[cookie])

    @post("/logout", operation_id="logout", status_code=HTTP_200_OK)
    async def logout(self, settings: GatewaySettings) -> Response[None]:
        """Drops the page's session cookie."""
        return Response(None, cookies=[session_cookie(settings, "", 0)])


class MeController(Controller):
    path = "/me"
    tags = ["access"]

    @get("/", operation_id="whoAmI", opt={ROLE_OPT: Role.VIEWER})
    async def me(self, principal: Principal) -> MeView:
        """Who the credentials name, and their role."""
        return me_view(principal)


class UserController(Controller):
    path = "/users"
    tags = ["access"]

    @get("/", operation_id="listUsers", opt={ROLE_OPT: Role.ADMIN})
    async def list_users(self, access: AccessBook) -> UsersView:
        return UsersView(
            [UserView(u.name, u.role.word, u.added_at, u.added_by, sorted(u.tokens)) for u in access.users()]
        )

    @post("/", operation_id="addUser", status_code=HTTP_201_CREATED, opt={ROLE_OPT: Role.ADMIN})
    async def add_user(self, access: AccessBook, principal: Principal, data: AddUserBody) -> IssuedToken:
        """Adds a user and answers their first API token (shown this once)."""
        role = Role.from_word(data.role)
        token_id, token = await access.add_user(data.name, role, principal.name)
        return IssuedToken(data.name, role.word, token_id, token)

    @patch("/{name:str}", operation_id="changeRole", opt={ROLE_OPT: Role.ADMIN})
    async def change_role(self, access: AccessBook, principal: Principal, name: str, data: RoleBody) -> MeView:
        role = Role.from_word(data.role)
        await access.change_role(name, role, principal.name)
        return MeView(name, role.word)

    @delete("/{name:str}", operation_id="revokeUser", opt={ROLE_OPT: Role.ADMIN})
    async def revoke_user(self, access: AccessBook, principal: Principal, name: str) -> None:
        """Revokes a user: their tokens and sessions stop working at once."""
        await access.revoke_user(name, principal.name)

    @post("/{name:str}/tokens", operation_id="issueToken", status_code=HTTP_201_CREATED, opt={ROLE_OPT: Role.ADMIN})
    async def issue_token(self, access: AccessBook, principal: Principal, name: str) -> IssuedToken:
        """A new API token for the user (to rotate: issue one, switch to it, revoke the old one)."""
        token_id, token = await access.issue_token(name, principal.name)
        user = access.list.users[name]
        return IssuedToken(name, user.role.word, token_id, token)

    @delete("/{name:str}/tokens/{token_id:str}", operation_id="revokeToken", opt={ROLE_OPT: Role.ADMIN})
    async def revoke_token(self, access: AccessBook, principal: Principal, name: str, token_id: str) -> None:
        await access.revoke_token(name, token_id, principal.name)

    @post(
        "/{name:str}/login-link",
        operation_id="issueLoginLink",
        status_code=HTTP_201_CREATED,
        opt={ROLE_OPT: Role.ADMIN},
    )
    async def login_link(
        self,
        request: Request[Any, Any, Any],
        access: AccessBook,
        principal: Principal,
        name: str,
        settings: GatewaySettings,
    ) -> LoginLinkView:
        """A one-time link that logs the user's browser in (valid WB_LOGIN_LINK_MINUTES, once)."""
        ttl = timedelta(minutes=settings.login_link_minutes)
        code, expires = await access.issue_login_link(name, ttl, principal.name)
        base = str(request.base_url).rstrip("/")
        return LoginLinkView(name, f"{base}/#login={code}", expires)
