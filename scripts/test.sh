#!/usr/bin/env bash
# Set up everything, then run every test. The native test suite covers unit,
# integration, GPU kernel (on lavapipe) and command-line tests. Then come a
# build of the library for WebAssembly, a release build of the page, and the
# browser tests in headless Chromium (WebGPU on SwiftShader, then the CPU
# fallback).
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

echo "== page build (Trunk, release)" >&2
scripts/build-web.sh

# The test files start their own static server on 127.0.0.1 and their own
# Chromium processes, and close them when they finish or fail. One file at a
# time, because two SwiftShader browsers on two cores slow each other down.
echo "== browser tests (node --test tests/e2e/)" >&2
node --test --test-concurrency=1 tests/e2e/
