"""The telemetry contract for lines as plants run them: SETUP and PLANNED_STOP with their reasons, a merge station's
short input, store faults by failure mode, per-input buffers. Version 1 payloads decode exactly as before; every
example of docs/telemetry.md decodes on its channel; the twin's new state events survive the wire unchanged."""

from __future__ import annotations

import json
import re

import pytest

from connectors.telemetry import (
    MS_PER_HOUR,
    BufferReading,
    Channel,
    CountsReading,
    EventReadings,
    InputReading,
    ProcessReading,
    Reading,
    Source,
    StateReading,
    StoreReading,
    decode,
    encode,
    reading_events,
)
from tests.conftest import REPO
from twin.counters import CumulativeCounters
from twin.events import BufferLevel, MachineState, StateChanged

TS = 1_763_900_000_000
W, ST, B, D, SU, P = (
    MachineState.WORKING,
    MachineState.STARVED,
    MachineState.BLOCKED,
    MachineState.DOWN,
    MachineState.SETUP,
    MachineState.PLANNED_STOP,
)


def _src(station: str) -> Source:
    return Source("plant1", "line1", station)


# Version 1 payloads (as gateways send them today) and the readings they decode to: nothing here may change.
V1: list[tuple[str, Channel, str, Reading]] = [
    (
        "COAT_C",
        Channel.STATE,
        '{"v": 1, "ts": 1763900000000, "machine": 3, "state": "HELD", "reason": "web_break", "code": 1042}',
        StateReading(_src("COAT_C"), 3, TS, D, "HELD", "web_break", 1042),
    ),
    (
        "COAT_C",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"execute"}',
        StateReading(_src("COAT_C"), 0, TS, W, "EXECUTE", "", None),
    ),
    (
        "STACK",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"IDLE"}',
        StateReading(_src("STACK"), 0, TS, ST, "IDLE", "", None),
    ),
    (
        "STACK",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"SUSPENDED","reason":"downstream full"}',
        StateReading(_src("STACK"), 0, TS, B, "SUSPENDED", "downstream full", None),
    ),
    (
        "STACK",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"SUSPENDED","reason":"no trays"}',
        StateReading(_src("STACK"), 0, TS, ST, "SUSPENDED", "no trays", None),
    ),
    (
        "WELD",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"Stopping"}',
        StateReading(_src("WELD"), 0, TS, P, "STOPPING", "", None),
    ),
    (
        "WELD",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"STARTING"}',
        StateReading(_src("WELD"), 0, TS, SU, "STARTING", "", None),
    ),
    (
        "WELD",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"COMPLETE"}',
        StateReading(_src("WELD"), 0, TS, SU, "COMPLETE", "", None),
    ),
    # the new meanings ride on the same fields
    (
        "NOTCH_C",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"machine":2,"state":"SETUP","reason":"format_change"}',
        StateReading(_src("NOTCH_C"), 2, TS, SU, "SETUP", "format_change", None),
    ),
    (
        "MIX_C",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"STOPPED","reason":"off_shift"}',
        StateReading(_src("MIX_C"), 0, TS, P, "STOPPED", "off_shift", None),
    ),
    (
        "MIX_C",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"state":"PLANNED_STOP","reason":"weekly_pm"}',
        StateReading(_src("MIX_C"), 0, TS, P, "PLANNED_STOP", "weekly_pm", None),
    ),
    (
        "STACK",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"machine":5,"state":"STARVED","reason":"NOTCH_C"}',
        StateReading(_src("STACK"), 5, TS, ST, "STARVED", "NOTCH_C", None),
    ),
    (
        "AGE",
        Channel.STATE,
        '{"v":1,"ts":1763900000000,"machine":1,"state":"HELD","reason":"channel_losses"}',
        StateReading(_src("AGE"), 1, TS, D, "HELD", "channel_losses", None),
    ),
    (
        "COUNT",
        Channel.COUNTS,
        '{"v":1,"ts":1763900000000,"machine":0,"ProdProcessedCount":12840,"ProdDefectiveCount":193}',
        CountsReading(_src("COUNT"), 0, TS, 12840, 193),
    ),
    (
        "COAT_C",
        Channel.PROCESS,
        '{"v":1,"ts":1763900000000,"values":[{"name":"line_speed_m_min","value":60.2,"unit":"m/min"},{"name":"n","value":3}]}',
        ProcessReading(_src("COAT_C"), 0, TS, (("line_speed_m_min", 60.2, "m/min"), ("n", 3.0, ""))),
    ),
    ("NOTCH_A", Channel.BUFFER, '{"v":1,"ts":1763900000000,"level":1250}', BufferReading(_src("NOTCH_A"), 0, TS, 1250)),
    (
        "WET",
        Channel.STORE,
        '{"v":1,"ts":1763900000000,"dwelling":96000,"held":256,"intake_blocked":false}',
        StoreReading(_src("WET"), 0, TS, 96000, 256, False),
    ),
    (
        "MIX_C",
        Channel.INPUT,
        '{"v":1,"ts":1763900000000,"ProdConsumedCount":5000,"gw":"x"}',
        InputReading(_src("MIX_C"), 0, TS, 5000),
    ),
]


