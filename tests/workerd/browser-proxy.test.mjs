// End to end: a page's browser tracker (no key) → `handleTrackRequest` in a Cloudflare Worker
// → autumn-mock, across an offline spell.
//
//   headless Chromium ── http://127.0.0.1:<page>   a tiny page + the installed package's files
//        │  (cross-origin: CORS preflight, Authorization: Bearer user-1)
//        ▼
//   workerd (miniflare, http://127.0.0.1:<worker>)  the wrangler-built proxy Worker
//        │  (secret key; only events for cus_user_1, the signed-in customer)
//        ▼
//   autumn-mock (http://127.0.0.1:<mock>)
//
// The page tracks one event online, goes offline (playwright's context.setOffline), tracks 20
// (each resolves `queued`, stored in IndexedDB), comes back online and flushes: the backlog is
// drained through the proxy's batch route. Autumn must then hold exactly 21 events, each key
// once, all for `cus_user_1`. An event the page tracked for another customer is refused by the
// route (403 customer_mismatch), never recorded, never rewritten: the page keeps it queued.
//
// Needs: scripts/build.sh (pkg/), `cargo build --release -p autumn-mock`, /usr/bin/chromium.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { chromium } from "playwright-core";
import { PROXY_WORKER_JS, buildWorker, mockEvents, onAbnormalExit, removeDir, requireBuilt, startMock, startWorker, tail, tempDir, uid, withTimeout } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SECRET_KEY = "am_sk_test_browser_proxy_51d0";
const SETUP_TIMEOUT_MS = 120_000;
const OFFLINE_EVENTS = 20;

