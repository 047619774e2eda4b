"""The NumPy mirror of flash attention (same tiles, online softmax, recompute backward) against the naive formula."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import mirror


def naive(q, k, v, causal, scale, keep=None):
    """O = (softmax(Q K^T scale + mask) * keep) V, and the gradients of sum(O * dO) by tensorlite's reference."""
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        T = q.shape[-2]
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p * keep if keep is not None else p) @ v


def reference_grads(q, k, v, do, causal):
    ts = [tl.tensor(a.astype(np.float64), requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ts, is_causal=causal)
    out.backward(do.astype(np.float64))
    return [t.grad for t in ts]


@pytest.mark.parametrize("T", [1, 7, 33, 65, 100])
@pytest.mark.parametrize("D", [8, 32])
@pytest.mark.parametrize("causal", [False, True])
def test_mirror_matches_naive_forward_and_gradients(T, D, causal):
    rng = np.random.default_rng(T * D)
    q, k, v, do = (rng.standard_normal((2, 3, T, D)).astype(np.float32) for _ in range(4))
    scale = 1 / np.sqrt(D)
    o, lse = mirror.flash_forward(q, k, v, causal)
    np.testing.assert_allclose(o, naive(q, k, v, causal, scale), atol=2e-5)
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    np.testing.assert_allclose(lse, np.log(np.exp(s).sum(-1)), atol=2e-5)
    grads = mirror.flash_backward(q, k, v, o, lse, do, causal)
    for got, want in zip(grads, reference_grads(q, k, v, do, causal)):
        np.testing.assert_allclose(got, want, atol=2e-4)


def test_mirror_dropout_matches_the_masked_formula():
    rng = np.random.default_rng(0)
    B, H, T, D, p, seed = 1, 2, 40, 8, 0.3, 1234
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3))
    keep = mirror.dropout_keep(p, seed, np.arange(B * H)[:, None, None], np.arange(T)[None, :, None],
                               np.arange(T)[None, None, :]).reshape(B, H, T, T)
    assert 0.6 < (keep > 0).mean() < 0.8
    o, _ = mirror.flash_forward(q, k, v, True, dropout_p=p, seed=seed)
    np.testing.assert_allclose(o, naive(q, k, v, True, 1 / np.sqrt(D), keep), atol=2e-5)


def test_dropout_hash_is_uniform_and_deterministic():
    u = mirror.dropout_uniform(7, 3, np.arange(200)[:, None], np.arange(200)[None, :])
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u, mirror.dropout_uniform(7, 3, np.arange(200)[:, None], np.arange(200)[None, :]))
