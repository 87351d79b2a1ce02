"""Settings: from the environment, .env and a config file; a missing or wrong one stops start-up naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.cli import main
from api.settings import SettingsError, load_pipeline_settings, load_settings


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


def test_the_accepted_lead_is_a_setting_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://b")
    monkeypatch.setenv("GIGATWIN_VIEWER_KEYS", "k")
    assert load_settings().max_lead_s == 300  # minutes, not the day the pipeline used to trust
    monkeypatch.setenv("GIGATWIN_MAX_LEAD_S", "604800")
    assert load_settings().max_lead_s == 604800
    monkeypatch.setenv("GIGATWIN_MAX_LEAD_S", "0")
    with pytest.raises(SettingsError, match=r"max_lead_s \(GIGATWIN_MAX_LEAD_S\)"):
        load_settings()


def test_no_url_secret_appears_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://plant:mqtt-pw-1@broker:1883?client_id=a")
    monkeypatch.setenv("GIGATWIN_STORE_URL", "influxdb://db:8086/gigatwin?flavour=v2&token=influx-tok-2")
    monkeypatch.setenv("GIGATWIN_OPERATOR_KEYS", "api-key-3")
    s = load_settings()
    for text in (repr(s), str(s)):
        for secret in ("mqtt-pw-1", "influx-tok-2", "api-key-3"):
            assert secret not in text
        assert "broker:1883" in text  # what is no secret stays readable
    assert s.mqtt_url == "mqtt://plant:mqtt-pw-1@broker:1883?client_id=a"  # the value itself is untouched


def test_the_pipeline_alone_needs_no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://b")
    monkeypatch.setenv("GIGATWIN_HOST", "0.0.0.0")
    with pytest.raises(SettingsError, match="no API keys"):
        load_settings()
    assert load_pipeline_settings().mqtt_url == "mqtt://b"  # gigatwin ingest serves no HTTP
    monkeypatch.delenv("GIGATWIN_MQTT_URL")
    with pytest.raises(SettingsError, match="mqtt_url"):
        load_pipeline_settings()


def test_ingest_options_map_onto_the_settings_and_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.cli import _parser
    from api.ingest_workers import ingest_overrides

    monkeypatch.setenv("GIGATWIN_MQTT_URL", "mqtt://from-env:1883")
    monkeypatch.setenv("GIGATWIN_STORE_URL", "sqlite:env.db")
    monkeypatch.setenv("GIGATWIN_SOURCE", "demo")
    args = _parser().parse_args(
        ["ingest", "--mqtt", "mqtt://flag:1883", "--group", "g", "--client-id", "c", "--max-lead", "90", "--site", "s2"]
    )
    s = load_pipeline_settings(**ingest_overrides(args))
    assert (s.source, s.mqtt_url, s.store_url) == ("mqtt", "mqtt://flag:1883", "sqlite:env.db")
    assert (s.mqtt_group, s.mqtt_client_id, s.max_lead_s, s.site, s.topic_prefix) == ("g", "c", 90, "s2", "gigatwin")
    assert s.forecast_period_s == 0  # ingest serves no forecasts: it computes none
