// The published package in a page built by a bundler, as a user would ship it: `npm pack` the
// repo (the RELEASE build in pkg/, after wasm-opt), install the tarball into a fresh Vite
// project, `vite build` it, serve dist/ from 127.0.0.1 and drive it in Chromium, tracking
// against autumn-mock (cross-origin, so CORS is exercised too).
//
// Needs: scripts/build.sh (pkg/) and `cargo build --release -p autumn-mock`.
// Run:   node --test --test-reporter=tap tests/page/
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname, join, normalize, relative, sep } from "node:path";
import { chromium } from "playwright-core";
import { REPO, mockEvents, mockFaults, packRepo, quietEnv, removeDir, requireBuilt, run, startMock, tail, tempDir, uid, onAbnormalExit, guarded, withTimeout } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const KEY = "am_sk_test_page";
const SETUP_TIMEOUT_MS = 90_000;

const INDEX_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <link rel="icon" href="data:," />
    <title>autumn-track in a Vite page</title>
  </head>
  <body>
    <p id="status">loading</p>
    <script type="module" src="/main.js"></script>
  </body>
</html>
`;

const MAIN_JS = `import { AutumnTracker, TrackError, isTrackError } from "autumn-track";

const mock = new URLSearchParams(location.search).get("mock");

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

// Constructs a tracker (baseUrl defaults to the mock) and tracks one event.
window.runTrack = async (input, opts = {}) => {
  try {
    const tracker = new AutumnTracker({ baseUrl: mock, ...opts });
    const result = await tracker.track(input);
    return { ok: true, result: JSON.parse(JSON.stringify(result)) };
  } catch (e) {
    return { ok: false, error: serialize(e) };
  }
};

// Only constructs a tracker with exactly these options.
window.construct = (opts) => {
  try {
    new AutumnTracker(opts);
    return { ok: true };
  } catch (e) {
    return { ok: false, error: serialize(e) };
  }
};

document.getElementById("status").textContent = "ready";
`;

// Plain object: the config needs nothing from vite itself.
const VITE_CONFIG = `export default {
  logLevel: "info",
  build: { target: "es2022", outDir: "dist", emptyOutDir: true },
};
`;

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".svg": "image/svg+xml",
};

function serveStatic(root) {
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    let status = 200;
    if (relative(root, file).startsWith("..")) status = 403;
    else {
      try {
        const body = readFileSync(file);
        res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
        res.end(body);
      } catch {
        status = 404;
      }
    }
    if (status !== 200) res.writeHead(status, { "content-type": "text/plain" }).end(String(status));
    requests.push(`${req.method} ${path} -> ${status}`);
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}`, requests }));
  });
}

function listFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((f) => f.split(sep).join("/"));
}

