#!/usr/bin/env bash
# Throughput benchmark of autumn-mock with wrk (keep-alive, loopback).
# Usage: tests/autumn-mock/bench/run.sh [DURATION=10s] [CONNECTIONS=64] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/../../.."   # workspace root
DUR=${1:-10s}; CONNS=${2:-64}; THREADS=${3:-2}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -p autumn-mock >&2
BIN=target/release/autumn-mock
OUT=$(mktemp)
# Default config: events past --max-events (500000) are evicted, so memory stays bounded.
"$BIN" --port 0 >"$OUT" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 50); do [ -s "$OUT" ] && break; sleep 0.1; done
URL=$(sed -n '1s/^listening on //p' "$OUT")
echo "== server $URL ($(nproc) cores), wrk -t$THREADS -c$CONNS -d$DUR"
for script in track.lua track_unique_key.lua; do
  echo "== $script"
  wrk --latency -t"$THREADS" -c"$CONNS" -d"$DUR" -s tests/autumn-mock/bench/$script "$URL"
done
echo "== /_mock/stats"
curl -s "$URL/_mock/stats"; echo
