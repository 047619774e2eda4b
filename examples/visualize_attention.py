"""Attention maps of a trained checkpoint: one PNG grid, layers x heads, the prompt's characters on both axes.

    python examples/visualize_attention.py --out-dir out-char-gpt --prompt "ROMEO:"

The probabilities are recorded during one forward pass by swapping each block's `attend` method (the seam
gpt/model.py leaves for experiments), so the model code stays free of inspection hooks.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import tensorlite as tl  # noqa: E402
import tensorlite.functional as F  # noqa: E402
from cli_common import run_cli  # noqa: E402
from gpt import load_model  # noqa: E402


def recording_attention(maps):
    """A stand-in for CausalSelfAttention.attend that forms P explicitly, keeps P of the first sequence in
    maps, and returns P V: the same causal attention F.scaled_dot_product_attention computes in one op."""
    def attend(q, k, v):                                                       # (B, H, T, D), (B, H, S, D)
        mask = tl.tensor(F.causal_mask(q.xp, q.shape[-2], k.shape[-2], q.dtype))
        probs = F.softmax((q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(q.size(-1))) + mask, dim=-1)   # (B, H, T, S)
        maps.append(probs[0].numpy())
        return probs @ v
    return attend


@tl.no_grad()
def attention_maps(model, idx):
    """(n_layer, n_head, T, T) causal attention probabilities of the model for one sequence idx (1, T).

    Each block's `attend` (the seam gpt/model.py leaves for experiments) is swapped for a recording one during
    a single forward pass, so the maps are the ones that produced the model's output."""
    maps, blocks = [], model.transformer.h
    for block in blocks:
        block.attn.attend = recording_attention(maps)
    try:
        model(idx)
    finally:
        for block in blocks:
            del block.attn.attend                                            # back to the class's own method
    return np.stack(maps)


def plot(maps, labels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_layer, n_head = maps.shape[:2]
    fig, axes = plt.subplots(n_layer, n_head, figsize=(2.2 * n_head + 1, 2.2 * n_layer + 0.5), squeeze=False)
    ticks = [repr(c)[1:-1] for c in labels]
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(maps[layer, head], cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(len(ticks)), ticks, fontsize=7, fontfamily="monospace")
            ax.set_yticks(range(len(ticks)), ticks, fontsize=7, fontfamily="monospace")
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
    fig.suptitle("attention probabilities (row: query, column: key)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="out-char-gpt")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--output", help="PNG path (default: <out-dir>/attention.png)")
    args = parser.parse_args(argv)
    model, tokenizer = load_model(args.out_dir)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ValueError("--prompt must not be empty")
    if len(ids) > model.config.block_size:
        raise ValueError(f"the prompt has {len(ids)} tokens; this model sees at most {model.config.block_size}")
    maps = attention_maps(model, tl.tensor([ids]))
    labels = [tokenizer.decode([i]) for i in ids]
    path = plot(maps, labels, args.output or os.path.join(args.out_dir, "attention.png"))
    print(f"wrote {path} ({maps.shape[0]} layers x {maps.shape[1]} heads)")
    return path


if __name__ == "__main__":
    run_cli(main)
