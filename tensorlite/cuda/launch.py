"""Launch specs: for each kernel, one function that checks its arguments and says how to launch it.

A LaunchSpec (source file, kernel name, grid, block, shared memory, argument tuple) is everything a launch needs,
so the same spec runs on a GPU through CuPy's RawModule and on the CPU through the emulator: the Python launch code
is tested in CI, not only the kernel bodies. Every spec function rejects what would make a kernel read out of
bounds (wrong dtype, shape or contiguity) with an error naming the argument.
"""
from dataclasses import dataclass

import numpy as np

from .. import backend
from .sources import kernel_dir, read_source

# The kernels' tile sizes: defined here only, and handed to every compiler of kernels/*.cu as -D macros
# (KERNEL_DEFINES: NVRTC below, g++ in emulator.py, nvcc in tests/test_kernels_compile.py); a .cu file that uses
# one stops with an #error when it is missing. The NumPy mirrors (mirror.py) import them from here.
FA_ROWS = 64                 # query rows per block of the flash attention kernels (= key rows per block of dK/dV)
FA_TILE = 32                 # rows of the tile of K/V (or Q/dO) those blocks walk through shared memory
FA_PART = 32                 # head dimensions per thread there: D / FA_PART threads per row
LN_BWD_ROWS = 32             # rows per block of layernorm_bwd (kernels/layernorm.cu)
EMB_WARPS = 8                # warps per block of embedding_bwd (kernels/embedding.cu)
KERNEL_MACROS = {"FA_ROWS": FA_ROWS, "FA_TILE": FA_TILE, "FA_PART": FA_PART, "LN_BWD_ROWS": LN_BWD_ROWS,
                 "EMB_WARPS": EMB_WARPS}
KERNEL_DEFINES = tuple(f"-D{name}={value}" for name, value in KERNEL_MACROS.items())
FA_HEAD_SIZES = (32, 64, 128)
ROW_THREADS = 128            # threads per block of the row kernels (softmax.cu, layernorm.cu)
ELEMENTWISE_THREADS = 256    # threads per block of the elementwise kernels (gelu.cu, dropout.cu, adamw.cu)
EMB_THREADS = EMB_WARPS * 32
MAX_GRID_Y = 65535
NVRTC_OPTIONS = ("--std=c++17",) + KERNEL_DEFINES


@dataclass(frozen=True)
class LaunchSpec:
    source: str
    kernel: str
    grid: tuple
    block: tuple
    shared_mem: int
    args: tuple


def _check_float32(name, *arrays, shape=None):
    for i, a in enumerate(arrays):
        if a.dtype != np.float32:
            raise TypeError(f"{name}: argument {i} must be float32, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}: argument {i} must be C-contiguous")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name}: argument {i} has shape {a.shape}, expected {shape}")


def _check_int64(name, a, shape):
    if a.dtype != np.int64 or a.shape != shape or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous int64 of shape {shape}, got {a.dtype} {a.shape}")


def _attention_shape(name, q):
    if q.ndim != 4 or q.shape[-1] not in FA_HEAD_SIZES or q.shape[2] < 1:
        raise ValueError(f"{name}: q must be (B, H, T, D) with D in {FA_HEAD_SIZES}, got shape {q.shape}")
    B, H, T, D = q.shape
    if B * H > MAX_GRID_Y:   # one block row per (batch, head): the grid's y extent
        raise ValueError(f"{name}: batch * heads = {B * H} is more than a grid's {MAX_GRID_Y} rows of blocks")
    return B, H, T, D


