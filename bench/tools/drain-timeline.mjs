// Where a drain's time goes: queues N events offline in real Chromium (the bench page, IndexedDB,
// autumn-mock on 127.0.0.1), goes online and prints, from the first IndexedDB transaction of the
// drain, when each transaction and each request started and ended, then per-batch cycle times.
// The readonly transactions are the bench page's `pending()` polls (every 10 ms) and the load.
// Usage: node bench/tools/drain-timeline.mjs [--n 10000] [--pkg DIR] [--runs 1]
//   --pkg DIR: a directory holding pkg/ and js/ (another build, to compare); default: this repo's.
import * as B from "../lib/browser.mjs";
import { removeDir, snapshotPackage, startMock } from "../lib/util.mjs";

const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : d;
};
const n = Number(arg("--n", 10_000));
const runs = Number(arg("--runs", 1));
const snap = arg("--pkg") ? { dir: arg("--pkg") } : snapshotPackage();
const mock = await startMock(["--auto-create-customers"]);
const b = await B.startBrowser(snap.dir);
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
try {
  const totals = [];
  for (let run = 0; run < runs; run++) {
    const s = await b.open();
    const ev = (fn, a) => s.page.evaluate(([f, x]) => window.bench[f](x), [fn, a]);
    try {
      await s.context.setOffline(true);
      await ev("enqueueOurs", { mock: mock.url, n, queueName: `timeline-${run}` });
      await ev("armOnline");
      await s.page.evaluate(() => {
        window.__log = [];
        const f = window.fetch;
        window.fetch = async (...a) => {
          const t0 = performance.now();
          const r = await f(...a);
          window.__log.push([t0, performance.now(), String(a[0]).split("/").pop()]);
          return r;
        };
        const tx = IDBDatabase.prototype.transaction;
        IDBDatabase.prototype.transaction = function (...a) {
          const t = tx.apply(this, a);
          const t0 = performance.now();
          t.addEventListener("complete", () => window.__log.push([t0, performance.now(), `tx ${a[1] ?? "readonly"}`]));
          return t;
        };
      });
      await s.context.setOffline(false);
      const d = await ev("drainOurs", { n, timeoutMs: 120_000 });
      totals.push(d.seconds);
      const log = (await s.page.evaluate(() => window.__log)).sort((x, y) => x[0] - y[0]);
      const base = log.length ? log[0][0] : 0;
      console.log(`run ${run + 1}: drained ${n} in ${d.seconds.toFixed(3)} s (from the online event)`);
      if (runs === 1) for (const [a, z, what] of log) console.log(`${(a - base).toFixed(0).padStart(6)} ${(z - base).toFixed(0).padStart(6)}  ${what}`);
      const posts = log.filter((l) => l[2].includes("batch_track")).map((l) => l[0] - base);
      const cycles = posts.slice(1).map((p, i) => p - posts[i]);
      if (cycles.length) console.log(`  first batch request at ${posts[0].toFixed(0)} ms; batch to batch: median ${median(cycles).toFixed(0)} ms (spacing 110)`);
    } finally {
      await s.close();
    }
  }
  if (runs > 1) console.log(`median of ${runs}: ${median(totals).toFixed(3)} s`);
} finally {
  await b.close();
  await mock.stop();
  if (!arg("--pkg")) removeDir(snap.dir);
}
process.exit(0);
