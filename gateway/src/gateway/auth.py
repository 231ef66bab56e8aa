"""Bearer-token authentication: one shared token, compared in constant time.

Browsers cannot set headers on a WebSocket or on a plain download link, so those two (and only
those) may carry the token as `?token=`; a handler opts in with opt={"query_token": True}.
"""

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

QUERY_TOKEN_OPT = "query_token"


def presented_token(connection: ASGIConnection[Any, Any, Any, Any], allow_query: bool) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        token = connection.query_params.get("token")
        return token if isinstance(token, str) else None
    return None


def token_is_valid(connection: ASGIConnection[Any, Any, Any, Any], expected: str, allow_query: bool = False) -> bool:
    token = presented_token(connection, allow_query)
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


def require_token(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard for every API route."""
    expected: str = connection.app.state.settings.api_token
    if not token_is_valid(connection, expected, allow_query=bool(handler.opt.get(QUERY_TOKEN_OPT))):
        raise NotAuthorizedException(
            "missing or wrong API token: send it as `Authorization: Bearer <token>` (the value of WB_API_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
