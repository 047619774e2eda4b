"""Constructors and random sampling with PyTorch's signatures: randint, randperm, multinomial, linspace,
from_numpy, and generator= on every random one."""
import numpy as np
import pytest

import tensorlite as tl


# ----------------------------------------------------------------------------- randint, randperm
def test_randint_takes_high_and_size_or_low_high_and_size(device):
    data = tl.arange(100)
    ix = tl.randint(len(data) - 8, (4,), device=device)                  # nanoGPT's get_batch
    assert ix.shape == (4,) and ix.dtype == tl.long and ix.device == device
    assert ((0 <= ix.numpy()) & (ix.numpy() < 92)).all()
    draws = tl.randint(3, 7, (1000,), device=device).numpy()
    assert set(draws.tolist()) == {3, 4, 5, 6}                            # high is excluded
    assert tl.randint(0, 5, (2, 3), generator=tl.Generator(device), device=device).shape == (2, 3)
    assert tl.randint(low=2, high=3, size=(2,)).tolist() == [2, 2]
    assert tl.randint(10, size=3).shape == (3,)
    assert tl.randint(0, 2, (3,), dtype=tl.int32).dtype == tl.int32


def test_randint_refuses_what_pytorch_refuses():
    with pytest.raises(ValueError, match="low < high"):
        tl.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="needs high and size"):
        tl.randint(5)
    with pytest.raises(TypeError, match="high must be an integer"):
        tl.randint(0, 2.5, (2,))


def test_makemore_minibatch_indices_repeat_with_a_generator():
    X = tl.zeros(228146, 3, dtype=tl.long)
    g = tl.Generator().manual_seed(2147483647)
    ix = tl.randint(0, X.shape[0], (32,), generator=g)
    again = tl.randint(0, X.shape[0], (32,), generator=tl.Generator().manual_seed(2147483647))
    assert ix.tolist() == again.tolist() and ix.numpy().max() < X.shape[0]


def test_randperm_is_a_permutation(device):
    p = tl.randperm(10, device=device)
    assert sorted(p.tolist()) == list(range(10)) and p.dtype == tl.long
    assert tl.randperm(0).shape == (0,)
    g1, g2 = tl.Generator().manual_seed(5), tl.Generator().manual_seed(5)
    assert tl.randperm(20, generator=g1).tolist() == tl.randperm(20, generator=g2).tolist()
    with pytest.raises(ValueError, match="integer >= 0"):
        tl.randperm(-1)


# ----------------------------------------------------------------------------- multinomial
def test_multinomial_shapes_and_dtype(device):
    probs = tl.softmax(tl.randn(4, 65, device=device), -1)
    idx_next = tl.multinomial(probs, num_samples=1)                      # nanoGPT's sampling step
    assert idx_next.shape == (4, 1) and idx_next.dtype == tl.long and idx_next.device == device
    assert tl.multinomial(tl.tensor([0.2, 0.8], device=device), 3, replacement=True).shape == (3,)


def test_multinomial_never_draws_a_zero_weight_and_draws_without_replacement_once(device):
    weights = tl.tensor([[0.0, 3.0, 0.0, 1.0, 2.0]] * 50, device=device)   # weights, not normalised
    with_replacement = tl.multinomial(weights, 40, replacement=True).numpy()
    assert set(np.unique(with_replacement)) <= {1, 3, 4}
    without = tl.multinomial(weights, 3).numpy()
    assert all(sorted(row) == [1, 3, 4] for row in without.tolist())
    assert tl.multinomial(tl.tensor([0.0, 0.0, 1.0], device=device), 1).item() == 2


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies_follow_the_weights(replacement):
    g = tl.Generator().manual_seed(0)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    first = tl.multinomial(tl.tensor(np.tile(p, (20000, 1))), 1, replacement=replacement, generator=g)
    np.testing.assert_allclose(np.bincount(first.numpy().ravel(), minlength=4) / 20000, p, atol=0.015)
    if not replacement:   # the second draw without replacement: P(j) = sum_i p_i p_j / (1 - p_i) over i != j
        second = tl.multinomial(tl.tensor(np.tile(p, (20000, 1))), 2, generator=g).numpy()[:, 1]
        expected = [sum(p[i] * p[j] / (1 - p[i]) for i in range(4) if i != j) for j in range(4)]
        np.testing.assert_allclose(np.bincount(second, minlength=4) / 20000, expected, atol=0.015)


