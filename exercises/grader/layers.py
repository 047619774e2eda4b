"""Exercises 1-5 and 8: the backward of each layer a GPT is made of, one function each."""
import functools
import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.functional import (CrossEntropyFunction, EmbeddingFunction, GELUFunction, LayerNormFunction,
                                   LinearFunction, ScaledDotProductAttentionFunction, SoftmaxFunction)

from .core import close, engine_method, patched, patches
from .python import Mistake, PythonExercise

SEEDS = st.integers(0, 2 ** 32 - 1)


def leaf(array):
    """A float64 leaf that requires grad, for gradcheck."""
    return tl.Tensor(array, requires_grad=True)


def run_backward(cls, inputs, grads, **params):
    """The engine's own Function: its forward on `inputs` (which saves what backward needs), then its backward."""
    fn = cls(**params)
    fn.xp, fn.needs_input_grad = np, (True,) * len(inputs)
    engine_method(cls, "forward")(fn, *inputs)
    return engine_method(cls, "backward")(fn, *grads)


def saved_backward(cls, saved, grads, *args, **params):
    """The engine's own backward of `cls` from the arrays its forward saves."""
    fn = cls(*args, **params)
    fn.xp, fn.saved = np, saved
    return engine_method(cls, "backward")(fn, *grads)


