"""The backward walk of one transformer block, in the order tensorlite's engine visits its ops.

Builds one gpt.model.Block (pre-LayerNorm, dropout on), runs it forward on a small batch, and records every
Function whose backward the engine calls, in that order, with the gradients each one hands on. Where a tensor feeds
two ops (the residual stream forks into a branch and the skip), its gradient is the sum of what both hand back:
the walk reaches that tensor's creator only after both. Prints the walk as a table and draws it (the figure of
docs/backprop_through_attention.md):

    python examples/block_backward_walk.py --out docs/images/block_backward_walk.png
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the checkout, uninstalled

import tensorlite as tl  # noqa: E402
from gpt.model import Block, GPTConfig  # noqa: E402

B, T = 2, 8
CONFIG = GPTConfig(block_size=T, n_embd=16, n_head=2, dropout=0.1)
INPUT = "x"   # the block's input: the residual stream arriving from below


def record_walk(block, x):
    """Run block(x) and its backward; return the visited steps in order, each
    {"op": Function, "module": owning module or None, "gives": [(tensor, gradient shape)]}."""
    param_names = {id(p): name.rsplit(".", 1)[0] for name, p in block.named_parameters()}
    y = block(x)
    steps, stack, seen = [], [y.creator], set()
    while stack:                                          # every Function of the graph, wrapped to log its call
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        step = {"op": fn, "module": next((param_names[id(t)] for t in fn.inputs if id(t) in param_names), None),
                "inputs": [t for t in fn.inputs if t.requires_grad and id(t) not in param_names]}

        def logged(*gys, _fn=fn, _step=step, _backward=fn.backward):
            grads = _backward(*gys)
            grads = grads if isinstance(grads, tuple) else (grads,)
            _step["gives"] = [(t, g.shape) for t, g in zip(_fn.inputs, grads)
                              if g is not None and any(t is u for u in _step["inputs"])]
            steps.append(_step)
            return grads

        fn.backward = logged
        stack.extend(t.creator for t in fn.inputs)
    y.backward(tl.ones(*y.shape))
    return steps


def walk_edges(steps, x):
    """The gradients handed on, as (from step, to step, tensor id, shape); the block's input x is the step after
    the last. A tensor that receives two of them is where the engine sums gradients."""
    index = {id(s["op"]): i for i, s in enumerate(steps)}
    return [(i, len(steps) if t is x else index[id(t.creator)], id(t), shape)
            for i, s in enumerate(steps) for t, shape in s["gives"]]


def summed(edges):
    """{receiving step: the steps whose gradients it sums}, for the tensors that feed two ops."""
    sources = {}
    for src, dst, tensor, _ in edges:
        sources.setdefault((dst, tensor), []).append(src)
    return {dst: srcs for (dst, _), srcs in sources.items() if len(srcs) > 1}


def arrows(edges):
    """One arrow per (from, to) pair: SDPA hands SplitHeads three gradients (dq, dk, dv), one per output."""
    grouped = {}
    for src, dst, _, shape in edges:
        grouped.setdefault((src, dst), []).append(tuple(shape))
    return [(src, dst, shapes[0] if len(shapes) == 1 else f"{len(shapes)} x {shapes[0]}")
            for (src, dst), shapes in grouped.items()]


def describe(step):
    name = type(step["op"]).__name__
    return f"{name} ({step['module']})" if step["module"] else name


def print_walk(steps, edges):
    n = len(steps)
    print(f"one Block (B={B}, T={T}, C={CONFIG.n_embd}, H={CONFIG.n_head}, dropout {CONFIG.dropout}), "
          "backward in the order the engine visits it\n")
    print(f"{'step':>4s}  {'op (module)':32s} gradient handed to")
    for i, step in enumerate(steps):
        targets = ", ".join(f"{'step ' + str(dst + 1) if dst < n else INPUT} {shape}"
                            for src, dst, shape in arrows(edges) if src == i)
        print(f"{i + 1:4d}  {describe(step):32s} {targets}")
    for dst, sources in summed(edges).items():
        what = f"step {dst + 1}'s output" if dst < n else f"the block's input {INPUT}"
        print(f"\n{what} feeds {len(sources)} ops: its gradient is the sum of what steps "
              f"{' and '.join(str(s + 1) for s in sources)} hand back")


def draw(steps, edges, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch

    n, half = len(steps) + 1, 3.1                    # boxes span x in [-half, half], one per row, top to bottom
    sums, skip_x, plus_x = summed(edges), 4.7, 3.8
    forks = {src for src, dst, _ in arrows(edges) if dst != src + 1}   # the residual Adds: they start a skip
    red, grey = "#b03000", "#555555"
    fig, ax = plt.subplots(figsize=(8, 0.55 * n + 1.2))
    ax.set_xlim(-half - 0.3, 8.1)
    ax.set_ylim(-n - 0.2, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(0, 1.0, "backward of one Block, in the order the engine visits the ops", ha="center", fontsize=11,
            weight="bold")
    ax.annotate("gradient of the block's output", xy=(0, 0.22), xytext=(0, 0.55), ha="center", fontsize=8,
                color=grey, arrowprops=dict(arrowstyle="->", color=grey))
    for i in range(n):
        if i < len(steps):
            label = f"{i + 1}. {describe(steps[i])}"
            color = ("#ffe2b8" if i in forks else
                     "#d8f5d0" if steps[i]["module"] else "#cfe3ff")
        else:
            label, color = f"{INPUT}, the block's input (residual stream)", "#eeeeee"
        ax.add_patch(FancyBboxPatch((-half, -i - 0.2), 2 * half, 0.4, boxstyle="round,pad=0.02", fc=color,
                                    ec="#444444"))
        ax.text(0, -i, label, ha="center", va="center", fontsize=9)
        if i in sums:                                 # the '+' between this box and the one above, on the right
            y = -i + 0.5
            ax.add_patch(Circle((plus_x, y), 0.15, fc="white", ec=red, lw=1.3))
            ax.text(plus_x, y, "+", ha="center", va="center", fontsize=11, color=red, weight="bold")
            what = INPUT if i == len(steps) else f"step {i + 1}'s output"
            ax.text(skip_x + 0.15, y, f"the engine sums the\ntwo gradients of {what}", fontsize=7, color=red,
                    va="center")
            ax.annotate("", xy=(half, -i + 0.1), xytext=(plus_x - 0.1, y - 0.11),
                        arrowprops=dict(arrowstyle="->", color=red))
    for src, dst, label in arrows(edges):
        if dst == src + 1 and dst not in sums:       # one gradient, straight down to the op that made the tensor
            ax.annotate("", xy=(0, -dst + 0.2), xytext=(0, -src - 0.2), arrowprops=dict(arrowstyle="->"))
            ax.text(0.08, -src - 0.5, label, fontsize=6.5, color=grey, va="center")
        elif dst == src + 1:                          # the branch's half of a sum: into the '+'
            ax.annotate("", xy=(plus_x - 0.15, -dst + 0.5), xytext=(1.2, -src - 0.2),
                        arrowprops=dict(arrowstyle="->", color=red))
            ax.text(0.08, -src - 0.5, label, fontsize=6.5, color=grey, va="center")
        else:                                         # the skip: around the branch on the right, into the '+'
            ax.plot([half, skip_x, skip_x], [-src, -src, -dst + 0.5], color=red, lw=1.3)
            ax.annotate("", xy=(plus_x + 0.15, -dst + 0.5), xytext=(skip_x, -dst + 0.5),
                        arrowprops=dict(arrowstyle="->", color=red, lw=1.3))
            ax.text(skip_x + 0.15, -(src + dst) / 2, f"skip: Add's backward hands\nthe gradient on unchanged\n{label}",
                    fontsize=7, color=red, va="center")
    ax.text(-half, -n + 0.35, "green: an op with parameters (its weight gradients accumulate into .grad); "
            "orange: a residual Add;\nblue: no parameters. Arrows: the gradient handed on, with its shape "
            f"(B={B}, T={T}, C={CONFIG.n_embd}, H={CONFIG.n_head}).", fontsize=7, color=grey, va="top")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="block_backward_walk.png", help="where to write the figure (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tl.manual_seed(args.seed)
    block = Block(CONFIG, layer=0)
    block.train()
    x = tl.randn(B, T, CONFIG.n_embd, requires_grad=True)
    steps = record_walk(block, x)
    edges = walk_edges(steps, x)
    print_walk(steps, edges)
    print(f"\nfigure written to {draw(steps, edges, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
