"""Broker URLs: what a user writes in --mqtt becomes the connection settings, and a mistake is named."""

from __future__ import annotations

import pytest

from connectors.mqtt import MqttSubscriber, parse_mqtt_url


def test_a_full_url_gives_credentials_tls_and_session_settings() -> None:
    cfg = parse_mqtt_url(
        "mqtts://pl%40nt:s%3Acret@broker.local?client_id=ing-1&ca=/etc/ca.pem&session_expiry=60&receive_maximum=500"
    )
    assert (cfg.host, cfg.port, cfg.tls) == ("broker.local", 8883, True)
    assert (cfg.username, cfg.password) == ("pl@nt", "s:cret")
    assert (cfg.client_id, cfg.ca_certs, cfg.session_expiry_s, cfg.receive_maximum) == ("ing-1", "/etc/ca.pem", 60, 500)
    assert cfg.address == "mqtts://broker.local:8883"  # no credentials in what is logged


def test_plain_mqtt_defaults_to_port_1883_and_overrides_win() -> None:
    cfg = parse_mqtt_url("mqtt://127.0.0.1", client_id="x")
    assert (cfg.port, cfg.tls, cfg.client_id, cfg.username) == (1883, False, "x", None)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://host", "scheme must be mqtt or mqtts"),
        ("mqtt://", "no host"),
        ("mqtt://host:port", "port is not a number"),
        ("mqtt://host?qos=2", "unknown parameters ['qos']"),
        ("mqtt://host?receive_maximum=0", "receive_maximum must be 1..65535"),
        ("mqtt://host?session_expiry=soon", "session_expiry must be an integer"),
    ],
)
def test_a_bad_url_is_refused_naming_the_part(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_mqtt_url(url)


def test_a_persistent_session_needs_a_client_id() -> None:
    with pytest.raises(ValueError, match="client id"):
        MqttSubscriber(parse_mqtt_url("mqtt://127.0.0.1"), "a/+", lambda _d: None)
