// The driver of the delivery engine, and the public `AutumnTracker` class. The engine (Rust,
// compiled to wasm: src/engine) decides everything; this file only carries its commands out —
// store operations, `fetch`, the one timer, the tab lock, the channel between tabs, events for
// listeners, the results of calls — and feeds back what happened. No decision lives here.
//
// It imports nothing: the entry of each runtime (browser.js, node.js, workerd.js) hands it the
// wasm glue's `Engine`, the stores and the error class (`bindTracker`), so the very same file
// also runs under the Rust browser suites, which bind their own build of the wasm.

/** The method a route uses to hand an event over durably (see `[DEFER]` below). */
export const DEFER = Symbol.for("autumn-track.defer");

const wall = () => Date.now();
const perf = globalThis.performance;
const mono = perf && typeof perf.now === "function" && Number.isFinite(perf.timeOrigin) ? () => perf.timeOrigin + perf.now() : wall;

const text = (e) => {
  try {
    return String((e && e.message) || e || "no reason given").slice(0, 500);
  } catch {
    return "no reason given";
  }
};

/** A signal that aborts after `ms`. Not `AbortSignal.timeout`: in Node each one is a
 *  transferable object with a weak reference, ~10% of a `track()` (bench/README.md). */
function deadline(ms) {
  const c = new AbortController();
  const t = setTimeout(() => c.abort(), ms);
  return { signal: c.signal, done: () => clearTimeout(t) };
}

const inBrowser = () => typeof globalThis.document === "object" || typeof globalThis.importScripts === "function";

/** Reads an answer into what the engine needs; `body` is the parsed JSON or undefined. */
async function read(res) {
  const t = await res.text();
  let body;
  try {
    body = JSON.parse(t);
  } catch {}
  const err = body && typeof body === "object" && !Array.isArray(body) ? body : null;
  const code = err && typeof err.code === "string" && /^[A-Za-z0-9_]{1,64}$/.test(err.code) ? err.code : undefined;
  const message = err && typeof err.message === "string" ? err.message.slice(0, 1000) : undefined;
  const ra = res.headers.get("retry-after") ?? undefined;
  const date = res.headers.get("date");
  return {
    status: res.status,
    redirected: res.redirected || res.type === "opaqueredirect",
    code,
    message,
    snippet: code ? undefined : t.slice(0, 200),
    retryAfter: ra,
    retryAfterDate: ra ? Date.parse(ra) : NaN,
    date: date ? Date.parse(date) : NaN,
    body,
  };
}

/** Sends `body` to `url` and reads the answer within `timeoutMs`: `{ answer }`, or `{ how, error }` (`how`: timeout, unsent, network).
 *  `unsent(e)`: whether a failure `e` means the request never left (the server entries' reading
 *  of Node's errors, js/cfqueue.js); everywhere, a failure while offline does. */
export async function post(url, headers, body, timeoutMs, keepalive, unsent) {
  const d = deadline(timeoutMs);
  // Offline before it started: a failure then means the request never left the device.
  const offline = globalThis.navigator?.onLine === false;
  try {
    const init = { method: "POST", headers, body, signal: d.signal, redirect: "manual" };
    if (keepalive) init.keepalive = true;
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      if (d.signal.aborted) throw e;
      // A runtime that refuses `redirect: "manual"` (or `keepalive`): once more without them;
      // a redirect is still told by `res.redirected`.
      if (!(e instanceof TypeError) || !/redirect|keepalive/i.test(text(e))) throw e;
      delete init.redirect;
      delete init.keepalive;
      res = await fetch(url, init);
    }
    if (!res || typeof res.status !== "number") return { how: "network", error: "fetch resolved with something that is not a Response" };
    return { answer: await read(res) };
  } catch (e) {
    return d.signal.aborted ? { how: "timeout", error: "" } : { how: offline || unsent?.(e) ? "unsent" : "network", error: text(e) };
  } finally {
    d.done();
  }
}

/**
 * Builds the `AutumnTracker` class from its parts: `makeEngine(options, env)` (the wasm
 * `Engine`), `stores` (js/store.js: openStore, exclusive, openChannel, panicked) and
 * `TrackError`. `onPanic` registration is the entry's: it calls `panicked()` on the class.
 */
