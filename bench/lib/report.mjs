// The results table (markdown) and the verdicts against the issue's targets.
import { quantile, spread } from "./util.mjs";

const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const med = (xs) => quantile(xs, 0.5);
/** "median [min–max]" over repeats (just the value when there is one repeat). */
const mm = (xs, d = 0, unit = "") => {
  const s = spread(xs);
  if (!s.n) return "–";
  return s.n > 1 ? `${f(s.median, d)}${unit} [${f(s.min, d)}–${f(s.max, d)}]` : `${f(s.median, d)}${unit}`;
};
const verdict = (ok) => (ok ? "**met**" : "**missed**");

/** Summaries of each measurement (also stored in results.json) and the table. */
export function summarize(results) {
  const m = results.measurements;
  const s = {};
  if (m.size && !m.size.error) {
    const o = m.size.ours.total;
    s.size = { oursGzip: o.gzip, oursBrotli: o.brotli, met: o.gzip < 24 * 1024, baselines: Object.fromEntries(Object.entries(m.size.baselines).map(([k, v]) => [k, { gzip: v.gzip, brotli: v.brotli }])) };
    if (m.size.before) s.size.before = { gzip: m.size.before.total.gzip, brotli: m.size.before.total.brotli };
  }
  if (m.cost && !m.cost.error) {
    s.cost = { ...m.cost, met: m.cost.validate.median < 5 };
  }
  if (m.online && !m.online.error) {
    const r = m.online.repeats;
    const col = (impl) => ({ eventsPerSec: r.map((x) => x[impl].eventsPerSec), p50: med(r.map((x) => x[impl].p50)), p99: med(r.map((x) => x[impl].p99)) });
    s.online = { ours: col("ours"), autumnJs: col("autumnJs"), rawFetch: col("rawFetch") };
  }
  if (m.offline && !m.offline.error) {
    const r = m.offline.repeats;
    const col = (k) => r.map((x) => x[k].eventsPerSec);
    const ours = col("enqueueOurs");
    const floor = col("floorBatched");
    s.offline = { ours, floorBatched: floor, floorPerEvent: col("floorPerEvent"), workbox: col("enqueueWorkbox"), floorOverOurs: med(floor) / med(ours), met: med(floor) / med(ours) <= 2 };
  }
  if (m.drain && !m.drain.error) {
    const r = m.drain.repeats;
    const ours = r.map((x) => x.drainOurs.seconds);
    s.drain = { ours, workbox: r.map((x) => x.drainWorkbox.seconds), met: med(ours) < 3 };
  }
  if (m.coldstart && !m.coldstart.error) {
    const runs = m.coldstart.runs;
    const total = (id) => runs[id].map((x) => x.total);
    // Paired per round (the variants run interleaved): each round's difference, then the median.
    const over = (id, base) => med(runs[id].map((x, i) => x.total - runs[base][i].total));
    s.coldstart = {
      total: Object.fromEntries(Object.keys(runs).map((id) => [id, med(total(id))])),
      ready: Object.fromEntries(Object.keys(runs).map((id) => [id, med(runs[id].map((x) => x.ready))])),
      firstRequest: Object.fromEntries(Object.keys(runs).map((id) => [id, med(runs[id].map((x) => x.firstRequest))])),
      oursOverEmpty: over("ours", "empty"),
      oursOverRawFetch: over("ours", "rawFetch"),
      autumnJsOverEmpty: over("autumnJs", "empty"),
      autumnJsOverRawFetch: over("autumnJs", "rawFetch"),
      rawFetchOverEmpty: over("rawFetch", "empty"),
      oursLoadOverEmpty: runs.oursLoad ? over("oursLoad", "empty") : null,
      rounds: runs.empty.length,
      bundles: m.coldstart.bundles,
    };
    s.coldstart.met = s.coldstart.oursOverEmpty < 10;
  }
  if (m.memory && !m.memory.error) {
    const sm = m.memory.samples;
    const first = sm[1] ?? sm[0]; // after the first chunk: caches warm, the database open
    const last = sm[sm.length - 1];
    s.memory = {
      total: m.memory.total,
      wasmStart: sm[0].wasmMemory,
      wasmAfterFirst: first.wasmMemory,
      wasmEnd: last.wasmMemory,
      heapAfterFirst: first.jsHeapUsed,
      heapEnd: last.jsHeapUsed,
      wasmSeries: sm.map((x) => x.wasmMemory),
      heapSeries: sm.map((x) => x.jsHeapUsed),
    };
    s.memory.met = s.memory.wasmEnd === s.memory.wasmAfterFirst && Math.abs(s.memory.heapEnd - s.memory.heapAfterFirst) < 2 * 1024 * 1024;
  }
  return s;
}

