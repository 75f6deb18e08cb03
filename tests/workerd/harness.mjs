// Plumbing of the workerd suites (not a test file: node --test only runs *.test.mjs here):
// the page suite's helpers (re-exported), and bundling a Worker with wrangler and running it
// under miniflare, optionally listening on 127.0.0.1.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// The plumbing both suites share (paths, packing, commands, autumn-mock) is the page suite's.
import { REPO, MOCK_BIN, WASM, requireBuilt, tempDir, removeDir, quietEnv, run, packRepo, startMock, mockEvents, mockFaults, uid, tail, withTimeout, guarded, onAbnormalExit, childPidsNamed } from "../page/harness.mjs";
export { REPO, MOCK_BIN, WASM, requireBuilt, tempDir, removeDir, quietEnv, run, packRepo, startMock, mockEvents, mockFaults, uid, tail, withTimeout, guarded, onAbnormalExit, childPidsNamed };

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
 * tarball offline into `work/app`, writes `workerJs` as its `src/index.js` (and `wranglerToml`, if given). Resolves
 * `{ app, outDir, bundle, wranglerLog }`; `app/node_modules/autumn-track` is the installed
 * package, as a user's bundler or CDN would see it.
 */
export async function buildWorker(work, workerJs, { name = "autumn-track-workerd-test", wranglerToml = null } = {}) {
  if (!existsSync(WRANGLER_PKG)) throw new Error(`${WRANGLER_PKG} is missing: run npm install in the repo`);
  const tarball = await packRepo(work);
  const app = join(work, "app");
  mkdirSync(join(app, "src"), { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "worker-consumer", private: true, type: "module" }, null, 2));
  writeFileSync(join(app, "wrangler.toml"), wranglerToml ?? `name = "${name}"\nmain = "src/index.js"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n`);
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
 * a free 127.0.0.1 port (for a browser). Log lines go to `log` (an array). `options` are more
 * Miniflare options (e.g. `queueProducers`, `queueConsumers`). Resolves
 * `{ mf, url, workerdPids }`; `url` is the listening URL (or null).
 */
export async function startWorker(outDir, { bindings = {}, log = [], listen = false, options = {} } = {}) {
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
    ...options,
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
