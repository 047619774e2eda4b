"""An embedding lookup is a one-hot vector times a matrix, its gradient is a scatter-add, and GPT's output layer
reuses the same matrix (weight tying).
    python examples/experiments/one_hot_embedding.py [--quick]
"""
import numpy as np

from common import figure, parser, save, small_gpt, table

import tensorlite as tl
import tensorlite.functional as F


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "one_hot_embedding.png").parse_args(argv)
    V, C = 8, 5
    tl.manual_seed(args.seed)
    ids = np.array([3, 1, 3, 6])                     # id 3 appears twice
    w_lookup = tl.randn(V, C, dtype=tl.float64, requires_grad=True)
    w_onehot = tl.tensor(w_lookup.numpy(), requires_grad=True)
    onehot = tl.tensor(np.eye(V)[ids])               # (4, V)
    upstream = np.random.default_rng(args.seed).standard_normal((len(ids), C))
    lookup, product = F.embedding(tl.tensor(ids), w_lookup), onehot @ w_onehot
    (lookup * tl.tensor(upstream)).sum().backward()
    (product * tl.tensor(upstream)).sum().backward()
    model = small_gpt(V, args.seed, n_embd=16)
    rows = [("max |W[ids] - onehot @ W|", float(np.abs(lookup.numpy() - product.numpy()).max())),
            ("max |scatter-add grad - onehot^T @ dY|", (w_lookup.grad - w_onehot.grad).abs().max().item()),
            ("grad row of id 3 = sum of its two upstream rows",
             bool(np.allclose(w_lookup.grad[3].numpy(), upstream[0] + upstream[2]))),
            ("lm_head.weight is transformer.wte.weight", model.lm_head.weight is model.transformer.wte.weight)]
    table(["check", "value"], rows)
    fig, ax = figure(4, width=3.2)
    for a, (title, data) in zip(ax, (("one-hot(ids) (4 x V)", onehot.numpy()), ("W (V x C)", w_lookup.numpy()),
                                     ("one-hot @ W = W[ids]", product.numpy()),
                                     ("dW: scatter-add of dY", w_lookup.grad.numpy()))):
        a.imshow(data, cmap="RdBu", aspect="auto")
        a.set_title(title, fontsize=9)
    ax[0].set_yticks(range(len(ids)), [f"id {i}" for i in ids])
    return save(fig, args.out)


if __name__ == "__main__":
    main()
