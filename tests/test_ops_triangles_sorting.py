"""tl.tril / triu, cumsum, gather, sort / argsort and topk: PyTorch's values, and gradients against central
differences in float64 with hypothesis drawing the shapes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl

matrices = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4)
tensors = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def leaf(shape, device, seed=0):
    data = np.random.default_rng(seed).uniform(-2.0, 2.0, size=shape)   # distinct values: no ties to reorder
    return tl.tensor(data, dtype=tl.float64, device=device, requires_grad=True)


# ----------------------------------------------------------------------------- tril / triu
def test_tril_and_triu_keep_the_triangle_pytorch_documents(device):
    a = tl.arange(1, 10, device=device).reshape(3, 3)
    assert tl.tril(a).tolist() == [[1, 0, 0], [4, 5, 0], [7, 8, 9]]
    assert tl.triu(a).tolist() == [[1, 2, 3], [0, 5, 6], [0, 0, 9]]
    assert a.tril(-1).tolist() == [[0, 0, 0], [4, 0, 0], [7, 8, 0]]
    assert a.triu(diagonal=1).tolist() == [[0, 2, 3], [0, 0, 6], [0, 0, 0]]
    mask = tl.tril(tl.ones(4, 4, device=device))                         # "Let's build GPT"'s causal mask
    assert mask.dtype == tl.float32 and mask.numpy().sum() == 10
    batched = tl.tril(tl.ones(2, 2, 3, device=device))                   # the last two dims are the matrix
    assert batched.tolist() == [[[1, 0, 0], [1, 1, 0]]] * 2


def test_tril_refuses_what_has_no_matrix():
    with pytest.raises(ValueError, match="at least 2 dims"):
        tl.tril(tl.ones(3))
    with pytest.raises(TypeError, match="diagonal must be an integer"):
        tl.triu(tl.ones(2, 2), 0.5)


@given(shape=matrices, diagonal=st.integers(-3, 3), upper=st.booleans())
def test_tril_triu_gradcheck(device, shape, diagonal, upper):
    op = tl.triu if upper else tl.tril
    assert tl.gradcheck(lambda t: op(t, diagonal), [leaf(shape, device)])


# ----------------------------------------------------------------------------- cumsum
def test_cumsum_values_dtypes_and_zero_d(device):
    x = tl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device)
    assert tl.cumsum(x, dim=1).tolist() == [[1, 3, 6], [4, 9, 15]]
    assert x.cumsum(0).tolist() == [[1, 2, 3], [5, 7, 9]]
    assert tl.cumsum(tl.tensor([True, False, True], device=device), 0).dtype == tl.int64   # as torch: int64
    assert tl.cumsum(tl.tensor([1, 2], dtype=tl.int32, device=device), 0).dtype == tl.int64
    assert tl.cumsum(x, 1, dtype=tl.float64).dtype == tl.float64
    zero_d = tl.cumsum(tl.tensor(3.0, device=device), 0)
    assert zero_d.shape == () and zero_d.item() == 3.0
    with pytest.raises(IndexError, match="dim 2 is out of range for a tensor of dimension 2"):
        tl.cumsum(x, 2)


@given(shape=tensors, data=st.data())
def test_cumsum_gradcheck(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert tl.gradcheck(lambda t: tl.cumsum(t, dim), [leaf(shape, device)])


# ----------------------------------------------------------------------------- gather
def test_gather_reads_what_pytorch_documents(device):
    t = tl.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    index = tl.tensor([[0, 0], [1, 0]], device=device)
    assert tl.gather(t, 1, index).tolist() == [[1, 1], [4, 3]]          # torch.gather's docstring example
    assert t.gather(0, tl.tensor([[1, 0]], device=device)).tolist() == [[3, 2]]   # index smaller than t off dim


def test_gather_accumulates_the_gradient_of_an_element_read_twice(device):
    t = tl.tensor([[1.0, 2.0, 3.0]], device=device, requires_grad=True)
    tl.gather(t, 1, tl.tensor([[2, 2, 0]], device=device)).sum().backward()
    assert tl.tensor(t.grad).tolist() == [[1, 0, 2]]


def test_gather_refuses_bad_indices():
    t = tl.ones(2, 3)
    with pytest.raises(IndexError, match="index 3 is out of range for dim 1 of size 3"):
        tl.gather(t, 1, tl.tensor([[3]]))
    with pytest.raises(IndexError, match="index -1 is out of range"):     # no silent wrap-around
        tl.gather(t, 1, tl.tensor([[-1]]))
    with pytest.raises(TypeError, match="must be integers"):
        tl.gather(t, 1, tl.tensor([[0.0]]))
    with pytest.raises(ValueError, match="does not fit"):
        tl.gather(t, 1, tl.tensor([0]))


@given(shape=tensors, data=st.data())
def test_gather_gradcheck(device, shape, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(data.draw(st.integers(1, 4)) if d == dim else data.draw(st.integers(1, n))
                        for d, n in enumerate(shape))
    index = np.random.default_rng(1).integers(0, shape[dim], index_shape)
    assert tl.gradcheck(lambda t: tl.gather(t, dim, tl.tensor(index, device=device)), [leaf(shape, device)])


# ----------------------------------------------------------------------------- sort / argsort / topk
def test_sort_returns_values_and_indices_stable_both_ways(device):
    x = tl.tensor([3.0, 1.0, 2.0, 1.0, 3.0], device=device)
    values, indices = tl.sort(x)
    assert values.tolist() == [1, 1, 2, 3, 3] and indices.tolist() == [1, 3, 2, 0, 4]
    result = x.sort(descending=True)
    assert result.values.tolist() == [3, 3, 2, 1, 1] and result.indices.tolist() == [0, 4, 2, 1, 3]
    assert tl.argsort(x, descending=True).tolist() == [0, 4, 2, 1, 3]
    assert x.argsort().dtype == tl.int64
    m = tl.tensor([[2.0, 0.0], [1.0, 5.0]], device=device)
    assert tl.sort(m, dim=0).indices.tolist() == [[1, 0], [0, 1]]
    assert tl.sort(tl.tensor(7.0, device=device)).indices.item() == 0     # 0-d: one element


def test_sort_puts_nan_last_ascending_and_first_descending_as_pytorch():
    x = tl.tensor([1.0, float("nan"), 0.0])
    assert np.isnan(tl.sort(x).values.numpy()[-1]) and np.isnan(tl.sort(x, descending=True).values.numpy()[0])


def test_topk_largest_and_smallest(device):
    x = tl.tensor([[1.0, 5.0, 3.0, 5.0], [0.0, -1.0, 2.0, 4.0]], device=device)
    values, indices = tl.topk(x, 2)
    assert values.tolist() == [[5, 5], [4, 2]] and indices.tolist() == [[1, 3], [3, 2]]   # ties: lower index first
    smallest = x.topk(1, dim=1, largest=False)
    assert smallest.values.tolist() == [[1], [-1]] and smallest.indices.tolist() == [[0], [1]]
    assert tl.topk(x, 1, dim=0, largest=False).indices.tolist() == [[1, 1, 1, 1]]
    assert tl.topk(x, 0).values.shape == (2, 0)
    with pytest.raises(ValueError, match="k=5 is out of range for dim 1 of size 4"):
        tl.topk(x, 5)


def test_topk_sends_gradients_to_the_chosen_elements(device):
    x = tl.tensor([[1.0, 5.0, 3.0]], device=device, requires_grad=True)
    (tl.topk(x, 2).values * tl.tensor([[10.0, 1.0]], device=device)).sum().backward()
    assert tl.tensor(x.grad).tolist() == [[0, 10, 1]]


@given(shape=tensors, data=st.data())
def test_sort_and_topk_gradcheck(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    descending = data.draw(st.booleans())
    k = data.draw(st.integers(0, shape[dim]))
    x = leaf(shape, device)
    assert tl.gradcheck(lambda t: tl.sort(t, dim, descending).values, [x])
    assert tl.gradcheck(lambda t: tl.topk(t, k, dim, largest=descending).values, [x])
