#!/usr/bin/env bash
# Refreshes the demo's screenshots in docs/ (demo-online.png, demo-offline.png,
# demo-drained.png at 1280 px, demo-phone.png at 390 px) by running the end-to-end suite with
# SCREENSHOTS=1. Builds the package and autumn-mock first when they are missing.
# Usage: scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ -f pkg/autumn_track_bg.wasm ] || bash scripts/build.sh
[ -x target/release/autumn-mock ] || cargo build -q --release -p autumn-mock
SCREENSHOTS=1 node --test --test-reporter=spec tests/e2e/
ls -l docs/demo-*.png
