#!/usr/bin/env node
// autumn-track against the SDKs users would otherwise pick, side by side in one run (issue 7).
//
//   npm run bench                  full run (~15–20 min on the 2-core build machine)
//   npm run bench -- --quick       smoke mode for CI: every measurement, tiny counts, < 2 min
//   npm run bench -- --only online,coldstart --repeats 5
//
// Prints node:test-style TAP (one test per measurement; `# pass N` / `# fail M`) with the
// results table as TAP comments, and writes bench/results.json (--quick: bench/results-quick.tmp).
// Exits non-zero if any measurement failed. Needs: pkg/ (bash scripts/build.sh), the repo's
// node_modules (playwright-core, wrangler/miniflare), bench/node_modules (npm ci --prefix bench),
// /usr/bin/chromium, and autumn-mock (built with cargo if missing).
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as B from "./lib/browser.mjs";
import { BASELINES, baselineSize, oursSize } from "./lib/size.mjs";
import { BENCH, Tap, cpuModel, loadAvg, removeDir, snapshotPackage, startMock } from "./lib/util.mjs";
import * as W from "./lib/workerd.mjs";
import { renderTable } from "./lib/report.mjs";

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name) => {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  return argv[i].includes("=") ? argv[i].split("=")[1] : argv[i + 1];
};
const QUICK = flag("--quick");
const ALL = ["size", "cost", "online", "offline", "coldstart", "memory", "servers"];
const ONLY = (opt("--only") || ALL.join(",")).split(",").map((s) => s.trim());
for (const o of ONLY) if (!ALL.includes(o)) throw new Error(`--only: unknown measurement ${o} (${ALL.join(", ")})`);

const CFG = QUICK
  ? { repeats: 1, cost: { samples: 10, batch: 20, warm: 50 }, onlineN: 200, conc: 16, offlineN: 200, memory: { total: 1000, chunks: 2 }, coldRounds: 1, servers: { n: 200, latencyN: 20, fleetN: 2000, fleetProcs: 2 } }
  : { repeats: 3, cost: { samples: 100, batch: 50, warm: 500 }, onlineN: 10_000, conc: 16, offlineN: 10_000, memory: { total: 100_000, chunks: 10 }, coldRounds: 15, servers: { n: 10_000, latencyN: 500, fleetN: 100_000, fleetProcs: 4 } };
if (opt("--repeats")) CFG.repeats = Number(opt("--repeats"));
const OUT = opt("--out") || join(BENCH, QUICK ? "results-quick.tmp" : "results.json");
// --before DIR: a copy of another build's pkg/ and js/ (say, the last release), whose size and
// track() cost are measured in this same run beside ours.
const BEFORE = opt("--before");

const tap = new Tap();
const results = {
  date: new Date().toISOString(),
  mode: QUICK ? "quick" : "full",
  config: CFG,
  machine: { cpu: cpuModel(), cores: cpus().length, node: process.version, chromium: null, load: { start: loadAvg(), samples: [] } },
  package: null,
  measurements: {},
};
// The machine is shared: record how busy it was, every 5 s.
const loadTimer = setInterval(() => results.machine.load.samples.push(loadAvg()[0]), 5000);

/** Runs one measurement as one TAP test. `gate`: the --only name it belongs to; `ms`: its
 *  duration when it was measured beforehand (offline and drain share one run). */
async function measure(id, name, fn, { gate = id, ms } = {}) {
  if (!ONLY.includes(gate)) return;
  const t0 = performance.now();
  const took = () => ms ?? performance.now() - t0;
  try {
    results.measurements[id] = await fn();
    tap.ok(name, took());
  } catch (e) {
    results.measurements[id] = { error: String(e?.stack || e) };
    tap.notOk(name, took(), e);
  }
}

