#!/usr/bin/env bash
# `npm start`: builds the package, starts autumn-mock (the local Autumn) and the demo server,
# and prints the page's URL. No Autumn account needed. Ctrl-C stops everything.
# PORT=5173 npm start picks the demo's port (default: 5173, or a free one if taken).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-browsers
. scripts/lib.sh
bash scripts/build.sh
trap 'stop_mock; kill "${DEMO_PID:-}" 2>/dev/null || true' EXIT INT TERM
start_mock AUTUMN_URL
port=${PORT:-5173}
if node -e "require('net').createServer().once('error',()=>process.exit(1)).listen($port,'127.0.0.1',function(){this.close()})"; then :; else port=0; fi
AUTUMN_URL=$AUTUMN_URL node scripts/demo-server.mjs --port "$port" &
DEMO_PID=$!
echo "autumn-mock (the local Autumn) at $AUTUMN_URL"
echo "open the demo:"
wait "$DEMO_PID"
