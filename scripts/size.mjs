// Prints what a browser app downloads to call track() — the release wasm, plus the browser entry
// bundled and minified with esbuild as an app's bundler would (the wasm-bindgen glue, the
// engine's driver js/tracker.js, the stores js/store.js, TrackError) — raw, gzip -9 and brotli,
// and fails above a gzip budget. The bench (bench/lib/size.mjs) measures the same way, and the
// baselines it compares against are bundled the same way.
// Usage: node scripts/size.mjs [--budget-gzip BYTES] [--json] [--dir DIR]   (DIR: a copy of pkg/ + js/)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import * as esbuild from "esbuild";

export const sizes = (buf) => ({
  raw: buf.length,
  gzip: gzipSync(buf, { level: 9 }).length,
  brotli: brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
});

/** `{ files: [{ file, raw, gzip, brotli, parts? }], total }` for the package in `dir`. */
export async function measure(dir) {
  const wasm = { file: "pkg/autumn_track_bg.wasm", ...sizes(readFileSync(join(dir, "pkg/autumn_track_bg.wasm"))) };
  const r = await esbuild.build({
    entryPoints: [join(dir, "js/browser.js")],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022", // top-level await (the entry instantiates the wasm)
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const out = r.outputFiles[0];
  // Minified bytes of each source file in the bundle (gzip is only known for the whole).
  const inputs = Object.values(r.metafile.outputs)[0].inputs;
  const parts = Object.entries(inputs)
    .map(([f, v]) => ({ file: f.slice(f.lastIndexOf("/", f.lastIndexOf("/") - 1) + 1), minified: v.bytesInOutput }))
    .sort((a, b) => b.minified - a.minified);
  const js = { file: "js/browser.js bundle (esbuild --minify)", ...sizes(Buffer.from(out.contents)), parts };
  const files = [wasm, js];
  const total = files.reduce((t, f) => ({ file: "total", raw: t.raw + f.raw, gzip: t.gzip + f.gzip, brotli: t.brotli + f.brotli }), {
    raw: 0,
    gzip: 0,
    brotli: 0,
  });
  return { files, total };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const budget = Number(opt("--budget-gzip") ?? Infinity);
  const dir = opt("--dir") ?? fileURLToPath(new URL("../", import.meta.url));
  const { files, total } = await measure(dir);
  if (args.includes("--json")) {
    console.log(JSON.stringify({ files, total }, null, 2));
  } else {
    const kb = (n) => (n / 1024).toFixed(1).padStart(7) + " KB";
    console.log("file".padEnd(42) + "raw".padStart(10) + "gzip".padStart(10) + "brotli".padStart(10));
    for (const f of [...files, total]) {
      console.log(f.file.padEnd(42) + kb(f.raw) + kb(f.gzip) + kb(f.brotli));
      for (const p of f.parts ?? []) console.log(`  ${p.file}`.padEnd(42) + kb(p.minified) + "   (minified, in the bundle)");
    }
  }
  if (total.gzip > budget) {
    console.error(`size: ${total.gzip} bytes gzip is over the budget of ${budget}`);
    process.exit(1);
  }
}
