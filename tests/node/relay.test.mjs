// `npx autumn-track relay` (issue 14): the route over Node's HTTP server with a durable SQLite
// queue, as a team would run it — the packed package's bin, a token file in the environment,
// autumn-mock behind it. A good event is answered 202 once committed and delivered from the
// relay's queue, exactly once, also across an Autumn outage and a relay restart; bad input —
// oversized, malformed, unauthenticated, for the wrong customer — gets a clear refusal and
// stores nothing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { child, freePort, sleep, startMock } from "./servers.mjs";

const BIN = fileURLToPath(new URL("node_modules/autumn-track/js/cli.js", `file://${process.cwd()}/`));
const TOKEN = "tok_web_0123456789abcdef";
const ANY = "tok_jobs_0123456789abcdef";
let dir, mock;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "autumn-relay-"));
  mock = await startMock();
});
after(() => {
  mock?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function startRelay(db, port, baseUrl = mock.url) {
  const r = child(BIN, ["relay", "--sqlite", db, "--port", String(port), "--max-body-bytes", "4096"], {
    AUTUMN_SECRET_KEY: "am_sk_test_relay",
    AUTUMN_BASE_URL: baseUrl,
    AUTUMN_RELAY_TOKENS: JSON.stringify({ [TOKEN]: ["cus_web"], [ANY]: "*" }),
  });
  await new Promise((resolve, reject) => {
    r.lines.on("line", (l) => l.includes("listening on") && resolve());
    r.exited.then((x) => reject(new Error(`relay exited: ${x.code} ${x.stderr}`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => (r.child.kill("SIGTERM"), r.exited), kill: () => (r.child.kill("SIGKILL"), r.exited) };
}

const post = (url, path, body, token, raw) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(token && { Authorization: `Bearer ${token}` }) },
    body: raw ?? JSON.stringify(body),
  });
const health = async (url) => (await fetch(`${url}/healthz`)).json();
const recorded = async (key) => (await mock.get(`/_mock/events?idempotency_key=${key}`)).events.length;

test("bad input is refused clearly and stores nothing", async () => {
  const relay = await startRelay(join(dir, "bad.db"), await freePort());
  try {
    const ev = { customer_id: "cus_web", feature_id: "api_calls", idempotency_key: "bad-1" };
    const cases = [
      ["unauthenticated", await post(relay.url, "/v1/balances.track", ev), 401, "unauthorized"],
      ["unknown token", await post(relay.url, "/v1/balances.track", ev, "tok_nobody_0123456789"), 401, "unauthorized"],
      ["wrong customer", await post(relay.url, "/v1/balances.track", { ...ev, customer_id: "cus_other" }, TOKEN), 403, "customer_mismatch"],
      ["malformed", await post(relay.url, "/v1/balances.track", null, TOKEN, "{not json"), 400, "invalid_json"],
      ["oversized", await post(relay.url, "/v1/balances.track", { ...ev, properties: { pad: "x".repeat(8000) } }, TOKEN), 413, "payload_too_large"],
      ["invalid event", await post(relay.url, "/v1/balances.track", { ...ev, value: "many" }, TOKEN), 400, "invalid_inputs"],
      ["no customer (any-customer token)", await post(relay.url, "/v1/balances.track", { feature_id: "api_calls" }, ANY), 400, "invalid_inputs"],
    ];
    for (const [what, r, status, code] of cases) {
      assert.equal(r.status, status, what);
      assert.equal((await r.json()).code, code, what);
    }
    const h = await health(relay.url);
    assert.deepEqual([h.ok, h.queued, h.deadLetters, h.storage], [true, 0, 0, "sqlite"], "nothing stored");
    assert.equal(await recorded("bad-1"), 0);
  } finally {
    await relay.stop();
  }
});

test("a good event is answered 202 once committed and delivered once — through an outage and a restart", async () => {
  const db = join(dir, "good.db");
  const port = await freePort();
  // Autumn down: the relay still answers 202, and keeps the events.
  let relay = await startRelay(db, port, "http://127.0.0.1:9");
  const keys = [];
  try {
    for (let i = 0; i < 5; i++) {
      const key = `relay-${Date.now().toString(36)}-${i}`;
      keys.push(key);
      const r = await post(relay.url, "/v1/balances.track", { customer_id: "cus_web", feature_id: "api_calls", idempotency_key: key }, TOKEN);
      assert.equal(r.status, 202, await r.text());
    }
    const batch = await post(relay.url, "/v1/balances.batch_track", [{ customer_id: "cus_any", feature_id: "api_calls", idempotency_key: `${keys[0]}-b` }], ANY);
    assert.equal(batch.status, 202);
    keys.push(`${keys[0]}-b`);
    assert.equal((await health(relay.url)).queued + (await health(relay.url)).inFlight, 6);
  } finally {
    await relay.kill(); // no goodbye: the queue is on disk
  }
  // Restarted, Autumn back: everything goes out, each once.
  relay = await startRelay(db, port);
  try {
    for (let i = 0; i < 120; i++) {
      const h = await health(relay.url);
      if (h.queued + h.inFlight === 0) break;
      await sleep(500);
    }
    const h = await health(relay.url);
    assert.equal(h.queued + h.inFlight, 0, JSON.stringify(h));
    for (const k of keys) assert.equal(await recorded(k), 1, k);
  } finally {
    await relay.stop();
  }
});
