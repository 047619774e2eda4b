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


# ----------------------------------------------------------------------------- PyTorch's spelling, by family
def test_size_numel_dim_as_pytorch():
    """nanoGPT's `B, T = idx.size()`, `logits.view(-1, logits.size(-1))`, `p.numel()`, `p.dim() >= 2`."""
    x = tl.zeros(2, 3, 4)
    B, T, C = x.size()
    assert (B, T, C) == x.shape == (2, 3, 4) and x.size(-1) == 4 and x.size(0) == 2
    assert x.numel() == x.nelement() == 24 and x.dim() == x.ndim == 3
    assert x.view(-1, x.size(-1)).shape == (6, 4)
    assert tl.tensor(5.0).size() == () and tl.tensor(5.0).numel() == 1


def test_transpose_swaps_two_dims_and_permute_permutes():
    """torch.transpose(x, d0, d1) swaps two dims (once it was NumPy's permutation: W.transpose(0, 1) gave W)."""
    w = tl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(w.transpose(0, 1).numpy(), [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(w.T.numpy(), w.transpose(1, 0).numpy())
    np.testing.assert_array_equal(w.t().numpy(), w.T.numpy())
    x = tl.arange(24.0).view(2, 3, 4)
    assert x.transpose(1, 2).shape == (2, 4, 3) and x.transpose(-2, -1).shape == (2, 4, 3)
    assert x.permute(2, 0, 1).shape == (4, 2, 3) and x.permute((1, 0, 2)).shape == (3, 2, 4)
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3) and x.swapaxes(0, 2).shape == (4, 3, 2)
    np.testing.assert_array_equal(x.transpose(0, 2).numpy(), np.swapaxes(np.arange(24.0).reshape(2, 3, 4), 0, 2))
    k = tl.randn(2, 5, 6)                                    # nanoGPT: k.view(B, T, nh, hs).transpose(1, 2)
    assert k.view(2, 5, 3, 2).transpose(1, 2).shape == (2, 3, 5, 2)
    y = k.view(2, 5, 3, 2).transpose(1, 2)                   # and back: y.transpose(1, 2).contiguous().view(B, T, C)
    assert not y.is_contiguous() and y.contiguous().is_contiguous()
    np.testing.assert_array_equal(y.transpose(1, 2).contiguous().view(2, 5, 6).numpy(), k.numpy())
    with pytest.raises(ValueError, match="not a permutation"):
        x.permute(0, 0, 1)


def test_reductions_take_dim_and_keepdim():
    a = tl.tensor([[1.0, 2.0], [3.0, 5.0]])
    assert a.sum(0, keepdim=True).shape == (1, 2) and a.sum(dim=(0, 1)).item() == 11
    assert a.sum(1, True).tolist() == [[3], [8]] and a.mean(dim=-1).tolist() == [1.5, 4.0]
    assert a.sum(axis=0, keepdims=True).tolist() == [[4, 7]]          # NumPy's names are aliases
    assert np.sum(a).item() == 11 and np.mean(a, axis=0).tolist() == [2, 3.5]   # so NumPy's functions take a Tensor
    np.testing.assert_allclose(a.var(0).numpy(), [2.0, 4.5])          # unbiased by default
    np.testing.assert_allclose(a.var(0, unbiased=False).numpy(), [1.0, 2.25])
    np.testing.assert_allclose(a.var(False).item(), np.var(a.numpy()))   # torch's var(unbiased) overload
    np.testing.assert_allclose(a.std(0, keepdim=True).numpy(), [[np.sqrt(2), np.sqrt(4.5)]], rtol=1e-6)
    np.testing.assert_allclose(a.std(correction=0).item(), np.std(a.numpy()), rtol=1e-6)
    np.testing.assert_allclose(tl.tensor([1.0, 2.0, 4.0]).std().item(), 1.5275252, rtol=1e-6)   # torch.std's value
    with pytest.raises(TypeError, match="not both"):
        a.var(0, True, correction=1)


def test_max_and_min_return_values_and_indices_along_a_dim():
    """makemore: `logits.max(1, keepdim=True).values`, `logits.max(1).indices`; max() of all elements is 0-d;
    tl.max(a, b) is elementwise (torch.max(input, other))."""
    x = tl.tensor([[1.0, 7.0, 7.0], [4.0, 2.0, 9.0]])
    top = x.max(1)
    assert isinstance(top, tuple) and top.values.tolist() == [7, 9] and top.indices.tolist() == [1, 2]
    values, indices = x.min(dim=0, keepdim=True)
    assert values.tolist() == [[1, 2, 7]] and indices.tolist() == [[0, 1, 0]] and indices.dtype == np.int64
    assert x.max(1, keepdim=True).values.shape == (2, 1) and x.max().shape == () and x.max().item() == 9
    assert tl.max(x, tl.full((2, 3), 5.0)).tolist() == [[5, 7, 7], [5, 5, 9]] and tl.min(x).item() == 1
    assert x.argmax().item() == 5 and x.argmax(1).tolist() == [1, 2] and x.argmin(0, keepdim=True).shape == (1, 3)
    assert x.amax(dim=(0, 1)).item() == 9 and x.amin(1).tolist() == [1, 2]
    with pytest.raises(TypeError, match="takes one dim"):
        x.max((0, 1))
    assert "ValuesIndices(values=tensor(" in repr(x.max(0))


def test_shape_and_value_methods():
    x = tl.tensor([[-2.0, 0.5], [3.0, 100.0]])
    assert x.clamp(-1, 1).tolist() == [[-1, 0.5], [1, 1]] and x.clamp(min=0).tolist() == [[0, 0.5], [3, 100]]
    assert x.clip(max=1.0).tolist() == [[-2, 0.5], [1, 1]]
    np.testing.assert_allclose(tl.tensor([100.0, 8.0]).log10().numpy(), [2, np.log10(8)], rtol=1e-6)
    np.testing.assert_allclose(tl.tensor([8.0, 0.5]).log2().numpy(), [3, -1])
    assert tl.zeros(2, 3, 4).flatten().shape == (24,) and tl.zeros(2, 3, 4).flatten(1).shape == (2, 12)
    assert tl.zeros(2, 3, 4, 5).flatten(1, 2).shape == (2, 12, 5) and tl.tensor(3.0).flatten().shape == (1,)
    assert tl.zeros(2, 1, 3).squeeze(0).shape == (2, 1, 3)                  # a dim not of size 1 stays, as torch
    assert tl.zeros(2, 1, 3).squeeze().shape == (2, 3) and tl.zeros(1, 1).squeeze((0, 1)).shape == ()
    c = x.clone()
    c[0, 0] = 9.0
    assert x.tolist()[0][0] == -2 and c.tolist()[0][0] == 9


def test_dtype_methods_as_pytorch():
    x = tl.tensor([1.7, -0.2, 0.0], requires_grad=True)
    assert x.long().dtype == np.int64 and x.long().tolist() == [1, 0, 0] and not x.long().requires_grad
    assert x.int().dtype == np.int32 and x.bool().tolist() == [True, True, False]
    assert x.double().dtype == np.float64 and x.double().requires_grad and x.half().dtype == np.float16
    assert x.float() is x and x.to(tl.float64).dtype == np.float64 and x.to("cpu", tl.float64).dtype == np.float64
    assert x.to(tl.tensor([1], dtype=tl.int64)).dtype == np.int64


def test_format_index_and_python_numbers():
    loss = tl.tensor(1.23456)
    assert f"{loss:.2f}" == "1.23" and f"{tl.tensor([2.5]):.1f}" == "2.5" and f"{loss}" == str(loss)
    with pytest.raises(TypeError):
        f"{tl.ones(2):.2f}"
    ix = tl.tensor([[3, 1]])[0, 0]                                           # makemore's ix = Xb[k, j]
    assert [10, 20, 30, 40][ix] == 40 and list(range(10))[ix:ix + 2] == [3, 4] and list(range(ix)) == [0, 1, 2]
    assert int(tl.tensor(2.9)) == 2 and float(tl.tensor([1.5])) == 1.5
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][tl.tensor(1.0)]


