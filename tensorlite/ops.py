"""Primitive differentiable operations: elementwise math, reductions, shapes, indexing, matmul.

Each Function's backward is the local derivative times the incoming gradient, written on raw arrays, and the
public function that applies it sits right under it. Gradients may come back in the broadcast shape of the output:
`autograd.backward` reduces them to each input's shape.
"""
import builtins
import collections
import functools
import numbers

import numpy as np

from . import backend
from .autograd import Function
from .tensor import Tensor


def as_tensor(x, like):
    """Wrap a scalar or array as a constant Tensor with `like`'s dtype (for floats) and device."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and like.dtype.kind == "f":
        return Tensor(like.xp.asarray(x, dtype=like.dtype))
    return Tensor(x, device=like.device)


def _binary(fn_cls, a, b):
    """fn_cls on two operands, either of which may be a Python number or an array."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    return fn_cls.apply(a, as_tensor(b, a))


def check_axis(axis, ndim):
    """`axis` as a non-negative index into `ndim` axes, or NumPy's error for one out of bounds (no wrapping)."""
    if not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise IndexError(f"axis {axis} is out of bounds for a tensor of dimension {ndim}")
    return int(axis) % ndim


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
    return _binary(DivFunction, a, b)


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


class MaximumFunction(Function):
    """Elementwise max; ties send the gradient to the first input."""

    def forward(self, a, b):
        self.save_for_backward(a >= b)
        return self.xp.maximum(a, b)

    def backward(self, gy):
        a_wins, = self.saved
        return gy * a_wins, gy * ~a_wins


def maximum(a, b):
    return _binary(MaximumFunction, a, b)


class WhereFunction(Function):
    """where(cond, a, b); cond is a parameter (no gradient flows into a condition)."""

    def __init__(self, cond):
        super().__init__()
        self.cond = cond                                            # a boolean array of the output's shape

    def forward(self, a, b):
        return self.xp.where(self.cond, a, b)

    def backward(self, gy):
        zero = gy.dtype.type(0)
        return (self.xp.where(self.cond, gy, zero) if self.needs_input_grad[0] else None,
                self.xp.where(self.cond, zero, gy) if self.needs_input_grad[1] else None)


def where(cond, a, b):
    cond = cond.data if isinstance(cond, Tensor) else cond
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    b = as_tensor(b, a)
    if a.dtype.kind != "f" and b.dtype.kind == "f":
        a = as_tensor(a.data.astype(b.dtype), b)
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    return WhereFunction.apply(a, b, cond=a.xp.broadcast_to(cond, shape))


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
    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.saved[0]


def log(x):
    return LogFunction.apply(x)


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
    return CastFunction.apply(x, dtype=np.dtype(dtype))


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


# ----------------------------------------------------------------------------- reductions
def _normalize_axes(axis, ndim):
    """A reduction's `axis` (None: all, an int or a sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = [check_axis(a, builtins.max(ndim, 1)) for a in axes]   # a 0-d tensor reduces over axis 0 or -1
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _reduced_size(shape, axes):
    return int(np.prod([shape[a] for a in axes]))


def _kept_shape(shape, axes):
    """The shape a reduction over `axes` has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class SumFunction(Function):
    def __init__(self, axes, keepdims):
        super().__init__()
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return self.xp.broadcast_to(gy.reshape(_kept_shape(self.in_shape, self.axes)), self.in_shape)


def sum(x, axis=None, keepdims=False):
    return SumFunction.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


class MeanFunction(Function):
    def __init__(self, axes, keepdims):
        super().__init__()
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = _reduced_size(self.in_shape, self.axes)
        g = gy.reshape(_kept_shape(self.in_shape, self.axes)) / gy.dtype.type(builtins.max(n, 1))
        return self.xp.broadcast_to(g, self.in_shape)


def mean(x, axis=None, keepdims=False):
    return MeanFunction.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


