"""Exercise 9: a whole GPT block by hand, every intermediate's gradient beside autograd's (backprop ninja's table)."""
import math

import numpy as np
from hypothesis import strategies as st

import tensorlite as tl
import tensorlite.functional as F
from gpt.model import Block
from tensorlite.autograd import Function
from tensorlite.ops import MatMulFunction

from . import training
from .attention import Heads, swap
from .core import (INVALID, Exercise, Failure, Learner, check_answer, close, engine_method, for_drawn_cases, grad_of,
                   patched, stub_untouched)
from .layers import GELU, SEEDS, LayerNorm, Linear, Softmax, run_backward

# The forward's intermediates, in the order backward reaches them (out's gradient is dout itself).
INTERMEDIATES = ("mlp_out", "act", "fc", "ln2", "x1", "attn_out", "merged", "att", "probs", "masked", "scores",
                 "v", "k", "q", "qkv", "ln1", "x")
PARAMETERS = ("mlp.c_proj.weight", "mlp.c_proj.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "ln_2.weight",
              "ln_2.bias", "attn.c_proj.weight", "attn.c_proj.bias", "attn.c_attn.weight", "attn.c_attn.bias",
              "ln_1.weight", "ln_1.bias")
EXACT, APPROXIMATE, WRONG, MISSING = "exact", "approximate", "wrong", "missing"


def layer_norm_with_stats(x, weight, bias, name, cache):
    """F.layer_norm(x, (C,), weight, bias), and its xhat and rstd (what its backward needs) into cache."""
    data = x.data
    centred = data - data.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-5)
    cache[f"{name}_xhat"], cache[f"{name}_rstd"] = (centred * rstd).astype(data.dtype), rstd.astype(data.dtype)
    return F.layer_norm(x, x.shape[-1:], weight, bias)


def block_forward(x, params, n_head):
    """gpt/model.py::Block.forward, written out one intermediate at a time: ({name: Tensor}, {name: array} of
    the LayerNorm statistics)."""
    p, stats, t = params, {}, {"x": x}
    t["ln1"] = layer_norm_with_stats(x, p["ln_1.weight"], p["ln_1.bias"], "ln1", stats)
    t["qkv"] = F.linear(t["ln1"], p["attn.c_attn.weight"], p["attn.c_attn.bias"])
    t["q"], t["k"], t["v"] = F.split_heads(t["qkv"], n_head)
    T, D = t["q"].shape[-2:]
    t["scores"] = (t["q"] @ t["k"].swapaxes(-1, -2)) * (1 / math.sqrt(D))
    t["masked"] = t["scores"] + tl.Tensor(F.causal_mask(np, T, T, x.dtype))
    t["probs"] = F.softmax(t["masked"], -1)
    t["att"] = t["probs"] @ t["v"]
    t["merged"] = F.merge_heads(t["att"])
    t["attn_out"] = F.linear(t["merged"], p["attn.c_proj.weight"], p["attn.c_proj.bias"])
    t["x1"] = x + t["attn_out"]
    t["ln2"] = layer_norm_with_stats(t["x1"], p["ln_2.weight"], p["ln_2.bias"], "ln2", stats)
    t["fc"] = F.linear(t["ln2"], p["mlp.c_fc.weight"], p["mlp.c_fc.bias"])
    t["act"] = F.gelu(t["fc"], approximate="tanh")
    t["mlp_out"] = F.linear(t["act"], p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])
    t["out"] = t["x1"] + t["mlp_out"]
    return t, stats


def engine_walk(cache, params, dout):
    """The solution: the block's backward walked by hand with the engine's own Functions' backward (each the
    solution of an earlier exercise), in gpt/model.py::Block.forward's order reversed."""
    linear = Linear().solution()["linear_backward"]
    layer_norm = LayerNorm().solution()["layer_norm_backward"]
    heads = Heads().solution()
    c, p, g = cache, params, {"mlp_out": dout}
    g["act"], g["mlp.c_proj.weight"], g["mlp.c_proj.bias"] = linear(c["act"], p["mlp.c_proj.weight"], dout)
    g["fc"] = GELU().solution()["gelu_backward"](c["fc"], g["act"])
    g["ln2"], g["mlp.c_fc.weight"], g["mlp.c_fc.bias"] = linear(c["ln2"], p["mlp.c_fc.weight"], g["fc"])
    branch, g["ln_2.weight"], g["ln_2.bias"] = layer_norm(g["ln2"], c["ln2_xhat"], c["ln2_rstd"], p["ln_2.weight"])
    g["x1"] = dout + branch                                   # x1 feeds ln_2 and the skip: both gradients add
    g["attn_out"] = g["x1"]
    g["merged"], g["attn.c_proj.weight"], g["attn.c_proj.bias"] = linear(c["merged"], p["attn.c_proj.weight"],
                                                                         g["attn_out"])
    g["att"] = heads["merge_heads_backward"](g["merged"], c["q"].shape[1])
    g["probs"], g["v"] = run_backward(MatMulFunction, (c["probs"], c["v"]), (g["att"],))
    g["masked"] = Softmax().solution()["softmax_backward"](c["probs"], g["probs"], -1)
    g["scores"] = g["masked"]                                 # adding a constant mask: the identity backward
    scale = 1 / math.sqrt(c["q"].shape[-1])
    g["q"], dk_t = run_backward(MatMulFunction, (c["q"], swap(c["k"])), (g["scores"] * scale,))
    g["k"] = swap(dk_t)
    g["qkv"] = heads["split_heads_backward"](g["q"], g["k"], g["v"])
    g["ln1"], g["attn.c_attn.weight"], g["attn.c_attn.bias"] = linear(c["ln1"], p["attn.c_attn.weight"], g["qkv"])
    branch, g["ln_1.weight"], g["ln_1.bias"] = layer_norm(g["ln1"], c["ln1_xhat"], c["ln1_rstd"], p["ln_1.weight"])
    g["x"] = g["x1"] + branch
    return g


