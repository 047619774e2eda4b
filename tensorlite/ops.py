"""Primitive differentiable operations: elementwise math, reductions, shapes, indexing, matmul.

Each Function's backward is the local derivative times the incoming gradient, written on raw arrays, and the
public function that applies it sits right under it. Gradients may come back in the broadcast shape of the output:
`autograd.backward` reduces them to each input's shape.

The public functions have PyTorch's names and arguments (`dim`, `keepdim`); Tensor's methods are these functions
themselves (`x.sum(1)` is `ops.sum(x, 1)`). NumPy's names `axis=` and `keepdims=` are accepted as aliases, as
PyTorch accepts them, so that NumPy's own functions (`np.sum(t)`, `np.mean(t)`) can call the methods too.
"""
import builtins
import collections
import contextlib
import functools
import math
import numbers
import warnings

import numpy as np

from . import backend
from .autograd import Function, is_grad_enabled
from .tensor import DEFAULT_DTYPE, Tensor


def as_tensor(x, like):
    """Wrap a scalar or array as a constant Tensor with `like`'s dtype (for floats) and device."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and like.dtype.kind == "f":
        return Tensor(like.xp.asarray(x, dtype=like.dtype))
    return Tensor(x, device=like.device)


def _operands(a, b):
    """Two operands as Tensors, either of which may be a Python number or an array. An integer or boolean one
    meeting a floating one takes its dtype, as in PyTorch (NumPy would make int64 * float32 a float64)."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    b = as_tensor(b, a)
    a_dtype, b_dtype = a.data.dtype, b.data.dtype
    if a_dtype is not b_dtype and (a_dtype.kind == "f") != (b_dtype.kind == "f"):
        if a_dtype.kind == "f":
            b = Tensor(b.data.astype(a_dtype))
        else:
            a = Tensor(a.data.astype(b_dtype))
    return a, b


def _binary(fn_cls, a, b):
    return fn_cls.apply(*_operands(a, b))


def check_dim(dim, ndim):
    """`dim` as a non-negative index into `ndim` dims, or an IndexError naming it (no wrapping)."""
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an integer, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise IndexError(f"dim {dim} is out of range for a tensor of dimension {ndim} "
                         f"(expected a dim in [{-ndim}, {ndim - 1}])")
    return int(dim) % ndim


def _numpy_names(op, dim, keepdim, axis, keepdims, out):
    """dim and keepdim from NumPy's names for them (axis=, keepdims=), which NumPy's functions pass."""
    if out is not None:
        raise TypeError(f"{op}(): out= is not supported; tensorlite ops return a new tensor")
    if axis is not None:
        if dim is not None and dim != axis:
            raise TypeError(f"{op}(): got both dim={dim} and axis={axis} (axis is NumPy's name for dim)")
        dim = axis
    return dim, keepdim if keepdims is None else keepdims


