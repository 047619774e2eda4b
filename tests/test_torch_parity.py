"""The same snippet run in PyTorch and in tensorlite, values and gradients compared: PyTorch's spelling means
PyTorch's meaning. Skips without torch (never a dependency: `pip install torch==2.13.0`, a CPU build)."""
import numpy as np
import pytest

import tensorlite as tl

torch = pytest.importorskip("torch")


def _numpy(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def run(lib, snippet, arrays):
    """snippet(lib, F, *tensors) with lib torch or tensorlite, the float arrays as leaves that require grad.
    Returns the outputs as arrays and the leaves' gradients of sum(output * R) over the float outputs, R fixed."""
    F = torch.nn.functional if lib is torch else tl.functional
    leaves = [lib.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = snippet(lib, F, *leaves)
    outs = tuple(out) if isinstance(out, tuple) else (out,)
    loss = sum((o * lib.tensor(np.random.default_rng(i).standard_normal(o.shape))).sum()
               for i, o in enumerate(outs) if o.dtype in (torch.float64, np.float64) and o.requires_grad)
    if not isinstance(loss, int):
        loss.backward()
    return [_numpy(o) for o in outs], [None if t.grad is None else _numpy(t.grad) for t in leaves]


def assert_same(snippet, *arrays):
    (theirs, their_grads), (ours, our_grads) = run(torch, snippet, arrays), run(tl, snippet, arrays)
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    for a, b in zip(their_grads, our_grads):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 5))
Y = rng.standard_normal((3, 4, 5))
M = rng.standard_normal((3, 4))
POSITIVE = rng.uniform(0.5, 3.0, (3, 4))


@pytest.mark.parametrize("snippet", [
    lambda lib, F, x: x.sum(0, keepdim=True), lambda lib, F, x: x.sum(dim=(0, 2)), lambda lib, F, x: x.mean(-1),
    lambda lib, F, x: x.sum(axis=1, keepdims=True), lambda lib, F, x: x.var(1),
    lambda lib, F, x: x.var(1, unbiased=False), lambda lib, F, x: x.std(0, keepdim=True),
    lambda lib, F, x: x.std(correction=0), lambda lib, F, x: x.std(), lambda lib, F, x: x.max(1),
    lambda lib, F, x: x.min(-1, keepdim=True), lambda lib, F, x: x.max(), lambda lib, F, x: x.amax(dim=(0, 1)),
    lambda lib, F, x: x.argmax(1), lambda lib, F, x: x.argmin(), lambda lib, F, x: x.argmax(-1, keepdim=True),
])
def test_reductions(snippet):
    assert_same(snippet, X)


def test_ties_share_or_take_the_gradient_as_in_pytorch():
    tied, other = np.round(X, 0), np.round(Y, 0)
    for snippet in (lambda lib, F, x: x.max(), lambda lib, F, x: x.max(1).values, lambda lib, F, x: x.amin(2)):
        assert_same(snippet, tied)
    for snippet in (lambda lib, F, x, y: lib.max(x, y), lambda lib, F, x, y: lib.minimum(x, y)):
        assert_same(snippet, tied, other)


@pytest.mark.parametrize("snippet", [
    lambda lib, F, x: x.transpose(1, 2), lambda lib, F, x: x.transpose(0, -1), lambda lib, F, x: x.permute(2, 0, 1),
    lambda lib, F, x: x.mT, lambda lib, F, x: x.flatten(1), lambda lib, F, x: x.view(-1, x.size(-1)),
    lambda lib, F, x: x.split(2, dim=2), lambda lib, F, x: x.chunk(2, dim=1), lambda lib, F, x: x.squeeze(0),
    lambda lib, F, x: x.unsqueeze(1).squeeze(1), lambda lib, F, x: lib.cat([x, x * 2], dim=1),
    lambda lib, F, x: lib.stack([x, x], dim=-1), lambda lib, F, x: x[:, [-1], :], lambda lib, F, x: x[0],
    lambda lib, F, x: x.transpose(1, 2).contiguous().view(3, 20), lambda lib, F, x: x.clone(),
    lambda lib, F, x: x.expand(2, 3, 4, 5),
])
def test_shapes(snippet):
    assert_same(snippet, X)


@pytest.mark.parametrize("snippet", [
    lambda lib, F, w: w.T, lambda lib, F, w: w.t(), lambda lib, F, w: w.transpose(0, 1),
    lambda lib, F, w: w.clamp(-0.5, 0.5), lambda lib, F, w: w.clamp(min=0.1), lambda lib, F, w: w.clip(max=0.0),
    lambda lib, F, w: F.softmax(w, 1), lambda lib, F, w: F.softmax(w, dim=-1), lambda lib, F, w: F.log_softmax(w, 0),
    lambda lib, F, w: F.gelu(w), lambda lib, F, w: F.gelu(w, approximate="tanh"),
    lambda lib, F, w: lib.nn.GELU()(w), lambda lib, F, w: lib.nn.LayerNorm(4, elementwise_affine=False)(w),
])
def test_matrices_and_functional(snippet):
    assert_same(snippet, M)


def test_an_integer_operand_takes_the_floating_dtype():
    assert_same(lambda lib, F, t, x: (t * 0.5, t * x, x + t, lib.where(t > 1, x, 0.0)), np.array([1, 2, 3]),
                rng.standard_normal(3))


def test_logs():
    assert_same(lambda lib, F, p: p.log10() + p.log2() * 2, POSITIVE)


