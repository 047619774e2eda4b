"""Why bf16 trains more stably than fp16: range, not precision.

1. Softmax and cross-entropy of large logits in float16: exp(x) overflows past x = 11 (65504 is fp16's largest
   number) unless the row max is subtracted first.
2. A small GPT trained as mixed precision does it: forward and backward with the weights rounded to the number
   format, the gradients rounded too, AdamW updating float32 master weights. bfloat16 is **emulated**: float32
   with the low 16 mantissa bits cut off (same 8-bit exponent as float32, so the same range). Float16 has 5
   exponent bits: gradients below 6e-8 flush to zero (counted as underflows) unless the loss is scaled up before
   backward and the gradients scaled back after; a scale that is too large overflows instead (inf gradients: the
   step is skipped, as a loss scaler would). A last run keeps no float32 master copy: weight updates smaller than
   bfloat16's spacing (2^-7 near 1) are lost.
    python examples/experiments/precision.py [--quick]
"""
import numpy as np

from common import figure, parser, save, shakespeare, small_gpt, smooth, table, val_loss

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


def train_rounded(model, dataset, steps, rounding, loss_scale=1.0, master_copy=True, seed=0):
    """Mixed-precision training with a fixed loss scale, the number format emulated by `rounding`.

    Forward and backward see the weights rounded, the scaled gradients are rounded, then unscaled and clipped to
    norm 1 (as the trainer does); a step whose gradients overflowed is skipped, as a loss scaler would. AdamW
    updates float32 master weights (master_copy=True) or, without them, the rounded weights themselves. Returns
    losses, gradient entries flushed to zero, entries overflowed, and steps skipped."""
    rng = np.random.default_rng(seed)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99))
    params = model.parameters()
    losses, underflows, overflows, skipped = [], 0, 0, 0
    for _ in range(steps):
        master = [p.data.copy() for p in params]
        for p in params:
            p.data[...] = rounding(p.data)
        _, loss = model(*dataset.get_batch("train", 16, rng))
        opt.zero_grad()
        (loss * loss_scale).backward()
        step_overflows = 0
        for p in params:
            rounded = rounding(p.grad.data)
            underflows += int(((rounded == 0) & (p.grad.data != 0)).sum())
            step_overflows += int((~np.isfinite(rounded)).sum())
            p.grad.data = rounded / loss_scale
        if master_copy:
            for p, m in zip(params, master):
                p.data[...] = m
        overflows += step_overflows
        if step_overflows:
            skipped += 1
        else:
            tl.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        losses.append(loss.item())
    return losses, underflows, overflows, skipped


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "precision.png").parse_args(argv)
    table(["float16 computation", "result"], logits_demo())
    steps = 30 if args.quick else 400
    dataset, tokenizer = shakespeare(args.data, 32, chars=20000 if args.quick else None)
    runs = {"float32": (lambda x: x, 1.0, True), "float16, no loss scaling": (fp16, 1.0, True),
            "float16, loss scale 1024": (fp16, 1024.0, True), "float16, loss scale 2^24": (fp16, 2.0 ** 24, True),
            "bfloat16 (emulated)": (bf16_emulated, 1.0, True),
            "bfloat16 (emulated), no float32 master weights": (bf16_emulated, 1.0, False)}
    results, val = {}, {}
    for name, (rounding, scale, master_copy) in runs.items():
        model = small_gpt(tokenizer.vocab_size, args.seed)
        with np.errstate(over="ignore"):
            results[name] = train_rounded(model, dataset, steps, rounding, scale, master_copy, args.seed)
        val[name] = val_loss(model, dataset)
    table(["training", "val loss", "gradient underflows", "gradient overflows", "steps skipped"],
          [(n, val[n], *r[1:]) for n, r in results.items()])
    fig, ax = figure(2, width=6.0, height=4.0)
    for name, (losses, _, _, skipped) in results.items():
        ax[0].plot(smooth(losses), label=name + (f" ({skipped} steps skipped)" if skipped else ""))
    ax[0].set(title="training loss by number format", xlabel="step", ylabel="loss (nats)")
    ax[0].legend(fontsize=7)
    names, at = list(results), np.arange(len(results))
    ax[1].barh(at - 0.2, [max(results[n][1], 0.5) for n in names], 0.4, color="tab:blue", label="underflow to 0")
    ax[1].barh(at + 0.2, [max(results[n][2], 0.5) for n in names], 0.4, color="tab:red", label="overflow to inf")
    ax[1].set_xscale("log")
    ax[1].set_yticks(at, [n.replace(", ", "\n") for n in names], fontsize=7)
    ax[1].invert_yaxis()
    ax[1].set(title="gradient entries lost to the number format", xlabel="count (log; 0 drawn at 0.5)")
    ax[1].legend(fontsize=8)
    return save(fig, args.out)


if __name__ == "__main__":
    tl.manual_seed(0)
    main()
