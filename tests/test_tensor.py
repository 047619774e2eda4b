"""The Tensor API: construction, factories, conversion, values of ops against hand-computed results."""
import numpy as np
import pytest

import tensorlite as tl


def test_default_dtype_and_attributes():
    t = tl.tensor([[1, 2, 3], [4, 5, 6]], dtype=tl.float32)
    assert (t.shape, t.ndim, t.dtype, t.device, t.requires_grad, t.is_leaf) == ((2, 3), 2, np.float32, "cpu",
                                                                                False, True)
    assert tl.tensor([1.5]).dtype == np.float32          # Python floats: float32 like PyTorch
    assert tl.tensor(np.zeros(2)).dtype == np.float64    # NumPy arrays keep their dtype
    assert tl.tensor([1, 2]).dtype == np.int64


@pytest.mark.parametrize("factory", [tl.zeros, tl.ones, tl.randn, tl.rand])
def test_factories_take_varargs_or_tuple(device, factory):
    a, b = factory(2, 3, device=device), factory((2, 3), dtype=tl.float64, device=device, requires_grad=True)
    assert a.shape == b.shape == (2, 3) and a.dtype == np.float32 and b.dtype == np.float64
    assert b.requires_grad and a.device == device


def test_other_factories(device):
    assert tl.arange(5, device=device).tolist() == [0, 1, 2, 3, 4]
    assert tl.arange(1.0, 2.0, 0.5, device=device).dtype == np.float32
    assert tl.full((2,), 7.0, device=device).tolist() == [7.0, 7.0]
    x = tl.randn(3, 2, dtype=tl.float64, device=device)
    assert tl.zeros_like(x).dtype == np.float64 and tl.ones_like(x).numpy().sum() == 6


def test_manual_seed_makes_draws_repeatable(device):
    tl.manual_seed(123)
    a = tl.randn(4, device=device).numpy()
    tl.manual_seed(123)
    np.testing.assert_array_equal(a, tl.randn(4, device=device).numpy())
    assert not np.array_equal(a, tl.randn(4, device=device).numpy())


def test_item_numpy_repr_detach():
    t = tl.tensor([[2.5]], requires_grad=True)
    assert t.item() == 2.5 and isinstance(t.numpy(), np.ndarray)
    assert "requires_grad=True" in repr(t) and "grad_fn=MulFunction" in repr(t * 2)
    assert not t.detach().requires_grad
    with pytest.raises(ValueError, match="one element"):
        tl.ones(2).item()


def test_values_against_hand_computed_results():
    a = tl.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = tl.tensor([10.0, 20.0])
    np.testing.assert_allclose((a + b).numpy(), [[11, 22], [13, 24]])
    np.testing.assert_allclose((a @ a).numpy(), [[7, 10], [15, 22]])
    np.testing.assert_allclose((1 / a).numpy(), [[1, 0.5], [1 / 3, 0.25]], rtol=1e-6)
    np.testing.assert_allclose((2 ** a).numpy(), [[2, 4], [8, 16]])
    np.testing.assert_allclose(a.sum(dim=0).numpy(), [4, 6])
    np.testing.assert_allclose(a.mean().item(), 2.5)
    np.testing.assert_allclose(a.var().item(), 5 / 3, rtol=1e-6)             # unbiased, like torch.var
    np.testing.assert_allclose(a.var(correction=0).item(), 1.25, rtol=1e-6)
    np.testing.assert_allclose(a.max(dim=1).values.numpy(), [2, 4])
    np.testing.assert_allclose(a.amin(dim=(0, 1), keepdim=True).numpy(), [[1]])
    np.testing.assert_allclose(tl.tensor([-1.0, 0.0, 2.0]).relu().numpy(), [0, 0, 2])
    np.testing.assert_allclose(tl.tensor([0.0]).sigmoid().numpy(), [0.5])
    np.testing.assert_allclose(a.T.numpy(), [[1, 3], [2, 4]])
    np.testing.assert_allclose(a[1, ::-1].numpy(), [4, 3])
    np.testing.assert_allclose(tl.where(a > 2, a, 0.0).numpy(), [[0, 0], [3, 4]])
    np.testing.assert_allclose(a.masked_fill(a < 2, -1.0).numpy(), [[-1, 2], [3, 4]])
    np.testing.assert_allclose(tl.cat([a, a], dim=1).shape, (2, 4))
    np.testing.assert_allclose(tl.stack([b, b]).numpy(), [[10, 20], [10, 20]])
    assert [p.shape for p in tl.arange(7.0).split(3)] == [(3,), (3,), (1,)]
    assert [p.shape for p in tl.arange(7.0).chunk(2)] == [(4,), (3,)]
    assert (a == a).numpy().all() and not (a != a).numpy().any()


def test_sigmoid_is_stable_at_extremes():
    y = tl.tensor([-1e4, 1e4]).sigmoid().numpy()
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_reshape_and_index_errors():
    with pytest.raises(ValueError, match=r"shape \(2, 3\) into \(4,\)"):
        tl.ones(2, 3).reshape(4)
    with pytest.raises(IndexError, match=r"dim 2 is out of range for a tensor of dimension 2 \(expected a dim in "
                                         r"\[-2, 1\]\)"):
        tl.ones(2, 3).sum(dim=2)
    with pytest.raises(ValueError, match="do not add up"):
        tl.ones(5).split([2, 2])


@pytest.mark.parametrize("call", [lambda a, b: tl.cat([a, b], dim=2), lambda a, b: tl.cat([a, b], -3),
                                  lambda a, b: tl.stack([a, b], dim=3), lambda a, b: a.split(1, dim=2),
                                  lambda a, b: a.chunk(2, dim=-3), lambda a, b: a.unsqueeze(3),
                                  lambda a, b: a.transpose(0, 2), lambda a, b: a.permute(0, 2),
                                  lambda a, b: a.size(2), lambda a, b: a.sum(axis=2)],
                         ids=["cat", "cat_negative", "stack", "split", "chunk", "unsqueeze", "transpose", "permute",
                              "size", "numpy_axis"])
def test_a_dim_out_of_range_raises_instead_of_wrapping(call):
    """cat([a, b], dim=2) of two (2, 3) tensors once gave a (4, 3) tensor (dim 2 % 2 == 0)."""
    a, b = tl.ones(2, 3), tl.ones(2, 3)
    with pytest.raises(IndexError, match=r"dim -?\d is out of range for a tensor of dimension [23]"):
        call(a, b)
    assert tl.cat([a, b], dim=-1).shape == (2, 6) and tl.stack([a, b], dim=2).shape == (2, 3, 2)
    assert tl.ones(4, 2).split(1, dim=-2)[0].shape == (1, 2)
    with pytest.raises(IndexError, match="dim 9 is out of range for a tensor of dimension 1"):
        tl.ones(5).split(2, dim=9)


@pytest.mark.parametrize("data,got", [(["a", "b"], "strings"), (None, "NoneType"), ({"a": 1}, "dict"),
                                      (np.array([None, 1]), "ndarray of dtype object"), ("text", "strings")])
def test_tensor_of_something_that_is_not_numbers_fails_at_once(data, got):
    with pytest.raises(TypeError, match=f"a tensor holds numbers .*; got {got}$"):
        tl.tensor(data)
    assert tl.tensor([True, False]).dtype == np.bool_ and tl.tensor(np.arange(2)).dtype == np.int64


def test_cpu_to_cuda_without_gpu_says_what_to_install():
    if tl.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tl.ones(2).cuda()
    with pytest.raises(RuntimeError, match="unknown device 'tpu'"):
        tl.ones(2, device="tpu")
