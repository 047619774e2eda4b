"""How good is a GPT? One table of baselines on the same val split: uniform, unigram, bigram and trigram counts,
a neural bigram trained with tensorlite, and a GPT checkpoint when given.

    python examples/baselines.py [--data PATH] [--ckpt out-char-gpt]

The neural bigram is one Embedding(V, V): row i holds the logits of the token after token i, which is exactly
what the count bigram estimates, so after training both should agree (within 0.02 nats).
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import tensorlite as tl  # noqa: E402
import tensorlite.functional as F  # noqa: E402
from cli_common import run_cli  # noqa: E402
from gpt import NGramModel, TextDataset, evaluate, load_model, load_text, make_tokenizer, metrics  # noqa: E402
from gpt.data import DEFAULT_DATA  # noqa: E402


def neural_bigram(train, val, vocab_size, steps=600, batch=8192, lr=0.5, seed=0):
    """Train Embedding(V, V) on (token, next token) pairs of the train split; mean val loss in nats."""
    tl.manual_seed(seed)
    table = tl.nn.Embedding(vocab_size, vocab_size)
    table.weight.data[...] = 0            # start from uniform predictions
    opt = tl.optim.AdamW(table.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        opt.param_groups[0]["lr"] = tl.optim.warmup_cosine_lr(step, lr, lr / 100, 0, steps)
        at = rng.integers(0, len(train) - 1, batch)
        loss = F.cross_entropy(table(tl.tensor(train[at])), tl.tensor(train[at + 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tl.no_grad():
        return float(F.cross_entropy(table(tl.tensor(val[:-1])), tl.tensor(val[1:])).item())


def baselines(text, tokenizer, ckpt=None, bigram_steps=600, k=0.01):
    """Rows of (name, metrics dict) on the val split."""
    ds = TextDataset(text, tokenizer, block_size=8)
    train, val = ds.splits["train"], ds.splits["val"]
    V = tokenizer.vocab_size
    rows = [("uniform (ln V)", metrics(math.log(V)))]
    rows += [(f"{name} counts (add-{k})", NGramModel(n, V, k=k).fit(train).evaluate(val))
             for n, name in ((1, "unigram"), (2, "bigram"), (3, "trigram"))]
    rows.append(("neural bigram (tensorlite)", metrics(neural_bigram(train, val, V, steps=bigram_steps))))
    if ckpt:
        model, ckpt_tokenizer = load_model(ckpt)
        gpt_ds = TextDataset(text, ckpt_tokenizer, model.config.block_size)
        rows.append((f"GPT {ckpt}, 50 random batches", evaluate(model, gpt_ds, "val", eval_iters=50)))
        rows.append((f"GPT {ckpt}, whole val split", evaluate(model, gpt_ds, "val", eval_iters=None,
                                                              batch_size=64)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--ckpt", help="a train_char_gpt.py out-dir to evaluate too")
    parser.add_argument("--tokenizer", choices=["char", "byte"], default="char")
    parser.add_argument("--bigram-steps", type=int, default=600)
    args = parser.parse_args(argv)
    text = load_text(args.data)
    tokenizer = make_tokenizer(args.tokenizer, text)
    rows = baselines(text, tokenizer, args.ckpt, args.bigram_steps)
    print(f"val split of {args.data}, vocabulary {tokenizer.vocab_size}")
    print(f"{'model':36s} {'loss (nats)':>11s} {'perplexity':>11s} {'bits/char':>10s}")
    for name, m in rows:
        print(f"{name:36s} {m['loss']:11.4f} {m['perplexity']:11.2f} {m['bpc']:10.3f}")
    return rows


if __name__ == "__main__":
    run_cli(main)
