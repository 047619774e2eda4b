"""Why attention divides by sqrt(d): without it, scores grow with the head size and softmax saturates.

At initialisation (q, k with unit-variance entries), q.k has variance d: the rows of softmax(q k^T) collapse to
one-hot as d grows (entropy -> 0, largest probability -> 1), and a one-hot softmax passes almost no gradient.
Then two small GPTs with one wide head train with and without the scale.
    python examples/experiments/attention_scaling.py [--quick]
"""
import numpy as np

from common import figure, parser, save, shakespeare, small_gpt, smooth, table, train

import tensorlite.functional as F


def row_statistics(d, scaled, T=64, samples=8, seed=0):
    """Mean entropy and mean largest probability of softmax rows of random (T, d) q and k."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, samples, T, d))
    s = q @ k.transpose(0, 2, 1) / (np.sqrt(d) if scaled else 1.0)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    entropy = -(p * np.log(np.maximum(p, 1e-30))).sum(-1)
    return float(entropy.mean()), float(p.max(-1).mean())


def unscaled_attention(q, k, v):
    """Causal attention with raw q.k scores (scale 1 instead of 1/sqrt(d))."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "attention_scaling.png").parse_args(argv)
    sizes = [16, 32, 64] if args.quick else [16, 32, 64, 128, 256, 512]
    stats = {scaled: [row_statistics(d, scaled) for d in sizes] for scaled in (True, False)}
    table(["head size d", "entropy (1/sqrt d)", "entropy (no scale)", "max p (1/sqrt d)", "max p (no scale)"],
          [(d, stats[True][i][0], stats[False][i][0], stats[True][i][1], stats[False][i][1])
           for i, d in enumerate(sizes)])
    steps = 40 if args.quick else 400
    dataset, tokenizer = shakespeare(args.data, 32, chars=20000 if args.quick else None)
    curves = {}
    for scaled in (True, False):
        model = small_gpt(tokenizer.vocab_size, args.seed, n_head=1, n_embd=128 if not args.quick else 32)
        if not scaled:
            for block in model.transformer.h:
                block.attn.attend = unscaled_attention
        curves[scaled] = train(model, dataset, steps, seed=args.seed)
    table(["attention", "final train loss (mean of last 20)"],
          [("1/sqrt(d)", float(np.mean(curves[True][-20:]))), ("no scale", float(np.mean(curves[False][-20:])))])
    fig, ax = figure(3)
    for scaled, style in ((True, "o-"), (False, "s--")):
        label = "scores / sqrt(d)" if scaled else "no scaling"
        ax[0].plot(sizes, [e for e, _ in stats[scaled]], style, label=label)
        ax[1].plot(sizes, [m for _, m in stats[scaled]], style, label=label)
        ax[2].plot(smooth(curves[scaled]), label=label)
    ax[0].axhline(np.log(64), color="gray", lw=0.8, ls=":", label="uniform over 64 keys")
    for a, title, ylabel in ((ax[0], "entropy of attention rows at init", "nats"),
                             (ax[1], "largest attention probability at init", "probability"),
                             (ax[2], "training loss, one head", "loss (nats)")):
        a.set_title(title)
        a.set_ylabel(ylabel)
        a.legend(fontsize=8)
    for a in ax[:2]:
        a.set_xscale("log", base=2)
        a.set_xlabel("head size d")
    ax[2].set_xlabel("step")
    return save(fig, args.out)


if __name__ == "__main__":
    main()
