#!/usr/bin/env bash
# Builds the publishable package: the release wasm (opt-level z, LTO, wasm-opt -Oz from npm
# binaryen 132 — never Debian's binaryen, whose wasm-opt breaks the externref table) and its
# --target web glue in pkg/, which the entry modules in js/ load per runtime.
# Usage: scripts/build.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

profile=--release
[ "${1:-}" = "--dev" ] && profile=--dev

if [ "$profile" = --release ]; then
  ver=$(wasm-opt --version 2>/dev/null || true)
  case "$ver" in
    *"version 132"*|*"version 13"[3-9]*|*"version 1"[4-9][0-9]*) ;;
    *) echo "build: wasm-opt from npm binaryen >= 132 is required (found: ${ver:-none}); run scripts/setup.sh" >&2; exit 1 ;;
  esac
fi

# Two builds of one crate: pkg/ for browsers (what a page downloads), pkg/server/ for Node and
# Workers, which adds the Cloudflare Queues consumer and the route's answer rules (feature
# `server`). --mode no-install: a missing or mismatched wasm-bindgen fails loudly instead of a
# silent multi-minute install into a cache.
build() { # OUT_DIR [cargo args…]
  local out=$1; shift
  wasm-pack build --target web --out-dir "$out" --out-name autumn_track --mode no-install \
    --no-pack $profile . "$@" >&2
  rm -f "$out"/.gitignore "$out"/package.json "$out"/README.md
  # `[Symbol.dispose]` needs TypeScript's esnext.disposable lib; users on default libs would get
  # a type error from our .d.ts. The method stays at run time; `free()` is the typed way.
  sed -i '/\[Symbol.dispose\]()/d' "$out"/autumn_track.d.ts
  # The panic-recovery machinery (src/js/panic.rs) declares wasm-bindgen's private
  # `__wbg_reset_state` in the .d.ts; it is not exported.
  sed -i '/^declare function __wbg_reset_state(): void;$/,+1d' "$out"/autumn_track.d.ts
}
rm -rf pkg
build pkg/server -- --features server
mv pkg/server /tmp/autumn-track-server.$$
build pkg
mv /tmp/autumn-track-server.$$ pkg/server

# Ship the JavaScript minified (the wasm already is): it is what a browser downloads, and what a
# bundler would make of it anyway. Types stay in the .d.ts files.
if [ "$profile" = --release ]; then
  shopt -s nullglob
  for f in pkg/autumn_track.js pkg/server/autumn_track.js pkg/snippets/*/js/*.js pkg/server/snippets/*/js/*.js; do
    esbuild --minify --format=esm --target=es2020 --log-level=warning "$f" --outfile="$f" --allow-overwrite
  done
fi

ls -l pkg/autumn_track_bg.wasm pkg/autumn_track.js pkg/server/autumn_track_bg.wasm >&2
