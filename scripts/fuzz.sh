#!/usr/bin/env bash
# Fuzzes the native core with cargo-fuzz (libFuzzer): each target in fuzz/ for FUZZ_SECONDS
# (default 30), starting from its seed corpus in fuzz/corpus/<target>/. New corpus entries go
# to a temporary copy, never into the repository. Prints one TAP line per target and node:test's
# `# pass N` / `# fail M` totals; exits non-zero when a target crashes, naming the input that
# crashed it (kept under fuzz/artifacts/<target>/, which git ignores).
#
# Stable Rust is enough: the targets run with `--sanitizer none` (natively the core has no
# `unsafe`: what there is, the allocator in src/heap.rs and src/js's statics, is wasm32's alone; so
# AddressSanitizer, which needs nightly's -Zsanitizer, would add nothing but slowness); builds
# keep debug assertions and overflow checks on, so an overflow is a crash.
#
# Usage: scripts/fuzz.sh [TARGET…]        env: FUZZ_SECONDS (30), FUZZ_KEEP_CORPUS=1 keeps the
#                                              grown corpus in the temp dir and prints its path
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${FUZZ_SECONDS:-30}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "# installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked >&2 || { echo "not ok 1 - install cargo-fuzz"; echo "# pass 0"; echo "# fail 1"; exit 1; }
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)

echo "TAP version 13"
if ! cargo fuzz build --fuzz-dir fuzz --sanitizer none >&2; then
  n=0
  for t in "${targets[@]}"; do n=$((n + 1)); echo "not ok $n - fuzz $t: build failed"; done
  echo "1..$n"; echo "# pass 0"; echo "# fail $n"
  exit 1
fi
host=$(rustc -vV | sed -n 's/^host: //p')
bin="fuzz/target/$host/release"

work=$(mktemp -d)
[ "${FUZZ_KEEP_CORPUS:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
pass=0 fail=0 n=0
for t in "${targets[@]}"; do
  n=$((n + 1))
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  seeds=0
  if [ -d "fuzz/corpus/$t" ]; then
    cp fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
  fi
  log="$work/$t.log"
  start=$(date +%s)
  # -timeout: one input taking 10 s is a hang, reported as a failure like a crash.
  "$bin/$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1))
    rate=$(( ${runs:-0} / (took > 0 ? took : 1) ))
    echo "ok $n - fuzz $t: ${runs:-0} runs in ${took} s (${rate}/s), corpus $seeds seeds -> $size"
  else
    fail=$((fail + 1))
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "not ok $n - fuzz $t: crashed after ${runs:-?} runs; input: ${input:-(none written, see log below)}"
    echo "  ---"
    # The panic message and where it happened, as YAML-ish diagnostics.
    { grep -E -A3 "panicked at" "$log" | grep -v -E "^stack backtrace|^ +[0-9]+: " | head -6
      grep -E "SUMMARY|ERROR: libFuzzer" "$log" | head -2; } | sed 's/^/  # /'
    [ -n "$input" ] && echo "  # reproduce: fuzz/target/$host/release/$t $input"
    echo "  ..."
  fi
done
[ "${FUZZ_KEEP_CORPUS:-}" = 1 ] && echo "# grown corpora kept in $work/corpus"
echo "1..$n"
echo "# tests $n"
echo "# pass $pass"
echo "# fail $fail"
[ $fail -eq 0 ]
