// Panic recovery in Node, against the test-panic build (tests/panic/build.sh) and autumn-mock:
// a panic in a synchronous call, in the middle of track() and in the middle of a drain
// surfaces as a TrackError `internal`, the same tracker object keeps working, and every event
// is recorded exactly once. Each scenario runs in its own process (node-scenario.mjs).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run, startMock } from "../page/harness.mjs";

const PKG = fileURLToPath(new URL("../../target/panic-pkg", import.meta.url));
const SCENARIO = fileURLToPath(new URL("./node-scenario.mjs", import.meta.url));
let mock;

before(async () => {
  if (!existsSync(`${PKG}/pkg/autumn_track_bg.wasm`)) {
    throw new Error(`${PKG} is missing: run tests/panic/build.sh first (tests/panic/run.sh does)`);
  }
  mock = await startMock();
});

after(async () => {
  await mock?.stop();
});

async function scenario(name) {
  const out = await run(process.execPath, [SCENARIO, PKG, mock.url, name], { timeoutMs: 60_000 });
  const line = out.trim().split("\n").pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`scenario ${name} printed no result:\n${out}`);
  }
}

function assertInternal(r, key) {
  assert.equal(r.err?.name, "TrackError", JSON.stringify(r));
  assert.equal(r.err.code, "internal");
  if (key !== undefined) assert.equal(r.err.key, key);
  assert.ok(!r.err.message.includes("am_sk_test_panic"), "no key in the message");
}

/** Only the dead instance's trap and its stale callbacks may surface as uncaught. */
function assertOnlyStale(out) {
  for (const e of out.uncaught) {
    assert.match(e, /RuntimeError: unreachable|previous WASM instance|stale object/, `unexpected uncaught: ${e}`);
  }
}

test("a panic in a synchronous call: TrackError internal, then the tracker works", async () => {
  const out = await scenario("sync");
  assertInternal(out.track);
  assert.equal(out.validate?.code, "internal", JSON.stringify(out.validate));
  assert.equal(out.recorded, 0, "nothing was sent");
  assert.deepEqual(out.good, { status: "delivered", recorded: 1 });
  assertOnlyStale(out);
});

test("a panic in the middle of track(): rejected (not hung), then replayed exactly once", async () => {
  const out = await scenario("track");
  assertInternal(out.track);
  assert.ok(out.track.err.key.startsWith("midtrack_"));
  assert.equal(out.queuedAfter, 1, "stored before the send, kept across the restart");
  assert.deepEqual(out.good, { status: "delivered", recorded: 1 });
  assert.equal(out.flush.ok?.remaining, 0, JSON.stringify(out.flush));
  assert.equal(out.recorded, 1);
  assert.deepEqual(out.good2, { status: "delivered", recorded: 1 });
  assertOnlyStale(out);
});

test("a panic in the middle of a drain: flush() rejects, then every event is delivered once", async () => {
  const out = await scenario("drain");
  assert.deepEqual(out.queued, ["queued", "queued", "queued"]);
  assertInternal(out.flush);
  assert.equal(out.flush2.ok?.remaining, 0, JSON.stringify(out.flush2));
  assert.deepEqual(out.recorded, [1, 1, 1]);
  assert.deepEqual(out.good, { status: "delivered", recorded: 1 });
  assertOnlyStale(out);
});
