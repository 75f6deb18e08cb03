// Durable queues for servers (Node entry only: the browser and Workers entries never load this
// file): SQLite for one server, PostgreSQL for a fleet. The same operations as js/store.js —
// what the engine commands — with the same meaning, on tables a person can query:
//
//   autumn_track_queue (queue, key, seq, sent_at, record)          one row per queued event
//   autumn_track_dead  (queue, key, seq, customer_id, code, status, message, failed_at, body,
//                       letter)                                      one row per dead letter
//   autumn_track_meta  (name, value)                                 schema version; SQLite leases
//
// `queue` is the tracker's `queueName`, so one database holds several queues; `record` and
// `letter` are the engine's JSON (src/engine/wire/), the other columns copies for people and
// indexes. Every operation is one transaction; a `queued` result means its transaction has
// committed (SQLite: WAL with synchronous = FULL; PostgreSQL: a committed transaction).
// Writes that arrive while one is being committed go together in the next transaction (group
// commit), each caller's all-or-nothing kept by retrying a failed group caller by caller.
//
// One drain at a time per queue: a PostgreSQL session advisory lock (released by the server if
// the process dies), or in SQLite a lease row renewed while the drain runs.

const SCHEMA = 1;
const LEASE_MS = 60_000;
const CLOCK_SLACK_MS = 600_000;
const LOCK_MS = 30_000;
const POLL_MS = 15_000;
const PART = 200; // rows per multi-row statement

const DDL = [
  `CREATE TABLE IF NOT EXISTS autumn_track_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS autumn_track_queue (
     queue TEXT NOT NULL, key TEXT NOT NULL, seq DOUBLE PRECISION, sent_at DOUBLE PRECISION,
     record TEXT NOT NULL, PRIMARY KEY (queue, key))`,
  `CREATE INDEX IF NOT EXISTS autumn_track_queue_order ON autumn_track_queue (queue, seq, key)`,
  `CREATE TABLE IF NOT EXISTS autumn_track_dead (
     queue TEXT NOT NULL, key TEXT NOT NULL, seq DOUBLE PRECISION, customer_id TEXT,
     code TEXT NOT NULL, status INTEGER, message TEXT, failed_at DOUBLE PRECISION, body TEXT,
     letter TEXT NOT NULL, PRIMARY KEY (queue, key))`,
];

const leased = (r, now) => r.attempts === 0 && r.nextAt > now && r.nextAt <= now + LEASE_MS + CLOCK_SLACK_MS;
const evictable = (limit, r) => !leased(r, limit.now) && !(limit.busy.has ? limit.busy.has(r.key) : limit.busy.includes(r.key)); // a Set from the driver, an array from tests
const setAside = (r, now) => ({ v: r.v, key: r.key, record: r, code: "queue_full", message: "the queue reached maxQueueSize", failedAt: now });
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const parse = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return { key: undefined, corrupt: String(text).slice(0, 200) };
  }
};
const text = (e) => String((e && e.message) || e || "no reason given").slice(0, 300);

