"""Primitive differentiable operations: elementwise math, reductions, shapes, indexing, matmul.

Each Function's backward is the local derivative times the incoming gradient, written on raw arrays. Gradients may
come back in the broadcast shape of the output: `autograd.backward` reduces them to each input's shape.
"""
import builtins
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
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    return fn_cls.apply(a, as_tensor(b, a))


# ----------------------------------------------------------------------------- elementwise, two inputs
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved
        ga = gy / b
        return (ga if self.needs_input_grad[0] else None,
                -ga * a / b if self.needs_input_grad[1] else None)


class Pow(Function):
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


class Maximum(Function):
    """Elementwise max; ties send the gradient to the first input."""

    def forward(self, a, b):
        self.save_for_backward(a >= b)
        return self.xp.maximum(a, b)

    def backward(self, gy):
        a_wins, = self.saved
        return gy * a_wins, gy * ~a_wins


class Where(Function):
    """where(cond, a, b); cond is a parameter (no gradient flows into a condition)."""

    def forward(self, a, b):
        return self.xp.where(self.cond, a, b)

    def backward(self, gy):
        zero = gy.dtype.type(0)
        return (self.xp.where(self.cond, gy, zero) if self.needs_input_grad[0] else None,
                self.xp.where(self.cond, zero, gy) if self.needs_input_grad[1] else None)


# ----------------------------------------------------------------------------- elementwise, one input
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, x):
        y = self.xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.saved[0]


class Sqrt(Function):
    def forward(self, x):
        y = self.xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy / (2 * self.saved[0])


class Tanh(Function):
    def forward(self, x):
        y = self.xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return gy * (1 - y * y)


class Sigmoid(Function):
    def forward(self, x):
        # tanh form: exact and overflow-free for large |x|
        y = self.xp.tanh(x * 0.5) * 0.5 + 0.5
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return gy * y * (1 - y)


class Relu(Function):
    def forward(self, x):
        y = self.xp.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return gy * (self.saved[0] > 0)


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.abs(x)

    def backward(self, gy):
        return gy * self.xp.sign(self.saved[0])


class Cast(Function):
    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.source)


class ToDevice(Function):
    """Moves data between devices; the gradient moves back."""

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


# ----------------------------------------------------------------------------- reductions
def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _inverse_permutation(axes):
    """The axes that undo a transpose (plain ints: CuPy wants a tuple, not a NumPy array)."""
    return tuple(int(a) for a in np.argsort(axes))


def _split_points(sizes):
    """Where pieces of these sizes start along an axis, after the first (plain ints: CuPy wants them)."""
    return [int(b) for b in np.cumsum(sizes)[:-1]]


def _reduced_size(shape, axes):
    return int(np.prod([shape[a] for a in axes]))


def _kept_shape(shape, axes):
    """The shape a reduction over `axes` has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return self.xp.broadcast_to(gy.reshape(_kept_shape(self.in_shape, self.axes)), self.in_shape)


class Mean(Function):
    def forward(self, x):
        self.in_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = _reduced_size(self.in_shape, self.axes)
        g = gy.reshape(_kept_shape(self.in_shape, self.axes)) / gy.dtype.type(builtins.max(n, 1))
        return self.xp.broadcast_to(g, self.in_shape)


class Var(Function):
    """var = sum((x - mean)^2) / (N - correction); d var / dx = 2 (x - mean) / (N - correction)."""

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


class MaxMin(Function):
    """max or min over axes; the gradient goes to one winner (the first in row-major order), like argmax."""

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


# ----------------------------------------------------------------------------- shapes
class Reshape(Function):
    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(_inverse_permutation(self.axes))


class BroadcastTo(Function):
    """The engine's un-broadcast is exactly this op's backward."""

    def forward(self, x):
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return gy


class GetItem(Function):
    """x[index]; backward scatter-adds, so repeated integer indices accumulate."""

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


class Concatenate(Function):
    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds = _split_points(self.sizes)
        return tuple(self.xp.split(gy, bounds, axis=self.axis))


class Split(Function):
    """Several outputs: the engine fills a zero gradient for pieces that were not used."""

    def forward(self, x):
        return tuple(self.xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *gys):
        return self.xp.concatenate(gys, axis=self.axis)


# ----------------------------------------------------------------------------- matmul
class MatMul(Function):
    """a @ b with NumPy's rules (1-d operands, broadcast batch dims).

    A stack of rows times one matrix, (..., n, k) @ (k, m), runs as one 2-d GEMM on (prod(...)*n, k): faster than
    many small batched GEMMs, and its weight gradient is one GEMM too instead of a batched product plus a sum.
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


