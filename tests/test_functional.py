"""tensorlite.functional: gradchecks of every composite op, forward values against direct NumPy formulas."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def leaf(shape, device, seed=0, scale=1.0):
    data = np.random.default_rng(seed).standard_normal(shape) * scale
    return tl.tensor(data, dtype=tl.float64, device=device, requires_grad=True)


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@given(shape=shapes, data=st.data())
def test_softmax_and_log_softmax(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = leaf(shape, device)
    assert tl.gradcheck(lambda t: F.softmax(t, dim), [x])
    assert tl.gradcheck(lambda t: F.log_softmax(t, dim=dim), [x])
    np.testing.assert_allclose(F.softmax(x, dim=dim).numpy(), np_softmax(x.numpy(), dim), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, dim).numpy(), np.log(np_softmax(x.numpy(), dim)), atol=1e-12)


def test_softmax_without_dim_takes_pytorchs_deprecated_implicit_dim_and_warns():
    """F.softmax(x) in PyTorch normalises dim 0 of a 1-d or 3-d input and dim 1 otherwise, with a warning."""
    for shape, dim in (((4,), 0), ((2, 3), 1), ((2, 3, 4), 0), ((2, 3, 4, 5), 1)):
        x = tl.randn(*shape, dtype=tl.float64)
        with pytest.warns(UserWarning, match=f"Implicit dimension choice for softmax .* dim={dim}"):
            y = F.softmax(x)
        np.testing.assert_allclose(y.numpy(), np_softmax(x.numpy(), dim), rtol=1e-12)


def test_softmax_family_is_stable_at_extreme_logits(device):
    x = tl.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], device=device)
    for y in (F.softmax(x, -1), F.log_softmax(x, -1), F.cross_entropy(x, tl.tensor([2, 0], device=device))):
        assert np.isfinite(y.numpy()).all()
    np.testing.assert_allclose(F.softmax(x, dim=-1).numpy()[0], [1, 0, 0])
    assert F.cross_entropy(x, tl.tensor([2, 0], device=device), reduction="none").numpy()[0] == pytest.approx(2e4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), n_classes=st.integers(2, 6),
       data=st.data())
def test_cross_entropy_with_ignore_index(device, reduction, lead, n_classes, data):
    """Logits (N, C) or (N, C, d1): the classes along dim 1, as PyTorch's; targets (N,) or (N, d1)."""
    ignore = data.draw(st.sampled_from([-1, -100]))
    targets = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from([ignore] + list(range(n_classes)))))
    logits = leaf(lead[:1] + (n_classes,) + lead[1:], device)
    t = tl.tensor(targets, device=device)
    assert tl.gradcheck(lambda z: F.cross_entropy(z, t, ignore_index=ignore, reduction=reduction), [logits])
    # forward against -log softmax[target] over the rows that count
    logp = np.log(np_softmax(np.moveaxis(logits.numpy(), 1, -1)))
    valid = targets != ignore
    per_row = np.where(valid, -np.take_along_axis(logp, np.maximum(targets, 0)[..., None], -1)[..., 0], 0)
    expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / max(valid.sum(), 1)}[reduction]
    kwargs = {} if ignore == -100 else {"ignore_index": ignore}           # -100: PyTorch's default
    np.testing.assert_allclose(F.cross_entropy(logits, t, reduction=reduction, **kwargs).numpy(), expected,
                               atol=1e-12)


def test_cross_entropy_counts_target_minus_one_as_an_error_unless_it_is_the_ignore_index():
    logits = tl.zeros(2, 3)
    with pytest.raises(IndexError, match=r"target -1 is out of range for 3 classes \(ignore_index is -100\)"):
        F.cross_entropy(logits, tl.tensor([0, -1]))
    assert F.cross_entropy(logits, tl.tensor([0, -1]), ignore_index=-1).item() == pytest.approx(math.log(3))
    with pytest.raises(NotImplementedError, match="class weights"):
        F.cross_entropy(logits, tl.tensor([0, 1]), tl.ones(3))


