// The published package in a Cloudflare Worker, as a user would ship it: `npm pack` the repo,
// install the tarball into a fresh Worker project that does `import … from "autumn-track"`,
// bundle it with the repo's wrangler (`wrangler deploy --dry-run --outdir`, which is exactly
// what would be uploaded: wrangler picks the `workerd` export condition and turns the .wasm
// import into a CompiledWasm module, with no wasm plumbing by the user), then run that output
// in workerd through miniflare's API, tracking against autumn-mock on 127.0.0.1.
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/workerd/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO, childPidsNamed, mockEvents, mockFaults, packRepo, quietEnv, removeDir, requireBuilt, run, startMock, tail, tempDir, uid, onAbnormalExit, guarded, withTimeout } from "./harness.mjs";

const COMPATIBILITY_DATE = "2025-09-01";
const SECRET_KEY = "am_sk_test_workerd_suite";
const SETUP_TIMEOUT_MS = 120_000;
const WRANGLER_PKG = join(REPO, "node_modules/wrangler/package.json");

const WRANGLER_TOML = `name = "autumn-track-workerd-test"
main = "src/index.js"
compatibility_date = "${COMPATIBILITY_DATE}"
`;

// The user's Worker. AUTUMN_URL is a var and AUTUMN_SECRET_KEY a secret in a real deployment;
// both arrive as text bindings on env.
const WORKER_JS = `import { AutumnTracker, TrackError, isTrackError } from "autumn-track";

function serialize(e) {
  return {
    name: e?.name,
    code: e?.code,
    field: e?.field,
    status: e?.status,
    idempotencyKey: e?.idempotencyKey,
    message: String(e?.message ?? e),
    isInstance: e instanceof TrackError,
    isError: e instanceof Error,
    isTrackError: isTrackError(e),
  };
}

function tracker(env, opts) {
  return new AutumnTracker({ secretKey: env.AUTUMN_SECRET_KEY, baseUrl: env.AUTUMN_URL, ...opts });
}

// One tracker per isolate, reused across requests, as a Worker would usually hold it.
let shared;

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    let body;
    try {
      body = await request.json();
    } catch {
      return Response.json({ ok: false, error: { message: "the test sends a JSON body" } }, { status: 400 });
    }
    const { input, opts = {} } = body;
    try {
      if (pathname === "/track") {
        const result = await tracker(env, opts).track(input);
        return Response.json({ ok: true, result });
      }
      if (pathname === "/track-shared") {
        shared ??= tracker(env, {});
        const result = await shared.track(input);
        return Response.json({ ok: true, result });
      }
      if (pathname === "/track-wait-until") {
        // Respond at once; the runtime keeps the isolate alive until the event is delivered.
        ctx.waitUntil(
          tracker(env, opts).track(input).then(
            (r) => console.log("background track:", r.status, r.idempotencyKey),
            (e) => console.error("background track failed:", JSON.stringify(serialize(e))),
          ),
        );
        return Response.json({ ok: true, queued: true }, { status: 202 });
      }
      if (pathname === "/track-with-context") {
        // The adapter: no await, no waitUntil by hand.
        tracker(env, opts).withContext(ctx).track(input).then(
          (r) => console.log("context track:", r.status, r.idempotencyKey),
          (e) => console.error("context track failed:", JSON.stringify(serialize(e))),
        );
        return Response.json({ ok: true, queued: true }, { status: 202 });
      }
      return Response.json({ ok: false, error: { message: "no route " + pathname } }, { status: 404 });
    } catch (e) {
      return Response.json({ ok: false, error: serialize(e) });
    }
  },
};
`;

async function importMiniflare() {
  // The miniflare that the repo's wrangler itself uses.
  const require = createRequire(WRANGLER_PKG);
  return import(pathToFileURL(require.resolve("miniflare")).href);
}

