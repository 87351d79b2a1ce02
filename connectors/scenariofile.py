"""Scenario files on disk: YAML in, a validated ``twin.scenario.Scenario`` out (the what-ifs' changes to a line).

The format is ``twin.scenario``'s (its module docstring); examples for the reference line are in
``simulations/scenarios/``. Errors name the file and the field path, as line files' do
(``connectors.linefile.read_line``).
"""

from __future__ import annotations

from pathlib import Path

from connectors.linefile import read_yaml
from twin.scenario import Scenario, ScenarioError, load_scenario_data

__all__ = ["read_scenario"]


def read_scenario(path: str | Path) -> Scenario:
    """The scenario described by the YAML file at ``path``; :class:`~twin.scenario.ScenarioError` names the file and
    each field that is wrong (a file that cannot be read or is not YAML is one problem at ``(file)`` or its line)."""
    return load_scenario_data(read_yaml(path, ScenarioError), source=str(Path(path)))