def test_numpy_accepts_a_cpu_tensor():
    t = tl.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(np.asarray(t), np.ndarray) and np.asarray(t, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(t, [[1, 2], [3, 4]])
    assert np.allclose(t, t.numpy()) and isinstance(np.exp(t), np.ndarray)
    total = np.zeros((2, 2), np.float32)
    total += t                                                             # in place into the array
    assert isinstance(total, np.ndarray) and total.tolist() == [[1, 2], [3, 4]]
    assert isinstance(np.ones(2, np.float32) + t, tl.Tensor)               # ndarray + Tensor is a Tensor, as in torch
    x = tl.ones(2, requires_grad=True)
    (np.float32(3.0) * x).sum().backward()
    assert x.grad.tolist() == [3, 3]
    with pytest.raises(TypeError, match="cannot write into a Tensor"):
        np.add(t.numpy(), 1, out=(t,))


def test_grad_is_a_tensor_without_a_graph():
    """makemore part 3's update-to-data ratio `((lr * p.grad).std() / p.data.std()).log10().item()` and part 4's
    `cmp`: `torch.all(dt == t.grad)`, `(dt - t.grad).abs().max().item()`."""
    p = tl.randn(10, 10, requires_grad=True)
    (p * p).sum().backward()
    assert isinstance(p.grad, tl.Tensor) and p.grad.shape == p.shape and not p.grad.requires_grad
    assert p.grad.creator is None
    ratio = ((0.1 * p.grad).std() / p.data.std()).log10().item()
    # p.data is the NumPy array (by design), so p.data.std() is NumPy's, with ddof=0; the grad's std is torch's
    assert ratio == pytest.approx(np.log10((0.1 * 2 * p.numpy()).std(ddof=1) / p.numpy().std(ddof=0)), rel=1e-5)
    dt = 2 * p.detach()
    assert bool((dt == p.grad).numpy().all()) and (dt - p.grad).abs().max().item() == 0.0
    with pytest.raises(TypeError, match="assigned grad must be a Tensor or None, got ndarray"):
        p.grad = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError, match=r"assigned grad has shape \(3,\)"):
        p.grad = tl.zeros(3)
    loss = (p * 2).sum().retain_grad()
    loss.backward()
    assert loss.grad.item() == 1.0                                          # the root's own gradient, retained


