// The secret-key search (issue #8, "Keys and trust"): a page makes trackers with a secret key
// (`dangerouslyAllowBrowser: true`, the only way a browser may hold one) and a wrong one, drives
// every error path it can — invalid options and input (hostile values too), 401 wrong key,
// 404 refusals, 5xx and 429 past the retries, timeouts, a dropped connection, network down and
// offline → queued, replays → dead letters, retryDeadLetters/discard, close and reopen, a
// reload — and captures everything: console output (with arguments), every onEvent and
// addEventListener event, every thrown error (message, code, String, JSON.stringify, stack,
// own properties), every result, pending()/deadLetters(), every value written to IndexedDB,
// Web Storage, Cache Storage and BroadcastChannel as it was written, dumps of every IndexedDB
// database (all stores, all records, binary values as hex and text), localStorage,
// sessionStorage, Cache Storage and cookies at several points, the request bodies and URLs,
// and finally the raw files of the browser profile. Neither key, nor its random suffix,
// occurs anywhere. A harmless marker put into event properties must be found in the same
// places, so an empty capture cannot pass.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/chaos/
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { onAbnormalExit, removeDir, startMock, tempDir } from "../page/harness.mjs";
import { launchPersistent, mockGet, requireBuilt, servePackage, setFaults, sleep } from "./lib.mjs";

const rand = (n) => randomBytes(n * 2).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, n);
const SUFFIX = rand(24);
const KEY = `am_sk_test_${SUFFIX}`;
const WRONG_SUFFIX = rand(24);
const WRONG = `am_sk_test_${WRONG_SUFFIX}`; // well formed, refused by the mock (401)
const MARKER = `harmless-marker-${rand(12)}`;

