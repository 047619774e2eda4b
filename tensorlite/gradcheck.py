"""Numerical gradient checking: the proof that every backward matches its forward.

For a function f of tensors, backward computes the gradient of L = sum(f(x) * R) for a fixed random R; central
differences estimate the same gradient as (L(x + eps) - L(x - eps)) / (2 eps), one element at a time. A random R
checks the whole Jacobian against one random direction, which catches any wrong entry with probability one.
"""
import numpy as np

from . import backend
from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numerical gradients of an input disagree."""


def _loss(fn, inputs, weights):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out, float((out.data.astype(np.float64) * weights).sum())


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check backward of `fn(*inputs)` against central differences in float64.

    Returns True, or raises GradcheckError naming the input, the worst element and both values there.
    Inputs that require grad must be float64 (in lower precision the differences are noise).
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; use float64 (e.g. .double())")
        inputs[i].grad = None
    with no_grad():
        out, _ = _loss(fn, inputs, 1.0)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out = fn(*inputs)
    out.backward(out.xp.asarray(weights, dtype=out.dtype))
    for i in checked:
        _compare(fn, inputs, i, weights, eps, atol, rtol)
    return True


def _compare(fn, inputs, i, weights, eps, atol, rtol):
    x = inputs[i]
    analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
    numeric = np.zeros(x.shape)
    flat = x.data.reshape(-1)  # a view: perturbing it perturbs the input
    with no_grad():
        for j in range(flat.size):
            original = flat[j].item()
            flat[j] = original + eps
            plus = _loss(fn, inputs, weights)[1]
            flat[j] = original - eps
            minus = _loss(fn, inputs, weights)[1]
            flat[j] = original
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
    error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if error.size and error.max() > 0:
        worst = np.unravel_index(int(error.argmax()), error.shape)
        raise GradcheckError(
            f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(k) for k in worst)}: "
            f"backward gives {analytic[worst]:.8g}, central differences give {numeric[worst]:.8g} "
            f"(atol={atol}, rtol={rtol})")
