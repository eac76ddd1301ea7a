#!/usr/bin/env bash
# Set up everything, then run every test: the native test suite (unit,
# integration, command line) and a build of the library for WebAssembly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo test" >&2
cargo test --all-targets

echo "== library build for wasm32-unknown-unknown" >&2
cargo check --lib --target wasm32-unknown-unknown
