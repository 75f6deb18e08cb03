#!/usr/bin/env bash
# Runs every wasm-bindgen-test suite in one headless browser, one target at a time so that a
# failing suite does not stop the others (cargo's --no-fail-fast cannot pass through
# wasm-pack). Needs AUTUMN_MOCK_URL (the suites call a running autumn-mock).
# WebKit: WebKitGTK's MiniBrowser through WebKitWebDriver (scripts/webkit-driver.mjs), which the
# runner drives as a remote "safaridriver".
# Usage: scripts/wasm-tests.sh chrome|firefox|webkit [TARGET…]
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
browser=$1; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(browser dedicated_worker queue_browser queue_worker store_browser store_worker)
case "$browser" in
  chrome) driver=(--chrome --chromedriver /usr/bin/chromedriver) ;;
  firefox) driver=(--firefox --geckodriver "$(command -v geckodriver)") ;;
  webkit)
    # wasm-pack has no flag for it: cargo runs each suite through wasm-bindgen-test-runner, which
    # takes the driver from SAFARIDRIVER_REMOTE.
    coproc WK { exec node scripts/webkit-driver.mjs; }
    read -r url <&"${WK[0]}" || { echo "webkit-driver did not start" >&2; exit 1; }
    export SAFARIDRIVER_REMOTE=$url
    trap 'kill "$WK_PID" 2>/dev/null; wait "$WK_PID" 2>/dev/null' EXIT
    driver=() ;;
  *) echo "usage: $0 chrome|firefox|webkit [target…]" >&2; exit 2 ;;
esac
# `--features std`: wasm-bindgen-test's harness links std and its panic handler, which the
# shipped no_std build's own would clash with (Cargo.toml, feature `std`).
# The 1,000-event backlog tests take longer than the runner's default 20 s per test.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
rc=0
for t in "${targets[@]}"; do
  echo "--- $browser: $t"
  if [ "$browser" = webkit ]; then
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
      cargo test --target wasm32-unknown-unknown --features std --test "$t" || rc=1
  else
    wasm-pack test --headless --mode no-install "${driver[@]}" . --features std --test "$t" || rc=1
  fi
done
exit $rc
