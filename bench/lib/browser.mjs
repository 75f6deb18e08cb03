// The browser measurements (2)–(5) and (7), in real Chromium (playwright-core, the system's
// /usr/bin/chromium). The bench page and its baselines are served from 127.0.0.1; autumn-mock
// is the only server the page talks to. Chromium's resolver maps every host name to
// "not found", so nothing (a baseline phoning home included) can reach another address,
// without intercepting requests (which would slow every fetch down).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { BENCH, removeDir, startStatic } from "./util.mjs";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export async function startBrowser(snapDir, beforeDir) {
  const bundles = mkdtempSync(join(tmpdir(), "autumn-bench-bundles-"));
  await esbuild.build({
    entryPoints: [join(BENCH, "entries/page/baselines.js")],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(bundles, "baselines.js"),
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const site = await startStatic({
    "/ours/": snapDir,
    ...(beforeDir && { "/before/": beforeDir }),
    "/bundles/": bundles,
    "/page/": join(BENCH, "page"),
    "/": join(BENCH, "page"),
  });
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        // Only the IP literal 127.0.0.1 (our servers) is reachable: no host name resolves.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        // A backgrounded page's timers are throttled; these pages run unattended.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
      ],
    });
  } catch (e) {
    await site.close();
    removeDir(bundles);
    throw e;
  }
  const version = browser.version();
  return {
    version,
    /** A fresh context (fresh IndexedDB) with the bench page loaded: { page, context, cdp, close() }. */
    async open(pkg) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e));
      await page.goto(`${site.url}/page/index.html${pkg ? `?pkg=${pkg}` : ""}`);
      await page.waitForFunction(() => window.bench?.ready === true, null, { timeout: 30_000 }).catch((e) => {
        throw new Error(`bench page did not load: ${errors.map(String).join("; ") || e.message}`);
      });
      const isolated = await page.evaluate(() => crossOriginIsolated);
      if (!isolated) throw new Error("bench page is not cross-origin isolated (timer resolution would be 100 µs)");
      const cdp = await context.newCDPSession(page);
      return {
        page,
        context,
        cdp,
        errors,
        close: () => context.close(),
      };
    },
    async close() {
      await browser.close().catch(() => {});
      await site.close();
      removeDir(bundles);
    },
  };
}

const ev = (page, fn, arg) => page.evaluate(([f, a]) => window.bench[f](a), [fn, arg]);

// (2)
export async function trackCost(b, mock, { samples, batch, warm }, pkg) {
  const s = await b.open(pkg);
  try {
    return await ev(s.page, "trackCost", { mock: mock.url, samples, batch, warm });
  } finally {
    await s.close();
  }
}

// (3) One repeat: ours and autumn-js, each in a fresh page, each checked against the mock.
export async function online(b, mock, { n, conc, tag }) {
  const out = {};
  for (const impl of ["ours", "autumnJs"]) {
    const s = await b.open();
    try {
      const before = await mock.recorded();
      const fn = impl === "ours" ? "onlineOurs" : "onlineAutumnJs";
      const r = await ev(s.page, fn, { mock: mock.url, n, conc, queueName: `bench-online-${tag}` });
      r.recorded = (await mock.recorded()) - before;
      if (r.errors) throw new Error(`${impl}: ${r.errors} of ${n} track() calls failed: ${r.firstError}`);
      if (r.recorded !== n) throw new Error(`${impl}: the mock recorded ${r.recorded} of ${n} events (${JSON.stringify(r.statuses)})`);
      out[impl] = r;
    } finally {
      await s.close();
    }
  }
  return out;
}

// (4) + (5) One repeat: in a fresh page, offline, ours enqueues, then the raw floors; online,
// ours drains (timed from the `online` event). Then in another fresh page, offline, workbox
// enqueues; online, it replays.
export async function offlineAndDrain(b, mock, { n, tag, drainTimeoutMs }) {
  const out = {};
  // Ours, and the raw floor (which copies our stored records), in one page; workbox in a page of
  // its own afterwards. In one page, workbox's 10,000 requests just written to IndexedDB slowed
  // our drain that followed from ~1.4 s to ~2.5 s (4 rounds of 4, bench/README.md).
  let s = await b.open();
  try {
    await s.context.setOffline(true);
    const q = `bench-offline-${tag}`;
    out.enqueueOurs = await ev(s.page, "enqueueOurs", { mock: mock.url, n, queueName: q });
    out.floorBatched = await ev(s.page, "enqueueFloor", { n, perTx: 100, sampleFrom: q, dbName: `floor-batched-${tag}` });
    out.floorPerEvent = await ev(s.page, "enqueueFloor", { n, perTx: 1, sampleFrom: q, dbName: `floor-single-${tag}` });
    const before = await mock.recorded();
    await ev(s.page, "armOnline");
    await s.context.setOffline(false);
    out.drainOurs = await ev(s.page, "drainOurs", { n, timeoutMs: drainTimeoutMs });
    out.drainOurs.recorded = (await mock.recorded()) - before;
    if (out.drainOurs.recorded !== n) throw new Error(`ours drained, but the mock recorded ${out.drainOurs.recorded} of ${n}`);
  } finally {
    await s.close();
  }
  s = await b.open();
  try {
    await s.context.setOffline(true);
    out.enqueueWorkbox = await ev(s.page, "enqueueWorkbox", { mock: mock.url, n, name: `wb-${tag}` });
    await s.context.setOffline(false);
    const before = await mock.recorded();
    out.drainWorkbox = await ev(s.page, "drainWorkbox", { n });
    out.drainWorkbox.recorded = (await mock.recorded()) - before;
    if (out.drainWorkbox.recorded !== n) throw new Error(`workbox replayed, but the mock recorded ${out.drainWorkbox.recorded} of ${n}`);
    return out;
  } finally {
    await s.close();
  }
}

// (7) `total` events delivered by one tracker (default queue: IndexedDB), in `chunks`;
// after each chunk (and before the first): GC, then JS heap and wasm linear memory.
export async function memory(b, mock, { total, chunks, conc }) {
  const s = await b.open();
  try {
    const sample = async (events) => {
      await s.cdp.send("HeapProfiler.collectGarbage");
      const heap = await s.cdp.send("Runtime.getHeapUsage");
      const wasmBytes = await ev(s.page, "wasmMemoryBytes");
      return { events, jsHeapUsed: heap.usedSize, jsHeapTotal: heap.totalSize, wasmMemory: wasmBytes };
    };
    const samples = [await sample(0)];
    const per = Math.ceil(total / chunks);
    const before = await mock.recorded();
    let done = 0;
    // Warm-up chunk first (not counted in the samples' shape, but delivered).
    while (done < total) {
      const n = Math.min(per, total - done);
      const r = await ev(s.page, "onlineOurs", { mock: mock.url, n, conc, queueName: "bench-memory" });
      if (r.errors) throw new Error(`memory run: ${r.errors} failed: ${r.firstError}`);
      done += n;
      samples.push({ ...(await sample(done)), eventsPerSec: r.eventsPerSec, pending: r.pending.queued });
    }
    const recorded = (await mock.recorded()) - before;
    if (recorded !== total) throw new Error(`memory run: the mock recorded ${recorded} of ${total}`);
    return { total, samples };
  } finally {
    await s.close();
  }
}
