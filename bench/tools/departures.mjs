// What each crate of the design's list that autumn-track does not use would add to the shipped
// wasm: bench/departures builds one export per crate (serde + serde-wasm-bindgen for a record and
// a command, gloo-net for a POST, web-sys for an IndexedDB put/get), each alone, in release with
// the package's wasm-opt flags, and this prints its gzip bytes over the baseline (an export using
// what the package's wasm has anyway: an allocator, core::fmt). The package's own way of doing each job is measured in its real build with
// names (twiggy; the README gives both).
// Usage: node bench/tools/departures.mjs      (needs cargo, the wasm32 target, wasm-bindgen)
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = fileURLToPath(new URL("../../", import.meta.url));
const crate = join(root, "bench/departures");
const wasmOpt = join(root, "node_modules/.bin/wasm-opt");
const FLAGS = ["-Oz", "--converge", "--low-memory-unused", "--strip-producers", "--strip-target-features", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-reference-types", "--enable-mutable-globals"];
const work = mkdtempSync(join(tmpdir(), "departures-"));
const target = join(work, "target");

function build(feature) {
  execFileSync("cargo", ["build", "-q", "--release", "--target", "wasm32-unknown-unknown", "--no-default-features", "--features", feature, "--manifest-path", join(crate, "Cargo.toml")], {
    env: { ...process.env, CARGO_TARGET_DIR: target },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const out = join(work, feature);
  execFileSync("wasm-bindgen", [join(target, "wasm32-unknown-unknown/release/departures.wasm"), "--out-dir", out, "--target", "web"], { stdio: "inherit" });
  execFileSync(wasmOpt, [...FLAGS, join(out, "departures_bg.wasm"), "-o", join(out, "opt.wasm")], { stdio: "inherit" });
  const wasm = readFileSync(join(out, "opt.wasm"));
  const glue = readFileSync(join(out, "departures.js"));
  return { wasm: gzipSync(wasm, { level: 9 }).length, glue: gzipSync(glue, { level: 9 }).length, raw: wasm.length };
}

/** What serde-wasm-bindgen makes of input the package's converter refuses by field. */
async function hostile(dir) {
  const g = await import(join(dir, "departures.js"));
  g.initSync({ module: readFileSync(join(dir, "departures_bg.wasm")) });
  const rec = { v: 1, key: "k1", seq: 1, customer: "cus_1", body: "{}", createdAt: 1, attempts: 0, nextAt: 1 };
  const out = {};
  const attempt = (label, input) => {
    try {
      const r = g.run(input);
      out[label] = { accepted: true, key: r.arg?.[0]?.key, customer: r.arg?.[0]?.customer };
    } catch (e) {
      out[label] = { accepted: false, error: String(e?.message ?? e).slice(0, 160) };
    }
  };
  // A lone surrogate in an id: serde-wasm-bindgen reads strings with TextDecoder semantics.
  attempt("lone surrogate in key", [{ ...rec, key: "k\uD800" }]);
  attempt("getter that throws", [Object.defineProperty({ ...rec }, "customer", { enumerable: true, get() { throw new Error("boom"); } })]);
  const cyclic = { ...rec };
  cyclic.self = cyclic;
  attempt("unknown cyclic field", [cyclic]);
  return out;
}

let serdeBehaviour;
try {
  const base = build("base");
  const rows = [];
  for (const [feature, what] of [
    ["serde", "serde + serde-wasm-bindgen: a record read, a command written"],
    ["gloo", "gloo-net (+ wasm-bindgen-futures): one POST, status and body read"],
    ["websys", "web-sys IndexedDB (+ wasm-bindgen-futures): open, put, get"],
  ]) {
    const b = build(feature);
    rows.push({ feature, what, wasmGzip: b.wasm - base.wasm, glueGzip: b.glue - base.glue, wasmRaw: b.raw - base.raw });
    if (feature === "serde") serdeBehaviour = await hostile(join(work, feature));
  }
  console.log(JSON.stringify({ base, rows, serdeBehaviour }, null, 2));
  for (const r of rows) console.log(`${r.what}: +${r.wasmGzip} B wasm gzip (+${r.wasmRaw} raw), +${r.glueGzip} B glue gzip`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
