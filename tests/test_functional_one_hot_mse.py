"""F.one_hot and F.mse_loss as torch.nn.functional has them; mse_loss's gradient against central differences."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F


def test_one_hot_values_and_dtype_pytorch_documents(device):
    ids = tl.tensor([0, 1, 2, 0, 1], device=device)                    # torch.arange(0, 5) % 3
    assert F.one_hot(ids).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert F.one_hot(ids, num_classes=5).shape == (5, 5) and F.one_hot(ids).dtype == tl.long
    assert F.one_hot(tl.tensor([[0, 2], [1, 0]], device=device), 3).shape == (2, 2, 3)
    assert F.one_hot(tl.tensor([], dtype=tl.long, device=device), 4).shape == (0, 4)


def test_one_hot_times_weights_is_the_embedding_lookup():
    W = tl.randn(27, 4)
    ids = tl.tensor([3, 0, 26])
    np.testing.assert_allclose((F.one_hot(ids, num_classes=27).float() @ W).numpy(), F.embedding(ids, W).numpy())


def test_one_hot_refuses_what_are_not_class_indices():
    with pytest.raises(IndexError, match="class index 3 is out of range for 3 classes"):
        F.one_hot(tl.tensor([0, 3]), 3)
    with pytest.raises(IndexError, match="class index -1"):
        F.one_hot(tl.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.one_hot(tl.tensor([0.0]))
    with pytest.raises(ValueError, match="cannot infer num_classes from an empty tensor"):
        F.one_hot(tl.tensor([], dtype=tl.long))
    with pytest.raises(ValueError, match="num_classes must be"):
        F.one_hot(tl.tensor([0]), -2)


def test_mse_loss_values_and_reductions(device):
    a = tl.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    b = tl.tensor([[1.0, 0.0], [0.0, 4.0]], device=device)
    assert F.mse_loss(a, b).item() == pytest.approx(13 / 4)
    assert F.mse_loss(a, b, reduction="sum").item() == pytest.approx(13)
    assert F.mse_loss(a, b, reduction="none").tolist() == [[0, 4], [9, 0]]
    with pytest.raises(ValueError, match="reduction must be"):
        F.mse_loss(a, b, reduction="avg")


def test_mse_loss_warns_when_shapes_broadcast_as_pytorch_does():
    with pytest.warns(UserWarning, match=r"target size \(3,\) differs from input size \(3, 1\)"):
        assert F.mse_loss(tl.zeros(3, 1), tl.ones(3), reduction="none").shape == (3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(tl.zeros(3), tl.ones(3))


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss_gradcheck_in_input_and_target(device, shape, reduction):
    rng = np.random.default_rng(0)
    a, b = (tl.tensor(rng.standard_normal(shape), dtype=tl.float64, device=device, requires_grad=True)
            for _ in range(2))
    assert tl.gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), [a, b])
