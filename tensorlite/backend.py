"""Devices and array modules: the one place that knows CuPy exists.

Every other module asks this one for the array module (`xp`) of a device or of an array, so the same source runs
on NumPy and CuPy and no op ever checks `if cupy`. Importing tensorlite never imports CuPy; asking for
`device='cuda'` does, and fails with one sentence that says what to install when CuPy or a GPU is missing.
"""
import contextlib
import ctypes
import os
import sys
import threading

import numpy as np

DEVICES = ("cpu", "cuda")
_cupy = None          # the cupy module once it has been imported successfully
_seed = None          # the last manual_seed, so generators made later (e.g. on first cuda use) follow it
_generators = {}      # device -> random generator
_thread = threading.local()   # .generator: a per-thread CPU generator set by using_generator


def _tune_glibc_malloc():
    """Keep freed arrays in the heap instead of returning them to the OS.

    glibc serves large blocks (activations, gradients: ~1 MB here) with mmap and unmaps them on free, so every
    fresh temporary is zero-filled by page faults again. Raising the mmap and trim thresholds lets a training step
    reuse the previous step's memory: 57 -> 47 ms/step for the cpu preset on 2 cores. Opt out with
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


MALLOC_TUNED = _tune_glibc_malloc()


class DeviceError(RuntimeError):
    """A device that does not exist here, or tensors on different devices meeting in one op."""


def check_device(device):
    """Normalise a device name ('cuda:0' -> 'cuda') or raise naming the valid ones."""
    name = "cpu" if device is None else str(device).split(":")[0]
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return name


def set_tf32(enabled):
    """TF32 for float32 matmuls on the GPU (10-bit mantissa inputs, float32 accumulation, on Ampere and later),
    like PyTorch's allow_tf32; on unless this or TENSORLITE_TF32=0 turns it off. Takes effect at the next matmul."""
    os.environ["CUPY_TF32"] = "1" if enabled else "0"
    if _cupy is not None:   # CuPy read CUPY_TF32 at its first float32 matmul and kept it: make it read it again
        _cupy._core.set_compute_type(np.float32, _cupy._core._routines_linalg.COMPUTE_TYPE_TBD)