@pytest.mark.parametrize("snippet", [
    lambda lib, F, z, t: F.cross_entropy(z, t), lambda lib, F, z, t: F.cross_entropy(z, t, reduction="sum"),
    lambda lib, F, z, t: F.cross_entropy(z, t, reduction="none"),
    lambda lib, F, z, t: F.cross_entropy(z.view(2, 3, 5).transpose(1, 2), t.view(2, 3)),   # (N, C, d): dim 1
])
def test_cross_entropy_with_pytorchs_ignore_index(snippet):
    targets = np.array([1, -100, 4, 0, -100, 2])
    assert_same(snippet, rng.standard_normal((6, 5)), targets)
    assert_same(lambda lib, F, z, t: F.cross_entropy(z, t, ignore_index=-1),
                rng.standard_normal((6, 5)), np.where(targets == -100, -1, targets))


def test_layer_norm_as_nanogpt_calls_it():
    x, w, b = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    assert_same(lambda lib, F, x, w, b: F.layer_norm(x, w.shape, w, b, 1e-5), x, w, b)
    w2, b2 = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    assert_same(lambda lib, F, x, w, b: F.layer_norm(x, (3, 5), w, b), x, w2, b2)


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float", "float_with_grad"])
def test_scaled_dot_product_attention(mask):
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    allowed = rng.random((4, 4)) < 0.6
    allowed[:, 0] = True
    additive = rng.standard_normal((3, 1, 4))
    snippets = {
        "none": lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3),
        "causal": lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "bool": lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, lib.tensor(allowed)),
        "float": lambda lib, F, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=lib.tensor(additive)),
        "float_with_grad": lambda lib, F, q, k, v, m: F.scaled_dot_product_attention(q, k, v, m)}
    assert_same(snippets[mask], q, k, v, *((additive,) if mask == "float_with_grad" else ()))


def test_nanogpts_attention_written_out():
    """nanoGPT's CausalSelfAttention without flash: view, transpose(1, 2), k.transpose(-2, -1), k.size(-1),
    masked_fill of the bias buffer, F.softmax(att, dim=-1), y.transpose(1, 2).contiguous().view(B, T, C)."""
    def attention(lib, F, x, w):
        B, T, C = x.size()
        q, k, v = (x @ w.T).split(C, dim=2)
        k, q, v = (t.view(B, T, 2, C // 2).transpose(1, 2) for t in (k, q, v))
        bias = lib.tensor(np.tril(np.ones((T, T)))).view(1, 1, T, T)
        att = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(k.size(-1)))
        att = att.masked_fill(bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        return (att @ v).transpose(1, 2).contiguous().view(B, T, C)
    assert_same(attention, rng.standard_normal((2, 4, 6)), rng.standard_normal((18, 6)))


def dlogits(lib, F, logits, Yb):
    """makemore part 4, in grad mode on a tensor of the graph."""
    n = logits.shape[0]
    dlogits = F.softmax(logits * 1.0, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    return dlogits


def through_an_index_view(lib, F, x, _):
    h = x * 2.0
    h[0] += x[1]
    return h


def a_view_of_a_tensor_changed_after(lib, F, x, _):
    h = x * 1.0
    row = h[1]
    h *= 3.0
    return row


def clamp_and_masked_fill(lib, F, x, _):
    h = x * 1.0
    h.clamp_(-0.5, 0.5)
    return h.masked_fill_(h > 0.4, 2.0)


@pytest.mark.parametrize("snippet", [through_an_index_view, a_view_of_a_tensor_changed_after, clamp_and_masked_fill])
def test_in_place_inside_the_graph(snippet):
    assert_same(snippet, rng.standard_normal((4, 5)), np.array([1, 0, 4, 2]))


def test_makemores_dlogits_cell_and_why_its_backward_fails_in_both():
    """The cell's values agree; a backward through it would read the softmax output it changed: both refuse."""
    logits, Yb = rng.standard_normal((4, 5)), np.array([1, 0, 4, 2])
    results = []
    for lib, F in ((torch, torch.nn.functional), (tl, tl.functional)):
        out = dlogits(lib, F, lib.tensor(logits, requires_grad=True), lib.tensor(Yb))
        results.append(_numpy(out))
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place operation"):
            out.sum().backward()
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)


def test_makemores_embedding_backward_loop():
    """dC = zeros_like(C); dC[ix] += demb[k, j] with ix = Xb[k, j], demb in the graph."""
    Xb = np.array([[0, 2], [2, 1], [3, 2]])

    def loop(lib, F, C, demb, xb):
        dC = lib.zeros_like(C)
        for k in range(xb.shape[0]):
            for j in range(xb.shape[1]):
                ix = xb[k, j]
                dC[ix] += demb[k, j] * 2.0
        return dC
    assert_same(loop, rng.standard_normal((4, 3)), rng.standard_normal((3, 2, 3)), Xb)


def test_the_same_errors():
    for lib in (torch, tl):
        a = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf"):
            a += 1
        b = a * 2
        c = b * b
        with lib.no_grad():
            b += 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place operation"):
            c.sum().backward()


def test_formatting_and_indexing():
    for lib in (torch, tl):
        t = lib.tensor(1.23456)
        assert f"{t:.3f}" == "1.235"
        assert [5, 6, 7][lib.tensor([[2]])[0, 0]] == 7
        assert lib.zeros(2, 3).size() == (2, 3) and lib.zeros(2, 3).size(1) == 3 and lib.zeros(2, 3).numel() == 6
