#!/usr/bin/env bash
# Install what lnlab needs to build and test, skipping whatever is already
# present: Debian packages, the wasm32 Rust target, and the default corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

apt_packages=()
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_packages+=(fonts-dejavu-core)
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
# lavapipe: a software Vulkan adapter, so the WGSL kernels run natively
# without a GPU.
[ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || apt_packages+=(mesa-vulkan-drivers libvulkan1)
if [ ${#apt_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${apt_packages[*]}; install them as root (apt-get install ${apt_packages[*]})"
        exit 1
    fi
    log "installing ${apt_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is missing; install Rust with rustup first"
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
fi

scripts/fetch-corpus.sh
log "done"
