"""Line files on disk: YAML in, a validated ``twin.Line`` out."""

from __future__ import annotations

from pathlib import Path

import yaml

from twin.errors import LineError
from twin.schema import Line, load_line_data

__all__ = ["read_line"]


def read_line(path: str | Path) -> Line:
    """The line described by the YAML file at ``path``; :class:`~twin.errors.LineError` names the file and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LineError(str(p), [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        raise LineError(str(p), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    return load_line_data(data, source=str(p))
