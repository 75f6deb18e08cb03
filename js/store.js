// Storage for the offline queue, imported by the wasm module (src/js/store): IndexedDB where
// the runtime has it and it opens (pages, dedicated and service workers), memory otherwise
// (Node, Cloudflare Workers, private modes, blocked storage). Pure I/O: the wasm encodes and
// validates every record and decides everything; this file only stores and returns them.
//
// It is JavaScript rather than web-sys calls from Rust because it is ~20 times smaller that
// way (every IndexedDB call bound from Rust adds wasm and glue; this file is ~2 KB gzip).
//
// Layout (schema 1): object store "queue" keyed by "key" with an index "seq", and "dead" keyed
// by "key" with an index "seq" on "record.seq". Both stores behave the same: a batch of writes
// is all-or-nothing, load() orders records by numeric seq then key (records without a numeric
// seq last), and a memory store opened again under the same name sees the same data.

const SCHEMA = 1;
const Q = "queue";
const D = "dead";
const OPEN_TIMEOUT_MS = 3000;
const CLOSED = "the database connection is closed";

const NAMES = {
  QuotaExceededError: "storage quota exceeded",
  InvalidStateError: CLOSED,
  VersionError: "the database was created by a newer version of this SDK",
  SecurityError: "storage is not allowed here (private mode, blocked cookies, an opaque origin)",
  UnknownError: "the browser's storage failed",
  AbortError: "the transaction was aborted",
  DataError: "a value could not be stored",
  DataCloneError: "a value could not be stored",
  ConstraintError: "a stored value broke a constraint",
  NotFoundError: "the database lacks an expected object store",
  TimeoutError: "the operation timed out",
};

/** "what: meaning (ErrorName)"; a full quota always says "quota". */
export function describe(what, err) {
  let name = "";
  try {
    name = String((err && err.name) || "").slice(0, 64);
  } catch {}
  const meaning = NAMES[name];
  return `${what}: ${meaning ? `${meaning} (${name})` : name || "no reason given"}`;
}

/** The least and the greatest of `keys`. */
function bounds(keys) {
  let lo = keys[0];
  let hi = lo;
  for (const k of keys) {
    if (k < lo) lo = k;
    if (k > hi) hi = k;
  }
  return [lo, hi];
}

/** The queue's keys from `lo` to `hi`, in one read of at most `cap` (a drain's chunk of
 *  time-ordered keys is about that range): `then(found, covered)`, `covered` the greatest key
 *  the read saw through. */
function held(q, lo, hi, cap, then) {
  const r = q.getAllKeys(IDBKeyRange.bound(lo, hi), cap);
  r.onsuccess = () => then(r.result, r.result.length === cap ? r.result[cap - 1] : hi);
}

const byQueueOrder = (a, b) => {
  const sa = typeof a?.seq === "number" ? a.seq : Infinity;
  const sb = typeof b?.seq === "number" ? b.seq : Infinity;
  if (sa !== sb) return sa < sb ? -1 : 1;
  const ka = String(a?.key ?? "");
  const kb = String(b?.key ?? "");
  return ka < kb ? -1 : ka > kb ? 1 : 0;
};
const byKey = (a, b) => {
  const ka = String(a?.key ?? "");
  const kb = String(b?.key ?? "");
  return ka < kb ? -1 : ka > kb ? 1 : 0;
};
const numericMax = (values, get) =>
  values.reduce((m, v) => {
    const s = get(v);
    return typeof s === "number" && Number.isFinite(s) && s > m ? s : m;
  }, 0);

