// Shared plumbing of the workerd suite (not a test file: node --test only runs *.test.mjs here;
// a copy of tests/page/harness.mjs, so each suite stands alone): the repo's paths, packing the
// repo as npm would publish it, running a command with its output kept for diagnostics,
// starting autumn-mock on a free 127.0.0.1 port, and (for the proxy suites) bundling a Worker
// with wrangler and running it under miniflare, optionally listening on 127.0.0.1.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const MOCK_BIN = join(REPO, "target/release/autumn-mock");
export const WASM = join(REPO, "pkg/autumn_track_bg.wasm");

/** Throws a clear message when a prerequisite built by someone else is missing. */
export function requireBuilt() {
  if (!existsSync(WASM)) {
    throw new Error(`${WASM} is missing: run scripts/build.sh (the release build) first`);
  }
  if (!existsSync(MOCK_BIN)) {
    throw new Error(`${MOCK_BIN} is missing: run \`cargo build --release -p autumn-mock\` first`);
  }
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Env for child npm/vite/wrangler processes: no telemetry, no update checks, no prompts. */
export function quietEnv(extra = {}) {
  return {
    ...process.env,
    CI: "true",
    NO_UPDATE_NOTIFIER: "1",
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
    WRANGLER_SEND_METRICS: "false",
    NO_COLOR: "1",
    FORCE_COLOR: "0",
    ...extra,
  };
}

/**
 * Runs `cmd args…` in `cwd`; resolves its combined output, rejects with the output in the
 * message on a non-zero exit or after `timeoutMs`.
 */
export function run(cmd, args, { cwd = REPO, env = quietEnv(), timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const unregister = onAbnormalExit(() => child.kill("SIGKILL"));
    child.on("error", (e) => {
      clearTimeout(timer);
      unregister();
      reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      unregister();
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed: ${signal ? `killed by ${signal} (timeout ${timeoutMs} ms?)` : `exit ${code}`}\n${out}`));
    });
  });
}

/** `npm pack`s the repo into `dir`; returns the tarball's path. */
export async function packRepo(dir) {
  await run("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: REPO });
  const tgz = readdirSync(dir).filter((f) => /^autumn-track-.*\.tgz$/.test(f));
  if (tgz.length !== 1) throw new Error(`npm pack made ${JSON.stringify(tgz)} in ${dir}`);
  return join(dir, tgz[0]);
}

/**
 * Starts autumn-mock on a free port. Returns { url, log(), stop() }. The mock also exits when
 * our stdin pipe closes, so a crashed test run cannot leave it behind.
 */
export async function startMock(args = ["--auto-create-customers"]) {
  const child = spawn(MOCK_BIN, ["--port", "0", "--exit-on-stdin-eof", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let log = "";
  let url;
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  try {
    url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("autumn-mock printed no `listening on` line within 10 s")), 10_000);
      let first = "";
      child.stdout.on("data", (d) => {
        log += d;
        if (url) return;
        first += d;
        const nl = first.indexOf("\n");
        if (nl < 0) return;
        clearTimeout(timer);
        const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(first.slice(0, nl));
        if (m) resolve(m[1]);
        else reject(new Error(`unexpected first line from autumn-mock: ${first.slice(0, nl)}`));
      });
      child.stderr.on("data", (d) => (log += d));
      child.on("error", (e) => { clearTimeout(timer); reject(e); });
      exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`autumn-mock exited (${code ?? signal}) before listening`)); });
    });
  } catch (e) {
    child.kill("SIGKILL");
    e.message += `\n--- autumn-mock output ---\n${log}`;
    throw e;
  }
  return {
    url,
    log: () => log,
    /** Synchronous, for exit handlers. */
    kill: () => child.kill("SIGKILL"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The events the mock recorded for an idempotency key. */
export async function mockEvents(mockUrl, key) {
  const r = await fetch(`${mockUrl}/_mock/events?idempotency_key=${encodeURIComponent(key)}`);
  if (!r.ok) throw new Error(`GET /_mock/events: ${r.status} ${await r.text()}`);
  return (await r.json()).events;
}

/** Scripts per-key faults, consumed one per request: { key: ["503", …] }. */
export async function mockFaults(mockUrl, scripts) {
  const r = await fetch(`${mockUrl}/_mock/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ scripts }),
  });
  if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
}

export const uid = (p) => `${p}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 10)}`;

/** The last `n` characters of a log, for failure messages. */
export const tail = (s, n = 4000) => (s.length > n ? `…${s.slice(-n)}` : s);

/** Rejects when `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Cleanups for a run that ends abnormally (Ctrl-C, SIGTERM, the runner's pipe closing): the
// normal path is each suite's after(), which unregisters these first.
const exitCleanups = new Set();
let exitHooked = false;

// If the runner reading our output goes away (e.g. `… | head`), an EPIPE on stdout would kill
// this process on the spot, skipping after() and every exit hook and leaving workerd and the
// temp dirs behind. Ignore it instead: the suite then finishes (seconds) and cleans up.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

/** Registers a synchronous cleanup for an abnormal exit; returns its unregister function. */
export function onAbnormalExit(fn) {
  if (!exitHooked) {
    exitHooked = true;
    const runAll = () => {
      for (const f of exitCleanups) {
        try { f(); } catch { /* best effort */ }
      }
      exitCleanups.clear();
    };
    process.on("exit", runAll);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
      process.once(sig, () => {
        runAll();
        process.exit(128 + constants.signals[sig]);
      });
    }
  }
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

