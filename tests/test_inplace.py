"""In-place operations: they change the tensor itself (a parameter stays the same parameter), outside the graph
they write into its array, inside it they are recorded, and a backward that would read a changed array raises."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import nn


def leaf(shape, seed=0, low=-2.0, high=2.0):
    data = np.random.default_rng(seed).uniform(low, high, size=shape)
    return tl.tensor(data, dtype=tl.float64, requires_grad=True)


# ----------------------------------------------------------------------------- outside the graph
def test_a_parameter_changed_under_no_grad_stays_the_same_parameter():
    """makemore part 3's `with torch.no_grad(): layer.weight *= 0.1`: once it rebound the name to a new tensor."""
    layer = nn.Linear(3, 2)
    weight, before = layer.weight, layer.weight.numpy().copy()
    with tl.no_grad():
        layer.weight *= 0.1
        layer.bias.zero_()
    assert layer.weight is weight and isinstance(layer.weight, nn.Parameter)
    assert [p for _, p in layer.named_parameters()][0] is weight
    np.testing.assert_allclose(layer.weight.numpy(), before * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(layer.bias.numpy(), [0, 0])


def test_sgd_written_as_pytorch_writes_it_updates_the_parameters():
    """`for p in params: p += -lr * p.grad` under no_grad, and micrograd's `p.data += -lr * p.grad`."""
    model = nn.Linear(2, 1)
    x, y = tl.randn(8, 2), tl.randn(8, 1)
    params = model.parameters()
    arrays = [p.data for p in params]
    losses = []
    for step in range(20):
        loss = ((model(x) - y) ** 2).mean()
        losses.append(loss.item())
        for p in params:
            p.grad = None
        loss.backward()
        expected = [p.numpy() - 0.1 * p.grad.numpy() for p in params]
        with tl.no_grad():
            for p in params:
                if step % 2:
                    p += -0.1 * p.grad
                else:
                    p.data += -0.1 * p.grad                      # ndarray += Tensor: the Tensor's __array__
        for p, want in zip(params, expected):
            np.testing.assert_allclose(p.numpy(), want, rtol=1e-6)
    assert all(p.data is a for p, a in zip(params, arrays))          # the same arrays, changed in place
    assert losses[-1] < 0.9 * losses[0]


def test_each_in_place_op_gives_its_out_of_place_values():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 4))
    other = rng.standard_normal((3, 4))
    cases = [(lambda t: t.add_(tl.tensor(other), alpha=2), base + 2 * other),
             (lambda t: t.sub_(tl.tensor(other)), base - other),
             (lambda t: t.mul_(2.5), base * 2.5), (lambda t: t.div_(tl.tensor(other)), base / other),
             (lambda t: t.pow_(2), base ** 2), (lambda t: t.zero_(), np.zeros((3, 4))),
             (lambda t: t.fill_(7.0), np.full((3, 4), 7.0)), (lambda t: t.fill_(tl.tensor(3.0)), np.full((3, 4), 3.0)),
             (lambda t: t.copy_(tl.tensor(other[0].astype(np.float32))),          # cast to t's dtype, broadcast
              np.broadcast_to(other[0].astype(np.float32), (3, 4))),
             (lambda t: t.masked_fill_(tl.tensor(base > 0), -1.0), np.where(base > 0, -1.0, base)),
             (lambda t: t.masked_fill_(tl.tensor(base[0] > 0), 0.0), np.where(base[0] > 0, 0.0, base)),
             (lambda t: t.clamp_(min=-0.5, max=0.5), np.clip(base, -0.5, 0.5)),
             (lambda t: t.clip_(max=0.0), np.minimum(base, 0.0))]
    for i, (op, expected) in enumerate(cases):
        t = tl.tensor(base.copy())
        array = t.data
        assert op(t) is t, i                                         # returns the tensor itself
        assert t.data is array, i                                    # and changed its array
        np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12, err_msg=str(i))
        assert t._version == 1, i


