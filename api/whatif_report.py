"""A what-if's report: one self-contained HTML page (inline CSS and SVG, no script, no external address), so it
opens from a file, is mailed as an attachment and prints.

Per scenario: the per-replication good output of the baseline and of the scenario (each replication a dot, the pair
joined by a line, quartiles as a box), the per-replication differences as a histogram with their mean and paired
95 % interval, and a table of every difference with its paired (dark) and unpaired (light) interval drawn against
zero. The header records what reproduces the result: the line file and its config hash, each scenario's file and
hash, the seed and how replications derive theirs, the parameters, the start, hours and warm-up.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.kpis import RunKpis
from twin.schema import Line
from twin.whatif import BASELINE, Delta, WhatIfResult

__all__ = ["LINE_FIGURES", "STATION_FIGURES", "ReportContext", "decimals", "number", "render_report", "station_value", "verdict"]

_BASE_COLOUR = "#64748b"
_SCEN_COLOUR = "#0f766e"
_SIG_COLOUR = "#b45309"

LINE_FIGURES: tuple[tuple[str, str, str, float], ...] = (
    # (key in the delta, label, unit of the difference, factor from the JSON's value to that unit)
    ("throughput_per_hour", "good output", "good units/h", 1.0),
    ("good", "good units shipped", "good units", 1.0),
    ("scrap_rate", "scrap rate", "points", 100.0),
    ("wip_mean", "WIP", "units", 1.0),
    ("lead_time_mean_h", "lead time", "h", 1.0),
)
"""The line figures a what-if compares, in the order shown (scrap rate in percentage points)."""

STATION_FIGURES: tuple[tuple[str, str, str, float], ...] = (
    ("throughput_per_hour", "output", "units/h", 1.0),
    ("down_h", "down", "machine-h", 1.0),
    ("availability", "availability", "points", 100.0),
    ("oee", "OEE", "points", 100.0),
)
"""Each station's figures a what-if compares (down in machine-hours; availability and OEE in percentage points)."""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1e293b;max-width:1100px;margin:2em auto;
padding:0 1em;background:#fff}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:2.2em;border-bottom:2px solid #e2e8f0;padding-bottom:.2em}
h3{font-size:1.02em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.22em .7em;text-align:left;vertical-align:middle}
th{font-weight:600;color:#475569;border-bottom:1px solid #cbd5e1}tr:nth-child(even) td{background:#f8fafc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sig{color:#b45309;font-weight:600}.muted{color:#64748b}.meta td:first-child{color:#475569;white-space:nowrap}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f5f9;border-radius:3px}
code{padding:.05em .3em}pre{padding:.6em .8em;overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}figcaption{color:#475569;font-size:.9em;max-width:520px}
svg text{font:11px system-ui,sans-serif;fill:#334155}
details summary{cursor:pointer;color:#334155;margin:.6em 0}
@media print{h2{break-before:page}}
"""


@dataclass(frozen=True)
class ReportContext:
    """What the report says besides the result: where its inputs came from and how it was run."""

    line_file: str
    files: dict[str, str]
    """Each scenario's file, by scenario name."""
    start_text: str
    """Where the runs started, in words (steady state after a warm-up, or the plant's state as of a time)."""
    as_of: str | None
    """The plant's instant a what-if from a store started at (None: steady state)."""
    command: str
    compute_s: float


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def decimals(ci: float, value: float) -> int:
    """Decimals to show a figure with: two significant digits of its interval, or three of the value when it has
    none (an exact difference)."""
    if math.isfinite(ci) and ci > 1e-9 * max(abs(value), 1.0):  # below: rounding noise of an exact difference
        return max(0, min(4, 1 - math.floor(math.log10(ci))))
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, min(4, 2 - math.floor(math.log10(abs(value)))))


def number(value: float | None, places: int, sign: bool = False) -> str:
    """``value`` with thousands separators and ``places`` decimals (``+`` for a difference; ``—`` when unknown)."""
    if value is None or math.isnan(value):
        return "—"
    text = f"{value:{'+' if sign else ''},.{places}f}"
    return "+0" if sign and text.lstrip("+-").strip("0.,") == "" else text


def verdict(mean: float, ci95: float) -> str:
    """A difference in plain words: ``significant`` (its paired 95 % interval excludes zero), ``not significant``,
    ``no difference`` (zero in every replication) or ``not measured``."""
    if math.isnan(mean) or math.isnan(ci95):
        return "not measured"
    if mean == 0 and ci95 == 0:
        return "no difference"
    return "significant" if abs(mean) > ci95 else "not significant"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _range(values: Sequence[float], include_zero: bool = False) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if include_zero:
        finite.append(0.0)
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo <= 0:
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def _tick_label(t: float, ticks: Sequence[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(t) or 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{t:,.{decimals}f}"


def _distribution_svg(baseline: Sequence[float], scenario: Sequence[float], unit: str, name: str) -> str:
    """Per-replication values of the baseline and the scenario on one axis: a dot per replication, pairs joined,
    quartile boxes with the median, the mean as a diamond."""
    width, height, left, right = 520, 190, 92, 20
    rows = {BASELINE: 62.0, name: 132.0}
    lo, hi = _range([*baseline, *scenario])

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    ticks = _nice_ticks(lo, hi)
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="28" y2="160" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{x(t):.1f}" y="176" text-anchor="middle">{_e(_tick_label(t, ticks))}</text>')
    parts.append(f'<text x="{left}" y="16">{_e(unit)} per replication</text>')
    for b, s in zip(baseline, scenario, strict=True):
        if math.isfinite(b) and math.isfinite(s):
            parts.append(
                f'<line x1="{x(b):.1f}" y1="{rows[BASELINE]:.0f}" x2="{x(s):.1f}" y2="{rows[name]:.0f}" '
                'stroke="#94a3b8" stroke-opacity="0.35"/>'
            )
    for label, values, colour in ((BASELINE, baseline, _BASE_COLOUR), (name, scenario, _SCEN_COLOUR)):
        y = rows[label]
        finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
        short = label if len(label) <= 13 else label[:12] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + 4:.0f}" text-anchor="end"><title>{_e(label)}</title>{_e(short)}</text>')
        if finite.size:
            q1, med, q3 = (float(v) for v in np.percentile(finite, [25, 50, 75]))
            parts.append(
                f'<rect x="{x(q1):.1f}" y="{y - 14:.0f}" width="{max(x(q3) - x(q1), 1):.1f}" height="28" fill="{colour}" '
                'fill-opacity="0.12" stroke="' + colour + '"/>'
            )
            parts.append(
                f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="{y - 14:.0f}" y2="{y + 14:.0f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
            mean = float(finite.mean())
            parts.append(
                f'<path d="M{x(mean):.1f} {y - 20:.0f} l5 5 l-5 5 l-5 -5 z" fill="{colour}">'
                f"<title>mean {mean:,.2f}</title></path>"
            )
        for i, v in enumerate(values):
            if math.isfinite(v):
                jitter = ((i * 7919) % 17 - 8) * 0.9
                parts.append(f'<circle cx="{x(v):.1f}" cy="{y + jitter:.1f}" r="2.6" fill="{colour}" fill-opacity="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)


def _differences_svg(diffs: Sequence[float], delta: Delta, unit: str) -> str:
    """A histogram of the per-replication differences, zero marked, the mean with its paired 95 % interval as a band
    above and the unpaired one lighter."""
    width, height, left, right, top, bottom = 520, 190, 40, 20, 36, 160
    finite = [d for d in diffs if math.isfinite(d)]
    ci, ciu = delta.ci95, delta.ci95_unpaired
    extent = list(finite)
    if math.isfinite(delta.mean):
        extent += [delta.mean - (ciu if math.isfinite(ciu) else 0), delta.mean + (ciu if math.isfinite(ciu) else 0)]
    lo, hi = _range(extent, include_zero=True)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    parts.append(f'<text x="{left}" y="14">scenario − baseline, {_e(unit)}, per replication</text>')
    ticks = _nice_ticks(lo, hi)
    for t in ticks:
        parts.append(f'<text x="{x(t):.1f}" y="{bottom + 16}" text-anchor="middle">{_e(_tick_label(t, ticks))}</text>')
    if finite:
        bins = max(1, min(30, int(math.sqrt(len(finite))) + 1))
        if max(finite) == min(finite):
            counts, edges = np.array([len(finite)]), np.array([finite[0] - (hi - lo) / 80, finite[0] + (hi - lo) / 80])
        else:
            counts, edges = np.histogram(finite, bins=bins)
        tallest = max(int(counts.max()), 1)
        for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
            h = (bottom - top - 22) * int(c) / tallest
            parts.append(
                f'<rect x="{x(float(a)):.1f}" y="{bottom - h:.1f}" width="{max(x(float(b)) - x(float(a)) - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{_SCEN_COLOUR}" fill-opacity="0.55"><title>{int(c)} replications</title></rect>'
            )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{bottom}" y2="{bottom}" stroke="#94a3b8"/>')
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 8}" y2="{bottom}" stroke="#1e293b" stroke-dasharray="3 3"/>')
    if math.isfinite(delta.mean):
        y = top - 2
        if math.isfinite(ciu):
            parts.append(
                f'<line x1="{x(delta.mean - ciu):.1f}" x2="{x(delta.mean + ciu):.1f}" y1="{y}" y2="{y}" stroke="{_BASE_COLOUR}" '
                'stroke-opacity="0.45" stroke-width="8"><title>unpaired 95 % interval</title></line>'
            )
        if math.isfinite(ci):
            parts.append(
                f'<line x1="{x(delta.mean - ci):.1f}" x2="{x(delta.mean + ci):.1f}" y1="{y}" y2="{y}" stroke="{_SIG_COLOUR}" '
                'stroke-width="4"><title>paired 95 % interval</title></line>'
            )
        parts.append(
            f'<circle cx="{x(delta.mean):.1f}" cy="{y}" r="4" fill="#1e293b"><title>mean {delta.mean:,.3f}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _interval_svg(d: Delta, factor: float) -> str:
    """A small bar: zero, the unpaired interval (light) and the paired one (dark) around the mean."""
    width, height = 180, 18
    mean, ci, ciu = d.mean * factor, d.ci95 * factor, d.ci95_unpaired * factor
    if not math.isfinite(mean):
        return ""
    reach = max(abs(mean) + (ciu if math.isfinite(ciu) else 0), abs(mean) + (ci if math.isfinite(ci) else 0))
    reach = reach * 1.1 or 1.0

    def x(v: float) -> float:
        return width / 2 + v / reach * (width / 2 - 4)

    colour = _SIG_COLOUR if abs(mean) > ci else _BASE_COLOUR
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<line x1="{width / 2}" x2="{width / 2}" y1="1" y2="{height - 1}" stroke="#1e293b" stroke-dasharray="2 2"/>')
    if math.isfinite(ciu):
        parts.append(
            f'<line x1="{x(mean - ciu):.1f}" x2="{x(mean + ciu):.1f}" y1="9" y2="9" stroke="#94a3b8" '
            'stroke-opacity="0.5" stroke-width="8"/>'
        )
    if math.isfinite(ci):
        parts.append(f'<line x1="{x(mean - ci):.1f}" x2="{x(mean + ci):.1f}" y1="9" y2="9" stroke="{colour}" stroke-width="3"/>')
    parts.append(f'<circle cx="{x(mean):.1f}" cy="9" r="3" fill="{colour}"/></svg>')
    return "".join(parts)


def _delta_row(label: str, d: Delta, unit: str, factor: float, baseline: float | None) -> str:
    mean, ci, ciu = d.mean * factor, d.ci95 * factor, d.ci95_unpaired * factor
    dec = decimals(ci, mean if (math.isfinite(mean) and mean != 0) or baseline is None else baseline * factor)
    said = verdict(mean, ci)
    cls = ' class="sig"' if said == "significant" else ""
    gain = f"{ciu / ci:.1f}×" if math.isfinite(ci) and ci > 0 and math.isfinite(ciu) else "—"
    base = "" if baseline is None else number(baseline * factor, dec)
    return (
        f"<tr><td>{_e(label)}</td><td class=num>{_e(base)}</td>"
        f"<td class=num>{_e(number(mean, dec, sign=True))} ± {_e(number(ci, dec))} {_e(unit)}</td>"
        f"<td class=num>± {_e(number(ciu, dec))}</td><td class=num>{_e(gain)}</td><td>{_interval_svg(d, factor)}</td>"
        f"<td{cls}>{_e(said)}</td></tr>"
    )


_HEAD = (
    "<tr><th>figure</th><th>baseline</th><th>difference (paired 95 %)</th><th>unpaired 95 %</th>"
    "<th>pairing's gain</th><th>interval</th><th>verdict</th></tr>"
)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _scenario_section(result: WhatIfResult, name: str, context: ReportContext) -> str:
    scenario = result.scenarios[name]
    deltas = result.deltas[name]
    base_runs, runs = result.runs[BASELINE], result.runs[name]
    base_tp = [r.throughput_per_hour for r in base_runs]
    tp = [r.throughput_per_hour for r in runs]
    diffs = [s - b for s, b in zip(tp, base_tp, strict=True)]
    changes = json.dumps([c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in scenario.changes], indent=1)
    out = [
        f'<section id="scenario-{_e(name)}"><h2>Scenario <code>{_e(name)}</code></h2>',
        f"<p>{_e(scenario.description)}</p>" if scenario.description else "",
        '<table class="meta">',
        f"<tr><td>file</td><td><code>{_e(context.files.get(name, ''))}</code></td></tr>",
        f"<tr><td>scenario hash</td><td><code>{_e(scenario.scenario_hash())}</code></td></tr>",
        f"<tr><td>its line's config hash</td><td><code>{_e(result.lines[name].config_hash())}</code></td></tr>",
        "</table>",
        f"<details><summary>changes ({len(scenario.changes)})</summary><pre>{_e(changes)}</pre></details>",
        '<div class="charts">',
        "<figure>"
        + _distribution_svg(base_tp, tp, "good units/h", name)
        + "<figcaption>Good output per replication: each dot one replication, the line joining it to the same "
        "replication of the other variant (same seed"
        + (", same starting state" if result.start == "snapshot" else "")
        + "); boxes span the quartiles, the bar is the median, the diamond the mean.</figcaption></figure>",
        "<figure>"
        + _differences_svg(diffs, deltas["throughput_per_hour"], "good units/h")
        + "<figcaption>The per-replication differences in good output, with their mean, its paired 95 % interval "
        "(dark) and the interval the same runs would give unpaired (light); the dashed line is zero.</figcaption></figure>",
        "</div>",
        "<h3>Line figures</h3>",
        f"<table>{_HEAD}",
    ]
    for key, label, unit, factor in LINE_FIGURES:
        values = [_line_value(r, key) for r in base_runs]
        out.append(_delta_row(label, deltas[key], unit, factor, _mean(values)))
    out.append("</table>")
    significant: list[str] = []
    others: list[str] = []
    for spec in result.line.stations:
        rows = []
        any_sig = False
        for key, label, unit, factor in STATION_FIGURES:
            d = deltas[f"{spec.id}.{key}"]
            any_sig = any_sig or verdict(d.mean * factor, d.ci95 * factor) == "significant"
            base = _mean([station_value(r, result.line, spec.id, key) for r in base_runs])
            rows.append(_delta_row(f"{spec.id} {label}", d, unit, factor, base))
        (significant if any_sig else others).extend(rows)
    out.append("<h3>Stations whose differences are significant</h3>")
    out.append(f"<table>{_HEAD}{''.join(significant)}</table>" if significant else "<p class=muted>none</p>")
    if others:
        out.append(f"<details><summary>the other stations</summary><table>{_HEAD}{''.join(others)}</table></details>")
    n = len(base_runs)
    out.append(
        f"<p>Bottleneck votes (replications in which each station was the bottleneck): baseline "
        f"{_e(_votes(result.bottleneck_votes(BASELINE), n))}; scenario {_e(_votes(result.bottleneck_votes(name), n))}.</p>"
    )
    out.append("</section>")
    return "".join(out)


def _line_value(r: RunKpis, key: str) -> float:
    return float(getattr(r, key))


def station_value(r: RunKpis, line: Line, sid: str, key: str) -> float:
    """One station's figure of one run, as the what-if compares it (``down_h`` in machine-hours)."""
    st = r.stations[sid]
    if key == "down_h":
        spec = line.station(sid)
        units = spec.machines if spec.kind == "process" else 1
        return st.state_fractions.get("down", 0.0) * units * (r.end_h - r.start_h)
    return float(getattr(st, key))


def _votes(votes: dict[str, int], n: int) -> str:
    return ", ".join(f"{sid} {k}/{n}" for sid, k in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])))


def render_report(result: WhatIfResult, context: ReportContext) -> str:
    """The what-if as one self-contained HTML page (module docstring)."""
    n = len(result.runs[BASELINE])
    base_tp = [r.throughput_per_hour for r in result.runs[BASELINE]]
    finite = [v for v in base_tp if math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else math.nan
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    start = "steady state" if result.start == "steady_state" else f"the plant's state as of {context.as_of}"
    meta = [
        ("line", f"{result.line.name} — <code>{_e(context.line_file)}</code>"),
        ("line config hash", f"<code>{_e(result.line.config_hash())}</code>"),
        ("parameters", _e(result.parameters)),
        ("start", f"<code>{_e(result.start)}</code>: {_e(context.start_text)}"),
        ("measured hours", f"{result.hours:g} h"),
        (
            "warm-up",
            f"{result.warmup:g} h" + (" (none: the runs start from the plant's state)" if result.start == "snapshot" else ""),
        ),
        ("replications", f"{n} paired: replication i of every variant runs with seed ({result.seed}, i)"),
        ("seed", str(result.seed)),
        ("scenarios", ", ".join(f"<code>{_e(k)}</code> {_e(v.scenario_hash())}" for k, v in result.scenarios.items())),
        ("command", f"<code>{_e(context.command)}</code>"),
        ("computed", f"{made}, in {context.compute_s:.1f} s"),
    ]
    index = "".join(f'<li><a href="#scenario-{_e(k)}">{_e(k)}</a></li>' for k in result.scenarios)
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>What-if: {_e(result.line.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>What-if of <code>{_e(result.line.name)}</code></h1>",
        f"<p>{len(result.scenarios)} scenario(s) against the line as it is, from {_e(start)}; {n} paired replications "
        f"of {result.hours:g} h. Baseline good output {number(mean, 1)} good units/h. Differences are scenario − baseline, "
        "taken replication by replication, with Student-t 95 % intervals: <b>significant</b> when the paired interval "
        "excludes zero. The pairing's gain is the unpaired interval's width over the paired one's.</p>",
        '<table class="meta">' + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in meta) + "</table>",
        f"<ul>{index}</ul>",
        *(_scenario_section(result, name, context) for name in result.scenarios),
        "<p class=muted>GigaTwin what-if report: this page holds all its data and needs no server.</p>",
        "</body></html>",
    ]
    return "\n".join(body)
