// (1) Shipped size: what a browser downloads to call track(), gzip -9 and brotli q11.
// Ours: measured by scripts/size.mjs (the release wasm, plus js/browser.js bundled and minified
// by esbuild: glue, driver, stores, TrackError), from the snapshot of pkg/ and js/. Baselines:
// esbuild --bundle --minify of small entry files that call just their track path
// (bench/entries/size/), the same way.
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { measure } from "../../scripts/size.mjs";
import { BENCH } from "./util.mjs";

const sizes = (buf) => ({
  raw: buf.length,
  gzip: gzipSync(buf, { level: 9 }).length,
  brotli: brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
});

export const oursSize = (snapDir) => measure(snapDir);

export const BASELINES = [
  { id: "autumn-js", entry: "autumn-js.js", what: "autumn-js `new Autumn().track()`" },
  { id: "posthog-js", entry: "posthog-js.js", what: "posthog-js `init` + `capture`" },
  { id: "segment", entry: "segment.js", what: "@segment/analytics-next `load` + `track`" },
  { id: "workbox", entry: "workbox.js", what: "workbox-background-sync `Queue.pushRequest` (queue only)" },
];

export async function baselineSize({ entry }) {
  const r = await esbuild.build({
    entryPoints: [join(BENCH, "entries/size", entry)],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    write: false,
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const out = r.outputFiles[0];
  return sizes(Buffer.from(out.contents));
}
