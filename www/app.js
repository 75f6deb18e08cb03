// The demo page. With a bundler you would write `import … from "autumn-track"`; this page is
// plain ES modules, so it imports the package's browser entry by path.
import { AutumnTracker, TrackError } from "/autumn-track/js/browser.js";

const $ = (id) => document.getElementById(id);
// No secret key in the browser: the page's own origin holds it (scripts/demo-server.mjs).
const tracker = new AutumnTracker({ baseUrl: "/api/autumn", maxRetries: 5 });
let lastInput = null;

$("status").textContent = "Tracker ready: events go to /api/autumn on this origin.";

function readForm() {
  const [kind, id] = $("feature").value.split(":");
  const input = { customerId: $("customer").value, value: Number($("value").value) };
  input[kind === "feature" ? "featureId" : "eventName"] = id;
  return input;
}

function describeBalance(response) {
  if (!response) return "—";
  if (response.balance) {
    const b = response.balance;
    return b.unlimited ? `${b.feature_id}: unlimited` : `${b.feature_id}: ${b.remaining} left`;
  }
  if (response.balances) return Object.values(response.balances).map((b) => `${b.feature_id}: ${b.remaining} left`).join(", ");
  return "—";
}

function addRow(input, outcome, attempts, balance, key, cls) {
  const tr = document.createElement("tr");
  const what = `${input.customerId} · ${input.featureId || input.eventName} · ${input.value}`;
  for (const [text, c] of [[new Date().toLocaleTimeString(), ""], [what, ""], [outcome, cls], [attempts ?? "—", ""], [balance, ""], [key || "—", "key"]]) {
    const td = document.createElement("td");
    td.textContent = String(text);
    if (c) td.className = c;
    tr.append(td);
  }
  $("results").tBodies[0].prepend(tr);
}

async function send(input) {
  const fault = $("fault").value;
  if (fault && !input.idempotencyKey) {
    // To script a fault for this exact event, the page picks its key up front.
    input = { ...input, idempotencyKey: crypto.randomUUID() };
    await fetch("/api/mock/faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ scripts: { [input.idempotencyKey]: fault.split(",") } }) });
  }
  $("status").textContent = `Tracking ${input.featureId || input.eventName} for ${input.customerId}…`;
  try {
    const r = await tracker.track(input);
    lastInput = { ...input, idempotencyKey: r.idempotencyKey };
    $("again").disabled = false;
    addRow(input, r.status, r.attempts, r.status === "delivered" ? describeBalance(r.response) : "already recorded", r.idempotencyKey, r.status);
    $("status").textContent = r.status === "delivered" ? "Delivered." : "Duplicate: that key was already recorded, nothing charged twice.";
  } catch (e) {
    const label = e instanceof TrackError ? `${e.code}${e.status ? ` (${e.status})` : ""}` : String(e);
    addRow(input, label, "—", e.message, e.idempotencyKey, "error");
    $("status").textContent = `Not delivered: ${e.message}`;
  }
  refresh();
}

async function refresh() {
  try {
    const [balances, stats] = await Promise.all([
      fetch("/api/mock/balances").then((r) => r.json()),
      fetch("/api/mock/stats").then((r) => r.json()),
    ]);
    $("stats").textContent = `${stats.recorded_events} events recorded · ${stats.duplicates_rejected} duplicates refused · ${stats.requests} requests · faults injected: ${Object.values(stats.faults_injected || {}).reduce((a, b) => a + b, 0)}`;
    const body = $("balances").tBodies[0];
    body.replaceChildren();
    for (const [customer, c] of Object.entries(balances.customers || {})) {
      for (const [feature, b] of Object.entries(c.features || {})) {
        if (!b.usage) continue;
        const tr = document.createElement("tr");
        for (const t of [customer, feature, b.usage, b.unlimited ? "unlimited" : b.remaining]) {
          const td = document.createElement("td");
          td.textContent = String(t);
          tr.append(td);
        }
        body.append(tr);
      }
    }
    if (!body.rows.length) body.innerHTML = '<tr><td colspan="4" class="muted">No usage yet.</td></tr>';
  } catch {
    $("stats").textContent = "The mock is not reachable.";
  }
}

$("track-form").addEventListener("submit", (ev) => { ev.preventDefault(); send(readForm()); });
$("again").addEventListener("click", () => lastInput && send(lastInput));
$("burst").addEventListener("click", () => { for (let i = 0; i < 10; i++) send(readForm()); });
refresh();
setInterval(refresh, 3000);
