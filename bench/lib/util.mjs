// Plumbing shared by the benchmark's parts: paths, statistics, autumn-mock, a static file
// server for the bench page, the repo snapshot, and TAP output.
import { spawn } from "node:child_process";
import { cpSync, createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

export const BENCH = fileURLToPath(new URL("..", import.meta.url));
export const REPO = join(BENCH, "..");
export const MOCK_BIN = join(REPO, "target/release/autumn-mock");

// ---- statistics ------------------------------------------------------------------------

export function quantile(values, q) {
  const a = Float64Array.from(values).sort();
  if (a.length === 0) return NaN;
  const i = (a.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return a[lo] + (a[hi] - a[lo]) * (i - lo);
}

/** { median, min, max, n } of a list of repeat results. */
export function spread(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return { median: quantile(v, 0.5), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

export const round = (x, d = 2) => (Number.isFinite(x) ? Number(x.toFixed(d)) : x);

// ---- the repo snapshot -----------------------------------------------------------------

/**
 * Copies pkg/ and js/ into a temp dir, so a build running meanwhile (other people work in this
 * checkout) cannot change the package under a running measurement. Returns the dir.
 */
export function snapshotPackage() {
  const wasm = join(REPO, "pkg/autumn_track_bg.wasm");
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run \`bash scripts/build.sh\` first`);
  const dir = mkdtempSync(join(tmpdir(), "autumn-bench-pkg-"));
  cpSync(join(REPO, "pkg"), join(dir, "pkg"), { recursive: true });
  cpSync(join(REPO, "js"), join(dir, "js"), { recursive: true });
  return { dir, builtAt: statSync(wasm).mtime.toISOString() };
}

export function removeDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

// ---- autumn-mock -----------------------------------------------------------------------

/** Builds autumn-mock if its release binary is missing (needs cargo). */
export async function ensureMock() {
  if (existsSync(MOCK_BIN)) return;
  await new Promise((resolve, reject) => {
    const c = spawn("cargo", ["build", "-q", "--release", "-p", "autumn-mock"], { cwd: REPO, stdio: ["ignore", "inherit", "inherit"] });
    c.on("error", reject);
    c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`cargo build -p autumn-mock: exit ${code}`))));
  });
}

/** Starts autumn-mock on a free 127.0.0.1 port: { url, pid, get(path), post(path, body), stop() }. */
export async function startMock(args = []) {
  await ensureMock();
  const child = spawn(MOCK_BIN, ["--port", "0", "--exit-on-stdin-eof", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`autumn-mock did not start: ${log}`)), 10_000);
    let first = "";
    child.stdout.on("data", (d) => {
      first += d;
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(first);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (c) => {
      clearTimeout(timer);
      reject(new Error(`autumn-mock exited ${c}: ${log}`));
    });
  });
  const get = async (path) => (await fetch(url + path)).json();
  const post = async (path, body = {}) =>
    (await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json();
  return {
    url,
    pid: child.pid,
    get,
    post,
    recorded: async () => (await get("/_mock/stats")).recorded_events,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

// ---- static server for the bench page ---------------------------------------------------

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/**
 * Serves `mounts` ({ "/prefix/": dir }) on 127.0.0.1 with COOP/COEP, so the page is
 * cross-origin isolated and performance.now() has 5 µs resolution instead of 100 µs.
 */
export async function startStatic(mounts) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(mounts).find((p) => path.startsWith(p));
    const headers = {
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
      "Cache-Control": "no-store",
    };
    if (!prefix) {
      res.writeHead(404, headers).end();
      return;
    }
    const file = normalize(join(mounts[prefix], path.slice(prefix.length) || "index.html"));
    if (!file.startsWith(normalize(mounts[prefix])) || !existsSync(file) || statSync(file).isDirectory()) {
      res.writeHead(404, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] || "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

// ---- machine ----------------------------------------------------------------------------

export function cpuModel() {
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m ? m[1].trim() : "unknown";
  } catch {
    return "unknown";
  }
}

export function loadAvg() {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

// ---- TAP (node:test style, so CI's totals count it) ---------------------------------------

export class Tap {
  constructor() {
    this.n = 0;
    this.pass = 0;
    this.fail = 0;
    console.log("TAP version 13");
  }
  ok(name, ms) {
    this.n++;
    this.pass++;
    console.log(`ok ${this.n} - ${name}`);
    console.log(`  ---\n  duration_ms: ${round(ms, 1)}\n  ...`);
  }
  notOk(name, ms, err) {
    this.n++;
    this.fail++;
    console.log(`not ok ${this.n} - ${name}`);
    const msg = String(err?.stack || err).split("\n").slice(0, 12).map((l) => `    ${l}`).join("\n");
    console.log(`  ---\n  duration_ms: ${round(ms, 1)}\n  error: |-\n${msg}\n  ...`);
  }
  comment(text) {
    for (const l of String(text).split("\n")) console.log(`# ${l}`);
  }
  end() {
    console.log(`1..${this.n}`);
    console.log(`# tests ${this.n}`);
    console.log(`# pass ${this.pass}`);
    console.log(`# fail ${this.fail}`);
  }
}
