"""Devices and array modules: the one place that knows CuPy exists.

Every other module asks this one for the array module (`xp`) of a device or of an array, so the same source runs
on NumPy and CuPy and no op ever checks `if cupy`. Importing tensorlite never imports CuPy; asking for
`device='cuda'` does, and fails with one sentence that says what to install when CuPy or a GPU is missing.

Besides devices and array modules it holds what needs one of them by name: the deferred device-side assertions
(they wait for the host's next look at the GPU) and the array functions whose CuPy version lives in cupyx
(scatter-add, erf). The random generators are in tensorlite/random.py, CPU tuning in tensorlite/cpu.py.
"""
import os

import numpy as np

DEVICES = ("cpu", "cuda")
_cupy = None          # the cupy module once it has been imported successfully


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


MAX_DEFERRED_ASSERTS = 256   # at most this many device-side assertions wait for the host's next look
_deferred_asserts = []       # (0-d device bool array, function making the error) not looked at yet


def device_assert(bad, make_error):
    """A deferred device-side assertion: raise make_error() if the 0-d boolean array `bad` is true, for input
    checks that need the data's values (ids out of range). On the CPU at once. On a GPU, reading `bad` would make
    the host wait for the device on every forward pass, so the flag is looked at when the host next waits anyway
    (`Tensor.item()`, `.numpy()`: a training loop's logging) or after MAX_DEFERRED_ASSERTS of them, as PyTorch's
    device-side asserts surface late. The kernels behind such checks must not read out of bounds meanwhile (they
    give NaN or wrap)."""
    if not is_cuda_array(bad):
        if bad:
            raise make_error()
        return
    _deferred_asserts.append((bad, make_error))
    if len(_deferred_asserts) >= MAX_DEFERRED_ASSERTS:
        flush_device_asserts()


def flush_device_asserts():
    """Look at every deferred device assertion (one host sync for all) and raise the first failed one's error."""
    if not _deferred_asserts:
        return
    pending = list(_deferred_asserts)
    _deferred_asserts.clear()
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

    On the CPU, the indices are sorted and each run summed with `add.reduceat`, one pass instead of `np.add.at`'s
    element-by-element loop. On the GPU this is CuPy's atomic scatter: the reference path, which
    kernels/embedding.cu (the same sort-and-sum-runs idea, deterministic) replaces where it applies
    (tensorlite/cuda/fused.py::FusedEmbeddingFunction).
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
