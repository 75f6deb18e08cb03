// Storage and runtime limits in Chromium, against real IndexedDB and autumn-mock (issue 12,
// items 8 and 11): a write IndexedDB refuses, close() while the database is still opening, and a
// browser without AbortSignal.timeout (Safari < 16). The first and the third failed on the
// engine before the sans-IO rewrite (d53a781): the first write error moved the tracker to memory
// for the session (its IndexedDB backlog was no longer counted or drained), and without
// AbortSignal.timeout a send failed as invalid_options("baseUrl") and its stored copy was
// deleted. The second held there too: the old engine kept the connection opened after close(),
// but its versionchange handler let a deleteDatabase through and a closed tracker sent nothing.
//
// Needs: scripts/build.sh (pkg/). Run: node --test --test-reporter=tap tests/chaos/
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchChromium, mockGet, requireBuilt, servePackage } from "./lib.mjs";
import { startMock } from "../page/harness.mjs";

const HTML = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>loading</title>
<script type="module">
import { AutumnTracker } from "/js/browser.js";
// A full disk, on request: writes (put, add) into the queue's stores fail (Chromium's own quota cannot be
// lowered for an in-memory test profile: Storage.overrideQuotaForOrigin changed nothing there).
window.quotaFull = false;
for (const name of ["put", "add"]) {
  const write = IDBObjectStore.prototype[name];
  IDBObjectStore.prototype[name] = function (...a) {
    if (window.quotaFull) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    return write.apply(this, a);
  };
}
const dbKeys = (name) =>
  new Promise((res, rej) => {
    const r = indexedDB.open(name);
    r.onerror = () => rej(r.error);
    r.onsuccess = () => {
      const db = r.result;
      const q = db.transaction("queue", "readonly").objectStore("queue").getAllKeys();
      q.onsuccess = () => (db.close(), res(q.result));
      q.onerror = () => (db.close(), rej(q.error));
    };
  });
// How a deleteDatabase ends within \`ms\`: "deleted", "error: …" or "never (blocked)" when a
// connection that was asked to close (versionchange) stays open.
const deleteDb = (name, ms) =>
  new Promise((res) => {
    const r = indexedDB.deleteDatabase(name);
    let blocked = false;
    const t = setTimeout(() => res(blocked ? "never (blocked)" : "never"), ms);
    r.onsuccess = () => (clearTimeout(t), res("deleted"));
    r.onerror = () => (clearTimeout(t), res("error: " + r.error));
    r.onblocked = () => (blocked = true);
  });
const flushAll = async (t, ms) => {
  const until = Date.now() + ms;
  let f;
  do {
    f = await t.flush();
    if (f.remaining === 0) return f;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < until);
  return f;
};
window.t = {
  async quotaStart(base, db, cus) {
    const events = (window.qEvents = []);
    const t = (window.qt = new AutumnTracker({
      baseUrl: base,
      headers: { Authorization: "Bearer am_sk_test_limits" },
      queueName: db,
      onEvent: (e) => events.push(e),
    }));
    const out = [];
    for (let i = 0; i < 3; i++) out.push(await t.track({ customerId: cus, featureId: "messages", idempotencyKey: cus + "-" + i }));
    return { out, stored: (await dbKeys(db)).length };
  },
  async quotaFull(cus) {
    const t = window.qt;
    const out = [];
    window.quotaFull = true;
    for (let i = 3; i < 5; i++) out.push(await t.track({ customerId: cus, featureId: "messages", idempotencyKey: cus + "-" + i }));
    window.quotaFull = false;
    return { out, pending: await t.pending(), fallbacks: window.qEvents.filter((e) => e.type === "storage_fallback").map((e) => e.message) };
  },
  async quotaDrain(db) {
    const t = window.qt;
    const f = await flushAll(t, 20000);
    const p = await t.pending();
    t.close();
    return { remaining: f.remaining, pending: p, left: (await dbKeys(db)).length };
  },
  async closeWhileOpening(base, db, cus) {
    const opts = { baseUrl: base, headers: { Authorization: "Bearer am_sk_test_limits" }, queueName: db };
    // Two events left queued by an earlier page (tracked offline: the test set the page offline).
    const first = new AutumnTracker(opts);
    for (let i = 0; i < 2; i++) await first.track({ customerId: cus, featureId: "messages", idempotencyKey: cus + "-" + i });
    first.close();
    window.goOnline = new Promise((r) => (window.online = r));
    await window.goOnline; // the test puts the page back online
    const t = new AutumnTracker(opts);
    t.close(); // the database is still opening
    await new Promise((r) => setTimeout(r, 2000));
    const left = (await dbKeys(db)).length;
    return { left, deleted: await deleteDb(db, 5000) };
  },
  async noAbortSignalTimeout(base, db, key, cus) {
    const saved = AbortSignal.timeout;
    delete AbortSignal.timeout;
    try {
      const t = new AutumnTracker({ baseUrl: base, headers: { Authorization: "Bearer am_sk_test_limits" }, queueName: db, timeoutMs: 500, maxRetries: 0 });
      const t0 = Date.now();
      let r;
      try {
        r = await t.track({ customerId: cus, featureId: "messages", idempotencyKey: key });
      } catch (e) {
        r = { threw: e.code, field: e.field, message: e.message };
      }
      const took = Date.now() - t0;
      const keptInDb = (await dbKeys(db)).includes(key);
      const f = await flushAll(t, 15000);
      t.close();
      return { r, took, keptInDb, remaining: f.remaining };
    } finally {
      AbortSignal.timeout = saved;
    }
  },
};
window.AutumnTracker = AutumnTracker;
window.flushAll = flushAll;
window.dbKeys = dbKeys;
document.title = "ready";
</script>`;

let site, browser, mock;
before(async () => {
  requireBuilt();
  [site, mock] = await Promise.all([servePackage({ "/": HTML }), startMock()]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await mock?.stop();
});

const uid = (p) => `${p}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
const recorded = async (key) => (await mockGet(mock.url, `/_mock/events?idempotency_key=${encodeURIComponent(key)}`)).events.length;