// The queue's bound (`add` with a `limit` from the engine): past `max` records, the oldest are
// set aside as `queue_full` dead letters in the same transaction — never one the engine is
// sending (`busy`), nor one leased to a track() call of any tab (never attempted, its lease
// ahead but not absurdly: a clock set back does not make a lease eternal).
const LEASE_MS = 60_000;
const CLOCK_SLACK_MS = 600_000;
// A record stored again under the key of a dead letter whose last attempt got no answer takes
// that attempt's send stamp: it may still be running, so the record goes alone and waits.
const inherit = (r, d) => {
  r.sentAt = d.sentAt;
  if (d.sentSrv !== undefined) r.sentSrv = d.sentSrv;
};
const setAside = (r, now) => ({ v: r.v, key: r.key, record: r, code: "queue_full", message: "the queue reached maxQueueSize", failedAt: now });
const leased = (r, now) => r.attempts === 0 && r.nextAt > now && r.nextAt <= now + LEASE_MS + CLOCK_SLACK_MS;
const evictable = (limit, r) => !leased(r, limit.now) && !(limit.busy.has ? limit.busy.has(r.key) : limit.busy.includes(r.key)); // a Set from the driver, an array from tests

// ---- memory -----------------------------------------------------------------------------

const memories = new Map();

class MemoryStore {
  constructor(name) {
    let m = memories.get(name);
    if (!m) memories.set(name, (m = { q: new Map(), d: new Map() }));
    this.m = m;
    this.closed = false;
  }
  isDurable() {
    return false;
  }
  isClosed() {
    return this.closed;
  }
  close() {
    this.closed = true;
  }
  run(op, arg) {
    if (this.closed) throw new Error("the store is closed");
    const { q, d } = this.m;
    switch (op) {
      case "add": {
        const out = { evicted: [], existing: [], deadSent: [] };
        for (const r of arg.records) {
          const l = d.get(r.key);
          if (l && l.record) out.deadSent.push({ key: r.key, record: l.record });
          if (l?.record?.sentAt !== undefined && r.sentAt === undefined) inherit(r, l.record);
          if (q.has(r.key)) out.existing.push(r.key);
          else q.set(r.key, r);
        }
        const l = arg.limit;
        if (l && q.size > l.max)
          for (const r of [...q.values()].sort(byQueueOrder))
            if (q.size > l.max && evictable(l, r)) {
              q.delete(r.key);
              d.set(r.key, setAside(r, l.now));
              out.evicted.push(r.key);
            }
        return out;
      }
      case "update": {
        // Only what is still there (see IdbStore); answers the keys that were gone.
        const missing = [];
        for (const r of arg) q.has(r.key) ? q.set(r.key, r) : missing.push(r.key);
        return missing;
      }
      case "renew": {
        // A call's own record, only as it left it (see IdbStore).
        const r = arg.record;
        if (r && q.get(r.key)?.sentAt === (arg.prev ?? undefined)) {
          q.set(r.key, r);
          return [];
        }
        return [r?.key];
      }
      case "del":
        for (const k of arg) q.delete(k);
        return;
      case "load":
        return [...q.values()].sort(byQueueOrder);
      case "count":
        return { queued: q.size, dead: d.size };
      case "loadDead":
        return [...d.values()].sort(byKey);
      case "delDead":
        return arg.reduce((n, k) => n + (d.delete(k) ? 1 : 0), 0);
      case "moveToDead":
        for (const l of arg) {
          q.delete(l.key);
          d.set(l.key, l);
        }
        return;
      case "revive":
        for (const r of arg) {
          d.delete(r.key);
          q.set(r.key, r);
        }
        return;
      case "maxSeq":
        return Math.max(numericMax([...q.values()], (r) => r.seq), numericMax([...d.values()], (l) => l.record?.seq));
    }
    throw new Error(`unknown store operation ${op}`);
  }
  op(op, arg) {
    try {
      return Promise.resolve(this.run(op, arg));
    } catch (e) {
      return Promise.reject(String(e.message || e));
    }
  }
}

// ---- IndexedDB --------------------------------------------------------------------------

function factory() {
  let f;
  try {
    f = globalThis.indexedDB;
  } catch (e) {
    throw describe("IndexedDB is not accessible", e);
  }
  if (!f || typeof f.open !== "function") throw "IndexedDB is not available in this runtime";
  return f;
}

