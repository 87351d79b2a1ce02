"""API keys and their roles: ``viewer`` reads, ``operator`` also changes settings and runs and cancels what-ifs.

A key comes in the ``X-API-Key`` header, as ``Authorization: Bearer KEY``, or (for the browser's EventSource,
which cannot set headers) as the ``api_key`` query parameter. With ``auth_disabled`` (only allowed on a
loopback host) every request has the operator role.

One dependency reads all three places: FastAPI resolves each security scheme as a dependency of its own, and three
of them on every request cost more than the live-status route itself. The OpenAPI schema still documents the three
schemes as alternatives (:func:`document_schemes`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBearer
from fastapi.security.base import SecurityBase

from api.errors import ApiError
from api.settings import Role, Settings

__all__ = ["SCHEMES", "document_schemes", "require"]

_RANK: dict[Role, int] = {"viewer": 0, "operator": 1}

SCHEMES: dict[str, dict[str, Any]] = {
    "APIKeyHeader": APIKey(
        **{"in": APIKeyIn.header}, name="X-API-Key", description="An API key with the viewer or operator role."
    ).model_dump(mode="json", by_alias=True, exclude_none=True),
    "HTTPBearer": HTTPBearer(description="An API key as a bearer token.").model_dump(
        mode="json", by_alias=True, exclude_none=True
    ),
    "APIKeyQuery": APIKey(
        **{"in": APIKeyIn.query},
        name="api_key",
        description="An API key, for clients that cannot set headers (EventSource).",
    ).model_dump(mode="json", by_alias=True, exclude_none=True),
}
"""The three ways to send a key, as OpenAPI security schemes (any one of them authenticates)."""


def _role_of(key: str, roles: dict[str, Role]) -> Role | None:
    found: Role | None = None
    encoded = key.encode()
    for known, role in roles.items():
        # compare with every key in constant time, so the answer's timing does not tell how much of a key matched
        if hmac.compare_digest(known.encode(), encoded):
            found = role
    return found


def _key_of(request: Request) -> str | None:
    headers = request.headers
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization")
    if auth:
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.query_params.get("api_key") or None


class _ApiKey(SecurityBase):
    """The key of a request, from any of the three places, checked against ``role`` (one dependency per request)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        # The header scheme is the one FastAPI records for the route; document_schemes adds the other two.
        self.model = APIKey(**{"in": APIKeyIn.header}, name="X-API-Key")
        self.scheme_name = "APIKeyHeader"

    async def __call__(self, request: Request) -> Role:
        settings: Settings = request.app.state.settings
        if settings.auth_disabled:
            return "operator"
        key = _key_of(request)
        if not key:
            raise ApiError(401, "an API key is required: send it in the X-API-Key header", code="unauthorized")
        has = _role_of(key, _roles(request.app, settings))
        if has is None:
            raise ApiError(401, "the API key is not valid", code="unauthorized")
        if _RANK[has] < _RANK[self.role]:
            raise ApiError(403, f"this needs the {self.role} role; the key has the {has} role", code="forbidden")
        return has


def _roles(app: Any, settings: Settings) -> dict[str, Role]:
    # Settings are immutable once the app is built: compute the key table once per settings object.
    cached: tuple[Settings, dict[str, Role]] | None = getattr(app.state, "_roles", None)
    if cached is None or cached[0] is not settings:
        cached = (settings, settings.roles())
        app.state._roles = cached
    return cached[1]


def require(role: Role) -> Callable[..., Awaitable[Role]]:
    """A dependency that lets a request through if its key has ``role`` or a higher one; 401 without a valid key, 403
    with a key of a lower role."""
    return _ApiKey(role)


def document_schemes(app: FastAPI) -> None:
    """Make the app's OpenAPI schema list all three ways to send a key, as alternatives, on every protected route."""

    original = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = original()  # built once and cached on the app by FastAPI
        if fresh:
            schema.setdefault("components", {})["securitySchemes"] = dict(SCHEMES)
            alternatives: list[dict[str, list[str]]] = [{name: []} for name in SCHEMES]
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict) and operation.get("security"):
                        operation["security"] = alternatives
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
