"""Hand-written CUDA kernels behind the functional ops.

This package loads `kernels/*.cu`, owns each kernel's launch spec (grid, block, shared memory, arguments) and
decides, once, whether an op runs the fused kernel, the reference path or the CPU emulator (`TENSORLITE_FUSED`).
It also answers PyTorch's `torch.cuda.is_available()`, so `device = 'cuda' if tl.cuda.is_available() else 'cpu'`
reads as it does there.
"""
from ..backend import cuda_available as is_available  # noqa: F401  (PyTorch's spelling of tl.cuda_available)