/** The operations, in SQL, over `q(sql, params) → rows` inside one transaction. */
class Ops {
  constructor(queue) {
    this.queue = queue;
  }
  async putQueue(q, r) {
    await q(
      `INSERT INTO autumn_track_queue (queue, key, seq, sent_at, record) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (queue, key) DO UPDATE SET seq = excluded.seq, sent_at = excluded.sent_at, record = excluded.record`,
      [this.queue, r.key, num(r.seq), num(r.sentAt), JSON.stringify(r)],
    );
  }
  async putDead(q, l) {
    const r = l.record || {};
    let body = null;
    try {
      body = typeof r.body === "string" ? r.body : null;
    } catch {}
    await q(
      `INSERT INTO autumn_track_dead (queue, key, seq, customer_id, code, status, message, failed_at, body, letter)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (queue, key) DO UPDATE SET seq = excluded.seq, customer_id = excluded.customer_id,
         code = excluded.code, status = excluded.status, message = excluded.message,
         failed_at = excluded.failed_at, body = excluded.body, letter = excluded.letter`,
      [this.queue, l.key, num(r.seq), typeof r.customer === "string" ? r.customer : null, String(l.code), num(l.status), l.message ?? null, num(l.failedAt), body, JSON.stringify(l)],
    );
  }
  /** Adds the records of several `add` calls in one go (a group commit): a few statements for
   *  the whole group, not a few per record. Returns each call's `{ evicted, existing, deadSent }`;
   *  the last call's limit is kept once all are in. */
  async addMany(q, args) {
    const outs = args.map(() => ({ evicted: [], existing: [], deadSent: [] }));
    const recs = args.flatMap((a, i) => a.records.map((r) => ({ r, out: outs[i] })));
    // Dead letters of the same keys (looked up only when there are dead letters at all).
    const [{ n: dead }] = await q(`SELECT COUNT(*) AS n FROM autumn_track_dead WHERE queue = ?`, [this.queue]);
    if (Number(dead) > 0) {
      const letters = new Map();
      for (let i = 0; i < recs.length; i += 100) {
        const part = recs.slice(i, i + 100);
        const rows = await q(`SELECT key, letter FROM autumn_track_dead WHERE queue = ? AND key IN (${part.map(() => "?").join(",")})`, [
          this.queue,
          ...part.map((x) => x.r.key),
        ]);
        for (const row of rows) letters.set(row.key, parse(row.letter).record);
      }
      for (const { r, out } of recs) {
        const dr = letters.get(r.key);
        if (!dr) continue;
        out.deadSent.push({ key: r.key, record: dr });
        // An attempt of the key that got no answer may still be running: the record waits.
        if (dr.sentAt !== undefined && r.sentAt === undefined) {
          r.sentAt = dr.sentAt;
          if (dr.sentSrv !== undefined) r.sentSrv = dr.sentSrv;
        }
      }
    }
    // Insert what is not queued yet; an existing record stands (the first of a key in the group
    // is the one inserted).
    const inserted = new Set();
    for (let i = 0; i < recs.length; i += 100) {
      const part = recs.slice(i, i + 100);
      const rows = await q(
        `INSERT INTO autumn_track_queue (queue, key, seq, sent_at, record) VALUES ${part.map(() => "(?, ?, ?, ?, ?)").join(",")}
         ON CONFLICT (queue, key) DO NOTHING RETURNING key`,
        part.flatMap(({ r }) => [this.queue, r.key, num(r.seq), num(r.sentAt), JSON.stringify(r)]),
      );
      for (const row of rows) inserted.add(row.key);
    }
    for (const { r, out } of recs) {
      if (inserted.has(r.key)) inserted.delete(r.key);
      else out.existing.push(r.key);
    }
    const last = args.findLastIndex((a) => a.limit);
    if (last >= 0) await this.evict(q, args[last].limit, outs[last].evicted);
    return outs;
  }
  async add(q, arg) {
    return (await this.addMany(q, [arg]))[0];
  }
  /** Past `limit.max` records, sets the oldest evictable ones aside as `queue_full`. */
  async evict(q, limit, evicted) {
    const [{ n }] = await q(`SELECT COUNT(*) AS n FROM autumn_track_queue WHERE queue = ?`, [this.queue]);
    let over = Number(n) - limit.max;
    let offset = 0;
    while (over > 0) {
      const rows = await q(
        `SELECT key, record FROM autumn_track_queue WHERE queue = ? ORDER BY (seq IS NULL), seq, key LIMIT 200 OFFSET ?`,
        [this.queue, offset],
      );
      if (rows.length === 0) break;
      for (const row of rows) {
        if (over <= 0) break;
        const r = parse(row.record);
        if (r.key === undefined || !evictable(limit, r)) {
          offset++;
          continue;
        }
        await q(`DELETE FROM autumn_track_queue WHERE queue = ? AND key = ?`, [this.queue, row.key]);
        await this.putDead(q, setAside(r, limit.now));
        evicted.push(row.key);
        over--;
      }
    }
  }
  // Updates and deletes go 200 rows to a statement: one round trip per record made a PostgreSQL
  // drain of 100,000 events take 70 s (bench row 10).
  async update(q, recs) {
    const last = new Map(recs.map((r) => [r.key, r])); // a key twice: the later record, as before
    const found = new Set();
    const all = [...last.values()];
    for (let i = 0; i < all.length; i += PART) {
      const part = all.slice(i, i + PART);
      const rows = await q(
        `UPDATE autumn_track_queue SET seq = v.column2, sent_at = v.column3, record = v.column4
         FROM (VALUES ${part.map(() => "(CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT))").join(",")}) AS v
         WHERE autumn_track_queue.queue = ? AND autumn_track_queue.key = v.column1 RETURNING autumn_track_queue.key AS key`,
        [...part.flatMap((r) => [r.key, num(r.seq), num(r.sentAt), JSON.stringify(r)]), this.queue],
      );
      for (const row of rows) found.add(row.key);
    }
    return all.filter((r) => !found.has(r.key)).map((r) => r.key);
  }
  async renew(q, { record: r, prev }) {
    // Only as the call left it (the same send stamp): another drainer that took it keeps it.
    const u = await q(
      `UPDATE autumn_track_queue SET seq = ?, sent_at = ?, record = ? WHERE queue = ? AND key = ? AND
       ((sent_at IS NULL AND CAST(? AS DOUBLE PRECISION) IS NULL) OR sent_at = ?) RETURNING key`,
      [num(r.seq), num(r.sentAt), JSON.stringify(r), this.queue, r.key, num(prev), num(prev)],
    );
    return u.length ? [] : [r.key];
  }
  async del(q, keys) {
    for (let i = 0; i < keys.length; i += PART) {
      const part = keys.slice(i, i + PART);
      await q(`DELETE FROM autumn_track_queue WHERE queue = ? AND key IN (${part.map(() => "?").join(",")})`, [this.queue, ...part]);
    }
  }
  async load(q) {
    const rows = await q(`SELECT key, record FROM autumn_track_queue WHERE queue = ? ORDER BY (seq IS NULL), seq, key`, [this.queue]);
    // A row that does not parse comes back as its key alone: the engine sets it aside
    // (`corrupt_record`) under that key, which takes it out of the queue.
    return rows.map((r) => {
      const v = parse(r.record);
      return v.key === undefined ? { key: r.key } : v;
    });
  }
  async count(q) {
    const [a] = await q(`SELECT COUNT(*) AS n FROM autumn_track_queue WHERE queue = ?`, [this.queue]);
    const [b] = await q(`SELECT COUNT(*) AS n FROM autumn_track_dead WHERE queue = ?`, [this.queue]);
    return { queued: Number(a.n), dead: Number(b.n) };
  }
  async loadDead(q) {
    const rows = await q(`SELECT key, letter FROM autumn_track_dead WHERE queue = ? ORDER BY key`, [this.queue]);
    return rows.map((r) => {
      const l = parse(r.letter);
      return l.key === undefined ? { key: r.key, corrupt: true } : l;
    });
  }
  async delDead(q, keys) {
    let n = 0;
    for (const k of keys) n += (await q(`DELETE FROM autumn_track_dead WHERE queue = ? AND key = ? RETURNING key`, [this.queue, k])).length;
    return n;
  }
  async moveToDead(q, letters) {
    for (const l of letters) {
      await q(`DELETE FROM autumn_track_queue WHERE queue = ? AND key = ?`, [this.queue, l.key]);
      await this.putDead(q, l);
    }
  }
  async revive(q, recs) {
    for (const r of recs) {
      await q(`DELETE FROM autumn_track_dead WHERE queue = ? AND key = ?`, [this.queue, r.key]);
      await this.putQueue(q, r);
    }
  }
  async maxSeq(q) {
    const [a] = await q(`SELECT MAX(seq) AS m FROM autumn_track_queue WHERE queue = ?`, [this.queue]);
    const [b] = await q(`SELECT MAX(seq) AS m FROM autumn_track_dead WHERE queue = ?`, [this.queue]);
    return Math.max(Number(a.m) || 0, Number(b.m) || 0, 0);
  }
}

