// GigaTwin live dashboard: a plain ES module (strict by definition), no build step, no framework, no external
// requests. It loads the line's description and status from the API, then follows the line over Server-Sent
// Events (`state` recolours stations, `kpi` updates the KPIs, buffers and throughput chart, `resync` refetches
// the status). The flow is drawn as the line's tree: branches side by side merging into the trunk. The calendar
// badge says whether the line is in a shift, a break, off shift or a planned stop, and is asked again when the line's
// clock passes the current stretch's end. Charts use the vendored uPlot (static/vendor). Text from the API only ever
// goes into the page as text nodes (textContent), never as markup.

import { API, HttpError, getKey, setupKeyDialog as setupKeys } from "./apikey.js";

const uPlot = globalThis.uPlot;

const STATES = ["WORKING", "STARVED", "BLOCKED", "DOWN", "SETUP", "PLANNED_STOP", "UNKNOWN"];
const LABEL = {
  WORKING: "Working",
  STARVED: "Starved",
  BLOCKED: "Blocked",
  DOWN: "Down",
  SETUP: "Setup",
  PLANNED_STOP: "Planned stop",
  UNKNOWN: "Unknown",
};
const SHORT = { WORKING: "W", STARVED: "S", BLOCKED: "B", DOWN: "D", SETUP: "Su", PLANNED_STOP: "P", UNKNOWN: "?" };
const COLOR_VAR = {
  WORKING: "--working",
  STARVED: "--starved",
  BLOCKED: "--blocked",
  DOWN: "--down",
  SETUP: "--setup",
  PLANNED_STOP: "--planned",
  UNKNOWN: "--unknown",
};
const THROUGHPUT_HOURS = 8;
const THROUGHPUT_EVERY_S = 300;
const THROUGHPUT_REFRESH_MS = 60_000; // corrects the live extension, which spreads output evenly between kpi messages
const DOWNTIME_REFRESH_MS = 30_000;
const LOSS_ROWS = 8; // causes listed in "Why are we losing output?"
const STALE_MS = 15_000; // kpi messages come every few seconds: a silent stream this long is reopened
const RECONNECT_MS = 3_000;
const BOTTLENECK_MIN_PERIODS = 100; // fewer active periods than this: the bottleneck is not named (README)
const REJECT_WINDOW_MS = 30_000; // the badge says "rejecting" when, over this long,
const REJECT_SHARE = 0.5; // more than this share of the messages received
const REJECT_MIN_MESSAGES = 20; // (at least this many) became dead letters
// The windowed panels (throughput, losses, stop reasons) reload on the wall-clock periods above, and sooner when the
// line's clock has moved this far since their last load (a plant replayed at x600 moves 5 h in 30 s), or a shift
// began; never more often than every RELOAD_MIN_MS.
const RELOAD_LINE_MS = 10 * 60_000;
const RELOAD_MIN_MS = 3_000;
const ACCURACY_DAYS = 7; // the look-back of the forecasts' accuracy
const FORECAST_REFRESH_MS = 30_000; // the service refreshes its default forecast every forecast_period_s (60 s)
const RISK_ROWS = 6;
const TIME_AXIS_END_PAD = 24; // px right of a time axis: room for half an "HH:MM" label at its very end
const PARETO_TOP = 8;
const RECENT_STOPS = 8;
const DEAD_LETTERS_SHOWN = 5;

const $ = (id) => document.getElementById(id);
const nfInt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const nfAuto = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** Everything the page knows; `generation` changes on every (re)start so late answers of an old start are ignored. */
const S = {
  generation: 0,
  lineId: "",
  line: null,
  stations: new Map(), // id -> refs to the station's elements and its last known values
  oeeRows: new Map(), // id -> refs to the station's row in the OEE table
  clock: NaN, // the line's clock, ms since the epoch
  es: null,
  lastMessage: 0,
  hellos: 0,
  staleAfterMs: 120_000, // the service's stale_after_s, from the status
  ingestSeen: [], // {t, received, rejected} of the recent kpi messages
  stateMessages: 0,
  changes: 0,
  kpis: 0,
  timers: [],
  reconnect: 0,
  tp: { every: THROUGHPUT_EVERY_S, start: [], good: [], last: null },
  pareto: { labels: [], hours: [], cum: [], colors: [] },
  charts: { tp: null, pareto: null, fc: null },
  panelsLoaded: null, // {clock, shift, wall} when the windowed panels were last reloaded for the line's progress
  calendar: null, // where the line's calendar stands (the API's CalendarNowOut)
  calendarUntil: NaN, // ms: the end of the current stretch or shift, when the calendar is asked again
  calendarLoading: false,
  calendarAsked: -Infinity, // performance.now() of the last ask
};

// -- small helpers -----------------------------------------------------------------------------------------------

/** An element with attributes (`text` sets its text) and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

function setText(target, value) {
  const node = typeof target === "string" ? $(target) : target;
  const text = String(value);
  if (node && node.textContent !== text) node.textContent = text;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const clamp01 = (v) => (isNum(v) ? Math.min(1, Math.max(0, v)) : 0);
const int = (v) => (isNum(v) ? nfInt.format(v) : "—");
const pct = (v) => (isNum(v) ? `${nf1.format(v * 100)} %` : "—");
// Performance above 100 % happens only when machines ran faster than the ideal cycle of the line file: say so, where
// it shows (a hair above 1 reads 100.0 %, and "100.0 % (faster than ideal)" would contradict itself).
const perf = (v) => (isNum(v) && v >= 1.0005 ? `${pct(v)} (faster than ideal)` : pct(v));

/** ISO 8601 to ms since the epoch (the API gives microseconds; Date wants at most milliseconds). */
function parseTime(iso) {
  if (typeof iso !== "string" || !iso) return NaN;
  return Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));
}

function utc(ms) {
  if (!isNum(ms)) return "—";
  const s = new Date(ms).toISOString();
  return `${s.slice(0, 10)} ${s.slice(11, 19)} UTC`;
}

function hm(ms) {
  return isNum(ms) ? new Date(ms).toISOString().slice(11, 16) : "—";
}

