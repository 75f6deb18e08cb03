// (6) Worker cold start in workerd (Miniflare, the workerd that ships with the repo's
// wrangler), measured from outside: a fresh Miniflare instance (a fresh workerd process) →
// `ready` → the first response. Each Worker is bundled by esbuild the way wrangler does
// (conditions workerd/worker/browser, ESM, the .wasm left as a CompiledWasm module).
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { BENCH, REPO, removeDir } from "./util.mjs";

export const VARIANTS = [
  { id: "empty", entry: "empty.js", what: "empty Worker (answers at once)" },
  { id: "rawFetch", entry: "raw-fetch.js", what: "one bare fetch() to the mock" },
  { id: "oursLoad", entry: "ours-load.js", what: "autumn-track imported, not used (module load only)" },
  { id: "ours", entry: "ours.js", what: "autumn-track: new tracker + first track()" },
  { id: "autumnJs", entry: "autumn-js.js", what: "autumn-js: new Autumn + first track()" },
];

const COMPATIBILITY_DATE = "2025-09-01";

export async function importMiniflare() {
  // The miniflare (and workerd) that the repo's wrangler uses.
  const require = createRequire(join(REPO, "node_modules/wrangler/package.json"));
  return import(pathToFileURL(require.resolve("miniflare")).href);
}

/** Bundles each variant into its own dir; returns { dir, variants: [{ ...v, outDir, bytes }] }. */
export async function buildWorkers(snapDir) {
  const dir = mkdtempSync(join(tmpdir(), "autumn-bench-workers-"));
  const variants = [];
  for (const v of VARIANTS) {
    const outDir = join(dir, v.id);
    mkdirSync(outDir, { recursive: true });
    const r = await esbuild.build({
      entryPoints: [join(BENCH, "entries/worker", v.entry)],
      bundle: true,
      format: "esm",
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      target: "es2022",
      minify: true,
      outfile: join(outDir, "index.js"),
      alias: { "autumn-track": join(snapDir, "js/workerd.js") },
      logLevel: "silent",
      metafile: true,
      plugins: [
        {
          name: "wasm-module",
          setup(build) {
            // `import m from "…/x.wasm"` stays an import of a file next to the bundle, which
            // Miniflare's CompiledWasm rule hands over as a WebAssembly.Module (as wrangler's does).
            build.onResolve({ filter: /\.wasm$/ }, (a) => {
              const src = join(a.resolveDir, a.path);
              const name = src.split("/").pop();
              copyFileSync(src, join(outDir, name));
              return { path: `./${name}`, external: true };
            });
          },
        },
      ],
    });
    const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
    variants.push({ ...v, outDir, bytes });
  }
  return { dir, variants };
}

/** The Worker's modules, entry first, as `wrangler dev` hands them to Miniflare (with their
 *  contents). Not `modules: true` + `scriptPath`: then Miniflare parses the bundle with acorn in
 *  Node to find its imports before workerd starts — 0.3–0.5 ms per KB of minified JS that no
 *  deployed Worker (and no `wrangler dev`) pays, and that the old figures included. */
function modulesOf(v) {
  const files = readdirSync(v.outDir).filter((f) => f !== "index.js");
  return ["index.js", ...files].map((f) => ({
    type: f.endsWith(".wasm") ? "CompiledWasm" : "ESModule",
    path: join(v.outDir, f),
    contents: readFileSync(join(v.outDir, f)),
  }));
}

export async function coldStartOnce(Miniflare, v, mockUrl) {
  const modules = modulesOf(v);
  const t0 = performance.now();
  const mf = new Miniflare({
    modulesRoot: v.outDir,
    modules,
    compatibilityDate: COMPATIBILITY_DATE,
    cf: false, // no fetch of request.cf from Cloudflare
    bindings: { AUTUMN_SECRET_KEY: "am_sk_test_bench", MOCK_URL: mockUrl },
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
  });
  try {
    await mf.ready;
    const t1 = performance.now();
    const res = await mf.dispatchFetch("http://bench.local/");
    const text = await res.text();
    const t2 = performance.now();
    if (res.status !== 200) throw new Error(`${v.id}: the Worker answered ${res.status} ${text}`);
    return { ready: t1 - t0, firstRequest: t2 - t1, total: t2 - t0 };
  } finally {
    await mf.dispose();
  }
}

/** `rounds` rounds, each variant once per round (interleaved, so load hits them alike). */
export async function coldStart(built, mock, { rounds }) {
  const { Miniflare } = await importMiniflare();
  const runs = Object.fromEntries(built.variants.map((v) => [v.id, []]));
  const before = await mock.recorded();
  // One unmeasured start first: the first workerd of a run pays for disk caches.
  await coldStartOnce(Miniflare, built.variants[0], mock.url);
  for (let r = 0; r < rounds; r++) {
    for (const v of built.variants) runs[v.id].push(await coldStartOnce(Miniflare, v, mock.url));
  }
  const recorded = (await mock.recorded()) - before;
  const expected = rounds * built.variants.filter((v) => !["empty", "oursLoad"].includes(v.id)).length;
  if (recorded !== expected) throw new Error(`the mock recorded ${recorded} events, expected ${expected}`);
  return { runs, bundles: Object.fromEntries(built.variants.map((v) => [v.id, v.bytes])) };
}

export const cleanup = (built) => removeDir(built?.dir);
