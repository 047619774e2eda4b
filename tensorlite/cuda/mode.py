"""The one decision of which path an op takes: fused CUDA kernels, the reference NumPy/CuPy path, or the emulator.

TENSORLITE_FUSED (read once, at import):
    1 (default)  fused kernels on CuPy arrays, the reference path on NumPy arrays
    0            the reference path everywhere (to compare every fused kernel with it)
    emulate      fused kernels on NumPy arrays too, run by the CPU emulator (slow: for study and tests)
"""
import contextlib
import os

MODES = ("1", "0", "emulate")
_mode = None


def _check(mode):
    mode = str(mode)
    if mode not in MODES:
        raise ValueError(f"TENSORLITE_FUSED must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def get_mode():
    global _mode
    if _mode is None:
        _mode = _check(os.environ.get("TENSORLITE_FUSED", "1"))
    return _mode


def set_mode(mode):
    global _mode
    _mode = _check(mode)


@contextlib.contextmanager
def fused_mode(mode):
    """Temporarily switch the mode (tests compare paths with this)."""
    previous = get_mode()
    set_mode(mode)
    try:
        yield
    finally:
        set_mode(previous)


def runs_fused(is_cuda_array):
    """Whether a fused kernel should handle an array on this device under the current mode."""
    mode = get_mode()
    return (mode == "1" and is_cuda_array) or (mode == "emulate" and not is_cuda_array)