def softmax_of(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def rowsum(a, dim=-1):
    return a.sum(axis=dim, keepdims=True)


# ----------------------------------------------------------------------------- 1. linear
class Linear(PythonExercise):
    number, name, section = 1, "linear", "linear"
    title = "the linear layer: dX, dW, db"
    solution_ref = "tensorlite/functional.py::LinearFunction.backward"
    functions = ("linear_backward",)
    gpt_piece = "linear backward"
    engine_name = "the engine's linear backward"
    drawn = "x of 2 or 3 dims, 1 to 5 features in and out, the bias broadcast over every row"
    shapes = ("the shapes: dx = dy @ weight, (..., out) @ (out, in); dW = dy^T x with the leading axes flattened "
              "to N rows, (out, N) @ (N, in); dbias (out,) sums dy over those rows")

    def cases(self):
        return st.fixed_dictionaries(dict(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
                                          n_in=st.integers(1, 5), n_out=st.integers(1, 5), seed=SEEDS))

    def describe(self, case):
        return f"for x of shape {case['lead'] + (case['n_in'],)} and weight {(case['n_out'], case['n_in'])}"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        lead, n_in, n_out = case["lead"], case["n_in"], case["n_out"]
        draw = lambda *shape: rng.standard_normal(shape).astype(dtype)   # noqa: E731
        return dict(x=draw(*lead, n_in), weight=draw(n_out, n_in), bias=draw(n_out), dy=draw(*lead, n_out))

    def expected(self, x):
        dtype = x["x"].dtype
        return [("dx", x["x"].shape, dtype), ("dweight", x["weight"].shape, dtype),
                ("dbias", x["weight"].shape[:1], dtype)]

    def answer(self, learner, x):
        return self.call(learner, "linear_backward", (x["x"], x["weight"], x["dy"]), self.expected(x), x)

    def engine_op(self, x):
        return F.linear, [leaf(x["x"]), leaf(x["weight"]), leaf(x["bias"])], ["x", "weight", "bias"]

    def plug(self, learner):
        def backward(fn, gy):
            x2, weight = fn.saved
            answer = self.answer(learner, dict(x=x2.reshape(fn.x_shape), weight=weight, dy=gy))
            return answer[:len(fn.needs_input_grad)]   # no dbias for a Linear without bias
        return patched(LinearFunction, "backward", backward)

    def solution(self):
        def linear_backward(x, weight, dy):
            return run_backward(LinearFunction, (x, weight, np.zeros(weight.shape[0], weight.dtype)), (dy,))
        return {"linear_backward": linear_backward}

    def shape_hint(self, label, shape, x):
        (n_out, n_in), lead = x["weight"].shape, x["x"].shape[:-1]
        if label == "dweight" and shape == (n_in, n_out):
            return "that is dW transposed: dW = dy^T x has weight's shape (out, in); x^T dy is (in, out)"
        if label == "dbias":
            return ("the bias was added to every row, so dbias sums dy over all of them, every leading axis: "
                    "dy.reshape(-1, out).sum(axis=0)")
        if label == "dx" and shape == lead + (n_out,):
            return "dx has x's shape: dx = dy @ weight, (..., out) @ (out, in)"
        return None

    def mistakes(self):
        flat = lambda a: a.reshape(-1, a.shape[-1])   # noqa: E731
        return [
            Mistake.gives("dx = dy @ weight (weight is (out, in)); dy @ weight.T uses the forward's product",
                          lambda x: (x["dy"] @ x["weight"].T, flat(x["dy"]).T @ flat(x["x"]), flat(x["dy"]).sum(0))),
            Mistake.gives("dW = dy^T x, with weight's layout (out, in); x^T dy is its transpose",
                          lambda x: (x["dy"] @ x["weight"], flat(x["x"]).T @ flat(x["dy"]), flat(x["dy"]).sum(0))),
            Mistake.gives("dbias is the sum of dy over the rows, not its mean: each row added the whole bias",
                          lambda x: (x["dy"] @ x["weight"], flat(x["dy"]).T @ flat(x["x"]), flat(x["dy"]).mean(0))),
        ]


# ----------------------------------------------------------------------------- 2. softmax
@st.composite
def _shape_and_dim(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    return dict(shape=shape, dim=draw(st.integers(-len(shape), len(shape) - 1)), seed=draw(SEEDS))


def attention_with_softmax(softmax_backward):
    """A replacement for the engine's attention backward (tensorlite/functional.py's
    ScaledDotProductAttentionFunction.backward, without dropout) with its softmax step, dS = softmax_backward(P, dP),
    handed to someone else."""
    def backward(fn, gy):
        q_scaled, k, v, probs, drop, _ = fn.saved
        if drop is not None:
            return engine_method(ScaledDotProductAttentionFunction, "backward")(fn, gy)
        gv = np.swapaxes(probs, -1, -2) @ gy                        # dV = P^T dO
        gs = softmax_backward(probs, gy @ np.swapaxes(v, -1, -2))   # dS from P and dP = dO V^T
        return gs @ k * fn.scale, np.swapaxes(gs, -1, -2) @ q_scaled, gv
    return backward


class Softmax(PythonExercise):
    number, name, section = 2, "softmax", "softmax"
    title = "softmax: the Jacobian-vector form"
    solution_ref = "tensorlite/functional.py::SoftmaxFunction.backward"
    functions = ("softmax_backward",)
    gpt_piece = "softmax backward (the dS step of every attention head)"
    engine_name = "the engine's softmax backward"
    drawn = "1 to 3 dims of 1 to 6, over every dim"
    shapes = ("the rowsum keeps its axis so that it broadcasts along the row: (dy * y).sum(axis=dim, "
              "keepdims=True)")

    def cases(self):
        return _shape_and_dim()

    def fixed_cases(self):
        return [("the first of 3 axes", dict(shape=(3, 4, 5), dim=0, seed=1)),
                ("a middle axis counted from the end", dict(shape=(2, 5, 3), dim=-2, seed=2))]

    def describe(self, case):
        return f"for y of shape {case['shape']} with dim={case['dim']}"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        x = (2 * rng.standard_normal(case["shape"])).astype(dtype)
        return dict(x=x, y=softmax_of(x, case["dim"]), dy=rng.standard_normal(case["shape"]).astype(dtype),
                    dim=case["dim"])

    def expected(self, x):
        return [("dx", x["y"].shape, x["y"].dtype)]

    def answer(self, learner, x):
        return self.call(learner, "softmax_backward", (x["y"], x["dy"], x["dim"]), self.expected(x), x)

    def engine_op(self, x):
        return lambda t: F.softmax(t, x["dim"]), [leaf(x["x"])], ["x"]

    def plug(self, learner):
        def step(y, dy, dim=-1):
            return self.answer(learner, dict(y=y, dy=dy, dim=dim))[0]
        return patches((SoftmaxFunction, "backward", lambda fn, gy: step(fn.saved[0], gy, fn.dim)),
                       (ScaledDotProductAttentionFunction, "backward", attention_with_softmax(step)))

    def solution(self):
        def softmax_backward(y, dy, dim):
            return saved_backward(SoftmaxFunction, (y,), (dy,), dim)   # its forward saves y itself
        return {"softmax_backward": softmax_backward}

    def mistakes(self):
        y, dy = (lambda x: x["y"]), (lambda x: x["dy"])
        return [
            Mistake.gives("softmax's Jacobian is diag(y) - y y^T: y * dy is its diagonal part only; the rowsum term "
                          "- y * rowsum(dy * y) is the rest (every y of a row moves when one x does)",
                          lambda x: (y(x) * dy(x),)),
            Mistake.gives("y * (1 - y) * dy keeps only the diagonal entries dy_i/dx_i of the Jacobian; the "
                          "off-diagonal -y_i y_j give dx = y * (dy - rowsum(dy * y))",
                          lambda x: (y(x) * (1 - y(x)) * dy(x),)),
            Mistake.gives("the rowsum runs over `dim` only, one number per row: (dy * y).sum(axis=dim, keepdims=True), "
                          "not over the whole array",
                          lambda x: (y(x) * (dy(x) - (dy(x) * y(x)).sum()),)),
            Mistake.gives("softmax normalised over `dim`, which need not be the last axis: sum over axis=dim",
                          lambda x: (y(x) * (dy(x) - rowsum(dy(x) * y(x))),)),
            Mistake.gives("the sign: dx = y * (dy - rowsum(dy * y)), not y * (rowsum(dy * y) - dy)",
                          lambda x: (y(x) * (rowsum(dy(x) * y(x), x["dim"]) - dy(x)),)),
        ]


# ----------------------------------------------------------------------------- 3. cross-entropy
@st.composite
def _logits_and_targets(draw):
    n, c = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    targets = draw(st.lists(st.integers(-1, c - 1), min_size=n, max_size=n).filter(lambda t: max(t) >= 0))
    return dict(n=n, c=c, targets=tuple(targets), scale=3.0, seed=draw(SEEDS))


class CrossEntropy(PythonExercise):
    number, name, section = 3, "cross_entropy", "cross-entropy"
    title = "log-softmax + cross-entropy: softmax - onehot"
    solution_ref = "tensorlite/functional.py::CrossEntropyFunction.backward"
    functions = ("cross_entropy_backward",)
    gpt_piece = "cross-entropy backward"
    engine_name = "the engine's cross-entropy backward"
    drawn = "1 to 6 rows of 1 to 7 classes, some targets ignore_index = -1"

    def cases(self):
        return _logits_and_targets()

    def fixed_cases(self):
        return [("logits around 1000", dict(n=3, c=4, targets=(0, 3, -1), scale=1000.0, seed=1))]

    def describe(self, case):
        return f"for logits of shape {(case['n'], case['c'])} and targets {list(case['targets'])}"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        logits = (case["scale"] * rng.standard_normal((case["n"], case["c"]))).astype(dtype)
        return dict(logits=logits, targets=np.array(case["targets"], dtype=np.int64), ignore_index=-1)

    def expected(self, x):
        return [("dlogits", x["logits"].shape, x["logits"].dtype)]

    def answer(self, learner, x):
        return self.call(learner, "cross_entropy_backward", (x["logits"], x["targets"], x["ignore_index"]),
                         self.expected(x), x)

    def engine_op(self, x):
        op = lambda t: F.cross_entropy(t, x["targets"], ignore_index=x["ignore_index"])   # noqa: E731
        return op, [leaf(x["logits"])], ["logits"]

    def plug(self, learner):
        """The engine's backward keeps softmax, not the logits: the forward hands them over here."""
        def keep_logits(fn, logits):
            fn.grader_logits = logits
            return engine_method(CrossEntropyFunction, "forward")(fn, logits)

        def learners_backward(fn, gy):
            if fn.reduction != "mean":
                return engine_method(CrossEntropyFunction, "backward")(fn, gy)
            logits = fn.grader_logits.reshape(-1, fn.logits_shape[-1])
            x = dict(logits=logits, targets=fn.targets.reshape(-1).astype(np.int64), ignore_index=fn.ignore_index)
            return (self.answer(learner, x)[0] * gy).reshape(fn.logits_shape)

        return patches((CrossEntropyFunction, "forward", keep_logits), (CrossEntropyFunction, "backward",
                                                                         learners_backward))

    def solution(self):
        def cross_entropy_backward(logits, targets, ignore_index):
            return run_backward(CrossEntropyFunction, (logits,), (logits.dtype.type(1),), targets=targets,
                                ignore_index=ignore_index, reduction="mean")
        return {"cross_entropy_backward": cross_entropy_backward}

    def mistakes(self):
        def parts(x):
            p, t = softmax_of(x["logits"].astype(np.float64), -1), x["targets"]
            onehot = np.zeros_like(p)
            onehot[np.arange(len(t)), t] = 1          # an ignored target (-1) marks the last class
            valid = (t != x["ignore_index"])[:, None]
            return p, onehot, valid, valid.sum()

        def cast(x, *arrays):
            return tuple(a.astype(x["logits"].dtype) for a in arrays)

        def unmeaned(x):
            p, onehot, valid, _ = parts(x)
            return cast(x, (p - onehot) * valid)

        def over_all_rows(x):
            p, onehot, valid, _ = parts(x)
            return cast(x, (p - onehot) * valid / len(p))

        def ignored_rows_kept(x, answer, learner):
            """The rows that count are right, the ignored ones are not zero."""
            p, onehot, valid, n_valid = parts(x)
            right, = cast(x, (p - onehot) * valid / n_valid)
            counted = valid[:, 0]
            return (not counted.all() and close((answer[0][counted],), (right[counted],))
                    and bool(np.abs(answer[0][~counted]).max() > 0))

        def flipped(x):
            p, onehot, valid, n_valid = parts(x)
            return cast(x, (onehot - p) * valid / n_valid)

        return [
            Mistake("exp overflowed: subtract each row's max before exp (softmax(x - max) = softmax(x), and every "
                    "exponent is then <= 0)", lambda x, answer, learner: not np.isfinite(answer[0]).all()),
            Mistake.gives("the loss is the mean over the rows: divide by the number of rows that count", unmeaned),
            Mistake.gives("the mean is over the rows whose target is not ignore_index, so divide by their number, "
                          "not by every row", over_all_rows),
            Mistake("a row whose target is ignore_index adds nothing to the loss: its gradient is 0 (and a onehot "
                    "at index -1 would mark the last class)", ignored_rows_kept),
            Mistake.gives("the sign: d loss / d logits = softmax - onehot (more probability on a wrong class raises "
                          "the loss)", flipped),
        ]


# ----------------------------------------------------------------------------- 4. layernorm
class LayerNorm(PythonExercise):
    number, name, section = 4, "layernorm", "layernorm"
    title = "LayerNorm, with its mean and variance depending on x"
    solution_ref = "tensorlite/functional.py::LayerNormFunction.backward"
    functions = ("layer_norm_backward",)
    gpt_piece = "LayerNorm backward"
    engine_name = "the engine's LayerNorm backward"
    drawn = "x of 2 or 3 dims, 2 to 6 features, weight and bias broadcast over the rows"
    shapes = ("the row means keep their axis, mean(axis=-1, keepdims=True), so they broadcast along each row; "
              "dweight and dbias (C,) sum over every leading axis")

    def cases(self):
        return st.fixed_dictionaries(dict(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
                                          c=st.integers(2, 6), seed=SEEDS))   # one feature: y = bias, no x

    def describe(self, case):
        return f"for x of shape {case['lead'] + (case['c'],)}"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        shape = case["lead"] + (case["c"],)
        x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
        centred = x - x.mean(axis=-1, keepdims=True)
        rstd = (1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-5)).astype(dtype)
        return dict(x=x, xhat=centred * rstd, rstd=rstd, weight=(1 + rng.standard_normal(case["c"])).astype(dtype),
                    bias=rng.standard_normal(case["c"]).astype(dtype), dy=rng.standard_normal(shape).astype(dtype))

    def expected(self, x):
        dtype, c = x["dy"].dtype, x["dy"].shape[-1]
        return [("dx", x["dy"].shape, dtype), ("dweight", (c,), dtype), ("dbias", (c,), dtype)]

    def answer(self, learner, x):
        return self.call(learner, "layer_norm_backward", (x["dy"], x["xhat"], x["rstd"], x["weight"]),
                         self.expected(x), x)

    def engine_op(self, x):
        op = lambda t, w, b: F.layer_norm(t, w.shape, w, b)   # noqa: E731
        return op, [leaf(x["x"]), leaf(x["weight"]), leaf(x["bias"])], ["x", "weight", "bias"]

    def plug(self, learner):
        def backward(fn, gy):
            xhat, rstd, weight = fn.saved
            ones = np.ones(gy.shape[-1], gy.dtype)
            dx, dweight, dbias = self.answer(learner, dict(dy=gy, xhat=xhat, rstd=rstd,
                                                           weight=ones if weight is None else weight))
            return (dx,) + ((dweight,) if fn.has_weight else ()) + ((dbias,) if fn.has_bias else ())
        return patched(LayerNormFunction, "backward", backward)

    def solution(self):
        def layer_norm_backward(dy, xhat, rstd, weight):
            return saved_backward(LayerNormFunction, (xhat, rstd, weight), (dy,), eps=1e-5, has_weight=True,
                                  has_bias=True)
        return {"layer_norm_backward": layer_norm_backward}

    def shape_hint(self, label, shape, x):
        if label in ("dweight", "dbias"):
            return f"{label[1:]} is shared by every row: its gradient sums over all the leading axes"
        return None

    def mistakes(self):
        def with_dx(dx_of):
            def answer(x):
                g, xhat = x["dy"] * x["weight"], x["xhat"]
                rows = x["dy"].reshape(-1, x["dy"].shape[-1])
                return (dx_of(g, xhat, x) * x["rstd"], (rows * xhat.reshape(rows.shape)).sum(0), rows.sum(0))
            return answer

        mean = lambda a: a.mean(axis=-1, keepdims=True)   # noqa: E731
        return [
            Mistake.gives("LayerNorm's mean and variance depend on x: dx = rstd * dxhat treats them as constants; "
                          "dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))",
                          with_dx(lambda g, xhat, x: g)),
            Mistake.gives("the variance depends on x too: the - xhat * mean(dxhat * xhat) term is missing",
                          with_dx(lambda g, xhat, x: g - mean(g))),
            Mistake.gives("the mean depends on x too: the - mean(dxhat) term is missing",
                          with_dx(lambda g, xhat, x: g - xhat * mean(g * xhat))),
            Mistake.gives("the gradient reaching xhat is dxhat = dy * weight, not dy",
                          with_dx(lambda g, xhat, x: x["dy"] - mean(x["dy"]) - xhat * mean(x["dy"] * xhat))),
            Mistake.gives("the two terms are means over the row (divided by C), not sums",
                          with_dx(lambda g, xhat, x: g - rowsum(g) - xhat * rowsum(g * xhat))),
        ]


# ----------------------------------------------------------------------------- 5. gelu
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELU(PythonExercise):
    number, name, section = 5, "gelu", "gelu"
    title = "GELU, GPT-2's tanh form"
    solution_ref = "tensorlite/functional.py::GELUFunction.backward"
    functions = ("gelu_backward",)
    gpt_piece = "GELU backward"
    engine_name = "the engine's GELU backward"
    drawn = "1 to 3 dims of 1 to 6"

    def cases(self):
        return st.fixed_dictionaries(dict(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
                                          seed=SEEDS))

    def describe(self, case):
        return f"for x of shape {case['shape']}"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        return dict(x=(2 * rng.standard_normal(case["shape"])).astype(dtype),
                    dy=rng.standard_normal(case["shape"]).astype(dtype))

    def expected(self, x):
        return [("dx", x["x"].shape, x["x"].dtype)]

    def answer(self, learner, x):
        return self.call(learner, "gelu_backward", (x["x"], x["dy"]), self.expected(x), x)

    def engine_op(self, x):
        return functools.partial(F.gelu, approximate="tanh"), [leaf(x["x"])], ["x"]

    def plug(self, learner):
        def backward(fn, gy):
            if fn.approximate != "tanh":
                return engine_method(GELUFunction, "backward")(fn, gy)
            return self.answer(learner, dict(x=fn.saved[0], dy=gy))[0]
        return patched(GELUFunction, "backward", backward)

    def solution(self):
        def gelu_backward(x, dy):
            return run_backward(GELUFunction, (x,), (dy,), approximate="tanh")
        return {"gelu_backward": gelu_backward}

    def mistakes(self):
        def parts(x):
            x64 = x["x"].astype(np.float64)
            t = np.tanh(_SQRT_2_OVER_PI * (x64 + 0.044715 * x64 ** 3))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x64 ** 2)
            return x64, t, 0.5 * (1 + t), du

        def wrong(form):
            return lambda x: (form(*parts(x), x["dy"]).astype(x["x"].dtype),)

        erf = np.vectorize(math.erf)
        pdf = lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi)   # noqa: E731  (the standard normal's)
        return [
            Mistake.gives("multiply by dy: the gradient of an elementwise op is dy * dy/dx",
                          wrong(lambda x, t, h, du, dy: h + 0.5 * x * (1 - t * t) * du)),
            Mistake.gives("h depends on x too: y = x h, so dy/dx = h + x dh/dx (the product rule)",
                          wrong(lambda x, t, h, du, dy: dy * h)),
            Mistake.gives("dt/dx = (1 - t^2) u' with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2): the inner polynomial's "
                          "derivative is missing",
                          wrong(lambda x, t, h, du, dy: dy * (h + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI))),
            Mistake.gives("that is the exact (erf) GELU's derivative, Phi(x) + x phi(x); the exercise is GPT-2's tanh "
                          "form", wrong(lambda x, t, h, du, dy: dy * (0.5 * (1 + erf(x / math.sqrt(2))) + x * pdf(x)))),
        ]


