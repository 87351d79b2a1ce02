"""MQTT in and out over paho-mqtt 2.x (MQTT v5): paho's types never leave this module.

The subscriber keeps a persistent session (``clean_start=False`` from the very first connect, with a
session expiry interval) so that messages published while it is away are delivered when it returns, and
acknowledges each QoS 1 message only when the caller says it is safe (:meth:`MqttSubscriber.ack`, after
the message is durably stored). Its Receive Maximum bounds the messages in flight to it, so the broker
holds the rest: back-pressure without loss. paho reconnects on its own with exponential backoff; the
backoff here is jittered so that a fleet of consumers does not reconnect in lockstep.

The publisher publishes at QoS 1 with a bounded number of messages in flight and checks every return code.
"""

from __future__ import annotations

import random
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from connectors.errors import ConnectorError

__all__ = ["Delivery", "MqttConfig", "MqttError", "MqttPublisher", "MqttSubscriber", "parse_mqtt_url"]


class MqttError(ConnectorError):
    """The broker could not be reached or refused us; the message says which broker and why."""


@dataclass(frozen=True)
class MqttConfig:
    """How to reach a broker: address, credentials, TLS and session settings."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    """One id per process: two connections with the same id take over each other's session."""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    """Skip the server-name check (test brokers with self-signed certificates only)."""
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps our session (subscriptions and queued messages) while we are away."""
    receive_maximum: int = 2000
    """QoS 1 messages the broker may send before we acknowledge: the in-flight bound."""
    max_inflight: int = 1000
    """Publisher: unacknowledged messages before publish() waits."""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    @property
    def address(self) -> str:
        """The broker as a URL, without credentials (for messages and logs)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str, **overrides: Any) -> MqttConfig:
    """The configuration a URL names: ``mqtt[s]://[user[:password]@]host[:port][?client_id=..&ca=..&cert=..&key=..&insecure=1
    &session_expiry=..&receive_maximum=..]``; ``overrides`` replace fields. A bad URL raises ValueError naming the part."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"MQTT URL {url!r}: scheme must be mqtt or mqtts, got {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL {url!r}: no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"MQTT URL {url!r}: the port is not a number") from None
    tls = parts.scheme == "mqtts"
    q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    known = {"client_id", "ca", "cert", "key", "insecure", "session_expiry", "receive_maximum", "keepalive"}
    unknown = sorted(set(q) - known)
    if unknown:
        raise ValueError(f"MQTT URL {url!r}: unknown parameters {unknown} (known: {sorted(known)})")

    def number(key: str, default: int) -> int:
        if key not in q:
            return default
        try:
            return int(q[key])
        except ValueError:
            raise ValueError(f"MQTT URL {url!r}: {key} must be an integer, got {q[key]!r}") from None

    cfg = MqttConfig(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        client_id=q.get("client_id", ""),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        ca_certs=q.get("ca"),
        certfile=q.get("cert"),
        keyfile=q.get("key"),
        tls_insecure=q.get("insecure", "") in ("1", "true", "yes"),
        session_expiry_s=number("session_expiry", MqttConfig.session_expiry_s),
        receive_maximum=number("receive_maximum", MqttConfig.receive_maximum),
        keepalive_s=number("keepalive", MqttConfig.keepalive_s),
    )
    if not 1 <= cfg.receive_maximum <= 65535:
        raise ValueError(f"MQTT URL {url!r}: receive_maximum must be 1..65535, got {cfg.receive_maximum}")
    return replace(cfg, **overrides) if overrides else cfg


def _client(cfg: MqttConfig, client_id: str, manual_ack: bool) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_certs, certfile=cfg.certfile, keyfile=cfg.keyfile, cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.tls_insecure)
    # paho doubles the delay from min to max; a random min spreads a fleet's reconnects (jitter).
    low = cfg.reconnect_min_s * random.uniform(1.0, 2.0)
    client.reconnect_delay_set(max(1, round(low)), max(1, round(cfg.reconnect_max_s)))
    return client


def _connect_properties(cfg: MqttConfig) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = cfg.session_expiry_s
    props.ReceiveMaximum = cfg.receive_maximum
    return props


def _failed(reason: ReasonCode | int) -> bool:
    return bool(reason.is_failure) if isinstance(reason, ReasonCode) else reason != 0


_PUBACK = struct.Struct("!BBH")
_PUBACK_HEADER = 0x40  # PUBACK, remaining length 2 (the packet id): MQTT v5 allows leaving out reason code 0


class Delivery(NamedTuple):
    """A message as it arrived: topic, payload, when (ms since the epoch, receive clock) and the token to ack it."""

    topic: str
    payload: bytes
    received_ms: int
    token: tuple[int, int]
    """(message id, QoS): hand it back to :meth:`MqttSubscriber.ack`."""


@dataclass
class _Stats:
    connects: int = 0
    disconnects: int = 0
    received: int = 0
    acked: int = 0
    last_error: str = ""


def _close_wakeup_sockets(client: paho.Client) -> None:
    """Close the socket pair paho's network thread is woken through (once that thread has stopped).

    paho opens it in ``loop_start`` and closes it only when the client is finalised; a client in a reference cycle
    is finalised by the garbage collector, maybe after the sockets, which then warn of being left open in
    whatever code runs at that moment (the test suite saw it in an unrelated test). paho has no public way to
    close them: its private ``_reset_sockets``, if it is there.
    """
    reset = getattr(client, "_reset_sockets", None)
    if callable(reset):
        reset()


class MqttSubscriber:
    """A persistent-session QoS 1 subscription whose messages are acknowledged only when the caller says so.

    ``on_message`` runs on paho's network thread: it must return quickly (hand the delivery to a bounded
    queue). ``subscription`` may be an MQTT v5 shared subscription (``$share/group/filter``) so that several
    processes split one stream.
    """

    def __init__(self, config: MqttConfig, subscription: str, on_message: Callable[[Delivery], None], qos: int = 1) -> None:
        if not config.client_id:
            raise ValueError("a persistent session needs a client id: one per process (two with one id take over each other)")
        self.config = config
        self.subscription = subscription
        self.qos = qos
        self._on_message = on_message
        self._connected = threading.Event()
        self.stats = _Stats()
        self._client = _client(config, config.client_id, manual_ack=True)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._subscribed = threading.Event()

    # paho callbacks, on its network thread
    def _handle_connect(self, client: paho.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if _failed(reason):
            self.stats.last_error = f"{self.config.address} refused the connection: {reason}"
            return
        self.stats.connects += 1
        self._connected.set()
        # Subscribing again on a resumed session is harmless and covers a session the broker lost.
        client.subscribe(self.subscription, qos=self.qos)

    def _handle_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        if any(_failed(r) for r in reasons):
            self.stats.last_error = f"{self.config.address} refused the subscription {self.subscription!r}: {reasons}"
        else:
            self._subscribed.set()

    def _handle_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self.stats.disconnects += 1
        # After a refused CONNECT paho reports a protocol error too; the refusal is what the user needs to read.
        if _failed(reason) and was_connected:
            self.stats.last_error = f"disconnected from {self.config.address}: {reason}"

    def _handle_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self.stats.received += 1
        self._on_message(Delivery(msg.topic, bytes(msg.payload), time.time_ns() // 1_000_000, (msg.mid, msg.qos)))

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (retrying in the background if the broker is not up yet) and wait up to ``timeout_s`` for the subscription."""
        cfg = self.config
        self._client.connect_async(
            cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False, properties=_connect_properties(cfg)
        )
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            detail = self.stats.last_error or "no answer"
            raise MqttError(f"could not subscribe to {self.subscription!r} at {cfg.address} within {timeout_s:g} s: {detail}")

    def ack(self, tokens: Sequence[tuple[int, int]]) -> None:
        """Acknowledge deliveries in the order given: the broker forgets them (only once they are stored or dead-lettered)."""
        client = self._client
        queue_packet = getattr(client, "_packet_queue", None)
        if queue_packet is not None and all(qos == 1 for _mid, qos in tokens):
            # paho sends one PUBACK per call, each with its own wake-up and socket write; a batch of them as one
            # outgoing buffer is the same bytes on the wire for a fraction of the work (paho's public ack() is the
            # fallback should this private method ever go, and serves QoS 2, which needs PUBCOMP).
            queue_packet(_PUBACK_HEADER, b"".join(_PUBACK.pack(_PUBACK_HEADER, 2, mid) for mid, _qos in tokens), 0, 0)
        else:
            for mid, qos in tokens:
                if qos > 0:
                    client.ack(mid, qos)
        self.stats.acked += len(tokens)

    def stop(self) -> None:
        """Disconnect, keeping the session on the broker (messages published meanwhile wait for us)."""
        self._client.disconnect()
        self._client.loop_stop()
        _close_wakeup_sockets(self._client)


