"""Backprop through causal self-attention with two heads: by hand, by tensorlite, and by central differences.

T = 3 positions, model width C = 4, H = 2 heads of size D = 2, float64, inputs with one decimal: small enough to
redo any number with pencil and paper, and C != D so that no transpose or head split hides behind a square shape.
Every input and every intermediate of the forward and of the backward is printed; the backward follows
docs/backprop_through_attention.md one formula at a time with NumPy ("hand"). Then three other answers to the same
questions: tensorlite's autograd twice, through the model's own ops (one c_attn GEMM, F.split_heads,
F.scaled_dot_product_attention, F.merge_heads) and op by op (split, reshape, transpose, matmul, softmax, which also
hands out dS and dP), and central differences of the loss. Agreement of hand and autograd shows that the document
matches the code; agreement with central differences shows that both are the derivative. The document's lessons
are checked last. The exit status is 1 if any difference exceeds 1e-8 or any check fails.

    python examples/attention_backprop_walkthrough.py [--graph attention_graph]   # --graph: also draw the graph
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the checkout, uninstalled

import tensorlite as tl  # noqa: E402
import tensorlite.functional as F  # noqa: E402

T, C, H = 3, 4, 2
D = C // H
TOLERANCE = 1e-8
STEP = 1e-5   # central differences: error ~ STEP^2 (truncation) + 1e-16 / STEP (rounding), both far below TOLERANCE

# Every backward quantity: (anchor of its section in the document, the formula exactly as the document writes it).
# tests/test_walkthrough.py checks that each formula appears in that section.
FORMULAS = {
    "dO": ("heads", "dO_h = dY[:, h*D:(h+1)*D]"),
    "dV": ("attention", "dV = P^T dO"),
    "dP": ("attention", "dP = dO V^T"),
    "dS": ("attention", "dS = P * (dP - rowsum(dP * P))"),
    "dQ": ("attention", "dQ = dS K / sqrt(D)"),
    "dK": ("attention", "dK = dS^T Q / sqrt(D)"),
    "dWq": ("linear", "dW = dY^T X"),
    "dWk": ("linear", "dW = dY^T X"),
    "dWv": ("linear", "dW = dY^T X"),
    "dX": ("residual", "dX = dQ Wq + dK Wk + dV Wv"),
}


def heads(a):
    """(T, C) -> (H, T, D): head h is columns h*D .. (h+1)*D - 1."""
    return a.reshape(T, H, D).swapaxes(0, 1)


def merge(a):
    """(H, T, D) -> (T, C), the heads side by side again."""
    return a.swapaxes(0, 1).reshape(T, C)


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# The forward of one causal self-attention, one line per intermediate: (name, how it is computed from the ones
# before). A name already given is taken as given: that is where the central differences perturb it.
FORWARD = (
    ("Q", lambda v: v["X"] @ v["Wq"].T),                                       # (T, C)
    ("K", lambda v: v["X"] @ v["Wk"].T),                                       # (T, C)
    ("V", lambda v: v["X"] @ v["Wv"].T),                                       # (T, C)
    ("S", lambda v: heads(v["Q"]) @ heads(v["K"]).swapaxes(1, 2) / np.sqrt(D)),   # (H, T, T) scores
    ("P", lambda v: softmax(v["S"] + v["M"])),                                 # (H, T, T) probabilities
    ("O", lambda v: v["P"] @ heads(v["V"])),                                   # (H, T, D) per-head outputs
    ("Y", lambda v: merge(v["O"])),                                            # (T, C)
)


def forward(given):
    values = dict(given)
    for name, compute in FORWARD:
        if name not in values:
            values[name] = compute(values)
    return values


def loss(values):
    """L = sum(Y * G), so the upstream gradient dY = ∂L/∂Y is G: any G can be handed to the backward this way."""
    return float((values["Y"] * values["G"]).sum())


def make_inputs(seed=0):
    rng = np.random.default_rng(seed)
    draw = lambda *shape: np.round(rng.standard_normal(shape), 1)      # noqa: E731  (one decimal: easy by hand)
    inputs = {"X": draw(T, C), "Wq": draw(C, C), "Wk": draw(C, C), "Wv": draw(C, C), "G": draw(T, C)}
    inputs["M"] = F.causal_mask(np, T, T, np.float64)                  # 0 where key j <= query i, -inf above
    return inputs


def by_hand(v):
    """The backward, formula by formula as the document writes it (anchors of its sections in brackets)."""
    dY = v["G"]
    dO = heads(dY)                                      # [heads] dO_h = dY[:, h*D:(h+1)*D]: merge's backward
    P, Kh, Qh, Vh = v["P"], heads(v["K"]), heads(v["Q"]), heads(v["V"])
    dVh = P.swapaxes(1, 2) @ dO                         # [attention] (a) dV = P^T dO
    dP = dO @ Vh.swapaxes(1, 2)                         # [attention] (a) dP = dO V^T
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))   # [attention] (b), (c) dS = P * (dP - rowsum(dP * P))
    dQh = dS @ Kh / np.sqrt(D)                          # [attention] (d) dQ = dS K / sqrt(D)
    dKh = dS.swapaxes(1, 2) @ Qh / np.sqrt(D)           # [attention] (d) dK = dS^T Q / sqrt(D)
    dQ, dK, dV = merge(dQh), merge(dKh), merge(dVh)     # [heads] the heads side by side again: (T, C)
    X, Wq, Wk, Wv = v["X"], v["Wq"], v["Wk"], v["Wv"]
    return {"dO": dO, "dV": dV, "dP": dP, "dS": dS, "dQ": dQ, "dK": dK,
            "dWq": dQ.T @ X, "dWk": dK.T @ X, "dWv": dV.T @ X,   # [linear] dW = dY^T X for Y = X W^T
            "dX": dQ @ Wq + dK @ Wk + dV @ Wv}                   # [residual] X feeds three projections


def central_differences(inputs, names):
    """dA = ∂L/∂A for each named array A (an input or an intermediate): (L(A + h e) - L(A - h e)) / 2h per entry,
    with everything downstream of A recomputed and everything upstream left as it is."""
    values = forward(inputs)
    grads = {}
    for name in names:
        base = values[name]
        grad = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            sides = []
            for sign in (1, -1):
                bumped = base.copy()
                bumped[index] += sign * STEP
                sides.append(loss(forward({**inputs, name: bumped})))
            grad[index] = (sides[0] - sides[1]) / (2 * STEP)
        grads["d" + name] = grad
    return grads


def _leaves(inputs):
    return {name: tl.tensor(inputs[name], requires_grad=True) for name in ("X", "Wq", "Wk", "Wv")}


def _c_attn(leaves):
    """nanoGPT's c_attn: one (3C, C) weight, q, k and v side by side in one GEMM; X as a batch of one."""
    w_attn = tl.cat([leaves["Wq"], leaves["Wk"], leaves["Wv"]], dim=0)
    return F.linear(leaves["X"].reshape(1, T, C), w_attn)                    # (1, T, 3C)


