// The demo page. With a bundler you would write `import … from "autumn-track"`; this page is
// plain ES modules, so it imports the package's browser entry by path (the demo server serves
// the package under /autumn-track/). No framework, nothing inline: the page runs under a
// strict CSP (scripts from 'self' plus 'wasm-unsafe-eval', no eval, no inline styles).
import { AutumnTracker, TrackError } from "/autumn-track/js/browser.js";
import { drawTimeline } from "/chart.js";

const $ = (id) => document.getElementById(id);
const num = (n) => (typeof n === "number" ? n.toLocaleString("en") : "–");
const BURST_CHUNK = 100;
const MAX_ROWS = 50;
const SAMPLE_MS = 500;
const SERVER_MS = 1000;
const KEEP_MS = 10 * 60_000;

// ---- per-tab session (survives reloads of this tab, so the timeline tells the whole story) --

const SESSION = "autumn-track-demo:v1";
const session = (() => {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) || "null");
    if (s && Array.isArray(s.samples) && Array.isArray(s.marks)) return s;
  } catch { /* private mode or garbage: start afresh */ }
  return { delivered: 0, duplicates: 0, samples: [], marks: [], results: [] };
})();
session.results ||= [];
session.form ||= {};
if (session.samples.length) session.marks.push({ t: Date.now(), label: "reload" });
function saveSession() {
  const cutoff = Date.now() - KEEP_MS;
  session.samples = session.samples.filter((s) => s.t >= cutoff);
  session.marks = session.marks.filter((m) => m.t >= cutoff);
  try { sessionStorage.setItem(SESSION, JSON.stringify(session)); } catch { /* full or unavailable */ }
}

// ---- the tracker ----------------------------------------------------------------------

const state = {
  pending: null, // tracker.pending()
  simulatedOffline: false,
  wasWaiting: 0,
  storageNote: "",
};

const eventCounts = {};

function onTrackerEvent(e) {
  eventCounts[e.type] = (eventCounts[e.type] || 0) + 1;
  switch (e.type) {
    case "delivered":
      if (e.duplicate) session.duplicates++;
      else session.delivered++;
      settleResult(e.idempotencyKey, e.duplicate ? "duplicate" : "delivered", e.duplicate ? "duplicate" : "delivered", e.duplicate ? "already recorded (confirmed by the queue)" : "delivered by the queue");
      break;
    case "dead_letter":
      settleResult(e.idempotencyKey, `dead letter (${e.code})`, "error", "refused for good");
      announce(`Dead letter: Autumn refused a queued event for good (${e.code}${e.status ? `, HTTP ${e.status}` : ""}). It is listed under Dead letters.`);
      soon(refreshDead, 200);
      break;
    case "evicted":
      soon(refreshDead, 200);
      break;
    case "storage_fallback":
      state.storageNote = ` (${e.message})`;
      break;
    default:
      break;
  }
  soon(refreshPending, 100);
}

// No secret key in the browser: the page's own origin holds it (scripts/demo-server.mjs).
// confirmAfterMs: after an attempt that got no answer, a 409 proves a recording only once that
// attempt can no longer be running at Autumn. In production leave the default (2 minutes); the
// bundled local server's longest stall ("claim held" fault) is 3 s, so the demo waits 10 s.
const tracker = new AutumnTracker({ baseUrl: "/api/autumn", maxRetries: 5, confirmAfterMs: 10_000, onEvent: onTrackerEvent });
// For poking around in devtools (and for the end-to-end test).
window.autumnDemo = { tracker, lastBurst: null, eventCounts };

// ---- small helpers ----------------------------------------------------------------------

function announce(text) {
  $("status").textContent = text;
}

/** Runs `fn` once within `ms`, however often it is asked for. */
const timers = new Map();
function soon(fn, ms) {
  if (timers.has(fn)) return;
  timers.set(fn, setTimeout(() => { timers.delete(fn); fn(); }, ms));
}