describe("autumn-track in a Cloudflare Worker (wrangler bundle, workerd via miniflare)", () => {
  let work, mock, mf, outDir, bundle = "", wranglerLog = "";
  let workerdPids = [];
  let unregisterExitCleanup;
  const workerLog = [];
  const timing = {};

  const diagnostics = () =>
    [
      `--- worker / workerd / miniflare log (${workerLog.length}) ---`, tail(workerLog.join("\n"), 4000),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 3000),
      `--- wrangler deploy --dry-run output ---`, tail(wranglerLog, 3000),
    ].join("\n");

  // A failed setup fails every test (a failing hook would only cancel them); the first one
  // carries the whole story, with the logs. Tests marked { early: true } need setup only up to
  // the wrangler bundle (`bundled`), so they still say what they check when a later step breaks.
  let setupError;
  let bundled = false;

  const withDiagnostics = guarded(diagnostics, () => ({ error: setupError, ready: bundled }));

  /** POSTs {input, opts} to the Worker; returns its JSON answer (and HTTP status). */
  async function callWorker(path, input, opts) {
    const res = await mf.dispatchFetch(`http://worker.test${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input, opts }),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`the Worker answered ${res.status} with non-JSON: ${text.slice(0, 2000)}`);
    }
    return { httpStatus: res.status, ...json };
  }

  let setupDone;
  before(async () => {
    try {
      setupDone = setup();
      await withTimeout(setupDone, SETUP_TIMEOUT_MS, "setup");
    } catch (e) {
      setupError = e;
    }
  });

  async function setup() {
    requireBuilt();
    if (!existsSync(WRANGLER_PKG)) throw new Error(`${WRANGLER_PKG} is missing: run npm install in the repo`);
    work = tempDir("autumn-track-workerd-");
    unregisterExitCleanup = onAbnormalExit(() => {
      for (const pid of workerdPids) {
        try { process.kill(pid, "SIGKILL"); } catch { /* already gone */ }
      }
      mock?.kill();
      removeDir(work);
    });
    const [tarball, m] = await Promise.all([packRepo(work), startMock()]);
    mock = m;

    const app = join(work, "app");
    mkdirSync(join(app, "src"), { recursive: true });
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "worker-consumer", private: true, type: "module" }, null, 2));
    writeFileSync(join(app, "wrangler.toml"), WRANGLER_TOML);
    writeFileSync(join(app, "src/index.js"), WORKER_JS);
    // No dependencies in the tarball: this install needs no registry.
    await run("npm", ["install", "--no-audit", "--no-fund", "--offline", "--no-package-lock", tarball], { cwd: app });

    // Bundle exactly as `wrangler deploy` would, without an account: --dry-run needs no login.
    // WRANGLER_HIDE_BANNER also skips the banner's npm update check (no network at all).
    outDir = join(work, "out");
    wranglerLog = await run(process.execPath, [join(REPO, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outDir], {
      cwd: app,
      // Its config, logs and device id go to the temp dir, not ~/.config/.wrangler.
      env: quietEnv({ WRANGLER_HIDE_BANNER: "true", WRANGLER_LOG_PATH: join(work, "wrangler-logs"), XDG_CONFIG_HOME: join(work, "xdg-config") }),
      timeoutMs: 60_000,
    });
    bundle = readFileSync(join(outDir, "index.js"), "utf8");
    bundled = true;

    const { Miniflare, Log, LogLevel } = await importMiniflare();
    class CaptureLog extends Log {
      log(message) {
        workerLog.push(message);
      }
    }
    const lines = (prefix) => (stream) => {
      let buf = "";
      stream.setEncoding("utf8");
      stream.on("data", (d) => {
        buf += d;
        const parts = buf.split("\n");
        buf = parts.pop();
        for (const l of parts) workerLog.push(`${prefix}${l}`);
      });
    };
    timing.construct = performance.now();
    mf = new Miniflare({
      modules: true,
      modulesRoot: outDir,
      scriptPath: join(outDir, "index.js"),
      // The rules wrangler's own output is uploaded with.
      modulesRules: [
        { type: "ESModule", include: ["**/*.js"] },
        { type: "CompiledWasm", include: ["**/*.wasm"] },
      ],
      compatibilityDate: COMPATIBILITY_DATE,
      // A placeholder `request.cf` instead of fetching the real one from workers.cloudflare.com.
      cf: false,
      bindings: { AUTUMN_URL: mock.url, AUTUMN_SECRET_KEY: SECRET_KEY },
      log: new CaptureLog(LogLevel.DEBUG),
      handleRuntimeStdio(stdout, stderr) {
        lines("[workerd stdout] ")(stdout);
        lines("[workerd stderr] ")(stderr);
      },
      handleStructuredLogs({ level, message }) {
        workerLog.push(`[worker ${level}] ${message}`);
      },
    });
    await mf.ready;
    timing.ready = performance.now();
    // miniflare's workerd outlives a killed test process; remember it for onAbnormalExit.
    workerdPids = childPidsNamed("workerd");
  }

  after(async () => {
    // A timed-out setup may still be starting things: let it finish (its steps have their own
    // time limits) so that everything it started is stopped below.
    await withTimeout(Promise.resolve(setupDone).catch(() => {}), 60_000, "setup").catch(() => {});
    await mf?.dispose().catch(() => {});
    await mock?.stop();
    removeDir(work);
    unregisterExitCleanup?.();
  });

  test("wrangler bundled the workerd entry, with the .wasm as a module", withDiagnostics(async () => {
    const files = readdirSync(outDir);
    const wasm = files.filter((f) => f.endsWith(".wasm"));
    assert.equal(wasm.length, 1, `wrangler output: ${files.join(", ")}`);
    // The Node and Workers entries load the `server` build (the browser's pkg/ lacks the consumer).
    assert.ok(readFileSync(join(outDir, wasm[0])).equals(readFileSync(join(REPO, "pkg/server/autumn_track_bg.wasm"))), "the bundled .wasm is not pkg/server/autumn_track_bg.wasm");
    assert.match(bundle, /node_modules\/autumn-track\/js\/workerd\.js/, "wrangler did not pick the `workerd` export condition");
    assert.ok(bundle.includes(`from "./${wasm[0]}"`), `the bundle does not import ./${wasm[0]}`);
    assert.doesNotMatch(bundle, /node_modules\/autumn-track\/js\/(node|browser)\.js/, "another entry point got bundled too");
  }, { early: true }));

  // Also proves the browser guard does not misfire in workerd: the tracker holds a secret key.
  test("delivers an event with the secret key from the Worker's env", withDiagnostics(async () => {
    const customerId = uid("cus_worker");
    const out = await callWorker("/track", { customerId, featureId: "messages", value: 2, properties: { runtime: "workerd" } });
    timing.firstResponse = performance.now();
    // Informational only (never asserted): printed as top-level `# cold start: N ms` TAP lines.
    console.log(`cold start: ${Math.round(timing.firstResponse - timing.construct)} ms`);
    console.log(`cold start breakdown: new Miniflare → ready ${Math.round(timing.ready - timing.construct)} ms, ready → first track() response ${Math.round(timing.firstResponse - timing.ready)} ms`);
    assert.ok(out.ok, `track failed in the Worker: ${JSON.stringify(out.error)}`);
    assert.equal(out.result.status, "delivered");
    assert.equal(out.result.attempts, 1);
    assert.equal(out.result.response.customer_id, customerId);
    const events = await mockEvents(mock.url, out.result.idempotencyKey);
    assert.equal(events.length, 1, `recorded events: ${JSON.stringify(events)}`);
    assert.equal(events[0].customer_id, customerId);
    assert.equal(events[0].feature_id, "messages");
    assert.equal(events[0].value, 2);
    assert.equal(events[0].headers.authorization, `Bearer ${SECRET_KEY}`);
    // The key travels in the body only: an Idempotency-Key header is a claim shared with every
    // other Autumn route (shared/autumn-contract.md).
    assert.equal(events[0].idempotency_key, out.result.idempotencyKey);
    assert.equal(events[0].headers["idempotency-key"], undefined);
  }));

  test("a validation error arrives as a TrackError with code and field", withDiagnostics(async () => {
    const out = await callWorker("/track", { customerId: "", featureId: "messages" });
    assert.equal(out.ok, false, `expected a rejection, got ${JSON.stringify(out.result)}`);
    assert.equal(out.error.isInstance, true, `not instanceof TrackError: ${JSON.stringify(out.error)}`);
    assert.equal(out.error.isError, true);
    assert.equal(out.error.isTrackError, true);
    assert.equal(out.error.name, "TrackError");
    assert.equal(out.error.code, "invalid_input");
    assert.equal(out.error.field, "customerId");
  }));

  test("an unknown feature is feature_not_found with status 404", withDiagnostics(async () => {
    const idempotencyKey = uid("wk_nf");
    const out = await callWorker("/track", { customerId: uid("cus_worker"), featureId: "no_such_feature", idempotencyKey });
    assert.equal(out.ok, false, `expected a rejection, got ${JSON.stringify(out.result)}`);
    assert.equal(out.error.isInstance, true, JSON.stringify(out.error));
    assert.equal(out.error.code, "feature_not_found");
    assert.equal(out.error.status, 404);
    assert.equal(out.error.idempotencyKey, idempotencyKey);
    assert.equal((await mockEvents(mock.url, idempotencyKey)).length, 0, "a refused event was recorded");
  }));

  test("a scripted 503 is retried inside the Worker: delivered on attempt 2, recorded once", withDiagnostics(async () => {
    const idempotencyKey = uid("wk503");
    await mockFaults(mock.url, { [idempotencyKey]: ["503"] });
    const out = await callWorker("/track", { customerId: uid("cus_worker"), featureId: "messages", idempotencyKey });
    assert.ok(out.ok, `track failed in the Worker: ${JSON.stringify(out.error)}`);
    assert.equal(out.result.status, "delivered");
    assert.equal(out.result.attempts, 2);
    assert.equal((await mockEvents(mock.url, idempotencyKey)).length, 1);
  }));

  test("a tracker held across requests keeps working", withDiagnostics(async () => {
    const customerId = uid("cus_shared");
    const keys = [];
    for (let i = 0; i < 3; i++) {
      const out = await callWorker("/track-shared", { customerId, featureId: "messages" });
      assert.ok(out.ok, `request ${i}: ${JSON.stringify(out.error)}`);
      assert.equal(out.result.status, "delivered");
      keys.push(out.result.idempotencyKey);
    }
    assert.equal(new Set(keys).size, 3);
    for (const k of keys) assert.equal((await mockEvents(mock.url, k)).length, 1, k);
  }));

  test("ctx.waitUntil(tracker.track(…)): the response comes first, the event still lands", withDiagnostics(async () => {
    const idempotencyKey = uid("wk_wait");
    // The mock holds this event's request for 1.5 s, so the Worker must answer before delivery.
    await mockFaults(mock.url, { [idempotencyKey]: ["latency:1500"] });
    const out = await callWorker("/track-wait-until", { customerId: uid("cus_bg"), featureId: "messages", idempotencyKey });
    assert.equal(out.httpStatus, 202);
    assert.deepEqual({ ok: out.ok, queued: out.queued }, { ok: true, queued: true });
    assert.equal((await mockEvents(mock.url, idempotencyKey)).length, 0, "the Worker waited for delivery before answering");
    let events = [];
    for (let i = 0; i < 100 && events.length === 0; i++) {
      await sleep(100);
      events = await mockEvents(mock.url, idempotencyKey);
    }
    assert.equal(events.length, 1, "the event tracked in ctx.waitUntil never arrived (10 s)");
    assert.equal(events[0].headers.authorization, `Bearer ${SECRET_KEY}`);
    // And the background promise resolved inside the Worker (its log line).
    for (let i = 0; i < 20 && !workerLog.some((l) => l.includes(`background track: delivered ${idempotencyKey}`)); i++) await sleep(50);
    assert.ok(workerLog.some((l) => l.includes(`background track: delivered ${idempotencyKey}`)), "no `background track: delivered` log from the Worker");
  }));

  test("tracker.withContext(ctx).track(…): answers first, delivers after; a queued event is flushed in waitUntil", withDiagnostics(async () => {
    for (const [faults, label] of [[["latency:1500"], "slow"], [["503", "latency:1000"], "queued then flushed"]]) {
      const idempotencyKey = uid("wk_ctx");
      await mockFaults(mock.url, { [idempotencyKey]: faults });
      // maxRetries 0: the 503 leaves the event queued, and only withContext's flush delivers it.
      const out = await callWorker("/track-with-context", { customerId: uid("cus_ctx"), featureId: "messages", idempotencyKey }, { maxRetries: 0 });
      assert.equal(out.httpStatus, 202, label);
      assert.equal((await mockEvents(mock.url, idempotencyKey)).length, 0, `${label}: the Worker answered before delivery`);
      let events = [];
      for (let i = 0; i < 100 && events.length === 0; i++) {
        await sleep(100);
        events = await mockEvents(mock.url, idempotencyKey);
      }
      assert.equal(events.length, 1, `${label}: the event never arrived (10 s)`);
    }
  }));
});
