// Helpers for the server-queue suites (not a test file): a PostgreSQL server of the test's own in
// a temporary data directory on 127.0.0.1 (Debian's binaries; as the `postgres` user when run as
// root), autumn-mock, child processes, and the mock's inspection API.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** autumn-mock of this test file's own (faults set here must not reach other files' events). */
export async function startMock(args = []) {
  const bin = process.env.AUTUMN_MOCK_BIN;
  if (!bin || !existsSync(bin)) throw new Error("AUTUMN_MOCK_BIN is not set (tests/node/run.sh sets it)");
  const c = spawn(bin, ["--port", "0", "--auto-create-customers", "--exit-on-stdin-eof", "--max-events", "2000000", ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: c.stdout }).once("line", (l) => resolve(l.replace("listening on ", "").trim()));
    c.once("exit", (code) => reject(new Error(`autumn-mock exited ${code}`)));
  });
  const get = async (path) => {
    const r = await fetch(`${url}${path}`);
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    return r.json();
  };
  return {
    url,
    get,
    async faults(f) {
      const r = await fetch(`${url}/_mock/faults`, { method: "POST", body: JSON.stringify(f) });
      if (!r.ok) throw new Error(`POST /_mock/faults: ${r.status} ${await r.text()}`);
    },
    /** key → how many times it was recorded, over the events of `customers`. */
    async counts(customers) {
      const out = new Map();
      for (const c of customers) {
        for (const e of (await get(`/_mock/events?customer_id=${encodeURIComponent(c)}`)).events) {
          out.set(e.idempotency_key, (out.get(e.idempotency_key) ?? 0) + 1);
        }
      }
      return out;
    },
    stop: () => c.kill(),
  };
}

export const MOCK = process.env.AUTUMN_MOCK_URL;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pgBin() {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const v = readdirSync(root).sort((a, b) => Number(b) - Number(a))[0];
  return v ? join(root, v, "bin") : null;
}

/** Starts PostgreSQL: `{ url, stop() }`, or throws saying what is missing. */
export async function startPostgres() {
  const bin = pgBin();
  if (!bin) throw new Error("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql)");
  const dir = mkdtempSync(join(tmpdir(), "autumn-pg-"));
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, args) => {
    if (!asRoot) return execFileSync(join(bin, cmd), args, { stdio: "pipe" });
    const quoted = [join(bin, cmd), ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    return execFileSync("su", ["postgres", "-s", "/bin/sh", "-c", quoted], { stdio: "pipe" });
  };
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o700);
  }
  const data = join(dir, "data");
  run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  run("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-o", `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dir} -c max_connections=200 -c fsync=on`, "-w", "start"]);
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    stop() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {}
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a child `node script args…`: `{ child, lines (async iterator of stdout lines), exited }`. */
export function child(script, args = [], env = {}) {
  const c = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let err = "";
  c.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
  const exited = new Promise((resolve) => c.on("exit", (code, signal) => resolve({ code, signal, stderr: err })));
  return { child: c, lines: createInterface({ input: c.stdout }), exited, stderr: () => err };
}

export async function mockGet(path) {
  const r = await fetch(`${MOCK}${path}`);
  if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
  return r.json();
}

