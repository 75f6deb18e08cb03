// The bench page: runs each browser measurement when bench/lib/browser.mjs asks
// (page.evaluate → window.bench.*). Ours is the package as a browser app loads it
// (/ours/js/browser.js, from a snapshot of pkg/ and js/); the baselines are esbuild bundles.
import { Autumn, Queue } from "/bundles/baselines.js";

// `?pkg=/before/`: the package of another build (bench/run.mjs --before), measured the same way.
const PKG = new URLSearchParams(location.search).get("pkg") === "/before/" ? "/before/" : "/ours/";
const { AutumnTracker } = await import(`${PKG}js/browser.js`);
const { default: init } = await import(`${PKG}pkg/autumn_track.js`);

// browser.js already initialised the module: init() hands back its exports (memory included).
const wasm = await init();
const realFetch = globalThis.fetch;
const KEY = "am_sk_test_bench";
const now = () => performance.now();

function quantile(values, q) {
  const a = Float64Array.from(values).sort();
  if (a.length === 0) return NaN;
  const i = (a.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return a[lo] + (a[hi] - a[lo]) * (i - lo);
}

const input = (i) => ({ customerId: `bench_${i % 50}`, featureId: "api_calls", value: 1, properties: { plan: "pro", n: i } });

function ours(mock, extra = {}) {
  return new AutumnTracker({ baseUrl: mock, secretKey: KEY, dangerouslyAllowBrowser: true, ...extra });
}
const autumnJs = (mock) => new Autumn({ secretKey: KEY, serverURL: mock });

// ---- (2) track() cost without network ---------------------------------------------------

/** A fetch that answers at once, with the body Autumn (the mock) really answers. */
function stubFetch(body) {
  let calls = 0;
  globalThis.fetch = async () => {
    calls++;
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  };
  return () => {
    globalThis.fetch = realFetch;
    return calls;
  };
}

/** µs per call over `samples` samples of `batch` calls each (after `warm` calls). */
async function perCall(fn, { samples, batch, warm, sync }) {
  let i = 0;
  for (let w = 0; w < warm; w++) sync ? fn(i++) : await fn(i++);
  const out = [];
  for (let s = 0; s < samples; s++) {
    const t0 = now();
    if (sync) for (let j = 0; j < batch; j++) fn(i++);
    else for (let j = 0; j < batch; j++) await fn(i++);
    out.push(((now() - t0) * 1000) / batch);
  }
  return { median: quantile(out, 0.5), p99: quantile(out, 0.99), min: Math.min(...out), samples, batch };
}

/**
 * The variants of "one track() without network", each with fetch stubbed to answer at once:
 * ours validate() (validate + key + serialize, synchronous), ours track() with queue "off"
 * and "memory", and autumn-js track() (zod validation, request build, zod response parse).
 */
export async function trackCost({ mock, samples, batch, warm }) {
  // One real answer from the mock, as the body the stub returns.
  const real = await realFetch(`${mock}/v1/balances.track`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ customer_id: "bench_0", feature_id: "api_calls", value: 1 }),
  });
  if (!real.ok) throw new Error(`mock answered ${real.status}: ${await real.text()}`);
  // autumn-js 1.3 parses answers with Autumn's API 2.4 schema, whose deductions carry more
  // fields than the mock's (API 2.3); add them, so both SDKs parse the same valid answer.
  const body = await real.json();
  body.deductions = (body.deductions || []).map((d) => ({ ...d, balance_id: "bal_bench", plan_id: "plan_bench", reset: null, value: d.deducted }));
  const answer = JSON.stringify(body);
  const o = { samples, batch, warm };
  const res = {};
  const off = ours(mock, { queue: "off", maxRetries: 0 });
  const mem = ours(mock, { queue: "memory", maxRetries: 0 });
  const aj = autumnJs(mock);
  const restore = stubFetch(answer);
  try {
    // Interleaved rounds, so load on the machine hits every variant alike.
    const rounds = 3;
    const acc = { validate: [], trackOff: [], trackMemory: [], autumnJs: [], stubOnly: [] };
    for (let r = 0; r < rounds; r++) {
      // What the stub itself costs (a Response and its JSON), inside both SDKs' figures.
      acc.stubOnly.push(await perCall(async () => (await globalThis.fetch("/x")).json(), o));
      acc.validate.push(await perCall((i) => off.validate(input(i)), { ...o, sync: true }));
      acc.trackOff.push(
        await perCall(async (i) => {
          const x = await off.track(input(i));
          if (x.status !== "delivered") throw new Error(`ours: ${x.status}`);
        }, o),
      );
      acc.trackMemory.push(
        await perCall(async (i) => {
          const x = await mem.track(input(i));
          if (x.status !== "delivered") throw new Error(`ours: ${x.status}`);
        }, o),
      );
      acc.autumnJs.push(
        await perCall(async (i) => {
          const x = await aj.track(input(i));
          if (!x || x.customerId === undefined) throw new Error(`autumn-js: ${JSON.stringify(x)}`);
        }, o),
      );
    }
    for (const [k, v] of Object.entries(acc)) {
      // Median of the rounds' medians and p99s.
      res[k] = { median: quantile(v.map((x) => x.median), 0.5), p99: quantile(v.map((x) => x.p99), 0.5), rounds, samples, batch };
    }
    res.fetchCalls = restore();
  } finally {
    globalThis.fetch = realFetch;
    off.close();
    mem.close();
  }
  return res;
}

