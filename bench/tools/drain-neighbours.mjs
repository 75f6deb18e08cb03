// Does what else the bench page wrote to IndexedDB slow our drain? Four rounds, each in a fresh
// page: offline, ours enqueues 10,000 events, then (by mode) the raw floors' 20,000 records,
// workbox's 10,000 `pushRequest`s, both, or nothing; online, ours drains (timed from the
// `online` event, as the bench's row (5)).
// Usage: node bench/tools/drain-neighbours.mjs none|floor|wb|all
import * as B from "../lib/browser.mjs";
import { removeDir, snapshotPackage, startMock } from "../lib/util.mjs";
const ev = (page, fn, arg) => page.evaluate(([f, a]) => window.bench[f](a), [fn, arg]);
const snap = snapshotPackage();
const mock = await startMock(["--auto-create-customers"]);
const b = await B.startBrowser(snap.dir);
const mode = process.argv[2] ?? "none";
if (!["none", "floor", "wb", "all"].includes(mode)) throw new Error("mode: none, floor, wb or all");
const n = 10000;
for (let r = 0; r < 4; r++) {
  const s = await b.open();
  try {
    await s.context.setOffline(true);
    const tag = `${mode}-${r}`;
    const q = `bench-offline-${tag}`;
    await ev(s.page, "enqueueOurs", { mock: mock.url, n, queueName: q });
    if (mode === "floor" || mode === "all") {
      await ev(s.page, "enqueueFloor", { n, perTx: 100, sampleFrom: q, dbName: `floor-batched-${tag}` });
      await ev(s.page, "enqueueFloor", { n, perTx: 1, sampleFrom: q, dbName: `floor-single-${tag}` });
    }
    if (mode === "wb" || mode === "all") await ev(s.page, "enqueueWorkbox", { mock: mock.url, n, name: `wb-${tag}` });
    const before = await mock.recorded();
    await ev(s.page, "armOnline");
    await s.context.setOffline(false);
    const d = await ev(s.page, "drainOurs", { n, timeoutMs: 120000 });
    const recorded = (await mock.recorded()) - before;
    if (recorded !== n) throw new Error(`drained, but the mock recorded ${recorded} of ${n}`);
    console.log(`${mode} round ${r + 1}: drained ${n} in ${d.seconds.toFixed(2)} s`);
  } finally {
    await s.close();
  }
}
await b.close();
await mock.stop();
removeDir(snap.dir);
process.exit(0);
