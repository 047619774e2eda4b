"""Hand-written CUDA kernels behind the functional ops.

This package loads `kernels/*.cu`, owns each kernel's launch spec (grid, block, shared memory, arguments) and
decides, once, whether an op runs the fused kernel, the reference path or the CPU emulator (`TENSORLITE_FUSED`).
"""
