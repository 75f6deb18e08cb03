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
cp tests/node/*.test.mjs "$work/app/"
cd "$work/app"
echo '{"name":"node-consumer","private":true,"type":"module"}' > package.json
npm install --silent --no-audit --no-fund "$tarball"
node --test --test-reporter=tap ./*.test.mjs