function upgrade(req) {
  try {
    const db = req.result;
    const tx = req.transaction;
    const store = (name) =>
      db.objectStoreNames.contains(name) ? tx.objectStore(name) : db.createObjectStore(name, { keyPath: "key" });
    const q = store(Q);
    if (!q.indexNames.contains("seq")) q.createIndex("seq", "seq");
    const d = store(D);
    if (!d.indexNames.contains("seq")) d.createIndex("seq", "record.seq");
  } catch {
    try {
      req.transaction.abort();
    } catch {}
  }
}

function layoutOk(db) {
  if (!db.objectStoreNames.contains(Q) || !db.objectStoreNames.contains(D)) return false;
  try {
    const tx = db.transaction([Q, D], "readonly");
    return [Q, D].every((n) => {
      const s = tx.objectStore(n);
      return s.keyPath === "key" && s.indexNames.contains("seq");
    });
  } catch {
    return false;
  }
}

function openDb(name) {
  return new Promise((resolve, reject) => {
    const f = factory();
    let req;
    try {
      req = f.open(name, SCHEMA);
    } catch (e) {
      throw describe("IndexedDB refused to open the database", e);
    }
    let blocked = false;
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      // The request may still settle later (another tab lets go): close what it opens.
      req.onsuccess = () => req.result.close();
      reject(
        blocked
          ? "IndexedDB is blocked: another tab keeps an older version of the database open"
          : "IndexedDB did not open the database within 3 s",
      );
    }, OPEN_TIMEOUT_MS);
    req.onupgradeneeded = () => upgrade(req);
    req.onblocked = () => (blocked = true);
    req.onsuccess = () => {
      if (done) return req.result.close();
      clearTimeout(timer);
      const db = req.result;
      if (!layoutOk(db)) {
        db.close();
        reject("the IndexedDB database has an unexpected layout (a name clash?)");
      } else resolve(db);
    };
    req.onerror = () => {
      clearTimeout(timer);
      if (!done) reject(describe("IndexedDB could not open the database", req.error));
    };
  });
}

