#!/usr/bin/env bash
# Set up, build the lab page (release) and serve it on 127.0.0.1.
#
# Usage: scripts/lab.sh
#   LNLAB_PORT  port to listen on (default 8080)
#
# dist/ is served by Python's http.server rather than `trunk serve`: Trunk's
# server injects a live-reload script that keeps a WebSocket open and
# rebuilds on every file change, which competes with the training for the
# CPU. A plain static server serves exactly the files the tests ran against,
# and sends .wasm as application/wasm, which streaming compilation requires.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'lab: %s\n' "$*" >&2; }

port="${LNLAB_PORT:-8080}"
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    log "LNLAB_PORT='$port' is not a port number; set it to an integer from 1 to 65535"
    exit 2
fi

# Check the port before the build, which takes minutes from clean.
if ! python3 - "$port" <<'EOF'
import socket
import sys

with socket.socket() as probe:
    try:
        probe.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError as error:
        sys.exit(f"lab: cannot listen on 127.0.0.1:{sys.argv[1]} ({error.strerror}); set LNLAB_PORT to a free port")
EOF
then
    exit 1
fi

scripts/setup.sh
scripts/build-web.sh

log "serving dist/ at http://127.0.0.1:$port/"
log "open http://127.0.0.1:$port/ in a browser; with WebGPU (Chrome or Edge, for example) the page trains on the GPU, otherwise on the CPU"
log "press Ctrl-C to stop"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory dist
