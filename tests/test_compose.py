"""docker-compose.yml is for users (no Docker engine here): it must parse, wire services by health, and run real commands."""

from __future__ import annotations

import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import _parser
from api.settings import load_settings
from connectors.feed import FeedClock, parse_origin
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_services_start_in_order_of_health() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "influxdb", "gigatwin", "feed", "feed-week"} <= set(services)
    for name in ("mosquitto", "influxdb", "gigatwin"):
        assert services[name]["healthcheck"]["test"], name
    assert services["gigatwin"]["depends_on"] == {
        "mosquitto": {"condition": "service_healthy"},
        "influxdb": {"condition": "service_healthy"},
    }
    for feed in ("feed", "feed-week"):
        assert services[feed]["depends_on"]["mosquitto"] == {"condition": "service_healthy"}
    # the virtual plants are opt-in (a plant's gateways are the default source), one profile each
    assert services["feed"]["profiles"] == ["virtual-plant"]
    assert services["feed-week"]["profiles"] == ["week"]


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
    assert checked == 3


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


def _feed_args(service: dict[str, Any]) -> Any:
    return _parser().parse_args(shlex.split(service["command"][-1].split("exec ", 1)[1])[1:])


@pytest.mark.parametrize("name", ["feed", "feed-week"])
def test_no_virtual_plant_runs_further_ahead_than_the_service_accepts(name: str) -> None:
    """A feed's clock is origin + speed x wall time: over its whole run (for ever without --hours) it must never be
    further ahead of the wall clock than the service's GIGATWIN_MAX_LEAD_S, or its messages become dead letters."""
    services = _compose()["services"]
    args = _feed_args(services[name])
    now_ms = 1_800_000_000_000
    clock = FeedClock(origin_ms=parse_origin(args.origin, now_ms), start_ms=now_ms, speed=args.speed)
    run_s = math.inf if args.hours is None else args.hours * 3600 / args.speed
    lead_end = clock.lead_s(0.0) if args.speed <= 1 else (clock.lead_s(run_s) if run_s < math.inf else math.inf)
    env = services["gigatwin"]["environment"]
    accepted = float(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(env["GIGATWIN_MAX_LEAD_S"])))  # its default
    assert max(clock.lead_s(0.0), lead_end) <= accepted
    assert accepted == 300  # real gateways send too: the accepted lead stays minutes, not days
    if name == "feed-week":
        assert args.hours == 168  # a whole week is replayed, ending before the present
