"""API keys and their roles: ``viewer`` reads, ``operator`` also changes settings (and, later, runs what-ifs).

A key comes in the ``X-API-Key`` header, as ``Authorization: Bearer KEY``, or (for the browser's EventSource,
which cannot set headers) as the ``api_key`` query parameter. With ``auth_disabled`` (only allowed on a
loopback host) every request has the operator role.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.settings import Role, Settings

__all__ = ["require"]

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key with the viewer or operator role.")
_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")
_query = APIKeyQuery(
    name="api_key", auto_error=False, description="An API key, for clients that cannot set headers (EventSource)."
)

_RANK: dict[Role, int] = {"viewer": 0, "operator": 1}


def _role_of(key: str, settings: Settings) -> Role | None:
    found: Role | None = None
    for known, role in settings.roles().items():
        # compare with every key in constant time, so the answer's timing does not tell how much of a key matched
        if hmac.compare_digest(known.encode(), key.encode()):
            found = role
    return found


def require(role: Role) -> Callable[..., Awaitable[Role]]:
    """A dependency that lets a request through if its key has ``role`` or a higher one; 401 without a valid key, 403
    with a key of a lower role."""

    async def check(
        request: Request,
        header: Annotated[str | None, Depends(_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        query: Annotated[str | None, Depends(_query)],
    ) -> Role:
        settings: Settings = request.app.state.settings
        if settings.auth_disabled:
            return "operator"
        key = header or (bearer.credentials if bearer is not None else None) or query
        if not key:
            raise ApiError(401, "an API key is required: send it in the X-API-Key header", code="unauthorized")
        has = _role_of(key, settings)
        if has is None:
            raise ApiError(401, "the API key is not valid", code="unauthorized")
        if _RANK[has] < _RANK[role]:
            raise ApiError(403, f"this needs the {role} role; the key has the {has} role", code="forbidden")
        return has

    return check
