#!/usr/bin/env python3
"""Measure PyTorch's training throughput on lnlab's benchmark models.

Trains the small, standard and large models of examples/bench_train.rs in
float32 on the CPU. The model is the forward function of
scripts/torch_reference.py, so the matrix products are the same. Training
follows the lab: the Moby-Dick corpus with a character vocabulary, batch 16,
AdamW (betas 0.9/0.95, eps 1e-8, no weight decay), gradient-norm clipping at
1.0, and a learning rate of 3e-3 after a 20-step linear warm-up. Prints one
line per model in the format of bench_train, so that scripts/bench.sh can
show both side by side:

    /work/torchenv/bin/python scripts/torch_bench.py --threads 1
    python3 scripts/torch_bench.py --threads 2 --models standard --steps 20

Needs torch, numpy and safetensors (torch_reference.py imports it). CI does
not run this script.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

# Import the reference model from this folder without leaving a __pycache__ in it.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import forward  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "data" / "moby-dick.txt"

# Model shapes as in examples/bench_train.rs; all use 4 heads and Pre-LN.
MODELS = {
    "small": {"layers": 4, "width": 32, "context": 32},
    "standard": {"layers": 8, "width": 64, "context": 64},
    "large": {"layers": 16, "width": 128, "context": 128},
}
HEADS = 4
BATCH = 16
LR = 3e-3
WARMUP = 20
# Untimed and timed steps per model when --warmup and --steps are not given:
# a few seconds each on one core of a 2-core x86_64 machine.
DEFAULT_STEPS = {"small": (3, 100), "standard": (3, 30), "large": (1, 5)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for torch.set_num_threads (default 1)")
    parser.add_argument("--models", default="small,standard,large", help="comma-separated list of small, standard, large")
    parser.add_argument("--warmup", type=int, help="untimed steps before the timed ones (default per model)")
    parser.add_argument("--steps", type=int, help="timed steps (default per model)")
    args = parser.parse_args()
    names = args.models.split(",")
    for name in names:
        if name not in MODELS:
            parser.error(f"invalid model {name!r}: expected small, standard or large")
    if args.threads < 1:
        parser.error(f"invalid --threads {args.threads}: expected 1 or more")
    if args.steps is not None and args.steps < 1:
        parser.error(f"invalid --steps {args.steps}: expected 1 or more")
    args.models = names
    return args


def flops_per_step(layers, width, context, vocab, batch):
    """Count model FLOPs per step as bench_train does: 3 × the forward matrix products (2·m·n·k each)."""
    tokens = batch * context
    block = 24 * tokens * width * width + 4 * batch * context * context * width
    return 3 * (layers * block + 2 * tokens * width * vocab)


def init_params(layers, width, context, vocab, generator):
    """Draw parameters under the checkpoint names torch_reference.forward reads: N(0, 0.02²) weights, zero biases, unit gains."""
    def normal(*shape):
        return torch.randn(*shape, generator=generator) * 0.02

    params = {"wte.weight": normal(vocab, width), "wpe.weight": normal(context, width)}
    for block in range(layers):
        prefix = f"h.{block}"
        for norm in ("ln_1", "ln_2"):
            params[f"{prefix}.{norm}.weight"] = torch.ones(width)
            params[f"{prefix}.{norm}.bias"] = torch.zeros(width)
        params[f"{prefix}.attn.c_attn.weight"] = normal(width, 3 * width)
        params[f"{prefix}.attn.c_attn.bias"] = torch.zeros(3 * width)
        params[f"{prefix}.attn.c_proj.weight"] = normal(width, width)
        params[f"{prefix}.attn.c_proj.bias"] = torch.zeros(width)
        params[f"{prefix}.mlp.c_fc.weight"] = normal(width, 4 * width)
        params[f"{prefix}.mlp.c_fc.bias"] = torch.zeros(4 * width)
        params[f"{prefix}.mlp.c_proj.weight"] = normal(4 * width, width)
        params[f"{prefix}.mlp.c_proj.bias"] = torch.zeros(width)
    params["ln_f.weight"] = torch.ones(width)
    params["ln_f.bias"] = torch.zeros(width)
    params["lm_head.weight"] = normal(vocab, width)
    params["lm_head.bias"] = torch.zeros(vocab)
    return {name: tensor.requires_grad_() for name, tensor in params.items()}


def measure(name, corpus, vocab, warmup, timed):
    """Train model `name` for warmup + timed steps and return (steps per second, GFLOP per step, parameter count)."""
    shape = MODELS[name]
    layers, width, context = shape["layers"], shape["width"], shape["context"]
    config = {
        "placement": "pre",
        "layers": layers,
        "heads": HEADS,
        "dt": 1.0,
        "embedding_ln": False,
        "tied_head": False,
        "head_bias": True,
    }
    generator = torch.Generator().manual_seed(1)
    params = init_params(layers, width, context, vocab, generator)
    optimizer = torch.optim.AdamW(params.values(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    offsets = torch.arange(context + 1)

    def step(index):
        starts = torch.randint(0, len(corpus) - context - 1, (BATCH, 1), generator=generator)
        windows = corpus[starts + offsets]
        tokens, targets = windows[:, :-1], windows[:, 1:]
        for group in optimizer.param_groups:
            group["lr"] = LR * min(1.0, (index + 1) / WARMUP)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = forward(params, config, tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        optimizer.step()

    for index in range(warmup):
        step(index)
    started = time.perf_counter()
    for index in range(warmup, warmup + timed):
        step(index)
    elapsed = time.perf_counter() - started
    parameters = sum(tensor.numel() for tensor in params.values())
    return timed / elapsed, flops_per_step(layers, width, context, vocab, BATCH) / 1e9, parameters


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not CORPUS.is_file():
        sys.exit(f"torch_bench: {CORPUS} not found; fetch it with scripts/fetch-corpus.sh")

    text = CORPUS.read_text(encoding="utf-8")
    alphabet = sorted(set(text))
    index_of = {character: i for i, character in enumerate(alphabet)}
    corpus = torch.tensor([index_of[character] for character in text], dtype=torch.long)
    backend = f"pytorch {torch.__version__} cpu, f32, {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"

    for name in args.models:
        default_warmup, default_timed = DEFAULT_STEPS[name]
        warmup = default_warmup if args.warmup is None else args.warmup
        timed = default_timed if args.steps is None else args.steps
        per_second, gflop, parameters = measure(name, corpus, len(alphabet), warmup, timed)
        print(
            f"{name:8} {'Pre-LN':8} {per_second:9.3f} steps/s {gflop * per_second:8.3f} GFLOP/s  "
            f"({gflop:.3f} GFLOP per step, {parameters} parameters, {timed} steps after {warmup} warm-up) on {backend}",
            flush=True,
        )


if __name__ == "__main__":
    main()