function duration(ms) {
  if (!isNum(ms) || ms < 0) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.round(h / 24)} d`;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const stateOf = (s) => (STATES.includes(s) ? s : "UNKNOWN");
const stateColor = (s) => cssVar(COLOR_VAR[stateOf(s)]);

function setBar(bar, fraction, label) {
  const fill = bar.querySelector(".fill");
  fill.style.width = `${(clamp01(fraction) * 100).toFixed(1)}%`;
  if (bar.getAttribute("role") === "meter") {
    bar.setAttribute("aria-valuenow", String(Math.round(clamp01(fraction) * 100)));
    if (label) bar.setAttribute("aria-valuetext", label);
  }
}

function banner(message, kind = "error") {
  const node = $("banner");
  if (!message) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  node.dataset.kind = kind;
  node.textContent = message;
  node.hidden = false;
}

function later(fn, ms) {
  S.timers.push(setTimeout(fn, ms));
}

function every(fn, ms) {
  S.timers.push(setInterval(fn, ms));
}

// -- the API -----------------------------------------------------------------------------------------------------

const linePath = (rest = "") => `lines/${encodeURIComponent(S.lineId)}${rest}`;

/** GET a JSON resource under /api/v1 with the stored key; throws HttpError on any failure. */
async function api(path, params = {}) {
  const url = new URL(path, API);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, String(value));
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });
  } catch {
    throw new HttpError(0, "the service cannot be reached");
  }
  if (!response.ok) {
    let message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (typeof body?.error?.message === "string") message = body.error.message;
    } catch {
      // not JSON: keep the status text
    }
    throw new HttpError(response.status, message);
  }
  return response.json();
}

/** Report a failed request in `statusId` (or the banner); a 401 asks for a key; anything else is a bug: logged. */
function failed(error, statusId, what) {
  if (!(error instanceof HttpError)) {
    console.error(error);
    if (statusId) setText(statusId, `${what}: unexpected error (see the browser console)`);
    return;
  }
  if (error.status === 401) {
    askKey(getKey() ? "The stored API key was not accepted. Enter a valid key." : "This service asks for an API key.");
    return;
  }
  const message = error.status === 403 ? `${what}: the API key lacks the viewer role` : `${what}: ${error.message}`;
  if (statusId) setText(statusId, message);
  else banner(message);
}

// -- the line's flow of stations -----------------------------------------------------------------------------------

function meterRow(label, aria) {
  const fill = el("span", { class: "fill" });
  const bar = el("span", { class: "bar", role: "meter", "aria-label": aria, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, fill);
  const val = el("span", { class: "val", text: "—" });
  const row = el("div", { class: "meter-row" }, el("span", { class: "lbl", text: label }), bar, val);
  return { row, bar, val };
}

/** Mark the stations that end a row of their chain: their arrow would point off the panel, not at the next station. */
function markRowEnds() {
  for (const chain of $("flow").querySelectorAll(".chain")) {
    const cards = [...chain.children];
    cards.forEach((card, i) => {
      const next = cards[i + 1];
      card.toggleAttribute("data-row-end", !next || next.offsetTop > card.offsetTop);
    });
  }
}

/** The line's chains of stations (the API's `branches`: each chain before the one it merges into, the trunk last);
 * a service without them is one chain of every station. */
function chainsOf(line) {
  if (Array.isArray(line.branches) && line.branches.length) return line.branches;
  return [{ id: "trunk", stations: line.stations.map((s) => s.id), into: null }];
}

/** The flow as a tree: the chains that merge into a station drawn side by side (lanes) above it, joined by a merge
 * marker, then the chain that begins at the merge station; nested merges the same way inside a lane. Cards are
 * list items of their chain (an ordered list in flow order). */
function buildFlow(line) {
  const flow = $("flow");
  flow.replaceChildren();
  S.stations.clear();
  const specs = new Map(line.stations.map((spec) => [spec.id, spec]));
  const chains = chainsOf(line);
  const endingAt = new Map(chains.map((c) => [c.stations[c.stations.length - 1], c]));
  const last = line.stations[line.stations.length - 1]?.id;

  const group = (chain) => {
    const parts = [];
    const head = specs.get(chain.stations[0]);
    const feeders = (head?.inputs ?? []).map((input) => endingAt.get(input.station)).filter(Boolean);
    if (feeders.length > 1) {
      const lanes = el("div", { class: "lanes", "data-merge": head.id, style: `--lanes:${feeders.length}` });
      for (const feeder of feeders) {
        const lane = el(
          "section",
          { class: "lane", "data-branch": feeder.id, "aria-label": `Branch ${feeder.id} into ${head.id}` },
          el("h3", { class: "lane-title" }, `Branch ${feeder.id} `, el("span", { class: "muted", text: `→ ${head.id}` })),
        );
        lane.append(...group(feeder));
        lanes.append(lane);
      }
      const ins = head.inputs.map((i) => (i.per_unit > 1 ? `${i.per_unit} × ${i.station}` : i.station)).join(" + ");
      parts.push(lanes, el("div", { class: "join", "data-join": head.id, text: `↓ ${ins} merge at ${head.id}` }));
    }
    const list = el("ol", { class: "chain", "data-chain": chain.id, "aria-label": chain.id === "trunk" ? "Trunk" : `Branch ${chain.id}` });
    for (const id of chain.stations) {
      const spec = specs.get(id);
      if (spec) list.append(stationCard(spec, id === last, (specs.get(spec.feeds)?.inputs?.length ?? 0) > 1));
    }
    parts.push(list);
    return parts;
  };
  const trunk = chains.find((c) => c.into === null || c.into === undefined) ?? chains[chains.length - 1];
  flow.append(...group(trunk));
  flow.dataset.branches = String(chains.length);
}

function stationCard(spec, last, intoMerge) {
  const stateEl = el("span", { class: "st-state", text: LABEL.UNKNOWN });
  const head = el("div", { class: "st-head" }, el("span", { class: "st-id", text: spec.id }), stateEl);
  const body = el("div", { class: "st-body" });
  body.append(el("div", { class: "st-name", title: spec.name, text: spec.name }));
  const since = el("div", { class: "st-since", "data-role": "since" });
  body.append(since);

  let mc = null;
  if (spec.machines > 1) {
    const bar = el("div", { class: "mc-bar", "aria-hidden": "true" });
    const text = el("div", { class: "mc-text" });
    const segs = {};
    const counts = {};
    for (const s of STATES) {
      segs[s] = el("span", { class: "seg", "data-state": s, style: "width:0" });
      bar.append(segs[s]);
      counts[s] = el("span", { class: "n", "data-state": s, "data-count": s, title: LABEL[s], hidden: true });
      text.append(counts[s]);
    }
    body.append(bar, text);
    mc = { segs, counts };
  }

  const reason = el("div", { class: "st-reason", "data-role": "reason", hidden: true });
  body.append(reason);

  let store = null;
  if (spec.kind === "delay") {
    store = meterRow("store", `${spec.id} store fill`);
    store.flag = el("div", { class: "flow-flag", text: "intake blocked", hidden: true });
    store.row.dataset.role = "store";
    body.append(store.row, store.flag);
  }

  let buffer = null;
  if (!last) {
    if (spec.buffer_after === 0) {
      body.append(el("div", { class: "muted", "data-role": "buffer", text: "direct hand-off" }));
    } else {
      // the buffer after a branch's last station is one input of the merge station it feeds
      buffer = meterRow(intoMerge ? `to ${spec.feeds}` : "buffer", `buffer after ${spec.id}`);
      buffer.row.dataset.role = "buffer";
      if (spec.buffer_after === null) buffer.bar.hidden = true;
      body.append(buffer.row);
    }
  }

  const root = el(
    "li",
    {
      class: "station",
      "data-station": spec.id,
      "data-kind": spec.kind,
      "data-branch": spec.branch ?? "trunk",
      "data-state": "UNKNOWN",
      "data-transitions": 0,
    },
    head,
    body,
  );
  S.stations.set(spec.id, {
    spec,
    root,
    stateEl,
    since,
    sinceMs: NaN,
    reason,
    mc,
    store,
    buffer,
    capacity: spec.buffer_after,
    transitions: 0,
  });
  return root;
}

const CALENDAR_REASONS = { off_shift: "off shift", break: "break", holiday: "holiday" };

/** A state's reason for people: a planned stop's kind or name, a changeover's name, a merge station's short input. */
function reasonText(state, reason) {
  if (state === "PLANNED_STOP") return `planned stop: ${CALENDAR_REASONS[reason] ?? reason}`;
  if (state === "STARVED") return `starved: waiting for ${reason}`;
  return `${LABEL[state].toLowerCase()}: ${reason}`;
}

function applyStation(id, s) {
  const r = S.stations.get(id);
  if (!r || !s) return;
  const state = stateOf(s.state);
  if (r.root.dataset.state !== state) {
    if (r.root.dataset.state !== "UNKNOWN" || r.transitions > 0) {
      r.root.classList.remove("flash");
      void r.root.offsetWidth; // restart the animation
      r.root.classList.add("flash");
    }
    r.root.dataset.state = state;
    r.transitions += 1;
    r.root.dataset.transitions = String(r.transitions);
  }
  setText(r.stateEl, LABEL[state]);
  r.sinceMs = parseTime(s.since);
  updateSince(r);

  const reason = typeof s.reason === "string" ? s.reason : "";
  r.reason.hidden = !reason || state === "WORKING";
  setText(r.reason, reason ? reasonText(state, reason) : "");

  if (r.mc && s.machine_counts) {
    const counts = s.machine_counts;
    const total = STATES.reduce((sum, k) => sum + (isNum(counts[k]) ? counts[k] : 0), 0) || 1;
    for (const k of STATES) {
      const n = isNum(counts[k]) ? counts[k] : 0;
      r.mc.segs[k].style.width = `${((n / total) * 100).toFixed(2)}%`;
      r.mc.counts[k].hidden = n === 0;
      setText(r.mc.counts[k], `${SHORT[k]} ${n}`);
      r.mc.counts[k].title = `${LABEL[k]}: ${n}`;
    }
  }

  if (r.store && s.store) {
    const st = s.store;
    setBar(r.store.bar, st.fill, pct(st.fill));
    setText(r.store.val, `${int(st.dwelling + st.held)} / ${int(st.capacity)} (${pct(st.fill)})`);
    r.store.flag.hidden = !st.intake_blocked;
  }
  if (isNum(s.buffer_capacity)) r.capacity = s.buffer_capacity;
  if (s.buffer_level !== null && s.buffer_level !== undefined) setBuffer(id, s.buffer_level);
}

function setBuffer(id, level) {
  const r = S.stations.get(id);
  if (!r || !r.buffer || !isNum(level)) return;
  if (isNum(r.capacity) && r.capacity > 0) {
    const fill = level / r.capacity;
    setBar(r.buffer.bar, fill, `${int(level)} of ${int(r.capacity)}`);
    r.buffer.bar.toggleAttribute("data-high", fill >= 0.9);
    setText(r.buffer.val, `${int(level)} / ${int(r.capacity)}`);
  } else {
    setText(r.buffer.val, `${int(level)} (unbounded)`);
  }
}

function updateSince(r) {
  const known = isNum(S.clock) && S.clock >= r.sinceMs;
  const text = isNum(r.sinceMs) ? `since ${hm(r.sinceMs)}${known ? ` · ${duration(S.clock - r.sinceMs)}` : ""}` : "";
  setText(r.since, text);
}

// -- KPIs --------------------------------------------------------------------------------------------------------

/** The line's clock: the latest source timestamp (from status and kpi messages, and the state changes in between). */
function setClock(iso) {
  advanceClock(parseTime(iso), true);
}

function advanceClock(ms, force = false) {
  if (!isNum(ms) || (!force && isNum(S.clock) && ms <= S.clock)) return;
  S.clock = ms;
  const node = $("clock");
  setText(node, utc(ms));
  node.dateTime = new Date(ms).toISOString();
  for (const r of S.stations.values()) updateSince(r);
}

function applyTotals(data) {
  setText("total-good", int(data.good));
  setText("total-scrapped", int(data.scrapped));
  setText("total-wip", int(data.wip));
}

function applyShift(shift) {
  const bar = $("shift-bar");
  if (!shift) {
    for (const id of ["shift-good", "shift-plan", "shift-attainment", "shift-window"]) setText(id, "—");
    setBar(bar, 0);
    return;
  }
  setText("shift-good", int(shift.good));
  setText("shift-plan", int(shift.plan));
  setText("shift-attainment", pct(shift.attainment));
  setBar(bar, shift.attainment, pct(shift.attainment));
  bar.toggleAttribute("data-low", isNum(shift.attainment) && shift.attainment < 0.9);
  setText("shift-window", `${hm(parseTime(shift.start))}–${hm(parseTime(shift.end))} UTC`);
  S.shiftStart = parseTime(shift.start);
}

function buildOeeTable(line) {
  const body = $("station-oee").tBodies[0];
  body.replaceChildren();
  S.oeeRows.clear();
  for (const spec of line.stations) {
    const cells = {
      id: el("th", { scope: "row" }, spec.id),
      availability: el("td", { class: "num", text: "—" }),
      performance: el("td", { class: "num", text: "—" }),
      quality: el("td", { class: "num", text: "—" }),
      oee: el("td", { class: "num", text: "—" }),
      rate: el("td", { class: "num", text: "—" }),
      frac: el("div", { class: "frac", "aria-hidden": "true" }),
      fracText: el("span", { class: "sr-only" }),
    };
    const row = el("tr", { "data-oee-station": spec.id }, cells.id, cells.availability, cells.performance, cells.quality, cells.oee, cells.rate);
    row.append(el("td", {}, cells.frac, cells.fracText));
    body.append(row);
    S.oeeRows.set(spec.id, { row, cells });
  }
}

function applyOee(oee) {
  const ids = ["oee-line", "oee-availability", "oee-performance", "oee-quality", "oee-throughput", "oee-bottleneck", "oee-constraint", "oee-window"];
  if (!oee || !oee.line) {
    for (const id of ids) setText(id, "—");
    return;
  }
  const l = oee.line;
  setText("oee-line", pct(l.oee));
  for (const f of ["availability", "performance", "quality"]) {
    setText(`oee-${f}`, f === "performance" ? perf(l[f]) : pct(l[f]));
    $(`oee-${f}-bar`).style.width = `${(clamp01(l[f]) * 100).toFixed(1)}%`;
  }
  setText("oee-throughput", int(l.throughput_per_hour));
  setText("oee-constraint", l.constraint);
  // the active-period method needs many active periods: with few, the name it gives flips from one minute to the next
  const periods = isNum(oee.active_periods) ? oee.active_periods : 0;
  const judged = periods >= BOTTLENECK_MIN_PERIODS && oee.bottleneck;
  setText("oee-bottleneck", judged ? oee.bottleneck : `— (${int(periods)} active periods: too few to judge)`);
  $("oee-bottleneck").title =
    "The station that held the line back most this shift (longest mean active period, Roser et al.), judged from " +
    `${int(periods)} active periods; the constraint is the line file's slowest station by design.`;
  setText("oee-window", `${hm(parseTime(oee.start))}–${hm(parseTime(oee.end))} UTC`);

  for (const st of oee.stations ?? []) {
    const ref = S.oeeRows.get(st.id);
    if (!ref) continue;
    const c = ref.cells;
    setText(c.availability, pct(st.availability));
    setText(c.performance, perf(st.performance));
    setText(c.quality, pct(st.quality));
    setText(c.oee, pct(st.oee));
    setText(c.rate, int(st.throughput_per_hour));
    const fractions = st.state_fractions ?? {};
    const parts = Object.entries(fractions).filter(([, v]) => isNum(v) && v > 0);
    const segs = parts.map(([k, v]) =>
      el("span", { class: "seg", "data-state": stateOf(k.toUpperCase()), style: `width:${(v * 100).toFixed(2)}%`, title: `${k} ${pct(v)}` }),
    );
    c.frac.replaceChildren(...segs);
    setText(c.fracText, parts.map(([k, v]) => `${k} ${pct(v)}`).join(", "));
    const notes = [];
    if (st.id === l.constraint) notes.push("constraint");
    if (judged && st.id === oee.bottleneck) notes.push("bottleneck");
    ref.row.toggleAttribute("data-bottleneck", Boolean(judged) && st.id === oee.bottleneck);
    setText(c.id, notes.length ? `${st.id} (${notes.join(", ")})` : st.id);
  }
}

