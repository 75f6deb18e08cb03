# Shared helpers for the scripts: start/stop autumn-mock, PATH.
# shellcheck shell=bash
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# start_mock VAR [args…]: builds (release) and starts autumn-mock on a free 127.0.0.1 port,
# sets VAR to its base URL and MOCK_PID to its pid. Extra args go to the mock.
start_mock() {
  local var=$1; shift
  cargo build -q --release -p autumn-mock >&2
  local out; out=$(mktemp)
  ./target/release/autumn-mock --port 0 "$@" >"$out" 2>&1 &
  MOCK_PID=$!
  local url="" i
  for i in $(seq 1 100); do
    url=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$out" | head -n1)
    [ -n "$url" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || { cat "$out" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "autumn-mock did not start" >&2; cat "$out" >&2; return 1; }
  printf -v "$var" '%s' "$url"
  export "${var?}"
}

stop_mock() {
  if [ -n "${MOCK_PID:-}" ]; then kill "$MOCK_PID" 2>/dev/null || true; wait "$MOCK_PID" 2>/dev/null || true; MOCK_PID=""; fi
}