/** Wraps an async refresher so that calls while it runs coalesce into one more run. */
function coalesced(fn) {
  let running = null;
  let again = false;
  return async function run() {
    if (running) { again = true; return running; }
    running = (async () => {
      do { again = false; await fn(); } while (again);
    })().finally(() => { running = null; });
    return running;
  };
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function postJson(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function clearEmpty(tbody) {
  for (const r of tbody.querySelectorAll("tr.empty")) r.remove();
}

function emptyRow(tbody, cols, text) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  cell(tr, text, "muted").colSpan = cols;
  tbody.replaceChildren(tr);
}

const offlineNow = () => !navigator.onLine || state.simulatedOffline;

// ---- rendering --------------------------------------------------------------------------

function renderNet() {
  const badge = $("net");
  let s;
  let text;
  if (!navigator.onLine) { s = "offline"; text = "Offline"; }
  else if (state.simulatedOffline) { s = "simulated"; text = "Simulated offline"; }
  else { s = "online"; text = "Online"; }
  badge.dataset.state = s;
  $("net-text").textContent = text;
}

/** Sets a tile's number; a tile at 0 is drawn quietly (no alarm-red "0 dead letters"). */
function setTile(id, n) {
  const dd = $(id);
  dd.textContent = num(n);
  dd.parentElement.classList.toggle("zero", n === 0);
}

function renderTracker() {
  const p = state.pending;
  setTile("st-queued", p?.queued);
  setTile("st-inflight", p?.inFlight);
  setTile("st-dead", p?.deadLetters);
  setTile("st-delivered", session.delivered);
  setTile("st-duplicates", session.duplicates);
  $("st-storage").textContent = `Queue storage: ${p ? p.storage : "…"}${state.storageNote}`;
  renderNet();
}

function renderTimeline() {
  drawTimeline($("timeline"), session.samples, session.marks);
  const last = session.samples[session.samples.length - 1];
  const peak = Math.max(0, ...session.samples.map((s) => s.queued));
  $("timeline-desc").textContent = last
    ? `Now ${num(last.queued)} queued and ${num(last.delivered)} delivered by this tab${last.offline ? ", offline" : ""}; the queue peaked at ${num(peak)} in the last ${Math.round((last.t - session.samples[0].t) / 60_000) || "<1"} min.`
    : "No data yet.";
}

// ---- refreshers -------------------------------------------------------------------------

const refreshPending = coalesced(async () => {
  try {
    state.pending = await tracker.pending();
  } catch (e) {
    announce(`pending() failed: ${e.message}`);
    return;
  }
  const waiting = state.pending.queued + state.pending.inFlight;
  if (state.wasWaiting > 0 && waiting === 0) {
    announce(`Queue drained: every waiting event was sent. This tab has delivered ${num(session.delivered)} in all.`);
    soon(refreshServer, 50);
  }
  state.wasWaiting = waiting;
  if (state.pending.deadLetters !== deadShown) soon(refreshDead, 50);
  renderTracker();
});

function sample() {
  const p = state.pending;
  if (p) {
    session.samples.push({ t: Date.now(), queued: p.queued + p.inFlight, delivered: session.delivered, offline: offlineNow() });
    saveSession();
  }
  renderTimeline();
  refreshPending();
}

let deadShown = -1;
const refreshDead = coalesced(async () => {
  let list;
  try {
    list = await tracker.deadLetters();
  } catch (e) {
    announce(`deadLetters() failed: ${e.message}`);
    return;
  }
  deadShown = list.length;
  const tbody = $("dead").tBodies[0];
  $("dead-retry-all").disabled = $("dead-discard-all").disabled = list.length === 0;
  if (!list.length) { emptyRow(tbody, 5, "No dead letters."); return; }
  const rows = list.map((d) => {
    const tr = document.createElement("tr");
    const ev = d.event || {};
    cell(tr, `${d.customerId} · ${ev.feature_id || ev.event_name || "?"} · ${ev.value ?? 1}`, "wrap");
    cell(tr, `${d.code}${d.status ? ` (${d.status})` : ""}`, "error").title = d.message;
    cell(tr, new Date(d.failedAt).toLocaleTimeString());
    cell(tr, d.idempotencyKey, "key");
    const td = cell(tr, "");
    td.className = "actions";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "secondary small";
    retry.textContent = "Retry";
    retry.setAttribute("aria-label", `Retry ${d.idempotencyKey}`);
    retry.addEventListener("click", () => retryDead([d.idempotencyKey]));
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "secondary small";
    discard.textContent = "Discard";
    discard.setAttribute("aria-label", `Discard ${d.idempotencyKey}`);
    discard.addEventListener("click", () => discardDead([d.idempotencyKey]));
    td.append(retry, discard);
    return tr;
  });
  tbody.replaceChildren(...rows);
});

async function retryDead(keys) {
  const n = await tracker.retryDeadLetters(keys);
  announce(`${n} dead letter${n === 1 ? "" : "s"} put back in the queue with ${n === 1 ? "its" : "their"} original key${n === 1 ? "" : "s"}.`);
  refreshDead();
  refreshPending();
}

async function discardDead(keys) {
  const n = await tracker.discard(keys);
  announce(`${n} dead letter${n === 1 ? "" : "s"} discarded.`);
  refreshDead();
  refreshPending();
}

const FAULT_INPUTS = ["f-error", "f-429", "f-drop"];
let serverOk = false;
const refreshServer = coalesced(async () => {
  if (!navigator.onLine) {
    setServerState("offline", serverOk ? "Unreachable (offline): last known values" : "Unreachable (offline)");
    return;
  }
  let stats, balances, faults, demo;
  try {
    [stats, balances, faults, demo] = await Promise.all([
      getJson("/api/mock/stats"),
      getJson("/api/mock/balances"),
      getJson("/api/mock/faults"),
      getJson("/api/demo/offline"),
    ]);
  } catch {
    setServerState("down", "The local Autumn is not reachable");
    return;
  }
  serverOk = true;
  setServerState("online", "autumn-mock");
  if (state.simulatedOffline !== demo.offline) {
    state.simulatedOffline = demo.offline;
    $("sim-offline").checked = demo.offline;
    renderNet();
  }
  session.server = { stats, balances, faults };
  renderServer(stats, balances, faults);
});

function renderServer(stats, balances, faults) {
  setTile("sv-recorded", stats.recorded_events);
  setTile("sv-duplicates", stats.duplicates_rejected);
  setTile("sv-batch-dups", stats.duplicates_dropped_in_batch);
  setTile("sv-requests", stats.requests);
  const injected = Object.entries(stats.faults_injected || {}).filter(([, n]) => n > 0);
  setTile("sv-faults", injected.reduce((a, [, n]) => a + n, 0));
  const active = [];
  if (faults.outage) active.push("outage");
  if (faults.error_500) active.push(`${Math.round(faults.error_500 * 100)}% 500s`);
  if (faults.error_503) active.push(`${Math.round(faults.error_503 * 100)}% 503s`);
  if (faults.rate_limit_429) active.push(`${Math.round(faults.rate_limit_429 * 100)}% 429s`);
  if (faults.drop_after_record) active.push(`${Math.round(faults.drop_after_record * 100)}% dropped after recording`);
  $("sv-detail").textContent =
    `${num(stats.track_requests)} track and ${num(stats.batch_requests)} batch requests. ` +
    `Faults now: ${active.length ? active.join(", ") : "none"}` +
    (injected.length ? `; injected so far: ${injected.map(([k, n]) => `${k.replace(/_/g, " ")} ${num(n)}`).join(", ")}.` : ".");
  // Reflect the server's fault settings (another tab, or curl, may have changed them).
  for (const id of FAULT_INPUTS) {
    const input = $(id);
    if (document.activeElement === input) continue;
    input.value = String(Math.round((faults[input.dataset.fault] || 0) * 100));
    $(`${id}-out`).textContent = `${input.value}%`;
  }
  $("f-outage").checked = !!faults.outage;
  renderBalances(balances);
}

function setServerState(s, text) {
  $("server-state").dataset.state = s;
  $("server-text").textContent = text;
}

function renderBalances(balances) {
  const current = $("customer").value.trim();
  const rows = [];
  for (const [customer, c] of Object.entries(balances.customers || {})) {
    for (const [feature, b] of Object.entries(c.features || {})) {
      if (!b.usage) continue;
      rows.push({ customer, feature, used: b.usage, remaining: b.unlimited ? "unlimited" : b.remaining });
    }
  }
  // The customer in the form first, then the rest by name.
  rows.sort((a, b) => (b.customer === current) - (a.customer === current) || a.customer.localeCompare(b.customer) || a.feature.localeCompare(b.feature));
  const tbody = $("balances").tBodies[0];
  if (!rows.length) { emptyRow(tbody, 4, "No usage yet."); return; }
  tbody.replaceChildren(...rows.slice(0, 30).map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.customer = r.customer;
    tr.dataset.feature = r.feature;
    if (r.customer === current) tr.className = "current";
    cell(tr, r.customer, "wrap");
    cell(tr, r.feature);
    cell(tr, num(r.used), "num used");
    cell(tr, typeof r.remaining === "number" ? num(r.remaining) : r.remaining, "num");
    return tr;
  }));
}