// -- the calendar: in a shift, a break, off shift, a holiday or a planned stop of the line ----------------------------

const CALENDAR_REFRESH_MS = 60_000;
const CALENDAR_MIN_MS = 1_000; // the line's clock passes a stretch's end: ask again, at most this often

function calendarKind(cal) {
  if (!cal) return "none";
  if (cal.working) return "working";
  return CALENDAR_REASONS[cal.reason] ? cal.reason : "planned_stop";
}

/** A time ahead of the line's clock (UTC, as every time on the page): "05:00" on the clock's day, "Mon 05:00" within
 * the week, else "2027-08-03 05:00". */
function whenText(ms) {
  if (!isNum(ms)) return "—";
  const day = new Date(ms).toISOString().slice(0, 10);
  const clock = isNum(S.clock) ? S.clock : ms;
  if (day === new Date(clock).toISOString().slice(0, 10)) return hm(ms);
  if (ms - clock < 6 * 24 * 3_600_000) {
    return `${new Date(ms).toLocaleDateString("en-GB", { weekday: "short", timeZone: "UTC" })} ${hm(ms)}`;
  }
  return `${day} ${hm(ms)}`;
}

function applyCalendar(cal) {
  const node = $("calendar");
  S.calendar = cal ?? null;
  // asked again when the stretch ends or the shift changes (shifts may follow each other without a stop)
  const ends = cal ? [parseTime(cal.until), parseTime(cal.shift_end)].filter(isNum) : [];
  S.calendarUntil = ends.length ? Math.min(...ends) : NaN;
  const always = S.line && !S.line.calendar && !(S.line.planned_stops ?? []).length;
  const kind = always ? "always" : calendarKind(cal);
  node.dataset.calendar = kind;
  node.hidden = !cal && !always;
  if (always) {
    setText("calendar-text", "No shift calendar: works round the clock");
    return;
  }
  if (!cal) return;
  const untilMs = parseTime(cal.until);
  const until = isNum(untilMs) ? ` until ${whenText(untilMs)} UTC` : "";
  const shift = cal.shift
    ? `Shift ${cal.shift} (${hm(parseTime(cal.shift_start))}–${hm(parseTime(cal.shift_end))} UTC)`
    : "";
  let text;
  if (cal.working) text = `${shift || "Working"} · working${until}`;
  else if (kind === "planned_stop") text = `Planned stop ${cal.reason}${until}${shift ? ` · ${shift}` : ""}`;
  else text = `${CALENDAR_REASONS[cal.reason][0].toUpperCase()}${CALENDAR_REASONS[cal.reason].slice(1)}${until}${shift ? ` · ${shift}` : ""}`;
  setText("calendar-text", text);
  node.title = cal.working
    ? "The line is asked to work now (its calendar and its planned stops)"
    : "The line is not asked to work now: its stations show planned stops";
}