def test_cross_entropy_errors():
    logits = tl.zeros(3, 4)
    with pytest.raises(IndexError, match="target 4 is out of range for 4 classes"):
        F.cross_entropy(logits, tl.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match=r"targets of shape \(2,\) do not match logits of shape \(3, 4\)"):
        F.cross_entropy(logits, tl.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(logits, tl.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, tl.tensor([0, 1, 2]), reduction="avg")


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_of_a_0d_or_integer_tensor_is_one_clear_error(fn):
    with pytest.raises(ValueError, match="of a 0-d tensor: it needs at least one dim"):
        fn(tl.tensor(3.0), dim=0)
    with pytest.raises(TypeError, match="needs a floating tensor, got dtype int64"):
        fn(tl.tensor([1, 2, 3]), dim=0)
    with pytest.raises(IndexError, match="dim 1 is out of range for a tensor of dimension 1"):
        fn(tl.tensor([1.0, 2.0]), dim=1)


def test_ids_out_of_range_raise_at_once_on_cpu_and_at_the_next_host_read_on_gpu(device):
    logits, table = tl.zeros(3, 4, device=device), tl.zeros(5, 2, device=device)
    calls = [(lambda: F.cross_entropy(logits, tl.tensor([0, 4, 1], device=device)), "target 4 is out of range"),
             (lambda: F.embedding(tl.tensor([[1, 5]], device=device), table), r"ids span \[1, 5\] .* 5 rows")]
    for call, message in calls:
        if device == "cpu":
            with pytest.raises(IndexError, match=message):
                call()
        else:
            out = call()                             # no host sync in a forward pass: the kernels run on
            with pytest.raises(IndexError, match=message):
                out.sum().item()                     # and the error comes with the host's next read
            assert tl.zeros(1, device=device).item() == 0.0


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5), affine=st.booleans(),
       data=st.data())
def test_layer_norm(device, shape, affine, data):
    """F.layer_norm(x, normalized_shape, weight, bias, eps) over the trailing dims normalized_shape, as nanoGPT
    calls it: F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)."""
    n = data.draw(st.integers(1, len(shape)))
    normalized = shape[len(shape) - n:]
    x = leaf(shape, device)
    w, b = (leaf(normalized, device, 1), leaf(normalized, device, 2)) if affine else (None, None)
    inputs = [x] + ([w, b] if affine else [])
    assert tl.gradcheck(lambda *a: F.layer_norm(a[0], normalized, *(a[1:] or (None, None)), 1e-5), inputs)
    xn = x.numpy()
    dims = tuple(range(len(shape) - n, len(shape)))
    expected = (xn - xn.mean(dims, keepdims=True)) / np.sqrt(xn.var(dims, keepdims=True) + 1e-5)
    if affine:
        expected = expected * w.numpy() + b.numpy()
    np.testing.assert_allclose(F.layer_norm(x, normalized, w, b).numpy(), expected, atol=1e-10)
    if n == 1:
        np.testing.assert_allclose(F.layer_norm(x, shape[-1], w, b).numpy(), expected, atol=1e-10)   # an int


def test_layer_norm_errors_name_the_shapes():
    x = tl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"normalized_shape \(4,\): the input of shape \(2, 3\) does not end"):
        F.layer_norm(x, (4,))
    with pytest.raises(ValueError, match=r"weight has shape \(2,\), expected normalized_shape \(3,\)"):
        F.layer_norm(x, (3,), tl.ones(2))


def test_gelu_is_exact_unless_asked_for_tanh_as_pytorchs():
    x = tl.tensor([1.0], dtype=tl.float64)
    exact, tanh = 0.5 * (1 + math.erf(1 / math.sqrt(2))), 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))
    assert F.gelu(x).item() == pytest.approx(exact, abs=1e-15) and tl.nn.GELU()(x).item() == F.gelu(x).item()
    assert F.gelu(x, approximate="tanh").item() == pytest.approx(tanh, abs=1e-15)
    assert tl.nn.GELU(approximate="tanh")(x).item() == F.gelu(x, approximate="tanh").item()


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@given(shape=shapes)
def test_gelu(device, approximate, shape):
    x = leaf(shape, device, scale=2.0)
    assert tl.gradcheck(lambda t: F.gelu(t, approximate), [x])
    xn = x.numpy()
    if approximate == "tanh":
        expected = 0.5 * xn * (1 + np.tanh(math.sqrt(2 / math.pi) * (xn + 0.044715 * xn ** 3)))
    else:
        expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in xn.reshape(-1)]).reshape(xn.shape)
    np.testing.assert_allclose(F.gelu(x, approximate).numpy(), expected, atol=1e-12)


