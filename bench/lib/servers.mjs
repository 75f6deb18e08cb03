// (8)–(10) Server queues (issue 14), in Node: durable enqueue with SQLite and PostgreSQL against
// the raw floor of the same inserts; track() latency with each store against memory; a fleet of
// processes draining a PostgreSQL backlog against Autumn's ceiling (10 batch requests a second
// of 1,000 items). PostgreSQL is a server of the bench's own (tests/node/servers.mjs), on
// 127.0.0.1, in a temporary directory.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { REPO } from "./util.mjs";

const KEY = "am_sk_test_bench";
const DEFER = Symbol.for("autumn-track.defer");
const quantile = (xs, q) => {
  const a = Float64Array.from(xs).sort();
  const i = (a.length - 1) * q;
  return a[Math.floor(i)] + (a[Math.ceil(i)] - a[Math.floor(i)]) * (i - Math.floor(i));
};
const input = (i, tag) => ({ customerId: `srv_${tag}_${i % 50}`, featureId: "api_calls", value: 1, properties: { plan: "pro", n: i } });

async function libs() {
  const { AutumnTracker } = await import(join(REPO, "js/node.js"));
  const pg = await import("pg");
  const { startPostgres } = await import(join(REPO, "tests/node/servers.mjs"));
  return { AutumnTracker, Pool: pg.default?.Pool ?? pg.Pool, startPostgres };
}

/** Inserts `rows` JSON records the way a queue row is stored, `perTx` per transaction. */
async function floorSqlite(path, rows, perTx) {
  let db;
  try {
    const { DatabaseSync } = await import("node:sqlite");
    db = new DatabaseSync(path);
  } catch {
    const B = (await import("better-sqlite3")).default;
    db = new B(path);
  }
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  db.exec("CREATE TABLE IF NOT EXISTS t (queue TEXT, key TEXT, seq DOUBLE PRECISION, sent_at DOUBLE PRECISION, record TEXT, PRIMARY KEY (queue, key))");
  const ins = db.prepare("INSERT INTO t (queue, key, seq, sent_at, record) VALUES (?, ?, ?, ?, ?)");
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += perTx) {
    db.exec("BEGIN IMMEDIATE");
    for (const r of rows.slice(i, i + perTx)) ins.run("floor", r.key, r.seq, null, JSON.stringify(r));
    db.exec("COMMIT");
  }
  const s = (performance.now() - t0) / 1000;
  db.close();
  return rows.length / s;
}

async function floorPostgres(pool, rows, perTx) {
  await pool.query("CREATE TABLE IF NOT EXISTS floor_t (queue TEXT, key TEXT, seq DOUBLE PRECISION, sent_at DOUBLE PRECISION, record TEXT, PRIMARY KEY (queue, key))");
  await pool.query("TRUNCATE floor_t");
  const t0 = performance.now();
  // The same concurrency as the tracker's: one transaction at a time, `perTx` inserts in each.
  const c = await pool.connect();
  try {
    for (let i = 0; i < rows.length; i += perTx) {
      await c.query("BEGIN");
      for (const r of rows.slice(i, i + perTx)) {
        await c.query("INSERT INTO floor_t (queue, key, seq, sent_at, record) VALUES ($1, $2, $3, $4, $5)", ["floor", r.key, r.seq, null, JSON.stringify(r)]);
      }
      await c.query("COMMIT");
    }
  } finally {
    c.release();
  }
  return rows.length / ((performance.now() - t0) / 1000);
}

/** Rows as the tracker stores them (a record's JSON), for the floors. */
const sampleRows = (n, tag) =>
  Array.from({ length: n }, (_, i) => ({
    v: 1,
    key: `${tag}-${i}`,
    seq: 1.8e12 + i,
    customer: `srv_${tag}_${i % 50}`,
    body: JSON.stringify({ customer_id: `srv_${tag}_${i % 50}`, feature_id: "api_calls", value: 1, properties: { plan: "pro", n: i }, idempotency_key: `${tag}-${i}` }),
    createdAt: 1.8e12 + i,
    attempts: 0,
    nextAt: 1.8e12 + i,
  }));