def test_setitem_takes_what_getitem_takes():
    x = tl.zeros(3, 4)
    x[0] = 1.0
    x[1, 1:3] = tl.tensor([2.0, 3.0])
    x[[2, 2], [0, 3]] = 5.0
    x[x == 0] = -1.0                                                  # a boolean mask
    x[tl.tensor(2), tl.tensor(1)] = 9.0                               # 0-d integer tensors index as integers
    np.testing.assert_array_equal(x.numpy(), [[1, 1, 1, 1], [-1, 2, 3, -1], [5, 9, -1, 5]])
    assert x._version == 5


def test_nanogpts_top_k_masking_in_place():
    """sample.py's `v, _ = torch.topk(logits, k); logits[logits < v[:, [-1]]] = -float('Inf')` (the k-th
    largest taken here with a sort)."""
    logits = tl.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 1.0, 2.0, -2.0]])
    v = tl.tensor(-np.sort(-logits.numpy(), axis=-1)[:, :2])
    with tl.no_grad():
        logits[logits < v[:, [-1]]] = -float("Inf")
    np.testing.assert_array_equal(logits.numpy(), [[-np.inf, 2.0, -np.inf, 0.5], [3.0, -np.inf, 2.0, -np.inf]])


def test_random_fills_are_seeded_and_have_their_moments():
    t = tl.zeros(20000)
    tl.manual_seed(1)
    t.normal_(2.0, 0.5)
    assert abs(t.numpy().mean() - 2.0) < 0.02 and abs(t.numpy().std() - 0.5) < 0.02
    first = t.numpy().copy()
    tl.manual_seed(1)
    np.testing.assert_array_equal(t.normal_(2.0, 0.5).numpy(), first)
    t.uniform_(-1.0, 3.0)
    assert -1.0 <= t.numpy().min() and t.numpy().max() < 3.0 and abs(t.numpy().mean() - 1.0) < 0.05
    with pytest.raises(TypeError, match="floating"):
        tl.zeros(3, dtype=tl.int64).normal_()


def test_a_view_shares_the_memory_and_the_version_as_in_pytorch():
    x = tl.zeros(3, 4)
    row, col, flat = x[1], x[:, 2], x.view(12)
    with tl.no_grad():
        row.fill_(1.0)
        col += 2.0
        flat[0] = 5.0
        x.transpose(0, 1)[3, 2] = 7.0
    np.testing.assert_array_equal(x.numpy(), [[5, 0, 2, 0], [1, 1, 3, 1], [0, 0, 2, 7]])
    assert x._version == row._version == flat._version == 4
    copy = x[[0, 1]]                                                  # advanced indexing: a copy, as in PyTorch
    copy.zero_()
    assert x.numpy()[0, 0] == 5 and x._version == 4
    detached = x.detach()
    detached.mul_(2)
    assert x.numpy()[0, 0] == 10 and x._version == 5


class _ForeignTensor:
    """Another library's tensor (as torch's): NumPy borrows its memory through the array interface, and it has a
    dtype but no `.base`."""

    def __init__(self, array):
        self.array, self.dtype = array, array.dtype
        self.__array_interface__ = array.__array_interface__


def test_views_of_memory_borrowed_from_another_librarys_tensor():
    borrowed = np.asarray(_ForeignTensor(np.arange(6.0)))   # as torch_tensor.numpy(): base is the foreign tensor
    x = tl.tensor(borrowed)
    view = x.reshape(2, 3)
    with tl.no_grad():
        view[0, 0] = 9.0
    assert x.numpy()[0] == 9.0 and x._version == view._version == 1


def test_in_place_errors_are_clear_and_change_nothing():
    t = tl.tensor([1, 2, 3])
    with pytest.raises(TypeError, match=r"add_ on a tensor of dtype int64: the result cannot be written"):
        t += 0.5
    with pytest.raises(ValueError, match=r"add_ on a tensor of shape \(3,\):"):
        t += tl.ones(2, 3, dtype=tl.int64)
    with pytest.raises(ValueError, match="clamp needs at least one"):
        tl.ones(2).clamp_()
    with pytest.raises(TypeError, match="boolean mask"):
        tl.ones(2).masked_fill_(tl.tensor([1, 0]), 0.0)
    assert t.tolist() == [1, 2, 3] and t._version == 0


