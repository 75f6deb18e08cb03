// Prints what a browser app downloads to call track() — the release wasm, its glue and the
// entry module — raw, gzip -9 and brotli, and fails above a gzip budget.
// Usage: node scripts/size.mjs [--budget-gzip BYTES] [--json]
import { readFileSync, readdirSync } from "node:fs";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

const root = new URL("../", import.meta.url);
// wasm-bindgen snippets (js/store.js, imported by the wasm) land in pkg/snippets/<crate-hash>/.
const snippets = readdirSync(new URL("pkg/snippets/", root), { recursive: true })
  .filter((f) => f.endsWith(".js"))
  .map((f) => `pkg/snippets/${f}`);
const files = ["pkg/autumn_track_bg.wasm", "pkg/autumn_track.js", ...snippets, "js/browser.js", "js/recover.js", "js/error.js"];
const args = process.argv.slice(2);
const budgetAt = args.indexOf("--budget-gzip");
const budget = budgetAt >= 0 ? Number(args[budgetAt + 1]) : Infinity;

const rows = files.map((f) => {
  const b = readFileSync(new URL(f, root));
  return {
    file: f,
    raw: b.length,
    gzip: gzipSync(b, { level: 9 }).length,
    brotli: brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
});
const total = rows.reduce((t, r) => ({ file: "total", raw: t.raw + r.raw, gzip: t.gzip + r.gzip, brotli: t.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });
if (args.includes("--json")) {
  console.log(JSON.stringify({ files: rows, total }, null, 2));
} else {
  const kb = (n) => (n / 1024).toFixed(1).padStart(7) + " KB";
  console.log("file".padEnd(30) + "raw".padStart(10) + "gzip".padStart(10) + "brotli".padStart(10));
  for (const r of [...rows, total]) console.log(r.file.replace(/snippets\/[^/]+\//, "snippets/…/").padEnd(30) + kb(r.raw) + kb(r.gzip) + kb(r.brotli));
}
if (total.gzip > budget) {
  console.error(`size: ${total.gzip} bytes gzip is over the budget of ${budget}`);
  process.exit(1);
}
