#!/usr/bin/env python3
"""Compute reference values for lnlab's model with PyTorch, in float64.

This is an independent implementation of the model specification (four
LayerNorm placements, residual step dt), written from the specification and
not from the Rust code. For every checkpoint in tests/fixtures/reference/ it
runs the forward and backward pass on tests/fixtures/reference/batch.json and
writes <name>.expected.safetensors next to the checkpoint, holding:

    loss            shape [1]
    state.{i}       residual-stream state i = 0..2L, shape [B, T, d]
    state_grad.{i}  d loss / d state.{i}, shape [B, T, d]
    grad.{name}     d loss / d parameter, for every tensor of the checkpoint

State 0 is x_0 after the optional embedding LayerNorm, state 2l+1 follows
block l's attention half-step and state 2l+2 its MLP half-step. For Post-LN a
state is the output of that half-step's LayerNorm.

CI does not run this script. The test tests/torch_reference.rs compares the
Rust model with the files it writes. To regenerate them, from the repository
root:

    python3 -m venv .venv-torch && .venv-torch/bin/pip install torch safetensors numpy
    cargo run --release --example reference_inputs && .venv-torch/bin/python scripts/torch_reference.py
"""

import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference"
CONFIG_KEY = "lnlab_config"
LN_EPS = 1e-5
EXPECTED_SUFFIX = ".expected.safetensors"


def layer_norm(params, prefix, x):
    """Apply the LayerNorm whose gain and shift are `{prefix}.weight` and `{prefix}.bias`."""
    return F.layer_norm(x, (x.shape[-1],), params[f"{prefix}.weight"], params[f"{prefix}.bias"], eps=LN_EPS)


def attention(params, prefix, u, heads):
    """Causal multi-head self-attention of `u` [B, T, d]."""
    batch, positions, width = u.shape
    head_dim = width // heads
    qkv = u @ params[f"{prefix}.c_attn.weight"] + params[f"{prefix}.c_attn.bias"]
    q, k, v = qkv.split(width, dim=-1)

    # [B, T, d] -> [B, H, T, d_h]: head h owns columns h*d_h .. (h+1)*d_h.
    def by_head(m):
        return m.view(batch, positions, heads, head_dim).transpose(1, 2)

    q, k, v = by_head(q), by_head(k), by_head(v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    future = torch.ones(positions, positions, dtype=torch.bool).triu(diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    mixed = torch.softmax(scores, dim=-1) @ v
    concat = mixed.transpose(1, 2).reshape(batch, positions, width)
    return concat @ params[f"{prefix}.c_proj.weight"] + params[f"{prefix}.c_proj.bias"]


def mlp(params, prefix, u):
    hidden = F.gelu(u @ params[f"{prefix}.c_fc.weight"] + params[f"{prefix}.c_fc.bias"], approximate="tanh")
    return hidden @ params[f"{prefix}.c_proj.weight"] + params[f"{prefix}.c_proj.bias"]


def half_step(params, config, x, block, branch):
    """Apply the attention ("attn") or MLP ("mlp") residual half-step of block `block`."""
    prefix = f"h.{block}"
    if branch == "attn":
        norm, out_norm = f"{prefix}.ln_1", f"{prefix}.ln_attn_out"

        def f(u):
            return attention(params, f"{prefix}.attn", u, config["heads"])
    else:
        norm, out_norm = f"{prefix}.ln_2", f"{prefix}.ln_mlp_out"

        def f(u):
            return mlp(params, f"{prefix}.mlp", u)

    dt = config["dt"]
    placement = config["placement"]
    if placement == "post":
        return layer_norm(params, norm, x + dt * f(x))
    if placement == "pre":
        return x + dt * f(layer_norm(params, norm, x))
    if placement == "peri":
        return x + dt * layer_norm(params, out_norm, f(layer_norm(params, norm, x)))
    if placement == "none":
        return x + dt * f(x)
    raise ValueError(f"invalid placement {placement!r} in {CONFIG_KEY}; expected post, pre, peri or none")


def forward(params, config, tokens, targets):
    """Return the mean cross-entropy and the residual-stream states."""
    positions = tokens.shape[1]
    x = params["wte.weight"][tokens] + params["wpe.weight"][:positions]
    if config["embedding_ln"]:
        x = layer_norm(params, "ln_emb", x)

    states = [x]
    for block in range(config["layers"]):
        for branch in ("attn", "mlp"):
            x = half_step(params, config, x, block, branch)
            states.append(x)

    head_input = layer_norm(params, "ln_f", x) if config["placement"] in ("pre", "peri") else x
    unembedding = params["wte.weight"] if config["tied_head"] else params["lm_head.weight"]
    logits = head_input @ unembedding.T
    if config["head_bias"]:
        logits = logits + params["lm_head.bias"]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return loss, states


def expected_values(checkpoint, batch):
    with safe_open(str(checkpoint), "pt") as handle:
        config = json.loads(handle.metadata()[CONFIG_KEY])
    params = {name: t.to(torch.float64).requires_grad_() for name, t in load_file(str(checkpoint)).items()}

    shape = (batch["batch"], batch["context"])
    tokens = torch.tensor(batch["tokens"], dtype=torch.long).view(shape)
    targets = torch.tensor(batch["targets"], dtype=torch.long).view(shape)

    loss, states = forward(params, config, tokens, targets)
    for state in states:
        state.retain_grad()
    loss.backward()

    out = {"loss": loss.detach().reshape(1)}
    for i, state in enumerate(states):
        out[f"state.{i}"] = state.detach()
        out[f"state_grad.{i}"] = state.grad
    for name, tensor in params.items():
        if tensor.grad is None:
            raise RuntimeError(f"{checkpoint.name}: tensor {name} received no gradient because the model specification does not use it")
        out[f"grad.{name}"] = tensor.grad
    return config, loss.item(), {k: v.contiguous() for k, v in out.items()}


def main():
    torch.set_default_dtype(torch.float64)
    batch = json.loads((FIXTURES / "batch.json").read_text())
    checkpoints = sorted(p for p in FIXTURES.glob("*.safetensors") if not p.name.endswith(EXPECTED_SUFFIX))
    if not checkpoints:
        sys.exit(f"no checkpoints in {FIXTURES}; run `cargo run --release --example reference_inputs` first")

    for checkpoint in checkpoints:
        config, loss, tensors = expected_values(checkpoint, batch)
        target = checkpoint.with_name(checkpoint.name[: -len(".safetensors")] + EXPECTED_SUFFIX)
        save_file(tensors, str(target))
        print(f"wrote {target.relative_to(FIXTURES.parent.parent.parent)}: "
              f"{config['placement']}, dt {config['dt']}, loss {loss:.6f}")


if __name__ == "__main__":
    main()
