"""Attention maps of a trained checkpoint: one PNG grid, layers x heads, the prompt's characters on both axes.

    python examples/visualize_attention.py --out-dir out-char-gpt --prompt "ROMEO:"

The probabilities are recomputed from the model's own weights (ln_1 and c_attn of each block), so the model code
stays free of inspection hooks.
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


@tl.no_grad()
def attention_maps(model, idx):
    """(n_layer, n_head, T, T) causal attention probabilities for one sequence idx (1, T)."""
    cfg = model.config
    T = idx.shape[1]
    x = model.transformer.wte(idx)
    pos = model.positions(0, T, idx.device)
    x = x + pos if pos is not None else x
    maps = []
    for block in model.transformer.h:
        q, k, _ = (block.attn.heads(t) for t in block.attn.c_attn(block.ln_1(x)).split(cfg.n_embd, axis=2))
        scores = (q @ k.swapaxes(-1, -2)) * (1.0 / np.sqrt(cfg.n_embd // cfg.n_head))
        scores = scores + tl.tensor(F.causal_mask(np, T, T, np.float32))
        maps.append(F.softmax(scores).numpy()[0])             # (H, T, T)
        x = block(x)
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
