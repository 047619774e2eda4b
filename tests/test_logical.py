"""tl.all / any (bool tensors), tl.equal / allclose (Python bools), as PyTorch's, functions and methods."""
import pytest

import tensorlite as tl


def test_all_and_any_overall_and_per_dim(device):
    x = tl.tensor([[True, False], [True, True]], device=device)
    assert tl.all(x).item() is False and tl.any(x).item() is True
    assert tl.all(x, dim=1).tolist() == [False, True] and x.any(0).tolist() == [True, True]
    assert tl.all(x, dim=0, keepdim=True).shape == (1, 2)
    assert tl.all(tl.tensor([1.0, 2.0], device=device)).item() is True                # nonzero counts as true
    assert tl.all(tl.zeros(0, device=device)).item() is True and tl.any(tl.zeros(0, device=device)).item() is False
    with pytest.raises(TypeError, match="all takes tensors"):
        tl.all([True])


def test_makemore_compares_a_hand_gradient_with_the_engines():
    t = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (t * t).sum().backward()
    dt = tl.tensor([2.0, 4.0, 6.0])
    assert tl.all(dt == t.grad).item() is True                                      # makemore part 4's `cmp`
    assert tl.allclose(dt, t.grad) and dt.allclose(t.grad)
    assert not tl.allclose(dt + 1e-3, t.grad)


def test_equal_needs_same_shape_and_values():
    a = tl.tensor([1, 2, 3])
    assert tl.equal(a, tl.tensor([1, 2, 3])) is True and a.equal(a)
    assert tl.equal(a, tl.tensor([1, 2, 4])) is False
    assert tl.equal(a, tl.tensor([[1, 2, 3]])) is False                             # no broadcasting


def test_allclose_tolerances_and_nan():
    a, b = tl.tensor([1.0, float("nan")]), tl.tensor([1.0 + 1e-6, float("nan")])
    assert not tl.allclose(a, b) and tl.allclose(a, b, equal_nan=True)
    assert tl.allclose(tl.tensor([100.0]), tl.tensor([100.5]), rtol=1e-2)
    assert not tl.allclose(tl.tensor([0.0]), tl.tensor([1e-7]), atol=0)
    assert tl.allclose(tl.tensor([[1.0, 1.0]]), tl.tensor([1.0]))                   # broadcasts, as torch
    assert type(tl.allclose(a, a, equal_nan=True)) is bool and type(tl.equal(a, a)) is bool
