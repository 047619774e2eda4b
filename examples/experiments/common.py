"""What the experiments share: flags, data, a small training loop, tables and figures."""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import tensorlite as tl  # noqa: E402
from gpt import GPT, GPTConfig, TextDataset, evaluate, load_text, make_tokenizer  # noqa: E402
from gpt.data import DEFAULT_DATA  # noqa: E402


def parser(description, default_png):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small setting that runs in seconds (the tests use it)")
    p.add_argument("--out", default=os.path.join("experiments-out", default_png), help="where to write the PNG")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=0)
    return p


def shakespeare(path, block_size, chars=None):
    """(dataset, tokenizer) of a text file, optionally only its first `chars` characters."""
    text = load_text(path)[:chars]
    tokenizer = make_tokenizer("char", text)
    return TextDataset(text, tokenizer, block_size), tokenizer


def small_gpt(vocab_size, seed=0, **overrides):
    tl.manual_seed(seed)
    config = dict(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=64, bias=False)
    return GPT(GPTConfig(**{**config, **overrides}))


def train(model, dataset, steps, batch_size=16, lr=3e-3, seed=0, eval_every=None, eval_iters=4):
    """AdamW steps on random batches; returns the train loss of every step (and val losses when eval_every)."""
    rng = np.random.default_rng(seed)
    opt = model.configure_optimizers(0.1, lr, (0.9, 0.99))
    losses, val = [], []
    for step in range(steps):
        _, loss = model(*dataset.get_batch("train", batch_size, rng))
        opt.zero_grad()
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if eval_every and (step + 1) % eval_every == 0:
            val.append((step + 1, val_loss(model, dataset, batch_size, eval_iters)))
    return (losses, val) if eval_every else losses


def val_loss(model, dataset, batch_size=16, eval_iters=8, seed=1234):
    return evaluate(model, dataset, "val", eval_iters, batch_size, seed=seed)["loss"]


def smooth(values, width=20):
    values = np.asarray(values, dtype=float)
    width = max(1, min(width, len(values)))
    return np.convolve(values, np.ones(width) / width, mode="valid")


def figure(n_panels, width=5.0, height=3.6):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return fig, axes[0]


def save(fig, path):
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def table(headers, rows):
    widths = [max(len(str(h)), *(len(_fmt(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).rjust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(_fmt(v).rjust(w) for v, w in zip(r, widths)))


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)