/** Ask where the calendar stands when the line's clock has passed the current stretch's end (and now and then). */
async function followCalendar(gen, force = false) {
  if (!S.line || (!S.line.calendar && !(S.line.planned_stops ?? []).length)) return;
  const wall = performance.now();
  const due = force || (isNum(S.calendarUntil) && isNum(S.clock) && S.clock >= S.calendarUntil);
  if (!due || S.calendarLoading || wall - (S.calendarAsked ?? -Infinity) < CALENDAR_MIN_MS) return;
  S.calendarLoading = true;
  S.calendarAsked = wall;
  try {
    const cal = await api(linePath("/calendar"));
    if (gen === S.generation) applyCalendar(cal);
  } catch (error) {
    if (gen === S.generation) failed(error, "calendar-text", "Calendar unavailable");
  } finally {
    S.calendarLoading = false;
  }
}

function applyStatus(status) {
  setClock(status.now);
  applyCalendar(status.calendar);
  applyShift(status.shift);
  applyTotals(status);
  for (const st of status.stations ?? []) applyStation(st.id, st);
  applyOee(status.oee);
  if (isNum(status.stale_after_s)) S.staleAfterMs = status.stale_after_s * 1000;
  if (status.history_start) S.historyStart = parseTime(status.history_start);
}

// -- freshness: data that stopped coming, or that is being rejected, is not shown as live ---------------------------

/** Grey out the stations whose newest data is older than the service's stale_after_s, and say on the badge when all
 * of it is, or when most messages of the last half minute were rejected (both judged by the service's clock). */
function applyFreshness(k) {
  const served = parseTime(k.served_at);
  if (!isNum(served) || !k.data_seen_at) return;
  let newest = NaN;
  for (const [id, iso] of Object.entries(k.data_seen_at)) {
    const t = parseTime(iso);
    if (!isNum(t)) continue;
    if (!(t <= newest)) newest = t;
    const r = S.stations.get(id);
    if (r) r.root.toggleAttribute("data-stale", served - t > S.staleAfterMs);
  }
  const ingest = k.ingest ?? {};
  const hist = S.ingestSeen;
  if (isNum(ingest.received) && isNum(ingest.rejected)) hist.push({ t: served, received: ingest.received, rejected: ingest.rejected });
  while (hist.length > 2 && served - hist[0].t > REJECT_WINDOW_MS) hist.shift();
  const first = hist[0];
  const last = hist[hist.length - 1];
  const received = last && first ? last.received - first.received : 0;
  const share = received > 0 ? (last.rejected - first.rejected) / received : 0;
  let fresh = "fresh";
  let text = "live";
  if (received >= REJECT_MIN_MESSAGES && share > REJECT_SHARE) {
    fresh = "rejecting"; // the cause first: data stops being fresh because it is refused
    text = `rejecting ${pct(share)} of messages`;
  } else if (!isNum(newest) || served - newest > S.staleAfterMs) {
    fresh = "stale";
    text = isNum(newest) ? `stale since ${hm(newest)} UTC` : "no data yet";
  }
  document.body.dataset.fresh = fresh;
  const conn = $("connection");
  conn.dataset.fresh = fresh;
  if (conn.dataset.conn === "live") setText("connection-text", text);
}

// -- the stream ----------------------------------------------------------------------------------------------------

function setConn(state, text) {
  const node = $("connection");
  node.dataset.conn = state;
  document.body.dataset.conn = state; // the numbers shown are not live while the stream is not
  setText("connection-text", text ?? state);
}

function closeStream() {
  if (S.es) {
    S.es.close();
    S.es = null;
  }
}

function openStream() {
  closeStream();
  const url = new URL(linePath("/stream"), API);
  const key = getKey();
  if (key) url.searchParams.set("api_key", key);
  const es = new EventSource(url);
  S.es = es;
  S.lastMessage = Date.now();
  setConn("connecting", "connecting…");
  const on = (name, handler) =>
    es.addEventListener(name, (event) => {
      if (S.es !== es) return;
      S.lastMessage = Date.now();
      handler(event.data ? JSON.parse(event.data) : {});
    });
  on("hello", () => {
    S.hellos += 1;
    setConn("live");
    banner("");
    if (S.hellos > 1) resync(); // reconnected: what changed meanwhile is only in the status
  });
  on("state", onState);
  on("kpi", onKpi);
  on("resync", () => resync());
  es.onerror = () => {
    if (S.es !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // the server answered with an error (e.g. 401) or not at all: find out why, then try again
      closeStream();
      setConn("offline", "offline");
      scheduleReconnect();
    } else {
      setConn("reconnecting", "reconnecting…");
    }
  };
}

