"""Initialisations with PyTorch's names and formulas (torch.nn.init), for nanoGPT's `_init_weights`:
`nn.init.normal_(module.weight, mean=0.0, std=0.02)`, `nn.init.zeros_(module.bias)`.

Each writes into the tensor's own array, outside any graph, and returns the tensor: a Parameter stays the very
Parameter its module and optimizer hold. Fan-in and fan-out are PyTorch's: a weight of shape (out, in, *kernel) has
fan_in = in * prod(kernel) and fan_out = out * prod(kernel). The random ones take `generator=` and draw other
numbers than PyTorch for the same seed (tensorlite/random.py).
"""
import math
import numbers
import warnings

from .. import random
from ..autograd import no_grad
from ..tensor import Tensor


def _fill(tensor, values):
    """tensor's values overwritten with values (an array or a number) in place, outside the graph as PyTorch's
    init functions are (under no_grad), through Tensor.copy_: its version moves on, so a graph that saved the old
    values fails at backward instead of using the new ones. Returns the tensor."""
    with no_grad():
        return tensor.copy_(values if isinstance(values, numbers.Number) else Tensor(values))


def _check_floating(tensor, name):
    if tensor.dtype.kind != "f":
        raise TypeError(f"nn.init.{name} fills floating tensors, got dtype {tensor.dtype}")


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    _check_floating(tensor, "normal_")
    return _fill(tensor, random.normal(tensor.shape, mean, std, tensor.dtype, tensor.device, generator))


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of U(a, b)."""
    _check_floating(tensor, "uniform_")
    return _fill(tensor, random.uniform(tensor.shape, a, b, tensor.dtype, tensor.device, generator))


def constant_(tensor, val):
    return _fill(tensor, val)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for a nonlinearity: the factor that keeps activations' variance steady through
    it (1 for linear and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu with
    negative slope `param`, default 0.01, and 3/4 for selu)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            param = 0.01
        if isinstance(param, bool) or not isinstance(param, numbers.Real):
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + param ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fans(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dims, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _xavier_std(tensor, gain):
    fan_in, fan_out = _fans(tensor)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot's U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(3.0) * _xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot's N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    return normal_(tensor, 0.0, _xavier_std(tensor, gain), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    """He's std = gain / sqrt(fan), or None (with PyTorch's warning) for a tensor with no elements."""
    if 0 in tensor.shape:
        warnings.warn("initializing a zero-element tensor is a no-op", stacklevel=3)
        return None
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _fans(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He's U(-bound, bound) with bound = sqrt(3) * gain / sqrt(fan); `a` is leaky_relu's negative slope."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He's N(0, std^2) with std = gain / sqrt(fan)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)
