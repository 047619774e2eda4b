"""tensorlite.nn: registration, names, modes, devices, state dicts, initialisation, and a small MLP that learns."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite import nn, optim


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.5)
        self.layers = nn.ModuleList([nn.Linear(8, 8, bias=False) for _ in range(2)])

    def forward(self, x):
        x = self.drop(self.fc(self.ln(x)))
        for layer in self.layers:
            x = layer(x)
        return x


def test_parameters_are_registered_with_dotted_names():
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["ln.weight", "ln.bias", "fc.weight", "fc.bias", "layers.0.weight", "layers.1.weight"]
    assert len(Block().parameters()) == 6
    assert [type(m).__name__ for m in Block().modules()] == ["Block", "LayerNorm", "Linear", "Dropout",
                                                             "ModuleList", "Linear", "Linear"]


def test_children_are_the_direct_submodules_in_order():
    block = Block()
    assert [type(m).__name__ for m in block.children()] == ["LayerNorm", "Linear", "Dropout", "ModuleList"]
    assert list(block.layers.children()) == list(block.layers)          # not the grandchildren of block
    assert list(nn.Linear(2, 2).children()) == []


def test_tied_parameters_are_listed_once():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_train_eval_switches_every_module():
    block = Block().eval()
    assert not any(m.training for m in block.modules())
    x = tl.randn(3, 4)
    np.testing.assert_array_equal(block(x).numpy(), block(x).numpy())  # no dropout in eval
    assert all(m.training for m in block.train().modules())


def test_state_dict_round_trip_and_errors():
    src, dst = Block(), Block()
    dst.load_state_dict(src.state_dict())
    for (name, p), (_, q) in zip(src.named_parameters(), dst.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    sd = src.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    with pytest.raises(KeyError, match=r"missing keys \['fc.bias'\]"):
        dst.load_state_dict({k: v for k, v in sd.items() if k != "fc.bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        dst.load_state_dict({**sd, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"fc.weight has shape \(8, 5\) in the state dict but \(8, 4\)"):
        dst.load_state_dict({**sd, "fc.weight": np.zeros((8, 5))})
    missing, unexpected = dst.load_state_dict({"extra": np.zeros(1)}, strict=False)
    assert "fc.bias" in missing and unexpected == ["extra"]


def test_load_state_dict_accepts_tensor_values():
    src, dst = Block(), Block()
    dst.load_state_dict({name: tl.tensor(value) for name, value in src.state_dict().items()})
    for p, q in zip(src.parameters(), dst.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    dst.load_state_dict(dict(src.named_parameters()))                   # Parameters themselves, as in PyTorch


def test_load_state_dict_keeps_parameter_objects():
    model = nn.Linear(2, 2)
    weight = model.weight
    model.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert model.weight is weight and weight.numpy().sum() == 4


def test_default_initialisations_follow_pytorch():
    tl.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    assert np.abs(lin.weight.numpy()).max() <= bound and np.abs(lin.weight.numpy()).max() > 0.95 * bound
    assert lin.weight.shape == (300, 400) and lin.weight.dtype == np.float32
    emb = nn.Embedding(1000, 64)
    assert abs(emb.weight.numpy().std() - 1) < 0.02
    ln = nn.LayerNorm(5, bias=False)
    assert ln.bias is None and (ln.weight.numpy() == 1).all()


def test_zero_grad_and_module_to_same_device(device):
    model = nn.Linear(3, 2).to(device)
    assert model.weight.device == device
    model(tl.randn(4, 3, device=device)).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_mlp_learns_xor_like_problem(device):
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.GELU(), nn.Linear(32, 2)).to(device)
    x_np = np.random.default_rng(0).uniform(-1, 1, (256, 2)).astype(np.float32)
    y = tl.tensor((x_np[:, 0] * x_np[:, 1] > 0).astype(np.int64), device=device)
    x = tl.tensor(x_np, device=device)
    opt = optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.0)
    for _ in range(300):
        loss = tl.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.15


def test_clip_grad_norm(device):
    a = tl.tensor([3.0, 0.0], device=device, requires_grad=True)
    b = tl.tensor([[4.0]], device=device, requires_grad=True)
    a.grad, b.grad = a.detach().clone(), b.detach().clone()
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [[0.8]], rtol=1e-5)
    assert nn.utils.clip_grad_norm_([a, b], max_norm=10.0).item() == pytest.approx(1.0, rel=1e-5)  # no change


def test_clip_grad_norm_takes_one_tensor_as_pytorch_does():
    p = tl.tensor([[3.0, 0.0], [0.0, 4.0]], requires_grad=True)
    p.grad = p.detach().clone()
    assert nn.utils.clip_grad_norm_(p, max_norm=1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad, [[0.6, 0.0], [0.0, 0.8]], rtol=1e-5)


def test_dropout_module_only_drops():
    """nn.Dropout takes one input: the residual add is the model's own line (x = x + self.attn(...))."""
    with pytest.raises(TypeError):
        nn.Dropout(0.1)(tl.ones(3), tl.ones(3))
    assert nn.Dropout(0.1).eval()(tl.ones(3)).numpy().tolist() == [1.0, 1.0, 1.0]
