"""nn.init: PyTorch's initialisations, formulas and gains; each fills the tensor in place and returns it."""
import math
import warnings

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import nn


def big(*shape, device="cpu"):
    tl.manual_seed(0)                                                   # the statistics below are of fixed draws
    return nn.Parameter(tl.zeros(*shape, device=device).data)


@pytest.mark.parametrize("nonlinearity, param, gain", [
    ("linear", None, 1), ("conv2d", None, 1), ("sigmoid", None, 1), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", 0, math.sqrt(2)), ("selu", None, 3 / 4)])
def test_calculate_gain_is_pytorchs_table(nonlinearity, param, gain):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(gain)


def test_calculate_gain_refuses_unknown_names_and_slopes():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        nn.init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="not a valid number"):
        nn.init.calculate_gain("leaky_relu", True)


def test_normal_and_zeros_fill_in_place_and_return_the_tensor(device):
    w = big(200, 300, device=device)
    array = w.data
    assert nn.init.normal_(w, mean=0.0, std=0.02) is w and w.data is array      # the same Parameter, same array
    values = w.numpy()
    assert abs(values.mean()) < 1e-3 and values.std() == pytest.approx(0.02, rel=0.02)
    assert nn.init.zeros_(w) is w and not w.numpy().any()
    assert nn.init.ones_(w).numpy().min() == 1 and nn.init.constant_(w, 0.5).numpy().max() == 0.5
    assert nn.init.normal_(w, mean=3.0, std=0.1).numpy().mean() == pytest.approx(3.0, abs=1e-2)


def test_uniform_stays_in_its_interval(device):
    w = nn.init.uniform_(big(100, 100, device=device), a=-0.1, b=0.3).numpy()
    assert -0.1 - 1e-7 <= w.min() < -0.09 and 0.29 < w.max() <= 0.3 + 1e-7          # float32 rounding: 1e-7
    assert nn.init.uniform_(big(100, 100, device=device)).numpy().min() >= 0     # U(0, 1) by default


def test_xavier_bounds_and_std():
    w = big(300, 200)
    bound = math.sqrt(6 / 500)                                                  # gain 1, fan_in 200, fan_out 300
    values = nn.init.xavier_uniform_(w).numpy()
    assert 0.99 * bound < np.abs(values).max() <= bound * (1 + 1e-6)
    values = nn.init.xavier_normal_(w, gain=2.0).numpy()
    assert values.std() == pytest.approx(2.0 * math.sqrt(2 / 500), rel=0.02)


def test_kaiming_uses_the_fan_and_gain_pytorch_does():
    w = big(100, 400, 2, 2)                                                      # fan_in 1600, fan_out 400
    values = nn.init.kaiming_uniform_(w).numpy()                                # leaky_relu with a=0: gain sqrt 2
    bound = math.sqrt(3) * math.sqrt(2) / math.sqrt(1600)
    assert 0.99 * bound < np.abs(values).max() <= bound * (1 + 1e-6)
    values = nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu").numpy()
    assert values.std() == pytest.approx(math.sqrt(2) / math.sqrt(400), rel=0.02)
    values = nn.init.kaiming_uniform_(w, a=math.sqrt(5)).numpy()     # nn.Linear's recipe: bound 1 / sqrt(fan_in)
    assert 0.99 / 40 < np.abs(values).max() <= (1 + 1e-6) / 40
    with pytest.raises(ValueError, match="mode 'fan' not supported"):
        nn.init.kaiming_normal_(w, mode="fan")


def test_what_has_no_fans_or_no_elements():
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.xavier_uniform_(big(5))
    empty = big(0, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert nn.init.kaiming_normal_(empty) is empty
    assert "zero-element" in str(caught[0].message)


def test_random_fills_need_floats_and_follow_a_generator():
    with pytest.raises(TypeError, match="fills floating tensors"):
        nn.init.normal_(tl.zeros(3, dtype=tl.long))
    assert nn.init.constant_(tl.zeros(3, dtype=tl.long), 2).tolist() == [2, 2, 2]
    draws = [nn.init.kaiming_uniform_(big(4, 4), generator=tl.Generator().manual_seed(7)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*draws)
    draws = [nn.init.normal_(big(4, 4), std=2.0, generator=tl.Generator().manual_seed(7)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*draws)


def test_nanogpt_init_weights_through_apply():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(50, 16)
            self.c_fc = nn.Linear(16, 64)
            self.c_proj = nn.Linear(64, 16)
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * 6))

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    tl.manual_seed(0)
    model = Tiny()
    assert model.wte.weight.numpy().std() == pytest.approx(0.02, rel=0.1)
    assert model.c_fc.weight.numpy().std() == pytest.approx(0.02, rel=0.1) and not model.c_fc.bias.numpy().any()
    assert model.c_proj.weight.numpy().std() == pytest.approx(0.02 / math.sqrt(12), rel=0.1)
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
