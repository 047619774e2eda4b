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


# ----------------------------------------------------------------------------- tl.Generator
def test_a_generator_is_its_own_stream_and_manual_seed_returns_it():
    g = tl.Generator().manual_seed(2147483647)                          # makemore's first line
    assert isinstance(g, tl.Generator) and g.initial_seed() == 2147483647 and g.device == "cpu"
    tl.manual_seed(0)
    framework = tl.randn(3).numpy()
    first = tl.randn((27, 27), generator=g).numpy()
    tl.manual_seed(0)
    np.testing.assert_array_equal(tl.randn(3).numpy(), framework)       # g's draws did not move the framework's
    again = tl.randn((27, 27), generator=tl.Generator().manual_seed(2147483647)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, tl.randn((27, 27), generator=g).numpy())   # g moved on


def test_a_fresh_generator_starts_from_pytorchs_fixed_seed():
    assert tl.Generator().initial_seed() == 67280421310721 == random.DEFAULT_GENERATOR_SEED
    np.testing.assert_array_equal(tl.rand(4, generator=tl.Generator()).numpy(),
                                  tl.rand(4, generator=tl.Generator()).numpy())


def test_seed_reseeds_from_entropy_and_negative_seeds_wrap():
    g = tl.Generator()
    new = g.seed()
    assert isinstance(new, int) and g.initial_seed() == new and 0 <= new < 2 ** 64
    assert tl.Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1
    with pytest.raises(TypeError, match="integer"):
        g.manual_seed(1.5)


def test_generator_state_round_trips_through_json():
    g = tl.Generator().manual_seed(3)
    state = g.get_state()
    assert json.loads(json.dumps(state)) == state
    after = tl.randint(0, 100, (5,), generator=g).numpy()
    tl.rand(9, generator=g)
    assert g.set_state(state) is g
    np.testing.assert_array_equal(tl.randint(0, 100, (5,), generator=g).numpy(), after)
    with pytest.raises(ValueError, match="get_state"):
        g.set_state({"seed": 1})
    g.set_state(state)
    with pytest.raises(ValueError, match="PCG64"):                      # NumPy's check of a foreign state
        g.set_state({"seed": 1, "bit_generator": {"bit_generator": "nonsense"}})
    assert g.initial_seed() == 3                                        # a refused state changes nothing
    np.testing.assert_array_equal(tl.randint(0, 100, (5,), generator=g).numpy(), after)


def test_only_a_generator_is_a_generator():
    with pytest.raises(TypeError, match="must be a tl.Generator"):
        tl.randn(2, generator=np.random.default_rng(0))
    with pytest.raises(tl.backend.DeviceError, match="unknown device"):
        tl.Generator("tpu")


@pytest.mark.skipif(not tl.cuda_available(), reason="no CuPy/GPU on this machine")
def test_a_cuda_generator_draws_on_the_gpu_only():
    g = tl.Generator("cuda").manual_seed(1)
    assert tl.randn(3, generator=g, device="cuda").device == "cuda"
    with pytest.raises(tl.backend.DeviceError, match="cannot draw numbers for device 'cpu'"):
        tl.randn(3, generator=g)
    with pytest.raises(tl.backend.DeviceError, match="not supported"):
        g.get_state()
