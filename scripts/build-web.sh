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

# Content-Security-Policy, as a <meta> tag placed first in <head> so that it
# covers everything after it. The page loads only its own files (HTML, JS,
# wasm, CSS, favicon, moby-dick.txt) and makes no other request:
#   default-src 'self'         anything not named below: same origin only
#   script-src 'self' 'wasm-unsafe-eval' 'sha256-...'
#                              the wasm-bindgen glue file; compiling the wasm
#                              (without this, WebAssembly.instantiate throws);
#                              and the two inline scripts by hash: Trunk's
#                              loader and the loading-line script in index.html.
#                              No 'unsafe-inline' and no 'unsafe-eval'.
#   style-src 'self'           style sheets and <style> elements: lab.css only.
#   style-src-attr 'unsafe-inline'
#                              style attributes only. On wasm32, plotters
#                              0.3.7 measures each chart label in a hidden
#                              <span> with a style attribute (font, size);
#                              blocked, labels are measured in the wrong
#                              font. Nothing else sets a style attribute, and
#                              no user text is parsed as markup. Browsers
#                              without style-src-attr (Firefox before 108,
#                              per MDN's compatibility data) apply style-src
#                              instead, so there labels may sit slightly off.
#   img-src 'self' data: blob: the favicon; charts are saved through data: and
#                              blob: addresses.
#   connect-src 'self'         fetching the wasm and the corpus.
#   object-src 'none', base-uri 'none', form-action 'none'
#                              no plugins, no <base> to redirect relative URLs,
#                              no form submissions anywhere.
# frame-ancestors is ignored in a <meta> policy, and the page is meant to be
# embedded in other sites' iframes anyway, so framing stays allowed. The
# hashes depend on the scripts as Trunk wrote them, so they are computed here
# after every build. A page built by plain `trunk build` has no policy.
log "adding a Content-Security-Policy to dist/index.html"
python3 - dist/index.html <<'PY'
import base64
import hashlib
import re
import sys

path = sys.argv[1]
with open(path, encoding="utf-8") as file:
    html = file.read()

if 'http-equiv="Content-Security-Policy"' in html:
    sys.exit(f"build-web: {path} already has a Content-Security-Policy; rebuild it with trunk first")

# An inline script is a <script> without a src attribute. Browsers hash its
# text as parsed, and the HTML parser turns CRLF into LF before that.
hashes = []
for match in re.finditer(r"<script\b([^>]*)>(.*?)</script\s*>", html, re.IGNORECASE | re.DOTALL):
    if re.search(r"\bsrc\s*=", match.group(1), re.IGNORECASE):
        continue
    text = match.group(2).replace("\r\n", "\n").replace("\r", "\n")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    hashes.append("'sha256-" + base64.b64encode(digest).decode("ascii") + "'")
if not hashes:
    sys.exit(f"build-web: found no inline script in {path}; Trunk's loader should be one")

policy = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval' " + " ".join(hashes),
    "style-src 'self'",
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
])

heads = list(re.finditer(r"<head\b[^>]*>", html, re.IGNORECASE))
if len(heads) != 1:
    sys.exit(f"build-web: expected one <head> in {path}, found {len(heads)}")
end = heads[0].end()
meta = f'\n    <meta http-equiv="Content-Security-Policy" content="{policy}" />'
html = html[:end] + meta + html[end:]

# A browser looks for the charset declaration in the first 1024 bytes only.
charset = html.encode("utf-8").find(b"<meta charset")
if charset < 0 or charset > 1024 - 40:
    sys.exit(f"build-web: <meta charset> in {path} moved past the first 1024 bytes; shorten the policy")

with open(path, "w", encoding="utf-8") as file:
    file.write(html)
print(f"build-web: policy with {len(hashes)} inline script hashes: {policy}", file=sys.stderr)
PY

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
