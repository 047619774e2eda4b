"""Backprop through one causal attention head, by hand and by tensorlite, side by side.

One head, T=4 positions, model width C=3 and head size D=3, float64. The forward prints every intermediate
(projections, scores, mask, probabilities, output); the backward follows docs/backprop_through_attention.md one
formula at a time with NumPy. tensorlite's autograd then computes the same gradients twice: through the single
Function F.scaled_dot_product_attention (closed-form backward), and op by op (matmul, softmax, matmul), which
also exposes dS and dP. A table prints the largest difference of each; the exit status is 1 if any exceeds 1e-8.

    python examples/attention_backprop_walkthrough.py [--graph attention_graph]   # --graph: also draw the graph
"""
import argparse
import sys

import numpy as np

import tensorlite as tl
import tensorlite.functional as F

T, C, D = 4, 3, 3
TOLERANCE = 1e-8

# Every quantity compared below: (section of the document, the formula exactly as the document writes it).
# tests/test_walkthrough.py checks that each formula appears in that section.
FORMULAS = {
    "O": ("6", "O = P V"),
    "dV": ("6", "dV = P^T dO"),
    "dP": ("6", "dP = dO V^T"),
    "dS": ("6", "dS = P * (dP - rowsum(dP * P))"),
    "dQ": ("6", "dQ = dS K / sqrt(D)"),
    "dK": ("6", "dK = dS^T Q / sqrt(D)"),
    "dWq": ("1", "dW = dY^T X"),
    "dWk": ("1", "dW = dY^T X"),
    "dWv": ("1", "dW = dY^T X"),
    "dX": ("8", "dX = dQ Wq + dK Wk + dV Wv"),
}


def show(name, array):
    print(f"{name} {array.shape}:\n{np.array2string(array, precision=4, suppress_small=True)}\n")


def by_hand(x, w_q, w_k, w_v, g):
    """Forward and backward with NumPy, formula by formula (section numbers of the document)."""
    # forward (section 1: linear; section 6: attention)
    q, k, v = x @ w_q.T, x @ w_k.T, x @ w_v.T                 # (T, D) each
    scale = 1 / np.sqrt(D)
    s = q @ k.T * scale                                       # (T, T) scores
    mask = np.tril(np.ones((T, T), dtype=bool))               # query i sees keys j <= i
    s_masked = np.where(mask, s, -np.inf)
    p = np.exp(s_masked - s_masked.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)                         # softmax per row
    o = p @ v                                                 # (T, D)
    for name, value in (("q = x Wq^T", q), ("scores S = q k^T / sqrt(D)", s), ("causal mask", mask.astype(int)),
                        ("probabilities P = softmax(S + mask)", p), ("output O = P V", o)):
        show(name, value)
    # backward of L = sum(O * G): dL/dO = G
    do = g
    dv = p.T @ do                                             # (6) dV = P^T dO
    dp = do @ v.T                                             # (6) dP = dO V^T
    ds = p * (dp - (dp * p).sum(axis=1, keepdims=True))       # (6, 2) dS = P * (dP - rowsum(dP * P))
    dq = ds @ k * scale                                       # (6) dQ = dS K / sqrt(D)
    dk = ds.T @ q * scale                                     # (6) dK = dS^T Q / sqrt(D)
    dw_q, dw_k, dw_v = dq.T @ x, dk.T @ x, dv.T @ x           # (1) dW = dY^T X for Y = X W^T
    dx = dq @ w_q + dk @ w_k + dv @ w_v                       # (1, 8) dX = dY W, summed over the three branches
    return {"O": o, "dV": dv, "dP": dp, "dS": ds, "dQ": dq, "dK": dk, "dWq": dw_q, "dWk": dw_k, "dWv": dw_v,
            "dX": dx}


def fused_attention(q, k, v):
    """One Function with the closed-form backward of section 6; it keeps dS and dP to itself."""
    heads = [t.reshape(1, 1, T, D) for t in (q, k, v)]                          # (B=1, H=1, T, D)
    return F.scaled_dot_product_attention(*heads, is_causal=True).reshape(T, D), {}


def attention_from_ops(q, k, v):
    """The same head op by op, so autograd also hands out dS and dP."""
    s = ((q @ k.swapaxes(0, 1)) * (1 / np.sqrt(D))).retain_grad()              # (T, T)
    p = F.softmax(s + tl.tensor(F.causal_mask(np, T, T, np.float64))).retain_grad()
    return p @ v, {"dS": s, "dP": p}


def by_autograd(attend, x, w_q, w_k, w_v, g, graph=None):
    """Run the head through tensorlite with attend(q, k, v) -> (O, {name: retained tensor}); return every
    gradient it knows. graph: a path to draw the computation graph to (before backward frees it)."""
    leaves = {name: tl.tensor(a, requires_grad=True) for name, a in (("X", x), ("Wq", w_q), ("Wk", w_k),
                                                                     ("Wv", w_v))}
    proj = {name: F.linear(leaves["X"], leaves["W" + name.lower()]).retain_grad() for name in ("Q", "K", "V")}
    o, retained = attend(proj["Q"], proj["K"], proj["V"])
    loss = (o * tl.tensor(g)).sum()                           # L = sum(O * G), so dO = G
    if graph:
        print(f"computation graph written to {tl.viz.render(loss, graph, names=leaves)}\n")
    loss.backward()
    tensors = {**{"d" + n: t for n, t in {**leaves, **proj}.items()}, **retained}
    return {"O": o.numpy(), **{name: t.grad for name, t in tensors.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", help="write the autograd graph of the fused head here (PNG with Graphviz, "
                        "else dot text)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, C))
    w_q, w_k, w_v = (rng.standard_normal((D, C)) for _ in range(3))
    g = rng.standard_normal((T, D))          # upstream gradient dL/dO
    show("input X", x)
    hand = by_hand(x, w_q, w_k, w_v, g)
    routes = {"F.sdpa": by_autograd(fused_attention, x, w_q, w_k, w_v, g, graph=args.graph),
              "op by op": by_autograd(attention_from_ops, x, w_q, w_k, w_v, g)}
    print("max |hand - autograd| per quantity, for each autograd route\n")
    print(f"{'':4s} {'formula (document section)':36s}" + "".join(f"{route:>10s}" for route in routes))
    worst = 0.0
    for name, (section, formula) in FORMULAS.items():
        diffs = {route: float(np.abs(hand[name] - r[name]).max()) for route, r in routes.items() if name in r}
        cells = "".join(f"{diffs[route]:10.1e}" if route in diffs else f"{'-':>10s}" for route in routes)
        flag = "  <-- too large" if max(diffs.values()) > TOLERANCE else ""
        worst = max(worst, *diffs.values())
        print(f"{name:4s} {f'{formula}  ({section})':36s}{cells}{flag}")
    print(f"\nworst difference {worst:.3e} (tolerance {TOLERANCE:g}): {'OK' if worst <= TOLERANCE else 'FAILED'}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
