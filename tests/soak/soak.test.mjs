// Soak (issue #4): 20,000 events through autumn-mock with 20% injected failures — 500s,
// 503s with Retry-After, 429s and "recorded, then the connection dropped" — from Node, whose
// queue is in memory. Every event must be recorded exactly once, with nothing left queued and
// nothing dead-lettered. Bounded: SOAK_EVENTS (default 20000), SOAK_SECONDS (default 240).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

const root = new URL("../../", import.meta.url);
const EVENTS = Number(process.env.SOAK_EVENTS || 20000);
const SECONDS = Number(process.env.SOAK_SECONDS || 240);
const mockBin = new URL("target/release/autumn-mock", root).pathname;
let mock;
let url;

before(async () => {
  assert.ok(existsSync(new URL("pkg/autumn_track_bg.wasm", root)), "pkg/ is missing: run scripts/build.sh");
  assert.ok(existsSync(mockBin), "autumn-mock is missing: cargo build --release -p autumn-mock");
  mock = spawn(mockBin, ["--port", "0", "--auto-create-customers", "--exit-on-stdin-eof", "--seed", "7", "--max-events", "1000000"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: mock.stdout });
    lines.once("line", (l) => resolve(l.replace("listening on ", "").trim()));
    mock.once("exit", (c) => reject(new Error(`autumn-mock exited ${c}`)));
  });
});

after(() => mock?.kill());

const post = (path, body) => fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const get = async (path) => (await fetch(url + path)).json();

test(`${EVENTS} events, 20% faults: each recorded exactly once, nothing left`, { timeout: (SECONDS + 60) * 1000 }, async () => {
  const { AutumnTracker } = await import(new URL("js/node.js", root));
  await post("/_mock/faults", { error_500: 0.05, error_503: 0.05, rate_limit_429: 0.05, drop_after_record: 0.05, retry_after_secs: 1 });
  const seen = { queued: 0, dead: 0, fallback: 0 };
  const t = new AutumnTracker({
    secretKey: "am_sk_test_soak",
    baseUrl: url,
    maxRetries: 2,
    // This mock's requests end with their answer (no held claims among these faults), so an
    // attempt without an answer cannot outlive 10 s: a shorter window than Autumn's 2 min keeps
    // the soak inside its budget, and still makes every recorded-then-dropped event wait it out.
    confirmAfterMs: 10_000,
    timeoutMs: 5000,
    queueName: "soak",
    maxQueueSize: EVENTS,
    onEvent: (e) => {
      if (e.type === "queued") seen.queued++;
      if (e.type === "dead_letter" || e.type === "evicted") seen.dead++;
      if (e.type === "storage_fallback") seen.fallback++;
    },
  });
  const started = Date.now();
  const statuses = { delivered: 0, duplicate: 0, queued: 0 };
  const customers = 50;
  let next = 0;
  // 64 callers tracking concurrently, as a busy server would.
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < EVENTS) {
        const i = next++;
        const r = await t.track({ customerId: `soak_${i % customers}`, featureId: "api_calls", properties: { i } });
        statuses[r.status]++;
      }
    }),
  );
  const tracked = Date.now();
  // Faults off for the drain's tail only after a while: the queue must cope with them first.
  let f;
  for (let round = 0; ; round++) {
    if (round === 20) await post("/_mock/faults", { clear: true });
    f = await t.flush();
    if (f.remaining === 0) break;
    assert.ok(Date.now() - started < SECONDS * 1000, `not drained within ${SECONDS} s: ${JSON.stringify(f)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const drained = Date.now();
  const { events } = await get("/_mock/events?feature_id=api_calls");
  const keys = new Map();
  for (const e of events) keys.set(e.idempotency_key, (keys.get(e.idempotency_key) || 0) + 1);
  const twice = [...keys.values()].filter((n) => n > 1).length;
  const stats = await get("/_mock/stats");
  const pending = await t.pending();
  const summary = {
    events: EVENTS,
    recorded: events.length,
    uniqueKeys: keys.size,
    recordedTwice: twice,
    results: statuses,
    queuedEvents: seen.queued,
    deadLetters: pending.deadLetters,
    remaining: pending.queued,
    faultsInjected: stats.faults_injected,
    duplicatesRejected: stats.duplicates_rejected,
    duplicatesDroppedInBatch: stats.duplicates_dropped_in_batch,
    trackSeconds: (tracked - started) / 1000,
    drainSeconds: (drained - tracked) / 1000,
  };
  console.log(`# soak ${JSON.stringify(summary)}`);
  assert.equal(twice, 0, "no key recorded twice");
  assert.equal(keys.size, EVENTS, "every event recorded");
  assert.equal(events.length, EVENTS);
  assert.equal(pending.queued, 0, "nothing left queued");
  assert.equal(pending.deadLetters, 0, "nothing dead-lettered");
  assert.equal(seen.dead, 0);
  assert.ok(Object.values(stats.faults_injected).reduce((a, b) => a + b, 0) > EVENTS * 0.1, "faults were really injected");
  t.close();
});
