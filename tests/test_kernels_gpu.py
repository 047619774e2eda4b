"""Fused CUDA kernels against the reference path on a real GPU (skipped without CuPy and a GPU)."""
import os

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda.mode import fused_mode

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not tl.cuda_available(), reason="no CuPy/GPU on this machine")]
ATOL = 2e-4   # float32, sums over up to T=1030 terms in a different order


@pytest.fixture(autouse=True)
def full_float32_matmuls():
    """The reference path's matmuls in full float32 (TF32, the GPU default, rounds their inputs to 10 bits), so
    the kernels are compared with exact products."""
    previous = os.environ.get("CUPY_TF32", "1") != "0"
    tl.backend.set_tf32(False)
    yield
    tl.backend.set_tf32(previous)


def run(mode, arrays, fn):
    with fused_mode(mode):
        ts = [tl.tensor(a, device="cuda", requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward(tl.tensor(np.random.default_rng(0).standard_normal(out.shape).astype(np.float32),
                               device="cuda").data)
        return [out.numpy()] + [t.grad.numpy() for t in ts], type(out.creator).__name__


@pytest.mark.parametrize("case", range(50))
def test_flash_attention_matches_reference_on_random_shapes(case):
    rng = np.random.default_rng(case)
    B, H = rng.integers(1, 9, 2)
    T = int(rng.choice([1, 2, 31, 64, 65, 127, 256, 300, 1030])) if case % 2 else int(rng.integers(1, 1031))
    D = int(rng.choice([32, 64, 128]))
    causal = bool(case % 3)
    arrays = [rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3)]
    fn = (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    fused, name = run("1", arrays, fn)
    reference, ref_name = run("0", arrays, fn)
    assert name == "FlashAttentionFunction" and ref_name == "ScaledDotProductAttentionFunction"
    for got, want in zip(fused, reference):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-3)


def test_softmax_and_cross_entropy_match_reference():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((300, 65)).astype(np.float32) * 4
    targets = tl.tensor(np.where(rng.random(300) < 0.1, -1, rng.integers(0, 65, 300)), device="cuda")
    for fn in (lambda z: F.softmax(z, dim=-1), lambda z: F.cross_entropy(z, targets, ignore_index=-1)):
        fused, _ = run("1", [logits], fn)
        reference, _ = run("0", [logits], fn)
        for got, want in zip(fused, reference):
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_dropout_kernel_matches_its_mirror_and_keeps_no_mask():
    from tensorlite.cuda import mirror
    x = np.random.default_rng(2).standard_normal((64, 257, 3)).astype(np.float32) + 3
    t = tl.tensor(x, device="cuda", requires_grad=True)
    out = F.dropout(t, p=0.2)
    assert type(out.creator).__name__ == "FusedDropoutFunction" and out.creator.saved == ()
    want = mirror.dropout_mul(x, 0.2, out.creator.seed)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    out.backward(tl.tensor(np.ones_like(x), device="cuda").data)
    np.testing.assert_allclose(t.grad.numpy(), mirror.dropout_mul(np.ones_like(x), 0.2, out.creator.seed),
                               rtol=1e-6)


def test_dropout_add_kernel_matches_its_mirror():
    from tensorlite.cuda import mirror
    rng = np.random.default_rng(3)
    x, r = (rng.standard_normal((64, 257, 3)).astype(np.float32) for _ in range(2))
    tx, tr = (tl.tensor(a, device="cuda", requires_grad=True) for a in (x, r))
    out = F.dropout_add(tx, tr, p=0.2)
    assert type(out.creator).__name__ == "FusedDropoutAddFunction" and out.creator.saved == ()
    np.testing.assert_allclose(out.numpy(), mirror.dropout_add(x, r, 0.2, out.creator.seed), rtol=1e-6, atol=1e-6)
    out.backward(tl.tensor(np.ones_like(x), device="cuda").data)
    np.testing.assert_allclose(tx.grad.numpy(), mirror.dropout_mul(np.ones_like(x), 0.2, out.creator.seed),
                               rtol=1e-6)
    np.testing.assert_array_equal(tr.grad.numpy(), np.ones_like(x))


def test_embedding_backward_kernel_matches_reference_and_repeats_bit_for_bit():
    rng = np.random.default_rng(4)
    ids = tl.tensor(np.where(rng.random((64, 256)) < 0.15, 1, rng.integers(0, 65, (64, 256))), device="cuda")
    weight = rng.standard_normal((65, 384)).astype(np.float32)
    dy = tl.tensor(rng.standard_normal((64, 256, 384)).astype(np.float32), device="cuda").data
    grads = {}
    for mode in ("0", "1", "1 again"):
        with fused_mode(mode.split()[0]):
            w = tl.tensor(weight, device="cuda", requires_grad=True)
            F.embedding(ids, w).backward(dy)
            grads[mode] = w.grad.numpy()
    np.testing.assert_allclose(grads["1"], grads["0"], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(grads["1"], grads["1 again"])           # no atomics: the same bits every run


def test_layernorm_kernels_match_reference_and_repeat_bit_for_bit():
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((64 * 256 + 7, 384)).astype(np.float32), rng.standard_normal(384).astype(np.float32),
              rng.standard_normal(384).astype(np.float32)]
    fn = (lambda x, w, b: F.layer_norm(x, (384,), w, b))
    fused, name = run("1", arrays, fn)
    again, _ = run("1", arrays, fn)
    reference, _ = run("0", arrays, fn)
    assert name == "FusedLayerNormFunction"
    for got, want, repeat in zip(fused, reference, again):
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)
        np.testing.assert_array_equal(got, repeat)                             # no atomics: the same bits


