// Durable queues on servers (issue 14): SQLite for one server, PostgreSQL for a fleet — the
// packed package in Node, a real SQLite file and a PostgreSQL server of the test's own
// (127.0.0.1, a temporary data directory), and autumn-mock instances of each test's own.
//
// - crash: a server process tracks and drains while the test SIGKILLs it at random points,
//   50 rounds; on restart every event whose track() resolved is recorded exactly once and
//   nothing is left;
// - fleet: 4 processes on one PostgreSQL queue, 20,000 events at 30% injected faults, one
//   process killed mid-run: each event recorded exactly once, none left, no key in two
//   drainers' requests at once;
// - the basics of each store: `queued` is committed and survives the process, dead letters are
//   rows a person can query.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AutumnTracker } from "autumn-track";
import { child, sleep, startMock, startPostgres } from "./servers.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const CHILD = join(HERE, "queue-child.mjs");
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 50);
const FLEET_EVENTS = Number(process.env.FLEET_EVENTS ?? 20_000);
const FAULTS = {
  // 30% in all: answered failures, recorded-then-dropped, and claims held then released.
  error_500: 0.07,
  error_503: 0.07,
  rate_limit_429: 0.05,
  drop_after_record: 0.07,
  hold_claim: 0.04,
  hold_claim_ms: 1500,
  hold_claim_status: 500,
  retry_after_secs: 1,
};