export function bindTracker({ makeEngine, stores, TrackError }) {
  const live = new Set(); // WeakRefs of every open tracker (rebuilt after a panic)
  let generation = 0;
  const internal = (key) =>
    Object.assign(new TrackError("autumn-track failed internally and restarted (a bug: please report it); queued events are kept"), {
      code: "internal",
      ...(typeof key == "string" && { idempotencyKey: key }),
    });
  // Cleans up after a tracker collected without close(): no timer or listener left behind.
  const finalizer = typeof FinalizationRegistry === "function" ? new FinalizationRegistry((h) => h.cleanup()) : null;

  class AutumnTracker {
    #h; // everything the timers and listeners reach (they hold this tracker only weakly)

    /** Throws `TrackError` (`invalid_options`, `secret_key_in_browser`) when the options are wrong. */
    constructor(options) {
      const o = options === undefined ? {} : options;
      if (o === null || typeof o !== "object") {
        makeEngine(o, { browser: inBrowser(), now: wall() }); // throws the core's options error
      }
      const { onEvent, queue, ...rest } = o;
      const core = { ...rest };
      // Queue objects are the server entries': `{ sqlite }`, `{ postgres }` (js/sqlstore.js, Node)
      // and `{ cloudflareQueue }` (js/cfqueue.js, Node and Workers). The browser's has none.
      const sql = stores.serverQueue?.(queue, optionsError) ?? null;
      const cf = sql ? null : (stores.cloudflareQueue?.(queue, optionsError) ?? null);
      if (sql) core.queue = "auto";
      else if (cf) {
        core.queue = "memory";
        // The queue retries for longer: the inline attempts fit in a Worker's waitUntil.
        if (core.maxRetries === undefined) core.maxRetries = 2;
      } else if (queue !== null && typeof queue === "object") {
        throw optionsError("queue", "a queue object needs the Workers build or the Node build of the package; this is the browser build");
      } else if (queue !== undefined) core.queue = queue;
      if (onEvent !== undefined && typeof onEvent !== "function") throw optionsError("onEvent", "`onEvent` must be a function");
      const h = new Driver(core, cf, onEvent, sql);
      h.build();
      this.#h = h;
      const ref = new WeakRef(this);
      h.ref = ref;
      live.add(ref);
      finalizer?.register(this, h, h);
    }

    /**
     * Records one usage event: validates it (rejecting with `TrackError` `invalid_input` before
     * anything is sent), gives it an idempotency key, writes it to the queue, and delivers it.
     * Resolves `delivered`, `duplicate` or `queued` (see `TrackResult`).
     */
    track(input) {
      return this.#h.call("track", input);
    }

    /** The route's way in (js/proxy.js with a durable `queue`): validates and stores the event,
     *  resolving `queued` (reason `accepted`) once it is committed; the drain delivers it. */
    [DEFER](input) {
      return this.#h.call("defer", input);
    }

    /** Validates `input` exactly as `track()` does, without sending or queueing anything. */
    validate(input) {
      const h = this.#h;
      h.renew();
      return h.guard(() => h.engine.validate(input, wall()), input);
    }

    /** Delivers everything due now (joining a drain already running). */
    flush() {
      return this.#h.call("flush");
    }

    /** Counts of queued, in-flight and dead-lettered events, and where they are stored. */
    pending() {
      return this.#h.call("pending");
    }

    /** Events Autumn refused for good, or the queue had to set aside, with the reason. */
    deadLetters() {
      return this.#h.call("dead");
    }

    /** Deletes these dead letters (by idempotency key). Resolves with how many went. */
    discard(keys) {
      return this.#h.call("discard", keys);
    }

    /** Puts dead letters (all, or these keys) back in the queue with their original keys. */
    retryDeadLetters(keys) {
      return this.#h.call("retry", keys);
    }

    /** Calls `listener` for every tracker event. */
    addEventListener(listener) {
      if (typeof listener === "function") this.#h.listeners.add(listener);
    }

    /** Removes a listener added with `addEventListener`. */
    removeEventListener(listener) {
      this.#h.listeners.delete(listener);
    }

    /** Stops timers and listeners and releases the database; queued events stay stored. */
    close() {
      const h = this.#h;
      live.delete(h.ref);
      finalizer?.unregister(h);
      h.close();
    }
  }

  function optionsError(field, message) {
    return Object.assign(new TrackError(message), { code: "invalid_options", field });
  }

  // ---- the driver ---------------------------------------------------------------------------

  class Driver {
    constructor(core, cf, onEvent, sql) {
      this.core = core;
      this.cf = cf;
      this.sql = sql;
      this.listeners = new Set(onEvent ? [onEvent] : []);
      this.calls = new Map(); // id → { resolve, reject, key }
      this.responses = new Map(); // request id → parsed 2xx body
      this.nextCall = 1;
      this.closed = false;
      this.main = null;
      this.mainKind = "memory";
      this.spill = null;
      this.timer = null;
      this.release = null;
      this.channel = null;
      this.handlers = [];
      this.pumping = false;
      this.queued = []; // command texts not yet carried out
    }

    /** A new engine (at construction, and after a panic). */
    build() {
      this.gen = generation;
      const seed = Math.floor(Math.random() * 2 ** 52) + 1;
      this.engine = makeEngine(this.core, { browser: inBrowser(), handover: !!this.cf, seed, now: wall() });
      this.config = JSON.parse(this.engine.config());
      this.name = this.config.queueName;
      // Opened offline: no drain until the network is back (the "online" event says so). Either
      // report (`{}` is none) returns every command pending, the constructor's included; through
      // report(), so a trap there is recovered like any other.
      this.report(globalThis.navigator?.onLine === false ? { t: "offline" } : {});
    }

    /** After a panic, the dead instance's engine is replaced before any use. */
    renew() {
      if (this.gen === generation || this.closed) return;
      for (const c of this.calls.values()) c.reject(internal(c.key));
      this.calls.clear();
      this.release?.();
      this.release = null;
      this.opening = false;
      this.build();
    }

    /** Runs an engine call; a wasm trap becomes `internal` and a rebuild. */
    guard(f, input) {
      try {
        return f();
      } catch (e) {
        if (!(e instanceof WebAssembly.RuntimeError)) throw e;
        let key;
        try {
          key = input?.idempotencyKey ?? input?.idempotency_key;
        } catch {}
        panic();
        throw internal(key);
      }
    }

    /** Tells the engine what happened, then carries out what it asks. `r`: `{ t, … }`, built
     *  here, so plain JSON (every number in it a safe integer); `outside`: what came from
     *  outside (a store's result, a caller's keys), which the wasm converts with its guards. */
    report(r, outside, at) {
      if (this.gen !== generation) return;
      let cmds;
      try {
        const now = wall();
        cmds = this.engine.feed(JSON.stringify(r), outside !== undefined, outside, at === undefined ? now : Math.max(now, at), mono());
      } catch (e) {
        if (!(e instanceof WebAssembly.RuntimeError)) throw e;
        return panic();
      }
      this.pump(cmds);
    }

    call(kind, arg) {
      this.renew();
      const id = this.nextCall++;
      let key;
      if (kind === "track" || kind === "defer") {
        try {
          key = arg?.idempotencyKey ?? arg?.idempotency_key;
        } catch {}
      }
      const p = new Promise((resolve, reject) => this.calls.set(id, { resolve, reject, key }));
      this.hold();
      let cmds;
      try {
        cmds = this.guard(() => {
          const now = wall();
          const m = mono();
          if (kind === "track" || kind === "defer") return this.engine.track(id, arg, now, m, globalThis.navigator?.onLine === false, kind === "defer");
          return this.engine.feed(JSON.stringify({ t: kind, call: id }), arg !== undefined, arg, now, m);
        }, arg);
      } catch (e) {
        this.calls.delete(id);
        return Promise.reject(e);
      }
      this.pump(cmds);
      return p;
    }

    /** Carries out the engine's commands (`text`: a JSON array, or "") in the order it gave
     * them. Not re-entrant: a command that feeds the engine at once (a store that is gone)
     * leaves the new commands to this loop, after the ones already taken (a later wake-up
     * replaces an earlier one, never the reverse). */
    pump(text) {
      if (text) this.queued.push(text);
      if (this.pumping) return;
      this.pumping = true;
      try {
        while (this.gen === generation && this.queued.length) {
          for (const c of JSON.parse(this.queued.shift())) {
            if (this.gen !== generation) return;
            this.run(c);
          }
        }
      } finally {
        this.pumping = false;
        if (this.gen !== generation) this.queued = [];
      }
    }

    run(c) {
      switch (c.t) {
        case "open":
          return this.open();
        case "store":
          return this.store(c);
        case "send":
          return this.send(c);
        case "handover":
          return this.handover(c);
        case "wake":
          return this.wake(c.at);
        case "lock":
          return this.lock();
        case "unlock":
          this.release?.();
          this.release = null;
          return;
        case "announce":
          return this.channel?.post();
        case "emit":
          return this.emit(c.event);
        case "resolve":
          return this.resolve(c);
        case "closeStore":
          this.main?.close();
          this.spill?.close();
          return;
      }
    }

    open() {
      const kind = this.config.queue;
      this.opening = true;
      const opened = this.sql ? stores.openServerStore(this.sql, this.name, stores.openMemory) : stores.openStore(kind === "memory" ? "memory" : "auto", this.name);
      opened.then(async ({ store, fallback }) => {
        this.opening = false;
        if (this.closed) return store.close();
        this.main = store;
        this.mainKind = store.isDurable() ? store.kind || "indexeddb" : "memory";
        // Left undefined when it cannot be read: unknown, so the engine replays what may be there.
        let maxSeq;
        try {
          maxSeq = await store.op("maxSeq", null);
        } catch {}
        if (store.isDurable()) this.listen();
        this.report({ t: "opened", durable: store.isDurable(), fallback: fallback ?? undefined }, maxSeq);
      });
    }

    /** Global events (pages, workers): the network, the page going away; other tabs. */
    listen() {
      const g = globalThis;
      const ref = this.ref;
      const on = (type, f) => {
        if (typeof g.addEventListener !== "function") return;
        const h = () => ref.deref() && f();
        g.addEventListener(type, h);
        this.handlers.push([type, h]);
      };
      on("online", () => this.signal("online"));
      on("offline", () => this.signal("offline"));
      on("visibilitychange", () => g.document?.visibilityState === "hidden" && this.signal("hidden"));
      on("pagehide", () => this.signal("pagehide"));
      this.channel = stores.openChannel(`autumn-track:${this.name}`, () => ref.deref() && this.signal("remote"));
      // A server queue shared by processes: look for what others left, now and then.
      this.main?.watch?.(() => ref.deref() && this.signal("remote"));
    }

    signal(what) {
      this.report({ t: what });
    }

    storeOf(c) {
      if (!c.spill) return this.main;
      this.spill ??= stores.openMemory(`${this.name}:spill:${Math.random().toString(36).slice(2)}`);
      return this.spill;
    }

    store(c) {
      // The keys this tracker sends, which the queue's bound must not set aside: the engine
      // writes them when they changed and "same" otherwise (a drain's pass can hold 100,000).
      const l = c.arg?.limit;
      if (l) l.busy = l.busy === "same" && this.busy ? this.busy : (this.busy = new Set(l.busy === "same" ? [] : l.busy));
      const s = this.storeOf(c);
      const gen = this.gen;
      const done = (ok, v) => gen === generation && this.report({ t: "stored", id: c.id, ok }, v);
      if (!s) return done(false, "the store is not open");
      let p;
      try {
        p = s.op(c.op, c.arg);
      } catch (e) {
        p = Promise.reject(text(e));
      }
      p.then(
        (v) => done(true, v),
        (e) => done(false, typeof e === "string" ? e : text(e)),
      );
    }

    send(c) {
      const url = c.batch ? this.config.batchUrl : this.config.trackUrl;
      const gen = this.gen;
      post(url, this.config.headers, c.body, this.config.timeoutMs, c.keepalive, stores.unsent).then((r) => {
        if (gen !== generation) return;
        if (r.answer) {
          const a = r.answer;
          if (a.status >= 200 && a.status < 300) this.responses.set(c.id, a.body && typeof a.body === "object" ? a.body : null);
          this.report({ ...a, body: undefined, t: "answered", id: c.id });
        } else this.report({ t: "failed", id: c.id, how: r.how, error: r.error });
      });
    }

    handover(c) {
      const gen = this.gen;
      // The hand-over is the Node and Workers entries' (js/cfqueue.js); the browser's wasm never
      // asks for one (it refuses `queue.cloudflareQueue`).
      const done = stores.handOver ? stores.handOver(this.cf, c.items) : Promise.resolve("this build has no Cloudflare Queue");
      done.then((err) => gen === generation && this.report({ t: "handedOver", id: c.id, error: err }));
    }

    wake(at) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      if (at === null || this.closed) return;
      const ref = this.ref;
      try {
        // The timer holds this tracker only weakly: one collected without close() is not kept
        // alive by it, and the finalizer clears it.
        this.timer = setTimeout(() => {
          const t = ref?.deref();
          if (!t) return;
          this.timer = null;
          // No earlier than asked, whatever the clock says (Workers' stands still in a request).
          this.report({ t: "timer" }, undefined, at);
        }, Math.max(0, Math.min(at - wall(), 2_147_483_000)));
        this.hold();
      } catch {
        // Workers refuse timers outside a request: the next call drains.
      }
    }

    lock() {
      const gen = this.gen;
      const run = (f) => (this.main?.exclusive ? this.main.exclusive(f) : stores.exclusive(`autumn-track:${this.name}`, f));
      run(() => {
        if (gen !== generation || this.closed) return Promise.resolve();
        return new Promise((release) => {
          this.release = release;
          this.signal("locked");
        });
      }).then(
        (ran) => ran === false && gen === generation && this.signal("lockBusy"),
        // The lock could not be asked for (a database down): like a busy one, the next trigger
        // tries again.
        () => gen === generation && !this.release && this.signal("lockBusy"),
      );
    }

    emit(ev) {
      if (ev.storage === "durable") ev.storage = this.mainKind;
      for (const f of [...this.listeners]) {
        try {
          f(ev);
        } catch {
          // A listener that throws is ignored.
        }
      }
    }

    /** In Node a wake-up for the queue alone does not keep the process alive; one while a
     *  caller waits (an in-call retry, a flush() joining a drain that waits) does. */
    hold() {
      const t = this.timer;
      if (t && typeof t.ref === "function") this.calls.size ? t.ref() : t.unref();
    }

    resolve(c) {
      const call = this.calls.get(c.call);
      if (!call) return;
      this.calls.delete(c.call);
      if (this.calls.size === 0) this.hold();
      if (c.error !== undefined) return call.reject(Object.assign(new TrackError(c.error.message), c.error));
      const v = c.value;
      if (v && typeof v === "object" && !Array.isArray(v)) {
        if (v.responseId !== undefined) {
          v.response = this.responses.get(v.responseId) ?? null;
          this.responses.delete(v.responseId);
          delete v.responseId;
        }
        if (v.storage === "durable") v.storage = this.mainKind;
        if (this.cf && v.status === "queued") v.queue = v.storage === "cloudflare" ? "cloudflare" : "memory";
      }
      call.resolve(v);
    }

    close() {
      if (this.closed) return;
      this.signal("close");
      this.closed = true;
      this.cleanup();
    }

    /** Timers, listeners, the channel and the lock go (close(), or the tracker was collected). */
    cleanup() {
      this.closed = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      for (const [type, h] of this.handlers) globalThis.removeEventListener?.(type, h);
      this.handlers = [];
      this.channel?.close();
      this.channel = null;
      this.release?.();
      this.release = null;
      if (!this.opening) {
        this.main?.close();
        this.spill?.close();
      }
    }
  }

  /** The wasm trapped: every engine belongs to the dead instance. */
  function panic() {
    generation++;
    stores.panicked?.();
    queueMicrotask(() => {
      for (const r of live) {
        const t = r.deref();
        if (!t) {
          live.delete(r);
          continue;
        }
        // Rebuilt on its next use; replay what is queued now.
        t.flush().catch(() => {});
      }
    });
  }

  AutumnTracker.panicked = panic;
  return AutumnTracker;
}
