// Where a `track()` spends its time in the wasm: in real Chromium (the bench page), with `fetch`
// stubbed to answer at once, every method of the glue's `Engine` is wrapped with
// `performance.now()`, and N `track()` calls (queue "off", then "memory") are counted: calls of
// each export per `track()`, µs per call (the export's glue included: strings in and out, and
// the calls it makes back into JavaScript), µs per `track()`, and the whole `track()` for scale.
// With the queue "indexeddb" it also counts IndexedDB transactions and whole-queue reads
// (`getAll`) per `track()`.
// The wrapper adds ~1 µs per call; compare builds in the same run, not with the bench's rows.
// Usage: node bench/tools/export-times.mjs [--n 5000] [--rounds 3] [--pkg DIR] [--before DIR]
//   --pkg / --before DIR: a directory holding pkg/ and js/ (default for --pkg: this repo's).
import * as B from "../lib/browser.mjs";
import { removeDir, snapshotPackage } from "../lib/util.mjs";

const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : d;
};
const n = Number(arg("--n", 5_000));
const rounds = Number(arg("--rounds", 3));
const snap = arg("--pkg") ? { dir: arg("--pkg") } : snapshotPackage();
const before = arg("--before");
const b = await B.startBrowser(snap.dir, before);
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/** One fresh page: the wrapped exports' times over `n` track() calls per queue mode. */
async function measure(pkg) {
  const s = await b.open(pkg === "/before/" ? pkg : undefined);
  try {
    return await s.page.evaluate(
      async ({ n, pkg }) => {
        const { Engine } = await import(`${pkg}pkg/autumn_track.js`);
        const { AutumnTracker } = await import(`${pkg}js/browser.js`);
        const acc = {};
        for (const m of Object.getOwnPropertyNames(Engine.prototype)) {
          const f = Engine.prototype[m];
          if (m === "constructor" || m === "free" || typeof f !== "function") continue;
          Engine.prototype[m] = function (...a) {
            const t0 = performance.now();
            try {
              return f.apply(this, a);
            } finally {
              const x = (acc[m] ??= { calls: 0, ms: 0 });
              x.calls++;
              x.ms += performance.now() - t0;
            }
          };
        }
        // IndexedDB's work per track(): transactions opened, and whole-queue reads.
        const idb = { tx: 0, getAll: 0 };
        const txOf = IDBDatabase.prototype.transaction;
        IDBDatabase.prototype.transaction = function (...a) {
          idb.tx++;
          return txOf.apply(this, a);
        };
        const getAllOf = IDBObjectStore.prototype.getAll;
        IDBObjectStore.prototype.getAll = function (...a) {
          idb.getAll++;
          return getAllOf.apply(this, a);
        };
        const body = JSON.stringify({ customer_id: "bench_0", value: 1 });
        const realFetch = globalThis.fetch;
        globalThis.fetch = async () => new Response(body, { status: 200, headers: { "content-type": "application/json" } });
        const input = (i) => ({ customerId: `bench_${i % 50}`, featureId: "api_calls", value: 1, properties: { plan: "pro", n: i } });
        const out = {};
        try {
          for (const queue of ["off", "memory", "indexeddb"]) {
            const t = new AutumnTracker({
              baseUrl: "http://127.0.0.1:9",
              secretKey: "am_sk_test_bench",
              dangerouslyAllowBrowser: true,
              queue,
              maxRetries: 0,
              queueName: `export-times-${queue}`,
            });
            for (let i = 0; i < 500; i++) await t.track(input(i));
            for (const k of Object.keys(acc)) delete acc[k];
            idb.tx = idb.getAll = 0;
            const t0 = performance.now();
            for (let i = 0; i < n; i++) {
              const r = await t.track(input(i));
              if (r.status !== "delivered") throw new Error(`track(): ${r.status}`);
            }
            const whole = ((performance.now() - t0) * 1000) / n;
            const exports = {};
            for (const [k, v] of Object.entries(acc)) exports[k] = { perTrack: v.calls / n, usPerCall: (v.ms * 1000) / v.calls, usPerTrack: (v.ms * 1000) / n };
            out[queue] = { whole, exports, tx: idb.tx / n, getAll: idb.getAll / n };
            t.close();
          }
        } finally {
          globalThis.fetch = realFetch;
        }
        return out;
      },
      { n, pkg },
    );
  } finally {
    await s.close();
  }
}

try {
  const builds = before ? ["/ours/", "/before/"] : ["/ours/"];
  const runs = Object.fromEntries(builds.map((k) => [k, []]));
  // Interleaved rounds, so load on the machine hits both builds alike.
  for (let r = 0; r < rounds; r++) for (const k of builds) runs[k].push(await measure(k));
  console.log(`Chromium ${b.version}; ${n} track() calls per mode, median of ${rounds} rounds; µs`);
  for (const k of builds) {
    console.log(`\n${k === "/ours/" ? `ours (${snap.dir})` : `before (${before})`}`);
    for (const queue of ["off", "memory", "indexeddb"]) {
      const rs = runs[k].map((x) => x[queue]);
      const names = [...new Set(rs.flatMap((x) => Object.keys(x.exports)))];
      let wasm = 0;
      console.log(`  queue ${queue}: track() ${median(rs.map((x) => x.whole)).toFixed(1)} per call`);
      if (queue === "indexeddb") {
        const per = (f) => median(rs.map((x) => x[f])).toFixed(2);
        console.log(`    IndexedDB per track(): ${per("tx")} transactions, ${per("getAll")} whole-queue reads (getAll)`);
      }
      for (const m of names) {
        const get = (f) => median(rs.map((x) => x.exports[m]?.[f] ?? 0));
        wasm += get("usPerTrack");
        console.log(`    ${m.padEnd(10)} ${get("perTrack").toFixed(2)} calls × ${get("usPerCall").toFixed(2)} = ${get("usPerTrack").toFixed(1)} per track()`);
      }
      console.log(`    ${"all".padEnd(10)} ${wasm.toFixed(1)} per track() in the wasm's exports`);
    }
  }
} finally {
  await b.close();
  if (!arg("--pkg")) removeDir(snap.dir);
}