// ---- tracking -------------------------------------------------------------------------

let lastInput = null;

function readForm() {
  const [kind, id] = $("feature").value.split(":");
  const input = { customerId: $("customer").value.trim(), value: Number($("value").value) };
  input[kind === "feature" ? "featureId" : "eventName"] = id;
  return input;
}

const describe = (input) => `${input.customerId} · ${input.featureId || input.eventName} · ${input.value}`;

function describeBalance(response) {
  if (!response) return "—";
  if (response.balance) {
    const b = response.balance;
    return b.unlimited ? `${b.feature_id}: unlimited` : `${b.feature_id}: ${num(b.remaining)} left`;
  }
  if (response.balances) return Object.values(response.balances).map((b) => `${b.feature_id}: ${num(b.remaining)} left`).join(", ");
  return "—";
}

function showResult(r) {
  const tbody = $("results").tBodies[0];
  clearEmpty(tbody);
  const tr = document.createElement("tr");
  if (r.key) tr.dataset.key = r.key;
  cell(tr, new Date(r.t).toLocaleTimeString());
  cell(tr, r.outcome, `outcome ${r.cls}`);
  cell(tr, r.what, "wrap");
  cell(tr, r.attempts ?? "—");
  cell(tr, r.balance);
  cell(tr, r.key || "—", "key");
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
}