# ----------------------------------------------------------------------------- the graph's rules
def test_a_leaf_that_requires_grad_cannot_change_in_place_with_grad_on():
    w = tl.ones(3, requires_grad=True)
    for change in (lambda: w.add_(1), lambda: w.__setitem__(0, 2.0), lambda: w.zero_(), lambda: w.normal_()):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad is being used in an in-place"):
            change()
    with pytest.raises(RuntimeError, match="a view of a leaf tensor that requires grad"):
        w[0].add_(1)
    with tl.no_grad():
        w[0].add_(1)
    assert w.tolist() == [2, 1, 1] and w.requires_grad and w.is_leaf


def test_backward_refuses_an_array_changed_after_it_was_saved():
    """PyTorch's rule: mul saved b, exp saved its output; changing either makes backward raise, and nothing is
    accumulated."""
    a = tl.ones(3, requires_grad=True)
    b = a * 2
    c = b * b                                                         # saves b
    with tl.no_grad():
        b += 1
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation: input 0 .* saved by MulFunction"):
        c.sum().backward()
    assert a.grad is None
    y = a.exp()                                                       # saves its output
    with tl.no_grad():
        y[0] = 0.0
    with pytest.raises(RuntimeError, match=r"output 0 of ExpFunction, saved by ExpFunction"):
        y.sum().backward()
    z = a * 3.0
    h = z.view(3) * z                                                 # saves a view of z's memory
    with tl.no_grad():
        z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        h.sum().backward()
    idx = tl.tensor([0, 2])
    picked = a[idx]                                                   # backward reads idx
    idx[0] = 1
    with pytest.raises(RuntimeError, match="saved by GetItemFunction"):
        picked.sum().backward()
    assert a.grad is None


def test_a_change_backward_does_not_need_is_fine():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3.0
    c = b + 1.0                                                       # add saves nothing
    with tl.no_grad():
        b.zero_()
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3, 3])


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_in_place_ops_inside_the_graph_are_recorded(shape):
    """Each in-place op on a tensor in the graph, or with a value that requires grad, has the gradient of its
    out-of-place form (central differences of the whole function)."""
    x, w = leaf(shape, 1), leaf(shape, 2, 0.5, 2.0)

    def f(x, w):
        y = x * 1.0
        y += w
        y *= w
        y -= x
        y /= w
        y[0] = w[0] * 3.0
        y.masked_fill_(x.detach() > 1.0, 0.5)
        y.clamp_(-1.5, 1.5)
        z = tl.zeros(shape, dtype=tl.float64)
        z.copy_(y)
        return z ** 2
    assert tl.gradcheck(f, [x, w])


def test_functions_recorded_before_a_change_keep_the_tensor_as_it_was():
    """z used y before `y *= w`: backward through z sees the old y (2x), through y the new one (2x * w)."""
    x, w = leaf((3,), 1), leaf((3,), 2)
    y = x * 2.0
    z = y + 1.0
    y *= w
    (z.sum() + y.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * w.numpy())
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.numpy())
    assert tl.gradcheck(lambda x, w: (lambda y: (y + 1.0, y.mul_(w))[0] * 3.0 + y)(x * 2.0), [x, w])


