// One panic scenario in its own Node process (tests/panic/node.test.mjs runs it): the trap of
// an async task, and later callbacks of the dead instance, are uncaught exceptions in Node,
// which node:test would blame on whatever test runs at the time. This process handles them
// the way an app that wants to survive them would, and reports them.
// Usage: node node-scenario.mjs PKG_DIR MOCK_URL SCENARIO  → one JSON line on stdout.
const [pkg, mockUrl, scenario] = process.argv.slice(2);
const uncaught = [];
process.on("uncaughtException", (e) => uncaught.push(String(e)));
process.on("unhandledRejection", (e) => uncaught.push(String(e)));
// Instantiates the wasm and installs the panic hook.
const { AutumnTracker } = await import(`${pkg}/js/node.js`);

const uid = (p) => `${p}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ev = (key) => ({ customerId: uid("cus"), featureId: "messages", idempotencyKey: key });
const faults = (body) => fetch(`${mockUrl}/_mock/faults`, { method: "POST", body: JSON.stringify(body) });
const recorded = async (key) => (await (await fetch(`${mockUrl}/_mock/events?idempotency_key=${key}`)).json()).count;
const err = (e) => ({ name: e?.name, code: e?.code, key: e?.idempotencyKey, message: e?.message });
const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ err: err(e) }));
const events = [];
const t = new AutumnTracker({
  secretKey: "am_sk_test_panic",
  baseUrl: mockUrl,
  maxRetries: 1,
  timeoutMs: 2000,
  // A reset connection got no answer: its replay waits this long (the attempt might still be
  // running at Autumn) — kept short here.
  confirmAfterMs: 2000,
  onEvent: (e) => events.push(e.type),
});
const out = { scenario };

async function good() {
  const key = uid("good");
  const r = await settle(t.track(ev(key)));
  return { status: r.ok?.status ?? r.err, recorded: await recorded(key) };
}

async function drainAll() {
  let f;
  for (let i = 0; i < 40; i++) {
    f = await settle(t.flush());
    if (f.ok?.remaining === 0) break;
    await sleep(250);
  }
  return f;
}

if (scenario === "sync") {
  const key = uid("sync");
  globalThis.__autumnTrackPanic = "prepare";
  out.track = await settle(t.track(ev(key)));
  globalThis.__autumnTrackPanic = "prepare";
  try {
    t.validate(ev(key));
    out.validate = "no error";
  } catch (e) {
    out.validate = err(e);
  }
  out.recorded = await recorded(key);
  out.good = await good();
} else if (scenario === "track") {
  const key = uid("midtrack");
  globalThis.__autumnTrackPanic = "track";
  out.track = await settle(t.track(ev(key)));
  out.queuedAfter = (await t.pending()).queued;
  out.good = await good();
  // The stored event is leased to the send that died for 60 s; a recovered tracker takes it
  // once the lease is over. Jump the clock instead of waiting.
  const realNow = Date.now;
  Date.now = () => realNow() + 61_000;
  out.flush = await drainAll();
  Date.now = realNow;
  out.recorded = await recorded(key);
  out.good2 = await good();
} else if (scenario === "drain") {
  const keys = [uid("d1"), uid("d2"), uid("d3")];
  await faults({ outage: true, outage_mode: "reset" });
  out.queued = [];
  for (const k of keys) out.queued.push((await settle(t.track(ev(k)))).ok?.status);
  await faults({ clear: true });
  globalThis.__autumnTrackPanic = "drain";
  out.flush = await settle(t.flush());
  out.flush2 = await drainAll();
  out.recorded = await Promise.all(keys.map(recorded));
  out.good = await good();
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
t.close();
await sleep(300); // let the dead instance's stragglers surface
out.uncaught = uncaught;
out.events = events;
console.log(JSON.stringify(out));
process.exit(0);