async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(site.url + "/");
  await page.waitForFunction(() => document.title === "ready");
  return { context, page, errors };
}

test("item 8: a write IndexedDB refuses (a full disk) waits in memory and says so; IndexedDB keeps serving its backlog; all recorded once", async () => {
  const { context, page, errors } = await openPage();
  const db = uid("quota");
  const cus = uid("cus");
  await context.setOffline(true);
  const a = await page.evaluate(([b, d, c]) => window.t.quotaStart(b, d, c), [mock.url, db, cus]);
  assert.deepEqual(a.out.map((r) => [r.status, r.reason, r.storage]), Array(3).fill(["queued", "offline", "indexeddb"]));
  assert.equal(a.stored, 3, "the first three are in IndexedDB");
  const b = await page.evaluate((c) => window.t.quotaFull(c), cus);
  for (const r of b.out) {
    assert.equal(r.status, "queued", JSON.stringify(r));
    assert.equal(r.storage, "memory", `the event says where it waits: ${JSON.stringify(r)}`);
  }
  assert.equal(b.fallbacks.length, 1, `reported once: ${JSON.stringify(b.fallbacks)}`);
  assert.match(b.fallbacks[0], /write/i);
  // Before: storage "memory" and queued 2 — the IndexedDB backlog was forgotten for the session.
  assert.equal(b.pending.storage, "indexeddb", JSON.stringify(b.pending));
  assert.equal(b.pending.queued, 5, JSON.stringify(b.pending));
  // Online again, the same tracker: every event is delivered, once, and IndexedDB is empty —
  // the deliveries of its records were deleted there, not in memory.
  await context.setOffline(false);
  const d = await page.evaluate((x) => window.t.quotaDrain(x), db);
  assert.equal(d.remaining, 0, JSON.stringify(d));
  assert.equal(d.left, 0, "IndexedDB emptied by the deliveries");
  for (let i = 0; i < 5; i++) assert.equal(await recorded(`${cus}-${i}`), 1, `event ${i} recorded once`);
  await page.close();
  await context.close();
  // The simulated full disk throws inside IndexedDB's own callbacks, which the page reports as
  // uncaught (a real one aborts the transaction instead); nothing else may be.
  assert.deepEqual(errors.filter((e) => !e.includes("The quota has been exceeded")), []);
});

test("item 11: close() while the database is still opening: nothing is replayed after it, the database is released (held before too)", async () => {
  const { context, page, errors } = await openPage();
  const db = uid("closing");
  const cus = uid("cus");
  await context.setOffline(true);
  const done = page.evaluate(([b, d, c]) => window.t.closeWhileOpening(b, d, c), [mock.url, db, cus]);
  await page.waitForFunction(() => typeof window.online === "function");
  await context.setOffline(false);
  await page.evaluate(() => window.online());
  const r = await done;
  // Before: the open finished after close(), kept its connection and replayed the queue.
  assert.equal(await recorded(`${cus}-0`) + (await recorded(`${cus}-1`)), 0, "nothing sent after close()");
  assert.equal(r.left, 2, "queued events stay for the next tracker");
  assert.equal(r.deleted, "deleted");
  await page.close();
  await context.close();
  assert.deepEqual(errors, []);
});

test("item 11: without AbortSignal.timeout (Safari < 16) a send still times out, and the event stays queued", async () => {
  const { context, page, errors } = await openPage();
  const db = uid("nosignal");
  const key = uid("slow");
  const cus = uid("cus");
  await fetch(`${mock.url}/_mock/faults`, { method: "POST", body: JSON.stringify({ scripts: { [key]: ["slow_headers"] } }) });
  const r = await page.evaluate(([b, d, k, c]) => window.t.noAbortSignalTimeout(b, d, k, c), [mock.url, db, key, cus]);
  // Before: TrackError invalid_options (field baseUrl), and the stored copy deleted.
  assert.equal(r.r.status, "queued", JSON.stringify(r));
  assert.equal(r.r.reason, "timeout");
  assert.ok(r.took < 3000, `timed out after ${r.took} ms (timeoutMs 500)`);
  assert.equal(r.keptInDb, true, "its stored copy is kept for the replay");
  assert.equal(r.remaining, 0, "the replay delivered it");
  assert.equal(await recorded(key), 1);
  await page.close();
  await context.close();
  assert.deepEqual(errors, []);
});