# ----------------------------------------------------------------------------- elementwise, two inputs
class AddFunction(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


def add(a, b):
    return _binary(AddFunction, a, b)


class SubFunction(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy if self.needs_input_grad[1] else None


def sub(a, b):
    return _binary(SubFunction, a, b)


class MulFunction(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


def mul(a, b):
    return _binary(MulFunction, a, b)


class DivFunction(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved
        ga = gy / b
        return (ga if self.needs_input_grad[0] else None,
                -ga * a / b if self.needs_input_grad[1] else None)


def div(a, b):
    """a / b, true division: integer operands give the default floating dtype, as in PyTorch (NumPy: float64)."""
    a, b = _operands(a, b)
    if a.data.dtype.kind != "f":   # _operands made both floating if either was
        a, b = (Tensor(t.data.astype(DEFAULT_DTYPE)) for t in (a, b))
    return DivFunction.apply(a, b)


class PowFunction(Function):
    """a ** b: d/da = b a^(b-1), d/db = a^b ln a (only computed when b needs a gradient)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        ga = gy * b * a ** (b - 1) if self.needs_input_grad[0] else None
        gb = gy * y * self.xp.log(a) if self.needs_input_grad[1] else None
        return ga, gb


def pow(a, b):
    return _binary(PowFunction, a, b)


class MaximumMinimumFunction(Function):
    """Elementwise max (or min) of two tensors; where they tie, each gets half the gradient (torch.maximum)."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode                                            # "max" or "min"

    def forward(self, a, b):
        xp = self.xp
        first_wins = a > b if self.mode == "max" else a < b
        self.save_for_backward(first_wins, a == b)
        return xp.maximum(a, b) if self.mode == "max" else xp.minimum(a, b)

    def backward(self, gy):
        first_wins, tie = self.saved
        share = first_wins + tie * gy.dtype.type(0.5)               # a's share of the gradient: 1, 1/2 or 0
        return gy * share, gy * (1 - share)


def maximum(a, b):
    return MaximumMinimumFunction.apply(*_operands(a, b), mode="max")


def minimum(a, b):
    return MaximumMinimumFunction.apply(*_operands(a, b), mode="min")


class WhereFunction(Function):
    """where(cond, a, b); cond is a parameter (no gradient flows into a condition)."""

    def __init__(self, cond, watched=()):
        super().__init__()
        self.cond, self.watched = cond, watched                     # a boolean array of the output's shape

    def forward(self, a, b):
        return self.xp.where(self.cond, a, b)

    def backward(self, gy):
        zero = gy.dtype.type(0)
        return (self.xp.where(self.cond, gy, zero) if self.needs_input_grad[0] else None,
                self.xp.where(self.cond, zero, gy) if self.needs_input_grad[1] else None)


def where(condition, input, other):
    watched = (condition,) if isinstance(condition, Tensor) else ()
    cond = condition.data if isinstance(condition, Tensor) else condition
    a, b = _operands(input, other)
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    return WhereFunction.apply(a, b, cond=a.xp.broadcast_to(cond, shape), watched=watched)


def masked_fill(x, mask, value):
    return where(mask, as_tensor(value, x), x)


# ----------------------------------------------------------------------------- elementwise, one input
class NegFunction(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


def neg(x):
    return NegFunction.apply(x)


class ExpFunction(Function):
    def forward(self, x):
        y = self.xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


def exp(x):
    return ExpFunction.apply(x)


class LogFunction(Function):
    """log to base e, 2 or 10: d/dx log_b(x) = 1 / (x ln b)."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        self.save_for_backward(x)
        xp = self.xp
        return xp.log(x) if self.base == "e" else xp.log2(x) if self.base == 2 else xp.log10(x)

    def backward(self, gy):
        x, = self.saved
        return gy / x if self.base == "e" else gy / (x * x.dtype.type(math.log(self.base)))


def log(x):
    return LogFunction.apply(x, base="e")


def log2(x):
    return LogFunction.apply(x, base=2)


def log10(x):
    return LogFunction.apply(x, base=10)


class SqrtFunction(Function):
    def forward(self, x):
        y = self.xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy / (2 * self.saved[0])


def sqrt(x):
    return SqrtFunction.apply(x)


class TanhFunction(Function):
    def forward(self, x):
        y = self.xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return gy * (1 - y * y)


def tanh(x):
    return TanhFunction.apply(x)


class SigmoidFunction(Function):
    def forward(self, x):
        # tanh form: exact and overflow-free for large |x|
        y = self.xp.tanh(x * 0.5) * 0.5 + 0.5
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return gy * y * (1 - y)


def sigmoid(x):
    return SigmoidFunction.apply(x)


class ReLUFunction(Function):
    def forward(self, x):
        y = self.xp.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * (self.saved[0] > 0)


def relu(x):
    return ReLUFunction.apply(x)


class AbsFunction(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.abs(x)

    def backward(self, gy):
        return gy * self.xp.sign(self.saved[0])


def abs(x):
    return AbsFunction.apply(x)


class ClampFunction(Function):
    """Clamp into [min, max] (either may be None); the gradient passes where min <= x <= max, both ends
    included, as torch.clamp's does."""

    def __init__(self, min, max):
        super().__init__()
        self.min, self.max = min, max

    def forward(self, x):
        inside = True
        if self.min is not None:
            inside = x >= self.min
        if self.max is not None:
            inside = inside & (x <= self.max)
        self.save_for_backward(inside)
        return self.xp.clip(x, self.min, self.max)

    def backward(self, gy):
        return gy * self.saved[0]


def check_clamp_bounds(min, max):
    if min is None and max is None:
        raise ValueError("clamp needs at least one of min and max")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, numbers.Real):
            raise TypeError(f"clamp {name} must be a number, got {type(bound).__name__} (for a tensor bound use "
                            "tl.maximum / tl.minimum)")


def clamp(x, min=None, max=None):
    """torch.clamp with number bounds (`clip` is its other name)."""
    check_clamp_bounds(min, max)
    return ClampFunction.apply(x, min=min, max=max)


clip = clamp


class CastFunction(Function):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.source)


def cast(x, dtype):
    """x in another dtype; to a floating dtype the gradient flows back, to an integer or bool one it cannot."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return Tensor(x.data.astype(dtype))
    return CastFunction.apply(x, dtype=dtype)


class ToDeviceFunction(Function):
    """Moves data between devices; the gradient moves back."""

    def __init__(self, device):
        super().__init__()
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


def to_device(x, device):
    return ToDeviceFunction.apply(x, device=device)


class CloneFunction(Function):
    """A copy in memory of its own (C-contiguous); the gradient passes unchanged."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(x):
    return CloneFunction.apply(x)


# ----------------------------------------------------------------------------- reductions
def _reduce_dims(dim, ndim):
    """A reduction's `dim` (None: all, an int or a sequence) as a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = [check_dim(d, builtins.max(ndim, 1)) for d in dims]   # a 0-d tensor reduces over dim 0 or -1
    if len(set(out)) != len(out):
        raise ValueError(f"dim {dim} names a dim twice")
    return tuple(sorted(out)) if ndim else ()


def _reduced_size(shape, dims):
    return int(np.prod([shape[d] for d in dims]))


def _kept_shape(shape, dims):
    """The shape a reduction over `dims` has with keepdim=True."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class SumFunction(Function):
    def __init__(self, dims, keepdim):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        return self.xp.broadcast_to(gy.reshape(_kept_shape(self.in_shape, self.dims)), self.in_shape)


def _reduction(fn_cls, op, x, dim, keepdim, dtype, axis, keepdims, out):
    """fn_cls over dim, as torch.sum and torch.mean take it: with NumPy's names, and a dtype to cast to first."""
    if axis is not None or keepdims is not None or out is not None:
        dim, keepdim = _numpy_names(op, dim, keepdim, axis, keepdims, out)
    if dtype is not None:
        x = cast(x, dtype)
    return fn_cls.apply(x, dims=_reduce_dims(dim, x.ndim), keepdim=keepdim)


def sum(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None, out=None):
    """Sum over `dim` (None: every dim; an int or a tuple), like torch.sum."""
    return _reduction(SumFunction, "sum", x, dim, keepdim, dtype, axis, keepdims, out)


class MeanFunction(Function):
    def __init__(self, dims, keepdim):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        n = _reduced_size(self.in_shape, self.dims)
        g = gy.reshape(_kept_shape(self.in_shape, self.dims)) / gy.dtype.type(builtins.max(n, 1))
        return self.xp.broadcast_to(g, self.in_shape)


def mean(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None, out=None):
    return _reduction(MeanFunction, "mean", x, dim, keepdim, dtype, axis, keepdims, out)


class VarFunction(Function):
    """var = sum((x - mean)^2) / (N - correction); d var / dx = 2 (x - mean) / (N - correction)."""

    def __init__(self, dims, keepdim, correction):
        super().__init__()
        self.dims, self.keepdim, self.correction = dims, keepdim, correction

    def forward(self, x):
        self.denominator = builtins.max(_reduced_size(x.shape, self.dims) - self.correction, 0)
        centered = x - x.mean(axis=self.dims, keepdims=True)
        self.save_for_backward(centered)
        with _without_degrees_of_freedom(self.denominator):
            return (centered * centered).sum(axis=self.dims, keepdims=self.keepdim) / centered.dtype.type(
                self.denominator)

    def backward(self, gy):
        centered, = self.saved
        g = gy.reshape(_kept_shape(centered.shape, self.dims))
        with _without_degrees_of_freedom(self.denominator):
            return centered * (g * (2 / self.denominator if self.denominator else math.inf))


def _without_degrees_of_freedom(denominator):
    """No degrees of freedom (N <= correction): the division gives inf or nan, as torch.var's (var() warns)."""
    return np.errstate(divide="ignore", invalid="ignore") if denominator <= 0 else contextlib.nullcontext()


def _correction(op, unbiased, correction):
    """torch's two spellings of Bessel's correction: unbiased=True/False (1/0) or correction=n; default 1."""
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}(): give unbiased or correction, not both")
    return (1 if unbiased or unbiased is None else 0) if correction is None else correction


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None, out=None):
    """Variance with Bessel's correction by default, like torch.var (unbiased=False or correction=0: biased)."""
    if isinstance(dim, bool):                                       # torch's var(unbiased) overload
        dim, unbiased = None, dim
    if axis is not None or keepdims is not None or out is not None:
        dim, keepdim = _numpy_names("var", dim, keepdim, axis, keepdims, out)
    dims, correction = _reduce_dims(dim, x.ndim), _correction("var", unbiased, correction)
    if _reduced_size(x.shape, dims) <= correction:
        warnings.warn(f"var/std: degrees of freedom is <= 0 ({_reduced_size(x.shape, dims)} elements, correction "
                      f"{correction}): the result is inf or nan, as in PyTorch", UserWarning, stacklevel=2)
    return VarFunction.apply(x, dims=dims, keepdim=keepdim, correction=correction)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None, out=None):
    """sqrt(var), like torch.std: d std = d var / (2 std)."""
    return sqrt(var(x, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, out=out))