function scheduleReconnect() {
  const gen = S.generation;
  clearTimeout(S.reconnect);
  S.reconnect = setTimeout(async () => {
    if (gen !== S.generation) return;
    try {
      applyStatus(await api(linePath("/status")));
      if (gen === S.generation) openStream();
    } catch (error) {
      if (gen !== S.generation) return;
      if (error instanceof HttpError && error.status !== 401) scheduleReconnect();
      failed(error, null, "Live stream");
    }
  }, RECONNECT_MS);
}

function watchdog() {
  if (S.es && Date.now() - S.lastMessage > STALE_MS) {
    setConn("reconnecting", "reconnecting…");
    openStream();
  }
}

async function resync() {
  const gen = S.generation;
  try {
    const status = await api(linePath("/status"));
    if (gen === S.generation) applyStatus(status);
  } catch (error) {
    failed(error, null, "Status");
  }
}

function onState(msg) {
  S.stateMessages += 1;
  S.changes += (msg.changes?.length ?? 0) + (msg.more_changes ?? 0);
  const flow = $("flow");
  flow.dataset.stateMessages = String(S.stateMessages);
  flow.dataset.changes = String(S.changes);
  let latest = NaN;
  for (const c of msg.changes ?? []) {
    const t = parseTime(c.t);
    if (isNum(t) && !(t <= latest)) latest = t;
  }
  advanceClock(latest);
  for (const [id, summary] of Object.entries(msg.stations ?? {})) applyStation(id, summary);
  const stops = (msg.changes ?? []).filter((c) => c.state === "DOWN");
  if (stops.length) {
    const list = $("recent-stops");
    for (const c of stops.slice(-RECENT_STOPS)) {
      const item = el("li", {}, el("time", { datetime: c.t, text: hm(parseTime(c.t)) }), ` ${c.station} #${c.machine} down`);
      if (c.reason) item.append(`: ${c.reason}`);
      list.prepend(item);
    }
    while (list.children.length > RECENT_STOPS) list.lastElementChild.remove();
  }
}

function onKpi(k) {
  S.kpis += 1;
  document.body.dataset.kpiMessages = String(S.kpis);
  setClock(k.now);
  applyShift(k.shift);
  applyTotals(k);
  applyOee(k.oee);
  for (const [id, level] of Object.entries(k.buffers ?? {})) setBuffer(id, level);
  if (isNum(k.dead_letters)) setText("dead-letters-count", int(k.dead_letters));
  extendThroughput(k);
  applyFreshness(k);
  followCalendar(S.generation);
  document.body.dataset.kpiNow = k.now ?? "";
  reloadPanelsAsTheLineMoves(k);
}

/** Reload the windowed panels when the line's clock has moved on RELOAD_LINE_MS since their last load, or a new
 * shift began (see RELOAD_LINE_MS). */
function reloadPanelsAsTheLineMoves(k) {
  const clock = parseTime(k.now);
  const shift = k.shift ? parseTime(k.shift.start) : NaN;
  const last = S.panelsLoaded;
  const wall = performance.now();
  if (!isNum(clock)) return;
  if (!last) {
    S.panelsLoaded = { clock, shift, wall };
    return;
  }
  const moved = clock - last.clock >= RELOAD_LINE_MS || (isNum(shift) && shift !== last.shift);
  if (!moved || wall - last.wall < RELOAD_MIN_MS) return;
  S.panelsLoaded = { clock, shift, wall };
  const gen = S.generation;
  loadThroughput(gen);
  loadDowntime(gen);
  loadLosses(gen);
}

// -- charts --------------------------------------------------------------------------------------------------------

function chartWidth(node) {
  return Math.max(200, Math.floor(node.clientWidth || node.parentElement.clientWidth || 600));
}

/** Resize the chart with its container (in the next frame, so the observer never loops). */
function follow(node, chart) {
  let pending = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      const width = chartWidth(node);
      if (Math.abs(width - chart.width) > 1) chart.setSize({ width, height: chart.height });
    });
  }).observe(node);
}