def test_multinomial_with_a_generator_repeats_makemores_samples():
    p = tl.softmax(tl.randn(27), -1)
    draws = [tl.multinomial(p, num_samples=1, replacement=True, generator=g).item()
             for g in (tl.Generator().manual_seed(2147483647), tl.Generator().manual_seed(2147483647))]
    assert draws[0] == draws[1] and 0 <= draws[0] < 27


@pytest.mark.parametrize("weights, num_samples, replacement, error, match", [
    ([0.5, -0.1], 1, True, ValueError, "finite and >= 0"),
    ([0.5, float("nan")], 1, True, ValueError, "finite and >= 0"),
    ([0.5, float("inf")], 1, True, ValueError, "finite and >= 0"),
    ([[0.0, 0.0]], 1, True, ValueError, "sums to 0"),
    ([0.5, 0.5], 3, False, ValueError, "cannot draw 3 samples without replacement from 2"),
    ([0.5, 0.0, 0.0], 2, False, ValueError, "fewer than 2 nonzero weights"),
    ([[[0.5]]], 1, True, ValueError, "1-d or 2-d"),
    ([0.5, 0.5], 0, True, ValueError, "positive integer"),
])
def test_multinomial_refuses_what_is_no_distribution(weights, num_samples, replacement, error, match):
    with pytest.raises(error, match=match):
        tl.multinomial(tl.tensor(weights), num_samples, replacement=replacement)


def test_multinomial_wants_floating_weights():
    with pytest.raises(TypeError, match="floating weights"):
        tl.multinomial(tl.tensor([1, 2]), 1)


# ----------------------------------------------------------------------------- randn, rand with generator=
def test_randn_and_rand_take_a_generator_and_any_float_dtype(device):
    if device == "cpu":
        a = tl.randn(2, 3, generator=tl.Generator().manual_seed(1))
        np.testing.assert_array_equal(a.numpy(), tl.randn((2, 3), generator=tl.Generator().manual_seed(1)).numpy())
        u = tl.rand(1000, generator=tl.Generator().manual_seed(1)).numpy()
        assert 0 <= u.min() and u.max() < 1
    assert tl.randn(4, dtype=tl.float16, device=device).dtype == tl.float16  # drawn in float32, then rounded
    assert tl.rand(4, dtype=tl.float64, device=device).dtype == tl.float64


def test_randn_without_a_generator_follows_manual_seed_as_before():
    tl.manual_seed(3)
    expected = tl.random.rng("cpu").standard_normal((2, 2), dtype=np.float32)
    tl.manual_seed(3)
    np.testing.assert_array_equal(tl.randn(2, 2).numpy(), expected)     # the same numbers as before generator=


# ----------------------------------------------------------------------------- linspace, from_numpy
def test_linspace_values_pytorch_documents(device):
    np.testing.assert_allclose(tl.linspace(3, 10, steps=5, device=device).numpy(), [3, 4.75, 6.5, 8.25, 10])
    assert tl.linspace(-10, 10, steps=5).tolist() == [-10, -5, 0, 5, 10]
    assert tl.linspace(start=-10, end=10, steps=1).tolist() == [-10]
    assert tl.linspace(0, 1, 3).dtype == tl.float32 and tl.linspace(0, 1, 3, dtype=tl.float64).dtype == tl.float64
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        tl.linspace(0, 1, -1)


def test_from_numpy_shares_memory_both_ways():
    a = np.array([1, 2, 3])
    t = tl.from_numpy(a)
    assert t.dtype == tl.long
    a[0] = 10
    assert t.tolist() == [10, 2, 3]
    t.data[1] = 20
    assert a.tolist() == [10, 20, 3]
    with pytest.raises(TypeError, match="expects a NumPy ndarray, got list"):
        tl.from_numpy([1, 2])
    with pytest.raises(TypeError, match="holds numbers"):
        tl.from_numpy(np.array(["a"]))