def _check_matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs at least 1-d operands, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} (inner dimensions {k_a} and {k_b} differ)")


# ----------------------------------------------------------------------------- the functional API
def _elementwise(fn_cls):
    def op(a, b):
        return _binary(fn_cls, a, b)
    op.__name__ = fn_cls.__name__.lower()
    return op


add, sub, mul, div, pow, maximum = (_elementwise(c) for c in (Add, Sub, Mul, Div, Pow, Maximum))
neg, exp, log, sqrt, tanh, sigmoid, relu, abs = (c.apply for c in (Neg, Exp, Log, Sqrt, Tanh, Sigmoid, Relu, Abs))


def matmul(a, b):
    _check_matmul(a, b)
    return MatMul.apply(a, b)


def cast(x, dtype):
    return Cast.apply(x, dtype=np.dtype(dtype))


def to_device(x, device):
    return ToDevice.apply(x, device=device)


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


def var(x, axis=None, keepdims=False, correction=1):
    """Variance with Bessel's correction by default, like torch.var (correction=0 for the biased one)."""
    return Var.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, correction=correction)


def max(x, axis=None, keepdims=False):
    return MaxMin.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, mode="max")


def min(x, axis=None, keepdims=False):
    return MaxMin.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, mode="min")


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # validates -1 and sizes with NumPy's message
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {shape}") from None
    return Reshape.apply(x, shape=shape)


def transpose(x, *axes):
    axes = _shape_arg(axes) if axes else tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Transpose.apply(x, axes=tuple(a % x.ndim for a in axes))


def swapaxes(x, a, b):
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, *axes)


def unsqueeze(x, axis):
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, axis=None):
    axes = [i for i, n in enumerate(x.shape) if n == 1] if axis is None else _normalize_axes(axis, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def broadcast_to(x, *shape):
    shape = _shape_arg(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {shape}") from None
    shape = tuple(x.shape[i - len(shape) + x.ndim] if n == -1 else n for i, n in enumerate(shape))
    return BroadcastTo.apply(x, shape=shape)


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, Tensor)) or hasattr(p, "dtype") for p in parts)


def _raw_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    raw = tuple(p.data if isinstance(p, Tensor) else p for p in parts)
    return raw if isinstance(index, tuple) else raw[0]


def getitem(x, index):
    index = _raw_index(index)
    return GetItem.apply(x, index=index, advanced=_is_advanced(index))


def cat(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    ref = tensors[0]
    for t in tensors[1:]:
        if t.ndim != ref.ndim or any(n != m for i, (n, m) in enumerate(zip(t.shape, ref.shape))
                                     if i != axis % ref.ndim):
            raise ValueError(f"cat along axis {axis}: shapes {[t.shape for t in tensors]} differ off that axis")
    return Concatenate.apply(*tensors, axis=axis % ref.ndim)


def stack(tensors, axis=0):
    tensors = list(tensors)
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack needs tensors of one shape, got {[t.shape for t in tensors]}")
    return cat([unsqueeze(t, axis) for t in tensors], axis=axis % (tensors[0].ndim + 1))


def split(x, split_size_or_sections, axis=0):
    """PyTorch's split: an int is the size of each piece (the last may be smaller), a list gives every size."""
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
    pieces = Split.apply(x, bounds=_split_points(sizes), axis=axis % x.ndim)
    return pieces if isinstance(pieces, tuple) else (pieces,)


def chunk(x, chunks, axis=0):
    return split(x, -(-x.shape[axis] // chunks), axis)


def where(cond, a, b):
    cond = cond.data if isinstance(cond, Tensor) else cond
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    b = as_tensor(b, a)
    if a.dtype.kind != "f" and b.dtype.kind == "f":
        a = as_tensor(a.data.astype(b.dtype), b)
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    return Where.apply(a, b, cond=a.xp.broadcast_to(cond, shape))


def masked_fill(x, mask, value):
    return where(mask, as_tensor(value, x), x)


def _compare(op):
    def compare(a, b):
        a_data = a.data if isinstance(a, Tensor) else a
        b_data = b.data if isinstance(b, Tensor) else b
        return Tensor(getattr(a_data, op)(b_data))
    return compare


eq, ne, lt, le, gt, ge = (_compare(f"__{n}__") for n in ("eq", "ne", "lt", "le", "gt", "ge"))