/** A queued event's later outcome (the queue delivered it, or set it aside): its row says so. */
function settleResult(key, outcome, cls, balance) {
  const r = session.results.findLast?.((x) => x.key === key && x.cls === "queued");
  if (!r) return;
  Object.assign(r, { outcome, cls, balance });
  saveSession();
  for (const tr of $("results").tBodies[0].rows) {
    if (tr.dataset.key !== key) continue;
    tr.cells[1].textContent = outcome;
    tr.cells[1].className = `outcome ${cls}`;
    tr.cells[4].textContent = balance;
  }
}

function addResult(what, outcome, cls, attempts, balance, key) {
  const r = { t: Date.now(), what, outcome, cls, attempts, balance, key };
  session.results.push(r);
  session.results = session.results.slice(-MAX_ROWS);
  saveSession();
  showResult(r);
}

const errorLabel = (e) => (e instanceof TrackError ? `${e.code}${e.status ? ` (${e.status})` : ""}` : String(e?.message || e));

async function trackOne(input) {
  const fault = $("fault").value;
  if (fault && !input.idempotencyKey) {
    // To script a fault for this exact event, the page picks its key up front.
    input = { ...input, idempotencyKey: crypto.randomUUID() };
    try {
      await postJson("/api/mock/faults", { scripts: { [input.idempotencyKey]: fault.split(",") } });
    } catch {
      announce("Could not script the fault (is the server reachable?); tracking anyway.");
    }
  }
  announce(`Tracking ${input.featureId || input.eventName} for ${input.customerId}…`);
  try {
    const r = await tracker.track(input);
    lastInput = { ...input, idempotencyKey: r.idempotencyKey };
    $("again").disabled = false;
    if (r.status === "delivered") {
      addResult(describe(input), "delivered", "delivered", r.attempts, describeBalance(r.response), r.idempotencyKey);
      announce(`Delivered${r.attempts > 1 ? ` after ${r.attempts} attempts` : ""}.`);
    } else if (r.status === "duplicate") {
      addResult(describe(input), "duplicate", "duplicate", r.attempts, "already recorded", r.idempotencyKey);
      announce("Duplicate: that key was already recorded, nothing charged twice.");
    } else {
      addResult(describe(input), `queued (${r.reason})`, "queued", "—", "waits in the queue", r.idempotencyKey);
      announce(`Queued (${r.reason}): stored in ${state.pending?.storage || "the queue"}, it will be sent with the same key.`);
    }
  } catch (e) {
    addResult(describe(input), errorLabel(e), "error", "—", e.message, e.idempotencyKey);
    announce(`Not delivered: ${e.message}`);
  }
  refreshPending();
  soon(refreshServer, 100);
}