export async function servers(mock, { n, latencyN, fleetN, fleetProcs }) {
  const { AutumnTracker, Pool, startPostgres } = await libs();
  const dir = mkdtempSync(join(tmpdir(), "autumn-bench-srv-"));
  const pg = await startPostgres();
  const pool = new Pool({ connectionString: pg.url, max: 8 });
  const out = { n };
  try {
    // (8) durable enqueue: n events handed to each store at once, until all committed.
    const enqueue = async (queue, tag) => {
      const t = new AutumnTracker({ secretKey: KEY, baseUrl: mock.url, queue, queueName: `enq-${tag}`, maxQueueSize: 1_000_000 });
      await t.pending();
      const t0 = performance.now();
      const rs = await Promise.all(Array.from({ length: n }, (_, i) => t[DEFER](input(i, tag))));
      const s = (performance.now() - t0) / 1000;
      const bad = rs.filter((r) => r.status !== "queued").length;
      t.close();
      if (bad) throw new Error(`${bad} of ${n} not committed`);
      return n / s;
    };
    out.enqueue = {
      sqlite: await enqueue({ sqlite: join(dir, "enq.db") }, "sq"),
      sqliteFloor100: await floorSqlite(join(dir, "floor.db"), sampleRows(n, "f1"), 100),
      sqliteFloor1: await floorSqlite(join(dir, "floor1.db"), sampleRows(Math.min(n, 1000), "f2"), 1),
      postgres: await enqueue({ postgres: pool }, "pg"),
      postgresFloor100: await floorPostgres(pool, sampleRows(n, "f3"), 100),
      postgresFloor1: await floorPostgres(pool, sampleRows(Math.min(n, 1000), "f4"), 1),
      memory: await enqueue("memory", "mem"),
    };
    // (9) track() latency, online, one at a time: each store against memory.
    const latency = async (queue, tag) => {
      const t = new AutumnTracker({ secretKey: KEY, baseUrl: mock.url, queue, queueName: `lat-${tag}` });
      await t.pending();
      for (let i = 0; i < 50; i++) await t.track(input(i, `w${tag}`));
      const ms = [];
      for (let i = 0; i < latencyN; i++) {
        const t0 = performance.now();
        const r = await t.track(input(i, tag));
        ms.push(performance.now() - t0);
        if (r.status !== "delivered") throw new Error(`${tag}: ${r.status}`);
      }
      t.close();
      return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99) };
    };
    out.latency = {
      memory: await latency("memory", "lm"),
      sqlite: await latency({ sqlite: join(dir, "lat.db") }, "ls"),
      postgres: await latency({ postgres: pool }, "lp"),
    };
    // (10) fleet drain: a PostgreSQL backlog, then `fleetProcs` processes drain it.
    const name = "fleet-bench";
    // (It sends nothing itself: its Autumn is a port fetch refuses, so no attempt leaves.)
    const filler = new AutumnTracker({ secretKey: KEY, baseUrl: "http://127.0.0.1:9", queue: { postgres: pool }, queueName: name, maxQueueSize: 1_000_000 });
    await filler.pending();
    for (let i = 0; i < fleetN; i += 10_000) {
      await Promise.all(Array.from({ length: Math.min(10_000, fleetN - i) }, (_, j) => filler[DEFER](input(i + j, "fl"))));
    }
    filler.close();
    const before = await mock.recorded();
    const child = `
      import { AutumnTracker } from ${JSON.stringify(join(REPO, "js/node.js"))};
      import pg from "pg";
      const pool = new pg.Pool({ connectionString: process.env.PG, max: 4 });
      const t = new AutumnTracker({ secretKey: "${KEY}", baseUrl: process.env.MOCK, queue: { postgres: pool }, queueName: "${name}", maxQueueSize: 1000000 });
      for (;;) { const f = await t.flush(); if (f.remaining === 0) break; await new Promise((r) => setTimeout(r, 50)); }
      t.close(); await pool.end();`;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: fleetProcs }, () => new Promise((resolve, reject) => {
        const c = spawn(process.execPath, ["--input-type=module", "-e", child], { cwd: REPO, env: { ...process.env, PG: pg.url, MOCK: mock.url }, stdio: ["ignore", "inherit", "inherit"] });
        c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`a drainer exited ${code}`))));
      })),
    );
    const secs = (performance.now() - t0) / 1000;
    const recorded = (await mock.recorded()) - before;
    if (recorded !== fleetN) throw new Error(`the fleet recorded ${recorded} of ${fleetN}`);
    out.fleet = { n: fleetN, procs: fleetProcs, seconds: secs, eventsPerSec: fleetN / secs, ceilingSeconds: fleetN / 10_000 };
  } finally {
    await pool.end();
    pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