class AmaxAminFunction(Function):
    """max or min over dims (torch.amax / amin, and max() / min() of every element): where several elements
    tie for the extreme, they share its gradient equally, as in PyTorch."""

    def __init__(self, dims, keepdim, mode):
        super().__init__()
        self.dims, self.keepdim, self.mode = dims, keepdim, mode    # mode: "max" or "min"

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.mode}() of an empty tensor of shape {x.shape}")
        y = x.max(axis=self.dims, keepdims=True) if self.mode == "max" else x.min(axis=self.dims, keepdims=True)
        winners = x == y
        self.save_for_backward(winners, winners.sum(axis=self.dims, keepdims=True))
        return y if self.keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.dims))

    def backward(self, gy):
        winners, count = self.saved
        return winners * (gy.reshape(count.shape) / count.astype(gy.dtype))


def _every_dim_if_empty(dim):
    return None if dim is None or (not isinstance(dim, numbers.Integral) and len(dim) == 0) else dim


def amax(x, dim=(), keepdim=False):
    """The max over `dim` (an int or a tuple; () or None: every dim), like torch.amax."""
    return AmaxAminFunction.apply(x, dims=_reduce_dims(_every_dim_if_empty(dim), x.ndim), keepdim=keepdim,
                                  mode="max")


def amin(x, dim=(), keepdim=False):
    return AmaxAminFunction.apply(x, dims=_reduce_dims(_every_dim_if_empty(dim), x.ndim), keepdim=keepdim,
                                  mode="min")


ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = """(values, indices), as torch.return_types: what max/min along a dim, sort and topk return;
unpack it (`values, indices = tl.sort(x)`) or read `.values` and `.indices` (`x.max(1).values`)."""


