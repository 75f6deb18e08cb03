// (1) Shipped size: what a browser downloads to call track(), gzip -9 and brotli q11.
// Ours: the files scripts/size.mjs counts (release wasm, glue, snippets, js/browser.js, js/recover.js +
// js/error.js), from the snapshot of pkg/ and js/. Baselines: esbuild --bundle --minify of
// small entry files that call just their track path (bench/entries/size/).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { BENCH } from "./util.mjs";

const sizes = (buf) => ({
  raw: buf.length,
  gzip: gzipSync(buf, { level: 9 }).length,
  brotli: brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
});

const sum = (rows) => rows.reduce((t, r) => ({ raw: t.raw + r.raw, gzip: t.gzip + r.gzip, brotli: t.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });

export function oursSize(snapDir) {
  const snippets = readdirSync(join(snapDir, "pkg/snippets"), { recursive: true })
    .filter((f) => f.endsWith(".js"))
    .map((f) => `pkg/snippets/${f}`);
  const files = ["pkg/autumn_track_bg.wasm", "pkg/autumn_track.js", ...snippets, "js/browser.js", "js/recover.js", "js/error.js"];
  const rows = files.map((f) => ({ file: f.replace(/snippets\/[^/]+\//, "snippets/…/"), ...sizes(readFileSync(join(snapDir, f))) }));
  return { files: rows, total: sum(rows) };
}

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
