// GigaTwin what-if page: a plain ES module, no build step, no external requests. Pick an example scenario (the
// service's scenario_dir) or write one as JSON, run it against the baseline (an operator key), follow its progress over
// Server-Sent Events, then read the differences: mean ± the paired 95 % interval, significant or not, for the line's
// throughput and the other line figures, and each station's downtime. Viewers see the what-ifs others ran. Text from
// the API only ever goes into the page as text nodes (textContent), never as markup.

import { API, HttpError, getKey, setupKeyDialog as setupKeys } from "./apikey.js"; // the key is shared with the live dashboard

const JOBS_REFRESH_MS = 5_000;
const POLL_MS = 1_000; // when the progress stream is not available
const FINISHED = new Set(["done", "failed", "cancelled"]);

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const nf3 = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });
const nfSigned = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2, signDisplay: "exceptZero" });

/** What each line figure is, how to show it, and which way is better. */
const LINE_FIGURES = [
  { key: "throughput_per_hour", label: "Good throughput (units/h)", better: +1, baseline: (b) => b.throughput_per_hour?.mean },
  { key: "good", label: "Good units shipped", better: +1, baseline: (b) => b.good?.mean },
  { key: "scrap_rate", label: "Scrap rate", better: -1, pct: true, baseline: (b) => b.scrap_rate },
  { key: "wip_mean", label: "WIP (mean units in the line)", better: 0, baseline: (b) => b.wip_mean },
  { key: "lead_time_mean_h", label: "Lead time (h)", better: -1, baseline: (b) => b.lead_time_mean_h },
];

const S = {
  lineId: "",
  line: null,
  scenarios: [],
  job: null, // the job shown: its latest view
  es: null,
  poll: 0,
  jobsTimer: 0,
};

// -- helpers ----------------------------------------------------------------------------------------------------------

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

