"""How the engine uses the CPU it runs on: the cores it may use, a thread pool that runs one pass over a big
buffer on all of them, and glibc's malloc thresholds (set when this module is imported, with tensorlite).

tensorlite.parallel sizes its shards by `usable_cores`; AdamW runs its flat update through `in_slices`; GPT
decoding runs a small model's products under `blas_threads(1)`.
"""
import contextlib
import ctypes
import os
import sys

import numpy as np

from .backend import is_cuda_array


def _tune_glibc_malloc():
    """Keep freed arrays in the heap instead of returning them to the OS.

    glibc serves large blocks (activations, gradients: ~1 MB here) with mmap and unmaps them on free, so every
    fresh temporary is zero-filled by page faults again. Raising the mmap and trim thresholds lets a training step
    reuse the previous step's memory (docs/performance.md has the figures). Opt out with
    TENSORLITE_MALLOC_TUNING=0; thresholds set through glibc's own variables are left alone.
    """
    if sys.platform != "linux" or os.environ.get("TENSORLITE_MALLOC_TUNING") == "0" or \
            "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:      # not glibc (musl, ...): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 256 << 20))


_tune_glibc_malloc()


def usable_cores():
    """Cores this process may run on (the affinity mask where the OS has one, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_pool = None   # threads for in_slices, made on first use
_blas = None   # threadpoolctl's view of the loaded BLAS, made on first use


@contextlib.contextmanager
def blas_threads(n):
    """Within this block (or decorated function) BLAS runs on at most n threads (None: no limit), as
    tensorlite.parallel's shards do: for products too small to split between cores, where waiting for a second
    thread costs more than it saves, and much more on a busy machine, whose other processes hold the cores BLAS's
    threads wait for."""
    global _blas
    if n is None:              # nothing to limit (a GPU's work): threadpoolctl is not even imported
        yield
        return
    if _blas is None:
        from threadpoolctl import ThreadpoolController   # here, not at import: only CPU work needs it
        _blas = ThreadpoolController()
    with _blas.limit(limits=n, user_api="blas"):
        yield


def in_slices(fn, *arrays, min_size=1 << 18):
    """fn(*slices) over equal slices of 1-d arrays, one slice per core at once: NumPy releases the GIL inside
    its loops, so a chain of passes over a big CPU buffer (AdamW over all parameters) runs on every core. One
    plain call for GPU arrays, small arrays or one core."""
    global _pool
    n = min(usable_cores(), arrays[0].size // min_size)
    if n < 2 or is_cuda_array(arrays[0]):
        return fn(*arrays)
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=usable_cores() - 1, thread_name_prefix="tensorlite")
    bounds = np.linspace(0, arrays[0].size, n + 1).astype(int)
    pieces = [[a[lo:hi] for a in arrays] for lo, hi in zip(bounds[:-1], bounds[1:])]
    futures = [_pool.submit(fn, *piece) for piece in pieces[1:]]
    fn(*pieces[0])
    for future in futures:
        future.result()