def _finish(inputs, leaves, y, retained, graph=None):
    """Seed the backward with G at Y; return {name: gradient} for the leaves and the retained tensors."""
    if graph:
        print(f"computation graph written to {tl.viz.render(y, graph, names=leaves)}\n")
    y.backward(inputs["G"].reshape(y.shape))
    grads = {"d" + name: t.grad.numpy() for name, t in leaves.items()}
    grads.update({name: t.grad.numpy().reshape(shape) for name, (t, shape) in retained.items()})
    return grads


def by_model_ops(inputs, graph=None):
    """The model's own path (gpt/model.py): c_attn, F.split_heads, F.scaled_dot_product_attention (one Function
    with the closed-form backward, which keeps dS and dP to itself), F.merge_heads."""
    leaves = _leaves(inputs)
    q, k, v = (t.retain_grad() for t in F.split_heads(_c_attn(leaves), H))    # (1, H, T, D) each
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True).retain_grad()
    y = F.merge_heads(o)                                                        # (1, T, C)
    retained = {"dQ": (q, (H, T, D)), "dK": (k, (H, T, D)), "dV": (v, (H, T, D)), "dO": (o, (H, T, D))}
    grads = _finish(inputs, leaves, y, retained, graph)
    grads.update({name: merge(grads[name]) for name in ("dQ", "dK", "dV")})
    return grads


