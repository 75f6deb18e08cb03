#!/usr/bin/env bash
# Panic recovery: builds the test-panic variant (tests/panic/build.sh, never published) and
# runs its Node and Chromium suites against autumn-mock. Prints node:test TAP.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cargo build -q --release -p autumn-mock
bash tests/panic/build.sh
node --test --test-reporter=tap tests/panic/
