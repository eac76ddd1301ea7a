#!/usr/bin/env bash
# Install what lnlab needs to build and test, skipping whatever is already
# present: Debian packages (Node.js, fonts, lavapipe, Chromium), the wasm32
# Rust target, Trunk and the wasm-bindgen CLI, the npm tools in
# package-lock.json (wasm-opt from binaryen, playwright-core), and the
# default corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Pinned tool versions. Trunk 0.22 needs a newer rustc than this project's.
trunk_version="0.21.14"
# playwright-core 1.65 requires Node.js 20 or later.
node_min_major=20

apt_packages=()
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_packages+=(fonts-dejavu-core)
# Liberation: metric-compatible Arial, Times and Courier, so screenshots of
# the page lay text out as on a desktop browser.
[ -d /usr/share/fonts/truetype/liberation ] || apt_packages+=(fonts-liberation)
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
# lavapipe: a software Vulkan adapter, so the WGSL kernels run natively
# without a GPU.
[ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || apt_packages+=(mesa-vulkan-drivers libvulkan1)
# Chromium for the browser tests, driven by playwright-core over the DevTools
# protocol (no chromedriver needed).
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${apt_packages[*]}; install them as root (apt-get install ${apt_packages[*]})"
        exit 1
    fi
    log "installing Debian packages: ${apt_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
else
    log "Debian packages already installed (Node.js, fonts, lavapipe, Chromium)"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt "$node_min_major" ]; then
    log "Node.js $node_min_major or later is required (playwright-core 1.65), found $(node --version 2>/dev/null || echo none); install a newer nodejs package and rerun"
    exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is missing; install Rust with rustup first"
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
else
    log "Rust target wasm32-unknown-unknown already installed"
fi

# cargo install puts binaries here, and a new shell may not have it on PATH yet.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

installed_trunk="$(trunk --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed_trunk" != "$trunk_version" ]; then
    log "installing trunk $trunk_version (found: ${installed_trunk:-none}); this compiles for a few minutes"
    cargo install trunk --version "$trunk_version" --locked
else
    log "trunk $trunk_version already installed"
fi

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly,
# or Trunk stops with a version mismatch.
bindgen_version="$(awk '
    $0 == "name = \"wasm-bindgen\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
if [ -z "$bindgen_version" ]; then
    log "no wasm-bindgen package found in Cargo.lock; run 'cargo generate-lockfile' and rerun"
    exit 1
fi
installed_bindgen="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed_bindgen" != "$bindgen_version" ]; then
    log "installing wasm-bindgen-cli $bindgen_version (found: ${installed_bindgen:-none}); this compiles for a few minutes"
    # Without --locked: the CLI's own lockfile names a crate version that
    # crates.io does not serve.
    cargo install wasm-bindgen-cli --version "$bindgen_version"
else
    log "wasm-bindgen-cli $bindgen_version already installed"
fi

# npm tools: binaryen (wasm-opt 132, for Trunk) and playwright-core (browser
# tests). playwright-core drives /usr/bin/chromium and downloads no browser.
# node_modules/.package-lock.json is npm's record of the last install, so an
# install newer than both package files is up to date.
if [ ! -f node_modules/.package-lock.json ] ||
    [ package.json -nt node_modules/.package-lock.json ] ||
    { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    if [ -f package-lock.json ]; then
        log "installing npm packages from package-lock.json (npm ci)"
        npm ci --no-audit --no-fund
    else
        log "installing npm packages (npm install; no package-lock.json yet)"
        npm install --no-audit --no-fund
    fi
else
    log "npm packages already installed in node_modules"
fi

scripts/fetch-corpus.sh
log "done"
