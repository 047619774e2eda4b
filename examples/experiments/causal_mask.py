"""Why the mask is lower-triangular: a model that sees the future learns to copy it and cannot generate.

Three small GPTs differ only in the attention mask: the causal one (query i sees keys j <= i), none (sees
everything) and the upper-triangular one (sees j >= i, itself and the future). The two that see the next token
drive the training loss toward zero by copying it; at generation time there is no future to copy and their text
falls apart.
    python examples/experiments/causal_mask.py [--quick]
"""
import numpy as np

from common import figure, parser, save, shakespeare, small_gpt, smooth, table, train, val_loss

import tensorlite as tl
import tensorlite.functional as F


def future_attention(q, k, v):
    """Upper-triangular mask: position i attends to j >= i (the wrong triangle)."""
    T = q.shape[-2]
    future = tl.tensor(np.where(np.triu(np.ones((T, T), dtype=bool)), 0.0, -np.inf).astype(np.float32))
    scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(q.size(-1))) + future
    return F.softmax(scores, dim=-1) @ v


MASKS = {
    "causal (lower triangle)": None,
    "no mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=False),
    "upper triangle": future_attention,
}


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "causal_mask.png").parse_args(argv)
    steps = 40 if args.quick else 500
    dataset, tokenizer = shakespeare(args.data, 32, chars=20000 if args.quick else None)
    curves, rows = {}, []
    for name, attend in MASKS.items():
        model = small_gpt(tokenizer.vocab_size, args.seed)
        if attend is not None:
            for block in model.transformer.h:
                block.attn.attend = attend
        curves[name] = train(model, dataset, steps, seed=args.seed)
        tl.manual_seed(args.seed)
        sample = model.generate(tl.tensor([tokenizer.encode("\n")]), 60 if not args.quick else 20,
                                temperature=0.8, use_cache=False)
        text = tokenizer.decode(sample.numpy()[0].tolist()[1:])
        rows.append((name, float(np.mean(curves[name][-20:])), val_loss(model, dataset), repr(text[:60])))
    table(["mask", "train loss", "val loss", "generated text"], rows)
    fig, ax = figure(1, width=7)
    for name, losses in curves.items():
        ax[0].plot(smooth(losses), label=name)
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss (nats)")
    ax[0].set_title("seeing the future makes training look easy")
    ax[0].legend()
    return save(fig, args.out)


if __name__ == "__main__":
    main()