def test_relu_and_dropout(device):
    x = leaf((50, 40), device)
    assert tl.gradcheck(F.relu, [leaf((3, 4), device, seed=9)])
    tl.manual_seed(0)
    y = F.dropout(x, p=0.25, training=True)
    kept = y.numpy() != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.75)  # inverted scaling
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75)  # same mask in backward
    assert F.dropout(x, 0.25, training=False) is x
    tl.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, p=0.25).numpy(), y.numpy())  # seeded
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(x, 1.0)


def test_dropout_add_is_dropout_then_the_residual(device):
    x, r = leaf((50, 40), device), leaf((50, 40), device, seed=3)
    tl.manual_seed(0)
    dropped = F.dropout(x, p=0.25).numpy()
    tl.manual_seed(0)
    y = F.dropout_add(x, r, p=0.25)
    np.testing.assert_allclose(y.numpy(), dropped + r.numpy())              # the same mask as F.dropout's
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (dropped != 0) / 0.75)
    np.testing.assert_array_equal(r.grad.numpy(), np.ones((50, 40)))
    np.testing.assert_array_equal(F.dropout_add(x, r, 0.25, training=False).numpy(), x.numpy() + r.numpy())
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout_add(x, r, 1.0)


def with_fixed_mask(fn):
    """fn with the generator reseeded at every call: the same dropout mask each time, so gradcheck applies."""
    def seeded(*tensors):
        tl.manual_seed(0)
        return fn(*tensors)
    return seeded


@given(pair=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=4))
def test_dropout_and_dropout_add_gradcheck(device, pair):
    x_shape, residual_shape = pair.input_shapes
    assert tl.gradcheck(with_fixed_mask(lambda x: F.dropout(x, 0.3)), [leaf(x_shape, device)])
    assert tl.gradcheck(with_fixed_mask(lambda x, r: F.dropout_add(x, r, 0.3)),
                        [leaf(x_shape, device), leaf(residual_shape, device, seed=1)])


def test_embedding_accumulates_repeated_ids(device):
    w = leaf((5, 3), device)
    idx = tl.tensor([[0, 2, 2], [4, 2, 0]], device=device)
    assert tl.gradcheck(lambda t: F.embedding(idx, t), [w])
    np.testing.assert_allclose(F.embedding(idx, w).numpy(), w.numpy()[idx.numpy()])
    w.grad = None
    F.embedding(idx, w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy()[:, 0], [2, 0, 3, 0, 1])
    with pytest.raises(IndexError, match="ids span"):
        F.embedding(tl.tensor([5]), w)


@given(lead=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), bias=st.booleans())
def test_linear(device, lead, n_in, n_out, bias):
    x, w = leaf(lead + (n_in,), device), leaf((n_out, n_in), device, 1)
    b = leaf((n_out,), device, 2) if bias else None
    assert tl.gradcheck(lambda *a: F.linear(*a), [x, w] + ([b] if bias else []))
    expected = x.numpy() @ w.numpy().T + (b.numpy() if bias else 0)
    np.testing.assert_allclose(F.linear(x, w, b).numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="expects"):
        F.linear(leaf((2, n_in + 1), device), w)


def naive_attention(q, k, v, causal, scale):
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        t, n = s.shape[-2:]
        s = np.where(np.arange(n)[None, :] <= np.arange(t)[:, None] + n - t, s, -np.inf)
    return np_softmax(s) @ v


@pytest.mark.parametrize("causal", [False, True])
@given(b=st.integers(1, 2), h=st.integers(1, 2), t=st.integers(1, 5), d=st.integers(1, 4), data=st.data())
def test_scaled_dot_product_attention(device, causal, b, h, t, d, data):
    s = data.draw(st.integers(t, t + 2)) if causal else data.draw(st.integers(1, 5))
    q, k, v = leaf((b, h, t, d), device, 1), leaf((b, h, s, d), device, 2), leaf((b, h, s, d), device, 3)
    assert tl.gradcheck(lambda *a: F.scaled_dot_product_attention(*a, is_causal=causal), [q, k, v])
    expected = naive_attention(q.numpy(), k.numpy(), v.numpy(), causal, 1 / math.sqrt(d))
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v, is_causal=causal).numpy(), expected,
                               atol=1e-12)


