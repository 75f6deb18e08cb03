#!/usr/bin/env bash
# The packed npm package, installed into a fresh temp project and imported as a user would
# (`import … from "autumn-track"`, Node >= 20, no init step), tracking against autumn-mock.
# Needs a release build in pkg/ (scripts/build.sh). Starts its own mock unless
# AUTUMN_MOCK_URL is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
[ -f pkg/autumn_track_bg.wasm ] || { echo "pkg/ is missing: run scripts/build.sh" >&2; exit 1; }
if [ -z "${AUTUMN_MOCK_URL:-}" ]; then
  trap stop_mock EXIT
  start_mock AUTUMN_MOCK_URL --auto-create-customers
fi
work=$(mktemp -d)
trap 'rm -rf "$work"; stop_mock' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/autumn-track-*.tgz)
mkdir "$work/app"
cp tests/node/*.mjs "$work/app/"
repo=$PWD
export AUTUMN_MOCK_BIN="$repo/target/release/autumn-mock"
cd "$work/app"
echo '{"name":"node-consumer","private":true,"type":"module"}' > package.json
npm install --silent --no-audit --no-fund "$tarball"
# The package's optional peer dependencies for the server queues, as a user installs them:
# linked from the repo's own node_modules (no registry needed here).
for dep in better-sqlite3 pg; do
  [ -d "$repo/node_modules/$dep" ] && ln -s "$repo/node_modules/$dep" "node_modules/$dep"
done
# NODE_BIN: another Node (scripts/test.sh runs this suite on Node 20, 22 and 24).
"${NODE_BIN:-node}" --version | sed 's/^/# node /'
"${NODE_BIN:-node}" --test --test-reporter=tap --test-concurrency=1 ./*.test.mjs
