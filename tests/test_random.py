"""tensorlite.random: generators and seeds, and the public tl.manual_seed / get_rng_state / set_rng_state."""
import json

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import random


def test_kernel_seeds_follow_manual_seed_on_the_host():
    draws = {}
    for device in ("cpu", "cuda"):                             # the cuda stream is drawn on the host: no GPU needed
        tl.manual_seed(11)
        first = [random.kernel_seed(device) for _ in range(3)]
        tl.manual_seed(11)
        assert [random.kernel_seed(device) for _ in range(3)] == first
        assert all(0 <= s < 2 ** 32 for s in first)
        draws[device] = first
    assert draws["cpu"] != draws["cuda"]


def test_manual_seed_repeats_every_draw_and_rng_state_round_trips():
    tl.manual_seed(5)
    first = [tl.randn(3).numpy(), tl.rand(2).numpy()]
    tl.manual_seed(5)
    again = [tl.randn(3).numpy(), tl.rand(2).numpy()]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    state = tl.get_rng_state()
    after = tl.randn(4).numpy()
    tl.randn(7)                                                # move on, then go back
    tl.set_rng_state(state)
    np.testing.assert_array_equal(tl.randn(4).numpy(), after)
    assert json.loads(json.dumps(state)) == state              # JSON-able: it goes into a checkpoint's metadata


def test_using_generator_replaces_the_cpu_stream_for_this_thread_only():
    tl.manual_seed(1)
    expected = tl.rand(3).numpy()
    tl.manual_seed(1)
    with random.using_generator(np.random.default_rng(99)):
        inside = tl.rand(3).numpy()
    np.testing.assert_array_equal(inside, np.random.default_rng(99).random(3, dtype=np.float32))
    np.testing.assert_array_equal(tl.rand(3).numpy(), expected)   # the framework's stream did not move


@pytest.mark.skipif(not tl.cuda_available(), reason="no CuPy/GPU on this machine")
def test_the_cuda_state_cannot_be_saved():
    with pytest.raises(tl.backend.DeviceError, match="not supported"):
        tl.get_rng_state("cuda")
