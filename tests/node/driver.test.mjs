// The driver (js/tracker.js) against a scripted engine: what it makes of commands whose meaning
// is split between the engine and the driver. Imports the installed package's own file (the
// exports map hides it), so this is the code that ships.
import { test } from "node:test";
import assert from "node:assert/strict";

const pkg = new URL("./node_modules/autumn-track/js/", import.meta.url);
const { bindTracker } = await import(new URL("tracker.js", pkg));
const { TrackError } = await import(new URL("error.js", pkg));

/** A tracker whose engine gives `script` once the store is open; the store records each op. */
function scripted(script) {
  const ops = [];
  const store = {
    op(op, arg) {
      ops.push({ op, arg });
      return Promise.resolve(op === "maxSeq" ? 0 : { evicted: [], existing: [], deadSent: [] });
    },
    isDurable: () => false,
    close() {},
  };
  const stores = { openStore: async () => ({ store }), openMemory: () => store, openChannel: () => null };
  let pending = [{ t: "open" }];
  // Each call into the engine returns the commands pending, as the wasm's do.
  const take = () => (pending.length ? JSON.stringify(pending.splice(0)) : "");
  const makeEngine = () => ({
    config: () => JSON.stringify({ queueName: "driver-test", headers: {}, trackUrl: "", batchUrl: "", timeoutMs: 1000, queue: "memory" }),
    feed(report) {
      if (JSON.parse(report).t === "opened") pending.push(...script);
      return take();
    },
    track: take,
    validate() {},
  });
  const T = bindTracker({ makeEngine, stores, TrackError });
  return { tracker: new T({ queue: "memory" }), ops };
}

const add = (id, busy) => ({ t: "store", id, op: "add", arg: { records: [], limit: { max: 5, busy, now: 1 } } });

test('an add whose busy keys are "same" gets the list the engine last wrote, as a Set', async () => {
  const { tracker, ops } = scripted([add(1, ["a", "b"]), add(2, "same"), add(3, ["c"]), add(4, "same"), add(5, [])]);
  for (let i = 0; i < 20 && ops.filter((o) => o.op === "add").length < 5; i++) await new Promise((r) => setTimeout(r, 5));
  const busy = ops.filter((o) => o.op === "add").map((o) => o.arg.limit.busy);
  assert.equal(busy.length, 5);
  for (const b of busy) assert.ok(b instanceof Set, `busy is ${JSON.stringify(b)}, not a Set`);
  assert.deepEqual(busy.map((b) => [...b].sort()), [["a", "b"], ["a", "b"], ["c"], ["c"], []]);
  tracker.close();
});
