"""Exercises 6, 7 and 10: one causal attention head, the multi-head reshapes, and flash attention's backward."""
import math
import tracemalloc

import numpy as np
from hypothesis import strategies as st

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import mirror
from tensorlite.functional import MergeHeadsFunction, ScaledDotProductAttentionFunction, SplitHeadsFunction

from .core import Failure, engine_method, patched, patches
from .layers import SEEDS, leaf, run_backward, rowsum
from .python import Mistake, PythonExercise


def swap(a):
    return np.swapaxes(a, -1, -2)


def causal_attention(q, k, v):
    """P, O and the logsumexp of causal attention with the 1/sqrt(D) scale, in q's dtype (for the inputs)."""
    T, D = q.shape[-2:]
    s = q @ swap(k) / q.dtype.type(math.sqrt(D))
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    total = rowsum(e)
    p = e / total
    return p, p @ v, (m + np.log(total))[..., 0]


def on_query_0_only(do):
    """dO with every query's gradient but query 0's set to 0: then no key after 0 may get any gradient."""
    only = np.zeros_like(do)
    only[..., 0, :] = do[..., 0, :]
    return only


def leaks_through_mask(exercise, learner, x):
    """Whether keys 1.. get gradient from query 0, which cannot see them."""
    _, dk, dv = exercise.answer(learner, dict(x, do=on_query_0_only(x["do"])))
    size = max(1.0, float(np.abs(x["do"]).max()))
    return bool(dk.shape[-2] > 1 and (np.abs(dk[..., 1:, :]).max() > 1e-6 * size
                                      or np.abs(dv[..., 1:, :]).max() > 1e-6 * size))


def _attention_cases(max_t):
    return st.fixed_dictionaries(dict(b=st.integers(1, 2), h=st.integers(1, 2), t=st.integers(1, max_t),
                                      d=st.integers(1, 5), seed=SEEDS))


class _AttentionExercise(PythonExercise):
    """What exercises 6 and 10 share: causal attention of (B, H, T, D) q, k, v, answers (dq, dk, dv)."""
    engine_name = "the engine's attention backward"
    shapes = ("the shapes: S, P, dP and dS are (..., T, T); dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q, with "
              "np.swapaxes(a, -1, -2) as the transpose of the last two axes")
    leak_hint = ("gradient leaks through the mask: with dO zero for every query but query 0, keys 1.. got "
                 "gradient, though query 0 cannot see them (P is 0 above the diagonal, and so is dS there)")

    def describe(self, case):
        return f"for q, k, v of shape {(case['b'], case['h'], case['t'], case['d'])} (causal)"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        q, k, v, do = (rng.standard_normal((case["b"], case["h"], case["t"], case["d"])).astype(dtype)
                       for _ in range(4))
        p, o, lse = causal_attention(q, k, v)
        return dict(q=q, k=k, v=v, p=p, o=o, lse=lse, do=on_query_0_only(do) if case.get("query_0") else do)

    def expected(self, x):
        return [(f"d{n}", x[n].shape, x[n].dtype) for n in ("q", "k", "v")]

    def engine_op(self, x):
        return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                [leaf(x["q"]), leaf(x["k"]), leaf(x["v"])], ["q", "k", "v"])

    def fixed_cases(self):
        return [("a gradient on query 0 only", dict(b=1, h=2, t=5, d=3, seed=4, query_0=True))]

    def plug(self, learner):
        """The engine's attention backward replaced, where the exercise's contract holds (causal, the default
        scale, no dropout, as many queries as keys: the GPT's training)."""
        def backward(fn, gy):
            q_scaled, k, v, probs, drop, out = fn.saved
            T, D = k.shape[-2:]
            if drop is not None or not fn.is_causal or q_scaled.shape[-2] != T or fn.scale != 1 / math.sqrt(D):
                return engine_method(ScaledDotProductAttentionFunction, "backward")(fn, gy)
            q = q_scaled / q_scaled.dtype.type(fn.scale)
            s = q_scaled @ swap(k) + F.causal_mask(np, T, T, q.dtype)
            m = s.max(axis=-1, keepdims=True)
            lse = (m + np.log(rowsum(np.exp(s - m))))[..., 0]
            return self.answer(learner, dict(q=q, k=k, v=v, p=probs, o=out, lse=lse, do=gy))
        return patched(ScaledDotProductAttentionFunction, "backward", backward)

    def common_mistakes(self, ds_of):
        """The mistakes both exercises see, given ds_of(x, **wrong) -> dS with one thing done wrong."""
        def grads(x, ds, q_scale=None, transposed=False):
            scale = 1 / math.sqrt(x["q"].shape[-1]) if q_scale is None else q_scale
            dk = (ds @ x["q"] if transposed else swap(ds) @ x["q"]) * scale
            return ds @ x["k"] * scale, dk, swap(x["p"]) @ x["do"]
        return [
            Mistake(self.leak_hint, lambda x, answer, learner: leaks_through_mask(self, learner, x)),
            Mistake.gives("the scores are Q K^T / sqrt(D), so dQ = dS K / sqrt(D) and dK = dS^T Q / sqrt(D): the "
                          "scale is in the backward too", lambda x: grads(x, ds_of(x), q_scale=1.0)),
            Mistake.gives("the 1/sqrt(D) scale is applied once in dQ and dK, not twice",
                          lambda x: grads(x, ds_of(x), q_scale=1 / x["q"].shape[-1])),
            Mistake.gives("dS = P * (dP - rowsum(dP * P)): softmax's rowsum term is missing",
                          lambda x: grads(x, ds_of(x, rowsum_term=False))),
            Mistake.gives("dK = dS^T Q: the keys index the columns of S, so dS is transposed for dK",
                          lambda x: grads(x, ds_of(x), transposed=True)),
        ]