let dir;
let pg;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "autumn-durable-"));
  pg = await startPostgres();
});
after(() => {
  pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const uid = (p) => `${p}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** Runs the child to completion; its `ok` lines and `done` line. */
async function runChild(env, timeoutMs = 240_000) {
  const c = child(CHILD, [], env);
  const ok = [];
  let done = null;
  c.lines.on("line", (l) => {
    if (l.startsWith("ok ")) ok.push(l.split(" "));
    if (l.startsWith("done ")) done = l.split(" ");
  });
  const timer = setTimeout(() => c.child.kill("SIGKILL"), timeoutMs);
  const r = await c.exited;
  clearTimeout(timer);
  assert.equal(r.code, 0, `child failed (${r.code ?? r.signal}): ${r.stderr}`);
  return { ok, done };
}

test("SQLite: queued is committed to disk and replayed by the next process with the same key, once", async () => {
  const mock = await startMock();
  try {
    const db = join(dir, "basic.db");
    const run = uid("b");
    // Autumn unreachable: every event is queued — on disk.
    const first = await runChild({ SQLITE: db, MOCK: "http://127.0.0.1:9", RUN: run, START: "0", COUNT: "20", CONCURRENCY: "4" });
    assert.equal(first.ok.length, 20);
    for (const [, , status, storage] of first.ok) assert.deepEqual([status, storage], ["queued", "sqlite"]);
    // The next process, Autumn back: each recorded once.
    const second = await runChild({ SQLITE: db, MOCK: mock.url, RUN: run, COUNT: "0", DRAIN: "1", DRAIN_MS: "20000" });
    assert.equal(second.done[1], "0", `left: ${second.done}`);
    const counts = await mock.counts(Array.from({ length: 10 }, (_, i) => `q_${run}_${i}`));
    for (const [, key] of first.ok) assert.equal(counts.get(key), 1, key);
  } finally {
    mock.stop();
  }
});

test("PostgreSQL: the tables are created, queued events survive the process, dead letters are rows", async () => {
  const pgmod = await import("pg");
  const Pool = pgmod.default?.Pool ?? pgmod.Pool;
  const mock = await startMock();
  const pool = new Pool({ connectionString: pg.url, max: 4 });
  try {
    const name = uid("pgq");
    const t = new AutumnTracker({ secretKey: "am_sk_test_pg", baseUrl: "http://127.0.0.1:9", queue: { postgres: pool }, queueName: name, maxRetries: 0 });
    const good = await t.track({ customerId: "cus_pg", featureId: "api_calls" });
    const bad = await t.track({ customerId: "cus_pg", featureId: "no_such_feature" });
    assert.deepEqual([good.status, good.storage, bad.status], ["queued", "postgres", "queued"]);
    t.close();
    const { rows } = await pool.query("SELECT key, seq FROM autumn_track_queue WHERE queue = $1 ORDER BY seq", [name]);
    assert.deepEqual(rows.map((r) => r.key), [good.idempotencyKey, bad.idempotencyKey], "committed, in order");
    // Another tracker (another process, as far as the database knows), Autumn back.
    const events = [];
    const t2 = new AutumnTracker({ secretKey: "am_sk_test_pg", baseUrl: mock.url, queue: { postgres: pool }, queueName: name, onEvent: (e) => events.push(e) });
    let f;
    for (let i = 0; i < 40; i++) {
      f = await t2.flush();
      if (f.remaining === 0) break;
      await sleep(250);
    }
    assert.equal(f.remaining, 0, JSON.stringify(f));
    assert.equal((await mock.get(`/_mock/events?idempotency_key=${good.idempotencyKey}`)).events.length, 1);
    const dead = await pool.query("SELECT key, customer_id, code, status, body FROM autumn_track_dead WHERE queue = $1", [name]);
    assert.equal(dead.rows.length, 1);
    assert.deepEqual([dead.rows[0].key, dead.rows[0].customer_id, dead.rows[0].code, dead.rows[0].status], [bad.idempotencyKey, "cus_pg", "feature_not_found", 404]);
    assert.equal(JSON.parse(dead.rows[0].body).feature_id, "no_such_feature", "the wire body, to re-send by hand");
    assert.ok(events.some((e) => e.type === "dead_letter" && e.idempotencyKey === bad.idempotencyKey));
    t2.close();
  } finally {
    await pool.end();
    mock.stop();
  }
});

test(`crash: ${ROUNDS} rounds of SIGKILL at random points; every resolved event recorded exactly once, none left`, { timeout: 600_000 }, async () => {
  const mock = await startMock();
  try {
    await mock.faults(FAULTS);
    const db = join(dir, "crash.db");
    const run = uid("c");
    const resolved = new Set();
    const started = new Set();
    const PER = 40;
    for (let round = 0; round < ROUNDS; round++) {
      const c = child(CHILD, [], { SQLITE: db, MOCK: mock.url, RUN: run, START: String(round * PER), COUNT: String(PER), CONCURRENCY: "8" });
      for (let i = 0; i < PER; i++) started.add(`${run}-${round * PER + i}`);
      c.lines.on("line", (l) => l.startsWith("ok ") && resolved.add(l.split(" ")[1]));
      // Anywhere from opening the database to the middle of the drain.
      await sleep(30 + Math.floor(Math.random() * 900));
      c.child.kill("SIGKILL");
      await c.exited;
    }
    await mock.faults({ clear: true });
    // Restart: what is left is replayed (leases of killed sends run out within 60 s).
    const last = await runChild({ SQLITE: db, MOCK: mock.url, RUN: run, COUNT: "0", DRAIN: "1", DRAIN_MS: "150000" });
    assert.equal(last.done[1], "0", `left: ${last.done}`);
    assert.equal(last.done[2], "0", `dead letters: ${last.done}`);
    const counts = await mock.counts(Array.from({ length: 10 }, (_, i) => `q_${run}_${i}`));
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "no event recorded twice");
    const lost = [...resolved].filter((k) => counts.get(k) !== 1);
    assert.deepEqual(lost, [], "every event whose track() resolved is recorded");
    const stray = [...counts.keys()].filter((k) => !started.has(k));
    assert.deepEqual(stray, []);
    console.log(`# crash: ${ROUNDS} rounds, ${started.size} tracked, ${resolved.size} resolved before a kill, ${counts.size} recorded`);
  } finally {
    mock.stop();
  }
});

