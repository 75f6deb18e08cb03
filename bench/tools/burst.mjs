// The engine's work when many events pile up at once, in Node with a memory queue: N `track()`
// calls made together while every request fails (`fetch` rejects: Autumn or the route is down,
// the device not known to be offline), so each call holds its record while drain passes load
// the growing queue; then the requests succeed and `flush()` drains the N records. Prints, per
// phase, the wall time and the time spent inside the engine's `feed()` (the wasm: decoding
// reports and store results, the decisions) and the longest single `feed()` — what a page's
// main thread would be blocked for at once. No network: `fetch` is a stub.
// Usage: node bench/tools/burst.mjs [--n 10000] [--rounds 3] [--pkg DIR] [--before DIR]
//   --pkg / --before DIR: a directory holding pkg/ and js/ (default for --pkg: this repo's);
//   with --before, the two builds run in alternating child processes.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { REPO } from "../lib/util.mjs";

const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : d;
};
const n = Number(arg("--n", 10_000));
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

if (process.argv.includes("--child")) {
  const dir = arg("--pkg");
  const g = await import(`${dir}/pkg/server/autumn_track.js`);
  const { AutumnTracker } = await import(`${dir}/js/node.js`);
  const feed = g.Engine.prototype.feed;
  let ms = 0;
  let longest = 0;
  g.Engine.prototype.feed = function (...a) {
    const t0 = performance.now();
    try {
      return feed.apply(this, a);
    } finally {
      const d = performance.now() - t0;
      ms += d;
      longest = Math.max(longest, d);
    }
  };
  let down = true;
  const body = JSON.stringify({ customer_id: "bench_0", value: 1 });
  globalThis.fetch = async () => {
    if (down) throw new TypeError("fetch failed");
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  };
  const t = new AutumnTracker({ baseUrl: "http://127.0.0.1:9", secretKey: "am_sk_test_bench", queue: "memory", maxRetries: 0 });
  const phase = async (f) => {
    ms = longest = 0;
    const t0 = performance.now();
    await f();
    return { wall: performance.now() - t0, feed: ms, longest };
  };
  const burst = await phase(async () => {
    const calls = [];
    for (let i = 0; i < n; i++) calls.push(t.track({ customerId: `cus_${i % 50}`, featureId: "api_calls", value: 1, properties: { plan: "pro", n: i } }).then((r) => r.status, (e) => e.code));
    const got = await Promise.all(calls);
    const queued = got.filter((s) => s === "queued").length;
    if (queued !== n) throw new Error(`${queued} of ${n} queued: ${[...new Set(got)]}`);
  });
  down = false;
  const flush = await phase(async () => {
    await t.flush();
    const p = await t.pending();
    if (p.queued !== 0) throw new Error(`${p.queued} still queued after flush()`);
  });
  t.close();
  console.log(JSON.stringify({ burst, flush }));
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
const ours = arg("--pkg", REPO);
const before = arg("--before");
const builds = before ? [ours, before] : [ours];
const rounds = Number(arg("--rounds", 3));
const runs = Object.fromEntries(builds.map((b) => [b, []]));
for (let r = 0; r < rounds; r++) {
  for (const b of builds) {
    const out = execFileSync(process.execPath, [self, "--child", "--pkg", b, "--n", String(n)], { encoding: "utf8" });
    runs[b].push(JSON.parse(out.trim().split("\n").pop()));
  }
}
console.log(`Node ${process.version}; ${n} track() calls at once while requests fail, then flush(); median of ${rounds} runs; ms`);
for (const b of builds) {
  console.log(`\n${b === ours ? "ours" : "before"} (${b})`);
  for (const p of ["burst", "flush"]) {
    const get = (f) => median(runs[b].map((x) => x[p][f])).toFixed(0);
    console.log(`  ${p.padEnd(6)} wall ${get("wall").padStart(6)}   in feed() ${get("feed").padStart(6)}   longest feed() ${get("longest").padStart(5)}`);
  }
}