function setText(id, value) {
  const node = typeof id === "string" ? $(id) : id;
  if (node) node.textContent = String(value);
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const num = (v, pct = false) => (isNum(v) ? (pct ? `${nf.format(v * 100)} %` : nf.format(v)) : "—");
const signed = (v, pct = false) => (isNum(v) ? (pct ? `${nfSigned.format(v * 100)} pp` : nfSigned.format(v)) : "—");
const half = (v, pct = false) => (isNum(v) ? (pct ? `${nf3.format(v * 100)} pp` : nf3.format(v)) : "—");

function utc(iso) {
  if (typeof iso !== "string" || !iso) return "—";
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

function banner(message, kind = "error") {
  const node = $("banner");
  node.hidden = !message;
  node.dataset.kind = kind;
  setText(node, message);
}

function status(message, kind = "info") {
  const node = $("ask-status");
  node.dataset.kind = kind;
  setText(node, message);
}

const linePath = (rest = "") => `lines/${encodeURIComponent(S.lineId)}${rest}`;

/** A request to /api/v1 with the stored key; the JSON answer, or HttpError with the API's message. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, API), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new HttpError(0, "the service cannot be reached");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON
  }
  if (!response.ok) {
    const message = typeof data?.error?.message === "string" ? data.error.message : response.statusText || "request failed";
    const error = new HttpError(response.status, message);
    error.details = Array.isArray(data?.error?.details) ? data.error.details : [];
    error.retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw error;
  }
  return data;
}

function askKey(message) {
  setText("key-message", message);
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
}

// -- scenarios --------------------------------------------------------------------------------------------------------

async function loadScenarios() {
  try {
    const { scenarios } = await api(linePath("/scenarios"));
    S.scenarios = scenarios;
    const pick = $("scenario-pick");
    pick.replaceChildren(el("option", { value: "", text: "Write your own (JSON below)" }));
    for (const [i, s] of scenarios.entries()) {
      pick.append(el("option", { value: String(i), disabled: !s.fits, text: s.fits ? s.name : `${s.name} (does not fit this line)` }));
    }
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) askKey("This service asks for an API key.");
    setText("scenario-note", `Example scenarios unavailable: ${error.message}`);
  }
}

function pickScenario() {
  const s = S.scenarios[Number($("scenario-pick").value)];
  if (!$("scenario-pick").value || !s) {
    setText("scenario-note", "");
    return;
  }
  $("scenario-text").value = JSON.stringify({ name: s.name, description: s.description, changes: s.changes }, null, 2);
  setText("scenario-note", `${s.file}: ${s.description || "(no description)"}`);
}

// -- asking -----------------------------------------------------------------------------------------------------------

function readForm() {
  let scenario;
  try {
    scenario = JSON.parse($("scenario-text").value);
  } catch (error) {
    throw new Error(`The scenario is not valid JSON: ${error.message}`);
  }
  if (scenario === null || typeof scenario !== "object" || Array.isArray(scenario)) {
    throw new Error("The scenario must be a JSON object with name, description and changes");
  }
  const start = $("start").value;
  const body = {
    name: scenario.name,
    description: scenario.description ?? "",
    changes: scenario.changes ?? [],
    hours: Number($("hours").value),
    replications: Number($("replications").value),
    seed: Number($("seed").value),
    start,
  };
  if (start === "steady_state") body.warmup = Number($("warmup").value);
  return body;
}

async function run(event) {
  event.preventDefault();
  let body;
  try {
    body = readForm();
  } catch (error) {
    status(error.message, "error");
    return;
  }
  $("run").disabled = true;
  status("Asking…");
  try {
    const job = await api(linePath("/whatif"), { method: "POST", body });
    status(`Queued as ${job.id}.`);
    follow(job);
    loadJobs();
  } catch (error) {
    if (!(error instanceof HttpError)) {
      console.error(error);
      status("Unexpected error (see the browser console)", "error");
    } else if (error.status === 401) {
      askKey("Running a what-if needs an API key with the operator role.");
      status("An API key is needed.", "error");
    } else if (error.status === 403) {
      status("Running a what-if needs an operator key: use the “API key” button (viewer keys may only read results).", "error");
    } else if (error.status === 429) {
      status(`${error.message} (in about ${error.retryAfter || "a few"} s)`, "error");
    } else {
      status(error.message, "error");
    }
  } finally {
    $("run").disabled = false;
  }
}

// -- following a job --------------------------------------------------------------------------------------------------

function stopFollowing() {
  if (S.es) S.es.close();
  S.es = null;
  clearTimeout(S.poll);
}

function follow(job) {
  stopFollowing();
  show(job);
  if (FINISHED.has(job.state)) return;
  const url = new URL(linePath(`/whatif/${encodeURIComponent(job.id)}/events`), API);
  const key = getKey();
  if (key) url.searchParams.set("api_key", key);
  let es;
  try {
    es = new EventSource(url);
  } catch {
    poll(job.id);
    return;
  }
  S.es = es;
  let ended = false;
  es.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (S.job?.id === p.id) showProgress({ ...S.job, state: p.state, progress: { done: p.done, total: p.total } });
  });
  es.addEventListener("end", () => {
    // the service ends the stream after this message: closed when it has (onerror), not cut off before
    ended = true;
    refresh(job.id);
  });
  es.onerror = () => {
    es.close();
    if (S.es !== es) return;
    S.es = null;
    // the stream broke (or was refused) before the end: the job goes on; ask for it every second instead
    if (!ended) poll(job.id);
  };
}

async function refresh(id) {
  try {
    const job = await api(linePath(`/whatif/${encodeURIComponent(id)}`));
    if (S.job?.id === id) show(job);
    loadJobs();
    return job;
  } catch (error) {
    setText("job-about", `This what-if cannot be read: ${error.message}`);
    return null;
  }
}

async function poll(id) {
  const job = await refresh(id);
  if (job && !FINISHED.has(job.state) && S.job?.id === id) S.poll = setTimeout(() => poll(id), POLL_MS);
}

function showProgress(job) {
  S.job = job;
  const panel = $("job-panel");
  panel.dataset.state = job.state;
  setText("job-state", job.cancel_requested && !FINISHED.has(job.state) ? `${job.state}, cancelling` : job.state);
  const { done, total } = job.progress;
  $("job-progress").max = Math.max(total, 1);
  $("job-progress").value = done;
  setText("job-progress-text", `${done} of ${total} replications`);
  $("cancel").hidden = FINISHED.has(job.state);
}

function show(job) {
  $("job-panel").hidden = false;
  showProgress(job);
  const r = job.request;
  setText("job-title", `What-if: ${r.scenario.name}`);
  const from = r.start === "now" ? `from the plant as of ${utc(job.as_of)}` : `from steady state after ${num(r.warmup)} h`;
  setText("job-about", `${r.scenario.description || "(no description)"} · ${num(r.hours)} h ${from} · ${r.replications} paired replications, seed ${r.seed} · ${job.parameters} parameters · job ${job.id}`);
  const table = $("delta-table");
  if (job.state === "failed") {
    setVerdict(`Failed: ${job.error}`, null);
    table.hidden = true;
    $("delta-note").hidden = true;
  } else if (job.state === "cancelled") {
    setVerdict("Cancelled.", null);
    table.hidden = true;
    $("delta-note").hidden = true;
  } else if (job.state === "done" && job.result) {
    renderResult(job);
  } else {
    setVerdict(job.state === "queued" ? "Waiting for the what-if before it to finish…" : "Running…", null);
    table.hidden = true;
    $("delta-note").hidden = true;
  }
}

function setVerdict(text, significant) {
  const node = $("verdict");
  setText(node, text);
  if (significant === null) delete node.dataset.significant;
  else node.dataset.significant = String(significant);
}

function effect(better, d) {
  if (!isNum(d?.mean) || !(Math.abs(d.mean) > d.ci95) || !better) return "none";
  return Math.sign(d.mean) === better ? "better" : "worse";
}

function deltaRow(figure, label, baseline, d, { better = 0, pct = false } = {}) {
  const significant = isNum(d?.mean) && isNum(d?.ci95) && Math.abs(d.mean) > d.ci95;
  return el(
    "tr",
    { "data-figure": figure, "data-significant": String(significant), "data-effect": effect(better, d) },
    el("th", { scope: "row", text: label }),
    el("td", { class: "num", text: num(baseline, pct) }),
    el("td", { class: "num delta", text: isNum(d?.mean) ? `${signed(d.mean, pct)} ± ${half(d.ci95, pct)}` : "—" }),
    el("td", { class: "num muted", text: `± ${half(d?.ci95_unpaired, pct)}` }),
    el("td", { text: isNum(d?.mean) ? (significant ? "yes" : "no") : "—" }),
  );
}

function renderResult(job) {
  const result = job.result;
  const [name, scenario] = Object.entries(result.scenarios)[0] ?? [];
  if (!scenario) return;
  const base = result.baseline;
  const delta = scenario.delta;
  const tp = delta.throughput_per_hour;
  const significant = isNum(tp?.mean) && Math.abs(tp.mean) > tp.ci95;
  setVerdict(
    isNum(tp?.mean)
      ? `${signed(tp.mean)} ± ${half(tp.ci95)} good units/h at the line's end: ${significant ? "significant" : "not significant (the interval includes 0)"}`
      : `${name}: no good units in either run to compare`,
    significant,
  );
  const lineRows = LINE_FIGURES.map((f) => deltaRow(f.key, f.label, f.baseline(base), delta[f.key], f));
  $("delta-line").replaceChildren(...lineRows);
  const stationRows = [el("tr", { class: "group" }, el("th", { scope: "rowgroup", colspan: 5, text: "Downtime per station (machine-hours down in the window)" }))];
  const specs = S.line?.stations ?? Object.keys(delta.stations).map((id) => ({ id, kind: "process", machines: 1 }));
  for (const spec of specs) {
    const d = delta.stations[spec.id]?.down_h;
    if (!d) continue;
    const fractions = base.stations?.[spec.id]?.state_fractions;
    const units = spec.kind === "process" ? spec.machines : 1;
    const baseline = isNum(fractions?.down) ? fractions.down * units * result.hours : null;
    stationRows.push(deltaRow(`${spec.id}.down_h`, `${spec.id} down`, baseline, d, { better: -1 }));
  }
  $("delta-stations").replaceChildren(...stationRows);
  $("delta-table").hidden = false;
  $("delta-note").hidden = false;
}

async function cancel() {
  if (!S.job) return;
  try {
    const job = await api(linePath(`/whatif/${encodeURIComponent(S.job.id)}`), { method: "DELETE" });
    showProgress({ ...S.job, ...job, result: S.job.result });
    if (FINISHED.has(job.state)) refresh(job.id);
  } catch (error) {
    const message = error instanceof HttpError && error.status === 403 ? "Cancelling needs an operator key." : error.message;
    setText("job-about", message);
  }
}

// -- the list ---------------------------------------------------------------------------------------------------------

async function loadJobs() {
  clearTimeout(S.jobsTimer);
  try {
    const { jobs } = await api(linePath("/whatif"));
    const rows = jobs.map((j) =>
      el(
        "tr",
        { "data-job": j.id, "data-state": j.state },
        el("td", { text: utc(j.created) }),
        el("td", { text: j.request.scenario.name }),
        el("td", { text: j.request.start === "now" ? "now" : "steady state" }),
        el("td", { class: "num", text: num(j.request.hours) }),
        el("td", { class: "num", text: String(j.request.replications) }),
        el("td", { text: j.state === "running" ? `running (${j.progress.done}/${j.progress.total})` : j.state }),
        el("td", {}, showButton(j.id)),
      ),
    );
    $("jobs-table").tBodies[0].replaceChildren(...rows);
    setText("jobs-status", jobs.length ? "" : "No what-ifs kept.");
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) askKey("This service asks for an API key.");
    setText("jobs-status", `What-ifs unavailable: ${error.message}`);
  }
  S.jobsTimer = setTimeout(loadJobs, JOBS_REFRESH_MS);
}

function showButton(id) {
  const button = el("button", { class: "btn secondary small", type: "button", text: "Show" });
  button.addEventListener("click", async () => {
    const job = await refresh(id);
    if (job) follow(job);
  });
  return button;
}

// -- start ------------------------------------------------------------------------------------------------------------

function setupKeyDialog() {
  setupKeys(start, "Viewing what-ifs needs a key with the viewer role; running one needs the operator role.");
}

async function start() {
  document.body.dataset.ready = "false";
  try {
    const lines = await api("lines");
    const wanted = new URLSearchParams(location.search).get("line");
    const summary = lines.find((l) => l.id === wanted) ?? lines[0];
    if (!summary) {
      banner("This service watches no line.");
      return;
    }
    S.lineId = summary.id;
    S.line = await api(linePath());
    setText("line-name", S.line.id);
    document.title = `GigaTwin · ${S.line.id} · what-ifs`;
    banner("");
    await loadScenarios();
    await loadJobs();
    document.body.dataset.ready = "true";
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) {
      askKey(getKey() ? "The stored API key was not accepted. Enter a valid key." : "This service asks for an API key.");
      return;
    }
    banner(`The what-if page could not load: ${error.message}`);
    if (!(error instanceof HttpError)) console.error(error);
  }
}

$("whatif-form").addEventListener("submit", run);
$("scenario-pick").addEventListener("change", pickScenario);
$("start").addEventListener("change", () => {
  $("warmup-field").hidden = $("start").value !== "steady_state";
});
$("cancel").addEventListener("click", cancel);
setupKeyDialog();
start();
