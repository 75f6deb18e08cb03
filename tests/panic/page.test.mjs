// Panic recovery in headless Chromium, against the test-panic build (tests/panic/build.sh)
// served from 127.0.0.1 with its real browser entry (js/browser.js), IndexedDB and Web Locks,
// and autumn-mock: a panic in the middle of track() and in the middle of a drain (which holds
// the tab's Web Lock) surfaces as a TrackError `internal` instead of a promise that never
// settles, the same tracker object keeps working, and every event is recorded exactly once.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startMock } from "../page/harness.mjs";

const PKG = fileURLToPath(new URL("../../target/panic-pkg", import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import * as lib from "/js/browser.js";
window.lib = lib;
</script>`;

let mock;
let server;
let origin;
let browser;

before(async () => {
  if (!existsSync(`${PKG}/pkg/autumn_track_bg.wasm`)) {
    throw new Error(`${PKG} is missing: run tests/panic/build.sh first (tests/panic/run.sh does)`);
  }
  mock = await startMock();
  server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") return res.writeHead(200, { "content-type": TYPES[".html"] }).end(PAGE);
    const file = normalize(join(PKG, path));
    if (!file.startsWith(PKG) || !existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r()));
  await mock?.stop();
});

/** A fresh page with the package loaded; collects the page's uncaught errors. */
async function open() {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(origin);
  await page.waitForFunction(() => window.lib);
  return { page, errors };
}

/** Only the dead instance's trap and its stale callbacks may be reported by the page. */
function assertOnlyStale(errors) {
  for (const e of errors) {
    assert.match(e, /RuntimeError: unreachable|previous WASM instance|stale object/, `unexpected page error: ${e}`);
  }
}

// Runs in the page: helpers shared by the scenarios.
const PRELUDE = `
  const uid = (p) => p + "_" + Math.random().toString(36).slice(2, 12);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ev = (key) => ({ customerId: uid("cus"), featureId: "messages", idempotencyKey: key });
  const faults = (body) => fetch(mock + "/_mock/faults", { method: "POST", body: JSON.stringify(body) });
  const recorded = async (key) => (await (await fetch(mock + "/_mock/events?idempotency_key=" + key)).json()).count;
  const err = (e) => ({ name: e?.name, code: e?.code, key: e?.idempotencyKey, message: e?.message });
  const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ err: err(e) }));
  // A promise that never settles would hang the test: give up after 10 s instead.
  const bounded = (p) => Promise.race([settle(p), sleep(10000).then(() => ({ hung: true }))]);
  const t = new lib.AutumnTracker({ secretKey: "am_sk_test_panic", dangerouslyAllowBrowser: true,
    baseUrl: mock, queueName: uid("db"), maxRetries: 1, timeoutMs: 2000, confirmAfterMs: 2000 });
  const good = async () => {
    const key = uid("good");
    const r = await bounded(t.track(ev(key)));
    return { status: r.ok?.status ?? r, recorded: await recorded(key) };
  };
  const drainAll = async () => {
    let f;
    for (let i = 0; i < 40; i++) {
      f = await bounded(t.flush());
      if (f.ok?.remaining === 0) break;
      await sleep(250);
    }
    return f;
  };
`;

async function scenario(page, body) {
  return page.evaluate(
    ([mock, code]) => new Function("lib", "mock", `return (async () => { ${code} })();`)(window.lib, mock),
    [mock.url, PRELUDE + body],
  );
}

function assertInternal(r) {
  assert.ok(!r.hung, "settled, did not hang");
  assert.equal(r.err?.name, "TrackError", JSON.stringify(r));
  assert.equal(r.err.code, "internal");
  assert.ok(!r.err.message.includes("am_sk_test_panic"), "no key in the message");
}

test("Chromium: a panic in the middle of track() is a TrackError; the IndexedDB copy is replayed once", async () => {
  const { page, errors } = await open();
  const out = await scenario(
    page,
    `
    await t.pending(); // the queue is open
    const key = uid("midtrack");
    window.__autumnTrackPanic = "track";
    const started = Date.now();
    const r = await bounded(t.track(ev(key)));
    const took = Date.now() - started;
    const queuedAfter = (await t.pending()).queued;
    const g1 = await good();
    // Stored before the send and leased to it for 60 s: jump the clock past the lease.
    const realNow = Date.now;
    Date.now = () => realNow() + 61000;
    const f = await drainAll();
    Date.now = realNow;
    const rec = await recorded(key);
    const g2 = await good();
    t.close();
    return { r, took, key, queuedAfter, g1, f, rec, g2 };
  `,
  );
  assertInternal(out.r);
  assert.equal(out.r.err.key, out.key);
  assert.ok(out.took < 5000, `rejected after ${out.took} ms`);
  assert.equal(out.queuedAfter, 1, "kept in IndexedDB across the restart");
  assert.deepEqual(out.g1, { status: "delivered", recorded: 1 });
  assert.equal(out.f.ok?.remaining, 0, JSON.stringify(out.f));
  assert.equal(out.rec, 1, "recorded exactly once");
  assert.deepEqual(out.g2, { status: "delivered", recorded: 1 });
  assertOnlyStale(errors);
  await page.context().close();
});

test("Chromium: a panic in the middle of a drain releases the tab lock; every event is delivered once", async () => {
  const { page, errors } = await open();
  const out = await scenario(
    page,
    `
    await t.pending();
    const keys = [uid("d1"), uid("d2"), uid("d3")];
    await faults({ outage: true, outage_mode: "reset" });
    const queued = [];
    for (const k of keys) queued.push((await bounded(t.track(ev(k)))).ok?.status);
    await faults({ clear: true });
    window.__autumnTrackPanic = "drain";
    const f1 = await bounded(t.flush());
    const f2 = await drainAll();
    const rec = await Promise.all(keys.map(recorded));
    const g = await good();
    // Later drains take the tab's Web Lock again: the dead drain must not hold it forever.
    const later = uid("later");
    await faults({ outage: true, outage_mode: "reset" });
    const q = (await bounded(t.track(ev(later)))).ok?.status;
    await faults({ clear: true });
    const f3 = await drainAll();
    const rec3 = await recorded(later);
    t.close();
    return { queued, f1, f2, rec, g, q, f3, rec3 };
  `,
  );
  assert.deepEqual(out.queued, ["queued", "queued", "queued"]);
  assertInternal(out.f1);
  assert.equal(out.f2.ok?.remaining, 0, `the lock was let go: ${JSON.stringify(out.f2)}`);
  assert.deepEqual(out.rec, [1, 1, 1]);
  assert.deepEqual(out.g, { status: "delivered", recorded: 1 });
  assert.equal(out.q, "queued");
  assert.equal(out.f3.ok?.remaining, 0, `a later drain got the tab lock: ${JSON.stringify(out.f3)}`);
  assert.equal(out.rec3, 1);
  assertOnlyStale(errors);
  await page.context().close();
});

test("Chromium: a panic in a synchronous call, then the tracker works", async () => {
  const { page, errors } = await open();
  const out = await scenario(
    page,
    `
    const key = uid("sync");
    window.__autumnTrackPanic = "prepare";
    const r = await bounded(t.track(ev(key)));
    const rec = await recorded(key);
    const g = await good();
    t.close();
    return { r, rec, g };
  `,
  );
  assertInternal(out.r);
  assert.equal(out.rec, 0);
  assert.deepEqual(out.g, { status: "delivered", recorded: 1 });
  assertOnlyStale(errors);
  await page.context().close();
});