def test_gelu_kernels_match_reference():
    x = (np.random.default_rng(6).standard_normal((4096, 1536)) * 3).astype(np.float32)
    fused, name = run("1", [x], lambda t: F.gelu(t, approximate="tanh"))
    reference, _ = run("0", [x], lambda t: F.gelu(t, approximate="tanh"))
    assert name == "FusedGELUFunction"
    for got, want in zip(fused, reference):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_adamw_kernel_matches_reference():
    import cupy
    shapes = [(384, 1536), (1536,), (65, 384)]
    results = {}
    for mode in ("1", "0"):
        with fused_mode(mode):
            params = [tl.tensor(np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s), device="cuda",
                                requires_grad=True) for s in shapes]
            opt = tl.optim.AdamW(params, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
            for step in range(3):
                for i, p in enumerate(params):
                    p.grad = tl.tensor(cupy.cos(p.data + step + i))
                opt.step()
            results[mode] = [p.numpy() for p in params]
    for got, want in zip(results["1"], results["0"]):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_gpt_step_through_the_kernels_matches_the_reference_path():
    """Every fused kernel at once, in a GPT's forward and backward (dropout off: its masks differ by design)."""
    from gpt import GPT, GPTConfig
    idx, targets = np.random.default_rng(7).integers(0, 65, (2, 8, 128))
    results = {}
    for mode in ("1", "0"):
        tl.manual_seed(0)
        model = GPT(GPTConfig(block_size=128, vocab_size=65, n_layer=2, n_head=4, n_embd=256)).to("cuda")
        with fused_mode(mode):
            _, loss = model(tl.tensor(idx, device="cuda"), tl.tensor(targets, device="cuda"))
            loss.backward()
        results[mode] = (loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()})
    (loss_fused, grads_fused), (loss_ref, grads_ref) = results["1"], results["0"]
    assert abs(loss_fused - loss_ref) < 1e-4
    for name, g in grads_ref.items():
        np.testing.assert_allclose(grads_fused[name], g, atol=1e-4, rtol=1e-3, err_msg=name)


def test_adamw_keeps_training_a_model_moved_to_the_gpu_after_a_step():
    """Module.to('cuda') after a step gives the parameters new arrays: the optimizer re-flattens onto them and
    moves its moments along (the fused kernel then updates the GPU arrays), as a CPU twin does the same steps."""
    x = np.random.default_rng(7).standard_normal((16, 64)).astype(np.float32)
    models = []
    for device in ("cuda", "cpu"):
        tl.manual_seed(0)
        model = tl.nn.Linear(64, 8)
        opt = tl.optim.AdamW(model.parameters(), lr=0.05)
        for step in range(3):
            if step == 1:
                model.to(device)
            opt.zero_grad()
            (model(tl.tensor(x, device=model.weight.device)) ** 2).mean().backward()
            opt.step()
        models.append((model, opt))
    (gpu, gpu_opt), (cpu, _) = models
    assert gpu.weight.device == "cuda" and tl.backend.device_of(gpu_opt.state[id(gpu.weight)]["exp_avg"]) == "cuda"
    for p, q in zip(gpu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), atol=1e-5)   # frozen after the move, it would be 2 steps off