@pytest.mark.parametrize(
    ("station", "channel", "payload", "expected"), V1, ids=[f"{c.value}-{i}" for i, (_, c, _, _) in enumerate(V1)]
)
def test_version_1_payloads_decode_exactly_as_before(station: str, channel: Channel, payload: str, expected: Reading) -> None:
    assert decode(_src(station), channel, payload.encode()) == expected


def test_the_new_state_reasons_become_the_twins_events_with_their_reasons() -> None:
    counters = CumulativeCounters()
    events = [ev for _, _, _, r in V1 if isinstance(r, StateReading) for ev in reading_events(r, counters)]
    t = TS / MS_PER_HOUR
    assert StateChanged(t, "NOTCH_C", 2, SU, "format_change") in events
    assert StateChanged(t, "MIX_C", 0, P, "off_shift") in events
    assert StateChanged(t, "MIX_C", 0, P, "weekly_pm") in events
    assert StateChanged(t, "STACK", 5, ST, "NOTCH_C") in events
    assert StateChanged(t, "AGE", 1, D, "channel_losses") in events


def _doc_examples() -> list[tuple[Channel, str]]:
    """Every JSON example of docs/telemetry.md's payload sections, with the channel of its section."""
    text = (REPO / "docs" / "telemetry.md").read_text()
    payloads = text.split("\n## Payloads", 1)[1].split("\n## ", 1)[0]
    out = []
    for section in re.split(r"\n### ", payloads)[1:]:
        channel = Channel(re.match(r"`(\w+)`", section).group(1))  # type: ignore[union-attr]
        out += [(channel, block) for block in re.findall(r"```json\n(.*?)\n```", section, re.DOTALL)]
    return out


def test_every_example_of_the_contract_decodes_on_its_channel() -> None:
    examples = _doc_examples()
    assert {c for c, _ in examples} == set(Channel)
    states = [decode(_src("X"), c, text) for c, text in examples if c is Channel.STATE]
    for channel, text in examples:
        reading = decode(_src("X"), channel, text)
        # what the example says is what it decodes to: each field of the JSON is in the reading
        obj = json.loads(text)
        assert reading.ts_ms == obj["ts"]
        assert reading.machine == obj.get("machine", 0)
    # the contract shows a changeover, a planned stop, a merge station's short input and a store fault
    assert {(r.state, r.reason) for r in states if isinstance(r, StateReading)} >= {
        (SU, "format_change"),
        (P, "off_shift"),
        (ST, "NOTCH_C"),
        (D, "channel_losses"),
    }


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (StateChanged(0.5, "NOTCH_C", 2, SU, "format_change"), {"machine": 2, "state": "SETUP", "reason": "format_change"}),
        (StateChanged(0.5, "MIX_C", 0, P, "off_shift"), {"state": "STOPPED", "reason": "off_shift"}),
        (StateChanged(0.5, "MIX_C", 0, P, "break"), {"state": "STOPPED", "reason": "break"}),
        (StateChanged(0.5, "MIX_C", 0, P, "holiday"), {"state": "STOPPED", "reason": "holiday"}),
        (StateChanged(0.5, "MIX_C", 3, P, "weekly_pm"), {"machine": 3, "state": "STOPPED", "reason": "weekly_pm"}),
        (StateChanged(0.5, "STACK", 7, ST, "NOTCH_A"), {"machine": 7, "state": "STARVED", "reason": "NOTCH_A"}),
        (StateChanged(0.5, "FORM", 1, D, "channel_losses"), {"machine": 1, "state": "HELD", "reason": "channel_losses"}),
        (StateChanged(0.5, "FORM", 1, W, ""), {"machine": 1, "state": "EXECUTE"}),
        (BufferLevel(0.5, "NOTCH_A", 40), {"level": 40}),
    ],
)
def test_the_twins_events_go_out_as_the_contract_says_and_come_back_unchanged(
    event: StateChanged | BufferLevel, payload: dict[str, object]
) -> None:
    origin = TS - 7 * MS_PER_HOUR
    out = EventReadings("plant1", "line1", "MIX_C", origin)
    reading = out(event)
    assert reading is not None
    body = encode(reading)
    assert json.loads(body) == {"v": 1, "ts": TS - round(6.5 * MS_PER_HOUR), **payload}
    channel = Channel.STATE if isinstance(event, StateChanged) else Channel.BUFFER
    back = decode(_src(event.station), channel, body)
    assert back == reading
    (again,) = reading_events(back, CumulativeCounters())
    assert again == event._replace(t=(origin + round(0.5 * MS_PER_HOUR)) / MS_PER_HOUR)