export function renderTable(results) {
  const s = summarize(results);
  results.summary = s;
  const m = results.measurements;
  const rows = [];
  const err = (id) => m[id]?.error && rows.push(`| ${id} | **failed**: ${String(m[id].error).split("\n")[0].slice(0, 160)} | | |`);
  if (s.size) {
    const b = s.size.baselines;
    rows.push(
      `| (1) shipped size to call \`track()\`, gzip / brotli | ${kb(s.size.oursGzip)} / ${kb(s.size.oursBrotli)} | ${s.size.before ? `before (--before) ${kb(s.size.before.gzip)} / ${kb(s.size.before.brotli)} · ` : ""}autumn-js ${kb(b["autumn-js"].gzip)} / ${kb(b["autumn-js"].brotli)} · posthog-js ${kb(b["posthog-js"].gzip)} / ${kb(b["posthog-js"].brotli)} · segment ${kb(b.segment.gzip)} / ${kb(b.segment.brotli)} · workbox queue only ${kb(b.workbox.gzip)} / ${kb(b.workbox.brotli)} | < 24 KB gzip: ${verdict(s.size.met)} |`,
    );
  } else err("size");
  if (s.cost) {
    const c = s.cost;
    rows.push(
      `| (2) \`track()\` cost without network, µs per call, median (p99) | \`validate()\` ${f(c.validate.median, 1)} (${f(c.validate.p99, 1)}) · \`track()\` queue off ${f(c.trackOff.median)} (${f(c.trackOff.p99)}) · queue memory ${f(c.trackMemory.median)} (${f(c.trackMemory.p99)}) | ${c.before ? `before (--before): \`validate()\` ${f(c.before.validate.median, 1)} (${f(c.before.validate.p99, 1)}) · \`track()\` queue off ${f(c.before.trackOff.median)} · queue memory ${f(c.before.trackMemory.median)} · ` : ""}autumn-js \`track()\` ${f(c.autumnJs.median)} (${f(c.autumnJs.p99)})${c.stubOnly ? " · the fetch stub alone " + f(c.stubOnly.median, 1) + " (" + f(c.stubOnly.p99, 1) + ")" : ""} | < 5 µs median (\`validate()\`): ${verdict(c.met)} |`,
    );
  } else err("cost");
  if (s.online) {
    const o = s.online;
    const cell = (x) => `${mm(x.eventsPerSec)} events/s, p50 ${f(x.p50, 1)} / p99 ${f(x.p99, 1)} ms`;
    rows.push(`| (3) online, ${m.online.n} events, ${m.online.conc} in flight | ${cell(o.ours)} | autumn-js ${cell(o.autumnJs)} · bare \`fetch()\` ${cell(o.rawFetch)} | – |`);
  } else err("online");
  if (s.offline) {
    const o = s.offline;
    rows.push(
      `| (4) offline enqueue, ${m.offline.n} \`track()\` until durable, events/s | ${mm(o.ours)} | raw IndexedDB floor (100/tx) ${mm(o.floorBatched)} · 1 tx per event ${mm(o.floorPerEvent)} · workbox \`pushRequest\` ${mm(o.workbox)} | within 2× floor: ${verdict(o.met)} (floor is ${f(o.floorOverOurs, 1)}× faster) |`,
    );
  } else err("offline");
  if (s.drain) {
    rows.push(`| (5) drain a ${m.drain.n}-event backlog after going online, s | ${mm(s.drain.ours, 2)} | workbox \`replayRequests\` ${mm(s.drain.workbox, 2)} | < 3 s: ${verdict(s.drain.met)} |`);
  } else err("drain");
  if (s.coldstart) {
    const c = s.coldstart;
    rows.push(
      `| (6) Worker cold start in workerd: fresh Miniflare → first response, ms over an empty Worker (median of ${c.rounds}, paired) | +${f(c.oursOverEmpty, 1)} (+${f(c.oursOverRawFetch, 1)} over a bare \`fetch()\` Worker${c.oursLoadOverEmpty !== null ? "; importing the package alone +" + f(c.oursLoadOverEmpty, 1) : ""}) | autumn-js +${f(c.autumnJsOverEmpty, 1)} (+${f(c.autumnJsOverRawFetch, 1)}) · bare \`fetch()\` +${f(c.rawFetchOverEmpty, 1)}; empty Worker itself ${f(c.total.empty)} ms | < 10 ms: ${verdict(c.met)} |`,
    );
  } else err("coldstart");
  if (s.memory) {
    const x = s.memory;
    const mb = (b) => `${(b / 1048576).toFixed(2)} MB`;
    rows.push(
      `| (7) memory over ${x.total} delivered events (after GC) | wasm ${mb(x.wasmStart)} → ${mb(x.wasmAfterFirst)} after the first ${x.total / (m.memory.samples.length - 1)} → ${mb(x.wasmEnd)}; JS heap ${mb(x.heapAfterFirst)} → ${mb(x.heapEnd)} | – | flat: ${verdict(x.met)} |`,
    );
  } else err("memory");
  if (m.servers && !m.servers.error) {
    const x = m.servers;
    const e = x.enqueue;
    const r = (a) => f(a, 0);
    const within = (ours, floor) => floor / ours <= 2;
    rows.push(
      `| (8) durable enqueue on a server, ${x.n} events committed, events/s | SQLite ${r(e.sqlite)} · PostgreSQL ${r(e.postgres)} · memory ${r(e.memory)} | SQLite floor (100/tx) ${r(e.sqliteFloor100)}, 1/tx ${r(e.sqliteFloor1)} · PostgreSQL floor (100/tx) ${r(e.postgresFloor100)}, 1/tx ${r(e.postgresFloor1)} | within 2× of the floor: SQLite ${verdict(within(e.sqlite, e.sqliteFloor100))}, PostgreSQL ${verdict(within(e.postgres, e.postgresFloor100))} |`,
      `| (9) \`track()\` latency online, one at a time, ms p50 / p99 | SQLite ${f(x.latency.sqlite.p50, 2)} / ${f(x.latency.sqlite.p99, 2)} · PostgreSQL ${f(x.latency.postgres.p50, 2)} / ${f(x.latency.postgres.p99, 2)} | memory ${f(x.latency.memory.p50, 2)} / ${f(x.latency.memory.p99, 2)} | – |`,
      `| (10) fleet drain of a ${x.fleet.n}-event PostgreSQL backlog, ${x.fleet.procs} processes, s | ${f(x.fleet.seconds, 1)} (${r(x.fleet.eventsPerSec)} events/s) | Autumn's ceiling (10 batch requests/s × 1,000): ${f(x.fleet.ceilingSeconds, 1)} s | – |`,
    );
  } else if (m.servers) err("servers");
  const mc = results.machine;
  const load = mc.load.mean1m !== null && mc.load.mean1m !== undefined ? `, load average during the run ${f(mc.load.mean1m, 1)} (max ${f(mc.load.max1m, 1)})` : "";
  return [
    `Measured ${results.date.slice(0, 16).replace("T", " ")} UTC (${results.mode} run) on ${mc.cpu}, ${mc.cores} cores, Node ${mc.node}, Chromium ${mc.chromium ?? "–"}${load}.`,
    "",
    "| what | ours | against (same run) | target |",
    "|---|---|---|---|",
    ...rows,
  ].join("\n");
}