describe("autumn-track in a Vite-built page (release build, packed tarball)", () => {
  let work, mock, site, browser, page, pageUrl, viteLog = "";
  let unregisterExitCleanup;
  const consoleErrors = [];
  const pageErrors = [];
  const pageLog = [];
  const failedRequests = [];
  const wasmContentTypes = [];

  // Everything a failure message needs to be actionable.
  const diagnostics = () =>
    [
      `--- page console (${pageLog.length}) ---`, ...pageLog.slice(-40),
      `--- uncaught page errors ---`, ...pageErrors,
      `--- failed requests ---`, ...failedRequests,
      `--- static server requests ---`, ...(site?.requests.slice(-40) ?? []),
      `--- autumn-mock log ---`, tail(mock?.log() ?? "", 3000),
      `--- vite build output ---`, tail(viteLog, 3000),
    ].join("\n");

  // A failed setup fails every test (a failing hook would only cancel them); the first one
  // carries the whole story, with the logs. Tests marked { early: true } need setup only up to
  // the Vite build (`built`), so they still say what they check when a later step breaks.
  let setupError;
  let built = false;

  const withDiagnostics = guarded(diagnostics, () => ({ error: setupError, ready: built }));

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
    work = tempDir("autumn-track-page-");
    // (Playwright closes its browser on its own when this process dies.)
    unregisterExitCleanup = onAbnormalExit(() => {
      mock?.kill();
      removeDir(work);
    });
    const [tarball, m] = await Promise.all([packRepo(work), startMock()]);
    mock = m;

    const app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "vite-consumer", private: true, type: "module" }, null, 2));
    writeFileSync(join(app, "index.html"), INDEX_HTML);
    writeFileSync(join(app, "main.js"), MAIN_JS);
    writeFileSync(join(app, "vite.config.mjs"), VITE_CONFIG);
    // No dependencies in the tarball: this install needs no registry.
    await run("npm", ["install", "--no-audit", "--no-fund", "--offline", "--no-package-lock", tarball], { cwd: app });

    // The repo's own vite (no second download), run on the temp project as its root: it
    // resolves "autumn-track" from the project's node_modules, as in a user's app.
    viteLog = await run(process.execPath, [join(REPO, "node_modules/vite/bin/vite.js"), "build", app], {
      cwd: app,
      env: quietEnv({ NODE_ENV: "production" }),
      timeoutMs: 60_000,
    });

    built = true;

    site = await serveStatic(join(app, "dist"));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    });
    page = await browser.newPage();
    page.on("console", (msg) => {
      const line = `[${msg.type()}] ${msg.text()}`;
      pageLog.push(line);
      if (msg.type() === "error") consoleErrors.push(line);
    });
    page.on("pageerror", (err) => pageErrors.push(String(err?.stack || err)));
    page.on("response", (res) => {
      if (new URL(res.url()).pathname.endsWith(".wasm")) wasmContentTypes.push(res.headers()["content-type"]);
    });
    page.on("requestfailed", (req) => failedRequests.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`));
    pageUrl = `${site.url}/?mock=${encodeURIComponent(mock.url)}`;
  }

  after(async () => {
    // A timed-out setup may still be starting things: let it finish (its steps have their own
    // time limits) so that everything it started is stopped below.
    await withTimeout(Promise.resolve(setupDone).catch(() => {}), 60_000, "setup").catch(() => {});
    await page?.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (site) {
      const closed = new Promise((res) => site.server.close(res));
      site.server.closeAllConnections();
      await closed;
    }
    await mock?.stop();
    removeDir(work);
    unregisterExitCleanup?.();
  });

  test("vite build emitted the release .wasm as an asset", withDiagnostics(async () => {
    const dist = join(work, "app", "dist");
    const files = listFiles(dist);
    const wasm = files.filter((f) => f.endsWith(".wasm"));
    assert.ok(wasm.length >= 1, `no .wasm in dist/: ${files.join(", ")}`);
    // It is the release build that was packed (wasm-opt'd), byte for byte.
    const shipped = readFileSync(join(REPO, "pkg/autumn_track_bg.wasm"));
    assert.ok(wasm.some((f) => readFileSync(join(dist, f)).equals(shipped)), "the emitted .wasm is not pkg/autumn_track_bg.wasm");
    // …and it is the release build: wasm-opt strips the name section and DWARF that a
    // `--dev` build (which does not ship) keeps.
    const mod = new WebAssembly.Module(shipped);
    assert.deepEqual(WebAssembly.Module.customSections(mod, "name"), [], "pkg/ holds a non-release wasm (it has a name section): run scripts/build.sh");
    assert.deepEqual(WebAssembly.Module.customSections(mod, ".debug_info"), [], "pkg/ holds a wasm with DWARF: run scripts/build.sh");
  }, { early: true }));

  test("the page loads and initialises the wasm with no console errors", withDiagnostics(async () => {
    await page.goto(pageUrl, { waitUntil: "load", timeout: 15_000 });
    await page.waitForFunction(() => typeof window.runTrack === "function" && document.getElementById("status")?.textContent === "ready", null, { timeout: 15_000 });
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
    assert.deepEqual(consoleErrors, [], "console errors in the page");
    // Warnings too: e.g. wasm-bindgen's "instantiateStreaming failed … MIME type" fallback.
    assert.deepEqual(pageLog.filter((l) => l.startsWith("[warning]")), [], "console warnings in the page");
    assert.ok(site.requests.some((r) => /\.wasm -> 200$/.test(r)), "the page did not fetch the .wasm");
    assert.ok(wasmContentTypes.length > 0 && wasmContentTypes.every((c) => c === "application/wasm"), `the .wasm was served as ${wasmContentTypes}`);
  }));

  test("a keyless tracker with an Authorization header delivers one event", withDiagnostics(async () => {
    const customerId = uid("cus_page");
    const out = await page.evaluate(
      ([input, opts]) => window.runTrack(input, opts),
      [{ customerId, featureId: "messages", value: 3, properties: { source: "vite" } }, { headers: { Authorization: `Bearer ${KEY}` } }],
    );
    assert.ok(out.ok, `track failed: ${JSON.stringify(out.error)}`);
    const r = out.result;
    assert.equal(r.status, "delivered");
    assert.equal(r.attempts, 1);
    assert.equal(typeof r.idempotencyKey, "string");
    assert.equal(r.response.customer_id, customerId);
    const events = await mockEvents(mock.url, r.idempotencyKey);
    assert.equal(events.length, 1, `recorded events: ${JSON.stringify(events)}`);
    assert.equal(events[0].customer_id, customerId);
    assert.equal(events[0].feature_id, "messages");
    assert.equal(events[0].value, 3);
    assert.equal(events[0].headers.authorization, `Bearer ${KEY}`);
  }));

  test("a validation error is a TrackError instance with code and field", withDiagnostics(async () => {
    const out = await page.evaluate(() => window.runTrack({ customerId: "", featureId: "messages" }, { headers: { Authorization: "Bearer am_sk_test_page" } }));
    assert.equal(out.ok, false, `expected a rejection, got ${JSON.stringify(out.result)}`);
    const e = out.error;
    assert.equal(e.isInstance, true, `not instanceof TrackError: ${JSON.stringify(e)}`);
    assert.equal(e.isError, true);
    assert.equal(e.isTrackError, true);
    assert.equal(e.name, "TrackError");
    assert.equal(e.code, "invalid_input");
    assert.equal(e.field, "customerId");
  }));

  test("a secret key in the page throws secret_key_in_browser", withDiagnostics(async () => {
    const out = await page.evaluate(() => window.construct({ secretKey: "am_sk_test_x" }));
    assert.equal(out.ok, false, "new AutumnTracker({secretKey}) did not throw in a browser page");
    assert.equal(out.error.isInstance, true, JSON.stringify(out.error));
    assert.equal(out.error.name, "TrackError");
    assert.equal(out.error.code, "secret_key_in_browser");
    // The opt-out exists and works.
    const allowed = await page.evaluate(() => window.construct({ secretKey: "am_sk_test_x", dangerouslyAllowBrowser: true }));
    assert.deepEqual(allowed, { ok: true });
  }));

  test("a scripted 503 is retried: delivered on attempt 2, recorded once", withDiagnostics(async () => {
    const idempotencyKey = uid("page503");
    await mockFaults(mock.url, { [idempotencyKey]: ["503"] });
    const out = await page.evaluate(
      ([input, opts]) => window.runTrack(input, opts),
      [{ customerId: uid("cus_page"), featureId: "messages", idempotencyKey }, { headers: { Authorization: `Bearer ${KEY}` } }],
    );
    assert.ok(out.ok, `track failed: ${JSON.stringify(out.error)}`);
    assert.equal(out.result.status, "delivered");
    assert.equal(out.result.idempotencyKey, idempotencyKey);
    assert.equal(out.result.attempts, 2);
    const events = await mockEvents(mock.url, idempotencyKey);
    assert.equal(events.length, 1, `recorded events: ${JSON.stringify(events)}`);
  }));

  test("no uncaught errors in the page during the whole run", withDiagnostics(async () => {
    assert.deepEqual(pageErrors, []);
    // The browser itself logs the scripted 503 as "Failed to load resource"; anything else is ours.
    const ours = consoleErrors.filter((l) => !/Failed to load resource: the server responded with a status of 503/.test(l));
    assert.deepEqual(ours, []);
  }));
});
