#!/usr/bin/env bash
# Runs every wasm-bindgen-test suite in one headless browser, one target at a time so that a
# failing suite does not stop the others (cargo's --no-fail-fast cannot pass through
# wasm-pack). Needs AUTUMN_MOCK_URL (the suites call a running autumn-mock).
# Usage: scripts/wasm-tests.sh chrome|firefox [TARGET…]
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
browser=$1; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(browser dedicated_worker queue_browser queue_worker store_browser store_worker)
case "$browser" in
  chrome) driver=(--chrome --chromedriver /usr/bin/chromedriver) ;;
  firefox) driver=(--firefox --geckodriver "$(command -v geckodriver)") ;;
  *) echo "usage: $0 chrome|firefox [target…]" >&2; exit 2 ;;
esac
# The 1,000-event backlog tests take longer than the runner's default 20 s per test.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
rc=0
for t in "${targets[@]}"; do
  echo "--- $browser: $t"
  wasm-pack test --headless --mode no-install "${driver[@]}" . --test "$t" || rc=1
done
exit $rc
