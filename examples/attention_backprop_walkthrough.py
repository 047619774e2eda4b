"""Backprop through one causal attention head, by hand and by tensorlite, side by side.

One head, T=4 positions, model width C=3 and head size d=3, float64. The forward prints every intermediate
(projections, scores, mask, probabilities, output); the backward follows docs/backprop_through_attention.md one
formula at a time with NumPy, then asks tensorlite's autograd for the same gradients and prints the largest
difference of each. Exits with status 1 if any difference exceeds 1e-8.

    python examples/attention_backprop_walkthrough.py
"""
import sys

import numpy as np

import tensorlite as tl
import tensorlite.functional as F

T, C, d = 4, 3, 3
TOLERANCE = 1e-8


def show(name, array):
    print(f"{name} {array.shape}:\n{np.array2string(array, precision=4, suppress_small=True)}\n")


def by_hand(x, w_q, w_k, w_v, g):
    """Forward and backward with NumPy, formula by formula (section numbers of the document)."""
    # forward (section 1: linear; section 6: attention)
    q, k, v = x @ w_q.T, x @ w_k.T, x @ w_v.T                 # (T, d) each
    scale = 1 / np.sqrt(d)
    s = q @ k.T * scale                                       # (T, T) scores
    mask = np.tril(np.ones((T, T), dtype=bool))               # query i sees keys j <= i
    s_masked = np.where(mask, s, -np.inf)
    p = np.exp(s_masked - s_masked.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)                         # softmax per row
    o = p @ v                                                 # (T, d)
    for name, value in (("q = x Wq^T", q), ("scores S = q k^T / sqrt(d)", s), ("causal mask", mask.astype(int)),
                        ("probabilities P = softmax(S + mask)", p), ("output O = P v", o)):
        show(name, value)
    # backward of L = sum(O * G): dL/dO = G
    do = g
    dv = p.T @ do                                             # (6a) dV = P^T dO
    dp = do @ v.T                                             # (6b) dP = dO V^T
    ds = p * (dp - (dp * p).sum(axis=1, keepdims=True))       # (2)  softmax: dS = P * (dP - rowsum(dP * P))
    dq = ds @ k * scale                                       # (6c) dQ = dS K / sqrt(d)
    dk = ds.T @ q * scale                                     # (6c) dK = dS^T Q / sqrt(d)
    dw_q, dw_k, dw_v = dq.T @ x, dk.T @ x, dv.T @ x           # (1)  dW = dY^T X for Y = X W^T
    dx = dq @ w_q + dk @ w_k + dv @ w_v                       # (1)+(8) dX = dY W, summed over the three branches
    return o, {"dO": do, "dV": dv, "dP": dp, "dS": ds, "dQ": dq, "dK": dk,
               "dWq": dw_q, "dWk": dw_k, "dWv": dw_v, "dX": dx}


def by_autograd(x, w_q, w_k, w_v, g):
    """The same computation through tensorlite: F.linear, then F.scaled_dot_product_attention on (1, 1, T, d)."""
    leaves = {name: tl.tensor(a, requires_grad=True) for name, a in
              (("X", x), ("Wq", w_q), ("Wk", w_k), ("Wv", w_v))}
    proj = {name: F.linear(leaves["X"], leaves[w]).retain_grad() for name, w in (("Q", "Wq"), ("K", "Wk"),
                                                                                  ("V", "Wv"))}
    heads = [proj[n].reshape(1, 1, T, d) for n in ("Q", "K", "V")]
    o = F.scaled_dot_product_attention(*heads, is_causal=True).reshape(T, d)
    (o * tl.tensor(g)).sum().backward()
    grads = {"d" + n: proj[n].grad for n in ("Q", "K", "V")}
    grads.update({"d" + n: t.grad for n, t in leaves.items()})
    return o.numpy(), grads


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, C))
    w_q, w_k, w_v = (rng.standard_normal((d, C)) for _ in range(3))
    g = rng.standard_normal((T, d))          # upstream gradient dL/dO
    show("input X", x)
    o_hand, hand = by_hand(x, w_q, w_k, w_v, g)
    o_auto, auto = by_autograd(x, w_q, w_k, w_v, g)
    rows = [("O (forward)", float(np.abs(o_hand - o_auto).max()))]
    rows += [(name, float(np.abs(hand[name] - auto[name]).max())) for name in auto]
    print(f"{'quantity':14s} {'max |hand - autograd|':>22s}")
    for name, diff in rows:
        print(f"{name:14s} {diff:22.3e}{'  <-- too large' if diff > TOLERANCE else ''}")
    worst = max(diff for _, diff in rows)
    print(f"\nworst difference {worst:.3e} (tolerance {TOLERANCE:g}): {'OK' if worst <= TOLERANCE else 'FAILED'}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