test(`fleet: 4 processes on one PostgreSQL queue, ${FLEET_EVENTS} events at 30% faults, one killed mid-run`, { timeout: 900_000 }, async () => {
  const mock = await startMock();
  try {
    await mock.faults(FAULTS);
    const run = uid("f");
    const sendlog = join(dir, `sends-${run}.log`);
    writeFileSync(sendlog, "");
    const per = FLEET_EVENTS / 4;
    const common = { POSTGRES: pg.url, MOCK: mock.url, RUN: run, QUEUE_NAME: `fleet-${run}`, CONCURRENCY: "16", CUSTOMERS: "20", SENDLOG: sendlog, BATCH: "500" };
    const resolved = new Set();
    const procs = [0, 1, 2, 3].map((n) => {
      const c = child(CHILD, [], { ...common, START: String(n * per), COUNT: String(per), DRAIN: n === 0 ? "0" : "1", DRAIN_MS: "240000" });
      c.lines.on("line", (l) => l.startsWith("ok ") && resolved.add(l.split(" ")[1]));
      return c;
    });
    // Kill process 0 once it is well under way.
    let victimKilledAt = 0;
    for (let i = 0; i < 600 && !victimKilledAt; i++) {
      await sleep(100);
      const mine = [...resolved].filter((k) => Number(k.split("-")[1]) < per).length;
      if (mine > per * 0.4) {
        procs[0].child.kill("SIGKILL");
        victimKilledAt = Date.now();
      }
    }
    assert.ok(victimKilledAt, "process 0 got under way");
    const results = await Promise.all(procs.map((p) => p.exited));
    for (const [i, r] of results.entries()) if (i > 0) assert.equal(r.code, 0, `process ${i}: ${r.stderr}`);
    await mock.faults({ clear: true });
    // One more process drains what is left (the victim's leased sends, a straggler's backoff).
    const last = await runChild({ ...common, START: "0", COUNT: "0", DRAIN: "1", DRAIN_MS: "150000" });
    assert.equal(last.done[1], "0", `left: ${last.done}`);
    const counts = await mock.counts(Array.from({ length: 20 }, (_, i) => `q_${run}_${i}`));
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "no event recorded twice");
    const lost = [...resolved].filter((k) => counts.get(k) !== 1);
    assert.deepEqual(lost.slice(0, 10), [], `every resolved event recorded (${lost.length} not)`);
    // The survivors tracked all of theirs: all recorded.
    for (let i = per; i < FLEET_EVENTS; i++) assert.equal(counts.get(`${run}-${i}`), 1, `${run}-${i}`);
    // No key in two processes' requests at once.
    const open = new Map(); // key → [{ pid, start, end }]
    const intervals = new Map();
    for (const line of readFileSync(sendlog, "utf8").split("\n")) {
      if (!line) continue;
      const [what, pid, t, ...keys] = line.split(" ");
      for (const k of keys) {
        if (what === "start") {
          const iv = { pid, start: Number(t), end: victimKilledAt || Infinity };
          (intervals.get(k) ?? intervals.set(k, []).get(k)).push(iv);
          (open.get(`${pid} ${k}`) ?? open.set(`${pid} ${k}`, []).get(`${pid} ${k}`)).push(iv);
        } else {
          const iv = open.get(`${pid} ${k}`)?.shift();
          if (iv) iv.end = Number(t);
        }
      }
    }
    let overlaps = 0;
    for (const [k, ivs] of intervals) {
      for (let a = 0; a < ivs.length; a++)
        for (let b = a + 1; b < ivs.length; b++)
          if (ivs[a].pid !== ivs[b].pid && ivs[a].start < ivs[b].end && ivs[b].start < ivs[a].end) {
            overlaps++;
            if (overlaps < 5) console.log(`# overlap: ${k} ${JSON.stringify(ivs[a])} ${JSON.stringify(ivs[b])}`);
          }
    }
    assert.equal(overlaps, 0, "no key sent by two processes at once");
    const stats = await mock.get("/_mock/stats");
    console.log(`# fleet: ${FLEET_EVENTS} events, ${resolved.size} resolved, ${counts.size} recorded, ${intervals.size} keys sent; mock ${JSON.stringify({ requests: stats.requests_total ?? stats.requests, duplicates: stats.duplicates_rejected })}`);
  } finally {
    mock.stop();
  }
});