def by_primitive_ops(inputs):
    """The same layer op by op: split, then a reshape and a transpose per piece, the attention as matmul, add
    (the mask), softmax, matmul, and the merge as a transpose and a reshape. Autograd then also hands out dS, dP."""
    leaves = _leaves(inputs)
    q, k, v = (t.retain_grad() for t in tl.split(_c_attn(leaves), C, 2))   # (1, T, C) each
    qh, kh, vh = (t.view(1, T, H, D).transpose(1, 2) for t in (q, k, v))         # (1, H, T, D)
    s = (qh @ kh.transpose(-2, -1) * (1 / np.sqrt(D))).retain_grad()            # (1, H, T, T)
    p = F.softmax(s + tl.tensor(inputs["M"]), dim=-1).retain_grad()
    o = (p @ vh).retain_grad()
    y = o.transpose(1, 2).contiguous().view(1, T, C)
    retained = {"dQ": (q, (T, C)), "dK": (k, (T, C)), "dV": (v, (T, C)), "dS": (s, (H, T, T)),
                "dP": (p, (H, T, T)), "dO": (o, (H, T, D))}
    return _finish(inputs, leaves, y, retained)


def show(title, array, formatter=None):
    """Print an array; a per-head (H, ...) one head by head."""
    print(title)
    for h, block in (enumerate(array) if array.ndim == 3 else [(None, array)]):
        prefix = "" if h is None else f"  head {h}: "
        text = np.array2string(block + 0.0, precision=4, suppress_small=True, floatmode="fixed",   # + 0.0: -0 -> 0
                               formatter=formatter)
        print(prefix + text.replace("\n", "\n" + " " * len(prefix)))
    print()


def p_dp_ds_table(values, grads, head=0):
    """Head `head`'s P, dP and dS side by side, rows = queries: the table the document shows."""
    cells = lambda row: " ".join(f"{x + 0.0:7.4f}" for x in row)        # noqa: E731  (+ 0.0: -0 prints as 0)
    width = 7 * T + T - 1
    lines = [("     " + "   ".join(f"{name:^{width}s}" for name in ("P", "dP", "dS"))).rstrip()]
    for i in range(T):
        lines.append(f"i={i}  " + "   ".join(cells(a[head, i]) for a in (values["P"], grads["dP"], grads["dS"])))
    return "\n".join(lines)


