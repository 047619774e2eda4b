"""Every primitive op's backward against central differences in float64, with hypothesis drawing the shapes."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
from tensorlite import ops

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


def leaf(shape, device, low=-2.0, high=2.0, seed=0):
    data = np.random.default_rng(seed).uniform(low, high, size=shape)
    return tl.tensor(data, dtype=tl.float64, device=device, requires_grad=True)


def positive(shape, device, seed=0):
    return leaf(shape, device, 0.5, 2.0, seed)


@pytest.mark.parametrize("op", [ops.add, ops.sub, ops.mul, ops.div, ops.pow, ops.maximum, ops.minimum])
@given(pair=broadcast_pairs)
def test_binary_ops_broadcast(device, op, pair):
    a_shape, b_shape = pair.input_shapes
    a = positive(a_shape, device, seed=1)
    b = leaf(b_shape, device, 0.5, 1.5, seed=2) if op in (ops.div, ops.pow) else leaf(b_shape, device, seed=2)
    assert tl.gradcheck(op, [a, b])


@pytest.mark.parametrize("expr", [lambda x: 2.5 + x, lambda x: x - 1.5, lambda x: 3.0 - x, lambda x: x * -2.0,
                                  lambda x: 1.5 / x, lambda x: x / 4.0, lambda x: x ** 3, lambda x: 2.0 ** x,
                                  lambda x: -x],
                         ids=["radd", "sub", "rsub", "mul", "rdiv", "div", "pow", "rpow", "neg"])
@given(shape=shapes)
def test_scalar_operands(device, expr, shape):
    assert tl.gradcheck(expr, [positive(shape, device)])


@pytest.mark.parametrize("name", ["exp", "log", "log2", "log10", "sqrt", "tanh", "sigmoid", "relu", "abs", "clone"])
@given(shape=shapes)
def test_unary_ops(device, name, shape):
    x = positive(shape, device) if name in ("log", "log2", "log10", "sqrt") else leaf(shape, device)
    if name in ("relu", "abs"):  # keep away from the kink at 0, where the derivative jumps
        x.data[abs(x.data) < 1e-2] = 0.5
    assert tl.gradcheck(getattr(ops, name), [x])


dim_choices = st.sampled_from([None, 0, -1, (0, 1), (0, -1)])
reduction_shapes = hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=4)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "amin"])
@given(shape=reduction_shapes, dim=dim_choices, keepdim=st.booleans())
def test_reductions(device, name, shape, dim, keepdim):
    x = leaf(shape, device)
    assert tl.gradcheck(lambda t: getattr(ops, name)(t, dim=dim, keepdim=keepdim), [x])


@pytest.mark.parametrize("name", ["var", "std"])
@given(shape=reduction_shapes, dim=dim_choices, unbiased=st.booleans(), correction=st.sampled_from([None, 0, 2]))
def test_var_std_corrections(device, name, shape, dim, unbiased, correction):
    reduced = np.prod([shape[d] for d in np.atleast_1d(range(len(shape)) if dim is None else dim)])
    assume(reduced > (correction or 1))                      # degrees of freedom left (else inf or nan: below)
    x = leaf(shape, device)
    fn = getattr(ops, name)
    if correction is None:
        assert tl.gradcheck(lambda t: fn(t, dim, unbiased), [x])
    else:
        assert tl.gradcheck(lambda t: fn(t, dim, correction=correction, keepdim=True), [x])


def test_var_without_degrees_of_freedom_is_inf_or_nan_with_a_warning_as_in_pytorch():
    with pytest.warns(UserWarning, match=r"degrees of freedom is <= 0 \(1 elements, correction 1\)"):
        assert np.isnan(tl.tensor([3.0]).var().item())
    x = tl.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        y = x.var(1, correction=2)
    assert y.item() == np.inf
    y.backward()
    assert np.isinf(x.grad.numpy()).all()


@pytest.mark.parametrize("name", ["max", "min"])
@given(shape=reduction_shapes, data=st.data(), keepdim=st.booleans())
def test_max_min_along_a_dim_and_of_everything(device, name, shape, data, keepdim):
    x = leaf(shape, device)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert tl.gradcheck(lambda t: getattr(t, name)(dim, keepdim=keepdim).values, [x])
    assert tl.gradcheck(lambda t: getattr(t, name)(), [x])


def test_max_along_a_dim_routes_the_gradient_to_one_winner_and_max_of_all_shares_it(device):
    """torch.max(dim) sends a row's gradient to the index it returns (the first of tied maxima); max() of every
    element and amax share it among the tied ones."""
    x = tl.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], device=device, requires_grad=True)
    x.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.amax(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0.5, 0.5, 0]])


def test_maximum_splits_the_gradient_of_a_tie(device):
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    tl.maximum(a, tl.tensor([2.0, 2.0, 2.0], device=device)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0, 0.5, 1])


@given(shape=shapes, low=st.sampled_from([None, -0.5]), high=st.sampled_from([None, 0.7]))
def test_clamp(device, shape, low, high):
    if low is None and high is None:
        return
    x = leaf(shape, device)
    x.data[np.abs(x.data - (low or 0)) < 1e-2] += 0.05          # away from the kinks, where the derivative jumps
    x.data[np.abs(x.data - (high or 0)) < 1e-2] += 0.05
    assert tl.gradcheck(lambda t: t.clamp(low, high), [x])
    assert tl.gradcheck(lambda t: t.clip(min=low, max=high), [x])


def test_clamp_passes_the_gradient_at_its_bounds_as_torch_does(device):
    x = tl.tensor([1.0, 2.0, 3.0, 4.0], device=device, requires_grad=True)
    x.clamp(min=2.0, max=3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 0])


@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_shape_ops(device, shape, data):
    x = leaf(shape, device)
    perm = data.draw(st.permutations(range(len(shape))))
    dim0, dim1 = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    start = data.draw(st.integers(0, len(shape) - 1))
    assert tl.gradcheck(lambda t: t.permute(*perm) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.transpose(dim0, dim1) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.reshape(-1, shape[-1]) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.flatten(start) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.swapaxes(0, -1) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.unsqueeze(1).squeeze(1) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.T * 1.0, [x])
    assert tl.gradcheck(lambda t: t.mT * 1.0, [x])
    assert tl.gradcheck(lambda t: t.unsqueeze(0).expand(3, *shape) * 1.0, [x])
    assert tl.gradcheck(lambda t: t.transpose(0, 1).contiguous() * 1.0, [x])


@given(pair=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3),
       m=st.integers(1, 3), n=st.integers(1, 3), k=st.integers(1, 3))
def test_matmul_batched_broadcast(device, pair, m, n, k):
    batch_a, batch_b = pair.input_shapes
    a, b = leaf(batch_a + (m, k), device), leaf(batch_b + (k, n), device, seed=3)
    assert tl.gradcheck(tl.matmul, [a, b])


@pytest.mark.parametrize("a_shape,b_shape", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,)),
                                             ((3,), (4, 3, 2)), ((2, 4, 3), (3, 5)), ((5, 3), (2, 3, 4))])
def test_matmul_1d_and_flattened_cases(device, a_shape, b_shape):
    a, b = leaf(a_shape, device), leaf(b_shape, device, seed=4)
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    assert tl.gradcheck(lambda x, y: x @ y, [a, b])


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4), data=st.data())
def test_getitem_basic(device, shape, data):
    x = leaf(shape, device)
    stop = data.draw(st.integers(1, shape[0]))
    assert tl.gradcheck(lambda t: t[0], [x])
    assert tl.gradcheck(lambda t: t[1:stop], [x])
    assert tl.gradcheck(lambda t: t[None, ::2, ...], [x])
    assert tl.gradcheck(lambda t: t[..., -1], [x])


def test_getitem_integer_arrays_accumulate_repeats(device):
    x = leaf((4, 3), device)
    idx = np.array([0, 2, 2, 3, 0, 0])
    assert tl.gradcheck(lambda t: t[idx], [x])
    assert tl.gradcheck(lambda t: t[idx, np.array([1, 1, 0, 2, 1, 1])], [x])
    assert tl.gradcheck(lambda t: t[[1, 1], 1:], [x])
    y = tl.zeros(4, device=device, requires_grad=True)
    y[tl.tensor([1, 1, 1, 3], device=device)].sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0, 3, 0, 1])


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), n=st.integers(1, 3),
       data=st.data())
def test_cat_stack_split_chunk(device, shape, n, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = [leaf(shape, device, seed=s) for s in range(n)]
    assert tl.gradcheck(lambda *ts: tl.cat(ts, dim=dim), xs)
    assert tl.gradcheck(lambda *ts: tl.stack(ts, dim=dim), xs)
    x = leaf(shape, device)
    size = data.draw(st.integers(1, shape[dim]))
    assert tl.gradcheck(lambda t: tl.cat([p * (i + 1.0) for i, p in enumerate(t.split(size, dim=dim))], dim), [x])
    assert tl.gradcheck(lambda t: t.chunk(2, dim)[0], [x])  # unused pieces get zero gradient


@given(pair=broadcast_pairs)
def test_where_and_masked_fill(device, pair):
    a_shape, b_shape = pair.input_shapes
    a, b = leaf(a_shape, device), leaf(b_shape, device, seed=5)
    cond = tl.tensor(np.random.default_rng(6).random(np.broadcast_shapes(a_shape, b_shape)) > 0.5, device=device)
    assert tl.gradcheck(lambda x, y: tl.where(cond, x, y), [a, b])
    mask = tl.tensor(np.random.default_rng(7).random(a_shape) > 0.5, device=device)
    assert tl.gradcheck(lambda x: x.masked_fill(mask, -5.0), [a])


def test_cast_and_device_copy_pass_gradients(device):
    x = leaf((3, 2), device)
    assert tl.gradcheck(lambda t: t.float().double() * 2.0, [x], eps=1e-2, atol=1e-3)  # linear: big eps is exact
    assert tl.gradcheck(lambda t: t.to("cpu") * 2.0, [x])
