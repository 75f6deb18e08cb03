#!/usr/bin/env bash
# Type-checks a TypeScript user of the published types, and compares the public part of the
# generated .d.ts with the committed snapshot (UPDATE=1 rewrites the snapshot).
set -euo pipefail
cd "$(dirname "$0")"
[ -f ../../pkg/autumn_track.d.ts ] || { echo "pkg/ is missing: run scripts/build.sh" >&2; exit 1; }
../../node_modules/.bin/tsc -p tsconfig.json
echo "tsc: usage.ts type-checks"
# The public API: everything before wasm-bindgen's internal InitInput/InitOutput types.
public=$(sed '/^export type InitInput/,$d' ../../pkg/autumn_track.d.ts)
if grep -nE '\bany\b' <<<"$public" | grep -v '^\s*\*'; then echo "the public types mention 'any'" >&2; exit 1; fi
if [ "${UPDATE:-}" = 1 ]; then printf '%s\n' "$public" > public-api.d.ts.snap; echo "snapshot updated"; fi
if ! diff -u public-api.d.ts.snap <(printf '%s\n' "$public"); then
  echo "the public .d.ts changed: review, then run UPDATE=1 tests/types/check.sh" >&2; exit 1
fi
echo "d.ts snapshot matches"
