"""Line files on disk: YAML in, a validated ``twin.Line`` out; and a line file rewritten with calibrated values.

:func:`write_calibrated` writes a copy of a line file that differs from it only in the values a calibration fitted
(``twin.calibration``): the ``ttf`` and ``ttr`` of each failure mode whose fit is used, and the ``scrap`` of a
station whose scrap drifted. Everything else, comments and order included, is kept (ruamel.yaml's round trip), and
each changed value carries a comment with its interval and evidence, so that ``git diff`` shows what the plant
taught and how sure it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from twin.calibration import Calibration, DurationEstimate
from twin.durations import HOURS_PER_UNIT
from twin.errors import LineError
from twin.schema import Line, load_line_data

__all__ = ["read_line", "read_yaml", "write_calibrated"]


def read_yaml(path: str | Path, error: Callable[[str, list[tuple[str, str]]], Exception]) -> Any:
    """The parsed YAML file at ``path``; ``error(file, [(where, what)])`` is raised for a file that cannot be read
    (at ``(file)``) or is not YAML (at its line and column): line files and scenario files report alike."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(str(p), [("(file)", f"cannot read: {reason}")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        raise error(str(p), [(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")]) from exc


def read_line(path: str | Path) -> Line:
    """The line described by the YAML file at ``path``; :class:`~twin.errors.LineError` names the file and field."""
    return load_line_data(read_yaml(path, LineError), source=str(Path(path)))


def _sig(x: float) -> float:
    return float(f"{x:.4g}")  # four significant digits: the fits are not sure of more


def _flow(e: DurationEstimate, per_unit_h: float) -> str:
    """The fitted distribution as a YAML flow mapping in the file's time unit."""
    parts = []
    for key, value in e.dist.items():
        v = _sig(value / per_unit_h) if key in ("mean", "scale") else (_sig(value) if isinstance(value, float) else value)
        parts.append(f"{key}: {v:g}" if isinstance(v, float) else f"{key}: {v}")
    return "{" + ", ".join(parts) + "}"


def _note(e: DurationEstimate, per_unit_h: float, unit: str) -> str:
    lo, hi = (v / per_unit_h for v in e.ci95_h)
    design = "" if e.design_mean_h is None else f", design {e.design_mean_h / per_unit_h:.4g}"
    return f"mean {e.mean_h / per_unit_h:.4g} {unit} [95 % {lo:.4g}, {hi:.4g}] from {e.n_events} events{design}"


def _scalar_end(line: str, col: int, in_flow: bool) -> int:
    """Where a plain scalar starting at ``col`` ends: at a comment, the line's end, or (in a flow collection) a
    comma or closing bracket."""
    end = col
    while end < len(line) and line[end] not in "\r\n":
        ch = line[end]
        if in_flow and ch in ",}]":
            break
        if ch == "#" and end > 0 and line[end - 1] in " \t":
            break
        end += 1
    while end > col and line[end - 1] in " \t":
        end -= 1
    return end


def _bracket_end(lines: list[str], row: int, col: int) -> tuple[int, int]:
    """The position just after the bracket closing the one at ``(row, col)`` (quotes respected)."""
    depth, quote = 0, ""
    r, c = row, col
    while r < len(lines):
        line = lines[r]
        while c < len(line):
            ch = line[c]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return r, c + 1
            c += 1
        r, c = r + 1, 0
    raise ValueError(f"unclosed bracket from line {row + 1}")


def _value_span(lines: list[str], node: Any, key: str) -> tuple[int, int, int, int]:
    """The text span ``(row0, col0, row1, col1)`` of ``node[key]``'s value in the file."""
    key_row, key_col = node.lc.key(key)
    row, col = node.lc.value(key)
    if row > key_row:  # a block collection on the following lines: from after the colon to the block's end
        colon = lines[key_row].index(":", key_col) + 1
        end = row
        while end < len(lines):
            text = lines[end].strip()
            indent = len(lines[end]) - len(lines[end].lstrip())
            if text and not text.startswith("#") and indent <= key_col:
                break
            end += 1
        return key_row, colon, end - 1, len(lines[end - 1].rstrip("\r\n"))
    if lines[row][col] in "{[":
        r1, c1 = _bracket_end(lines, row, col)
        return row, col, r1, c1
    flow = bool(getattr(node, "fa", None) and node.fa.flow_style())
    return row, col, row, _scalar_end(lines[row], col, flow)