def test_an_integer_operand_takes_the_floating_dtype_as_in_pytorch():
    """torch.arange(3) * 0.5 is float32 (NumPy's rule would give float64), as is an int tensor times a float32
    one (makemore's `F.one_hot(...) * dlogit_maxes`); int with int stays int."""
    assert (tl.arange(3) * 0.5).dtype == np.float32 and (0.5 * tl.arange(3)).dtype == np.float32
    assert (tl.tensor([1, 2]) + tl.ones(2)).dtype == np.float32
    assert (tl.tensor([True, False]) * tl.ones(2, dtype=tl.float64)).dtype == np.float64
    assert (tl.arange(3) + 1).dtype == np.int64 and tl.where(tl.tensor([True, False]), 1, tl.ones(2)).dtype == \
        np.float32
    x = tl.ones(2, requires_grad=True)
    (tl.tensor([1, 2]) * x).sum().backward()
    assert x.grad.tolist() == [1, 2] and x.grad.dtype == np.float32


def test_integer_and_logical_operators_as_pytorch_documents():
    """%, //, &, |, ^, ~ as torch.remainder, floor_divide and the logical ops give them; none has a gradient, so
    one that would need it is a clear error instead of a gradient silently dropped."""
    a = tl.tensor([-3, -1, 0, 2, 7])
    assert (a % 3).tolist() == [0, 2, 0, 2, 1] and (a // 2).tolist() == [-2, -1, 0, 1, 3]   # the sign of b
    assert (7 % tl.tensor([2, 3])).tolist() == [1, 1] and (7 // tl.tensor([2, 3])).tolist() == [3, 2]
    mask = (a > -2) & (a < 5)
    assert mask.dtype == tl.bool and mask.tolist() == [False, True, True, True, False]
    assert ((a < -2) | (a > 5)).tolist() == [True, False, False, False, True]
    assert (~mask).tolist() == [True, False, False, False, True] and (mask ^ (a > 0)).tolist() == [0, 1, 1, 0, 1]
    x = tl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="% has no gradient in tensorlite"):
        x % 2
    with tl.no_grad():
        assert (x % 2).shape == (3,)
