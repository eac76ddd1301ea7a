#!/usr/bin/env bash
# Run the benchmark suite and print plain text for docs/benchmarks.md. It
# measures the training throughput of three models (small, standard, large,
# each with batch 16, 4 heads, Pre-LN, AdamW, Moby-Dick). The paths are the
# native CPU reference, PyTorch (when a Python with torch is found), the
# native GPU path, and the page in headless Chromium. It also prints the
# machine, the page's wasm size and its time to the first chart.
#
# Usage: scripts/bench.sh
#
# Builds the bench_train example but installs nothing. Needs what
# scripts/setup.sh installs (the corpus, lavapipe, Chromium, node_modules)
# and a page built by scripts/build-web.sh in dist/. PyTorch figures need
# LNLAB_TORCH_PYTHON, or /work/torchenv/bin/python, to be a Python with torch
# and safetensors; without one they are skipped. Takes about 5 minutes on
# 2 cores. Run it by hand on an otherwise idle machine: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

torch_python="${LNLAB_TORCH_PYTHON:-/work/torchenv/bin/python}"

# wgpu picks lavapipe through Vulkan; a GL adapter would not be
# WebGPU-compliant. Vulkan's loader warns without a runtime directory.
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

section() { printf '\n== %s\n' "$*"; }

# Prints two lists of rates with their medians, then the ratio of the
# medians: compare_medians PREFIX NAME_A "RATES_A" NAME_B "RATES_B".
compare_medians() {
    python3 - "$@" <<'PY'
import statistics
import sys

prefix, name_a, rates_a, name_b, rates_b = sys.argv[1:6]
a, b = [float(x) for x in rates_a.split()], [float(x) for x in rates_b.split()]
if not a or not b:
    print(f"{prefix}: no ratio, {name_a if not a else name_b} has no rates")
    sys.exit(0)
for name, rates in ((name_a, a), (name_b, b)):
    print(f"{prefix}: {name} {' '.join(f'{x:.2f}' for x in rates)} steps/s, median {statistics.median(rates):.2f}")
print(f"{prefix}: {name_a} / {name_b} = {statistics.median(a) / statistics.median(b):.3f} (medians)")
PY
}
load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# Prints a command, then runs it.
run() {
    printf '$ %s\n' "$*"
    "$@"
}

if [ ! -s data/moby-dick.txt ]; then
    echo "bench: data/moby-dick.txt not found; fetch it with scripts/fetch-corpus.sh" >&2
    exit 1
fi

echo "lnlab benchmark suite, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory"
echo "system:  $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r), $(rustc --version)"
echo "source:  $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
echo "load average (1, 5, 15 min) at start: $(load_average)"

echo "building the bench_train example (release)" >&2
cargo build --release --quiet --example bench_train

# The PyTorch runs follow the native ones directly, so that both share the
# machine's state as closely as one suite run allows.
for threads in 1 2; do
    section "native CPU reference, $threads thread(s)"
    run cargo run --release --quiet --example bench_train -- --model small --placement pre --warmup 3 --steps 100 --threads "$threads"
    run cargo run --release --quiet --example bench_train -- --model standard --placement pre --warmup 3 --steps 30 --threads "$threads"
    run cargo run --release --quiet --example bench_train -- --model large --placement pre --warmup 1 --steps 5 --threads "$threads"
done

section "PyTorch, float32 on the CPU"
if [ -x "$torch_python" ] && "$torch_python" -c 'import torch, safetensors' 2>/dev/null; then
    for threads in 1 2; do
        run "$torch_python" scripts/torch_bench.py --threads "$threads"
    done
else
    echo "skipped: $torch_python is not a Python with torch and safetensors; set LNLAB_TORCH_PYTHON"
fi

section "head to head on the standard preset: lnlab and PyTorch in turn"
# Run one after the other, seven times each, each going first in turn. A
# shared virtual machine's speed drifts by 10% or more within minutes, and
# alternating runs expose both programs to it alike. The medians are
# compared.
if [ -x "$torch_python" ] && "$torch_python" -c 'import torch, safetensors' 2>/dev/null; then
    rate() { awk '{ print $3 }'; }
    for threads in 1 2; do
        lnlab_rates=()
        torch_rates=()
        lnlab_once() { lnlab_rates+=("$(cargo run --release --quiet --example bench_train -- --model standard --placement pre --warmup 3 --steps 30 --threads "$threads" | rate)"); }
        torch_once() { torch_rates+=("$("$torch_python" scripts/torch_bench.py --threads "$threads" --models standard --warmup 3 --steps 30 | tail -n 1 | rate)"); }
        for round in 1 2 3 4 5 6 7; do
            if [ $((round % 2)) -eq 1 ]; then
                lnlab_once
                torch_once
            else
                torch_once
                lnlab_once
            fi
        done
        compare_medians "$threads thread(s)" lnlab "${lnlab_rates[*]}" PyTorch "${torch_rates[*]}"
    done
else
    echo "skipped: $torch_python is not a Python with torch and safetensors; set LNLAB_TORCH_PYTHON"
fi

# On lavapipe the large model would take about 25 s per step (estimated
# from 16 times the standard model's work), so the suite leaves it out.
section "native GPU path (WGSL through wgpu)"
run cargo run --release --quiet --example bench_train -- --backend gpu --model small --placement pre --warmup 1 --steps 5
run cargo run --release --quiet --example bench_train -- --backend gpu --model standard --placement pre --warmup 1 --steps 3
echo "large: skipped, about 25 s per step (estimated) on a software adapter"

section "page in headless Chromium"
if [ -d node_modules/playwright-core ] && ls dist/*.wasm >/dev/null 2>&1; then
    run node scripts/bench-page.mjs

    # The page's CPU path against the native one on 1 thread, standard
    # model, in alternating runs as above. The page's rate leaves out its
    # final evaluation, as the native benchmark does.
    section "head to head: page CPU path and native on 1 thread, standard model, 5 alternating runs each"
    page_rates=()
    native_rates=()
    page_where="nowhere: no page run gave a rate"
    # A failed page run, or one without a rate, is named and left out.
    page_once() {
        local line rate
        line=$(node scripts/bench-page.mjs --no-webgpu --model standard | grep '^standard') || line=
        rate=$(sed -n 's/.*without it \([0-9.]*\) steps\/s.*/\1/p' <<<"$line")
        if [ -z "$rate" ]; then
            echo "page run left out, no rate: ${line:-bench-page.mjs failed}"
            return
        fi
        page_rates+=("$rate")
        page_where=$(sed -n 's/.* on page WebAssembly (SIMD128) \(.*\), Chromium.*/\1/p' <<<"$line")
    }
    native_once() { native_rates+=("$(cargo run --release --quiet --example bench_train -- --model standard --placement pre --warmup 3 --steps 30 --threads 1 | awk '{ print $3 }')"); }
    for round in 1 2 3 4 5; do
        if [ $((round % 2)) -eq 1 ]; then
            page_once
            native_once
        else
            native_once
            page_once
        fi
    done
    echo "the page trained $page_where"
    compare_medians "standard" page "${page_rates[*]}" "native 1 thread" "${native_rates[*]}"
else
    echo "skipped: dist/ or node_modules/ is missing; run scripts/setup.sh and scripts/build-web.sh"
fi

echo
echo "load average (1, 5, 15 min) at end: $(load_average)"