// ---- (3) online ---------------------------------------------------------------------------

/** `n` events, `conc` in flight at a time; latency = track() call → promise settled. */
async function loop(n, conc, call) {
  const lat = new Float64Array(n);
  const statuses = {};
  let errors = 0;
  let firstError;
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) {
        const i = next++;
        const s = now();
        try {
          const st = await call(i);
          statuses[st] = (statuses[st] || 0) + 1;
        } catch (e) {
          errors++;
          firstError ??= String(e?.message || e);
        }
        lat[i] = now() - s;
      }
    }),
  );
  const secs = (now() - t0) / 1000;
  return { n, conc, seconds: secs, eventsPerSec: n / secs, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), statuses, errors, firstError };
}

let onlineTracker;
export async function onlineOurs({ mock, n, conc, queueName }) {
  onlineTracker ??= ours(mock, { queueName });
  const r = await loop(n, conc, async (i) => (await onlineTracker.track(input(i))).status);
  r.pending = await onlineTracker.pending();
  return r;
}

export async function onlineAutumnJs({ mock, n, conc }) {
  const aj = autumnJs(mock);
  // autumn-js fails open: on a network error or 5xx it resolves a made-up success
  // ({ customerId: null, value: 0 }), so "delivered" is counted only when Autumn answered.
  // It parses the answer with API 2.4's schema, which the mock's 2.3 answer fails (deductions
  // lack fields): it then throws ResponseValidationError *after* the mock recorded the event
  // (the caller checks the mock's count), so that counts as delivered, and says so.
  return loop(n, conc, async (i) => {
    try {
      const r = await aj.track(input(i));
      return r?.customerId ? "delivered" : "fake_success";
    } catch (e) {
      if (e?.name === "ResponseValidationError") return "delivered_schema_mismatch";
      throw e;
    }
  });
}

/** The floor: a bare fetch() per event, same headers and body as ours sends, no SDK. */
export async function onlineRawFetch({ mock, n, conc, keepalive = false }) {
  return loop(n, conc, async (i) => {
    const ev = input(i);
    const key = crypto.randomUUID();
    const r = await realFetch(`${mock}/v1/balances.track`, {
      method: "POST",
      keepalive,
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", accept: "application/json", "x-api-version": "2.3.0", "idempotency-key": key },
      body: JSON.stringify({ customer_id: ev.customerId, feature_id: ev.featureId, value: ev.value, properties: ev.properties, idempotency_key: key }),
    });
    await r.json();
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return "delivered";
  });
}

// ---- (7) memory -----------------------------------------------------------------------------

export const wasmMemoryBytes = () => wasm.memory.buffer.byteLength;

// ---- (4) offline enqueue and (5) drain --------------------------------------------------------

let offlineTracker;
export async function enqueueOurs({ mock, n, queueName }) {
  if (navigator.onLine) throw new Error("the page is not offline");
  offlineTracker = ours(mock, { queueName, maxQueueSize: 1_000_000 });
  await offlineTracker.pending(); // the queue is open before the clock starts
  const t0 = now();
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => offlineTracker.track(input(i))));
  const secs = (now() - t0) / 1000;
  const notQueued = rs.filter((r) => r.status !== "queued").length;
  const p = await offlineTracker.pending();
  if (notQueued || p.queued !== n || p.storage !== "indexeddb") throw new Error(`not all queued durably: ${notQueued} not queued, pending ${JSON.stringify(p)}`);
  return { n, seconds: secs, eventsPerSec: n / secs };
}