def _along(xp, indices, dim):
    """An index that picks, along `dim`, the entry named by `indices` (keepdim shape) in every position."""
    grids = list(xp.ogrid[tuple(slice(n) for n in indices.shape)])
    grids[dim] = indices
    return tuple(grids)


class MaxMinDimFunction(Function):
    """max or min along one dim with the winners' indices given: the gradient goes to those elements only (the
    first of tied ones, torch.max(dim)'s rule)."""

    def __init__(self, dim, keepdim, indices):
        super().__init__()
        self.dim, self.keepdim, self.indices = dim, keepdim, indices   # indices: keepdim shape, an array

    def forward(self, x):
        self.in_shape = x.shape
        y = x[_along(self.xp, self.indices, self.dim)]
        return y if self.keepdim else y.squeeze(self.dim)

    def backward(self, gy):
        g = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        g[_along(self.xp, self.indices, self.dim)] = gy.reshape(self.indices.shape)
        return g


def _max_min(x, dim, keepdim, axis, keepdims, out, mode):
    if axis is not None or keepdims is not None or out is not None:
        dim, keepdim = _numpy_names(mode, dim, keepdim, axis, keepdims, out)
    if isinstance(dim, Tensor):                                     # torch.max(input, other): elementwise
        return MaximumMinimumFunction.apply(*_operands(x, dim), mode=mode)
    if dim is None:
        return AmaxAminFunction.apply(x, dims=tuple(range(x.ndim)), keepdim=False, mode=mode)
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"{mode}(dim) takes one dim, got {dim!r}; amax / amin reduce over several")
    data = x.data if x.ndim else x.data.reshape(1)
    dim = check_dim(dim, data.ndim)
    if data.shape[dim] == 0:
        raise ValueError(f"{mode}(): dim {dim} of shape {x.shape} is empty")
    indices = data.argmax(axis=dim, keepdims=True) if mode == "max" else data.argmin(axis=dim, keepdims=True)
    values = MaxMinDimFunction.apply(x if x.ndim else reshape(x, 1), dim=dim, keepdim=keepdim, indices=indices)
    indices = indices if keepdim else indices.squeeze(dim)
    return ValuesIndices(values if x.ndim else reshape(values, ()), Tensor(indices if x.ndim else indices[0]))


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """torch.max's three forms: max(x) the largest element (a 0-d tensor); max(x, dim, keepdim) the named tuple
    (values, indices) along dim; max(x, other) the elementwise maximum of two tensors."""
    return _max_min(x, dim, keepdim, axis, keepdims, out, "max")


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """torch.min's three forms, as max."""
    return _max_min(x, dim, keepdim, axis, keepdims, out, "min")


def _arg_max_min(x, dim, keepdim, axis, keepdims, out, mode):
    if axis is not None or keepdims is not None or out is not None:
        dim, keepdim = _numpy_names(f"arg{mode}", dim, keepdim, axis, keepdims, out)
    data = x.data
    if dim is None:
        flat = data.reshape(-1)
        index = flat.argmax() if mode == "max" else flat.argmin()
        return Tensor(x.xp.asarray(index, dtype=np.int64).reshape((1,) * x.ndim if keepdim else ()))
    dim = check_dim(dim, builtins.max(data.ndim, 1))
    data = data if data.ndim else data.reshape(1)
    index = data.argmax(axis=dim, keepdims=keepdim) if mode == "max" else data.argmin(axis=dim, keepdims=keepdim)
    return Tensor(index.astype(np.int64, copy=False).reshape(index.shape if x.ndim else ()))


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """Indices (int64, no gradient) of the largest elements along dim; dim None: of the flattened tensor."""
    return _arg_max_min(x, dim, keepdim, axis, keepdims, out, "max")


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    return _arg_max_min(x, dim, keepdim, axis, keepdims, out, "min")


# ----------------------------------------------------------------------------- shapes (views where NumPy's are)
def _shape_arg(shape):
    """`f(2, 3)` and `f((2, 3))` alike, as PyTorch's shape arguments."""
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)