def lessons(hand, routes):
    """The document's lessons as checks: [(statement, measured value, holds)]."""
    dS = hand["dS"]
    above = np.triu(np.ones((T, T), dtype=bool), k=1)
    dQ0 = {"hand": hand["dQ"][0], **{route: grads["dQ"][0] for route, grads in routes.items()}}
    return [
        ("dS is 0 above the diagonal (P_ij = 0 for keys j > i; dP is not)", np.abs(dS[:, above]).max(),
         np.all(dS[:, above] == 0)),
        ("every row of dS sums to 0 (softmax ignores a constant added to a row)",
         np.abs(dS.sum(axis=-1)).max(), np.abs(dS.sum(axis=-1)).max() < 1e-12),
        ("dQ[0] = 0 exactly, by hand and op by op (query 0 sees only key 0: its row of P is one-hot)",
         max(np.abs(dQ0[r]).max() for r in ("hand", "op by op")),
         all(np.all(dQ0[r] == 0) for r in ("hand", "op by op"))),
        ("dQ[0] = 0 up to rounding through F.scaled_dot_product_attention (it subtracts rowsum(dO * O))",
         np.abs(dQ0["F.sdpa"]).max(), np.abs(dQ0["F.sdpa"]).max() < 1e-14),
        ("the rows of dK add up to 0 (moving every key by one vector moves a row of S by a constant)",
         np.abs(hand["dK"].sum(axis=0)).max(), np.abs(hand["dK"].sum(axis=0)).max() < 1e-12),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", help="write the autograd graph of the model's path here (PNG with Graphviz, "
                        "else dot text)")
    args = parser.parse_args(argv)
    np.set_printoptions(linewidth=120)
    inputs = make_inputs()
    print(f"T = {T} positions, C = {C} model width, H = {H} heads of size D = {D}; float64\n")
    print("== inputs ==\n")
    show("X (T, C)", inputs["X"])
    for name in ("Wq", "Wk", "Wv"):
        show(f"{name} (C, C), nn.Linear's (out, in) layout", inputs[name])
    show("G = dY (T, C), the upstream gradient: L = sum(Y * G)", inputs["G"])
    show("M (T, T), the additive causal mask: 0 where key j <= query i, -inf above", inputs["M"],
         formatter={"float_kind": "{:>4g}".format})

    values = forward(inputs)
    print("== forward ==\n")
    show("Q = X Wq^T (T, C): columns h*D .. (h+1)*D - 1 are head h", values["Q"])
    show("K = X Wk^T (T, C)", values["K"])
    show("V = X Wv^T (T, C)", values["V"])
    show("S = Q K^T / sqrt(D) (H, T, T), per head", values["S"])
    show("P = softmax(S + M) (H, T, T), per row", values["P"])
    show("O = P V (H, T, D)", values["O"])
    show("Y (T, C), the heads side by side", values["Y"])

    hand = by_hand(values)
    print("== backward, by hand ==\n")
    for name, (anchor, formula) in FORMULAS.items():
        show(f"{name}: {formula}   [{anchor}]", hand[name])
    print("head 0's P, dP and dS side by side (the document's table):\n")
    print(p_dp_ds_table(values, hand) + "\n")

    routes = {"F.sdpa": by_model_ops(inputs, graph=args.graph), "op by op": by_primitive_ops(inputs)}
    numeric = central_differences(inputs, ("O", "V", "P", "S", "Q", "K", "Wq", "Wk", "Wv", "X"))
    print("== the same gradients four ways ==\n")
    print("hand: the document's formulas in NumPy; autograd: tensorlite op by op; central diff: (L(A + h) - "
          "L(A - h)) / 2h;\nF.sdpa: tensorlite through the model's ops. One entry of each quantity (its largest), "
          "then the largest\ndifference over all its entries ('-': that route keeps no such tensor)\n")
    header = (f"{'':4s} {'entry':10s} {'hand':>14s} {'autograd':>14s} {'central diff':>14s} "
              f"{'|hand - F.sdpa|':>16s} {'|hand - ops|':>13s} {'|hand - cd|':>12s}")
    print(header)
    worst = 0.0
    for name in FORMULAS:
        index = np.unravel_index(np.abs(hand[name]).argmax(), hand[name].shape)
        others = {"F.sdpa": routes["F.sdpa"], "op by op": routes["op by op"], "cd": numeric}
        diffs = {key: float(np.abs(hand[name] - grads[name]).max()) for key, grads in others.items() if name in grads}
        worst = max(worst, *diffs.values())
        cells = "".join(f"{diffs[key]:{w}.1e}" if key in diffs else f"{'-':>{w}s}"
                        for key, w in (("F.sdpa", 17), ("op by op", 14), ("cd", 13)))
        flag = "  <-- too large" if max(diffs.values()) > TOLERANCE else ""
        print(f"{name:4s} {str(list(map(int, index))):10s} {hand[name][index]:14.10f} "
              f"{routes['op by op'][name][index]:14.10f} {numeric[name][index]:14.10f}{cells}{flag}")
    print(f"\nworst difference {worst:.1e} (tolerance {TOLERANCE:g})\n")

    print("== the document's lessons, checked ==\n")
    all_hold = worst <= TOLERANCE
    for statement, measured, holds in lessons(hand, routes):
        all_hold &= bool(holds)
        print(f"  {'ok  ' if holds else 'FAIL'} {statement}: {measured:.1e}")
    print(f"\n{'OK' if all_hold else 'FAILED'}")
    return 0 if all_hold else 1


if __name__ == "__main__":
    sys.exit(main())
