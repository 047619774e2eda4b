"""The framework's random generators: one per device, each derived from the seed given to `manual_seed`.

`tl.randn`, `tl.rand`, the layers' initialisation and the reference dropout draw from `rng(device)`; the dropout
kernels get a 32-bit seed from `kernel_seed(device)`, drawn on the host; tensorlite.parallel hands each shard a
CPU generator of its own with `using_generator`. A `Generator` is a stream of one's own, handed to a random
function as `generator=`; `stream(device, generator)` picks the one to draw from. The public part has PyTorch's
spelling: `tl.manual_seed`, `tl.get_rng_state`, `tl.set_rng_state`, `tl.Generator`.
"""
import contextlib
import numbers
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


# ----------------------------------------------------------------------------- Generator: a stream of one's own
DEFAULT_GENERATOR_SEED = 67280421310721   # PyTorch's: a fresh torch.Generator() has this initial_seed()


class Generator:
    """PyTorch's `torch.Generator`: a random stream of its own, for the functions that take `generator=`
    (tl.randn, tl.rand, tl.randint, tl.randperm, tl.multinomial, nn.init's fills), so a notebook's draws repeat
    however many other draws the framework makes in between (makemore's `g = tl.Generator().manual_seed(2147483647)`).

    The numbers differ from PyTorch's for the same seed: this is NumPy's PCG64 (CuPy's generator on 'cuda'), not
    PyTorch's Mersenne Twister or Philox. Within tensorlite a seed gives the same numbers on every run.
    Like PyTorch's, a new Generator starts from a fixed seed (DEFAULT_GENERATOR_SEED), not from fresh entropy.
    """

    def __init__(self, device="cpu"):
        self.device = check_device(device)
        self.manual_seed(DEFAULT_GENERATOR_SEED)

    def manual_seed(self, seed):
        """Restart the stream from `seed` (any integer; negative ones wrap to 64 bits as PyTorch's do). Returns the
        generator itself, so `tl.Generator().manual_seed(42)` is one expression."""
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise TypeError(f"manual_seed takes an integer, got {type(seed).__name__}")
        self._seed = int(seed) % 2 ** 64
        self._stream = np.random.default_rng(self._seed) if self.device == "cpu" else \
            cupy_or_raise().random.default_rng(self._seed)
        return self

    def seed(self):
        """Reseed from fresh entropy; returns the new seed (PyTorch's `Generator.seed()`)."""
        self.manual_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
        return self._seed

    def initial_seed(self):
        """The seed this stream was last started from."""
        return self._seed

    def get_state(self):
        """A JSON-able snapshot of the stream (a dict, not PyTorch's byte tensor). CPU only, as get_rng_state."""
        if self.device != "cpu":
            raise DeviceError("saving a cuda Generator's state is not supported; restart it with manual_seed")
        return {"seed": self._seed, "bit_generator": self._stream.bit_generator.state}

    def set_state(self, state):
        """Go back to a snapshot taken by get_state; returns the generator itself, as PyTorch's does."""
        if self.device != "cpu":
            raise DeviceError("restoring a cuda Generator's state is not supported; restart it with manual_seed")
        if not isinstance(state, dict) or set(state) != {"seed", "bit_generator"}:
            raise ValueError("Generator.set_state takes a dict from Generator.get_state()")
        stream = np.random.default_rng()
        stream.bit_generator.state = state["bit_generator"]      # checks the state before anything changes
        self._seed, self._stream = int(state["seed"]), stream
        return self

    def __repr__(self):
        return f"tl.Generator(device='{self.device}')"


def stream(device, generator=None):
    """The NumPy or CuPy generator a random function on `device` draws from: `generator`'s stream when one is
    given (it must live on that device, as PyTorch requires), else the framework's own, rng(device)."""
    device = check_device(device)
    if generator is None:
        return rng(device)
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a tl.Generator, got {type(generator).__name__}")
    if generator.device != device:
        raise DeviceError(f"a {generator.device} Generator cannot draw numbers for device '{device}'; make one with "
                          f"tl.Generator(device='{device}')")
    return generator._stream


def normal(shape, mean, std, dtype, device, generator=None):
    """An array of N(mean, std^2) samples. NumPy draws float32 or float64 natively: other float dtypes (float16)
    are drawn in float32 and rounded."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    data = stream(device, generator).standard_normal(shape, dtype=draw_dtype)
    if std != 1:
        data *= std
    if mean != 0:
        data += mean
    return data.astype(dtype, copy=False)


def uniform(shape, low, high, dtype, device, generator=None):
    """An array of U[low, high) samples (drawn as normal() draws its dtype)."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    data = stream(device, generator).random(shape, dtype=draw_dtype)
    if (low, high) != (0, 1):
        data *= high - low
        data += low
    return data.astype(dtype, copy=False)
