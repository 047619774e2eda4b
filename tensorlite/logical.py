"""Truth tests on tensors, as PyTorch spells them: `all`, `any` (bool tensors, per dim or overall), `equal` and
`allclose` (one Python bool). None of them has a gradient.

They live apart from ops.py because their names are Python builtins that ops.py itself calls.
"""
import builtins

from . import backend
from .ops import _numpy_names, _reduce_dims
from .tensor import Tensor


def _array(x, op):
    if isinstance(x, Tensor):
        return x.data
    if hasattr(x, "dtype") and hasattr(x, "shape"):   # a NumPy or CuPy array (a gradient, tensorlite's .grad)
        return x
    raise TypeError(f"{op} takes tensors, got {type(x).__name__}")


def all(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """A bool tensor: True where every element along dim (every element, for dim=None) is nonzero."""
    dim, keepdim = _numpy_names("all", dim, keepdim, axis, keepdims, out)   # np.all(t) passes NumPy's names
    data = _array(x, "all")
    return Tensor(data.all(axis=_reduce_dims(dim, data.ndim), keepdims=keepdim))


def any(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """A bool tensor: True where some element along dim (some element, for dim=None) is nonzero."""
    dim, keepdim = _numpy_names("any", dim, keepdim, axis, keepdims, out)   # np.any(t) passes NumPy's names
    data = _array(x, "any")
    return Tensor(data.any(axis=_reduce_dims(dim, data.ndim), keepdims=keepdim))


def equal(a, b):
    """True when a and b have the same shape and the same elements (torch.equal); a Python bool."""
    a, b = _array(a, "equal"), _array(b, "equal")
    return a.shape == b.shape and builtins.bool((a == b).all())


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when |a - b| <= atol + rtol * |b| everywhere (after broadcasting), as torch.allclose; a Python bool.
    makemore's `cmp` compares a gradient worked out by hand with the engine's this way."""
    a, b = _array(a, "allclose"), _array(b, "allclose")
    return builtins.bool(backend.xp_of(a).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
