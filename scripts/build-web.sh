#!/usr/bin/env bash
# Build the lab page into dist/ with Trunk, then print the size of the wasm
# after wasm-opt and after gzip.
#
# Usage: scripts/build-web.sh [--debug]
#   default   release build: Cargo profile "web" (Cargo.toml), then wasm-opt -Oz
#   --debug   dev profile, no wasm-opt: faster to build, slower in the browser
#
# Needs what scripts/setup.sh installs: trunk, wasm-bindgen-cli matching
# Cargo.lock, node_modules (binaryen's wasm-opt) and data/moby-dick.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'build-web: %s\n' "$*" >&2; }

mode="release"
case "${1:-}" in
    "") ;;
    --debug) mode="debug" ;;
    *)
        log "unknown option '$1'; usage: scripts/build-web.sh [--debug]"
        exit 2
        ;;
esac

# Trunk uses the wasm-opt found first on PATH when its version matches
# Trunk.toml (132, from the npm package binaryen), and cargo-installed tools.
export PATH="$PWD/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# Trunk otherwise checks crates.io for a newer Trunk on every run.
export TRUNK_SKIP_VERSION_CHECK=true
# WebAssembly SIMD (128-bit) lets LLVM vectorise the CPU kernels. Measured in
# headless Chromium 156 on 2 cores, 20 updates of an 8-layer model (width 64,
# context 64, batch 16) on the CPU path took 6.3 s instead of 11.0 s, at the
# same wasm size. A browser without WebAssembly SIMD cannot compile the
# module, and the loading line in index.html then reports that the lab failed
# to start. A RUSTFLAGS variable in the environment replaces this setting.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:+$CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS }-C target-feature=+simd128"

missing=0
for tool in trunk wasm-bindgen; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "$tool not found; install it with scripts/setup.sh"
        missing=1
    fi
done
if [ ! -x node_modules/.bin/wasm-opt ]; then
    log "node_modules/.bin/wasm-opt not found; install the npm packages with scripts/setup.sh (npm ci)"
    missing=1
fi
if [ ! -s data/moby-dick.txt ]; then
    log "data/moby-dick.txt not found; the page serves it as its default corpus, so fetch it with scripts/fetch-corpus.sh"
    missing=1
fi
if [ "$missing" -ne 0 ]; then
    exit 1
fi

# Trunk.toml sets offline = true, which Trunk passes on to cargo as --offline,
# so download the crates first. This is a no-op when they are present.
cargo fetch --quiet

trunk_args=(build)
if [ "$mode" = "release" ]; then
    trunk_args+=(--release)
fi

log "trunk ${trunk_args[*]} ($mode) into dist/"
started=$SECONDS
trunk "${trunk_args[@]}"
log "built in $((SECONDS - started)) s"

shopt -s nullglob
wasm_files=(dist/*.wasm)
shopt -u nullglob
if [ ${#wasm_files[@]} -ne 1 ]; then
    log "expected one .wasm file in dist/, found ${#wasm_files[@]}: ${wasm_files[*]:-none}"
    exit 1
fi
wasm="${wasm_files[0]}"
raw_bytes=$(wc -c <"$wasm")
gzip_bytes=$(gzip -9 -c "$wasm" | wc -c)
if [ "$mode" = "release" ]; then
    label="after wasm-opt"
else
    label="debug build, no wasm-opt"
fi
log "$(printf '%s: %d bytes (%d KiB) %s, %d bytes (%d KiB) after gzip -9' \
    "$wasm" "$raw_bytes" $((raw_bytes / 1024)) "$label" "$gzip_bytes" $((gzip_bytes / 1024)))"