# ----------------------------------------------------------------------------- 6. one attention head
class Attention(_AttentionExercise):
    number, name, section = 6, "attention", "attention"
    title = "one causal attention head: dQ, dK, dV through the mask and the scale"
    solution_ref = "tensorlite/functional.py::ScaledDotProductAttentionFunction.backward"
    functions = ("attention_backward",)
    gpt_piece = "attention backward"
    drawn = "(B, H, T, D) of 1 or 2 batches and heads, 1 to 7 positions, head size 1 to 5"

    def cases(self):
        return _attention_cases(7)

    def answer(self, learner, x):
        return self.call(learner, "attention_backward", (x["q"], x["k"], x["v"], x["p"], x["do"]),
                         self.expected(x), x)

    def solution(self):
        def attention_backward(q, k, v, p, do):
            return run_backward(ScaledDotProductAttentionFunction, (q, k, v), (do,), is_causal=True, dropout_p=0.0,
                                scale=1 / math.sqrt(q.shape[-1]))
        return {"attention_backward": attention_backward}

    def mistakes(self):
        def ds_of(x, rowsum_term=True):
            dp = x["do"] @ swap(x["v"])
            return x["p"] * (dp - rowsum(dp * x["p"])) if rowsum_term else x["p"] * dp
        return self.common_mistakes(ds_of)


