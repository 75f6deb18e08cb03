// The demo page (www/) end to end, in Chromium, against a real autumn-mock behind the real demo
// server (scripts/demo-server.mjs): the offline queue survives a reload and drains when the
// network is back, exactly once, with the original timestamps — also with two tabs sharing the
// queue — and the page's numbers agree with the server's. Strict CSP, no console errors.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/e2e/
//        SCREENSHOTS=1 node --test tests/e2e/   also refreshes docs/demo-*.png
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { MOCK_BIN, REPO, WASM, onAbnormalExit, startMock, tail, uid, withTimeout } from "../page/harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS === "1";
const DESKTOP = { width: 1280, height: 1100 };
const PHONE = { width: 390, height: 844 };
// The SDK sends a replayed event's time on the server's clock, learnt from `Date` headers
// (1 s resolution): a timestamp may read up to 1 s earlier than the local time of track().
const CLOCK_SLACK_MS = 1000;
// "A small number" of 409s / batch-dropped duplicates tolerated during a drain (none expected).
const MAX_DUPLICATES = 5;

/** Starts scripts/demo-server.mjs on a free port against `mockUrl`. */
async function startDemoServer(mockUrl) {
  const child = spawn(process.execPath, [join(REPO, "scripts/demo-server.mjs"), "--port", "0"], {
    cwd: REPO,
    env: { ...process.env, AUTUMN_URL: mockUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo server printed no "demo on" line within 10 s\n${log}`)), 10_000);
    child.stdout.on("data", (d) => {
      log += d;
      const m = /^demo on (http:\/\/127\.0\.0\.1:\d+)\/$/m.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.stderr.on("data", (d) => (log += d));
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`the demo server exited (${code ?? signal}) before listening\n${log}`)); });
  });
  return {
    url,
    log: () => log,
    kill: () => child.kill("SIGKILL"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until `ok(value)`; throws with the last value after `timeout` ms. */
async function waitFor(what, fn, ok, { timeout = 20_000, interval = 100 } = {}) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (ok(last)) return { value: last, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 600)}`);
    await sleep(interval);
  }
}

describe("the demo page (www/) end to end", () => {
  let mock, demo, browser, unregister;
  let setupError;
  const log = []; // every page's console, page errors and failed requests, labelled
  const consoleErrors = []; // console errors other than the browser's "Failed to load resource"
  const cspLines = []; // CSP violations, from the page (init script) or the browser's own message
  const foreign = []; // requests to anything but 127.0.0.1

  const mockGet = async (path) => {
    const r = await fetch(`${mock.url}${path}`);
    if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  const stats = () => mockGet("/_mock/stats");
  const eventsOf = async (customerId) => (await mockGet(`/_mock/events?customer_id=${encodeURIComponent(customerId)}`)).events;

  const diagnostics = async () => {
    let s = "";
    try { s = JSON.stringify(await stats()); } catch (e) { s = `(unavailable: ${e.message})`; }
    return [
      `--- browser log (last 80 of ${log.length}) ---`, ...log.slice(-80),
      `--- mock stats ---`, s,
      `--- autumn-mock output ---`, tail(mock?.log() ?? "", 2000),
      `--- demo server output ---`, tail(demo?.log() ?? "", 2000),
    ].join("\n");
  };

  // Each test body gets a fresh browser context (its own IndexedDB, service worker, offline
  // switch), closed afterwards; a failure carries the logs; a hung test fails instead of hanging.
  let mark = 0; // consoleErrors seen before this test
  const inContext = (fn, { timeoutMs = 60_000 } = {}) => async (t) => {
    if (setupError) throw setupError;
    const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
    const foreignMark = foreign.length;
    try {
      await context.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => {
          const line = `securitypolicyviolation: ${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`;
          (window.__cspViolations ||= []).push(line);
          console.error(line); // the console outlives reloads
        }, true);
      });
      context.on("request", (req) => {
        const u = new URL(req.url());
        if (/^(https?|wss?):$/.test(u.protocol) && u.hostname !== "127.0.0.1") foreign.push(req.url());
      });
      await withTimeout(fn(context, t), timeoutMs, "the test");
      const bad = consoleErrors.slice(mark);
      assert.deepEqual(bad, [], "console errors (other than the browser's own \"Failed to load resource\") or uncaught page errors");
      assert.deepEqual(foreign.slice(foreignMark), [], "requests to hosts other than 127.0.0.1");
    } catch (e) {
      if (e && typeof e === "object") {
        const more = await diagnostics();
        try {
          e.message = `${e.message}\n${more}`;
          // Reporters print the stack; V8 formats it lazily, so it may already carry the message.
          if (typeof e.stack === "string" && !e.stack.includes(more)) e.stack = `${e.stack}\n${more}`;
        } catch { /* read-only */ }
      }
      throw e;
    } finally {
      await context.close().catch(() => {});
      mark = consoleErrors.length;
    }
  };

  /** Opens the demo in `context`, labelled in the logs; resolves once the page is ready. */
  async function openDemo(context, label) {
    const page = await context.newPage();
    page.on("console", (m) => {
      const line = `[${label}] [${m.type()}] ${m.text()}`;
      log.push(line);
      if (/securitypolicyviolation|Content Security Policy|Refused to/i.test(m.text())) cspLines.push(line);
      if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) consoleErrors.push(line);
    });
    page.on("pageerror", (e) => {
      const line = `[${label}] [pageerror] ${e?.stack || e}`;
      log.push(line);
      consoleErrors.push(line);
    });
    page.on("requestfailed", (r) => log.push(`[${label}] [requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    await page.goto(`${demo.url}/`, { waitUntil: "load", timeout: 15_000 });
    await waitReady(page);
    return page;
  }

  const waitReady = (page) => page.waitForSelector("body[data-ready=true]", { timeout: 15_000 });
  /** The service worker has cached the page and the package: a reload works offline. */
  const waitOfflineReady = (page) => page.waitForSelector("#sw-state[data-ready=true]", { timeout: 15_000 });
  /** The text of `sel` now, or null (no waiting, unlike page.textContent). */
  const textOf = (page, sel) => page.evaluate((s) => document.querySelector(s)?.textContent ?? null, sel);
  const readNumber = async (page, id) => Number((await page.textContent(`#${id}`)).replace(/,/g, ""));
  const waitNumber = (page, id, want, timeout = 20_000) =>
    waitFor(`#${id} to show ${want}`, () => readNumber(page, id), (v) => v === want, { timeout });

  async function setEvent(page, customerId, feature = "feature:api_calls") {
    await page.fill("#customer", customerId);
    await page.selectOption("#feature", feature);
    await page.fill("#value", "1");
  }

  /** Tracks a burst from the page's form; resolves with the page's record of it. */
  async function burst(page, n) {
    await page.fill("#burst-count", String(n));
    await page.click("#burst");
    await page.waitForSelector(`#burst-result[data-done="${n}"]`, { timeout: 30_000 });
    return page.evaluate(() => window.autumnDemo.lastBurst);
  }

  async function shot(page, name, { fullPage = false } = {}) {
    if (!SCREENSHOTS) return;
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.screenshot({ path: join(REPO, "docs", name), fullPage });
  }

  /** Each key recorded once, and exactly the keys track() returned. */
  function assertExactlyOnce(events, keys, what) {
    const seen = new Map();
    for (const e of events) seen.set(e.idempotency_key, (seen.get(e.idempotency_key) || 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], `${what}: keys recorded more than once`);
    const missing = keys.filter((k) => !seen.has(k));
    assert.deepEqual(missing.slice(0, 20), [], `${what}: ${missing.length} of ${keys.length} keys never recorded (first 20 shown)`);
    const extra = [...seen.keys()].filter((k) => !keys.includes(k));
    assert.deepEqual(extra.slice(0, 20), [], `${what}: ${extra.length} recorded keys that track() never returned`);
    assert.equal(events.length, keys.length, `${what}: recorded events`);
  }

  before(async () => {
    try {
      if (!existsSync(WASM)) throw new Error(`${WASM} is missing: run \`bash scripts/build.sh\` first`);
      if (!existsSync(MOCK_BIN)) throw new Error(`${MOCK_BIN} is missing: run \`cargo build --release -p autumn-mock\` first`);
      mock = await startMock(["--auto-create-customers"]);
      unregister = onAbnormalExit(() => { mock?.kill(); demo?.kill(); });
      demo = await startDemoServer(mock.url);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        timeout: 30_000,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
      });
    } catch (e) {
      setupError = e;
    }
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await demo?.stop();
    await mock?.stop();
    unregister?.();
  });

  test("demo flow: track, go offline, burst of 200, reload offline, drain; the page agrees with the mock", inContext(async (context, t) => {
    const customer = uid("cus_demo");
    const page = await openDemo(context, "demo");
    await waitOfflineReady(page);
    await setEvent(page, customer);

    // Online: one event delivered at once, one after two scripted 503s (Retry-After: 1).
    await page.click("#track");
    await page.waitForSelector("#results tbody tr:first-child td.outcome.delivered", { timeout: 10_000 });
    await page.selectOption("#fault", "503,503");
    await page.click("#track");
    await waitFor("the retried event's result", () => page.$$eval("#results tbody tr td.outcome.delivered", (tds) => tds.length), (n) => n === 2, { timeout: 15_000 });
    assert.equal(await textOf(page, "#results tbody tr:first-child td:nth-child(4)"), "3", "attempts of the event that met two 503s");
    await page.selectOption("#fault", "");
    await waitNumber(page, "st-delivered", 2);
    await waitFor("the server view to show the customer's events", () => textOf(page, `#balances tr[data-customer="${customer}"] td.used`), (v) => v === "2");
    await sleep(1200); // a little history on the timeline
    await shot(page, "demo-online.png");

    // Offline: a burst of 200 waits in IndexedDB.
    await context.setOffline(true);
    await page.waitForSelector("#net[data-state=offline]");
    const b = await burst(page, 200);
    assert.deepEqual(b.tally, { "queued (offline)": 200 }, "every track() of the offline burst resolves queued");
    await waitNumber(page, "st-queued", 200);

    // Reload while offline: the queue survives and the page says so.
    await page.reload({ waitUntil: "load" });
    await waitReady(page);
    assert.equal(await readNumber(page, "st-queued"), 200, "queued after reloading offline");
    assert.match(await page.textContent("#status"), /200 events from an earlier visit/);
    assert.equal(await page.getAttribute("#net", "data-state"), "offline");
    await sleep(1500);
    await shot(page, "demo-offline.png");

    // Online again: the tracker drains the queue by itself.
    const back = Date.now();
    await context.setOffline(false);
    const drained = await waitNumber(page, "st-queued", 0);
    const recorded = await waitFor(`202 events recorded for ${customer}`, () => eventsOf(customer), (e) => e.length >= 202);
    t.diagnostic(`demo flow: 200 queued events drained ${Date.now() - back} ms after going online (queue count 0 after ${drained.ms} ms)`);
    assert.equal(recorded.value.length, 202);
    assert.equal(new Set(recorded.value.map((e) => e.idempotency_key)).size, 202, "each key once");

    // The page's numbers agree with the mock's.
    await waitFor("the page's server view to match /_mock/stats", async () => {
      const s = await stats();
      return { page: await readNumber(page, "sv-recorded"), mock: s.recorded_events };
    }, (v) => v.page === v.mock);
    const used = await waitFor("the page's balance row to match /_mock/events", () => textOf(page, `#balances tr[data-customer="${customer}"] td.used`), (v) => v === "202");
    assert.equal(used.value, "202");
    assert.equal(await readNumber(page, "st-delivered"), 202, "delivered by this tab (kept across the reload) = events recorded for its customer");
    assert.equal(await readNumber(page, "st-queued"), 0);
    assert.equal(await readNumber(page, "st-dead"), 0);
    assert.equal(await page.getAttribute("#net", "data-state"), "online");
    await sleep(1200);
    await shot(page, "demo-drained.png");

    // Phone width: nothing sticks out sideways.
    await page.setViewportSize(PHONE);
    await sleep(700); // the chart redraws at its new width on the next sample
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= PHONE.width, `the page is ${overflow}px wide at ${PHONE.width}px`);
    await shot(page, "demo-phone.png", { fullPage: true });
  }));

  test("durability (issue #4): 500 events tracked offline, page reloaded offline, drained exactly once with their original timestamps", inContext(async (context, t) => {
    const customer = uid("cus_durable");
    const page = await openDemo(context, "durable");
    await waitOfflineReady(page);
    await setEvent(page, customer);
    const before = await stats();

    await context.setOffline(true);
    await page.waitForSelector("#net[data-state=offline]");
    const b = await burst(page, 500);
    assert.deepEqual(b.tally, { "queued (offline)": 500 });
    assert.equal(new Set(b.keys).size, 500, "500 distinct keys");
    t.diagnostic(`durability: 500 track() calls offline took ${b.endedAt - b.startedAt} ms`);

    await page.reload({ waitUntil: "load" });
    await waitReady(page);
    assert.equal(await readNumber(page, "st-queued"), 500, "queued after reloading offline");
    await sleep(1000); // so that a replay-time timestamp could not pass for the original
    assert.equal((await eventsOf(customer)).length, 0, "nothing reached the server while offline");

    const onlineAt = Date.now();
    await context.setOffline(false);
    const arrived = await waitFor(`500 events recorded for ${customer}`, () => eventsOf(customer), (e) => e.length >= 500, { timeout: 30_000 });
    const drainMs = Date.now() - onlineAt;
    await waitNumber(page, "st-queued", 0);
    await sleep(1500); // anything sent twice would arrive now
    const events = await eventsOf(customer);
    const after = await stats();
    const dup409 = after.duplicates_rejected - before.duplicates_rejected;
    const dupBatch = after.duplicates_dropped_in_batch - before.duplicates_dropped_in_batch;
    t.diagnostic(`durability: drained 500 events in ${drainMs} ms (first full count after ${arrived.ms} ms); ` +
      `requests: ${after.track_requests - before.track_requests} track, ${after.batch_requests - before.batch_requests} batch; ` +
      `duplicates: ${dup409} rejected (409), ${dupBatch} dropped in batches`);

    assertExactlyOnce(events, b.keys, "one tab");
    const late = events.filter((e) => typeof e.timestamp !== "number" || e.timestamp < b.startedAt - CLOCK_SLACK_MS || e.timestamp > b.endedAt);
    const offsets = events.map((e) => e.timestamp - b.startedAt);
    t.diagnostic(`durability: timestamps ${Math.min(...offsets)}..${Math.max(...offsets)} ms after the burst began (burst lasted ${b.endedAt - b.startedAt} ms; went online ${onlineAt - b.startedAt} ms after it began)`);
    assert.deepEqual(late.slice(0, 5).map((e) => ({ key: e.idempotency_key, timestamp: e.timestamp, received_at: e.received_at })), [],
      `${late.length} events carry a timestamp outside the window of their track() calls [${b.startedAt}, ${b.endedAt}] (replay began at ${onlineAt})`);
    assert.ok(dup409 <= MAX_DUPLICATES && dupBatch <= MAX_DUPLICATES, `duplicates during the drain: ${dup409} rejected, ${dupBatch} dropped in batches`);
  }));

  test("durability (issue #4): two tabs sharing the queue, 250 offline in each, drained exactly once", inContext(async (context, t) => {
    const customer = uid("cus_tabs");
    const a = await openDemo(context, "tab A");
    const b = await openDemo(context, "tab B");
    await Promise.all([waitOfflineReady(a), waitOfflineReady(b)]);
    await setEvent(a, customer);
    await setEvent(b, customer);
    const before = await stats();

    await context.setOffline(true);
    await Promise.all([a.waitForSelector("#net[data-state=offline]"), b.waitForSelector("#net[data-state=offline]")]);
    const [ba, bb] = await Promise.all([burst(a, 250), burst(b, 250)]);
    assert.deepEqual(ba.tally, { "queued (offline)": 250 }, "tab A");
    assert.deepEqual(bb.tally, { "queued (offline)": 250 }, "tab B");
    const keys = [...ba.keys, ...bb.keys];
    assert.equal(new Set(keys).size, 500, "500 distinct keys across the tabs");
    // One queue: both tabs see all 500.
    await Promise.all([waitNumber(a, "st-queued", 500), waitNumber(b, "st-queued", 500)]);

    const onlineAt = Date.now();
    await context.setOffline(false);
    const arrived = await waitFor(`500 events recorded for ${customer}`, () => eventsOf(customer), (e) => e.length >= 500, { timeout: 30_000 });
    const drainMs = Date.now() - onlineAt;
    await Promise.all([waitNumber(a, "st-queued", 0), waitNumber(b, "st-queued", 0)]);
    await sleep(1500);
    const events = await eventsOf(customer);
    const after = await stats();
    const dup409 = after.duplicates_rejected - before.duplicates_rejected;
    const dupBatch = after.duplicates_dropped_in_batch - before.duplicates_dropped_in_batch;
    const [da, db] = [await readNumber(a, "st-delivered"), await readNumber(b, "st-delivered")];
    t.diagnostic(`two tabs: drained 500 events in ${drainMs} ms (first full count after ${arrived.ms} ms); tab A delivered ${da}, tab B ${db}; ` +
      `requests: ${after.track_requests - before.track_requests} track, ${after.batch_requests - before.batch_requests} batch; ` +
      `duplicates_rejected +${dup409}, duplicates_dropped_in_batch +${dupBatch}`);

    assertExactlyOnce(events, keys, "two tabs");
    assert.ok(dup409 <= MAX_DUPLICATES, `the mock rejected ${dup409} duplicates (409) during the drain: the tabs sent events twice`);
    assert.ok(dupBatch <= MAX_DUPLICATES, `the mock dropped ${dupBatch} duplicates in batches during the drain: the tabs sent events twice`);
    assert.equal(da + db, 500, `deliveries reported by the tabs: A ${da} + B ${db}`);
  }));

  test("controls: simulated offline, server faults and dead letters, by keyboard where it matters", inContext(async (context, t) => {
    const customer = uid("cus_ctl");
    const page = await openDemo(context, "controls");
    const demoOffline = async () => (await (await fetch(`${demo.url}/api/demo/offline`)).json()).offline;
    const faults = () => mockGet("/_mock/faults");
    try {
      // "Recorded, then the connection dropped" (the demo server answers 502): the retry's 409
      // may belong to the attempt that got no answer, so it proves nothing yet — queued; once
      // that attempt must have ended (the demo's 10 s window) the queue's resend gets 409 again,
      // now proof: a duplicate, counted once.
      await setEvent(page, customer);
      await page.selectOption("#fault", "drop_after_record");
      await page.click("#track");
      await page.waitForSelector("#results tbody tr:first-child td.outcome.queued", { timeout: 15_000 });
      assert.equal(await textOf(page, "#results tbody tr:first-child td.outcome"), "queued (unconfirmed)");
      await page.waitForSelector("#results tbody tr:first-child td.outcome.duplicate", { timeout: 30_000 });
      await page.selectOption("#fault", "");
      await waitNumber(page, "st-duplicates", 1);
      await waitNumber(page, "st-queued", 0);
      assert.equal((await eventsOf(customer)).length, 1, "the dropped-after-record event is recorded once");

      // Simulated offline: the demo server drops /api/autumn requests; events are queued.
      await page.check("#sim-offline");
      await waitFor("the demo server to be offline", demoOffline, (v) => v === true);
      await page.waitForSelector("#net[data-state=simulated]");
      await page.selectOption("#feature", "feature:api_calls");
      await page.click("#track");
      await page.waitForSelector("#results tbody tr:first-child td.outcome.queued", { timeout: 15_000 });
      assert.match(await page.textContent("#results tbody tr:first-child td.outcome"), /queued \((network_error|offline)\)/);
      // An event Autumn will refuse for good, queued behind it: it becomes a dead letter.
      await page.selectOption("#feature", "feature:no_such_feature");
      await page.click("#track");
      await waitFor("the second queued result", () => page.$$eval("#results tbody tr td.outcome.queued", (tds) => tds.length), (n) => n === 2, { timeout: 15_000 });

      await page.uncheck("#sim-offline");
      await waitFor("the demo server to be online", demoOffline, (v) => v === false);
      await waitFor(`the good event recorded for ${customer}`, () => eventsOf(customer), (e) => e.length === 2, { timeout: 30_000 });
      await page.waitForSelector("#dead tbody tr:not(.empty)", { timeout: 30_000 });
      assert.match(await page.textContent("#dead tbody tr:first-child"), /feature_not_found \(404\)/);
      await waitNumber(page, "st-dead", 1);
      await waitNumber(page, "st-queued", 0);

      // Retry puts it back (it fails again, for good); Discard removes it.
      const deadEvents = () => page.evaluate(() => window.autumnDemo.eventCounts.dead_letter || 0);
      const n0 = await deadEvents();
      await page.click("#dead tbody tr:first-child button:text('Retry')");
      await waitFor("the retried event to be refused again", deadEvents, (n) => n === n0 + 1, { timeout: 30_000 });
      await page.waitForSelector("#dead tbody tr:not(.empty)", { timeout: 10_000 });
      await waitNumber(page, "st-dead", 1);
      await page.click("#dead tbody tr:first-child button:text('Discard')");
      await page.waitForSelector("#dead tbody tr.empty", { timeout: 10_000 });
      await waitNumber(page, "st-dead", 0);
      assert.equal((await page.evaluate(() => window.autumnDemo.tracker.deadLetters())).length, 0);

      // Server faults, by keyboard: 50 % server errors, an outage, then clear.
      await page.focus("#f-error");
      for (let i = 0; i < 10; i++) await page.keyboard.press("ArrowRight");
      await waitFor("error_500 = 0.5 on the mock", faults, (f) => f.error_500 === 0.5);
      assert.equal(await page.textContent("#f-error-out"), "50%");
      await page.focus("#f-outage");
      await page.keyboard.press("Space");
      await waitFor("an outage on the mock", faults, (f) => f.outage === true);
      await page.waitForSelector("#sv-detail:has-text('outage')", { timeout: 5000 });
      await page.focus("#f-clear");
      await page.keyboard.press("Enter");
      await waitFor("no faults on the mock", faults, (f) => f.outage === false && f.error_500 === 0);
      await waitFor("the sliders to follow the server", () => page.inputValue("#f-error"), (v) => v === "0", { timeout: 5000 });
    } finally {
      await fetch(`${demo.url}/api/demo/offline`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"offline":false}' }).catch(() => {});
      await fetch(`${mock.url}/_mock/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"clear":true}' }).catch(() => {});
    }
  }));

  test("CSP: strict header (no 'unsafe-eval', no inline), and no violation in any page of the run", inContext(async (context, t) => {
    for (const path of ["/", "/sw.js"]) {
      const r = await fetch(`${demo.url}${path}`);
      assert.equal(r.status, 200, path);
      const csp = r.headers.get("content-security-policy");
      assert.ok(csp, `${path} has no Content-Security-Policy header`);
      const directives = Object.fromEntries(csp.split(";").map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v]));
      const all = Object.values(directives).flat();
      assert.ok(!all.includes("'unsafe-eval'"), `${path}: 'unsafe-eval' in ${csp}`);
      assert.ok(!all.includes("'unsafe-inline'"), `${path}: 'unsafe-inline' in ${csp}`);
      assert.deepEqual(directives["script-src"], ["'self'", "'wasm-unsafe-eval'"], `${path}: script-src`);
      assert.ok(directives["style-src"] && !directives["style-src"].includes("'unsafe-inline'"), `${path}: style-src`);
      assert.deepEqual(directives["default-src"], ["'self'"], `${path}: default-src`);
    }
    // A fresh page, used a little, and every page of the earlier tests: no violation at all.
    const page = await openDemo(context, "csp");
    await setEvent(page, uid("cus_csp"));
    await page.click("#track");
    await page.waitForSelector("#results tbody tr:first-child td.outcome.delivered", { timeout: 10_000 });
    await sleep(600); // a chart redraw or two
    assert.deepEqual(await page.evaluate(() => window.__cspViolations || []), [], "securitypolicyviolation events in this page");
    assert.deepEqual(cspLines, [], "CSP violations reported in the pages of this run");
  }));
});
