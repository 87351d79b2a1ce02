"""Settings: from the environment, .env and a config file; a missing or wrong one stops start-up naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.cli import main
from api.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GIGATWIN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_environment_variables_set_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://broker.plant:1883")
    monkeypatch.setenv("GIGATWIN_VIEWER_KEYS", "k1, k2")
    monkeypatch.setenv("GIGATWIN_OPERATOR_KEYS", "k3")
    monkeypatch.setenv("GIGATWIN_SHIFT_HOURS", "12")
    s = load_settings()
    assert s.source == "mqtt"
    assert s.mqtt_url == "mqtt://broker.plant:1883"
    assert s.roles() == {"k1": "viewer", "k2": "viewer", "k3": "operator"}
    assert s.shift_hours == 12
    assert "k1" not in repr(s)  # keys are secrets: never in logs


def test_a_dotenv_file_and_a_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GIGATWIN_VIEWER_KEYS=from-dotenv\nGIGATWIN_MQTT_URL=mqtt://dotenv:1883\n")
    config = tmp_path / "gigatwin.toml"
    config.write_text('mqtt_url = "mqtt://file:1883"\nstore_url = "sqlite:plant.db"\nhistory_hours = 72\n')
    monkeypatch.setenv("GIGATWIN_CONFIG_FILE", str(config))
    s = load_settings()
    assert s.mqtt_url == "mqtt://dotenv:1883"  # .env wins over the config file
    assert s.store_url == "sqlite:plant.db"
    assert s.history_hours == 72
    assert s.roles() == {"from-dotenv": "viewer"}
    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://env:1883")
    assert load_settings().mqtt_url == "mqtt://env:1883"  # the environment wins over both


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GIGATWIN_VIEWER_KEYS": "k"}, "mqtt_url is required when source is 'mqtt'"),
        ({"GIGATWIN_MQTT_URL": "mqtt://b"}, "no API keys"),
        ({"GIGATWIN_MQTT_URL": "mqtt://b", "GIGATWIN_VIEWER_KEYS": "k", "GIGATWIN_PORT": "http"}, "port (GIGATWIN_PORT)"),
        (
            {"GIGATWIN_MQTT_URL": "mqtt://b", "GIGATWIN_VIEWER_KEYS": "k", "GIGATWIN_SHIFT_HOURS": "0"},
            "shift_hours (GIGATWIN_SHIFT_HOURS)",
        ),
        (
            {"GIGATWIN_MQTT_URL": "mqtt://b", "GIGATWIN_VIEWER_KEYS": "k", "GIGATWIN_LINE_FILE": "/no/such.yaml"},
            "line_file (GIGATWIN_LINE_FILE): no such file",
        ),
        (
            {"GIGATWIN_SOURCE": "demo", "GIGATWIN_AUTH_DISABLED": "true", "GIGATWIN_HOST": "0.0.0.0"},
            "only allowed on a loopback host",
        ),
        ({"GIGATWIN_SOURCE": "demo", "GIGATWIN_VIEWER_KEYS": "same", "GIGATWIN_OPERATOR_KEYS": "same"}, "share a key"),
        ({"GIGATWIN_SOURCE": "carrier-pigeon", "GIGATWIN_AUTH_DISABLED": "1"}, "source (GIGATWIN_SOURCE)"),
    ],
)
def test_a_missing_or_wrong_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)


def test_an_unknown_setting_in_the_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "gigatwin.yaml"
    config.write_text("mqtt_url: mqtt://b\nviewer_keys: [k]\nmqtt_ur1: typo\n")
    monkeypatch.setenv("GIGATWIN_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="mqtt_ur1"):
        load_settings()


def test_serve_with_bad_settings_stops_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GIGATWIN_VIEWER_KEYS", "k")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "gigatwin serve: bad settings" in err
    assert "mqtt_url" in err
    assert "GIGATWIN_MQTT_URL" in err
