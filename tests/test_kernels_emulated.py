"""Every kernel in kernels/ executed by the CPU emulator (the real sources, the real launch specs) against NumPy."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import launch, mirror
from tensorlite.cuda.mode import fused_mode


def attention_inputs(B, H, T, D, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4)]


@pytest.mark.parametrize("T", [1, 7, 33, 65])
@pytest.mark.parametrize("D", [32, 64])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_kernels_match_the_mirror(T, D, causal):
    q, k, v, do = attention_inputs(2, 2, T, D, seed=T + D)
    scale, p, seed = 1 / np.sqrt(D), 0.0, 0
    o, lse = np.zeros_like(q), np.zeros(q.shape[:3], np.float32)
    launch.run(launch.flash_forward(q, k, v, o, lse, scale, causal, p, seed))
    o_ref, lse_ref = mirror.flash_forward(q, k, v, causal)
    np.testing.assert_allclose(o, o_ref, atol=1e-5)
    np.testing.assert_allclose(lse, lse_ref, atol=1e-5)
    dvec, dq, dk, dv = np.zeros_like(lse), np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    launch.run(launch.flash_backward_dot(do, o, dvec))
    launch.run(launch.flash_backward_dkdv(q, k, v, do, lse, dvec, dk, dv, scale, causal, p, seed))
    launch.run(launch.flash_backward_dq(q, k, v, do, lse, dvec, dq, scale, causal, p, seed))
    for got, want in zip((dq, dk, dv), mirror.flash_backward(q, k, v, o_ref, lse_ref, do, causal)):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_flash_attention_dropout_and_head_size_128():
    q, k, v, do = attention_inputs(1, 2, 40, 128, seed=3)
    scale, p, seed = 1 / np.sqrt(128), 0.25, 99
    o, lse = np.zeros_like(q), np.zeros(q.shape[:3], np.float32)
    launch.run(launch.flash_forward(q, k, v, o, lse, scale, True, p, seed))
    o_ref, lse_ref = mirror.flash_forward(q, k, v, True, dropout_p=p, seed=seed)
    np.testing.assert_allclose(o, o_ref, atol=1e-5)
    dvec, dq, dk, dv = np.zeros_like(lse), np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    launch.run(launch.flash_backward_dot(do, o, dvec))
    launch.run(launch.flash_backward_dkdv(q, k, v, do, lse, dvec, dk, dv, scale, True, p, seed))
    launch.run(launch.flash_backward_dq(q, k, v, do, lse, dvec, dq, scale, True, p, seed))
    for got, want in zip((dq, dk, dv), mirror.flash_backward(q, k, v, o_ref, lse_ref, do, True, dropout_p=p,
                                                             seed=seed)):
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 65), (5, 300)])
def test_softmax_kernels(rows, cols):
    rng = np.random.default_rng(cols)
    x, dy = (rng.standard_normal((rows, cols)).astype(np.float32) * 5 for _ in range(2))
    y, dx = np.zeros_like(x), np.zeros_like(x)
    launch.run(launch.softmax_forward(x, y))
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    launch.run(launch.softmax_backward(y, dy, dx))
    np.testing.assert_allclose(dx, y * (dy - (dy * y).sum(1, keepdims=True)), atol=1e-5)


def test_softmax_cross_entropy_kernel_with_ignore_index():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((9, 70)).astype(np.float32) * 3
    targets = rng.integers(0, 70, 9).astype(np.int64)
    targets[[2, 5]] = -1
    loss, dlogits = np.zeros(9, np.float32), np.zeros_like(logits)
    launch.run(launch.softmax_xent(logits, targets, loss, dlogits, -1))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    valid = targets != -1
    expected_loss = np.where(valid, -np.log(p[np.arange(9), np.maximum(targets, 0)]), 0)
    expected_grad = p.copy()
    expected_grad[np.arange(9)[valid], targets[valid]] -= 1
    expected_grad[~valid] = 0
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlogits, expected_grad, atol=1e-6)


def test_launch_specs_reject_what_would_read_out_of_bounds():
    q = np.zeros((1, 1, 8, 32), np.float32)
    with pytest.raises(TypeError, match="float32"):
        launch.flash_forward(q.astype(np.float64), q, q, q, np.zeros((1, 1, 8), np.float32), 1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match=r"argument 1 has shape \(1, 1, 7, 32\)"):
        launch.flash_forward(q, q[:, :, :7].copy(), q, q, np.zeros((1, 1, 8), np.float32), 1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match="D in"):
        launch.flash_forward(np.zeros((1, 1, 8, 48), np.float32), q, q, q, q, 1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        launch.softmax_forward(np.zeros((4, 6), np.float32)[:, ::2], np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="int64"):
        launch.softmax_xent(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), np.zeros(2, np.float32),
                            np.zeros((2, 3), np.float32), -1)


def test_functional_ops_route_through_the_emulated_kernels():
    """TENSORLITE_FUSED=emulate: F's ops run the kernels on CPU tensors and agree with the reference path."""
    q, k, v, _ = attention_inputs(1, 2, 20, 32, seed=5)
    logits = np.random.default_rng(1).standard_normal((6, 11)).astype(np.float32)
    targets = tl.tensor(np.array([1, 2, -1, 4, 0, 10]))
    results = {}
    for mode in ("0", "emulate"):
        with fused_mode(mode):
            ts = [tl.tensor(a, requires_grad=True) for a in (q, k, v, logits)]
            out = F.scaled_dot_product_attention(*ts[:3], is_causal=True)
            loss = (out * out).sum() + F.cross_entropy(ts[3], targets) + (F.softmax(ts[3]) ** 2).sum()
            loss.backward()
            results[mode] = [out.numpy(), loss.item()] + [t.grad for t in ts]
            names = {type(out.creator).__name__}
        if mode == "emulate":
            assert names == {"FlashAttention"}
    for ref, emu in zip(results["0"], results["emulate"]):
        np.testing.assert_allclose(emu, ref, rtol=1e-4, atol=1e-5)