function makeCharts() {
  if (S.charts.tp) return;
  if (!uPlot) throw new Error("uPlot did not load (static/vendor/uPlot.iife.min.js)");
  const text = cssVar("--text");
  const grid = { stroke: "#e6e9ee", width: 1 };
  const axis = { stroke: text, grid, ticks: grid };

  const tpNode = $("throughput-chart");
  S.charts.tp = new uPlot(
    {
      width: chartWidth(tpNode),
      height: 240,
      padding: [null, TIME_AXIS_END_PAD, null, null],
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "UTC"),
      scales: {
        // up to the line's clock, and at least an hour wide: one or two points would otherwise spread over a few
        // minutes with every tick labelled alike
        x: {
          time: true,
          range: (u, min, max) => {
            const hi = isNum(S.clock) ? S.clock / 1000 : isNum(max) ? max : Date.now() / 1000;
            const lo = isNum(min) ? Math.min(min, hi - 3600) : hi - 3600;
            return [lo, hi];
          },
        },
        y: { range: (u, min, max) => [0, Math.max(1, (isNum(max) ? max : 0) * 1.1)] },
      },
      series: [
        { label: "interval start", value: (u, v) => (isNum(v) ? utc(v * 1000) : "—") },
        {
          label: "good/h",
          stroke: cssVar("--working"),
          fill: "rgba(35, 122, 55, 0.12)",
          width: 2,
          value: (u, v) => (isNum(v) ? nfInt.format(v) : "—"),
        },
        { label: "plan/h", stroke: "#7b8494", width: 1.5, dash: [6, 4], points: { show: false }, value: (u, v) => (isNum(v) ? nfInt.format(v) : "—") },
        {
          // the interval under way, apart from the line: its good units over the time it has run so far
          label: "so far/h",
          stroke: cssVar("--working"),
          width: 0,
          paths: () => null,
          points: { show: true, size: 9, width: 2, fill: "#fff" },
          value: (u, v) => (isNum(v) ? nfInt.format(v) : "—"),
        },
      ],
      axes: [
        { ...axis, values: (u, splits) => splits.map((v) => hm(v * 1000)) },
        { ...axis, size: 60, values: (u, splits) => splits.map((v) => nfInt.format(v)) },
      ],
    },
    [[], [], [], []],
    tpNode,
  );
  follow(tpNode, S.charts.tp);

  const fcNode = $("forecast-chart");
  S.charts.fc = new uPlot(
    {
      width: chartWidth(fcNode),
      height: 240,
      padding: [null, TIME_AXIS_END_PAD, null, null], // the horizon is often a round hour: its label sits on the edge
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "UTC"),
      // at least 0-10 on the y axis: an empty chart's 0-1 would label its ticks 0, 0, 1, 1 in whole units
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(10, (isNum(max) ? max : 0) * 1.1)] } },
      series: [
        { label: "by", value: (u, v) => (isNum(v) ? utc(v * 1000) : "—") },
        { label: "p10", stroke: "rgba(35, 122, 55, 0.5)", width: 1, value: (u, v) => (isNum(v) ? nfInt.format(v) : "—") },
        { label: "p50", stroke: cssVar("--working"), width: 2, value: (u, v) => (isNum(v) ? nfInt.format(v) : "—") },
        { label: "p90", stroke: "rgba(35, 122, 55, 0.5)", width: 1, value: (u, v) => (isNum(v) ? nfInt.format(v) : "—") },
        { label: "plan", stroke: "#7b8494", width: 1.5, dash: [6, 4], points: { show: false }, value: (u, v) => (isNum(v) ? nfInt.format(v) : "—") },
      ],
      bands: [{ series: [3, 1], fill: "rgba(35, 122, 55, 0.15)" }],
      axes: [
        { ...axis, values: (u, splits) => splits.map((v) => hm(v * 1000)) },
        { ...axis, size: 60, values: (u, splits) => splits.map((v) => nfInt.format(v)) },
      ],
    },
    [[], [], [], [], []],
    fcNode,
  );
  follow(fcNode, S.charts.fc);

  const pNode = $("pareto-chart");
  const P = S.pareto;
  const shortLabel = (i) => {
    const label = P.labels[i];
    if (label === undefined) return "";
    return label.length > 28 ? `${label.slice(0, 27)}…` : label; // "FORM channel_losses" and the like in full
  };
  // Rotated labels run down and to the right of their bar: the last one needs room past the right axis, or its
  // end is cut off by the canvas (measured in the axis font, so that every label shows in full at any width).
  const LABEL_ANGLE = 35;
  const RIGHT_AXIS = 50;
  const measure = document.createElement("canvas").getContext("2d");
  const rightPad = (u) => {
    const n = P.labels.length;
    if (!n) return 8;
    measure.font = `12px ${getComputedStyle(document.body).fontFamily}`;
    // the rotated text's reach to the right: its length along the slant, plus its own height across it
    const angle = (LABEL_ANGLE * Math.PI) / 180;
    const extent = measure.measureText(shortLabel(n - 1)).width * Math.cos(angle) + 14 * Math.sin(angle);
    const halfSlot = Math.max(0, u.width - 2 * RIGHT_AXIS) / n / 2;
    return Math.max(8, Math.ceil(extent + 6 - RIGHT_AXIS - halfSlot));
  };
  S.charts.pareto = new uPlot(
    {
      width: chartWidth(pNode),
      height: 300,
      padding: [null, rightPad, null, null],
      scales: {
        x: { time: false, range: () => [-0.5, Math.max(P.labels.length, 1) - 0.5] },
        h: { range: (u, min, max) => [0, Math.max(0.1, (isNum(max) ? max : 0) * 1.1)] },
        pct: { range: [0, 100] },
      },
      series: [
        { label: "reason", value: (u, v) => (isNum(v) ? (P.labels[v] ?? "") : "—") },
        {
          label: "machine-hours",
          scale: "h",
          width: 0,
          fill: cssVar("--down"),
          points: { show: false },
          paths: uPlot.paths.bars({
            size: [0.7, 80],
            disp: { fill: { unit: 3, values: () => P.colors } },
          }),
          value: (u, v) => (isNum(v) ? `${nf1.format(v)} h` : "—"),
        },
        {
          label: "cumulative share",
          scale: "pct",
          stroke: "#1d2330",
          width: 1.5,
          points: { show: true, size: 5, fill: "#1d2330" },
          value: (u, v) => (isNum(v) ? `${nf1.format(v)} %` : "—"),
        },
      ],
      axes: [
        {
          ...axis,
          grid: { show: false },
          splits: () => P.labels.map((_, i) => i),
          values: (u, splits) => splits.map((i) => shortLabel(i)),
          rotate: -LABEL_ANGLE,
          size: 140,
        },
        { ...axis, scale: "h", size: 50, label: "machine-hours", values: (u, splits) => splits.map((v) => nfAuto.format(v)) },
        { ...axis, scale: "pct", side: 1, grid: { show: false }, size: RIGHT_AXIS, values: (u, splits) => splits.map((v) => `${v}%`) },
      ],
    },
    [[], [], []],
    pNode,
  );
  follow(pNode, S.charts.pareto);
}

async function loadThroughput(gen) {
  try {
    const t = await api(linePath("/throughput"), { hours: THROUGHPUT_HOURS, every_s: THROUGHPUT_EVERY_S });
    if (gen !== S.generation) return;
    const tp = S.tp;
    tp.every = isNum(t.every_s) && t.every_s > 0 ? t.every_s : THROUGHPUT_EVERY_S;
    tp.start = t.start.map((iso) => parseTime(iso) / 1000);
    tp.good = t.good.slice();
    // the live extension counts on from the end of this answer: the line's clock then, and the counter at it
    const end = parseTime(t.end);
    tp.last = isNum(end) && isNum(t.good_total) ? { t: end / 1000, good: t.good_total } : null;
    advanceClock(end); // the answer may be newer than the last message: its partial interval runs up to its end
    setText("throughput-status", tp.start.length ? "" : "No output recorded yet.");
    drawThroughput();
  } catch (error) {
    if (gen === S.generation) failed(error, "throughput-status", "Throughput unavailable");
  }
}

/** Spread the good units shipped between two kpi messages over the intervals they span. */
function extendThroughput(k) {
  const tp = S.tp;
  const t = parseTime(k.now) / 1000;
  if (!isNum(t) || !isNum(k.good)) return;
  const last = tp.last;
  if (last && t <= last.t && k.good >= last.good) return; // older than what is counted already (a load's end)
  tp.last = { t, good: k.good };
  if (!last || !tp.start.length || k.good < last.good) return; // the first baseline, or the counter began again
  const delta = k.good - last.good;
  let lastStart = tp.start[tp.start.length - 1];
  while (lastStart + tp.every <= t) {
    lastStart += tp.every;
    tp.start.push(lastStart);
    tp.good.push(0);
  }
  for (let i = tp.start.length - 1; i >= 0; i--) {
    const b0 = tp.start[i];
    const b1 = b0 + tp.every;
    if (b1 <= last.t) break;
    const overlap = Math.min(b1, t) - Math.max(b0, last.t);
    if (overlap > 0) tp.good[i] += (delta * overlap) / (t - last.t);
  }
  // keep what the chart shows, and a little more
  const keepFrom = t - THROUGHPUT_HOURS * 3600 - tp.every;
  let drop = 0;
  while (drop < tp.start.length && tp.start[drop] < keepFrom) drop++;
  if (drop) {
    tp.start.splice(0, drop);
    tp.good.splice(0, drop);
  }
  drawThroughput();
}

