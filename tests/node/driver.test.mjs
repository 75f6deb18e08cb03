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

/** A port nothing listens on (bound, then closed). */
async function refusedPort() {
  const { createServer } = await import("node:net");
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A tracker whose engine asks for one send to `url` once the store is open, with `extra`
 *  stores; resolves the report the driver fed back for it. */
function failedSend(url, extra) {
  return new Promise((resolve) => {
    const store = { op: () => Promise.resolve(0), isDurable: () => false, close() {} };
    const stores = { openStore: async () => ({ store }), openMemory: () => store, openChannel: () => null, ...extra };
    let pending = [{ t: "open" }];
    const take = () => (pending.length ? JSON.stringify(pending.splice(0)) : "");
    const makeEngine = () => ({
      config: () => JSON.stringify({ queueName: "driver-unsent", headers: {}, trackUrl: url, batchUrl: url, timeoutMs: 5000, queue: "memory" }),
      feed(report) {
        const r = JSON.parse(report);
        if (r.t === "opened") pending.push({ t: "send", id: 9, body: "{}" });
        if (r.t === "failed" || r.t === "answered") {
          resolve(r);
          queueMicrotask(() => t.close());
        }
        return take();
      },
      track: take,
      validate() {},
    });
    const T = bindTracker({ makeEngine, stores, TrackError });
    const t = new T({ queue: "memory" });
  });
}

test("a refused connection is reported unsent through the server entries' reading of Node's errors, network without it", async () => {
  const { unsent } = await import(new URL("cfqueue.js", pkg));
  const url = `http://127.0.0.1:${await refusedPort()}/v1/balances.track`;
  const withIt = await failedSend(url, { unsent });
  assert.equal(withIt.t, "failed");
  assert.equal(withIt.how, "unsent", JSON.stringify(withIt));
  // The browser entry passes none: a failure there may have reached the server.
  const without = await failedSend(url, {});
  assert.equal(without.how, "network", JSON.stringify(without));
  assert.equal(unsent({ cause: { code: "ECONNRESET" } }), false);
  assert.equal(unsent({ get cause() { throw new Error("hostile"); } }), false);
});
