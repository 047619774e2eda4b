"""Tensor constructors shaped like PyTorch's: `zeros(2, 3)` and `zeros((2, 3))` both work."""
import numbers

import numpy as np

from . import backend, random
from .tensor import DEFAULT_DTYPE, Tensor, check_numeric


def _shape(shape):
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        return tuple(shape[0])
    return tuple(shape)


def _dtype(dtype):
    return np.dtype(DEFAULT_DTYPE if dtype is None else dtype)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A tensor of numbers, nested lists or an array (copied only when dtype or device ask for it)."""
    if hasattr(data, "dtype") and not isinstance(data, Tensor):
        check_numeric(data, data)          # arrays skip Tensor's conversion: strings or objects stop here too
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return Tensor(backend.get_xp(device).zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return Tensor(backend.get_xp(device).ones(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    data = backend.get_xp(device).full(shape, fill_value, dtype=_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the framework's generator (seeded by manual_seed)."""
    device = backend.check_device(device)
    data = random.rng(device).standard_normal(_shape(shape), dtype=_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the framework's generator (seeded by manual_seed)."""
    device = backend.check_device(device)
    data = random.rng(device).random(_shape(shape), dtype=_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Integers give int64 like PyTorch; any float argument gives the default float dtype."""
    start, end = (0, start) if end is None else (start, end)
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if is_int else DEFAULT_DTYPE
    data = backend.get_xp(device).arange(start, end, step, dtype=np.dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)