class ReshapeFunction(Function):
    is_view = True

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)

    def replay(self, base):
        return ReshapeFunction.apply(base, shape=self.shape)


def reshape(x, *shape):
    """x with another shape (one entry may be -1); `view` is the same function (a copy where x's memory
    cannot be viewed so, where PyTorch's view would raise)."""
    shape = _shape_arg(shape)
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # validates -1 and sizes with NumPy's message
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {shape}") from None
    return ReshapeFunction.apply(x, shape=shape)


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one, like torch.flatten (a 0-d tensor becomes 1-d)."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = check_dim(start_dim, x.ndim), check_dim(end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    return reshape(x, x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])   # 0 sizes too


def unsqueeze(x, dim):
    dim = check_dim(dim, x.ndim + 1)                              # the new dim may be the last
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x, dim=None):
    """Drop dims of size 1 (all of them, or those named by dim: an int or a tuple); a named dim of another size
    stays, as in torch.squeeze."""
    dims = range(x.ndim) if dim is None else _reduce_dims(dim, x.ndim)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


class PermuteFunction(Function):
    is_view = True

    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        return gy.transpose(tuple(int(d) for d in np.argsort(self.dims)))   # the inverse permutation

    def replay(self, base):
        return PermuteFunction.apply(base, dims=self.dims)