function drawThroughput() {
  const chart = S.charts.tp;
  if (!chart) return;
  const tp = S.tp;
  const now = isNum(S.clock) ? S.clock / 1000 : Infinity;
  const from = now - THROUGHPUT_HOURS * 3600;
  const xs = [];
  const ys = [];
  const partial = []; // the interval under way, scaled by the time it has run (a minute at least), drawn apart
  for (let i = 0; i < tp.start.length; i++) {
    if (tp.start[i] < from) continue;
    // the seconds of the interval with data: up to the line's clock, and none before the retained history began
    const missed = isNum(S.historyStart) ? Math.max(0, S.historyStart / 1000 - tp.start[i]) : 0;
    const elapsed = Math.min(tp.every, now - tp.start[i]) - missed;
    if (tp.start[i] + tp.every <= now) {
      if (elapsed < 60) continue; // a sliver of an interval at the history's start says nothing
      xs.push(tp.start[i]);
      ys.push((tp.good[i] * 3600) / elapsed);
      partial.push(null);
    } else if (elapsed >= 60) {
      xs.push(tp.start[i]);
      ys.push(null);
      partial.push((tp.good[i] * 3600) / elapsed);
    }
  }
  const plan = S.line && isNum(S.line.plan_per_hour) ? S.line.plan_per_hour : null;
  chart.setData([xs, ys, xs.map(() => plan), partial]);
  const node = $("throughput-chart");
  const complete = ys.filter(isNum);
  node.dataset.points = String(complete.length);
  const last = xs.findLastIndex((_, i) => isNum(ys[i]));
  const latest = last >= 0 ? `; the latest complete interval, from ${hm(xs[last] * 1000)} UTC: ${int(ys[last])} good/h` : "";
  const current = partial.findLast(isNum);
  const underWay = isNum(current) ? `; the interval under way so far: ${int(current)} good/h` : "";
  node.setAttribute("aria-label", `Good output per hour over time${latest}${underWay}`);
}

/** Line-end output lost per cause (the stop attribution of the last station), this shift and over the last 24 h,
 * in units and in percent of plan. */
async function loadLosses(gen) {
  const clock = S.clock;
  if (!isNum(clock) || !isNum(S.historyStart)) return;
  // a start before the retained history is refused: a second after its beginning (the ISO times the status gives
  // hold microseconds, a Date only milliseconds)
  const since = (t) => Math.max(t, S.historyStart + 1000);
  const spans = [
    ["shift", since(isNum(S.shiftStart) ? S.shiftStart : clock - 8 * 3_600_000)],
    ["day", since(clock - 24 * 3_600_000)],
  ];
  try {
    const rows = new Map(); // cause -> {label, shift, day}
    for (const [key, start] of spans) {
      if (!(clock - start > 60_000)) continue;
      const a = await api(linePath("/stops"), { start: new Date(start).toISOString(), limit: 0 });
      if (gen !== S.generation) return;
      for (const c of a.causes ?? []) {
        const label = c.station ? `${c.station} ${c.reason || c.kind.replace("_", " ")}` : c.kind;
        const row = rows.get(label) ?? { label, shift: null, day: null };
        row[key] = c;
        rows.set(label, row);
      }
    }
    const top = [...rows.values()]
      .sort((x, y) => (y.day?.lost_units ?? y.shift?.lost_units ?? 0) - (x.day?.lost_units ?? x.shift?.lost_units ?? 0))
      .slice(0, LOSS_ROWS);
    const cell = (c) => el("td", { class: "num", text: c ? `${int(c.lost_units)} (${pct(c.share_of_plan)})` : "—" });
    $("loss-table").tBodies[0].replaceChildren(
      ...top.map((r) => el("tr", { "data-cause": r.label }, el("td", { text: r.label }), cell(r.shift), cell(r.day))),
    );
    setText("loss-status", top.length ? "" : "No output lost to stops in these windows.");
  } catch (error) {
    if (gen === S.generation) failed(error, "loss-status", "Losses unavailable");
  }
}

async function loadDowntime(gen) {
  try {
    const d = await api(linePath("/downtime"), { top: PARETO_TOP });
    if (gen !== S.generation) return;
    const top = (d.line ?? []).slice(0, PARETO_TOP);
    const P = S.pareto;
    P.labels = top.map((r) => `${r.station} ${r.reason || LABEL[stateOf(r.state)].toLowerCase()}`);
    P.hours = top.map((r) => r.hours);
    P.cum = top.map((r) => (isNum(r.cumulative_share) ? r.cumulative_share * 100 : null));
    P.colors = top.map((r) => stateColor(r.state));
    S.charts.pareto.setData([top.map((_, i) => i), P.hours, P.cum]);
    S.charts.pareto.redraw(false, true); // lay the axes out again: the right padding follows the last label
    $("pareto-chart").dataset.bars = String(top.length);
    const list = $("pareto-list");
    list.replaceChildren(
      ...top.map((r, i) =>
        el(
          "li",
          { "data-pareto": i },
          el("strong", { text: P.labels[i] }),
          ` — ${nf1.format(r.hours)} h, ${int(r.stops)} stop${r.stops === 1 ? "" : "s"}, ${pct(r.share)}`,
        ),
      ),
    );
    const span = `${utc(parseTime(d.start))} – ${utc(parseTime(d.end))}`;
    setText("pareto-status", top.length ? `Window ${span}` : `No stops in ${span}.`);
  } catch (error) {
    if (gen === S.generation) failed(error, "pareto-status", "Stop reasons unavailable");
  }
}

// -- forecast -----------------------------------------------------------------------------------------------------

/** The service's default forecast (to the end of the shift): the fan of cumulative good output against the plan, and
 * the stations most likely to go down before then, with when the ones down now should be back. */
async function loadForecast(gen) {
  const first = !$("forecast-chart").dataset.points;
  if (first) setText("forecast-status", "Waiting for the service's first forecast (it is computed at its start)…");
  try {
    const f = await api(linePath("/forecast"));
    if (gen !== S.generation) return;
    const t0 = parseTime(f.as_of) / 1000;
    const xs = [t0, ...f.hourly.map((h) => parseTime(h.end) / 1000)];
    const target = isNum(f.plan.target) ? f.plan.target : null;
    const planAt = (x) => (target === null ? null : (target * (x - t0)) / (xs[xs.length - 1] - t0 || 1));
    S.charts.fc.setData([
      xs,
      [0, ...f.hourly.map((h) => h.p10)],
      [0, ...f.hourly.map((h) => h.p50)],
      [0, ...f.hourly.map((h) => h.p90)],
      xs.map(planAt),
    ]);
    const node = $("forecast-chart");
    node.dataset.points = String(f.hourly.length);
    const g = f.good_output;
    const by = hm(xs[xs.length - 1] * 1000);
    const summary = `By ${by} UTC: ${int(g.p50)} good units (80 % between ${int(g.p10)} and ${int(g.p90)})`;
    const plan = target === null ? "" : `; the plan's ${int(target)} are reached in ${pct(f.plan.p_meet)} of ${int(f.replications)} runs`;
    setText("forecast-summary", summary + plan + ".");
    node.setAttribute("aria-label", `Forecast of cumulative good output. ${summary}${plan}.`);
    setText("forecast-status", `As of ${utc(t0 * 1000)}, ${nf1.format(f.horizon_h)} h ahead, computed in ${nf1.format(f.compute_s)} s.`);

    const rows = Object.entries(f.stations)
      .filter(([, st]) => st.p_failure > 0 || st.repair_left_h)
      .sort((a, b) => Boolean(b[1].repair_left_h) - Boolean(a[1].repair_left_h) || b[1].p_failure - a[1].p_failure)
      .slice(0, RISK_ROWS);
    $("risk-table").tBodies[0].replaceChildren(
      ...rows.map(([sid, st]) => {
        const back = st.repair_left_h
          ? `${hm((t0 + st.repair_left_h.p50 * 3600) * 1000)} (90 %: ${hm((t0 + st.repair_left_h.p90 * 3600) * 1000)})`
          : "—";
        const bar = el("span", { class: "bar thin", "aria-hidden": "true" }, el("span", { class: "fill", style: `width:${(clamp01(st.p_failure) * 100).toFixed(1)}%` }));
        return el(
          "tr",
          { "data-risk": sid },
          el("th", { scope: "row", text: sid }),
          el("td", { title: hazardNote(f, sid) }, `${pct(st.p_failure)} `, bar),
          el("td", { class: "num", text: `${nf1.format(st.expected_downtime_h)} machine-h` }),
          el("td", { text: back }),
        );
      }),
    );
    const bySignals = Object.entries((f.assumptions && f.assumptions.hazard) || {})
      .filter(([, h]) => h === "condition-signal")
      .map(([sid]) => sid);
    const basis = bySignals.length
      ? `P(failure) of ${bySignals.join(", ")} from their condition signals; of the others from their failure clocks alone.`
      : "P(failure) from the failure clocks alone (no condition-signal model yet).";
    setText("risk-status", rows.length ? basis : "No station is likely to fail before then.");
  } catch (error) {
    if (gen === S.generation) failed(error, "forecast-status", "Forecast unavailable");
  }
}