# ----------------------------------------------------------------------------- 10. flash attention's backward
class FlashTiles(_AttentionExercise):
    number, name, section = 10, "flash_tiles", "flash"
    title = "flash attention's backward in NumPy tiles: P from the logsumexp, D = rowsum(dO * O)"
    solution_ref = "tensorlite/cuda/mirror.py::flash_backward"
    functions = ("flash_backward",)
    gpt_piece = "flash attention backward"
    engine_name = "the engine's flash mirror (tensorlite/cuda/mirror.py)"
    drawn = (f"(B, H, T, D) of 1 or 2 batches and heads, 1 to 40 positions (the solution's tiles hold "
             f"{mirror.FA_TILE} keys), head size 1 to 5")
    memory_t = 512      # positions of the memory check: a T x T float64 array is then 2 MiB a head

    def cases(self):
        return _attention_cases(40)

    def answer(self, learner, x):
        scale = 1 / math.sqrt(x["q"].shape[-1])
        return self.call(learner, "flash_backward", (x["q"], x["k"], x["v"], x["o"], x["lse"], x["do"], scale),
                         self.expected(x), x)

    def solution(self):
        def flash_backward(q, k, v, o, lse, do, scale):
            grads = mirror.flash_backward(q, k, v, o, lse, do, causal=True, scale=scale)   # float32 tiles
            return tuple(g.astype(q.dtype) for g in grads)
        return {"flash_backward": flash_backward}

    def mistakes(self):
        def ds_of(x, rowsum_term=True, scaled=True):
            scale = 1 / math.sqrt(x["q"].shape[-1])
            s = x["q"] @ swap(x["k"]) * (scale if scaled else 1.0)
            p = np.where(np.tril(np.ones(s.shape[-2:], bool)), np.exp(s - x["lse"][..., None]), 0)
            dp = x["do"] @ swap(x["v"])
            return p * (dp - rowsum(x["do"] * x["o"])) if rowsum_term else p * dp

        def p_unscaled(x):
            ds = ds_of(x, scaled=False)
            scale = 1 / math.sqrt(x["q"].shape[-1])
            return ds @ x["k"] * scale, swap(ds) @ x["q"] * scale, None
        hint = "dS = P * (dP - D) with D = rowsum(dO * O): the D term (softmax's rowsum) is missing"
        mistakes = [Mistake(hint if m.hint.startswith("dS = P * (dP - rowsum") else m.hint, m.seen)
                    for m in self.common_mistakes(ds_of)]
        return mistakes + [Mistake.gives("recompute P from the scaled scores: P = exp(q k^T * scale - lse)",
                                         p_unscaled)]

    def more_stages(self, learner, report):
        """Correct numbers are not the exercise's point on their own: the backward must not hold T x T."""
        case = dict(b=1, h=1, t=self.memory_t, d=4, seed=5)
        x = self.inputs(case, np.float64)
        square = self.memory_t ** 2 * 8
        tracemalloc.start()
        try:
            self.answer(learner, x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if peak >= square / 2:
            raise Failure(f"for T = {self.memory_t} the backward held {peak / 1024:.0f} KiB at its peak, a T x T "
                          f"array is {square / 1024:.0f} KiB: walk the keys (and queries) in tiles, recomputing P "
                          "for one tile at a time from lse")
        report.ok(f"holds no T x T array: {peak / 1024:.0f} KiB at its peak for T = {self.memory_t} "
                  f"(T x T would be {square / 1024:.0f} KiB)")


# ----------------------------------------------------------------------------- 7. multi-head split / merge
class Heads(PythonExercise):
    number, name, section = 7, "heads", "heads"
    title = "the multi-head split and merge"
    solution_ref = ("tensorlite/functional.py::SplitHeadsFunction.backward and "
                    "tensorlite/functional.py::MergeHeadsFunction.backward")
    functions = ("split_heads_backward", "merge_heads_backward")
    gpt_piece = "split and merge backward"
    engine_name = "the engine's split/merge backward"
    drawn = "B of 1 or 2, T of 1 to 5, 1 to 3 heads of size 1 to 3"
    shapes = ("the shapes: q, k, v (B, H, T, D) each -> (B, T, H, D) -> (B, T, C) -> side by side (B, T, 3C); "
              "dy (B, T, C) -> (B, T, H, D) -> (B, H, T, D)")

    def cases(self):
        return st.fixed_dictionaries(dict(b=st.integers(1, 2), t=st.integers(1, 5), h=st.integers(1, 3),
                                          d=st.integers(1, 3), seed=SEEDS))

    def describe(self, case):
        return (f"for {case['h']} heads of size {case['d']} (q, k, v of shape "
                f"{(case['b'], case['h'], case['t'], case['d'])})")

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        b, t, h, d = case["b"], case["t"], case["h"], case["d"]
        draw = lambda *shape: rng.standard_normal(shape).astype(dtype)   # noqa: E731
        return dict(qkv=draw(b, t, 3 * h * d), att=draw(b, h, t, d), dq=draw(b, h, t, d), dk=draw(b, h, t, d),
                    dv=draw(b, h, t, d), dy=draw(b, t, h * d), n_head=h)

    def expected(self, x):
        return [("dqkv", x["qkv"].shape, x["dy"].dtype), ("datt", x["att"].shape, x["dy"].dtype)]

    def answer(self, learner, x):
        expected = self.expected(x)
        return (self.call(learner, "split_heads_backward", (x["dq"], x["dk"], x["dv"]), expected[:1], x)
                + self.call(learner, "merge_heads_backward", (x["dy"], x["n_head"]), expected[1:], x))

    def engine_op(self, x):
        def fn(qkv, att):
            return tl.cat([tl.stack(F.split_heads(qkv, x["n_head"])).reshape(-1), F.merge_heads(att).reshape(-1)])
        return fn, [leaf(x["qkv"]), leaf(x["att"])], ["qkv (split_heads_backward's gradient)",
                                                       "att (merge_heads_backward's gradient)"]

    def plug(self, learner):
        def split(fn, *gys):
            if fn.n != 3:
                return engine_method(SplitHeadsFunction, "backward")(fn, *gys)
            B, H, T, D = gys[0].shape
            return self.call(learner, "split_heads_backward", gys, [("dqkv", (B, T, 3 * H * D), gys[0].dtype)],
                             None)[0]

        def merge(fn, gy):
            B, T, C = gy.shape
            shape = (B, fn.n_head, T, C // fn.n_head)
            return self.call(learner, "merge_heads_backward", (gy, fn.n_head), [("datt", shape, gy.dtype)], None)[0]

        return patches((SplitHeadsFunction, "backward", split), (MergeHeadsFunction, "backward", merge))

    def solution(self):
        def split_heads_backward(dq, dk, dv):
            B, H, T, D = dq.shape
            return run_backward(SplitHeadsFunction, (np.zeros((B, T, 3 * H * D), dq.dtype),), (dq, dk, dv),
                                n_head=H, n=3)

        def merge_heads_backward(dy, n_head):
            B, T, C = dy.shape
            return run_backward(MergeHeadsFunction, (np.zeros((B, n_head, T, C // n_head), dy.dtype),), (dy,),
                                n_head=n_head)
        return {"split_heads_backward": split_heads_backward, "merge_heads_backward": merge_heads_backward}

    def shape_hint(self, label, shape, x):
        if label == "dqkv":
            return "split_heads_backward lays dq, dk and dv side by side again: (B, T, 3 * C), c_attn's output"
        return "merge_heads_backward gives the heads back: (B, H, T, D), attention's output"

    def mistakes(self):
        def merged(d):          # (B, H, T, D) -> (B, T, H * D), done right
            B, H, T, D = d.shape
            return np.swapaxes(d, 1, 2).reshape(B, T, H * D)

        def reshaped(d):        # the same, without the transpose
            B, H, T, D = d.shape
            return d.reshape(B, T, H * D)

        return [
            Mistake.gives("a reshape is not a transpose: (B, H, T, D) -> (B, T, H, D) swaps axes 1 and 2 before "
                          "the heads are laid side by side (a reshape alone mixes positions and heads)",
                          lambda x: (np.concatenate([reshaped(x[n]) for n in ("dq", "dk", "dv")], axis=-1), None)),
            Mistake.gives("a reshape is not a transpose: (B, T, C) -> (B, T, H, D), then swap axes 1 and 2 to get "
                          "(B, H, T, D) (a reshape alone mixes positions and heads)",
                          lambda x: (None, x["dy"].reshape(x["att"].shape))),
            Mistake.gives("c_attn's output holds q, k and v side by side, each C wide: all of q, then all of k, "
                          "then all of v (not q, k, v interleaved head by head)",
                          lambda x: (np.stack([np.swapaxes(x[n], 1, 2) for n in ("dq", "dk", "dv")], axis=3)
                                     .reshape(x["qkv"].shape), None)),
            Mistake.gives("the pieces go back in the order split_heads made them: q, k, v",
                          lambda x: (np.concatenate([merged(x[n]) for n in ("dv", "dk", "dq")], axis=-1), None)),
        ]