class VarFunction(Function):
    """var = sum((x - mean)^2) / (N - correction); d var / dx = 2 (x - mean) / (N - correction)."""

    def __init__(self, axes, keepdims, correction):
        super().__init__()
        self.axes, self.keepdims, self.correction = axes, keepdims, correction

    def forward(self, x):
        self.denominator = builtins.max(_reduced_size(x.shape, self.axes) - self.correction, 0)
        centered = x - x.mean(axis=self.axes, keepdims=True)
        self.save_for_backward(centered)
        return (centered * centered).sum(axis=self.axes, keepdims=self.keepdims) / centered.dtype.type(
            self.denominator)

    def backward(self, gy):
        centered, = self.saved
        g = gy.reshape(_kept_shape(centered.shape, self.axes))
        return centered * (g * (2 / self.denominator))


def var(x, axis=None, keepdims=False, correction=1):
    """Variance with Bessel's correction by default, like torch.var (correction=0 for the biased one)."""
    return VarFunction.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, correction=correction)


def _inverse_permutation(axes):
    """The axes that undo a transpose (plain ints: CuPy wants a tuple, not a NumPy array)."""
    return tuple(int(a) for a in np.argsort(axes))


class MaxMinFunction(Function):
    """max or min over axes; the gradient goes to one winner (the first in row-major order), like argmax."""

    def __init__(self, axes, keepdims, mode):
        super().__init__()
        self.axes, self.keepdims, self.mode = axes, keepdims, mode    # mode: "max" or "min"

    def forward(self, x):
        xp = self.xp
        kept = tuple(a for a in range(x.ndim) if a not in self.axes)
        self.perm = kept + self.axes
        rows = x.transpose(self.perm).reshape(-1, _reduced_size(x.shape, self.axes))
        if rows.shape[1] == 0:
            raise ValueError(f"{self.mode}() of an empty tensor of shape {x.shape}")
        self.winner = rows.argmax(axis=1) if self.mode == "max" else rows.argmin(axis=1)
        self.in_shape = x.shape
        y = rows[xp.arange(rows.shape[0]), self.winner]
        return y.reshape(_kept_shape(x.shape, self.axes) if self.keepdims else
                         tuple(x.shape[a] for a in kept))

    def backward(self, gy):
        xp = self.xp
        n_rows = self.winner.shape[0]
        rows = xp.zeros((n_rows, _reduced_size(self.in_shape, self.axes)), dtype=gy.dtype)
        rows[xp.arange(n_rows), self.winner] = gy.reshape(-1)
        permuted = rows.reshape(tuple(self.in_shape[a] for a in self.perm))
        return permuted.transpose(_inverse_permutation(self.perm))


def max(x, axis=None, keepdims=False):
    return MaxMinFunction.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, mode="max")


def min(x, axis=None, keepdims=False):
    return MaxMinFunction.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, mode="min")


# ----------------------------------------------------------------------------- shapes
def _shape_arg(shape):
    """`f(2, 3)` and `f((2, 3))` alike, as PyTorch's shape arguments."""
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)


class ReshapeFunction(Function):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # validates -1 and sizes with NumPy's message
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {shape}") from None
    return ReshapeFunction.apply(x, shape=shape)


