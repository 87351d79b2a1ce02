"""The telemetry contract: topics, payloads, PackML mapping, counters, and the round trip from engine events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.telemetry import (
    INT64_MAX,
    MAX_DEPTH,
    MAX_TS_MS,
    BufferReading,
    Channel,
    CountsReading,
    EventReadings,
    InputReading,
    ProcessReading,
    Source,
    StateReading,
    StoreReading,
    TelemetryError,
    Topics,
    channel_of,
    decode,
    encode,
    from_packml,
    reading_events,
    storable_text,
)
from tests.conftest import make_line, record
from twin.counters import CumulativeCounters
from twin.events import MachineState, StateChanged, UnitsCompleted
from twin.kpis import KpiReducer

TOPICS = Topics("acme/eu", "plant1", "line1")
SRC = Source("plant1", "line1", "COAT")


def test_topics_follow_the_unified_namespace_hierarchy() -> None:
    assert TOPICS.topic("COAT", Channel.STATE) == "acme/eu/plant1/line1/COAT/state"
    assert TOPICS.subscription() == "acme/eu/plant1/line1/+/+"
    assert TOPICS.subscription("ingest") == "$share/ingest/acme/eu/plant1/line1/+/+"
    assert TOPICS.parse("acme/eu/plant1/line1/COAT/counts") == (SRC, Channel.COUNTS)


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("acme/eu/plant2/line1/COAT/state", "not under"),
        ("acme/eu/plant1/line1/COAT/speed", "unknown channel 'speed'"),
        ("acme/eu/plant1/line1/COAT/x/state", "expected"),
        ("acme/eu/plant1/line1//state", "expected"),
    ],
)
def test_a_topic_outside_the_contract_is_rejected_with_a_reason(topic: str, says: str) -> None:
    with pytest.raises(TelemetryError, match=says):
        TOPICS.parse(topic)


def test_topic_levels_cannot_hold_wildcards() -> None:
    with pytest.raises(ValueError, match="site"):
        Topics("gigatwin", "plant+1", "line1")


@pytest.mark.parametrize(
    ("sent", "reason", "twin"),
    [
        ("EXECUTE", "", MachineState.WORKING),
        ("execute", "", MachineState.WORKING),
        ("IDLE", "", MachineState.STARVED),
        ("SUSPENDED", "upstream empty", MachineState.STARVED),
        ("SUSPENDED", "downstream full", MachineState.BLOCKED),
        ("SUSPENDED", "blocked", MachineState.BLOCKED),
        ("HELD", "web_break", MachineState.DOWN),
        ("ABORTED", "e-stop", MachineState.DOWN),
        ("STOPPED", "", MachineState.PLANNED_STOP),
        ("RESETTING", "", MachineState.SETUP),
        ("BLOCKED", "", MachineState.BLOCKED),
        ("PLANNED_STOP", "", MachineState.PLANNED_STOP),
    ],
)
def test_packml_states_map_to_the_twins_states(sent: str, reason: str, twin: MachineState) -> None:
    assert from_packml(sent, reason) is twin


def _payload(**fields: object) -> bytes:
    return json.dumps({"v": 1, "ts": 1_763_900_000_000, **fields}).encode()


def test_each_channel_decodes_to_its_typed_reading() -> None:
    ts = 1_763_900_000_000
    assert decode(SRC, Channel.STATE, _payload(machine=2, state="HELD", reason="web_break", code=7)) == StateReading(
        SRC, 2, ts, MachineState.DOWN, "HELD", "web_break", 7
    )
    assert decode(SRC, Channel.COUNTS, _payload(ProdProcessedCount=10, ProdDefectiveCount=1)) == CountsReading(SRC, 0, ts, 10, 1)
    values = [{"name": "speed", "value": 60, "unit": "m/min"}, {"name": "t", "value": 21.5}]
    assert decode(SRC, Channel.PROCESS, _payload(values=values)) == ProcessReading(
        SRC, 0, ts, (("speed", 60.0, "m/min"), ("t", 21.5, ""))
    )
    assert decode(SRC, Channel.BUFFER, _payload(level=5)) == BufferReading(SRC, 0, ts, 5)
    assert decode(SRC, Channel.STORE, _payload(dwelling=5, held=1, intake_blocked=True)) == StoreReading(SRC, 0, ts, 5, 1, True)
    assert decode(SRC, Channel.INPUT, _payload(ProdConsumedCount=9)) == InputReading(SRC, 0, ts, 9)


@pytest.mark.parametrize(
    ("channel", "payload", "says"),
    [
        (Channel.STATE, b"{not json", "not JSON"),
        (Channel.STATE, b"[1, 2]", "expected a JSON object"),
        (Channel.STATE, b'{"v": 2, "ts": 1, "state": "EXECUTE"}', "payload.v"),
        (Channel.STATE, b'{"v": 1, "state": "EXECUTE"}', "payload.ts: missing"),
        (Channel.STATE, b'{"v": 1, "ts": "yesterday", "state": "EXECUTE"}', "payload.ts: expected an integer"),
        (Channel.STATE, b'{"v": 1, "ts": 5, "state": "DANCING"}', "'DANCING' is neither"),
        (Channel.STATE, b'{"v": 1, "ts": 5, "machine": -1, "state": "IDLE"}', "payload.machine: must be >= 0"),
        (Channel.STATE, b'{"v": 1, "ts": 5, "state": "IDLE", "code": "E7"}', "payload.code"),
        (
            Channel.COUNTS,
            b'{"v": 1, "ts": 5, "ProdProcessedCount": -3, "ProdDefectiveCount": 0}',
            "ProdProcessedCount: must be >= 0",
        ),
        (Channel.COUNTS, b'{"v": 1, "ts": 5, "ProdProcessedCount": 3, "ProdDefectiveCount": 4}', "exceeds"),
        (Channel.COUNTS, b'{"v": 1, "ts": 5, "ProdProcessedCount": true, "ProdDefectiveCount": 0}', "expected an integer"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": []}', "payload.values"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "x", "value": NaN}]}', r"values\[0\].value"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "", "value": 1}]}', r"values\[0\].name"),
        (Channel.BUFFER, b'{"v": 1, "ts": 5, "level": 2.5}', "payload.level"),
        (Channel.STORE, b'{"v": 1, "ts": 5, "dwelling": 1, "held": 0, "intake_blocked": "no"}', "intake_blocked"),
        (Channel.STATE, b"\xff\xfe", "not JSON"),
    ],
)
def test_a_bad_payload_is_rejected_with_a_reason_naming_the_field(channel: Channel, payload: bytes, says: str) -> None:
    with pytest.raises(TelemetryError, match=says):
        decode(SRC, channel, payload)


@pytest.mark.parametrize(
    ("channel", "payload", "says"),
    [
        # The three payloads that stopped the pipeline, each refused here with the field named.
        (Channel.STATE, b"[" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
        (Channel.BUFFER, b'{"v": 1, "ts": 5, "level": 18446744073709551616}', "payload.level: must be <= 9223372036854775807"),
        (Channel.STATE, b'{"v": 1, "ts": 5, "state": "HELD", "reason": "\\ud800"}', r"payload.reason: not valid Unicode"),
        # Their relatives: each field that reaches a store, and nesting the parser survives but the contract does not need.
        (Channel.BUFFER, b'{"v": 1, "ts": 5, "level": 1, "extra": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
        (Channel.BUFFER, b'{"v": 1, "ts": 9223372036854775808, "level": 1}', "payload.ts: must be <="),
        (Channel.BUFFER, b'{"v": 1, "ts": 99999999999999, "level": 1}', f"payload.ts: must be <= {MAX_TS_MS}"),
        (Channel.BUFFER, b'{"v": 1, "ts": 5, "machine": 18446744073709551616, "level": 1}', "payload.machine"),
        (Channel.STATE, b'{"v": 1, "ts": 5, "state": "HELD", "code": -9223372036854775809}', "payload.code: .* beyond"),
        (Channel.COUNTS, b'{"v": 1, "ts": 5, "ProdProcessedCount": 9223372036854775808, "ProdDefectiveCount": 0}', "Processed"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "x", "value": 1' + b"0" * 400 + b"}]}", "beyond the range"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "x\\udfff", "value": 1}]}', r"values\[0\].name: not valid"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "x", "value": 1, "unit": "\\ud800m"}]}', r"\[0\].unit: not"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "a\\nb", "value": 1}]}', "control characters"),
        (Channel.PROCESS, b'{"v": 1, "ts": 5, "values": [{"name": "' + b"n" * 129 + b'", "value": 1}]}', "at most 128"),
    ],
)
def test_a_payload_no_store_can_hold_is_refused_naming_the_field(channel: Channel, payload: bytes, says: str) -> None:
    with pytest.raises(TelemetryError, match=says) as caught:
        decode(SRC, channel, payload)
    caught.value.reason.encode("utf-8")  # the reason itself is storable text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


@given(st.sampled_from(list(Channel)), st.dictionaries(st.sampled_from(["v", "ts", "state", "level", "values", "reason",
       "code", "machine", "dwelling", "held", "ProdProcessedCount", "ProdDefectiveCount", "ProdConsumedCount"]), _json))  # fmt: skip
@settings(deadline=None)  # timing is not the point, and the machine may be busy
def test_decode_raises_nothing_but_a_telemetry_error_whatever_the_json(channel: Channel, obj: dict[str, object]) -> None:
    try:
        reading = decode(SRC, channel, json.dumps({"v": 1, "ts": 5, **obj}))
    except TelemetryError as exc:
        exc.reason.encode("utf-8")
    else:
        assert reading.ts_ms <= MAX_TS_MS
        for value in reading:
            assert not isinstance(value, int) or abs(value) <= INT64_MAX
            assert not isinstance(value, str) or value.encode("utf-8")


@given(st.sampled_from(list(Channel)), st.binary(max_size=200))
@settings(deadline=None)
def test_decode_raises_nothing_but_a_telemetry_error_whatever_the_bytes(channel: Channel, payload: bytes) -> None:
    try:
        decode(SRC, channel, payload)
    except TelemetryError as exc:
        exc.reason.encode("utf-8")


def test_storable_text_escapes_what_a_store_cannot_hold_and_keeps_the_rest() -> None:
    assert storable_text("web_break ü") == "web_break ü"
    assert storable_text("a\ud800b\nc\x00") == "a\\ud800b\\x0ac\\x00"
    assert storable_text("x" * 500, 10) == "xxxxxxx..."


# Names and units become tags: any Unicode but control characters (and surrogates, which are not Unicode text).
_NAME_CHARS = st.characters(exclude_categories=("Cc", "Cs"))
_readings = st.one_of(
    st.builds(
        StateReading,
        st.just(SRC),
        st.integers(0, 300),
        st.integers(1, MAX_TS_MS),
        st.sampled_from([MachineState.WORKING]),
        st.just("EXECUTE"),
        st.text(max_size=10),
        st.none() | st.integers(0, 10**6),
    ),
    st.builds(
        CountsReading, st.just(SRC), st.integers(0, 300), st.integers(1, MAX_TS_MS), st.integers(10, 10**9), st.integers(0, 10)
    ),
    st.builds(
        ProcessReading,
        st.just(SRC),
        st.integers(0, 300),
        st.integers(1, MAX_TS_MS),
        st.lists(
            st.tuples(
                st.text(_NAME_CHARS, min_size=1, max_size=8),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(_NAME_CHARS, max_size=4),
            ),
            min_size=1,
            max_size=5,
        ).map(tuple),
    ),
    st.builds(BufferReading, st.just(SRC), st.just(0), st.integers(1, MAX_TS_MS), st.integers(0, 10**7)),
    st.builds(
        StoreReading,
        st.just(SRC),
        st.just(0),
        st.integers(1, MAX_TS_MS),
        st.integers(0, 10**7),
        st.integers(0, 99),
        st.booleans(),
    ),
    st.builds(InputReading, st.just(SRC), st.just(0), st.integers(1, MAX_TS_MS), st.integers(0, 10**9)),
)


@given(_readings)
def test_encode_then_decode_gives_back_the_reading(reading: object) -> None:
    assert isinstance(reading, StateReading | CountsReading | ProcessReading | BufferReading | StoreReading | InputReading)
    assert decode(reading.source, channel_of(reading), encode(reading)) == reading


def test_counters_turn_totals_into_increments_and_detect_resets() -> None:
    c = CumulativeCounters()
    assert c.update("m", 1, (100, 2)) == (0, 0)  # baseline: counted before we listened
    assert c.update("m", 2, (130, 3)) == (30, 1)
    assert c.update("m", 2, (130, 3)) == (0, 0)  # duplicate
    assert c.update("m", 2, (131, 3)) == (1, 0)  # a second count in the same millisecond
    assert c.update("m", 2, (130, 3)) == (0, 0)  # a smaller total at the same instant is not a reset
    assert c.update("m", 1, (115, 2)) == (0, 0)  # late: the newer total holds it
    assert c.update("m", 3, (12, 0)) == (12, 0)  # reset: the PLC restarted from zero
    assert c.resets == 1
    c.seed("n", 5, (40, 1))
    assert c.update("n", 6, (45, 1)) == (5, 0)  # seeded from the store: counts on


def test_engine_events_through_the_wire_reproduce_the_engines_kpis() -> None:
    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.1}, "scrap": 0.05, "buffer_after": 3,
         "failures": [{"name": "jam", "ttf": {"dist": "exponential", "mean": 5}, "ttr": {"dist": "exponential", "mean": 0.5}}]},
        {"id": "S", "kind": "delay", "capacity": 20, "dwell": 1.0, "buffer_after": 2},
        {"id": "B", "machines": 2, "cycle_time": {"dist": "exponential", "mean": 0.18}, "scrap": 0.02},
    )  # fmt: skip
    _engine, events = record(line, 200.0, seed=3)
    direct = KpiReducer(line, 20.0, 200.0)
    for ev in events:
        direct(ev)
    origin = 1_763_900_000_000
    enc = EventReadings("plant1", "test", "A", origin)
    topics = Topics("gigatwin", "plant1", "test")
    wire = [enc(ev) for ev in events]
    baseline = enc.counters("A", 1, 0.0) + enc.counters("B", 2, 0.0) + enc.counters("S", 1, 0.0)
    counters = CumulativeCounters()
    for r in baseline:
        list(reading_events(r, counters))
    via = KpiReducer(line, 20.0 + origin / 3_600_000, 200.0 + origin / 3_600_000, begin_h=origin / 3_600_000)
    for r in wire:
        if r is None:
            continue
        src, ch = topics.parse(topics.topic(r.source.station, channel_of(r)))
        for ev in reading_events(decode(src, ch, encode(r)), counters):
            via(ev)
    a, b = direct.result(), via.result()
    assert b.good == a.good
    assert b.scrapped == a.scrapped
    assert b.started == a.started
    for sid, st_a in a.stations.items():
        st_b = b.stations[sid]
        assert (st_b.good, st_b.scrapped) == (st_a.good, st_a.scrapped)
        for k, frac in st_a.state_fractions.items():
            # ms timestamps: each state change moves by at most 0.5 ms of a 180 h window
            assert st_b.state_fractions[k] == pytest.approx(frac, abs=1e-6)
    assert b.wip_mean == pytest.approx(a.wip_mean, rel=1e-6)


def test_a_state_change_and_a_count_become_twin_events() -> None:
    counters = CumulativeCounters()
    state = StateReading(SRC, 1, 7_200_000, MachineState.DOWN, "HELD", "web_break", None)
    assert list(reading_events(state, counters)) == [StateChanged(2.0, "COAT", 1, MachineState.DOWN, "web_break")]
    assert list(reading_events(CountsReading(SRC, 1, 3_600_000, 10, 1), counters)) == []
    assert list(reading_events(CountsReading(SRC, 1, 7_200_000, 14, 2), counters)) == [UnitsCompleted(2.0, "COAT", 1, 3, 1)]
