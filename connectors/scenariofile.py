"""Scenario files on disk: YAML in, a validated ``twin.scenario.Scenario`` out (the what-ifs' changes to a line).

The format is ``twin.scenario``'s (its module docstring); examples for the reference line are in
``simulations/scenarios/``. Errors name the file and the field path, as line files' do
(``connectors.linefile.read_line``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from twin.scenario import Scenario, ScenarioError, load_scenario_data

__all__ = ["read_scenario"]


def read_scenario(path: str | Path) -> Scenario:
    """The scenario described by the YAML file at ``path``; :class:`~twin.scenario.ScenarioError` names the file and
    each field that is wrong (a file that cannot be read or is not YAML is one problem at ``(file)`` or its line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(str(p), [("(file)", f"cannot read: {reason}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        raise ScenarioError(str(p), [(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]) from exc
    return load_scenario_data(data, source=str(p))