def unsqueeze(x, axis):
    axis = check_axis(axis, x.ndim + 1)                           # the new axis may be the last
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, axis=None):
    axes = [i for i, n in enumerate(x.shape) if n == 1] if axis is None else _normalize_axes(axis, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


class TransposeFunction(Function):
    def __init__(self, axes):
        super().__init__()
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(_inverse_permutation(self.axes))


def transpose(x, *axes):
    axes = _shape_arg(axes) if axes else tuple(reversed(range(x.ndim)))
    checked = tuple(check_axis(a, x.ndim) for a in axes)
    if sorted(checked) != list(range(x.ndim)):
        raise ValueError(f"transpose axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return TransposeFunction.apply(x, axes=checked)


def swapaxes(x, a, b):
    a, b = check_axis(a, x.ndim), check_axis(b, x.ndim)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, *axes)


class BroadcastToFunction(Function):
    """The engine's un-broadcast is exactly this op's backward."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return gy


def broadcast_to(x, *shape):
    shape = _shape_arg(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {shape}") from None
    shape = tuple(x.shape[i - len(shape) + x.ndim] if n == -1 else n for i, n in enumerate(shape))
    return BroadcastToFunction.apply(x, shape=shape)


# ----------------------------------------------------------------------------- indexing, joining, splitting
class GetItemFunction(Function):
    """x[index]; backward scatter-adds, so repeated integer indices accumulate."""

    def __init__(self, index, advanced):
        super().__init__()
        self.index, self.advanced = index, advanced     # advanced: integer-array indexing (ids may repeat)

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        g = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        if self.advanced:
            backend.scatter_add(g, self.index, gy)
        else:
            g[self.index] = gy
        return g


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, Tensor)) or hasattr(p, "dtype") for p in parts)


def _raw_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    raw = tuple(p.data if isinstance(p, Tensor) else p for p in parts)
    return raw if isinstance(index, tuple) else raw[0]


def getitem(x, index):
    index = _raw_index(index)
    return GetItemFunction.apply(x, index=index, advanced=_is_advanced(index))


def _split_points(sizes):
    """Where pieces of these sizes start along an axis, after the first (plain ints: CuPy wants them)."""
    return [int(b) for b in np.cumsum(sizes)[:-1]]


class ConcatenateFunction(Function):
    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds = _split_points(self.sizes)
        return tuple(self.xp.split(gy, bounds, axis=self.axis))


def cat(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    ref = tensors[0]
    axis = check_axis(axis, ref.ndim)
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(n != m for i, (n, m) in enumerate(zip(t.shape, ref.shape)) if i != axis):
            raise ValueError(f"cat along axis {axis}: shapes {[t.shape for t in tensors]} differ off that axis")
    return ConcatenateFunction.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack needs tensors of one shape, got {[t.shape for t in tensors]}")
    axis = check_axis(axis, tensors[0].ndim + 1)                  # the new axis may be the last
    return cat([unsqueeze(t, axis) for t in tensors], axis=axis)


class SplitFunction(Function):
    """Several outputs: the engine fills a zero gradient for pieces that were not used."""

    def __init__(self, bounds, axis):
        super().__init__()
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        return tuple(self.xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return self.xp.concatenate(gys, axis=self.axis)


def split(x, split_size_or_sections, axis=0):
    """PyTorch's split: an int is the size of each piece (the last may be smaller), a list gives every size."""
    axis = check_axis(axis, x.ndim)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        if split_size_or_sections <= 0:
            raise ValueError(f"split size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        sizes += [n % split_size_or_sections] if n % split_size_or_sections else []
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to {n}, the size of axis {axis}")
    pieces = SplitFunction.apply(x, bounds=_split_points(sizes), axis=axis)
    return pieces if isinstance(pieces, tuple) else (pieces,)


def chunk(x, chunks, axis=0):
    return split(x, -(-x.shape[check_axis(axis, x.ndim)] // chunks), axis)


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
        # Promote 1-d operands to matrices as the forward rule does; squeeze the promoted axis off their grads.
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
    return CumsumFunction.apply(x, dim=check_axis(dim, x.ndim))


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
    dim = check_axis(dim, x.ndim)
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


ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = """What sort and topk return, like PyTorch's torch.return_types: unpack it
(`values, indices = tl.sort(x)`) or read `.values` and `.indices`."""


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
    return Tensor(_argsort(x.data, check_axis(dim, x.ndim), descending))


@_zero_d_as_one_element
def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices): x sorted along dim, and where each value came from. The values are differentiable (each
    gradient goes back to its value's place); always stable, as argsort."""
    dim = check_axis(dim, x.ndim)
    indices = _argsort(x.data, dim, descending)
    return ValuesIndices(GatherFunction.apply(x, index=_gather_index(indices, dim)), Tensor(indices))


@_zero_d_as_one_element
def topk(x, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest elements along dim, largest first (the k smallest, smallest first, for
    largest=False), as torch.topk; the values are differentiable. Ties keep the lower index first. `sorted=False`
    is accepted and gives them sorted all the same (PyTorch leaves that order unspecified)."""
    dim = check_axis(dim, x.ndim)
    if not isinstance(k, numbers.Integral) or not 0 <= k <= x.shape[dim]:
        raise ValueError(f"topk: k={k!r} is out of range for dim {dim} of size {x.shape[dim]} (shape {x.shape})")
    first_k = (slice(None),) * dim + (slice(0, int(k)),)
    indices = _argsort(x.data, dim, descending=largest)[first_k]
    return ValuesIndices(GatherFunction.apply(x, index=_gather_index(indices, dim)), Tensor(indices))
