"""The framework's random generators: one per device, each derived from the seed given to `manual_seed`.

`tl.randn`, `tl.rand`, the layers' initialisation and the reference dropout draw from `rng(device)`; the dropout
kernels get a 32-bit seed from `kernel_seed(device)`, drawn on the host; tensorlite.parallel hands each shard a
CPU generator of its own with `using_generator`. The public part has PyTorch's spelling: `tl.manual_seed`,
`tl.get_rng_state`, `tl.set_rng_state`.
"""
import contextlib
import threading

import numpy as np

from .backend import DEVICES, DeviceError, check_device, cupy_or_raise

_seed = None          # the last manual_seed, so generators made later (e.g. on first cuda use) follow it
_generators = {}      # device -> random generator
_thread = threading.local()   # .generator: a per-thread CPU generator set by using_generator


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
    """A JSON-able snapshot of a device's generator (for checkpoints); unlike PyTorch's, a dict, not a tensor.
    Only numpy's state is exact, so only the CPU's can be saved."""
    gen = rng(device)
    if check_device(device) == "cpu":
        return gen.bit_generator.state
    raise DeviceError("saving the cuda random state is not supported; reseed with manual_seed on resume")


def set_rng_state(state, device="cpu"):
    """Restore a snapshot taken by get_rng_state."""
    rng(device).bit_generator.state = state