let snap;
let mock;
let browser;
let workers;
try {
  snap = snapshotPackage();
  results.package = { wasmBuiltAt: snap.builtAt };
  mock = await startMock(["--auto-create-customers"]);
  const needsBrowser = ONLY.some((o) => ["cost", "online", "offline", "memory"].includes(o));
  if (needsBrowser) {
    browser = await B.startBrowser(snap.dir, BEFORE);
    results.machine.chromium = browser.version;
  }

  await measure("size", "(1) shipped size: ours vs autumn-js, posthog-js, segment, workbox (esbuild --minify)", async () => {
    const out = { ours: await oursSize(snap.dir), baselines: {} };
    if (BEFORE) out.before = await oursSize(BEFORE);
    for (const b of BASELINES) out.baselines[b.id] = { what: b.what, ...(await baselineSize(b)) };
    return out;
  });

  await measure("cost", "(2) track() cost without network (fetch stubbed): ours vs autumn-js", async () => {
    const out = await B.trackCost(browser, mock, CFG.cost);
    if (BEFORE) out.before = await B.trackCost(browser, mock, CFG.cost, "/before/");
    return out;
  });

  await measure("online", `(3) online: ${CFG.onlineN} events to autumn-mock from a page: ours vs autumn-js vs bare fetch`, async () => {
    const reps = [];
    for (let r = 0; r < CFG.repeats; r++) {
      const rep = await B.online(browser, mock, { n: CFG.onlineN, conc: CFG.conc, tag: `${r}` });
      const s = await browser.open();
      try {
        rep.rawFetch = await s.page.evaluate((a) => window.bench.onlineRawFetch(a), { mock: mock.url, n: CFG.onlineN, conc: CFG.conc });
      } finally {
        await s.close();
      }
      if (rep.rawFetch.errors) throw new Error(`bare fetch: ${rep.rawFetch.errors} failed: ${rep.rawFetch.firstError}`);
      reps.push(rep);
      await mock.post("/_mock/reset"); // keep the mock's memory small
    }
    return { n: CFG.onlineN, conc: CFG.conc, repeats: reps };
  });

  let offlineErr;
  const offlineReps = [];
  if (ONLY.includes("offline")) {
    const t0 = performance.now();
    try {
      for (let r = 0; r < CFG.repeats; r++) {
        offlineReps.push(await B.offlineAndDrain(browser, mock, { n: CFG.offlineN, tag: `${r}`, drainTimeoutMs: 120_000 }));
        await mock.post("/_mock/reset");
      }
    } catch (e) {
      offlineErr = e;
    }
    const ms = performance.now() - t0;
    const pick = (keys) => offlineReps.map((rep) => Object.fromEntries(keys.map((k) => [k, rep[k]])));
    await measure("offline", `(4) offline enqueue: ${CFG.offlineN} track() until durable: ours vs raw IndexedDB vs workbox`, async () => {
      if (offlineErr) throw offlineErr;
      return { n: CFG.offlineN, repeats: pick(["enqueueOurs", "floorBatched", "floorPerEvent", "enqueueWorkbox"]) };
    }, { ms });
    await measure("drain", `(5) drain: ${CFG.offlineN}-event backlog after going online: ours vs workbox replayRequests`, async () => {
      if (offlineErr) throw offlineErr;
      return { n: CFG.offlineN, repeats: pick(["drainOurs", "drainWorkbox"]) };
    }, { gate: "offline", ms: 0 });
  }

  await measure("coldstart", "(6) Worker cold start in workerd: ours vs autumn-js vs empty Worker", async () => {
    workers = await W.buildWorkers(snap.dir);
    return W.coldStart(workers, mock, { rounds: CFG.coldRounds });
  });

  await measure("memory", `(7) memory: wasm linear memory and JS heap over ${CFG.memory.total} delivered events`, async () => {
    await mock.post("/_mock/reset");
    return B.memory(browser, mock, { ...CFG.memory, conc: CFG.conc });
  });

  await measure("servers", `(8)–(10) server queues: SQLite and PostgreSQL vs their floors and memory; a fleet draining ${CFG.servers.fleetN}`, async () => {
    await mock.post("/_mock/reset");
    const { servers } = await import("./lib/servers.mjs");
    return servers(mock, CFG.servers);
  });
} catch (e) {
  tap.notOk("bench setup (snapshot, autumn-mock, Chromium)", 0, e);
} finally {
  clearInterval(loadTimer);
  results.machine.load.end = loadAvg();
  const ls = results.machine.load.samples;
  results.machine.load.mean1m = ls.length ? ls.reduce((a, b) => a + b, 0) / ls.length : null;
  results.machine.load.max1m = ls.length ? Math.max(...ls) : null;
  await browser?.close();
  await mock?.stop();
  W.cleanup(workers);
  removeDir(snap?.dir);
}

const table = renderTable(results);
results.table = table;
writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
tap.comment("");
tap.comment(table);
tap.comment(`results: ${OUT}`);
tap.end();
// Exit even if something (a half-started server, a stuck page) still holds the event loop.
process.exit(tap.fail ? 1 : 0);