def write_calibrated(source: str | Path, calibration: Calibration, out: str | Path) -> list[str]:
    """Write ``source`` (a line file) to ``out`` with ``calibration``'s fitted values (module docstring); returns
    the changed fields, as ``stations[i].failures[j].ttf``. Only those values change, in place: every other byte
    of the file is kept (ruamel.yaml finds where each value lies). LineError if ``source`` cannot be read."""
    src = Path(source)
    try:
        text = src.read_text(encoding="utf-8")
    except OSError as exc:
        raise LineError(str(src), [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    doc: Any = YAML().load(text)  # round trip: each node knows its line and column
    lines = text.splitlines(keepends=True)
    unit = str(doc.get("time_unit", "s"))
    per = HOURS_PER_UNIT[unit]
    edits: list[tuple[int, int, int, int, str]] = []
    notes: list[tuple[int, str]] = []  # a comment line to insert before a row
    changed: list[str] = []
    for i, st in enumerate(doc.get("stations") or []):
        cal = calibration.stations.get(str(st.get("id")))
        if cal is None:
            continue
        modes: Any = st.get("failures") or []
        for j, mode in enumerate(modes):
            fitted = next((m for m in cal.failures if m.name == mode.get("name") and m.used == "fitted"), None)
            if fitted is None:
                continue
            said = []
            for key in ("ttf", "ttr"):
                e = getattr(fitted, key)
                if e is None or key not in mode:
                    continue
                span = _value_span(lines, mode, key)
                block = span[0] < mode.lc.value(key)[0]  # a block value: the flow mapping goes after the colon
                edits.append((*span, " " + _flow(e, per) if block else _flow(e, per)))
                said.append(f"{key} {_note(e, per, unit)}")
                changed.append(f"stations[{i}].failures[{j}].{key}")
            row, col = modes.lc.item(j)
            notes.append((row, " " * max(col - 2, 0) + f"# calibrated {fitted.name}: " + "; ".join(said) + "\n"))
        if cal.scrap.drift is not None and cal.scrap.rate is not None and cal.scrap.ci95 is not None and "scrap" in st:
            edits.append((*_value_span(lines, st, "scrap"), f"{_sig(cal.scrap.rate):g}"))
            lo, hi = cal.scrap.ci95
            row, col = st.lc.key("scrap")
            notes.append(
                (
                    row,
                    " " * col + f"# calibrated scrap: {cal.scrap.rate:.4g} [95 % {lo:.4g}, {hi:.4g}] "
                    f"of {cal.scrap.processed} processed, design {cal.scrap.design:g}\n",
                )
            )
            changed.append(f"stations[{i}].scrap")
    for r0, c0, r1, c1, replacement in sorted(edits, reverse=True):  # from the end: earlier positions stay valid
        head, tail = lines[r0][:c0], lines[r1][c1:]
        lines[r0 : r1 + 1] = [head + replacement + tail]
    result_lines = list(lines)
    for row, comment in sorted(notes, reverse=True):
        result_lines.insert(_shifted(row, edits), comment)
    result = "".join(result_lines)
    load_line_data(yaml.safe_load(result), source=str(out))  # what is written must be a valid line file
    Path(out).write_text(result, encoding="utf-8")
    return changed


def _shifted(row: int, edits: list[tuple[int, int, int, int, str]]) -> int:
    """Where ``row`` of the source lies after ``edits`` joined some multi-line values into one line."""
    return row - sum(r1 - r0 for r0, _, r1, _, _ in edits if r1 < row)
