// Shared plumbing of the chaos suites (not a test file: node --test only runs *.test.mjs): a
// private copy of the built package (js/ + pkg/, so a rebuild by someone else mid-run cannot
// hand a reloaded page a half-written file), a static server for it on 127.0.0.1, headless
// Chromium, and small helpers for autumn-mock's inspection API.
import { createServer } from "node:http";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { extname, join, normalize, relative } from "node:path";
import { chromium } from "playwright-core";
import { REPO, WASM, MOCK_BIN, tempDir, removeDir } from "../page/harness.mjs";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
};

export function requireBuilt() {
  if (!existsSync(WASM)) throw new Error(`${WASM} is missing: run scripts/build.sh (the release build) first`);
  if (!existsSync(MOCK_BIN)) throw new Error(`${MOCK_BIN} is missing: run \`cargo build --release -p autumn-mock\` first`);
}

/**
 * Copies js/ and pkg/ to a temp dir and serves it from 127.0.0.1 with `pages` ({ "/path":
 * text }) on top. Resolves { url, dir, requests, close() }.
 */
export async function servePackage(pages) {
  const dir = tempDir("autumn-chaos-");
  cpSync(join(REPO, "js"), join(dir, "js"), { recursive: true });
  cpSync(join(REPO, "pkg"), join(dir, "pkg"), { recursive: true });
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    requests.push(`${req.method} ${path}`);
    if (Object.hasOwn(pages, path)) {
      res.writeHead(200, { "content-type": TYPES[extname(path)] || TYPES[".html"], "cache-control": "no-store" });
      return res.end(pages[path]);
    }
    const file = normalize(join(dir, path));
    if (relative(dir, file).startsWith("..")) return res.writeHead(403).end();
    let body;
    try {
      body = readFileSync(file);
    } catch {
      return res.writeHead(404, { "content-type": "text/plain" }).end("404");
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  server.unref();
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    dir,
    requests,
    async close() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r()));
      removeDir(dir);
    },
  };
}

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/** GET a JSON route of the mock. */
export async function mockGet(mockUrl, path) {
  const r = await fetch(`${mockUrl}${path}`);
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** POST /_mock/faults (a partial update); resolves the new state. */
export async function setFaults(mockUrl, faults) {
  const r = await fetch(`${mockUrl}/_mock/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(faults),
  });
  if (!r.ok) throw new Error(`POST /_mock/faults ${JSON.stringify(faults)}: ${r.status} ${await r.text()}`);
  return r.json();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until `ok(value)`; throws with the last value after `timeout` ms. */
export async function waitFor(what, fn, ok, { timeout = 30_000, interval = 100 } = {}) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 800)}`);
    await sleep(interval);
  }
}

/** Chromium with a profile directory of ours (so its files can be searched afterwards). */
export function launchPersistent(userDataDir, options = {}) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    ...options,
  });
}
