"""Why bf16 trains more stably than fp16: range, not precision.

1. Softmax and cross-entropy of large logits in float16: exp(x) overflows past x = 11 (65504 is fp16's largest
   number) unless the row max is subtracted first.
2. A small GPT trained with its weights and gradients rounded every step to float32, float16 (with and without
   loss scaling) and bfloat16. bfloat16 is **emulated**: float32 with the low 16 mantissa bits cut off (same
   8-bit exponent as float32, so the same range). Float16 has 5 exponent bits: gradients below 6e-8 flush to zero
   (counted as underflows) unless the loss is scaled up before backward and the gradients scaled back after; a
   scale that is too large overflows instead (inf gradients, dropped here as a loss scaler would skip the step).
    python examples/experiments/precision.py [--quick]
"""
import numpy as np

from common import figure, parser, save, shakespeare, small_gpt, smooth, table

import tensorlite as tl


def fp16(x):
    return x.astype(np.float16).astype(np.float32)


def bf16_emulated(x):
    """Truncate float32 to bfloat16's 8 mantissa bits (round toward zero), kept in a float32 array."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def logits_demo():
    x = np.array([10.0, 12.0, 20.0], dtype=np.float16)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        naive = np.exp(x) / np.exp(x).sum()
        shifted = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        ce_naive = -np.log(naive[0])
        ce_shifted = -(x[0] - x.max() - np.log(np.exp(x - x.max()).sum()))
    return [("softmax, no max subtraction", str(naive)), ("softmax, max subtracted", str(shifted)),
            ("cross-entropy of class 0, naive", str(ce_naive)), ("cross-entropy, log-sum-exp", str(ce_shifted))]


def train_rounded(model, dataset, steps, rounding, loss_scale=1.0, seed=0):
    """AdamW in float32 master weights; before each step the weights, and after backward the (scaled)
    gradients, pass through `rounding`. Returns losses and the count of gradient entries flushed to zero."""
    rng = np.random.default_rng(seed)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99))
    losses, underflows, overflows = [], 0, 0
    for _ in range(steps):
        for p in model.parameters():
            p.data[...] = rounding(p.data)
        _, loss = model(*dataset.get_batch("train", 16, rng))
        opt.zero_grad()
        (loss * loss_scale).backward()
        for p in model.parameters():
            rounded = rounding(p.grad)
            underflows += int(((rounded == 0) & (p.grad != 0)).sum())
            overflows += int((~np.isfinite(rounded)).sum())
            p.grad = np.where(np.isfinite(rounded), rounded, 0) / loss_scale
        opt.step()
        losses.append(loss.item())
    return losses, underflows, overflows


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "precision.png").parse_args(argv)
    table(["float16 computation", "result"], logits_demo())
    steps = 30 if args.quick else 400
    dataset, tokenizer = shakespeare(args.data, 32, chars=20000 if args.quick else None)
    runs = {"float32": (lambda x: x, 1.0), "float16, no loss scaling": (fp16, 1.0),
            "float16, loss scale 1024": (fp16, 1024.0), "float16, loss scale 2^24": (fp16, 2.0 ** 24),
            "bfloat16 (emulated)": (bf16_emulated, 1.0)}
    results = {}
    for name, (rounding, scale) in runs.items():
        with np.errstate(over="ignore"):
            results[name] = train_rounded(small_gpt(tokenizer.vocab_size, args.seed), dataset, steps, rounding,
                                          scale, args.seed)
    table(["training", "final loss", "gradient underflows", "gradient overflows"],
          [(n, float(np.mean(r[0][-10:])), r[1], r[2]) for n, r in results.items()])
    fig, ax = figure(2)
    for name, (losses, _, _) in results.items():
        ax[0].plot(smooth(losses), label=name)
    ax[0].set(title="training loss by number format", xlabel="step", ylabel="loss (nats)")
    ax[0].legend(fontsize=8)
    names, at = list(results), np.arange(len(results))
    ax[1].bar(at - 0.2, [max(results[n][1], 0.5) for n in names], 0.4, color="tab:blue", label="underflow to 0")
    ax[1].bar(at + 0.2, [max(results[n][2], 0.5) for n in names], 0.4, color="tab:red", label="overflow to inf")
    ax[1].set_yscale("log")
    ax[1].set_xticks(at, [n.replace(", ", "\n") for n in names], fontsize=7)
    ax[1].set(title="gradient entries lost to the number format", ylabel="count (log)")
    ax[1].legend(fontsize=8)
    return save(fig, args.out)


if __name__ == "__main__":
    tl.manual_seed(0)
    main()
