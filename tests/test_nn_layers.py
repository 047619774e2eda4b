"""The nn pieces PyTorch code reaches for: activations, Identity, Flatten, loss layers, Module.apply /
requires_grad_ / named_children / named_buffers, and zero_grad(set_to_none=...) on modules and optimizers."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import nn


def test_activation_layers_are_their_functions():
    x = tl.tensor([[-1.0, 0.0, 2.0]])
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(nn.Softmax(dim=-1)(x).numpy(), F.softmax(x, -1).numpy())
    np.testing.assert_allclose(nn.Softmax(0)(x).numpy(), np.ones((1, 3)))
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).numpy(), F.log_softmax(x, 1).numpy())
    assert F.tanh is tl.tanh and F.sigmoid is tl.sigmoid and F.relu is tl.relu
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_identity_returns_its_input_and_ignores_arguments():
    x = tl.ones(2)
    assert nn.Identity()(x) is x and nn.Identity(54, unused="ignored")(x) is x


def test_flatten_merges_the_dims_pytorch_does():
    x = tl.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5) and nn.Flatten(start_dim=-2)(x).shape == (2, 3, 20)
    assert nn.Flatten()(tl.zeros(0, 3, 4)).shape == (0, 12)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 60))
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        nn.Flatten(2, 1)(x)
    with pytest.raises(IndexError, match="dim 1 is out of range for a tensor of dimension 1"):
        nn.Flatten()(tl.ones(3))
    assert tl.gradcheck(nn.Flatten(), [tl.randn(2, 3, 2, dtype=tl.float64, requires_grad=True)])


def test_loss_layers_are_their_functions_with_fixed_options():
    logits, targets = tl.randn(4, 5), tl.tensor([0, 3, 1, 1])
    assert nn.CrossEntropyLoss()(logits, targets).item() == F.cross_entropy(logits, targets).item()
    summed = nn.CrossEntropyLoss(reduction="sum", ignore_index=1)(logits, targets).item()
    assert summed == F.cross_entropy(logits, targets, ignore_index=1, reduction="sum").item()
    a, b = tl.randn(3, 2), tl.randn(3, 2)
    assert nn.MSELoss()(a, b).item() == F.mse_loss(a, b).item()
    assert nn.MSELoss(reduction="none")(a, b).shape == (3, 2)
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    with pytest.raises(TypeError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=0.1)


# ----------------------------------------------------------------------------- Module
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.act = nn.Tanh()
        self.register_buffer("mask", tl.ones(2), persistent=False)
        self.register_buffer("count", tl.zeros(1))


def two_blocks():
    model = nn.Sequential(Block(), Block())
    model.head = nn.Linear(2, 1)
    return model


def test_apply_visits_children_before_their_parent_and_returns_self():
    model = two_blocks()
    visited = []
    assert model.apply(visited.append) is model
    assert [type(m).__name__ for m in visited] == ["Linear", "Tanh", "Block", "Linear", "Tanh", "Block", "Linear",
                                                   "Sequential"]
    assert visited[-1] is model and visited[0] is model[0].fc


def test_named_children_and_buffers():
    model = two_blocks()
    assert [name for name, _ in model.named_children()] == ["0", "1", "head"]
    assert [name for name, _ in model[0].named_children()] == ["fc", "act"]
    assert [name for name, _ in model.named_buffers()] == ["0.mask", "0.count", "1.mask", "1.count"]
    assert len(model.buffers()) == 4 and model.buffers()[0] is model[0].mask
    assert "0.mask" not in model.state_dict() and "0.count" in model.state_dict()   # non-persistent: not saved


def test_requires_grad_freezes_and_unfreezes_every_parameter():
    model = two_blocks()
    assert model.requires_grad_(False) is model and not any(p.requires_grad for p in model.parameters())
    model[1].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, False, False]


def test_zero_grad_sets_to_none_by_default_or_zeroes_in_place():
    model = two_blocks()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    model.head(model[0].fc(tl.ones(1, 2))).sum().backward()
    grad = model.head.weight.grad
    opt.zero_grad(set_to_none=False)
    assert model.head.weight.grad is grad and not tl.tensor(grad).numpy().any()           # the same array, zeroed
    assert model[1].fc.weight.grad is None                                        # no gradient stays none
    opt.zero_grad()                                                               # PyTorch's default: None
    assert all(p.grad is None for p in model.parameters())
    model.head(tl.ones(1, 2)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert model.head.weight.grad is not None and not tl.tensor(model.head.weight.grad).numpy().any()
    model.zero_grad()
    assert model.head.weight.grad is None
