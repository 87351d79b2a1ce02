"""docker-compose.yml is for users (no Docker engine here): it must parse, wire services by health, and run real commands."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import _parser
from api.settings import load_settings
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_services_start_in_order_of_health() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "influxdb", "gigatwin", "feed"} <= set(services)
    for name in ("mosquitto", "influxdb", "gigatwin"):
        assert services[name]["healthcheck"]["test"], name
    assert services["gigatwin"]["depends_on"] == {
        "mosquitto": {"condition": "service_healthy"},
        "influxdb": {"condition": "service_healthy"},
    }
    assert services["feed"]["depends_on"]["mosquitto"] == {"condition": "service_healthy"}


def test_the_broker_runs_the_shipped_configuration() -> None:
    mounts = _compose()["services"]["mosquitto"]["volumes"]
    (conf,) = [m for m in mounts if m.endswith("/mosquitto/config/mosquitto.conf:ro")]
    shipped = REPO / conf.split(":")[0]
    assert shipped.is_file()
    text = shipped.read_text()
    assert re.search(r"^persistence true$", text, re.M)
    queued = re.search(r"^max_queued_messages (\d+)$", text, re.M)
    assert queued is not None
    assert int(queued.group(1)) == 0 or int(queued.group(1)) >= 100_000  # mosquitto's 1000 loses QoS 1 messages


def test_secrets_are_required_not_defaulted() -> None:
    text = COMPOSE.read_text()
    for var in ("INFLUXDB_ADMIN_PASSWORD", "GIGATWIN_INFLUX_PASSWORD", "GIGATWIN_VIEWER_KEYS", "GIGATWIN_OPERATOR_KEYS"):
        assert re.search(r"\$\{" + var + r":\?[^}]+\}", text), var


def test_every_gigatwin_command_in_it_is_one_the_cli_accepts() -> None:
    compose = _compose()
    checked = 0
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command:
            continue
        script = command[-1] if isinstance(command, list) else command
        for part in script.split("&&"):
            words = shlex.split(part.replace("exec ", "", 1))
            if words and words[0] == "gigatwin":
                args = [re.sub(r"\$\{[^}]+\}", "secret", w).replace("/src/", str(REPO) + "/") for w in words[1:]]
                parsed = _parser().parse_args(args)
                if getattr(parsed, "line", None):
                    assert Path(parsed.line).is_file(), f"{name}: {parsed.line}"
                checked += 1
    assert checked == 2


def test_the_service_environment_makes_valid_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = _compose()["services"]["gigatwin"]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("GIGATWIN_")]:
        monkeypatch.delenv(name)
    for name, value in service["environment"].items():
        # each required variable stands for itself: ${GIGATWIN_VIEWER_KEYS:?..} -> gigatwin_viewer_keys
        # and an optional one ${VAR:-default} takes its default
        value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
        value = re.sub(r"\$\{(\w+)[^}]*\}", lambda m: m.group(1).lower(), value).replace("/src/", str(REPO) + "/")
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.source == "mqtt"
    assert settings.host == "0.0.0.0"
    assert settings.store_url.startswith("influxdb://gigatwin:gigatwin_influx_password@influxdb:8086/")
    assert settings.roles() == {"gigatwin_viewer_keys": "viewer", "gigatwin_operator_keys": "operator"}
    port = service["ports"][0].split(":")[1]
    assert int(port) == settings.port
    assert str(settings.port) in " ".join(service["healthcheck"]["test"])


def test_the_service_accepts_the_feeds_lead_over_a_simulated_week() -> None:
    """The feed runs at --speed S from now: after a simulated week its clock is 7 d x (1 - 1/S) ahead of the wall
    clock, and the service must still accept its messages (GIGATWIN_MAX_LEAD_S), or they all become dead letters."""
    services = _compose()["services"]
    feed = _parser().parse_args(shlex.split(services["feed"]["command"][-1].split("exec ", 1)[1])[1:])
    week_s = 7 * 86400
    needed = week_s * (1 - 1 / feed.speed)
    env = services["gigatwin"]["environment"]
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(env["GIGATWIN_MAX_LEAD_S"]))  # its default when not overridden
    assert float(value) >= needed
    lines = COMPOSE.read_text().splitlines()
    at = next(i for i, text in enumerate(lines) if text.strip().startswith("GIGATWIN_MAX_LEAD_S:"))
    comment = []
    while lines[at - 1 - len(comment)].strip().startswith("#"):
        comment.append(lines[at - 1 - len(comment)])
    assert "virtual plant" in " ".join(comment)  # the file says why the service accepts so much, and what else to set