const PAGE_HTML = `<!doctype html>
<meta charset="utf-8">
<title>autumn-track through the Worker proxy</title>
<script type="module">
  import { AutumnTracker } from "/autumn-track/js/browser.js";
  window.AutumnTracker = AutumnTracker;
  window.__loaded = true;
</script>
`;
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** Serves the page at / and the installed package under /autumn-track/ on 127.0.0.1. */
async function startPageServer(pkgDir) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": TYPES[".html"], "cache-control": "no-store" }).end(PAGE_HTML);
      return;
    }
    if (path.startsWith("/autumn-track/")) {
      const file = normalize(join(pkgDir, decodeURIComponent(path.slice("/autumn-track/".length))));
      if (file.startsWith(pkgDir + sep)) {
        try {
          const body = await readFile(file);
          res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" }).end(body);
          return;
        } catch { /* 404 below */ }
      }
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

describe("a browser tracker → handleTrackRequest in a Worker → autumn-mock (Chromium, offline and back)", () => {
  let work, mock, mf, workerUrl, pageServer, browser, context, page, built;
  let workerdPids = [];
  let unregisterExitCleanup;
  const workerLog = [];
  const pageLog = [];
  const requests = [];

  const diagnostics = () =>
    [
      `--- page console / errors (${pageLog.length}) ---`, tail(pageLog.join("\n"), 3000),
      `--- page → Worker requests (${requests.length}) ---`, tail(requests.join("\n"), 2000),
      `--- worker / workerd / miniflare log (${workerLog.length}) ---`, tail(workerLog.join("\n"), 3000),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 2000),
    ].join("\n");

  let setupError, setupDone;
  before(async () => {
    try {
      setupDone = setup();
      await withTimeout(setupDone, SETUP_TIMEOUT_MS, "setup");
    } catch (e) {
      setupError = e;
    }
  });

  async function setup() {
    requireBuilt();
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (set CHROMIUM_PATH, or run scripts/setup.sh)`);
    work = tempDir("autumn-track-browser-proxy-");
    unregisterExitCleanup = onAbnormalExit(() => {
      for (const pid of workerdPids) {
        try { process.kill(pid, "SIGKILL"); } catch { /* already gone */ }
      }
      mock?.kill();
      pageServer?.server.close();
      removeDir(work);
    });
    const [b, m] = await Promise.all([
      buildWorker(work, PROXY_WORKER_JS, { name: "autumn-track-browser-proxy-test" }),
      startMock(["--auto-create-customers", "--secret-key", SECRET_KEY]),
    ]);
    built = b;
    mock = m;
    // The page is served from the package exactly as installed from the tarball.
    pageServer = await startPageServer(join(built.app, "node_modules", "autumn-track"));
    ({ mf, url: workerUrl, workerdPids } = await startWorker(built.outDir, {
      listen: true,
      log: workerLog,
      bindings: {
        AUTUMN_URL: mock.url,
        AUTUMN_SECRET_KEY: SECRET_KEY,
        WRONG_SECRET_KEY: "am_sk_test_unused",
        ALLOWED_ORIGINS: pageServer.url,
        // One page's backlog is a handful of requests; the limit itself is proxy.test's.
        RATE_LIMIT: "1000",
      },
    }));
    if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(workerUrl)) throw new Error(`miniflare listens on ${workerUrl}, not 127.0.0.1`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    });
    context = await browser.newContext();
    page = await context.newPage();
    page.on("console", (m) => pageLog.push(`[console.${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`[pageerror] ${e.message}`));
    page.on("request", (r) => {
      if (r.url().startsWith(workerUrl)) requests.push(`${r.method()} ${r.url().slice(workerUrl.length)}`);
    });
    page.on("requestfailed", (r) => {
      if (r.url().startsWith(workerUrl)) requests.push(`  failed: ${r.method()} ${r.url().slice(workerUrl.length)} (${r.failure()?.errorText})`);
    });
    await page.goto(`${pageServer.url}/`);
    await page.waitForFunction(() => window.__loaded === true, null, { timeout: 10_000 });
  }

  after(async () => {
    await withTimeout(Promise.resolve(setupDone).catch(() => {}), 60_000, "setup").catch(() => {});
    await browser?.close().catch(() => {});
    await new Promise((r) => (pageServer ? pageServer.server.close(r) : r()));
    await mf?.dispose().catch(() => {});
    await mock?.stop();
    removeDir(work);
    unregisterExitCleanup?.();
  });

  test("1 online + 20 offline events reach Autumn exactly once each, all for cus_user_1; an event for another customer stays queued", async () => {
    try {
      if (setupError) throw setupError;
      await withTimeout(scenario(), 60_000, "the scenario");
    } catch (e) {
      if (e && typeof e === "object") {
        try { e.message = `${e.message}\n${diagnostics()}`; } catch { /* read-only message */ }
      }
      throw e;
    }
  });

  test("Autumn down: the proxy answers 503, the page keeps the events, then delivers each once", async () => {
    try {
      if (setupError) throw setupError;
      await withTimeout(outage(), 60_000, "the scenario");
    } catch (e) {
      if (e && typeof e === "object") {
        try { e.message = `${e.message}\n${diagnostics()}`; } catch { /* read-only message */ }
      }
      throw e;
    }
  });

  async function setOutage(on) {
    const r = await fetch(`${mock.url}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ outage: on }) });
    assert.equal(r.status, 200, await r.text());
  }

  async function outage() {
    await setOutage(true);
    let queued;
    try {
      // maxRetries 0 in the page: the first 503 from the proxy (after its own 3 upstream
      // attempts) queues the event instead of retrying inline.
      queued = await page.evaluate(async ({ baseUrl, queueName }) => {
        window.tracker2 = new window.AutumnTracker({ baseUrl, headers: { Authorization: "Bearer user-2" }, queueName, maxRetries: 0 });
        return Promise.all([1, 2, 3].map((n) => window.tracker2.track({ customerId: "cus_user_2", featureId: "messages", properties: { n } })));
      }, { baseUrl: `${workerUrl}/api/autumn`, queueName: uid("e2e_outage") });
    } finally {
      await setOutage(false);
    }
    for (const r of queued) assert.deepEqual({ status: r.status, reason: r.reason }, { status: "queued", reason: "server_error" }, JSON.stringify(r));
    assert.equal((await mockEventsFor("cus_user_2")).length, 0, "an event was recorded during the outage");
    const drained = await page.evaluate(async () => {
      for (let i = 0; i < 150; i++) {
        await window.tracker2.flush();
        const p = await window.tracker2.pending();
        if (p.queued === 0 && p.inFlight === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return { pending: await window.tracker2.pending(), dead: await window.tracker2.deadLetters() };
    });
    assert.deepEqual(drained.dead, []);
    assert.equal(drained.pending.queued, 0, JSON.stringify(drained.pending));
    const events = await mockEventsFor("cus_user_2");
    assert.deepEqual(events.map((e) => e.idempotency_key).sort(), queued.map((r) => r.idempotencyKey).sort());
  }

  async function mockEventsFor(customerId) {
    const r = await fetch(`${mock.url}/_mock/events?customer_id=${encodeURIComponent(customerId)}`);
    return (await r.json()).events;
  }

  async function scenario() {
    const t0 = performance.now();
    const queueName = uid("e2e");
    const { online, foreign } = await page.evaluate(async ({ baseUrl, queueName }) => {
      window.trackerEvents = [];
      window.tracker = new window.AutumnTracker({
        baseUrl,
        headers: { Authorization: "Bearer user-1" },
        queueName,
        onEvent: (e) => window.trackerEvents.push(e),
      });
      const online = await window.tracker.track({ customerId: "cus_user_1", featureId: "messages", properties: { n: 0 } });
      // Tracked for someone else than the one signed in: the route must not bill cus_user_1.
      const foreign = await window.tracker.track({ customerId: "claimed_by_the_page", featureId: "messages", properties: { n: -1 } });
      return { online, foreign };
    }, { baseUrl: `${workerUrl}/api/autumn`, queueName });
    assert.equal(online.status, "delivered", JSON.stringify(online));
    assert.equal(online.response?.customer_id, "cus_user_1", JSON.stringify(online));
    assert.deepEqual({ status: foreign.status, reason: foreign.reason }, { status: "queued", reason: "customer_mismatch" }, JSON.stringify(foreign));
    const tOnline = performance.now();

    await context.setOffline(true);
    const offline = await page.evaluate(async (n) => {
      const results = [];
      for (let i = 1; i <= n; i++) results.push(await window.tracker.track({ customerId: "cus_user_1", featureId: "messages", properties: { n: i } }));
      return { results, pending: await window.tracker.pending() };
    }, OFFLINE_EVENTS);
    for (const r of offline.results) assert.equal(r.status, "queued", `offline track(): ${JSON.stringify(r)}`);
    assert.equal(offline.pending.queued, OFFLINE_EVENTS + 1, `the 20 and the foreign one: ${JSON.stringify(offline.pending)}`);
    assert.equal(offline.pending.storage, "indexeddb", JSON.stringify(offline.pending));
    assert.equal((await mockEventsFor("cus_user_1")).length, 1, "an offline event reached Autumn");
    const tOffline = performance.now();

    await context.setOffline(false);
    const drained = await page.evaluate(async () => {
      const flushes = [];
      for (let i = 0; i < 100; i++) {
        flushes.push(await window.tracker.flush());
        const p = await window.tracker.pending();
        // The foreign event stays (its customer is not signed in); everything else goes.
        if (p.queued <= 1 && p.inFlight === 0) return { flushes, pending: p, dead: await window.tracker.deadLetters() };
        await new Promise((r) => setTimeout(r, 100));
      }
      return { flushes, pending: await window.tracker.pending(), dead: await window.tracker.deadLetters() };
    });
    const tDrained = performance.now();
    assert.deepEqual(drained.dead, [], `dead letters: ${JSON.stringify(drained.dead)}`);
    assert.equal(drained.pending.queued, 1, `after the drain, only the foreign event should be queued: ${JSON.stringify(drained)}`);
    assert.ok(workerLog.some((l) => /POST \/api\/autumn\/v1\/balances\.track 403\b/.test(l)), "the route never refused the foreign event");

    const events = await mockEventsFor("cus_user_1");
    const keys = [online.idempotencyKey, ...offline.results.map((r) => r.idempotencyKey)];
    assert.equal(new Set(keys).size, 21, "the page's keys are not distinct");
    const perKey = new Map();
    for (const e of events) perKey.set(e.idempotency_key, (perKey.get(e.idempotency_key) ?? 0) + 1);
    assert.equal(events.length, 21, `Autumn recorded ${events.length} events: ${JSON.stringify([...perKey])}`);
    for (const k of keys) assert.equal(perKey.get(k), 1, `key ${k} recorded ${perKey.get(k) ?? 0} times`);
    for (const e of events) {
      assert.equal(e.customer_id, "cus_user_1");
      assert.equal(e.headers.authorization, `Bearer ${SECRET_KEY}`);
    }
    assert.deepEqual(events.map((e) => e.properties.n).sort((a, b) => a - b), Array.from({ length: 21 }, (_, i) => i));
    assert.equal((await mockEventsFor("claimed_by_the_page")).length, 0);
    assert.equal((await mockEvents(mock.url, foreign.idempotencyKey)).length, 0, "the foreign event was recorded");
    // Nothing reached Autumn under the page's claimed customer, and the backlog went through
    // the proxy's batch route.
    assert.ok(requests.some((r) => r.startsWith("POST /api/autumn/v1/balances.batch_track")), `no batch request: ${requests.join(", ")}`);

    // Playwright does not report CORS preflights; miniflare's request log does (informational).
    const preflights = workerLog.filter((l) => /\bOPTIONS \/api\/autumn\/v1\/\S+ 204\b/.test(l)).length;
    const delivered = await page.evaluate(() => window.trackerEvents.filter((e) => e.type === "delivered").length);
    console.log(`timings: online track ${Math.round(tOnline - t0)} ms, 20 offline ${Math.round(tOffline - tOnline)} ms, drain ${Math.round(tDrained - tOffline)} ms; ${delivered} delivered events; page → Worker: ${requests.filter((r) => r.startsWith("POST")).join(", ")} (+ ${preflights} CORS preflights in miniflare's request log)`);
  }
});