class IdbStore {
  constructor(db) {
    this.kind = "indexeddb";
    this.db = db;
    this.closed = false;
    // Another tab's upgrade or the browser wants the connection: let it go.
    db.onversionchange = db.onclose = () => {
      this.closed = true;
      db.close();
    };
  }
  isDurable() {
    return true;
  }
  isClosed() {
    return this.closed;
  }
  close() {
    this.closed = true;
    this.db.close();
  }
  // Runs `body(stores)` in one transaction; resolves with its value once the transaction has
  // completed (durably, for writes), or rejects with a reason and keeps nothing.
  tx(names, write, body) {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(CLOSED);
      const what = write ? "IndexedDB write failed" : "IndexedDB read failed";
      let tx;
      try {
        tx = write ? this.db.transaction(names, "readwrite", { durability: "strict" }) : this.db.transaction(names, "readonly");
      } catch (e) {
        return reject(describe("could not start an IndexedDB transaction", e));
      }
      let out;
      tx.oncomplete = () => resolve(typeof out === "function" ? out() : out);
      tx.onabort = tx.onerror = () => reject(describe(what, tx.error));
      try {
        out = body(...names.map((n) => tx.objectStore(n)));
      } catch (e) {
        try {
          tx.abort();
        } catch {}
        reject(describe(what, e));
      }
    });
  }
  // Group commit: writes to the queue (put, add, del) that arrive while one is under way go
  // together, in arrival order, in the next transaction — a burst of track() calls costs a few
  // durable commits, not one each. Each caller still gets all-or-nothing for its own write: a
  // failed group is retried caller by caller, so one caller's bad write cannot fail another's.
  // ("update" is not grouped: its put depends on a read, which would see later writes.)
  grouped(op, arg) {
    return new Promise((resolve, reject) => {
      (this.waiting ||= []).push({ op, arg, resolve, reject });
      if (!this.writing) this.commit();
    });
  }
  commit() {
    const group = this.waiting;
    this.waiting = null;
    this.writing = !!group;
    if (!group) return;
    // One transaction for the group, its writes applied in arrival order; the last add's limit
    // is kept once all are in.
    const write = (gs) =>
      this.tx([Q, D], true, (q, d) => {
        let limit;
        const outs = [];
        // One member's writes; `done()` once its requests have completed.
        const member = (g, done) => {
          if (g.op === "del") {
            outs.push(undefined);
            const keys = g.arg;
            if (!keys.length) return done();
            const each = () => {
              let left = keys.length;
              for (const k of keys) q.delete(k).onsuccess = () => --left === 0 && done();
            };
            if (keys.length < 32) return each();
            // A drain's chunk of time-ordered keys is mostly runs of what the queue holds
            // between its least and greatest key: a request deletes each run (a thousand keys
            // cost ~100 ms one by one); a key past what the read covered goes alone. Not when
            // another write of the group could put a key in that range meanwhile (its requests
            // go out alongside).
            const [lo, hi] = bounds(keys);
            if (distinct && gs.some((o) => o !== g && o.op !== "del" && o.arg.records.some((r) => r.key >= lo && r.key <= hi))) return each();
            const set = new Set(keys);
            let left = 1;
            let from = null;
            let to;
            const one = () => --left === 0 && done();
            const del = (k) => {
              left++;
              q.delete(k).onsuccess = one;
            };
            held(q, lo, hi, keys.length * 2, (found, covered) => {
              for (const k of found) {
                if (set.has(k)) {
                  from ??= k;
                  to = k;
                } else if (from !== null) {
                  del(IDBKeyRange.bound(from, to));
                  from = null;
                }
              }
              if (from !== null) del(IDBKeyRange.bound(from, to));
              for (const k of keys) if (k > covered) del(k);
              one();
            });
            return;
          }
          const out = { evicted: [], existing: [], deadSent: [] };
          outs.push(out);
          if (g.arg.limit) limit = { l: g.arg.limit, out };
          const recs = g.arg.records;
          if (!recs.length) return done();
          let left = recs.length;
          const one = () => --left === 0 && done();
          for (const r of recs) {
            // A dead letter of the same key (looked up only when there are dead letters).
            if (anyDead) {
              const l = d.get(r.key);
              l.onsuccess = () => {
                const dr = l.result?.record;
                if (!dr) return;
                out.deadSent.push({ key: r.key, record: dr });
                // Requests of a transaction complete in order: this runs before the add below.
                if (dr.sentAt !== undefined && r.sentAt === undefined) inherit(r, dr);
              };
            }
            // `add`, not `put`: a key already queued fails it (ConstraintError), and that copy
            // stands — one request instead of a count and a put.
            const a = q.add(r);
            a.onsuccess = one;
            a.onerror = (ev) => {
              if (a.error?.name !== "ConstraintError") return;
              ev.preventDefault();
              ev.stopPropagation();
              out.existing.push(r.key);
              one();
            };
          }
        };
        const keep = () => limit && this.evict(q, d, limit.l, limit.out.evicted);
        // When no key appears twice in the group (a burst of track() calls), order between the
        // members cannot matter: all their requests go out at once (a transaction runs them in
        // order) and the limit is kept once the last completed. Otherwise strictly member by
        // member: an `add` puts a record only if its key is not queued (an existing one
        // stands), which a write before it in the group may change.
        const seen = new Set();
        const distinct = gs.every((g) => (g.op === "del" ? g.arg : g.arg.records.map((r) => r.key)).every((k) => !seen.has(k) && seen.add(k)));
        let anyDead = true;
        const run = () => {
          if (distinct) {
            let left = gs.length;
            for (const g of gs) member(g, () => --left === 0 && keep());
          } else {
            const step = (i) => (i === gs.length ? keep() : member(gs[i], () => step(i + 1)));
            step(0);
          }
        };
        // Usually there is no dead letter at all: then no record needs looking up there.
        const dc = d.count();
        dc.onsuccess = () => {
          anyDead = dc.result > 0;
          run();
        };
        return () => outs;
      });
    write(group)
      .then(
        (outs) => group.forEach((g, i) => g.resolve(outs[i])),
        (e) => (group.length === 1 ? group[0].reject(e) : Promise.all(group.map((g) => write([g]).then(([o]) => g.resolve(o), g.reject)))),
      )
      .then(() => this.commit());
  }
  // Within a write transaction: counts the queue and sets the oldest aside beyond the limit.
  evict(q, d, l, out) {
    const c = q.count();
    c.onsuccess = () => {
      let over = c.result - l.max;
      const cur = over > 0 && q.index("seq").openCursor();
      if (cur)
        cur.onsuccess = () => {
          const k = cur.result;
          if (k && over > 0) {
            if (evictable(l, k.value)) {
              d.put(setAside(k.value, l.now));
              k.delete();
              out.push(k.value.key);
              over--;
            }
            k.continue();
          }
        };
    };
  }
  op(op, arg) {
    const result = (r) => () => r.result;
    switch (op) {
      case "add":
      case "del":
        return this.grouped(op, arg);
      case "update":
        // Put only what is still there: a record delivered or set aside meanwhile (by this or
        // another tab) must not come back from a stale copy.
        // Which are there: one read of the range of the chunk's keys (see `held`), a key past
        // what it covered looked up alone — a request per record, not two.
        return this.tx([Q], true, (q) => {
          const missing = [];
          if (arg.length) {
            const keys = arg.map((r) => r.key);
            const [lo, hi] = bounds(keys);
            held(q, lo, hi, keys.length * 4, (found, covered) => {
              const have = new Set(found);
              for (const r of arg) {
                if (have.has(r.key)) q.put(r);
                else if (r.key <= covered) missing.push(r.key);
                else {
                  const c = q.count(r.key);
                  c.onsuccess = () => (c.result ? q.put(r) : missing.push(r.key));
                }
              }
            });
          }
          return () => missing;
        });
      case "renew":
        // A call rewrites its own record only if it is still as the call last wrote it (the
        // same send stamp): another tab that took it over keeps it. Answers the key if not.
        return this.tx([Q], true, (q) => {
          const r = arg.record;
          const missing = [];
          const g = q.get(r.key);
          g.onsuccess = () => (g.result && g.result.sentAt === (arg.prev ?? undefined) ? q.put(r) : missing.push(r.key));
          return () => missing;
        });
      case "load":
        return this.tx([Q], false, (q) => {
          const r = q.getAll();
          return () => r.result.sort(byQueueOrder);
        });
      case "count":
        return this.tx([Q, D], false, (q, d) => {
          const a = q.count();
          const b = d.count();
          return () => ({ queued: a.result, dead: b.result });
        });
      case "loadDead":
        return this.tx([D], false, (d) => result(d.getAll()));
      case "delDead":
        // Resolves with how many of the keys existed.
        return this.tx([D], true, (d) => {
          const counts = arg.map((k) => d.count(k));
          arg.forEach((k) => d.delete(k));
          return () => counts.reduce((n, r) => n + r.result, 0);
        });
      case "moveToDead":
        return this.tx([Q, D], true, (q, d) =>
          arg.forEach((l) => {
            q.delete(l.key);
            d.put(l);
          }),
        );
      case "revive":
        return this.tx([Q, D], true, (q, d) =>
          arg.forEach((r) => {
            d.delete(r.key);
            q.put(r);
          }),
        );
      case "maxSeq":
        // Numbers sort below every other key type; IndexedDB keys cannot be NaN.
        return this.tx([Q, D], false, (q, d) => {
          const range = IDBKeyRange.upperBound(Number.MAX_VALUE);
          const a = q.index("seq").openKeyCursor(range, "prev");
          const b = d.index("seq").openKeyCursor(range, "prev");
          return () => Math.max(a.result ? a.result.key : 0, b.result ? b.result.key : 0, 0);
        });
    }
    return Promise.reject(`unknown store operation ${op}`);
  }
}

