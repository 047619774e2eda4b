"""tensorlite: a small, readable reverse-mode autograd framework on NumPy (CPU) and CuPy (GPU)."""
from .tensor import Tensor  # noqa: I001  (first: the other modules build on Tensor)
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .backend import cuda_available
from .random import get_rng_state, manual_seed, set_rng_state
from .factories import arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .gradcheck import gradcheck
from .ops import cat, chunk, matmul, max, maximum, min, minimum, split, stack, where

from numpy import float16, float32, float64, int32, int64  # dtypes, as tl.float32 like torch.float32
from . import cpu  # noqa: E402, F401  (tunes glibc's malloc for the engine's temporaries at import)
from . import functional, nn, optim, parallel  # noqa: E402  (the layers built on the engine)
from . import viz  # noqa: E402  (tl.viz.to_dot / render: the graph behind a tensor)

__all__ = ["Tensor", "Function", "enable_grad", "is_grad_enabled", "no_grad", "cuda_available", "manual_seed",
           "get_rng_state", "set_rng_state", "arange", "full", "ones", "ones_like", "rand", "randn", "tensor",
           "zeros", "zeros_like", "gradcheck", "cat", "chunk", "matmul", "max", "maximum", "min", "minimum", "split",
           "stack", "where", "float16", "float32", "float64", "int32", "int64", "functional", "nn", "optim",
           "parallel", "viz"]