def cupy_or_raise():
    """Import CuPy and check that a GPU answers, or raise one clear sentence saying what is missing."""
    global _cupy
    if _cupy is not None:
        return _cupy
    # TF32 matmuls by default (set_tf32); TENSORLITE_TF32=0 keeps full float32
    os.environ.setdefault("CUPY_TF32", "0" if os.environ.get("TENSORLITE_TF32") == "0" else "1")
    try:
        import cupy
    except ImportError:
        raise DeviceError("device 'cuda' needs CuPy: pip install 'tensorlite[cuda12]' or 'tensorlite[cuda13]' "
                          "(cupy-cuda12x / cupy-cuda13x, matching your CUDA driver)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CuPy raises its own runtime errors when no driver is present
        raise DeviceError(f"device 'cuda' needs a working NVIDIA GPU and driver; CuPy says: {err}") from None
    if count == 0:
        raise DeviceError("device 'cuda' needs an NVIDIA GPU, and CuPy finds none on this machine")
    _cupy = cupy
    return cupy


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy_or_raise()
        return True
    except DeviceError:
        return False


def get_xp(device):
    """The array module of a device: numpy for 'cpu', cupy for 'cuda'."""
    return np if check_device(device) == "cpu" else cupy_or_raise()


def is_cuda_array(array):
    """True for a CuPy ndarray; decided without importing CuPy."""
    return not isinstance(array, (np.ndarray, np.generic)) and type(array).__module__.startswith("cupy")


def device_of(array):
    return "cuda" if is_cuda_array(array) else "cpu"


MAX_DEFERRED_CHECKS = 256   # at most this many input checks wait for the host's next look at the device
_deferred_checks = []       # (0-d device bool array, function making the error) not looked at yet


def check(bad, make_error):
    """Raise make_error() if the 0-d boolean array `bad` is true: input checks (ids out of range) that need the
    data's values. On the CPU at once. On a GPU, reading `bad` would make the host wait for the device on every
    forward pass, so the flag is looked at when the host next waits anyway (`Tensor.item()`, `.numpy()`: a
    training loop's logging) or after MAX_DEFERRED_CHECKS checks, as PyTorch's device-side asserts surface late.
    The kernels behind such checks must not read out of bounds meanwhile (they give NaN or wrap)."""
    if not is_cuda_array(bad):
        if bad:
            raise make_error()
        return
    _deferred_checks.append((bad, make_error))
    if len(_deferred_checks) >= MAX_DEFERRED_CHECKS:
        flush_checks()


def flush_checks():
    """Look at every deferred check (one host sync for all of them) and raise the first failed one's error."""
    if not _deferred_checks:
        return
    pending = list(_deferred_checks)
    _deferred_checks.clear()
    failed = to_device(get_xp("cuda").stack([bad for bad, _ in pending]), "cpu")
    for (_, make_error), is_bad in zip(pending, failed):
        if is_bad:
            raise make_error()


def xp_of(array):
    """The array module an array belongs to (called once per op, so NumPy is answered first and fast)."""
    return np if isinstance(array, np.ndarray) else get_xp(device_of(array))


def to_device(array, device):
    """Copy an array to a device (a no-op when it is already there)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    return cupy_or_raise().asarray(array)


def to_numpy(array):
    return to_device(array, "cpu")


def scatter_add(target, index, values):
    """target[index] += values, where repeated indices accumulate (a plain `+=` would keep only one)."""
    if is_cuda_array(target):
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def scatter_add_rows(num_rows, index, values):
    """rows[index[i]] += values[i] into a fresh (num_rows, ...) array: the backward of a row lookup.

    On the CPU, sorting the indices and summing runs with `add.reduceat` is ~6x faster than `np.add.at`. On the
    GPU this is CuPy's atomic scatter: the reference path, which kernels/embedding.cu (the same sort-and-sum-runs
    idea, deterministic) replaces where it applies (tensorlite/cuda/fused.py embedding_backward).
    """
    xp = xp_of(values)
    rows = xp.zeros((num_rows,) + values.shape[1:], dtype=values.dtype)
    if index.size == 0:
        return rows
    if is_cuda_array(values):
        scatter_add(rows, index, values)
        return rows
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    rows[sorted_index[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return rows


def erf(x):
    """The error function, elementwise (NumPy has none of its own; SciPy's or CuPy's is used)."""
    if is_cuda_array(x):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    try:
        from scipy.special import erf as scipy_erf
    except ImportError:
        import math
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return scipy_erf(x).astype(x.dtype, copy=False)


def usable_cores():
    """Cores this process may run on (the affinity mask where the OS has one, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_pool = None   # threads for in_slices, made on first use


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


def manual_seed(seed):
    """Seed every random source the framework draws from, on every backend (made lazily for cuda)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def _root_seed():
    """The last manual_seed, or fresh entropy when there was none."""
    return _seed if _seed is not None else np.random.SeedSequence().entropy


def rng(device):
    """The framework's random generator of a device (numpy or cupy Generator), seeded by manual_seed; on the
    CPU, a thread inside `using_generator` gets that generator instead."""
    device = check_device(device)
    if device == "cpu" and getattr(_thread, "generator", None) is not None:
        return _thread.generator
    if device not in _generators:
        # Each device gets its own stream derived from the one seed, so cpu and cuda runs are both reproducible.
        streams = np.random.SeedSequence(_root_seed()).spawn(len(DEVICES))
        stream = streams[DEVICES.index(device)]
        _generators[device] = np.random.default_rng(stream) if device == "cpu" else \
            cupy_or_raise().random.default_rng(int(stream.generate_state(1)[0]))
    return _generators[device]


def kernel_seed(device):
    """A 32-bit seed for a kernel's counter-based random numbers (dropout), drawn on the host: reading back a draw
    of the GPU's generator would make every step wait for the device. Seeded by manual_seed like rng(device); on
    the CPU it is rng('cpu') itself (so the emulated kernels follow using_generator)."""
    device = check_device(device)
    if device == "cpu":
        return int(rng("cpu").integers(0, 2 ** 32))
    key = ("host", device)
    if key not in _generators:
        _generators[key] = np.random.default_rng(np.random.SeedSequence(_root_seed(),
                                                                        spawn_key=(DEVICES.index(device), 1)))
    return int(_generators[key].integers(0, 2 ** 32))


@contextlib.contextmanager
def using_generator(generator):
    """Within this block, this thread's CPU random draws (dropout) come from `generator`: each shard of a
    tensorlite.parallel step draws from its own, so the numbers do not depend on which process runs it or when."""
    previous, _thread.generator = getattr(_thread, "generator", None), generator
    try:
        yield generator
    finally:
        _thread.generator = previous


def get_rng_state(device="cpu"):
    """A JSON-able snapshot of a device's generator (for checkpoints); only numpy's state is exact."""
    gen = rng(device)
    if device == "cpu":
        return gen.bit_generator.state
    raise DeviceError("saving the cuda random state is not supported; reseed with manual_seed on resume")


def set_rng_state(state, device="cpu"):
    rng(device).bit_generator.state = state
