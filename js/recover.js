// Panic recovery: after a wasm panic, a fresh instance, a TrackError `internal` for the calls
// in flight, and trackers rebuilt from their options (kept in memory only). See src/js/panic.rs.
import { AutumnTracker as Core, __setTrackErrorClass } from "../pkg/autumn_track.js";
import { TrackError } from "./error.js";

const P = Core.prototype;
const calls = new Set();
const live = new Set();
const state = new WeakMap();
let gen = 0;

const internal = (key) =>
  Object.assign(new TrackError("autumn-track failed internally and restarted (a bug: please report it); queued events are kept"), {
    code: "internal",
    ...(typeof key == "string" && { idempotencyKey: key }),
  });

export const setup = () =>
  __setTrackErrorClass(TrackError, () => {
    try {
      gen++;
      setup();
      calls.forEach((r) => r());
      calls.clear();
      queueMicrotask(() => live.forEach((w) => w.deref()?.flush().catch(() => {})));
    } catch {}
  });

export class AutumnTracker extends Core {
  constructor(o) {
    try {
      super(o);
    } catch (e) {
      throw e instanceof WebAssembly.RuntimeError ? internal() : e;
    }
    const w = new WeakRef(this);
    state.set(this, { o, g: gen, c: this, f: new Set(), w });
    live.add(w);
  }
}

for (const [name, sync] of [
  ["track"],
  ["validate", 1],
  ["flush"],
  ["pending"],
  ["deadLetters"],
  ["discard"],
  ["retryDeadLetters"],
  ["addEventListener", 1],
  ["removeEventListener", 1],
  ["close", 1],
]) {
  AutumnTracker.prototype[name] = function (...a) {
    const s = state.get(this);
    let key, p;
    try {
      key = a[0].idempotencyKey ?? a[0].idempotency_key;
    } catch {}
    if (s.g != gen && live.has(s.w)) {
      s.g = gen;
      s.c = new Core(s.o);
      s.f.forEach((f) => P.addEventListener.call(s.c, f));
    }
    if (name == "addEventListener") s.f.add(a[0]);
    if (name == "removeEventListener") s.f.delete(a[0]);
    if (name == "close") live.delete(s.w);
    try {
      p = P[name].apply(s.c, a);
    } catch (e) {
      if (sync || !(e instanceof WebAssembly.RuntimeError)) throw e instanceof WebAssembly.RuntimeError ? internal(key) : e;
      p = Promise.reject(internal(key));
    }
    return sync
      ? p
      : new Promise((res, rej) => {
          const r = () => rej(internal(key));
          calls.add(r);
          p.then(res, rej).then(() => calls.delete(r));
        });
  };
}