def _fa_block(D):
    """Threads per block: FA_ROWS rows, D / FA_PART threads each."""
    return (FA_ROWS * D // FA_PART,)


def _attention_scalars(T, scale, causal, dropout_p, seed):
    return (np.int32(T), np.float32(scale), np.int32(bool(causal)), np.float32(dropout_p), np.uint32(seed))


def flash_forward(q, k, v, o, lse, scale, causal, dropout_p, seed):
    B, H, T, D = _attention_shape("flash_attn_fwd", q)
    _check_float32("flash_attn_fwd", q, k, v, o, shape=q.shape)
    _check_float32("flash_attn_fwd lse", lse, shape=(B, H, T))
    return LaunchSpec("flash_attention.cu", f"flash_attn_fwd_d{D}", (-(-T // FA_ROWS), B * H), _fa_block(D), 0,
                      (q, k, v, o, lse) + _attention_scalars(T, scale, causal, dropout_p, seed))


def flash_backward_dot(do, o, dvec):
    B, H, T, D = _attention_shape("flash_attn_bwd_dot", o)
    _check_float32("flash_attn_bwd_dot", do, o, shape=o.shape)
    _check_float32("flash_attn_bwd_dot dvec", dvec, shape=(B, H, T))
    rows = B * H * T
    return LaunchSpec("flash_attention.cu", "flash_attn_bwd_dot", (-(-rows // 256),), (256,), 0,
                      (do, o, dvec, np.int32(rows), np.int32(D)))


def flash_backward_dkdv(q, k, v, do, lse, dvec, dk, dv, scale, causal, dropout_p, seed):
    B, H, T, D = _attention_shape("flash_attn_bwd_dkdv", q)
    _check_float32("flash_attn_bwd_dkdv", q, k, v, do, dk, dv, shape=q.shape)
    _check_float32("flash_attn_bwd_dkdv lse/dvec", lse, dvec, shape=(B, H, T))
    return LaunchSpec("flash_attention.cu", f"flash_attn_bwd_dkdv_d{D}", (-(-T // FA_ROWS), B * H), _fa_block(D),
                      0, (q, k, v, do, lse, dvec, dk, dv) + _attention_scalars(T, scale, causal, dropout_p, seed))


def flash_backward_dq(q, k, v, do, lse, dvec, dq, scale, causal, dropout_p, seed):
    B, H, T, D = _attention_shape("flash_attn_bwd_dq", q)
    _check_float32("flash_attn_bwd_dq", q, k, v, do, dq, shape=q.shape)
    _check_float32("flash_attn_bwd_dq lse/dvec", lse, dvec, shape=(B, H, T))
    return LaunchSpec("flash_attention.cu", f"flash_attn_bwd_dq_d{D}", (-(-T // FA_ROWS), B * H), _fa_block(D), 0,
                      (q, k, v, do, lse, dvec, dq) + _attention_scalars(T, scale, causal, dropout_p, seed))


def _rows(name, x):
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected a non-empty (rows, cols) matrix, got shape {x.shape}")
    return x.shape


def softmax_forward(x, y):
    rows, cols = _rows("softmax_fwd", x)
    _check_float32("softmax_fwd", x, y, shape=x.shape)
    return LaunchSpec("softmax.cu", "softmax_fwd", (rows,), (ROW_THREADS,), 0, (x, y, np.int32(rows), np.int32(cols)))


def softmax_backward(y, dy, dx):
    rows, cols = _rows("softmax_bwd", y)
    _check_float32("softmax_bwd", y, dy, dx, shape=y.shape)
    return LaunchSpec("softmax.cu", "softmax_bwd", (rows,), (ROW_THREADS,), 0,
                      (y, dy, dx, np.int32(rows), np.int32(cols)))


def softmax_xent(logits, targets, loss, dlogits, ignore_index):
    rows, cols = _rows("softmax_xent", logits)
    _check_float32("softmax_xent", logits, dlogits, shape=logits.shape)
    _check_float32("softmax_xent loss", loss, shape=(rows,))
    _check_int64("softmax_xent: targets", targets, (rows,))
    return LaunchSpec("softmax.cu", "softmax_xent", (rows,), (ROW_THREADS,), 0,
                      (logits, targets, loss, dlogits, np.int32(rows), np.int32(cols), np.int64(ignore_index)))


def layernorm_forward(x, w, b, y, mean, rstd, eps):
    rows, cols = _rows("layernorm_fwd", x)
    _check_float32("layernorm_fwd", x, y, shape=x.shape)
    _check_float32("layernorm_fwd weight/bias", w, *(() if b is None else (b,)), shape=(cols,))
    _check_float32("layernorm_fwd mean/rstd", mean, rstd, shape=(rows,))
    return LaunchSpec("layernorm.cu", "layernorm_fwd", (rows,), (ROW_THREADS,), 0,
                      (x, w, w if b is None else b, y, mean, rstd, np.int32(rows), np.int32(cols), np.float32(eps),
                       np.int32(b is not None)))


def layernorm_backward_blocks(rows):
    """How many blocks layernorm_bwd runs for `rows` rows: one row of partial dw / db sums each."""
    return -(-rows // LN_BWD_ROWS)


def layernorm_backward(x, w, mean, rstd, dy, dx, dw_partial, db_partial):
    """dx, and per-block partial sums of dw and db ((blocks, cols) each) for the caller to add up over axis 0."""
    rows, cols = _rows("layernorm_bwd", x)
    blocks = layernorm_backward_blocks(rows)
    _check_float32("layernorm_bwd", x, dy, dx, shape=x.shape)
    _check_float32("layernorm_bwd weight", w, shape=(cols,))
    _check_float32("layernorm_bwd dw/db partial sums", dw_partial, db_partial, shape=(blocks, cols))
    _check_float32("layernorm_bwd mean/rstd", mean, rstd, shape=(rows,))
    return LaunchSpec("layernorm.cu", "layernorm_bwd", (blocks,), (ROW_THREADS,), 0,
                      (x, w, mean, rstd, dy, dx, dw_partial, db_partial, np.int32(rows), np.int32(cols)))


def embedding_backward(dy, order, starts, dweight):
    """dweight (rows, cols) of a row lookup from dy (n, cols): `order` (n,) sorts the positions by id (stably) and
    starts (rows + 1,) is where each id's run begins in it (so starts[-1] == n)."""
    n, cols = _rows("embedding_bwd dy", dy)
    rows, _ = _rows("embedding_bwd dweight", dweight)
    _check_float32("embedding_bwd dy", dy, shape=(n, cols))
    _check_float32("embedding_bwd dweight", dweight, shape=(rows, cols))
    _check_int64("embedding_bwd: order", order, (n,))
    _check_int64("embedding_bwd: starts", starts, (rows + 1,))
    col_tiles = -(-cols // 32)
    if col_tiles > MAX_GRID_Y:
        raise ValueError(f"embedding_bwd: {cols} columns is more than the grid covers ({MAX_GRID_Y * 32})")
    return LaunchSpec("embedding.cu", "embedding_bwd", (rows, col_tiles), (EMB_THREADS,), 0,
                      (dy, order, starts, dweight, np.int32(cols)))


def _elementwise_grid(n):
    """A grid-stride loop covers any n; enough blocks to fill a GPU, never zero."""
    return (max(1, min(-(-n // ELEMENTWISE_THREADS), 65535)),), (ELEMENTWISE_THREADS,)


def gelu_forward(x, y):
    _check_float32("gelu_fwd", x, y, shape=x.shape)
    return LaunchSpec("gelu.cu", "gelu_fwd", *_elementwise_grid(x.size), 0, (x, y, np.int64(x.size)))


def gelu_backward(x, dy, dx):
    _check_float32("gelu_bwd", x, dy, dx, shape=x.shape)
    return LaunchSpec("gelu.cu", "gelu_bwd", *_elementwise_grid(x.size), 0, (x, dy, dx, np.int64(x.size)))


def _dropout_scalars(name, x, p, seed):
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name}: p must be in [0, 1), got {p}")
    return np.int64(x.size), np.float32(p), np.uint32(seed)


def dropout_mul(x, y, p, seed):
    """y = x * mask / (1 - p), the mask a hash of (seed, index): forward (x) and backward (dy) alike."""
    _check_float32("dropout_mul", x, y, shape=x.shape)
    return LaunchSpec("dropout.cu", "dropout_mul", *_elementwise_grid(x.size), 0,
                      (x, y) + _dropout_scalars("dropout_mul", x, p, seed))


def dropout_add(x, residual, y, p, seed):
    """y = residual + x * mask / (1 - p), the mask dropout_mul's for the same seed."""
    _check_float32("dropout_add", x, residual, y, shape=x.shape)
    return LaunchSpec("dropout.cu", "dropout_add", *_elementwise_grid(x.size), 0,
                      (x, residual, y) + _dropout_scalars("dropout_add", x, p, seed))


def adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW update of a flat parameter group; step is the 1-based step count (for bias correction)."""
    if p.ndim != 1:
        raise ValueError(f"adamw_step works on a flat buffer, got shape {p.shape}")
    _check_float32("adamw_step", p, g, m, v, shape=p.shape)
    scalars = (np.float32(lr), np.float32(beta1), np.float32(beta2), np.float32(eps), np.float32(weight_decay),
               np.float32(1 - beta1 ** step), np.float32(1 - beta2 ** step))
    return LaunchSpec("adamw.cu", "adamw_step", *_elementwise_grid(p.size), 0, (p, g, m, v, np.int64(p.size)) + scalars)


# ----------------------------------------------------------------------------- runners
_modules = {}


def _cupy_function(source, kernel):
    """RawModule compiled once per (source, options, device), then cached."""
    cupy = backend.cupy_or_raise()
    code = read_source(source)
    key = (source, hash(code), NVRTC_OPTIONS, cupy.cuda.Device().id)
    if key not in _modules:
        _modules[key] = cupy.RawModule(code=code, options=NVRTC_OPTIONS + (f"-I{kernel_dir()}",))
    return _modules[key].get_function(kernel)


def run(spec):
    """Launch a spec on the device its arrays live on: CuPy for GPU arrays, the emulator for NumPy arrays."""
    arrays = [a for a in spec.args if isinstance(a, np.ndarray) or backend.is_cuda_array(a)]
    if arrays and backend.is_cuda_array(arrays[0]):
        _cupy_function(spec.source, spec.kernel)(spec.grid, spec.block, spec.args, shared_mem=spec.shared_mem)
    else:
        from . import emulator
        emulator.launch(spec.source, spec.kernel, spec.grid, spec.block, spec.shared_mem, spec.args)
