// Shared plumbing of the page suite (not a test file: node --test only runs *.test.mjs here):
// the repo's paths, packing the repo as npm would publish it, running a command with its output
// kept for diagnostics, and starting autumn-mock on a free 127.0.0.1 port.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
/**
 * What a suite wraps its test bodies with: a failed setup fails every test (the first with the
 * whole story, the rest in one line), a hung test fails after `timeoutMs` instead of hanging the
 * run, and every failure carries `diagnostics()` (the suite's logs). `setup()` says
 * `{ error, ready }`: the setup error so far, and whether tests marked `{ early: true }` may run
 * despite it (e.g. once the bundle is built).
 */
export function guarded(diagnostics, setup, { timeoutMs: defaultTimeout = 30_000 } = {}) {
  let reported = false;
  return (fn, { early = false, timeoutMs = defaultTimeout } = {}) => async (t) => {
    const { error, ready = false } = setup();
    const blocked = error && !(early && ready);
    if (blocked && reported) throw new Error(`setup failed (see the first failure): ${error.message.split("\n")[0]}`);
    try {
      if (blocked) {
        reported = true;
        throw error;
      }
      await withTimeout(fn(t), timeoutMs, "the test");
    } catch (e) {
      if (e && typeof e === "object") {
        try { e.message = `${e.message}\n${diagnostics()}`; } catch { /* read-only message */ }
      }
      throw e;
    }
  };
}

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