const OPS = ["add", "update", "renew", "del", "load", "count", "loadDead", "delDead", "moveToDead", "revive", "maxSeq"];
const GROUPED = new Set(["add", "del"]);

/** What both stores share: group commit of adds and deletes, one transaction per operation. */
class SqlStore {
  constructor(kind, queue) {
    this.kind = kind;
    this.ops = new Ops(queue);
    this.closed = false;
    this.waiting = null;
    this.writing = false;
  }
  isDurable() {
    return true;
  }
  isClosed() {
    return this.closed;
  }
  op(op, arg) {
    if (this.closed) return Promise.reject("the database connection is closed");
    if (!OPS.includes(op)) return Promise.reject(`unknown store operation ${op}`);
    if (GROUPED.has(op)) {
      return new Promise((resolve, reject) => {
        (this.waiting ||= []).push({ op, arg, resolve, reject });
        if (!this.writing) this.commit();
      });
    }
    return this.transaction((q) => this.ops[op](q, arg)).catch((e) => Promise.reject(this.describe(e)));
  }
  commit() {
    const group = this.waiting;
    this.waiting = null;
    this.writing = !!group;
    if (!group) return;
    // Consecutive adds go together (Ops.addMany), deletes one by one, in arrival order.
    const write = (gs) =>
      this.transaction(async (q) => {
        const outs = [];
        for (let i = 0; i < gs.length; ) {
          if (gs[i].op === "add") {
            let j = i;
            while (j < gs.length && gs[j].op === "add") j++;
            outs.push(...(await this.ops.addMany(q, gs.slice(i, j).map((g) => g.arg))));
            i = j;
          } else {
            outs.push(await this.ops[gs[i].op](q, gs[i].arg));
            i++;
          }
        }
        return outs;
      });
    write(group)
      .then(
        (outs) => group.forEach((g, i) => g.resolve(outs[i])),
        (e) =>
          group.length === 1
            ? group[0].reject(this.describe(e))
            : Promise.all(group.map((g) => write([g]).then(([o]) => g.resolve(o), (e2) => g.reject(this.describe(e2))))),
      )
      .then(() => this.commit());
  }
}