class BlockExercise(Exercise):
    number, name, section, extension = 9, "block", "residual", ".py"
    title = "a whole GPT block by hand: every intermediate's gradient beside autograd's"
    solution_ref = "exercises/grader/block.py::engine_walk (the engine's own backward of each op, chained)"
    functions = ("block_backward",)
    table_case = dict(b=2, t=5, h=2, d=4, seed=0)
    max_examples = 4

    def learner(self, path):
        return Learner.from_file(path, self.functions)

    def engine(self):
        return Learner({self.functions[0]: engine_walk}, self.solution_ref, whose="the engine's")

    def untouched(self, path):
        return stub_untouched(path, self.functions)

    # ---- one case: the forward, autograd's gradients, the learner's
    def reference(self, case):
        """(cache, params, dout, autograd's gradient of every intermediate and parameter), float64."""
        rng = np.random.default_rng(case["seed"])
        C = case["h"] * case["d"]
        shapes = {"ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (3 * C, C),
                  "attn.c_attn.bias": (3 * C,), "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,),
                  "ln_2.weight": (C,), "ln_2.bias": (C,), "mlp.c_fc.weight": (4 * C, C), "mlp.c_fc.bias": (4 * C,),
                  "mlp.c_proj.weight": (C, 4 * C), "mlp.c_proj.bias": (C,)}
        params = {n: tl.Tensor(rng.standard_normal(s) / math.sqrt(s[-1]) + (n.endswith("ln_1.weight")
                                                                           or n.endswith("ln_2.weight")),
                               requires_grad=True) for n, s in shapes.items()}
        x = tl.Tensor(rng.standard_normal((case["b"], case["t"], C)), requires_grad=True)
        t, stats = block_forward(x, params, case["h"])
        for name in INTERMEDIATES[:-1]:
            t[name].retain_grad()
        dout = rng.standard_normal(t["out"].shape)
        t["out"].backward(dout)
        autograd = {n: grad_of(t[n]) for n in INTERMEDIATES}
        autograd.update({n: grad_of(params[n]) for n in PARAMETERS})
        cache = {n: v.data for n, v in t.items()}
        cache.update(stats)
        return cache, {n: p.data for n, p in params.items()}, dout, autograd

    def answer(self, learner, cache, params, dout):
        grads = learner.call(self.functions[0], dict(cache), dict(params), dout)
        if not isinstance(grads, dict):
            raise Failure(f"{self.functions[0]}() returned {type(grads).__name__}; expected a dict of gradients, "
                          "one per intermediate and parameter name", kind=INVALID)
        return grads

    def rows(self, grads, autograd):
        """[(name, status, max diff or None, note)] for every intermediate and parameter, in backward order."""
        rows = []
        for name in INTERMEDIATES + PARAMETERS:
            want = autograd[name]
            got = grads.get(name)
            if got is None:
                rows.append((name, MISSING, None, ""))
                continue
            try:
                got, = check_answer(self.functions[0], got, [(f'grads["{name}"]', want.shape, want.dtype)])
            except Failure as failure:
                rows.append((name, WRONG, None, failure.message.split("returned ", 1)[-1]))
                continue
            diff = float(np.abs(got - want).max(initial=0.0)) if np.isfinite(got).all() else math.inf
            status = (EXACT if np.array_equal(got, want) else APPROXIMATE if close((got,), (want,)) else WRONG)
            rows.append((name, status, diff, ""))
        return rows

    def print_table(self, rows, case, report):
        report.say(f"        the gradient of each intermediate, yours beside autograd's (B, T, C, heads = "
                   f"{case['b']}, {case['t']}, {case['h'] * case['d']}, {case['h']}; float64):")
        for name, status, diff, note in rows:
            shown_diff = "" if diff is None else f"max diff {diff:.1e}"
            report.say(f"        {name:<20} {status:<12} {shown_diff:<16} {note}".rstrip())

    def hint(self, name, grads, autograd, cache, params):
        """What the first wrong gradient's usual mistake is, when the grader recognises it."""
        got, want = grads.get(name), autograd
        if not isinstance(got, np.ndarray) or got.shape != want[name].shape:
            return None
        same = lambda other: close((got,), (other,))   # noqa: E731
        if name in ("x1", "x"):
            skip, ln, fed = (want["mlp_out"], "ln2", "ln_2") if name == "x1" else (want["x1"], "ln1", "ln_1")
            if same(skip) or same(want[name] - skip):
                return (f"{name} feeds two ops, {fed} and the residual skip: its gradient is the sum of both "
                        "(the skip hands the gradient through unchanged)")
            if same(skip + cache[f"{ln}_rstd"] * want[ln] * params[f"{fed}.weight"]):
                return (f"{fed}'s mean and variance depend on its input too: dx = rstd * (dxhat - mean(dxhat) - "
                        "xhat * mean(dxhat * xhat)), not rstd * dxhat")
        if name == "masked" and same(cache["probs"] * want["probs"]):
            return "softmax's rowsum term is missing: dS = P * (dP - rowsum(dP * P))"
        if name in ("q", "k") and same(want[name] * math.sqrt(cache["q"].shape[-1])):
            return "the scores are q k^T / sqrt(D): the scale is in dq and dk too"
        return None

    # ---- the stages
    def grade(self, learner, report):
        case = self.table_case
        cache, params, dout, autograd = self.reference(case)
        grads = self.answer(learner, cache, params, dout)
        rows = self.rows(grads, autograd)
        self.print_table(rows, case, report)
        wrong = [r for r in rows if r[1] in (WRONG, MISSING)]
        if wrong:
            first = next((r for r in rows if r[1] == WRONG), wrong[0])
            raise Failure(f"{len(wrong)} of {len(rows)} gradients are not right yet; the first wrong one in backward "
                          f"order is {first[0]} ({first[1]}): the ones after it may only be wrong because of it",
                          hint=self.hint(first[0], grads, autograd, cache, params))
        report.ok(f"all {len(rows)} gradients match autograd's ({sum(r[1] == EXACT for r in rows)} exactly)")

        def check(other):
            cache, params, dout, autograd = self.reference(other)
            bad = [r for r in self.rows(self.answer(learner, cache, params, dout), autograd) if r[1] != EXACT
                   and r[1] != APPROXIMATE]
            if bad:
                raise Failure(f"for B, T, heads, head size = {other['b']}, {other['t']}, {other['h']}, {other['d']} "
                              f"the gradient of {bad[0][0]} is {bad[0][1]} {bad[0][3]}".rstrip())
        for_drawn_cases(st.fixed_dictionaries(dict(b=st.integers(1, 2), t=st.integers(1, 6), h=st.integers(1, 3),
                                                   d=st.integers(1, 3), seed=SEEDS)), check, self.max_examples)
        report.ok(f"and on {self.max_examples} drawn shapes (B of 1 or 2, T of 1 to 6, 1 to 3 heads of size 1 to 3)")
        training.train_stage(f"{learner.whose} block backward", lambda: self.plug(learner), report)

    def plug(self, learner):
        """Every Block of the GPT as one Function whose backward is block_backward."""
        exercise = self

        class HandBlockFunction(Function):
            def __init__(self, n_head):
                super().__init__()
                self.n_head = n_head

            def forward(self, x, *params):
                with tl.no_grad():
                    named = {n: tl.Tensor(p) for n, p in zip(PARAMETERS, params)}
                    t, stats = block_forward(tl.Tensor(x), named, self.n_head)
                self.cache = {n: v.data for n, v in t.items()}
                self.cache.update(stats)
                self.params = dict(zip(PARAMETERS, params))
                return self.cache["out"]

            def backward(self, gy):
                grads = exercise.answer(learner, self.cache, self.params, gy)
                wanted = [("x", self.cache["x"])] + [(n, self.params[n]) for n in PARAMETERS]
                return tuple(check_answer(exercise.functions[0], grads.get(n), [(f'grads["{n}"]', a.shape, a.dtype)])[0]
                             for n, a in wanted)

        def forward(block, x, cache=None):
            named = dict(block.named_parameters())
            if cache is not None or any(named.get(n) is None for n in PARAMETERS):
                return engine_method(Block, "forward")(block, x, cache)
            return HandBlockFunction.apply(x, *(named[n] for n in PARAMETERS), n_head=block.attn.n_head)
        return patched(Block, "forward", forward)