/**
 * Opens the store `name`: kind "memory", or "auto"/"indexeddb" (IndexedDB, falling back to
 * memory with the reason). Resolves `{ store, fallback }`; never rejects.
 */
/** A memory store of its own (the spill store of one tracker). */
export function openMemory(name) {
  return new MemoryStore(name);
}

export async function openStore(kind, name) {
  if (kind !== "memory") {
    try {
      return { store: new IdbStore(await openDb(name)), fallback: null };
    } catch (e) {
      return { store: new MemoryStore(name), fallback: String(e?.message || e) };
    }
  }
  return { store: new MemoryStore(name), fallback: null };
}

/** Forgets the memory store `name` and deletes the IndexedDB database `name`. */
export function deleteDatabase(name) {
  memories.delete(name);
  return new Promise((resolve, reject) => {
    let f;
    try {
      f = factory();
    } catch {
      return resolve();
    }
    const req = f.deleteDatabase(name);
    const timer = setTimeout(() => reject("could not delete the database: another connection keeps it open"), OPEN_TIMEOUT_MS);
    req.onsuccess = () => {
      clearTimeout(timer);
      resolve();
    };
    req.onerror = () => {
      clearTimeout(timer);
      reject(describe("could not delete the database", req.error));
    };
  });
}

// Settles when the wasm panicked: a drain it ran will never finish, and must not keep the lock.
let dead, die;
export const panicked = () => (die?.(), (dead = new Promise((r) => (die = r))));
panicked();

