"""Tensor constructors and random sampling shaped like PyTorch's: `zeros(2, 3)` and `zeros((2, 3))` both work,
and every random one takes `generator=` (a tl.Generator) as well as drawing from the framework's stream."""
import numbers

import numpy as np

from . import backend, random
from .ops import _argsort
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


def randn(*shape, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from `generator` (a tl.Generator) or the framework's stream (seeded by manual_seed).
    Not PyTorch's numbers for the same seed: the generators differ (tensorlite/random.py)."""
    data = random.normal(_shape(shape), 0.0, 1.0, _dtype(dtype), backend.check_device(device), generator)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1), drawn as randn's."""
    data = random.uniform(_shape(shape), 0.0, 1.0, _dtype(dtype), backend.check_device(device), generator)
    return Tensor(data, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Integers give int64 like PyTorch; any float argument gives the default float dtype."""
    start, end = (0, start) if end is None else (start, end)
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if is_int else DEFAULT_DTYPE
    data = backend.get_xp(device).arange(start, end, step, dtype=np.dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, both included (the default float dtype)."""
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"linspace steps must be an integer >= 0, got {steps!r}")
    data = backend.get_xp(device).linspace(start, end, int(steps), dtype=_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def from_numpy(array):
    """A tensor sharing `array`'s memory (writing one changes the other), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a NumPy ndarray, got {type(array).__name__}")
    check_numeric(array, array)
    return Tensor(array)


# ----------------------------------------------------------------------------- random integers and sampling
def randint(low=0, high=None, size=None, *, generator=None, dtype=np.int64, device=None, requires_grad=False):
    """Integers drawn uniformly from [low, high), int64 by default, as torch.randint: `randint(high, size)` or
    `randint(low, high, size)` (nanoGPT's `randint(len(data) - block_size, (batch_size,))`)."""
    if high is None:                                     # randint(high, size=...)
        low, high = 0, low
    elif size is None:                                   # randint(high, size): the first two are high and size
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint needs high and size: randint(high, size) or randint(low, high, size)")
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"randint {name} must be an integer, got {value!r}")
    if high <= low:
        raise ValueError(f"randint needs low < high, got low={low}, high={high}")
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    draw = random.stream(backend.check_device(device), generator).integers(int(low), int(high), size,
                                                                          dtype=np.int64)
    return Tensor(draw.astype(np.dtype(dtype), copy=False), requires_grad=requires_grad)


def randperm(n, *, generator=None, dtype=np.int64, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1 (int64 by default): the order of n uniform draws, on either backend."""
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"randperm n must be an integer >= 0, got {n!r}")
    keys = random.stream(backend.check_device(device), generator).random(int(n))
    return Tensor(keys.argsort().astype(np.dtype(dtype), copy=False), requires_grad=requires_grad)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn from each row of `input`, rows of non-negative weights (probabilities, or anything
    proportional to them), 1-d (K,) or 2-d (N, K): int64 of shape (num_samples,) or (N, num_samples), as
    torch.multinomial (GPT sampling's `multinomial(probs, num_samples=1)`).

    With replacement, each draw inverts the row's cumulative distribution at a uniform number. Without, the draws
    are the num_samples largest of w_i / E_i with E_i ~ Exp(1), which picks by weight one after another (the
    "exponential race": the smallest E_i / w_i, an exponential of rate w_i, finishes first).
    """
    probs = _multinomial_weights(input, num_samples, replacement)
    xp, rows = backend.xp_of(probs), probs.reshape(-1, probs.shape[-1])              # (N, K)
    draws = random.stream(backend.device_of(probs), generator)
    if replacement:
        cdf = xp.cumsum(rows, axis=1)
        u = draws.random((rows.shape[0], num_samples)) * cdf[:, -1:]                   # uniform in [0, row total)
        last = rows.shape[1] - 1 - xp.argmax(rows[:, ::-1] > 0, axis=1)                # the last nonzero weight
        picks = xp.empty(u.shape, dtype=np.int64)
        for r in range(rows.shape[0]):
            picks[r] = xp.searchsorted(cdf[r], u[r], side="right")
        picks = xp.minimum(picks, last[:, None])          # u rounded up to the total must not pick a zero weight
    else:
        keys = xp.where(rows > 0, rows / draws.standard_exponential(rows.shape), -1.0)   # a zero weight never races
        picks = _argsort(keys, 1, descending=True)[:, :num_samples]
    return Tensor(picks.astype(np.int64, copy=False).reshape(probs.shape[:-1] + (num_samples,)))


def _multinomial_weights(input, num_samples, replacement):
    """input's array as float64, after PyTorch's checks: 1-d or 2-d, floating, finite, non-negative, each row
    with a positive sum, and without replacement enough nonzero weights for num_samples."""
    probs = input.data if isinstance(input, Tensor) else np.asarray(input)
    if probs.ndim not in (1, 2):
        raise ValueError(f"multinomial takes a 1-d or 2-d tensor of weights, got shape {probs.shape}")
    if probs.dtype.kind != "f":
        raise TypeError(f"multinomial takes floating weights, got dtype {probs.dtype}")
    if not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
        raise ValueError(f"multinomial num_samples must be a positive integer, got {num_samples!r}")
    if not replacement and num_samples > probs.shape[-1]:
        raise ValueError(f"multinomial cannot draw {num_samples} samples without replacement from "
                         f"{probs.shape[-1]} categories")
    probs = probs.astype(np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    xp = backend.xp_of(probs)
    backend.device_assert(~xp.isfinite(rows).all() | (rows < 0).any(), lambda: ValueError(
        "multinomial weights must be finite and >= 0 (got inf, nan or a negative weight)"))
    backend.device_assert((rows.sum(axis=1) <= 0).any(), lambda: ValueError(
        "multinomial: a row of weights sums to 0, so there is nothing to draw"))
    if not replacement:
        backend.device_assert(((rows > 0).sum(axis=1) < num_samples).any(), lambda: ValueError(
            f"multinomial: a row has fewer than {num_samples} nonzero weights, too few to draw {num_samples} "
            "without replacement"))
    return probs
