"""Position information: the sinusoidal table, how similar positions look to a dot product, and what val loss a
small GPT reaches with learned, sinusoidal or no position information.

Without positions, attention sees a *set* of previous characters, not a sequence; the causal mask alone leaks
some order (a position can count how many keys it sees), which is why "none" is worse but not hopeless.
    python examples/experiments/positional_encoding.py [--quick]
"""
import numpy as np

from common import figure, parser, save, shakespeare, small_gpt, table, train

from gpt.model import sinusoidal_encoding


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "positional_encoding.png").parse_args(argv)
    table_ = sinusoidal_encoding(64, 64)                                        # (positions, dims)
    unit = table_ / np.linalg.norm(table_, axis=1, keepdims=True)
    similarity = unit @ unit.T                                                  # cosine between positions
    steps, every = (40, 20) if args.quick else (600, 100)
    dataset, tokenizer = shakespeare(args.data, 32, chars=20000 if args.quick else None)
    curves = {}
    for kind in ("learned", "sinusoidal", "none"):
        model = small_gpt(tokenizer.vocab_size, args.seed, pos_encoding=kind)
        curves[kind] = train(model, dataset, steps, seed=args.seed, eval_every=every)[1]
    table(["position information", "val loss at the end"], [(k, v[-1][1]) for k, v in curves.items()])
    fig, ax = figure(3)
    image = ax[0].imshow(table_, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax[0].set(title="sinusoidal encoding", xlabel="dimension", ylabel="position")
    fig.colorbar(image, ax=ax[0])
    image = ax[1].imshow(similarity, cmap="viridis")
    ax[1].set(title="cosine similarity between positions", xlabel="position", ylabel="position")
    fig.colorbar(image, ax=ax[1])
    for kind, points in curves.items():
        ax[2].plot(*zip(*points), "o-", label=kind)
    ax[2].set(title="val loss by position information", xlabel="step", ylabel="val loss (nats)")
    ax[2].legend()
    return save(fig, args.out)


if __name__ == "__main__":
    main()