def test_makemore_part_4s_manual_backprop_cells_work_as_written():
    """`dlogits = F.softmax(logits, 1); dlogits[range(n), Yb] -= 1; dlogits /= n` and the embedding loop
    `dC[ix] += demb[k, j]` with ix = Xb[k, j], in grad mode on tensors of the graph, as the notebook runs them."""
    tl.manual_seed(0)
    n, vocab, block, n_embd = 5, 7, 3, 4
    Xb, Yb = tl.tensor(np.random.default_rng(0).integers(0, vocab, (n, block))), tl.tensor([1, 0, 6, 2, 2])
    C = tl.randn(vocab, n_embd, requires_grad=True)
    W = tl.randn(block * n_embd, vocab, requires_grad=True)
    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    logits = embcat @ W
    loss = F.cross_entropy(logits, Yb)
    for t in (emb, embcat, logits):
        t.retain_grad()
    loss.backward()
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    assert dlogits.requires_grad                                      # it is in the graph, as in PyTorch
    np.testing.assert_allclose(dlogits.numpy(), logits.grad.numpy(), atol=1e-6)
    demb = (dlogits @ W.T).view(emb.shape)
    dC = tl.zeros_like(C)
    for k in range(Xb.shape[0]):
        for j in range(Xb.shape[1]):
            ix = Xb[k, j]
            dC[ix] += demb[k, j]
    np.testing.assert_allclose(dC.numpy(), C.grad.numpy(), atol=1e-6)
    assert (dC - C.grad).abs().max().item() < 1e-6
    assert dC.requires_grad and type(dC.creator).__name__ == "SetItemFunction"      # recorded, as in PyTorch


def test_a_change_through_an_index_view_reaches_its_base_and_its_other_views():
    x, w = leaf((3, 2), 1), leaf((2,), 2)
    y = x * 1.0
    y[1] += w                                                         # through a view (y[1]), as Python runs it
    assert tl.gradcheck(lambda x, w: (lambda y: (y[1].add_(w), y)[1])(x * 1.0) ** 2, [x, w])
    x.grad = w.grad = None
    row = y[2]
    y *= 2.0                                                          # row's values changed with y: its history too
    row.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [0, 0], [2, 2]])
    np.testing.assert_array_equal(w.grad.numpy(), [0, 0])                     # reached, with zeros, as in PyTorch


def test_changes_in_the_graph_that_are_not_supported_say_so():
    x = leaf((2, 3), 1)
    y = x * 1.0
    with pytest.raises(RuntimeError, match=r"a view made by PermuteFunction is not supported .* clone\(\) it first"):
        y.transpose(0, 1).mul_(tl.ones(3, 2, dtype=tl.float64, requires_grad=True))
    with tl.no_grad():
        view = y[0]
    with pytest.raises(RuntimeError, match="a view made under no_grad is being changed in place with grad mode on"):
        view.add_(1.0)
    with pytest.raises(RuntimeError, match="cannot change a tensor's shape"):
        y += tl.ones(4, 2, 3, dtype=tl.float64, requires_grad=True)
    with pytest.raises(TypeError, match="dtype float64, which cannot be written into a tensor of dtype int64"):
        tl.zeros(3, dtype=tl.int64).add_(leaf((3,), 2))


def test_parameters_in_one_optimizer_buffer_are_told_apart():
    """After a step, AdamW's parameters are views of one flat buffer: changing the bias between forward and
    backward does not touch the weight that LinearFunction saved, so backward runs."""
    layer = nn.Linear(3, 2)
    optimizer = tl.optim.AdamW(layer.parameters(), lr=0.1)
    x = tl.randn(4, 3)
    layer(x).sum().backward()
    optimizer.step()
    assert layer.bias.data.base is layer.weight.data.base is not None
    y = layer(x)
    with tl.no_grad():
        layer.bias += 1.0
    optimizer.zero_grad()
    y.sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-6)
    y = layer(x)
    with tl.no_grad():
        layer.weight *= 2.0
    with pytest.raises(RuntimeError, match="saved by LinearFunction"):
        y.sum().backward()


def test_a_tensor_with_views_pickles_without_its_bookkeeping():
    import pickle
    w = nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    row = w[0]
    with tl.no_grad():
        w += 1.0
    again = pickle.loads(pickle.dumps(w))
    assert isinstance(again, nn.Parameter) and again.requires_grad and again._version == 0
    np.testing.assert_array_equal(again.numpy(), w.numpy())
    assert row._version == w._version == 1