function openDb(name, upgrade) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => upgrade(req.result);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function txDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

/** One record of ours as stored, to write the same records in the floor. */
async function sampleRecord(queueName) {
  const db = await openDb(queueName, () => {});
  const tx = db.transaction("queue", "readonly");
  const r = await new Promise((res, rej) => {
    const c = tx.objectStore("queue").openCursor();
    c.onsuccess = () => res(c.result?.value);
    c.onerror = () => rej(c.error);
  });
  db.close();
  if (!r) throw new Error("no stored record of ours to copy");
  return r;
}

/**
 * The raw IndexedDB floor: the same records (ours, copied with fresh keys) into the same
 * layout (keyPath "key", index "seq"), durability "strict" like ours, either `perTx` records
 * per transaction or one transaction per record; all transactions issued at once.
 */
export async function enqueueFloor({ n, perTx, sampleFrom, dbName }) {
  const sample = await sampleRecord(sampleFrom);
  const recs = Array.from({ length: n }, (_, i) => {
    const key = `${crypto.randomUUID()}`;
    return { ...sample, key, seq: Date.now() + i, body: sample.body.replace(sample.key, key) };
  });
  const db = await openDb(dbName, (d) => d.createObjectStore("queue", { keyPath: "key" }).createIndex("seq", "seq"));
  const t0 = now();
  const txs = [];
  for (let i = 0; i < n; i += perTx) {
    const tx = db.transaction("queue", "readwrite", { durability: "strict" });
    const s = tx.objectStore("queue");
    for (const r of recs.slice(i, i + perTx)) s.put(r);
    txs.push(txDone(tx));
  }
  await Promise.all(txs);
  const secs = (now() - t0) / 1000;
  db.close();
  return { n, perTx, seconds: secs, eventsPerSec: n / secs, recordBytes: JSON.stringify(sample).length };
}

let wbQueue;
export async function enqueueWorkbox({ mock, n, name }) {
  // workbox-background-sync is made for service workers: outside one, `self.registration` is
  // undefined and its constructor throws. An empty one makes it take its no-Background-Sync
  // path (it replays when asked, here by the drain measurement).
  self.registration ??= {};
  wbQueue = new Queue(name, { maxRetentionTime: 24 * 60 });
  const t0 = now();
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const ev = input(i);
      const body = JSON.stringify({ customer_id: ev.customerId, feature_id: ev.featureId, value: ev.value, properties: ev.properties, idempotency_key: crypto.randomUUID() });
      return wbQueue.pushRequest({
        request: new Request(`${mock}/v1/balances.track`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "x-api-version": "2.3.0" },
          body,
        }),
      });
    }),
  );
  const secs = (now() - t0) / 1000;
  const size = await wbQueue.size();
  if (size !== n) throw new Error(`workbox queue holds ${size}, not ${n}`);
  return { n, seconds: secs, eventsPerSec: n / secs };
}

let onlineAt = null;
export function armOnline() {
  onlineAt = null;
  addEventListener("online", () => (onlineAt = now()), { once: true });
}

/** From the `online` event to an empty queue (polled every 10 ms). */
export async function drainOurs({ n, timeoutMs }) {
  const start = now();
  for (;;) {
    const p = await offlineTracker.pending();
    if (onlineAt !== null && p.queued === 0 && p.inFlight === 0) break;
    if (now() - start > timeoutMs) throw new Error(`not drained within ${timeoutMs} ms: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const dead = (await offlineTracker.pending()).deadLetters;
  offlineTracker.close();
  return { n, seconds: (now() - onlineAt) / 1000, deadLetters: dead };
}

/** workbox's replayRequests(): one fetch per stored request, each awaited. */
export async function drainWorkbox({ n }) {
  const t0 = now();
  await wbQueue.replayRequests();
  const secs = (now() - t0) / 1000;
  const left = await wbQueue.size();
  return { n, seconds: secs, left };
}

window.bench = { trackCost, onlineOurs, onlineAutumnJs, onlineRawFetch, wasmMemoryBytes, enqueueOurs, enqueueFloor, enqueueWorkbox, armOnline, drainOurs, drainWorkbox, ready: true };