# ----------------------------------------------------------------------------- 8. embedding
@st.composite
def _ids(draw):
    num = draw(st.integers(1, 5))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    return dict(num=num, shape=shape, c=draw(st.integers(1, 4)), seed=draw(SEEDS))


class Embedding(PythonExercise):
    number, name, section = 8, "embedding", "embedding"
    title = "the embedding's scatter-add (repeated ids)"
    solution_ref = "tensorlite/functional.py::EmbeddingFunction.backward"
    functions = ("embedding_backward",)
    gpt_piece = "embedding backward (token and position tables)"
    engine_name = "the engine's embedding backward"
    drawn = "ids of 1 or 2 dims into tables of 1 to 5 rows (so ids repeat), 1 to 4 wide"

    def cases(self):
        return _ids()

    def fixed_cases(self):
        return [("ids that repeat", dict(num=3, shape=(2, 4), c=2, seed=3, ids=((0, 2, 2, 1), (2, 0, 0, 2))))]

    def describe(self, case):
        return f"for ids of shape {case['shape']} into a table of {case['num']} rows, {case['c']} wide"

    def inputs(self, case, dtype):
        rng = np.random.default_rng(case["seed"])
        ids = np.array(case["ids"]) if "ids" in case else rng.integers(0, case["num"], case["shape"])
        return dict(ids=ids.astype(np.int64), weight=rng.standard_normal((case["num"], case["c"])).astype(dtype),
                    dout=rng.standard_normal(case["shape"] + (case["c"],)).astype(dtype), num=case["num"])

    def expected(self, x):
        return [("dweight", x["weight"].shape, x["dout"].dtype)]

    def answer(self, learner, x):
        return self.call(learner, "embedding_backward", (x["ids"], x["dout"], x["num"]), self.expected(x), x)

    def engine_op(self, x):
        return lambda w: F.embedding(x["ids"], w), [leaf(x["weight"])], ["weight"]

    def plug(self, learner):
        def backward(fn, gy):
            weight = np.empty((fn.num_rows, gy.shape[-1]), gy.dtype)
            return self.answer(learner, dict(ids=fn.idx, dout=gy, num=fn.num_rows, weight=weight))[0]
        return patched(EmbeddingFunction, "backward", backward)

    def solution(self):
        def embedding_backward(ids, dout, num_embeddings):
            table = np.zeros((num_embeddings, dout.shape[-1]), dout.dtype)
            return run_backward(EmbeddingFunction, (table,), (dout,), idx=ids)
        return {"embedding_backward": embedding_backward}

    def shape_hint(self, label, shape, x):
        if shape[:1] != (x["num"],):
            return "dweight has a row per row of the table (num_embeddings), not one per position"
        return None

    def mistakes(self):
        def overwritten(x):
            dweight = np.zeros((x["num"], x["dout"].shape[-1]), x["dout"].dtype)
            dweight[x["ids"].reshape(-1)] = x["dout"].reshape(-1, x["dout"].shape[-1])
            return (dweight,)
        return [Mistake.gives("an id that repeats must get the sum of its positions' gradients: dweight[ids] = dout "
                              "(and dweight[ids] += dout, which NumPy buffers) keeps only one; np.add.at(dweight, "
                              "ids, dout) adds them all", overwritten)]
