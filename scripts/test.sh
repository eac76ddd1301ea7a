#!/usr/bin/env bash
# Set up everything, then run every test: the native test suite (unit,
# integration, GPU kernels on lavapipe, command line) and a build of the
# library for WebAssembly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# The GPU tests run the WGSL kernels on lavapipe, the software Vulkan
# adapter; Vulkan's loader warns without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

echo "== cargo test" >&2
cargo test --all-targets

echo "== library build for wasm32-unknown-unknown" >&2
cargo check --lib --target wasm32-unknown-unknown