// ---- SQLite -----------------------------------------------------------------------------

/** `node:sqlite` where the running Node has it, else better-sqlite3 (an optional peer dependency). */
async function sqliteDriver() {
  try {
    const { DatabaseSync } = await import("node:sqlite");
    return { name: "node:sqlite", open: (path) => new DatabaseSync(path) };
  } catch {}
  try {
    const mod = await import("better-sqlite3");
    const Database = mod.default ?? mod;
    return { name: "better-sqlite3", open: (path) => new Database(path) };
  } catch {
    throw new Error("SQLite needs Node >= 22.5 (node:sqlite) or the better-sqlite3 package (npm install better-sqlite3)");
  }
}

class SqliteStore extends SqlStore {
  constructor(db, queue, driver) {
    super("sqlite", queue);
    this.db = db;
    this.driver = driver;
    this.stmts = new Map();
    this.me = Math.random().toString(36).slice(2);
  }
  describe(e) {
    return `SQLite write failed: ${text(e)}`;
  }
  q(sql, params) {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql)));
    const p = params ?? [];
    return /^\s*(SELECT|INSERT[\s\S]*RETURNING|UPDATE[\s\S]*RETURNING|DELETE[\s\S]*RETURNING)/i.test(sql) ? s.all(...p) : (s.run(...p), []);
  }
  // One transaction at a time on the connection: each waits for the one before (an operation's
  // body awaits between its statements, so another could otherwise begin inside it).
  transaction(body) {
    const run = (this.chain ?? Promise.resolve()).then(() => this.run(body));
    this.chain = run.catch(() => {});
    return run;
  }
  async run(body) {
    if (this.closed) throw new Error("the database connection is closed");
    const q = (sql, params) => this.q(sql, params);
    this.db.exec("BEGIN IMMEDIATE");
    try {
      // Every q() is synchronous, so the awaits below resolve without yielding to other work.
      const out = await body(q);
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      try {
        this.db.exec("ROLLBACK");
      } catch {}
      throw e;
    }
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    try {
      this.db.close();
    } catch {}
  }
  /** Runs `run()` only if no other process drains this queue: a lease row, renewed meanwhile. */
  async exclusive(run) {
    const key = `lock:${this.ops.queue}`;
    const take = () => {
      const now = Date.now();
      const row = this.q(`SELECT value FROM autumn_track_meta WHERE name = ?`, [key])[0];
      const held = row ? JSON.parse(row.value) : null;
      if (held && held.owner !== this.me && held.until > now) return false;
      this.q(`INSERT INTO autumn_track_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, [
        key,
        JSON.stringify({ owner: this.me, until: now + LOCK_MS }),
      ]);
      return true;
    };
    if (this.closed || !(await this.transaction(take))) return false;
    const renew = setInterval(() => !this.closed && this.transaction(take).catch(() => {}), LOCK_MS / 3);
    renew.unref?.();
    try {
      await run();
    } finally {
      clearInterval(renew);
      if (!this.closed) {
        await this.transaction(() => {
          const row = this.q(`SELECT value FROM autumn_track_meta WHERE name = ?`, [key])[0];
          if (row && JSON.parse(row.value).owner === this.me) this.q(`DELETE FROM autumn_track_meta WHERE name = ?`, [key]);
        }).catch(() => {});
      }
    }
    return true;
  }
  /** Calls `onRemote()` every so often: another process may have left events here. */
  watch(onRemote) {
    this.poll = setInterval(() => !this.closed && onRemote(), POLL_MS);
    this.poll.unref?.();
  }
}

/** Opens (creating when missing) the SQLite queue `queue` in the file `path`. */
export async function openSqlite(path, queue) {
  const driver = await sqliteDriver();
  const db = driver.open(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA busy_timeout = 5000");
  const store = new SqliteStore(db, queue, driver.name);
  await store.transaction((q) => migrate(q));
  return store;
}

// ---- PostgreSQL ---------------------------------------------------------------------------

/** `?` placeholders → `$1, $2, …`; SQLite's ON CONFLICT/RETURNING are PostgreSQL's too. */
const pgSql = (sql) => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`).replace(/ORDER BY \(seq IS NULL\), seq, key/g, 'ORDER BY (seq IS NULL), seq, key COLLATE "C"');
};

/** A 64-bit advisory lock key for the queue `name` (FNV-1a, as two int4). */
function lockKey(name) {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x811c9dc5);
  }
  return [h1 | 0, h2 | 0];
}