/** What a station's P(failure) rests on: its condition signals' fitted hazard, or its failure clock alone. */
function hazardNote(f, sid) {
  const hazard = (f.assumptions && f.assumptions.hazard) || {};
  if (hazard[sid] === "condition-signal") return "From its condition signals (vibration, drive current) and its failure clock";
  if (hazard[sid] === "age-only") return "From its failure clock alone (no recent condition signals, or no fitted model yet)";
  return "";
}

/** How right the kept forecasts were: per hour ahead the P50's error and how often the 80 % band held the actual,
 * and P(failure)'s Brier score against the base rate's. */
async function loadAccuracy(gen) {
  try {
    const a = await api(linePath("/forecast/accuracy"), { days: ACCURACY_DAYS });
    if (gen !== S.generation) return;
    $("accuracy-table").tBodies[0].replaceChildren(
      ...a.by_lead.map((r) =>
        el(
          "tr",
          { "data-lead": String(r.lead_h) },
          el("th", { scope: "row", text: `${int(r.lead_h)} h` }),
          el("td", { class: "num", text: pct(r.mape_p50) }),
          el("td", { class: "num", text: `${pct(r.coverage_p10_p90)} (80 % ideal)` }),
          el("td", { class: "num", text: int(r.n) }),
        ),
      ),
    );
    const pf = a.p_failure;
    setText(
      "accuracy-failure",
      pf.pairs && isNum(pf.brier)
        ? `P(failure): Brier score ${pf.brier.toFixed(3)} against ${pf.brier_base_rate.toFixed(3)} for always saying the base rate ${pct(pf.base_rate)} (lower is better)${isNum(pf.auc) ? `; AUC ${pf.auc.toFixed(2)}` : ""}.`
        : "",
    );
    setText(
      "accuracy-status",
      a.forecasts
        ? `${int(a.forecasts)} forecasts scored, ${int(a.pending)} waiting for their horizon.`
        : `No forecast scored yet: the first is scored once its horizon has passed (${int(a.pending)} waiting).`,
    );
  } catch (error) {
    if (gen === S.generation) failed(error, "accuracy-status", "Forecast accuracy unavailable");
  }
}

// -- dead letters ------------------------------------------------------------------------------------------------

async function toggleDeadLetters() {
  const button = $("dead-letters-button");
  const list = $("dead-letters-list");
  if (!list.hidden) {
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    setText(button, "Show latest");
    return;
  }
  setText("dead-letters-status", "Loading…");
  try {
    const d = await api("dead-letters", { limit: DEAD_LETTERS_SHOWN });
    setText("dead-letters-count", int(d.count));
    list.replaceChildren(
      ...d.latest.map((letter) => {
        const payload = letter.payload.length > 160 ? `${letter.payload.slice(0, 159)}…` : letter.payload;
        // on the line's clock first; the receive clock beside it, its date only if it differs from the line time's
        const line = parseTime(letter.line_time);
        const received = utc(parseTime(letter.received));
        const sameDay = isNum(line) && received.startsWith(utc(line).slice(0, 10));
        return el(
          "li",
          {},
          ...(isNum(line) ? [el("time", { datetime: letter.line_time, text: utc(line) }), " · "] : []),
          "received ",
          el("time", { datetime: letter.received, text: sameDay ? received.slice(11, 19) : received }),
          " ",
          el("code", { text: letter.topic }),
          el("br"),
          el("strong", { text: letter.reason }),
          el("br"),
          el("code", { class: "muted", text: payload }),
        );
      }),
    );
    setText("dead-letters-status", d.latest.length ? "" : "No rejected messages.");
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    setText(button, "Hide");
  } catch (error) {
    failed(error, "dead-letters-status", "Dead letters unavailable");
  }
}

// -- API key ---------------------------------------------------------------------------------------------------------

function askKey(message) {
  closeStream();
  setConn("offline", "API key needed");
  $("key-button").hidden = false;
  banner("This service needs an API key: use the “API key” button at the top.", "info");
  setText("key-message", message);
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
}

function setupKeyDialog() {
  setupKeys(start, "Enter an API key with the viewer role.");
  if (getKey()) $("key-button").hidden = false;
}

// -- start -----------------------------------------------------------------------------------------------------------

function stop() {
  closeStream();
  clearTimeout(S.reconnect);
  for (const id of S.timers) {
    clearTimeout(id);
    clearInterval(id);
  }
  S.timers = [];
}

async function start() {
  stop();
  const gen = ++S.generation;
  S.hellos = 0;
  S.panelsLoaded = null;
  document.body.dataset.ready = "false";
  try {
    const lines = await api("lines");
    if (gen !== S.generation) return;
    const wanted = new URLSearchParams(location.search).get("line");
    const summary = lines.find((l) => l.id === wanted) ?? lines[0];
    if (!summary) {
      banner("This service watches no line.");
      return;
    }
    S.lineId = summary.id;
    const line = await api(linePath());
    if (gen !== S.generation) return;
    S.line = line;
    setText("line-name", line.id);
    document.title = `GigaTwin · ${line.id}`;
    buildFlow(line);
    applyCalendar(null);
    markRowEnds();
    new ResizeObserver(() => requestAnimationFrame(markRowEnds)).observe($("flow"));
    buildOeeTable(line);
    makeCharts();
    applyStatus(await api(linePath("/status")));
    if (gen !== S.generation) return;
    banner("");
    openStream();
    loadThroughput(gen);
    loadDowntime(gen);
    loadLosses(gen);
    every(() => loadDowntime(gen), DOWNTIME_REFRESH_MS);
    every(() => loadLosses(gen), DOWNTIME_REFRESH_MS);
    every(() => loadThroughput(gen), THROUGHPUT_REFRESH_MS);
    loadForecast(gen);
    every(() => loadForecast(gen), FORECAST_REFRESH_MS);
    loadAccuracy(gen);
    every(() => loadAccuracy(gen), FORECAST_REFRESH_MS);
    every(watchdog, 5_000);
    every(() => followCalendar(gen, true), CALENDAR_REFRESH_MS);
    document.body.dataset.ready = "true";
  } catch (error) {
    if (gen !== S.generation) return;
    if (error instanceof HttpError && error.status !== 401 && error.status !== 403) later(start, 5_000);
    failed(error, null, "The dashboard could not load");
    if (!(error instanceof HttpError)) banner("The dashboard failed to start (see the browser console).");
  }
}

$("dead-letters-button").addEventListener("click", toggleDeadLetters);
setupKeyDialog();
start();
