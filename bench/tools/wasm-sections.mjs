// Where the wasm's bytes are: section sizes (raw and gzip), the largest function bodies, how
// much of the data section is text (messages), and the import/export counts. A quick stand-in
// for `twiggy top` when the release build carries no names.
// Usage: node bench/tools/wasm-sections.mjs [path/to/x.wasm]   (default pkg/autumn_track_bg.wasm)
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const path = process.argv[2] || new URL("../../pkg/autumn_track_bg.wasm", import.meta.url);
const buf = readFileSync(path);
let p = 8;
const leb = () => {
  let r = 0, s = 0, b;
  do {
    b = buf[p++];
    r |= (b & 0x7f) << s;
    s += 7;
  } while (b & 0x80);
  return r >>> 0;
};
const NAMES = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "datacount", "tag"];
const rows = [];
let code, data, imports = 0, exports = 0;
while (p < buf.length) {
  const id = buf[p++];
  const size = leb();
  const start = p;
  let name = NAMES[id] ?? `id${id}`;
  if (id === 0) {
    const n = leb();
    name = `custom:${buf.subarray(p, p + n).toString()}`;
  }
  if (id === 2) imports = leb();
  if (id === 7) exports = leb();
  if (id === 10) code = [start, start + size];
  if (id === 11) data = [start, start + size];
  rows.push({ name, raw: size, gzip: gzipSync(buf.subarray(start, start + size), { level: 9 }).length });
  p = start + size;
}
const total = { raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
console.log(`${String(path)}: ${total.raw} bytes, ${total.gzip} gzip; ${imports} imports, ${exports} exports`);
console.log("section".padEnd(24) + "raw".padStart(9) + "gzip (alone)".padStart(14));
for (const r of rows) console.log(r.name.padEnd(24) + String(r.raw).padStart(9) + String(r.gzip).padStart(14));

if (code) {
  p = code[0];
  const n = leb();
  const sizes = [];
  for (let i = 0; i < n; i++) {
    const sz = leb();
    sizes.push({ i, sz });
    p += sz;
  }
  sizes.sort((a, b) => b.sz - a.sz);
  const sum = sizes.reduce((a, b) => a + b.sz, 0);
  const top = sizes.slice(0, 15);
  console.log(`\n${n} function bodies, ${sum} bytes; the 15 largest (defined-function index: bytes):`);
  console.log("  " + top.map((x) => `#${x.i}: ${x.sz}`).join(", "));
  const top20 = sizes.slice(0, 20).reduce((a, b) => a + b.sz, 0);
  console.log(`  the 20 largest hold ${((100 * top20) / sum).toFixed(0)}% of the code; bodies over 1 KB: ${sizes.filter((x) => x.sz > 1024).length}`);
}
if (data) {
  const d = buf.subarray(data[0], data[1]);
  let text = 0;
  for (const b of d) if (b >= 0x20 && b < 0x7f) text++;
  const strings = d.toString("latin1").match(/[\x20-\x7e]{12,}/g) || [];
  const sLen = strings.reduce((a, s) => a + s.length, 0);
  console.log(`\ndata: ${d.length} bytes, ${text} printable; ${strings.length} runs of 12+ printable chars = ${sLen} bytes (${gzipSync(Buffer.from(strings.join("\n")), { level: 9 }).length} gzip) — messages, field names`);
}