const HTML = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>loading</title>
<script type="module" src="/secret-page.js"></script>`;

let mock, site, context, profile, unregister;

before(async () => {
  requireBuilt();
  // Only KEY is accepted; no auto-created customers (so customer_not_found can happen).
  mock = await startMock(["--secret-key", KEY, "--seed", "3"]);
  site = await servePackage({
    "/index.html": HTML,
    "/secret-page.js": readFileSync(new URL("./secret-page.js", import.meta.url), "utf8"),
  });
  profile = tempDir("autumn-secret-profile-");
  context = await launchPersistent(profile);
  const m = mock;
  unregister = onAbnormalExit(() => m.kill());
});

after(async () => {
  unregister?.();
  await context?.close().catch(() => {});
  await site?.close().catch(() => {});
  await mock?.stop();
  removeDir(profile);
});

/** Every place `needle` occurs in `text` (with some context), up to `max`. */
function occurrences(text, needle, max = 5) {
  const out = [];
  for (let i = text.indexOf(needle); i >= 0 && out.length < max; i = text.indexOf(needle, i + 1)) {
    out.push(text.slice(Math.max(0, i - 160), i + needle.length + 80));
  }
  return out;
}

/** Files under `dir` (recursively) whose bytes contain `needle` as UTF-8 or UTF-16LE. */
function filesContaining(dir, needle) {
  const hits = [];
  const patterns = [Buffer.from(needle, "utf8"), Buffer.from(needle, "utf16le")];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        let buf;
        try {
          buf = readFileSync(p);
        } catch {
          continue;
        }
        if (patterns.some((pat) => buf.includes(pat))) hits.push(relative(dir, p));
      }
    }
  };
  walk(dir);
  return hits;
}

test("a secret key is never written to IndexedDB, storage, logs, errors or events, on any error path", { timeout: 180_000 }, async () => {
  const log = [];
  const consoleLines = [];
  const pageErrors = [];
  const requests = []; // what the page sent: URLs and bodies (the Authorization header is expected to carry the key)
  const sections = {}; // name -> captured text, searched at the end
  const dumps = [];

  const page = await context.newPage();
  await page.addInitScript({ path: new URL("./secret-init.js", import.meta.url).pathname });
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()} @ ${JSON.stringify(m.location())}`));
  page.on("pageerror", (e) => pageErrors.push(`${e?.name}: ${e?.message}\n${e?.stack}`));
  page.on("request", (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData() ?? null }));
  page.on("requestfailed", (r) => consoleLines.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(`${site.url}/index.html`);
  await page.waitForFunction(() => document.title === "ready", null, { timeout: 20_000 });

  const results = [];
  const step = async (what, fn) => {
    const r = await fn();
    results.push({ what, r });
    log.push(`${what}: ${JSON.stringify(r).slice(0, 400)}`);
    return r;
  };
  const make = (name, opts) => step(`make ${name}`, () => page.evaluate(([n, o]) => window.s.make(n, o), [name, opts]));
  const call = (name, method, ...args) => step(`${name}.${method}`, () => page.evaluate(([n, m, a]) => window.s.call(n, m, ...a), [name, method, args]));
  const hostile = (name, kind) => step(`${name} hostile ${kind}`, () => page.evaluate(([n, k, mk]) => window.s.hostile(n, k, mk), [name, kind, MARKER]));
  const keyFor = (name, input) => page.evaluate(([n, i]) => window.s.keyFor(n, i), [name, input]);
  const dump = async (label) => {
    const d = await page.evaluate(() => window.s.dump());
    dumps.push({ label, d });
    return d;
  };
  const errorCode = (r) => (r.ok ? `ok:${r.value?.status ?? ""}` : r.error.code);
  const ev = (extra = {}) => ({ customerId: "cus_1", featureId: "messages", properties: { marker: MARKER }, ...extra });
  // confirmAfterMs: this mock's requests end with their answers (its slow faults stall before
  // processing), so a 3 s window is enough, and keeps the replays below inside the test's time.
  const base = { baseUrl: mock.url, dangerouslyAllowBrowser: true, maxRetries: 2, timeoutMs: 800, confirmAfterMs: 3000 };

  // ---- the constructor refuses bad options without repeating the key ----
  const ctor = {
    noOptIn: await make("x1", { secretKey: KEY, baseUrl: mock.url }),
    whitespace: await make("x2", { ...base, secretKey: `${KEY}\n` }),
    publishable: await make("x3", { ...base, secretKey: `am_pk_test_${SUFFIX}` }),
    both: await make("x4", { ...base, secretKey: KEY, headers: { Authorization: `Bearer ${KEY}` } }),
    typo: await make("x5", { ...base, secretKye: KEY }),
    badType: await make("x6", { ...base, secretKey: KEY, dangerouslyAllowBrowser: "yes" }),
    badUrl: await make("x7", { ...base, secretKey: KEY, baseUrl: `not a url ${KEY}` }),
    badTimeout: await make("x8", { ...base, secretKey: KEY, timeoutMs: -1 }),
    headerKey: await make("x9", { ...base, headers: { "X-Api-Key": `${KEY}\n` } }),
    unknownOption: await make("x10", { ...base, secretKey: KEY, secretKeys: [KEY] }),
  };
  assert.equal(ctor.noOptIn.error?.code, "secret_key_in_browser", JSON.stringify(ctor.noOptIn));
  for (const [k, r] of Object.entries(ctor)) assert.equal(r.ok, false, `constructor case ${k} should throw: ${JSON.stringify(r)}`);

  // ---- the trackers: one with the key (IndexedDB queue), one with no queue, one wrong key ----
  assert.ok((await make("t", { ...base, secretKey: KEY, queue: "indexeddb", queueName: "secret-q" })).ok);
  assert.ok((await make("off", { ...base, secretKey: KEY, queue: "off" })).ok);
  assert.ok((await make("w", { ...base, secretKey: WRONG, queue: "indexeddb", queueName: "secret-w" })).ok);
  assert.ok((await make("woff", { ...base, secretKey: WRONG, queue: "off" })).ok);

  const codes = {};
  const expectCode = async (label, r, want) => {
    const got = errorCode(await r);
    codes[label] = got;
    if (want) assert.equal(got, want, `${label}: ${got}`);
  };

  await expectCode("delivered", call("t", "track", ev()), "ok:delivered");

  // Invalid input, from Node and built in the page.
  await expectCode("missing customer", call("t", "track", { featureId: "messages", properties: { marker: MARKER } }), "invalid_input");
  await expectCode("value string", call("t", "track", ev({ value: "many" })), "invalid_input");
  await expectCode("unknown field", call("t", "track", ev({ custmerId: "cus_1" })), "invalid_input");
  await expectCode("both feature and event", call("t", "track", ev({ eventName: "message_sent" })), "invalid_input");
  await expectCode("timestamp in seconds", call("t", "track", ev({ timestamp: 1_700_000_000 })), "invalid_input");
  await expectCode("properties array", call("t", "track", ev({ properties: [MARKER] })), "invalid_input");
  await expectCode("key-looking idempotencyKey", call("t", "track", ev({ idempotencyKey: "" })), "invalid_input");
  for (const kind of ["cyclic", "getter", "proxy", "deep", "huge", "surrogate", "symbol", "bigint", "nothing", "nullInput"]) {
    await expectCode(`hostile ${kind}`, hostile("t", kind), "invalid_input");
  }

  // Refusals from the server (4xx other than 408/409/429) — thrown with Autumn's code.
  await expectCode("feature_not_found", call("t", "track", ev({ featureId: "no_such_feature" })), "feature_not_found");
  await expectCode("customer_not_found", call("t", "track", ev({ customerId: "cus_nobody" })), "customer_not_found");
  await expectCode("entity_not_found", call("t", "track", ev({ entityId: "seat_none" })), "entity_not_found");
  await expectCode("unknown event name", call("t", "track", { customerId: "cus_1", eventName: "no_such_event", properties: { marker: MARKER } }), null);
  // 401: the wrong key, in real time. Without a queue it is thrown with Autumn's code; with one,
  // the event is held (a key or session problem is fixed by a deploy, not by dropping events).
  await expectCode("401 wrong key (queue off)", call("woff", "track", ev()), "invalid_secret_key");
  await expectCode("401 wrong key (queued)", call("w", "track", ev()), "ok:queued");
  await expectCode("delivered, no queue", call("off", "track", ev()), "ok:delivered");

  // 5xx and 429 past the retries (queued, or thrown without a queue), timeouts, a dropped answer.
  const scripted = async (label, tracker, actions, input = ev()) => {
    const key = await keyFor(tracker, input);
    await setFaults(mock.url, { scripts: { [key]: actions } });
    const r = await call(tracker, "track", { ...input, idempotencyKey: key });
    codes[label] = errorCode(r);
    return r;
  };
  await scripted("503 x3 (queued)", "t", ["503", "503", "503", "503"]);
  await scripted("500/502/503 (queue off)", "off", ["500", "502", "503"]);
  await scripted("429 x3 (queued)", "t", ["429", "429", "429"]);
  await scripted("429 x3 (queue off)", "off", ["429", "429", "429"]);
  await scripted("timeout (queued)", "t", ["latency:2000", "latency:2000"]);
  await scripted("timeout (queue off)", "off", ["latency:2000", "latency:2000", "latency:2000"]);
  await scripted("drop after record (queued)", "t", ["drop_after_record"]);
  await scripted("reset (queued)", "t", ["reset_before_body", "reset_before_body"]);
  if ("html_502" in (await mockGet(mock.url, "/_mock/faults"))) {
    // The mock's lying answers, where it has them.
    await scripted("html 502 then 403 (queue off)", "off", ["html_502", "html_403"]);
    await scripted("garbage body", "t", ["garbage_body"]);
    await scripted("truncated body", "t", ["truncated_body"]);
    await scripted("slow headers (queued)", "t", ["slow_headers"]);
  }
  assert.equal(codes["503 x3 (queued)"], "ok:queued");
  assert.equal(codes["500/502/503 (queue off)"], "unavailable");
  assert.equal(codes["timeout (queue off)"], "unavailable");

  // Network down (requests to the mock fail) while the browser thinks it is online.
  const mockHost = new URL(mock.url).host;
  await page.route((u) => u.host === mockHost, (r) => r.abort("connectionreset"));
  await expectCode("network down (queued)", call("t", "track", ev()), "ok:queued");
  await expectCode("network down (queue off)", call("off", "track", ev()), "unavailable");
  await page.unrouteAll({ behavior: "ignoreErrors" });

  // Offline: good events, events Autumn will refuse on replay, and the wrong key's events.
  await context.setOffline(true);
  await expectCode("offline good", call("t", "track", ev()), "ok:queued");
  await expectCode("offline bad feature", call("t", "track", ev({ featureId: "no_such_feature" })), "ok:queued");
  await expectCode("offline bad customer", call("t", "track", ev({ customerId: "cus_nobody" })), "ok:queued");
  await expectCode("offline wrong key", call("w", "track", ev()), "ok:queued");
  await expectCode("offline wrong key 2", call("w", "track", ev({ value: 2 })), "ok:queued");
  await expectCode("flush offline", call("t", "flush"), null);
  await call("t", "pending");
  await call("w", "pending");
  const queuedDump = await dump("offline, events queued");
  await context.setOffline(false);

  // Replays: the good ones are delivered, the refused ones become dead letters.
  await setFaults(mock.url, { scripts: {} });
  for (let i = 0; i < 30; i++) {
    await call("t", "flush");
    await call("w", "flush");
    const [a, b] = [await call("t", "pending"), await call("w", "pending")];
    // The wrong key's events stay held (401s are never dead letters): only t's queue drains.
    if (a.value.queued === 0 && a.value.inFlight === 0 && b.value.queued >= 3) break;
    await sleep(1000);
  }
  const deadT = await call("t", "deadLetters");
  const deadW = await call("w", "deadLetters");
  assert.ok(deadT.value.length >= 2, `dead letters of t: ${JSON.stringify(deadT.value).slice(0, 500)}`);
  assert.equal(deadW.value.length, 0, `a 401 is not a dead letter: ${JSON.stringify(deadW.value).slice(0, 500)}`);
  assert.ok((await call("w", "pending")).value.queued >= 3, "the wrong key's events are held in its queue");
  const deadDump = await dump("dead letters");

  // retryDeadLetters / discard, then close and reopen the queue.
  await call("t", "retryDeadLetters", [deadT.value[0].idempotencyKey]);
  await call("t", "flush");
  await call("w", "retryDeadLetters");
  await call("w", "flush");
  await call("t", "discard", [deadT.value[0].idempotencyKey]);
  await call("t", "deadLetters");
  await call("w", "deadLetters");
  await page.evaluate(() => window.s.close("t"));
  assert.ok((await make("t2", { ...base, secretKey: KEY, queue: "indexeddb", queueName: "secret-q" })).ok);
  await call("t2", "pending");
  await call("t2", "deadLetters");
  await call("t2", "retryDeadLetters");
  await call("t2", "flush");
  await call("t2", "deadLetters");
  await expectCode("after reopen", call("t2", "track", ev()), "ok:delivered");
  await call("t2", "close");
  await expectCode("after close", call("t2", "track", ev()), null);

  // A reload: a new page opens the same queues with the key (leftovers replayed).
  await context.setOffline(true);
  await expectCode("offline before reload", call("w", "track", ev()), "ok:queued");
  sections["captures before reload"] = JSON.stringify(await page.evaluate(() => window.s.captured()));
  sections["writes/console before reload"] = JSON.stringify(await dump("before reload"));
  await context.setOffline(false);
  await page.reload();
  await page.waitForFunction(() => document.title === "ready", null, { timeout: 20_000 });
  assert.ok((await make("t3", { ...base, secretKey: KEY, queue: "indexeddb", queueName: "secret-q" })).ok);
  assert.ok((await make("w3", { ...base, secretKey: WRONG, queue: "indexeddb", queueName: "secret-w" })).ok);
  await sleep(500);
  await call("w3", "flush");
  await call("t3", "pending");
  await call("w3", "pending");
  await call("t3", "deadLetters");
  await call("w3", "deadLetters");
  const finalDump = await dump("final");
  sections["captures after reload"] = JSON.stringify(await page.evaluate(() => window.s.captured()));
  await page.close();

  const recordedWithKey = (await mockGet(mock.url, "/_mock/events")).events.filter((e) => e.headers?.authorization === `Bearer ${KEY}`).length;

  // ---- the search ----
  sections.results = JSON.stringify(results);
  sections.console = consoleLines.join("\n");
  sections.pageErrors = pageErrors.join("\n");
  sections.requestBodiesAndUrls = JSON.stringify(requests);
  sections.dumps = JSON.stringify(dumps);
  const needles = { key: KEY, suffix: SUFFIX, wrongKey: WRONG, wrongSuffix: WRONG_SUFFIX, keyBase64: Buffer.from(KEY).toString("base64").slice(0, 40), suffixHalf: SUFFIX.slice(6, 18) };
  const found = [];
  for (const [section, text] of Object.entries(sections)) {
    for (const [what, needle] of Object.entries(needles)) {
      for (const at of occurrences(text, needle)) found.push(`${what} in ${section}: …${at}…`);
    }
  }
  // The raw profile on disk (LevelDB files of IndexedDB, Local Storage, caches…), after
  // Chromium wrote everything out.
  await context.close();
  context = null;
  const onDisk = {};
  for (const [what, needle] of Object.entries({ key: KEY, suffix: SUFFIX, wrongKey: WRONG, wrongSuffix: WRONG_SUFFIX })) {
    for (const f of filesContaining(profile, needle)) found.push(`${what} in profile file ${f}`);
  }
  onDisk.marker = filesContaining(profile, MARKER);

  // ---- proof that the search can find things ----
  const idbText = (d) => JSON.stringify(d.indexedDB);
  const queueStore = queuedDump.indexedDB.find((db) => db.name === "secret-q")?.stores.find((s) => s.name === "queue");
  const deadStore = deadDump.indexedDB.find((db) => db.name === "secret-q")?.stores.find((s) => s.name === "dead");
  const summary = {
    constructorCodes: Object.fromEntries(Object.entries(ctor).map(([k, r]) => [k, r.error?.code])),
    codes,
    events: (sections["captures before reload"].match(/"via":"/g) || []).length,
    dumps: dumps.map(({ label, d }) => ({ label, databases: d.indexedDB.map((db) => `${db.name}: ${db.stores.map((s) => `${s.name}=${s.count}`).join(", ")}`), writes: d.writes.length, console: d.consoleCalls.length })),
    requests: requests.length,
    recordedWithKey,
    consoleLines: consoleLines.length,
    markerInProfileFiles: onDisk.marker,
    bytesSearched: Object.values(sections).reduce((n, t) => n + t.length, 0),
  };
  console.log(`# secret-search ${JSON.stringify(summary)}`);

  assert.ok(queueStore && queueStore.count >= 3, `the offline dump holds the queued events: ${JSON.stringify(queueStore)?.slice(0, 300)}`);
  assert.ok(idbText(queuedDump).includes(MARKER), "the marker is found in the IndexedDB dump of queued events");
  assert.ok(deadStore && deadStore.count >= 2 && JSON.stringify(deadStore).includes(MARKER), "the marker is found in the dead letters' store");
  assert.ok(idbText(finalDump).includes(MARKER), "the marker is found in the final IndexedDB dump");
  assert.ok(JSON.stringify(queuedDump.writes).includes(MARKER), "the marker is found among the captured IndexedDB writes");
  assert.ok(sections.results.includes(MARKER), "the marker is found in the captured results");
  assert.ok(sections.requestBodiesAndUrls.includes(MARKER), "the marker is found in the request bodies");
  assert.ok(sections.results.includes("invalid_secret_key"), "the 401 refusal is among what was searched");
  assert.ok(/HTTP 401/.test(sections.dumps), "the held 401s' reasons (in IndexedDB) are among what was searched");
  assert.ok(onDisk.marker.length > 0, "the marker is found in the profile's files (so the raw search works)");
  // Sanity: the trackers really held the key — the mock saw it in the Authorization header.
  assert.ok(recordedWithKey > 0, "the mock recorded events sent with the key");

  assert.equal(found.length, 0, `the secret key was found (${found.length} places; the first 20):\n${found.slice(0, 20).join("\n")}`);
  assert.deepEqual(pageErrors, [], "no uncaught page errors");
});
