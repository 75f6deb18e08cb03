// The page of the secret-key search (tests/chaos/secret.test.mjs): trackers made with a secret
// key (dangerouslyAllowBrowser), every call's outcome and every tracker event captured, and a
// dump of everything the page can store (IndexedDB, Web Storage, Cache Storage, cookies).
import { AutumnTracker, TrackError, isTrackError } from "/js/browser.js";

const trackers = new Map();
const captured = { events: [], outcomes: [] };

/** Everything about a thrown value, as text. */
function describeError(e) {
  const out = { isTrackError: isTrackError(e), isInstance: e instanceof TrackError, type: typeof e };
  try { out.string = String(e); } catch (x) { out.string = `String() threw ${x}`; }
  try { out.json = JSON.stringify(e); } catch (x) { out.json = `JSON.stringify threw ${x}`; }
  if (e && typeof e === "object") {
    for (const k of ["name", "code", "field", "status", "idempotencyKey", "message", "stack", "cause"]) {
      try { out[k] = e[k] === undefined ? undefined : String(e[k]); } catch {}
    }
    try {
      out.own = Object.getOwnPropertyNames(e).map((k) => [k, String(e[k])]);
    } catch {}
  }
  return out;
}

/** JSON-able copy of a result (structured-clone-ish values made readable). */
const plain = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v, replacer)));

function replacer(_k, v) {
  if (v instanceof ArrayBuffer) return { $arrayBuffer: hex(new Uint8Array(v)), text: new TextDecoder().decode(v) };
  if (ArrayBuffer.isView(v)) {
    const u8 = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return { $view: v.constructor.name, hex: hex(u8), text: new TextDecoder().decode(u8) };
  }
  if (v instanceof Map) return { $map: [...v] };
  if (v instanceof Set) return { $set: [...v] };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (typeof v === "bigint") return { $bigint: String(v) };
  return v;
}
const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");

/** Blobs/Files anywhere in `v` replaced by their text (async), then plain(). */
async function readable(v, seen = new Set()) {
  if (v instanceof Blob) return { $blob: v.type, size: v.size, text: await v.text() };
  if (v && typeof v === "object" && !seen.has(v) && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) {
    seen.add(v);
    if (Array.isArray(v)) return Promise.all(v.map((x) => readable(x, seen)));
    if (v instanceof Map || v instanceof Set || v instanceof Date) return v;
    const o = {};
    for (const k of Object.keys(v)) o[k] = await readable(v[k], seen);
    return o;
  }
  return v;
}

const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });

async function dumpIndexedDb() {
  const out = [];
  for (const info of await indexedDB.databases()) {
    const db = await new Promise((res, rej) => {
      const r = indexedDB.open(info.name);
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
      r.onblocked = () => rej(new Error(`open ${info.name} blocked`));
    });
    const stores = [];
    for (const name of db.objectStoreNames) {
      const tx = db.transaction(name, "readonly");
      const st = tx.objectStore(name);
      const [keys, values] = await Promise.all([req(st.getAllKeys()), req(st.getAll())]);
      const indexes = [...st.indexNames];
      stores.push({ name, keyPath: st.keyPath, indexes, count: values.length, keys: plain(keys), records: plain(await readable(values)) });
    }
    db.close();
    out.push({ name: info.name, version: info.version, stores });
  }
  return out;
}

function dumpStorage(s) {
  const o = {};
  for (let i = 0; i < s.length; i++) o[s.key(i)] = s.getItem(s.key(i));
  return o;
}

async function dumpCaches() {
  if (!globalThis.caches) return "no Cache Storage";
  const out = {};
  for (const name of await caches.keys()) {
    const c = await caches.open(name);
    out[name] = [];
    for (const r of await c.keys()) {
      const res = await c.match(r);
      out[name].push({ url: r.url, headers: [...r.headers], response: res ? { status: res.status, headers: [...res.headers], body: await res.text() } : null });
    }
  }
  return out;
}

window.s = {
  /** `new AutumnTracker(opts)` (listeners added); { ok } or { ok: false, error }. */
  make(name, opts, { listen = true } = {}) {
    try {
      const t = new AutumnTracker({
        ...opts,
        ...(listen ? { onEvent: (e) => captured.events.push({ tracker: name, via: "onEvent", event: plain(e) }) } : {}),
      });
      if (listen) t.addEventListener((e) => captured.events.push({ tracker: name, via: "addEventListener", event: plain(e) }));
      trackers.set(name, t);
      const r = { ok: true, json: JSON.stringify(t), string: String(t), keys: Object.keys(t) };
      captured.outcomes.push({ what: `make ${name}`, ...r });
      return r;
    } catch (e) {
      const r = { ok: false, error: describeError(e) };
      captured.outcomes.push({ what: `make ${name}`, ...r });
      return r;
    }
  },
  /** tracker[method](...args), awaited; the outcome is captured and returned. */
  async call(name, method, ...args) {
    return s.callWith(name, method, () => args);
  },
  /** Like call(), with arguments built in the page (cycles, getters, Proxies…). */
  async hostile(name, kind, marker) {
    const build = {
      cyclic: () => {
        const p = { marker };
        p.self = p;
        return [{ customerId: "cus_1", featureId: "messages", properties: p }];
      },
      getter: () => [{ customerId: "cus_1", get featureId() { throw new Error(`getter says ${marker}`); } }],
      proxy: () => [new Proxy({ customerId: "cus_1", featureId: "messages" }, { get() { throw new Error("proxy trap"); } })],
      deep: () => {
        let p = { marker };
        for (let i = 0; i < 5000; i++) p = { p };
        return [{ customerId: "cus_1", featureId: "messages", properties: p }];
      },
      huge: () => [{ customerId: "cus_1", featureId: "messages", properties: { big: "x".repeat(10 * 1024 * 1024) } }],
      surrogate: () => [{ customerId: "cus_\ud800", featureId: "messages" }],
      symbol: () => [{ customerId: Symbol("cus"), featureId: "messages" }],
      bigint: () => [{ customerId: "cus_1", featureId: "messages", value: 10n }],
      nothing: () => [],
      nullInput: () => [null],
    }[kind];
    return s.callWith(name, `track(${kind})`, build, "track");
  },
  async callWith(name, what, args, method = what) {
    const t = trackers.get(name);
    try {
      const v = await t[method](...args());
      const r = { ok: true, value: plain(v) };
      captured.outcomes.push({ what: `${name}.${what}`, ...r });
      return r;
    } catch (e) {
      const r = { ok: false, error: describeError(e) };
      captured.outcomes.push({ what: `${name}.${what}`, ...r });
      return r;
    }
  },
  /** `validate()`'s idempotency key for this input. */
  keyFor(name, input) {
    return trackers.get(name).validate(input).idempotency_key;
  },
  close(name) {
    trackers.get(name).close();
    trackers.delete(name);
  },
  captured: () => plain(captured),
  async dump() {
    return {
      indexedDB: await dumpIndexedDb(),
      localStorage: dumpStorage(localStorage),
      sessionStorage: dumpStorage(sessionStorage),
      caches: await dumpCaches(),
      cookie: document.cookie,
      writes: plain(window.__writes || []),
      consoleCalls: plain(window.__console || []),
      resources: performance.getEntriesByType("resource").map((e) => e.name),
    };
  },
};
document.title = "ready";
