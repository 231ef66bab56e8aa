"""Who is calling, and may they: bearer tokens, session cookies, roles per route, rate limits.

- API clients send `Authorization: Bearer <token>` (a user's token, or the bootstrap WB_API_TOKEN).
- The page holds a session cookie (HttpOnly, SameSite=Strict), got by exchanging a one-time login
  link or a token at POST /auth/login; the WebSocket and download links ride on the same cookie, so
  no secret ever travels in a URL (and none reaches an access log or the browser's history).
- Every route under /admin declares the least role it needs as opt={"role": Role.X}; `authorize`
  refuses a missing or unknown credential (401) and a too-small role (403), then applies the
  caller's rate limit (429 with Retry-After).

A session cookie is `<payload>.<mac>`: the payload names the user, their generation (the sequence of
the UserAdded that made them, so a user removed and added again does not inherit old sessions) and
an expiry; the MAC is HMAC-SHA256 under a key derived from WB_SESSION_SECRET (default: from
WB_API_TOKEN). The role is read from the access list on every request, so a role change or a
revocation takes effect at once.
"""

import base64
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from gateway.access import AccessBook, Principal, Role

ROLE_OPT = "role"
SESSION_COOKIE = "wb_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionPayload(msgspec.Struct, frozen=True):
    u: str  # user name
    g: int  # generation
    exp: int  # unix seconds


@dataclass(frozen=True, slots=True)
class SessionSigner:
    key: bytes
    lifetime_s: int

    @classmethod
    def from_secret(cls, secret: str, lifetime_s: int) -> "SessionSigner":
        return cls(hmac.new(secret.encode(), b"workbench session cookie v1", hashlib.sha256).digest(), lifetime_s)

    def sign(self, principal: Principal, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.lifetime_s)
        session = SessionPayload(principal.name, principal.generation, expires)
        # No "=" padding: a cookie value with "=" gets quoted, and quoting differs between clients.
        return self.sign_raw(base64.urlsafe_b64encode(msgspec.json.encode(session)).rstrip(b"="))

    def sign_raw(self, payload: bytes) -> str:
        return f"{payload.decode()}.{self._mac(payload)}"

    def verify(self, cookie: str, now: float | None = None) -> SessionPayload | None:
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload.encode()).encode()):
            return None
        try:
            padded = payload + "=" * (-len(payload) % 4)
            session = msgspec.json.decode(base64.urlsafe_b64decode(padded), type=SessionPayload)
        except (ValueError, msgspec.DecodeError):
            return None
        return session if session.exp > (now if now is not None else time.time()) else None

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()


class RateLimiter:
    """A token bucket per caller: `rate` requests a second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at)

    def retry_after(self, caller: str, now: float | None = None) -> float | None:
        """Takes one request from the caller's bucket: None when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[caller] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate

    def take(self, caller: str, who: str, setting: str) -> None:
        """Takes one request from the caller's bucket, or raises a 429 with Retry-After that says
        who made too many and which setting limits them."""
        wait = self.retry_after(caller)
        if wait is not None:
            raise TooManyRequestsException(
                f"{who}: at most {self.rate:g} a second ({setting})",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller, from the bearer token or else the session cookie; None when neither names anyone.

    Raises NotLoaded (a 503, or close 1013 on the socket) while the access list is still loading.
    """
    book: AccessBook = connection.app.state.access
    token = bearer_token(connection)
    if token is not None:
        return book.principal_for_token(token)
    cookie = connection.cookies.get(SESSION_COOKIE)
    if cookie:
        signer: SessionSigner = connection.app.state.sessions
        session = signer.verify(cookie)
        return None if session is None else book.principal_for_session(session.u, session.g)
    return None


def required_role(handler: BaseRouteHandler) -> Role:
    role = handler.opt.get(ROLE_OPT)
    if not isinstance(role, Role):
        # Caught at start by check_roles_declared; here only if a handler was added at run time.
        raise PermissionDeniedException("this route declares no role")
    return role


def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of every API route: a known caller, with the route's role, within their rate limit."""
    role = required_role(handler)
    principal = authenticate(connection)
    if principal is None:
        raise NotAuthorizedException(
            "missing or unknown credentials: send `Authorization: Bearer <token>` (`workbench users add` "
            "issues one) or log in with the link `make run` printed",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.role < role:
        raise PermissionDeniedException(
            f"this needs the {role.word} role; {principal.name} is {principal.role.word} (an admin can change it)"
        )
    if principal.via == "session" and connection.scope["type"] == ScopeType.HTTP:
        _refuse_cross_site(connection)
    limiter: RateLimiter = connection.app.state.rate_limiter
    limiter.take(
        principal.rate_key, f"too many requests from {principal.name} ({principal.via})", "WB_RATE_LIMIT_PER_S"
    )
    connection.state.principal = principal


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request comes from the workbench's own page (or from no page at all: no Origin)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return origin == f"{scheme}://{connection.headers.get('host', '')}"


def _refuse_cross_site(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """A cookie-borne change must come from the workbench's own page (SameSite=Strict does the same
    for browsers that honour it; this also covers those that do not)."""
    if connection.scope.get("method", "GET") in SAFE_METHODS or same_origin(connection):
        return
    raise PermissionDeniedException(f"a request from {connection.headers.get('origin')} may not use the session")