/**
 * Runs `run()` (which returns a promise) only if no other tab is draining the queue `name`:
 * the Web Locks API where there is one, else a short lease in localStorage (pages), else just
 * runs it. Resolves `true` if it ran, `false` if another tab holds the queue.
 */
export async function exclusive(name, run) {
  const locks = globalThis.navigator?.locks;
  if (locks && typeof locks.request === "function") {
    return locks.request(name, { ifAvailable: true }, async (lock) => (lock ? (await Promise.race([run(), dead]), true) : false));
  }
  let ls;
  try {
    ls = globalThis.localStorage;
  } catch {}
  if (!ls) return (await run(), true);
  const key = `${name}:lease`;
  const me = Math.random().toString(36).slice(2);
  try {
    const held = JSON.parse(ls.getItem(key) || "null");
    if (held && held.until > Date.now()) return false;
    ls.setItem(key, JSON.stringify({ owner: me, until: Date.now() + 30000 }));
  } catch {
    return (await run(), true);
  }
  try {
    await run();
  } finally {
    try {
      if (JSON.parse(ls.getItem(key) || "null")?.owner === me) ls.removeItem(key);
    } catch {}
  }
  return true;
}

/**
 * A BroadcastChannel for the queue `name`: `post()` tells the other tabs an event was queued;
 * `onMessage()` runs when another tab says so. `null` where there is none (Node, Workers).
 */
export function openChannel(name, onMessage) {
  if (typeof BroadcastChannel !== "function") return null;
  try {
    const bc = new BroadcastChannel(name);
    bc.onmessage = () => onMessage();
    bc.unref?.(); // Node: an open channel must not keep the process alive
    // One message for a burst of queued events (they wake the same drain).
    let due = false;
    const send = () => {
      due = false;
      try {
        bc.postMessage(1);
      } catch {} // closed meanwhile
    };
    return { post: () => due || ((due = true), queueMicrotask(send)), close: () => bc.close() };
  } catch {
    return null;
  }
}

/** This module's functions as one object, for `bindTracker` (and the Rust browser suites). */
export function storeParts() {
  return { openStore, openMemory, deleteDatabase, exclusive, openChannel, panicked, describe };
}