async function burst(n) {
  const input = readForm();
  const button = $("burst");
  const progress = $("burst-progress");
  button.disabled = true;
  progress.hidden = false;
  progress.max = n;
  progress.value = 0;
  $("burst-result").textContent = "";
  announce(`Tracking a burst of ${num(n)}…`);
  const tally = {};
  const keys = [];
  const startedAt = Date.now();
  for (let done = 0; done < n; done += BURST_CHUNK) {
    const size = Math.min(BURST_CHUNK, n - done);
    const outcomes = await Promise.all(Array.from({ length: size }, () =>
      tracker.track({ ...input }).then(
        (r) => { keys.push(r.idempotencyKey); return r.status === "queued" ? `queued (${r.reason})` : r.status; },
        (e) => errorLabel(e),
      )));
    for (const o of outcomes) tally[o] = (tally[o] || 0) + 1;
    progress.value = done + size;
    refreshPending();
  }
  const endedAt = Date.now();
  window.autumnDemo.lastBurst = { n, customerId: input.customerId, keys, tally, startedAt, endedAt };
  const summary = Object.entries(tally).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${num(v)} ${k}`).join(", ");
  const text = `Burst of ${num(n)} in ${((endedAt - startedAt) / 1000).toFixed(1)} s: ${summary}.`;
  $("burst-result").textContent = text;
  $("burst-result").dataset.done = String(n);
  const kinds = Object.keys(tally).map((k) => k.split(" ")[0]);
  const cls = new Set(kinds).size !== 1 ? "mixed" : ["delivered", "duplicate", "queued"].includes(kinds[0]) ? kinds[0] : "error";
  addResult(`${describe(input)} × ${num(n)}`, summary, cls, "—", "—", `${num(keys.length)} keys`);
  announce(text);
  progress.hidden = true;
  button.disabled = false;
  refreshPending();
  soon(refreshServer, 100);
}

// ---- controls ---------------------------------------------------------------------------

$("track-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  trackOne(readForm());
});
$("again").addEventListener("click", () => lastInput && trackOne(lastInput));
$("burst-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const n = Math.floor(Number($("burst-count").value));
  if (n >= 1) burst(n);
});
$("customer").addEventListener("change", () => soon(refreshServer, 50));

// The form's values survive a reload of this tab (the browser's own restore is off for the
// customer field, which has autocomplete="off").
const FORM_FIELDS = ["customer", "feature", "value", "fault", "burst-count"];
for (const id of FORM_FIELDS) {
  const saved = session.form[id];
  if (typeof saved === "string" && saved !== "") {
    const field = $(id);
    if (field.tagName !== "SELECT" || [...field.options].some((o) => o.value === saved)) field.value = saved;
  }
  for (const type of ["input", "change"]) $(id).addEventListener(type, () => { session.form[id] = $(id).value; saveSession(); });
}

$("sim-offline").addEventListener("change", async (ev) => {
  const offline = ev.target.checked;
  try {
    await postJson("/api/demo/offline", { offline });
  } catch (e) {
    ev.target.checked = !offline;
    announce(`Could not switch: ${e.message}`);
    return;
  }
  state.simulatedOffline = offline;
  renderNet();
  if (offline) {
    announce("Simulated offline: the demo server now drops /api/autumn requests. New events will be queued (network_error).");
  } else {
    announce("Simulated offline ended: flushing the queue…");
    // The browser never saw a network change (no `online` event), so tell the tracker:
    // flush() replays the queue now.
    const r = await tracker.flush();
    announce(`Flushed: ${num(r.delivered)} delivered, ${num(r.duplicates)} duplicates, ${num(r.failed)} dead letters${r.remaining ? `; ${num(r.remaining)} still queued` : ""}.`);
  }
  refreshPending();
});

// Fault updates go to the mock one after the other, in order: a slider moved by keyboard fires
// a change per step, and parallel requests could land out of order (45 % after 50 %).
let faultChain = Promise.resolve();
function setFaults(patch, done) {
  faultChain = faultChain
    .then(() => postJson("/api/mock/faults", patch))
    .then(() => announce(done), (e) => announce(`Could not change the server's faults: ${e.message}`))
    .then(() => soon(refreshServer, 50));
  return faultChain;
}