def permute(x, *dims):
    """The dims reordered: `x.permute(0, 2, 1)` (or a tuple), like torch.permute."""
    dims = _shape_arg(dims)
    checked = tuple(check_dim(d, x.ndim) for d in dims)
    if sorted(checked) != list(range(x.ndim)):
        raise ValueError(f"permute dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
    return PermuteFunction.apply(x, dims=checked)


def transpose(x, dim0, dim1):
    """dim0 and dim1 swapped, like torch.transpose (`swapaxes` and `swapdims` are its other names)."""
    dims = list(range(x.ndim))
    a, b = check_dim(dim0, builtins.max(x.ndim, 1)), check_dim(dim1, builtins.max(x.ndim, 1))
    if x.ndim == 0:
        return x
    dims[a], dims[b] = dims[b], dims[a]
    return PermuteFunction.apply(x, dims=tuple(dims))


swapaxes = swapdims = transpose


def t(x):
    """The transpose of a matrix (a 0-d or 1-d tensor as it is), like torch.t."""
    if x.ndim > 2:
        raise ValueError(f"t() expects a tensor of at most 2 dims, got shape {x.shape}; use transpose(dim0, dim1) "
                         "or permute")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def reversed_dims(x):
    """x.T: every dim in reverse order (for a matrix, its transpose)."""
    return PermuteFunction.apply(x, dims=tuple(reversed(range(x.ndim))))


def matrix_transpose(x):
    """x.mT: the last two dims swapped (a batch of matrices, each transposed)."""
    if x.ndim < 2:
        raise ValueError(f"mT needs at least 2 dims, got shape {x.shape}")
    return transpose(x, -2, -1)


class BroadcastToFunction(Function):
    """The engine's un-broadcast is exactly this op's backward."""
    is_view = True

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return gy

    def replay(self, base):
        return BroadcastToFunction.apply(base, shape=self.shape)


def expand(x, *shape):
    """x broadcast to `shape` (-1 keeps a dim), like torch.expand; `broadcast_to` is its other name."""
    shape = _shape_arg(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {shape}") from None
    shape = tuple(x.shape[i - len(shape) + x.ndim] if n == -1 else n for i, n in enumerate(shape))
    return BroadcastToFunction.apply(x, shape=shape)


broadcast_to = expand


# ----------------------------------------------------------------------------- indexing, joining, splitting
class GetItemFunction(Function):
    """x[index]; backward scatter-adds, so repeated integer indices accumulate."""
    is_view = True

    def __init__(self, index, advanced, watched=()):
        super().__init__()
        self.index, self.advanced = index, advanced     # advanced: integer-array indexing (ids may repeat)
        self.watched = watched                          # index tensors, whose arrays backward reads

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        g = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        if self.advanced:
            backend.scatter_add(g, self.index, gy)
        else:
            g[self.index] = gy
        return g

    def replay(self, base):
        return GetItemFunction.apply(base, index=self.index, advanced=self.advanced, watched=self.watched)


_BASIC = (numbers.Integral, slice, type(None), type(Ellipsis))


def raw_index(index):
    """An index with its tensors as arrays, whether it is advanced (arrays, lists, ranges: a copy in NumPy, and
    ids may repeat), and the tensors it held. As in PyTorch, a basic index gives a view even of one element (an
    Ellipsis at the end: NumPy would give a scalar), and a 0-d integer tensor indexes as its integer."""
    raw, tensors, advanced = [], (), False
    for p in index if type(index) is tuple else (index,):
        if isinstance(p, Tensor):
            tensors += (p,)
            p = int(p.data) if p.data.ndim == 0 and p.data.dtype.kind in "iu" else p.data
        if not isinstance(p, _BASIC):
            advanced = True
        raw.append(p)
    if not advanced and Ellipsis not in raw:
        raw.append(Ellipsis)
    return tuple(raw), advanced, tensors


def getitem(x, index):
    index, advanced, tensors = raw_index(index)
    return GetItemFunction.apply(x, index=index, advanced=advanced, watched=tensors)


class SetItemFunction(Function):
    """x with x[index] = value, out of place (the graph's record of an in-place write, tensorlite/inplace.py):
    the gradient of the overwritten entries goes to value, of the others to x."""

    def __init__(self, index, watched=()):
        super().__init__()
        self.index, self.watched = index, watched

    def forward(self, x, value):
        self.value_ndim = value.ndim
        y = x.copy()
        y[self.index] = value
        return y

    def backward(self, gy):
        gx = None
        if self.needs_input_grad[0]:
            gx = gy.copy()
            gx[self.index] = 0
        gv = gy[self.index] if self.needs_input_grad[1] else None
        if gv is not None and gv.ndim < self.value_ndim:   # value had leading dims of size 1 that NumPy dropped
            gv = gv.reshape((1,) * (self.value_ndim - gv.ndim) + gv.shape)
        return gx, gv


def _split_points(sizes):
    """Where pieces of these sizes start along a dim, after the first (plain ints: CuPy wants them)."""
    return [int(b) for b in np.cumsum(sizes)[:-1]]


class ConcatenateFunction(Function):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        self.sizes = [x.shape[self.dim] for x in xs]
        return self.xp.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        bounds = _split_points(self.sizes)
        return tuple(self.xp.split(gy, bounds, axis=self.dim))


def cat(tensors, dim=0, *, axis=None, out=None):
    if axis is not None or out is not None:
        dim, _ = _numpy_names("cat", dim if axis is None else None, False, axis, None, out)
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    ref = tensors[0]
    dim = check_dim(dim, ref.ndim)
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(n != m for i, (n, m) in enumerate(zip(t.shape, ref.shape)) if i != dim):
            raise ValueError(f"cat along dim {dim}: shapes {[t.shape for t in tensors]} differ off that dim")
    return ConcatenateFunction.apply(*tensors, dim=dim)


concatenate = cat


def stack(tensors, dim=0, *, axis=None, out=None):
    if axis is not None or out is not None:
        dim, _ = _numpy_names("stack", dim if axis is None else None, False, axis, None, out)
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack needs tensors of one shape, got {[t.shape for t in tensors]}")
    dim = check_dim(dim, tensors[0].ndim + 1)                  # the new dim may be the last
    return cat([unsqueeze(t, dim) for t in tensors], dim=dim)


class SplitFunction(Function):
    """Several outputs: the engine fills a zero gradient for pieces that were not used."""
    is_view = True

    def __init__(self, bounds, dim):
        super().__init__()
        self.bounds, self.dim = bounds, dim

    def forward(self, x):
        return tuple(self.xp.split(x, self.bounds, axis=self.dim))

    def backward(self, *gys):
        return self.xp.concatenate(gys, axis=self.dim)

    def replay(self, base):
        return SplitFunction.apply(base, bounds=self.bounds, dim=self.dim)


def split(x, split_size_or_sections, dim=0, *, axis=None):
    """PyTorch's split: an int is the size of each piece (the last may be smaller), a list gives every size."""
    dim = check_dim(dim if axis is None else axis, x.ndim)
    n = x.shape[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        if split_size_or_sections <= 0:
            raise ValueError(f"split size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        sizes += [n % split_size_or_sections] if n % split_size_or_sections else []
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to {n}, the size of dim {dim}")
    pieces = SplitFunction.apply(x, bounds=_split_points(sizes), dim=dim)
    return pieces if isinstance(pieces, tuple) else (pieces,)


def chunk(x, chunks, dim=0):
    return split(x, -(-x.shape[check_dim(dim, x.ndim)] // chunks), dim)


# ----------------------------------------------------------------------------- matmul
class MatMulFunction(Function):
    """a @ b with NumPy's rules (1-d operands, broadcast batch dims).

    A stack of rows times one matrix, (..., n, k) @ (k, m), runs as one 2-d GEMM on (prod(...)*n, k): BLAS is
    faster on one big product than on many small batched ones, and the weight gradient is then one GEMM too
    instead of a batched product plus a sum.
    """

    def forward(self, a, b):
        self.save_for_backward(a, b)
        if b.ndim == 2 and a.ndim > 2:
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))
        return a @ b

    def backward(self, gy):
        a, b = self.saved
        xp = self.xp
        # Promote 1-d operands to matrices as the forward rule does; squeeze the promoted dim off their grads.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        gy = gy.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = gy @ xp.swapaxes(b2, -1, -2)
            ga = ga[..., 0, :] if a.ndim == 1 else ga
        if self.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:
                gb = a.reshape(-1, a.shape[-1]).T @ gy.reshape(-1, gy.shape[-1])
            else:
                gb = xp.swapaxes(a2, -1, -2) @ gy
            gb = gb[..., 0] if b.ndim == 1 else gb
        return ga, gb


def matmul(a, b):
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs at least 1-d operands, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} (inner dimensions {k_a} and {k_b} differ)")
    return MatMulFunction.apply(a, b)


# ----------------------------------------------------------------------------- comparisons (no gradient)
def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def eq(a, b):
    return Tensor(_raw(a) == _raw(b))


def ne(a, b):
    return Tensor(_raw(a) != _raw(b))


def lt(a, b):
    return Tensor(_raw(a) < _raw(b))


def le(a, b):
    return Tensor(_raw(a) <= _raw(b))


def gt(a, b):
    return Tensor(_raw(a) > _raw(b))


def ge(a, b):
    return Tensor(_raw(a) >= _raw(b))


def _no_gradient(op, *operands):
    """The raw arrays of operators that have no gradient (integer and logical arithmetic); a clear error where
    one would be needed, never a gradient silently dropped."""
    if is_grad_enabled() and builtins.any(isinstance(x, Tensor) and x.requires_grad for x in operands):
        raise RuntimeError(f"{op} has no gradient in tensorlite: apply it to tensors that do not require grad "
                           "(under no_grad, or to .detach())")
    return tuple(_raw(x) for x in operands)


def floor_divide(a, b):
    """a // b, rounded down (as torch.floor_divide and Python's //)."""
    a, b = _no_gradient("//", a, b)
    return Tensor(a // b)


def remainder(a, b):
    """a % b with the sign of b (as torch.remainder and Python's %)."""
    a, b = _no_gradient("%", a, b)
    return Tensor(a % b)


def logical_and(a, b):
    """a & b: elementwise and of booleans (bitwise for integers), as PyTorch's operator."""
    a, b = _no_gradient("&", a, b)
    return Tensor(a & b)


def logical_or(a, b):
    a, b = _no_gradient("|", a, b)
    return Tensor(a | b)


def logical_xor(a, b):
    a, b = _no_gradient("^", a, b)
    return Tensor(a ^ b)


def logical_not(x):
    """~x: not, for booleans (bitwise not for integers), as PyTorch's operator."""
    x, = _no_gradient("~", x)
    return Tensor(~x)


# ----------------------------------------------------------------------------- triangles
class TriangularFunction(Function):
    """The lower (tril) or upper (triu) triangle of the last two dims, zeros elsewhere: a fixed mask, so the
    backward keeps the same triangle of the gradient. `diagonal` shifts the edge as in torch.tril: 0 keeps the main
    diagonal, 1 one above it, -1 one below."""

    def __init__(self, diagonal, upper):
        super().__init__()
        self.diagonal, self.upper = diagonal, upper

    def _triangle(self, a):
        return self.xp.triu(a, self.diagonal) if self.upper else self.xp.tril(a, self.diagonal)

    def forward(self, x):
        return self._triangle(x)

    def backward(self, gy):
        return self._triangle(gy)


def _triangular(name, x, diagonal, upper):
    if x.ndim < 2:
        raise ValueError(f"{name} needs at least 2 dims (the last two are the matrix), got shape {x.shape}")
    if not isinstance(diagonal, numbers.Integral):
        raise TypeError(f"{name} diagonal must be an integer, got {type(diagonal).__name__}")
    return TriangularFunction.apply(x, diagonal=int(diagonal), upper=upper)


def tril(x, diagonal=0):
    """x with everything above the `diagonal`-th diagonal zeroed (GPT's causal mask: tril(ones(T, T)))."""
    return _triangular("tril", x, diagonal, upper=False)


def triu(x, diagonal=0):
    """x with everything below the `diagonal`-th diagonal zeroed."""
    return _triangular("triu", x, diagonal, upper=True)


# ----------------------------------------------------------------------------- scans, gathers, sorting
def _zero_d_as_one_element(fn):
    """PyTorch scans, sorts and ranks a 0-d tensor as one element along dim 0 (or -1): run fn on it reshaped to
    (1,) and hand its results back 0-d."""
    @functools.wraps(fn)
    def on_any_tensor(x, *args, **kwargs):
        if x.ndim != 0:
            return fn(x, *args, **kwargs)
        out = fn(reshape(x, 1), *args, **kwargs)
        return type(out)(*(reshape(t, ()) for t in out)) if isinstance(out, tuple) else reshape(out, ())
    return on_any_tensor


class CumsumFunction(Function):
    """y_i = x_0 + ... + x_i along dim. Each x_j feeds every y_i with i >= j, so dx_j = dy_j + ... + dy_(n-1):
    the running sum of dy taken from the far end."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return self.xp.cumsum(x, axis=self.dim, dtype=None if x.dtype.kind == "f" else np.int64)

    def backward(self, gy):
        xp = self.xp
        return xp.flip(xp.cumsum(xp.flip(gy, axis=self.dim), axis=self.dim), axis=self.dim)


@_zero_d_as_one_element
def cumsum(x, dim, dtype=None):
    """Running sums along dim; integer and bool tensors sum to int64 as in PyTorch (`dtype=` casts first)."""
    x = x if dtype is None else cast(x, dtype)
    return CumsumFunction.apply(x, dim=check_dim(dim, x.ndim))


class GatherFunction(Function):
    """torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] for dim=1, and likewise for the other dims.

    `index` arrives as the full tuple of index arrays that reads out[...] from x (`_gather_index`). Backward sends
    each output's gradient back to the element it was read from: an element read twice receives both (a
    scatter-add).
    """

    def __init__(self, index):
        super().__init__()
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        g = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        backend.scatter_add(g, self.index, gy)
        return g


def _gather_index(index, dim):
    """The advanced-indexing tuple for gather: `index` along dim, and along every other dim d the position in d."""
    xp = backend.xp_of(index)
    parts = [xp.arange(n).reshape(tuple(-1 if i == d else 1 for i in range(index.ndim)))
             for d, n in enumerate(index.shape)]
    parts[dim] = index
    return tuple(parts)


def gather(x, dim, index):
    """Values of x along dim at the positions `index` holds (integers, x's number of dims, no larger than x off
    dim), as torch.gather. Differentiable in x."""
    if x.ndim == 0:
        raise ValueError("gather needs a tensor with at least 1 dim, got a 0-d one")
    dim = check_dim(dim, x.ndim)
    index = index.data if isinstance(index, Tensor) else x.xp.asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather index must be integers, got dtype {index.dtype}")
    if index.ndim != x.ndim or builtins.any(m > n for d, (m, n) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ValueError(f"gather index of shape {index.shape} does not fit x of shape {x.shape} along dim {dim} "
                         "(same number of dims, and no larger than x off dim)")
    n = x.shape[dim]
    bad = (index < 0) | (index >= n)
    backend.device_assert(bad.any(), lambda: IndexError(
        f"gather index {int(index[bad].reshape(-1)[0])} is out of range for dim {dim} of size {n}"))
    return GatherFunction.apply(x, index=_gather_index(index, dim))


def _argsort(data, dim, descending):
    """Indices (int64) that sort `data` along dim, always stable: equal elements keep their order, ascending or
    descending. NaN counts as the largest value, as in PyTorch."""
    xp = backend.xp_of(data)
    if descending:   # sort the reversed array ascending and read the result backwards: descending, still stable
        n = data.shape[dim]
        order = (n - 1) - xp.flip(xp.argsort(xp.flip(data, axis=dim), axis=dim, kind="stable"), axis=dim)
    else:
        order = xp.argsort(data, axis=dim, kind="stable")
    return order.astype(np.int64, copy=False)


@_zero_d_as_one_element
def argsort(x, dim=-1, descending=False, stable=False):
    """Indices that sort x along dim. The sort is always stable (`stable=` is accepted for PyTorch's signature),
    so ties come back in index order."""
    return Tensor(_argsort(x.data, check_dim(dim, x.ndim), descending))


@_zero_d_as_one_element
def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices): x sorted along dim, and where each value came from. The values are differentiable (each
    gradient goes back to its value's place); always stable, as argsort."""
    dim = check_dim(dim, x.ndim)
    indices = _argsort(x.data, dim, descending)
    return ValuesIndices(GatherFunction.apply(x, index=_gather_index(indices, dim)), Tensor(indices))


@_zero_d_as_one_element
def topk(x, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest elements along dim, largest first (the k smallest, smallest first, for
    largest=False), as torch.topk; the values are differentiable. Ties keep the lower index first. `sorted=False`
    is accepted and gives them sorted all the same (PyTorch leaves that order unspecified)."""
    dim = check_dim(dim, x.ndim)
    if not isinstance(k, numbers.Integral) or not 0 <= k <= x.shape[dim]:
        raise ValueError(f"topk: k={k!r} is out of range for dim {dim} of size {x.shape[dim]} (shape {x.shape})")
    first_k = (slice(None),) * dim + (slice(0, int(k)),)
    indices = _argsort(x.data, dim, descending=largest)[first_k]
    return ValuesIndices(GatherFunction.apply(x, index=_gather_index(indices, dim)), Tensor(indices))


# NumPy's ufuncs that are Tensor operators: `ndarray + tensor` is a Tensor (Tensor.__array_ufunc__)
NUMPY_OPERATORS = {np.add: add, np.subtract: sub, np.multiply: mul, np.true_divide: div, np.power: pow,
                   np.matmul: lambda a, b: matmul(*_operands(a, b)), np.equal: eq, np.not_equal: ne, np.less: lt,
                   np.less_equal: le, np.greater: gt, np.greater_equal: ge}
