#!/usr/bin/env bash
# The published types (js/index.d.ts, hand-written: the wasm glue's .d.ts in pkg/ is internal):
# TypeScript users' code type-checks and their mistakes do not (usage.ts, delivery.ts); the
# types match what the entries export and what the Rust core and the JavaScript driver, route
# and consumer produce (api.mjs, which loads js/node.js: pkg/ must be built); and the public
# types, printed without comments, match the committed snapshot (UPDATE=1 rewrites it).
set -euo pipefail
cd "$(dirname "$0")"
[ -f ../../pkg/server/autumn_track.js ] || { echo "pkg/ is missing: run scripts/build.sh" >&2; exit 1; }
../../node_modules/.bin/tsc -p tsconfig.json
echo "tsc: usage.ts and delivery.ts type-check (expected errors included)"
node api.mjs