class PgStore extends SqlStore {
  constructor(pool, queue) {
    super("postgres", queue);
    this.pool = pool;
  }
  describe(e) {
    return `PostgreSQL write failed: ${text(e)}`;
  }
  async transaction(body) {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query("BEGIN");
      const out = await body(async (sql, params) => (await client.query(pgSql(sql), params ?? [])).rows);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
      throw e;
    } finally {
      client.release(broken);
    }
  }
  close() {
    this.closed = true;
    clearInterval(this.poll);
  }
  /** Runs `run()` only if no other process drains this queue (a session advisory lock: the
   *  server lets it go when the session ends, so a drainer that dies does not keep it). */
  async exclusive(run) {
    if (this.closed) return false;
    const client = await this.pool.connect();
    const [a, b] = lockKey(`autumn-track:${this.ops.queue}`);
    let held = false;
    let broken = false;
    try {
      held = (await client.query("SELECT pg_try_advisory_lock($1, $2) AS ok", [a, b])).rows[0].ok === true;
      if (!held) return false;
      await run();
      return true;
    } catch (e) {
      broken = true;
      throw e;
    } finally {
      if (held) await client.query("SELECT pg_advisory_unlock($1, $2)", [a, b]).catch(() => (broken = true));
      client.release(broken);
    }
  }
  watch(onRemote) {
    this.poll = setInterval(() => !this.closed && onRemote(), POLL_MS);
    this.poll.unref?.();
  }
}

/** Opens the PostgreSQL queue `queue` through `pool` (a `pg` Pool), creating the tables. */
export async function openPostgres(pool, queue) {
  if (!pool || typeof pool.connect !== "function") throw new Error("queue.postgres must be a pg Pool (new pg.Pool({ connectionString }))");
  const store = new PgStore(pool, queue);
  // Two processes creating the tables at once: one waits for the other.
  await store.transaction(async (q) => {
    await q("SELECT pg_advisory_xact_lock(?, ?)", lockKey("autumn-track:schema"));
    await migrate(q);
  });
  return store;
}

/** Creates the tables when missing; refuses a database made by a newer schema. */
async function migrate(q) {
  for (const sql of DDL) await q(sql, []);
  const [row] = await q(`SELECT value FROM autumn_track_meta WHERE name = 'schema'`, []);
  const have = row ? Number(row.value) : 0;
  if (have > SCHEMA) throw new Error(`the queue tables were made by a newer autumn-track (schema ${have})`);
  if (have < SCHEMA) await q(`INSERT INTO autumn_track_meta (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, [String(SCHEMA)]);
}

/** The tracker's `queue` option when it names a server queue: the spec to open, else `null`;
 *  throws `error("queue", why)` for a wrong one. */
export function serverQueue(queue, error) {
  const keys = queue !== null && typeof queue === "object" ? Object.keys(queue) : [];
  if (keys.length !== 1 || (keys[0] !== "sqlite" && keys[0] !== "postgres")) return null;
  if (keys[0] === "sqlite" ? typeof queue.sqlite !== "string" || queue.sqlite === "" : typeof queue.postgres?.connect !== "function") {
    throw error("queue", keys[0] === "sqlite" ? "queue.sqlite must be the database file's path" : "queue.postgres must be a pg Pool (new pg.Pool({ connectionString }))");
  }
  return { ...queue };
}

/** `openStore` for the Node entry: `{ sqlite: path }` or `{ postgres: pool }`. Never rejects:
 *  a store that does not open falls back to memory, with the reason (as IndexedDB does). */
export async function openServerStore(spec, queue, openMemory) {
  try {
    if (typeof spec.sqlite === "string") return { store: await openSqlite(spec.sqlite, queue), fallback: null };
    return { store: await openPostgres(spec.postgres, queue), fallback: null };
  } catch (e) {
    return { store: openMemory(queue), fallback: `the ${spec.sqlite !== undefined ? "SQLite" : "PostgreSQL"} queue did not open: ${text(e)}` };
  }
}