/** Pids of this process's direct children whose command name is `name` (Linux /proc). */
export function childPidsNamed(name) {
  const pids = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${d}/stat`, "utf8"));
      if (m && m[1] === name && Number(m[2]) === process.pid) pids.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

// ---- a wrangler-built Worker under miniflare (used by the proxy suites) ---------------------

export const COMPATIBILITY_DATE = "2025-09-01";
const WRANGLER_PKG = join(REPO, "node_modules/wrangler/package.json");

/** The miniflare that the repo's wrangler itself uses. */
export async function importMiniflare() {
  const require = createRequire(WRANGLER_PKG);
  return import(pathToFileURL(require.resolve("miniflare")).href);
}

/**
 * The published package in a fresh Worker project, bundled exactly as `wrangler deploy` would
 * (`--dry-run --outdir`: no account, no network): packs the repo into `work`, installs the
 * tarball offline into `work/app`, writes `workerJs` as its `src/index.js`. Resolves
 * `{ app, outDir, bundle, wranglerLog }`; `app/node_modules/autumn-track` is the installed
 * package, as a user's bundler or CDN would see it.
 */
export async function buildWorker(work, workerJs, { name = "autumn-track-workerd-test" } = {}) {
  if (!existsSync(WRANGLER_PKG)) throw new Error(`${WRANGLER_PKG} is missing: run npm install in the repo`);
  const tarball = await packRepo(work);
  const app = join(work, "app");
  mkdirSync(join(app, "src"), { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "worker-consumer", private: true, type: "module" }, null, 2));
  writeFileSync(join(app, "wrangler.toml"), `name = "${name}"\nmain = "src/index.js"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n`);
  writeFileSync(join(app, "src/index.js"), workerJs);
  // No dependencies in the tarball: this install needs no registry.
  await run("npm", ["install", "--no-audit", "--no-fund", "--offline", "--no-package-lock", tarball], { cwd: app });
  const outDir = join(work, "out");
  const wranglerLog = await run(process.execPath, [join(REPO, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outDir], {
    cwd: app,
    // Its config, logs and device id go to the temp dir, not ~/.config/.wrangler; no banner,
    // so no npm update check.
    env: quietEnv({ WRANGLER_HIDE_BANNER: "true", WRANGLER_LOG_PATH: join(work, "wrangler-logs"), XDG_CONFIG_HOME: join(work, "xdg-config") }),
    timeoutMs: 60_000,
  });
  return { app, outDir, bundle: readFileSync(join(outDir, "index.js"), "utf8"), wranglerLog };
}

/**
 * Runs wrangler's output in workerd through miniflare's API. `listen: true` also serves it on
 * a free 127.0.0.1 port (for a browser). Log lines go to `log` (an array). Resolves
 * `{ mf, url, workerdPids }`; `url` is the listening URL (or null).
 */
export async function startWorker(outDir, { bindings = {}, log = [], listen = false } = {}) {
  const { Miniflare, Log, LogLevel } = await importMiniflare();
  class CaptureLog extends Log {
    log(message) {
      log.push(message);
    }
  }
  const lines = (prefix) => (stream) => {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (d) => {
      buf += d;
      const parts = buf.split("\n");
      buf = parts.pop();
      for (const l of parts) log.push(`${prefix}${l}`);
    });
  };
  const mf = new Miniflare({
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
    ...(listen ? { host: "127.0.0.1", port: 0 } : {}),
    bindings,
    log: new CaptureLog(LogLevel.DEBUG),
    handleRuntimeStdio(stdout, stderr) {
      lines("[workerd stdout] ")(stdout);
      lines("[workerd stderr] ")(stderr);
    },
    handleStructuredLogs({ level, message }) {
      log.push(`[worker ${level}] ${message}`);
    },
  });
  // miniflare's workerd outlives a killed test process: its pid is for onAbnormalExit.
  let url;
  try {
    url = await mf.ready;
  } catch (e) {
    await mf.dispose().catch(() => {});
    throw e;
  }
  return { mf, url: listen ? url.href.replace(/\/$/, "") : null, workerdPids: childPidsNamed("workerd") };
}

/**
 * The Worker of the proxy suites: `handleTrackRequest` under `/api/autumn`, configured from
 * its env (the browser suite needs its page's origin allowed and a looser rate limit).
 * `Bearer user-<id>` is customer `cus_user_<id>` (so `Bearer user-1` is `cus_user_1`);
 * anything else is nobody. Distinct users keep the tests' rate-limit windows apart.
 * `/bad-key/api/autumn/…` holds a key Autumn refuses (a misconfigured deployment).
 */
export const PROXY_WORKER_JS = `import { handleTrackRequest } from "autumn-track";

function identify(req) {
  const m = /^Bearer user-([A-Za-z0-9_-]{1,64})$/.exec(req.headers.get("authorization") ?? "");
  return m ? "cus_user_" + m[1].replaceAll("-", "_") : null;
}

export default {
  async fetch(request, env) {
    const badKey = new URL(request.url).pathname.startsWith("/bad-key/");
    return handleTrackRequest(request, {
      secretKey: badKey ? env.WRONG_SECRET_KEY : env.AUTUMN_SECRET_KEY,
      baseUrl: env.AUTUMN_URL,
      identify,
      allowedOrigins: env.ALLOWED_ORIGINS.split(","),
      rateLimit: { limit: Number(env.RATE_LIMIT), windowMs: 60000 },
      pathPrefix: badKey ? "/bad-key/api/autumn" : "/api/autumn",
    });
  },
};
`;