for (const id of FAULT_INPUTS) {
  const input = $(id);
  let timer;
  input.addEventListener("input", () => { $(`${id}-out`).textContent = `${input.value}%`; });
  input.addEventListener("change", () => {
    // Settle on the last of a run of steps, then send that.
    clearTimeout(timer);
    timer = setTimeout(() => setFaults({ [input.dataset.fault]: Number(input.value) / 100 }, `Server fault set: ${input.labels[0].textContent} on ${input.value}% of requests.`), 150);
  });
}
$("f-outage").addEventListener("change", (ev) => {
  const on = ev.target.checked;
  setFaults({ outage: on }, on ? "Outage: the server answers 503 to every request." : "Outage over.");
});
$("f-clear").addEventListener("click", () => setFaults({ clear: true }, "All server faults cleared."));

$("dead-retry-all").addEventListener("click", () => retryDead(undefined));
$("dead-discard-all").addEventListener("click", async () => {
  const list = await tracker.deadLetters();
  discardDead(list.map((d) => d.idempotencyKey));
});

window.addEventListener("online", () => {
  announce("Back online: the tracker is sending the queue.");
  renderNet();
  refreshPending();
  soon(refreshServer, 50);
});
window.addEventListener("offline", () => {
  announce("Offline: new events are stored in the queue and sent when the network is back.");
  renderNet();
  refreshServer();
});

// A service worker keeps a copy of this page and the package, so that it also reloads offline
// (and the queue it shows survives the reload: it lives in IndexedDB).
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch((e) => {
    $("sw-state").textContent = `Offline reloads: unavailable (${e.message})`;
  });
  navigator.serviceWorker.ready.then((reg) => new Promise((resolve) => {
    // Everything this page loaded from its origin (the package's glue, snippets and .wasm
    // included, whatever their names), for the worker to keep.
    const urls = [location.pathname, ...performance.getEntriesByType("resource").map((e) => e.name)]
      .filter((u) => { const url = new URL(u, location.href); return url.origin === location.origin && !url.pathname.startsWith("/api/"); });
    const channel = new MessageChannel();
    channel.port1.onmessage = (ev) => resolve(ev.data);
    reg.active.postMessage({ cache: [...new Set(urls)] }, [channel.port2]);
  })).then(({ cached, failed }) => {
    $("sw-state").textContent = failed ? `Offline reloads: ${failed} file(s) could not be cached` : "Offline reloads: ready (page cached)";
    $("sw-state").dataset.ready = String(!failed);
    $("sw-state").title = `${cached} files cached by the service worker`;
  });
}

// ---- start ------------------------------------------------------------------------------

for (const r of session.results) showResult(r);
if (session.server) {
  // Last known values (e.g. reloaded while offline), until the next refresh.
  renderServer(session.server.stats, session.server.balances, session.server.faults);
  serverOk = true;
}
renderTracker();
renderTimeline();
refreshDead();
refreshServer();
setInterval(sample, SAMPLE_MS);
setInterval(refreshServer, SERVER_MS);
refreshPending().then(() => {
  const p = state.pending;
  const waiting = p ? p.queued + p.inFlight : 0;
  if (waiting > 0) {
    announce(`${num(waiting)} event${waiting === 1 ? "" : "s"} from an earlier visit wait in the queue (${p.storage})${navigator.onLine ? ": sending them now." : ": they will be sent when the network is back."}`);
  } else {
    announce("Tracker ready: events go to /api/autumn on this origin.");
  }
  sample();
  document.body.dataset.ready = "true";
});
