"""The redaction helper: no password or token of a URL survives, and what is no secret stays readable."""

from __future__ import annotations

import pytest

from connectors.redact import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://plant:s3cret@broker:1883?client_id=a", "mqtt://plant:***@broker:1883?client_id=a"),
        (
            "influxdb://u:p%40ss@db:8086/gigatwin?flavour=v2&token=T0K&rp=x",
            "influxdb://u:***@db:8086/gigatwin?flavour=v2&token=***&rp=x",
        ),
        ("mqtts://h:8883?ca=/c.pem&key=/k.pem&Password=x", "mqtts://h:8883?ca=/c.pem&key=***&Password=***"),
        ("mqtt://onlyuser@h", "mqtt://onlyuser@h"),
        ("sqlite:gigatwin.db", "sqlite:gigatwin.db"),
        ("http://[::1:8086/x?token=t&db=a", "http://[::1:8086/x?token=***&db=a"),  # does not parse: hidden all the same
    ],
)
def test_urls_lose_their_secrets_and_keep_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_malformed_url_with_a_password_still_hides_it() -> None:
    shown = redact_url("mqtt://u:pw@[::1:x/")
    assert "pw" not in shown
    assert shown.startswith("mqtt://***@")


def test_urls_inside_messages_are_redacted() -> None:
    text = "MQTT URL 'mqtt://u:hunter2@b:1883?x=1': unknown parameters; store influxdb://h/db?token=abc."
    shown = redact_text(text)
    assert "hunter2" not in shown
    assert "abc" not in shown
    assert "unknown parameters" in shown
