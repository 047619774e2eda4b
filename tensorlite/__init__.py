"""tensorlite: a small, readable reverse-mode autograd framework on NumPy (CPU) and CuPy (GPU).

The top level has PyTorch's names: constructors and random sampling (tensorlite/factories.py), the generators
(random.py), the ops as functions (`tl.tanh(x)` is `x.tanh()`, the same function in ops.py or functional.py),
dtype names (dtypes.py) and `tl.save` / `tl.load` (serialization.py).
"""
from .tensor import Tensor  # noqa: I001  (first: the other modules build on Tensor)
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .backend import cuda_available
from .random import Generator, get_rng_state, manual_seed, set_rng_state
from .factories import (arange, from_numpy, full, linspace, multinomial, ones, ones_like, rand, randint, randn,
                        randperm, tensor, zeros, zeros_like)
from .gradcheck import gradcheck
from .ops import (abs, amax, amin, argmax, argmin, argsort, cat, chunk, clamp, clip, clone, cumsum, exp, flatten,
                  gather, log, log2, log10, masked_fill, matmul, max, maximum, mean, min, minimum, neg, permute, pow,
                  relu, reshape, sigmoid, sort, split, sqrt, squeeze, stack, std, sum, tanh, topk, transpose, tril,
                  triu, unsqueeze, var, where)
from .logical import all, allclose, any, equal
from . import dtypes
from .dtypes import (bool, double, float, float16, float32, float64, half, int, int8, int16, int32, int64, long,
                     short, uint8)
from .serialization import load, save

from . import cpu  # noqa: E402, F401  (tunes glibc's malloc for the engine's temporaries at import)
from . import functional, nn, optim, parallel  # noqa: E402  (the layers built on the engine)
from . import viz  # noqa: E402  (tl.viz.to_dot / render: the graph behind a tensor)
from .functional import log_softmax, softmax  # noqa: E402

# Names that are Python builtins (sum, max, all, float, ...) stay out of __all__, so `from tensorlite import *`
# cannot shadow them; tl.sum and tl.float work as torch.sum and torch.float do.
__all__ = ["Tensor", "Function", "enable_grad", "is_grad_enabled", "no_grad", "cuda_available", "manual_seed",
           "get_rng_state", "set_rng_state", "Generator", "arange", "from_numpy", "full", "linspace", "multinomial",
           "ones", "ones_like", "rand", "randint", "randn", "randperm", "tensor", "zeros", "zeros_like", "gradcheck",
           "amax", "amin", "argmax", "argmin", "argsort", "cat", "chunk", "clamp", "clip", "clone", "cumsum", "exp",
           "flatten", "gather", "log", "log2", "log10", "masked_fill", "matmul", "maximum", "mean", "minimum", "neg",
           "permute", "relu", "reshape", "sigmoid", "sort", "split", "sqrt", "squeeze", "stack", "std", "tanh", "topk",
           "transpose", "tril", "triu", "unsqueeze", "var", "where", "allclose", "equal", "softmax", "log_softmax",
           "save", "load", "double", "float16", "float32", "float64", "half", "int8", "int16", "int32", "int64",
           "long", "short", "uint8", "dtypes", "functional", "nn", "optim", "parallel", "viz"]


def __getattr__(name):
    """tl.bfloat16 and the like: say why they are missing instead of a bare AttributeError."""
    if name in dtypes.MISSING:
        raise AttributeError(f"tensorlite has no {name}: {dtypes.MISSING[name]}")
    raise AttributeError(f"module 'tensorlite' has no attribute {name!r}")