@given(b=st.integers(1, 2), h=st.integers(1, 2), t=st.integers(1, 4), s=st.integers(1, 4), d=st.integers(1, 3),
       data=st.data())
def test_scaled_dot_product_attention_with_an_attn_mask(device, b, h, t, s, d, data):
    """attn_mask as PyTorch takes it: boolean (True: the key takes part) or an additive float mask (which may
    require grad), of any shape that broadcasts to the scores' (B, H, T, S); positional in PyTorch's order."""
    q, k, v = leaf((b, h, t, d), device, 1), leaf((b, h, s, d), device, 2), leaf((b, h, s, d), device, 3)
    mask_shape = data.draw(st.sampled_from([(t, s), (1, s), (b, 1, t, s), (h, t, 1)]))
    allowed = np.random.default_rng(4).random(mask_shape) < 0.7
    allowed[..., 0] = True                                          # every query sees one key at least
    bool_mask = tl.tensor(allowed, device=device)
    additive = leaf(mask_shape, device, 5)
    scale = 1 / math.sqrt(d)
    for mask, added in ((bool_mask, np.where(allowed, 0.0, -np.inf)), (additive, additive.numpy())):
        scores = q.numpy() @ np.swapaxes(k.numpy(), -1, -2) * scale + added
        expected = np_softmax(scores) @ v.numpy()
        out = F.scaled_dot_product_attention(q, k, v, mask)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    assert tl.gradcheck(lambda *a: F.scaled_dot_product_attention(*a, attn_mask=bool_mask), [q, k, v])
    assert tl.gradcheck(lambda *a: F.scaled_dot_product_attention(*a[:3], a[3]), [q, k, v, additive])


def test_attention_mask_errors():
    q = tl.zeros(1, 1, 3, 4)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 3\) does not broadcast .* \(1, 1, 3, 3\)"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.ones(2, 3, dtype=np.bool_))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.ones(3, 3, dtype=np.bool_), is_causal=True)
    with pytest.raises(TypeError, match="boolean or floating"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tl.ones(3, 3, dtype=tl.int64))


def test_attention_dropout_uses_one_mask_forward_and_backward(device):
    q, k, v = (leaf((1, 2, 6, 4), device, s) for s in (1, 2, 3))
    tl.manual_seed(3)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.3)
    assert not np.allclose(out.numpy(), F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy())

    def seeded(*a):
        tl.manual_seed(3)
        return F.scaled_dot_product_attention(*a, is_causal=True, dropout_p=0.3)
    assert tl.gradcheck(seeded, [q, k, v])


def test_attention_shape_errors():
    with pytest.raises(ValueError, match="must be"):
        F.scaled_dot_product_attention(tl.zeros(1, 1, 3, 4), tl.zeros(1, 1, 3, 5), tl.zeros(1, 1, 3, 4))


@given(b=st.integers(1, 2), t=st.integers(1, 4), h=st.integers(1, 3), d=st.integers(1, 3), n=st.integers(1, 3))
def test_split_and_merge_heads(device, b, t, h, d, n):
    x = leaf((b, t, n * h * d), device)
    pieces = F.split_heads(x, h, n=n)
    for i, piece in enumerate(pieces):            # the reshape + transpose written out in NumPy
        expected = x.numpy()[..., i * h * d:(i + 1) * h * d].reshape(b, t, h, d).transpose(0, 2, 1, 3)
        np.testing.assert_array_equal(piece.numpy(), expected)
        np.testing.assert_array_equal(F.merge_heads(piece).numpy(), expected.transpose(0, 2, 1, 3).reshape(b, t, -1))
    weights = [leaf((b, t, h * d), device, seed=i + 1).data for i in range(n)]   # each piece weighted differently

    def weighted_sum(a):
        return tl.cat([(F.merge_heads(p) * w).reshape(-1) for p, w in zip(F.split_heads(a, h, n=n), weights)]).sum()
    assert tl.gradcheck(weighted_sum, [x])
    assert tl.gradcheck(lambda a: F.split_heads(a, h, n=n)[-1] * 2.0, [x])   # unused pieces get zero gradients


def test_split_and_merge_heads_errors():
    with pytest.raises(ValueError, match="split_heads"):
        F.split_heads(tl.zeros(1, 2, 13), 2)
    with pytest.raises(ValueError, match="merge_heads"):
        F.merge_heads(tl.zeros(1, 2, 12))
