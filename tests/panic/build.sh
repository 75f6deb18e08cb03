#!/usr/bin/env bash
# Builds the *test* variant of the package, with the cargo feature `test-panic` (a way to make
# the wasm panic on request: src/js/panic.rs), into target/panic-pkg/{pkg,pkg/server,js} — the
# same layout as the published package, so the real entry modules run against it. Never
# published: scripts/build.sh (pkg/) never enables the feature. Own target dir, so it never
# races the release build's artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
out=target/panic-pkg
rm -rf "$out"
mkdir -p "$out/js"
# OUT_DIR FEATURES: one build, bindgen and the release build's wasm-opt flags (Cargo.toml,
# package.metadata.wasm-pack).
one() {
  CARGO_TARGET_DIR=target/panic cargo build -q --release --lib --target wasm32-unknown-unknown --features "$2"
  wasm-bindgen target/panic/wasm32-unknown-unknown/release/autumn_track.wasm \
    --out-dir "$1" --target web --out-name autumn_track
  wasm-opt -Oz --converge --low-memory-unused --strip-producers --strip-target-features --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-mutable-globals \
    "$1/autumn_track_bg.wasm" -o "$1/autumn_track_bg.wasm"
}
one "$out/pkg" test-panic
one "$out/pkg/server" test-panic,server
cp js/*.js "$out/js/"
echo "built $out" >&2
