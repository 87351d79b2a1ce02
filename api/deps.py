"""The dependencies routes declare: the settings, the watched line's runtime, and the roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from api.errors import ApiError
from api.security import require
from api.served import ServedLine
from api.settings import Role, Settings

__all__ = ["LineDep", "OperatorDep", "RuntimeDep", "SettingsDep", "ViewerDep", "known_station"]


# async: a plain def dependency runs in the thread pool, two thread hand-offs per request on the hot routes
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _runtime(request: Request) -> ServedLine:
    runtime: ServedLine = request.app.state.runtime
    return runtime


async def _line(
    line: Annotated[str, Path(description="The line's id (its name in the line file)")], rt: RuntimeDep
) -> ServedLine:
    if line != rt.line.name:
        message = f"no line {line!r}; this service watches {rt.line.name!r}"
        raise ApiError(404, message, details=[{"loc": ["path", "line"], "msg": message, "type": "unknown_line"}])
    return rt


def known_station(rt: ServedLine, station: str | None, where: tuple[str, str] = ("query", "station")) -> None:
    """404 naming the parameter unless ``station`` (if given) is a station of the watched line: the same answer on every
    route, never an empty result that looks like a quiet station."""
    if station is not None and station not in {s.id for s in rt.line.stations}:
        ids = ", ".join(s.id for s in rt.line.stations)
        message = f"no station {station!r} in line {rt.line.name!r} (its stations: {ids})"
        raise ApiError(404, message, details=[{"loc": list(where), "msg": message, "type": "unknown_station"}])


SettingsDep = Annotated[Settings, Depends(_settings)]
"""The service's settings (given to the app factory)."""
RuntimeDep = Annotated[ServedLine, Depends(_runtime)]
"""The watched line's runtime."""
LineDep = Annotated[ServedLine, Depends(_line)]
"""The runtime of the line named in the path (404 for any other)."""
ViewerDep = Annotated[Role, Depends(require("viewer"))]
"""A request with a viewer (or operator) key."""
OperatorDep = Annotated[Role, Depends(require("operator"))]
"""A request with an operator key."""