class MqttPublisher:
    """Publishes at QoS 1 with at most ``max_inflight`` unacknowledged messages; ``publish`` blocks beyond that."""

    def __init__(self, config: MqttConfig, qos: int = 1) -> None:
        self.config = config
        self.qos = qos
        client_id = config.client_id or f"gigatwin-pub-{random.getrandbits(48):012x}"
        self._client = _client(config, client_id, manual_ack=False)
        self._client.max_inflight_messages_set(config.max_inflight)
        self._client.max_queued_messages_set(0)  # unbounded in paho; our own semaphore is the bound
        self._slots = threading.BoundedSemaphore(config.max_inflight)
        self._client.on_publish = self._handle_publish
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._connected = threading.Event()
        self.published = 0
        self.acknowledged = 0
        self.last_error = ""

    def _handle_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if _failed(reason):
            self.last_error = f"{self.config.address} refused the connection: {reason}"
        else:
            self._connected.set()

    def _handle_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if _failed(reason) and was_connected:  # as for the subscriber: keep the refusal's reason
            self.last_error = f"disconnected from {self.config.address}: {reason}"

    def _handle_publish(self, _c: paho.Client, _u: Any, _mid: int, _reason: ReasonCode, _p: Any) -> None:
        self.acknowledged += 1
        if self.qos > 0:
            self._slots.release()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and wait up to ``timeout_s`` for the broker."""
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # A session that outlives a dropped connection, so that paho's in-flight messages are resent into it.
        props.SessionExpiryInterval = cfg.session_expiry_s
        self._client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False, properties=props)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            raise MqttError(f"could not connect to {cfg.address} within {timeout_s:g} s: {self.last_error or 'no answer'}")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message; blocks while ``max_inflight`` are unacknowledged; raises MqttError if paho refuses it."""
        if self.qos > 0:
            self._slots.acquire()
        info = self._client.publish(topic, payload, qos=self.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            # NO_CONN: paho keeps the message and sends it after reconnecting; anything else is lost.
            if self.qos > 0:
                self._slots.release()
            raise MqttError(f"publish to {topic!r} at {self.config.address} failed: {paho.error_string(info.rc)}")
        self.published += 1

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every published message is acknowledged; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while self.acknowledged < self.published:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        """Wait briefly for acknowledgements, then disconnect."""
        self.flush(timeout_s=10.0)
        self._client.disconnect()
        self._client.loop_stop()
        _close_wakeup_sockets(self._client)
