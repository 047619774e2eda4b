"""Every kernel in kernels/ executed by the CPU emulator (the real sources, the real launch specs) against NumPy,
under every one of emulator.STANDARD_SCHEDULES and the racecheck; and planted bugs it must report."""
import itertools
import os
import shutil

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import emulator, fused, launch, mirror
from tensorlite.cuda.mode import fused_mode
from tensorlite.cuda.sources import kernel_dir


def attention_inputs(B, H, T, D, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4)]


def one_schedule_per_case(cases):
    """(*case, schedule) for each case, the schedules taken in turn: the slowest tests run each case once, and each
    of their kernels still meets every schedule over its cases. The schedule goes to the `schedule` fixture."""
    return [(*case, str(s)) for case, s in zip(cases, itertools.cycle(emulator.STANDARD_SCHEDULES))]


@pytest.mark.parametrize("T,D,causal,schedule", one_schedule_per_case(itertools.product([1, 7, 33, 65], [32, 64],
                                                                                         [False, True])),
                         indirect=["schedule"])
def test_flash_attention_kernels_match_the_mirror(T, D, causal, schedule):
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


@pytest.mark.parametrize("T,D,causal,p,schedule", one_schedule_per_case([(130, 128, True, 0.0), (40, 128, True, 0.25),
                                                                         (97, 64, False, 0.1)]), indirect=["schedule"])
def test_flash_attention_dropout_and_several_row_blocks(T, D, causal, p, schedule):
    q, k, v, do = attention_inputs(1, 2, T, D, seed=3)
    scale, seed = 1 / np.sqrt(D), 99
    o, lse = np.zeros_like(q), np.zeros(q.shape[:3], np.float32)
    launch.run(launch.flash_forward(q, k, v, o, lse, scale, causal, p, seed))
    o_ref, lse_ref = mirror.flash_forward(q, k, v, causal, dropout_p=p, seed=seed)
    np.testing.assert_allclose(o, o_ref, atol=1e-5)
    dvec, dq, dk, dv = np.zeros_like(lse), np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    launch.run(launch.flash_backward_dot(do, o, dvec))
    launch.run(launch.flash_backward_dkdv(q, k, v, do, lse, dvec, dk, dv, scale, causal, p, seed))
    launch.run(launch.flash_backward_dq(q, k, v, do, lse, dvec, dq, scale, causal, p, seed))
    for got, want in zip((dq, dk, dv), mirror.flash_backward(q, k, v, o_ref, lse_ref, do, causal, dropout_p=p,
                                                             seed=seed)):
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 65), (5, 300)])
def test_softmax_kernels(rows, cols, schedule):
    rng = np.random.default_rng(cols)
    x, dy = (rng.standard_normal((rows, cols)).astype(np.float32) * 5 for _ in range(2))
    y, dx = np.zeros_like(x), np.zeros_like(x)
    launch.run(launch.softmax_forward(x, y))
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    launch.run(launch.softmax_backward(y, dy, dx))
    np.testing.assert_allclose(dx, y * (dy - (dy * y).sum(1, keepdims=True)), atol=1e-5)


def test_softmax_cross_entropy_kernel_with_ignore_index(schedule):
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
    targets[[0, 7]] = 70, -5       # out of range (F.cross_entropy reports it later): NaN rows, no stray reads
    launch.run(launch.softmax_xent(logits, targets, loss, dlogits, -1))
    assert np.isnan(loss[[0, 7]]).all() and np.isnan(dlogits[[0, 7]]).all()
    rest = [1, 3, 4, 6, 8]
    np.testing.assert_allclose(loss[rest], expected_loss[rest], rtol=1e-5, atol=1e-6)


def test_launch_specs_reject_what_would_read_out_of_bounds():
    q = np.zeros((1, 1, 8, 32), np.float32)
    with pytest.raises(TypeError, match="float32"):
        launch.flash_forward(q.astype(np.float64), q, q, q, np.zeros((1, 1, 8), np.float32), 1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match=r"argument 1 has shape \(1, 1, 7, 32\)"):
        launch.flash_forward(q, q[:, :, :7].copy(), q, q, np.zeros((1, 1, 8), np.float32), 1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match="D in"):
        launch.flash_forward(np.zeros((1, 1, 8, 48), np.float32), q, q, q, q, 1.0, True, 0.0, 0)
    many_heads = np.zeros((65536, 1, 1, 32), np.float32)
    with pytest.raises(ValueError, match="batch \\* heads = 65536"):
        launch.flash_forward(many_heads, many_heads, many_heads, many_heads, np.zeros((65536, 1, 1), np.float32),
                             1.0, True, 0.0, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        launch.softmax_forward(np.zeros((4, 6), np.float32)[:, ::2], np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        launch.dropout_mul(np.zeros(3, np.float32), np.zeros(3, np.float32), 1.0, 0)
    with pytest.raises(ValueError, match="int64"):
        launch.softmax_xent(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), np.zeros(2, np.float32),
                            np.zeros((2, 3), np.float32), -1)


def test_functional_ops_route_through_the_emulated_kernels(schedule):
    """TENSORLITE_FUSED=emulate: F's ops run the kernels on CPU tensors and agree with the reference path."""
    q, k, v, _ = attention_inputs(1, 2, 20, 32, seed=5)
    logits = np.random.default_rng(1).standard_normal((6, 11)).astype(np.float32)
    targets = tl.tensor(np.array([1, 2, -1, 4, 0, 10]))
    results = {}
    for mode in ("0", "emulate"):
        with fused_mode(mode):
            ts = [tl.tensor(a, requires_grad=True) for a in (q, k, v, logits)]
            out = F.scaled_dot_product_attention(*ts[:3], is_causal=True)
            loss = (out * out).sum() + F.cross_entropy(ts[3], targets, ignore_index=-1) + \
                (F.softmax(ts[3], dim=-1) ** 2).sum()
            loss.backward()
            results[mode] = [out.numpy(), loss.item()] + [t.grad for t in ts]
            names = {type(out.creator).__name__}
        if mode == "emulate":
            assert names == {"FlashAttentionFunction"}
    for ref, emu in zip(results["0"], results["emulate"]):
        np.testing.assert_allclose(emu, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows,cols,bias", [(5, 1, True), (5, 37, False), (70, 130, True)])
def test_layernorm_kernels(rows, cols, bias, schedule):
    rng = np.random.default_rng(cols)
    x, dy = (rng.standard_normal((rows, cols)).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(cols).astype(np.float32) for _ in range(2))
    y, mean, rstd = np.zeros_like(x), np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    launch.run(launch.layernorm_forward(x, w, b if bias else None, y, mean, rstd, 1e-5))
    ts = [tl.tensor(a, requires_grad=True) for a in (x, w, b)]
    with fused_mode("0"):
        ref = F.layer_norm(ts[0], (cols,), ts[1], ts[2] if bias else None)
        ref.backward(dy)
    np.testing.assert_allclose(y, ref.numpy(), atol=2e-5)
    blocks = launch.layernorm_backward_blocks(rows)                           # 32 rows each, the last short
    dx, dw_partial, db_partial = np.zeros_like(x), np.full((blocks, cols), np.nan, np.float32), \
        np.full((blocks, cols), np.nan, np.float32)
    launch.run(launch.layernorm_backward(x, w, mean, rstd, dy, dx, dw_partial, db_partial))
    np.testing.assert_allclose(dx, ts[0].grad, atol=2e-4)
    np.testing.assert_allclose(dw_partial.sum(axis=0), ts[1].grad, atol=1e-4)
    np.testing.assert_allclose(db_partial.sum(axis=0), dy.sum(axis=0), atol=1e-4)
    np.testing.assert_allclose(db_partial[-1], dy[32 * (blocks - 1):].sum(axis=0), atol=1e-5)   # its rows only


def test_gelu_kernels_any_size(schedule):
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 3
    dy = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    y, dx = np.zeros_like(x), np.zeros_like(x)
    launch.run(launch.gelu_forward(x, y))
    launch.run(launch.gelu_backward(x, dy, dx))
    t = tl.tensor(x, requires_grad=True)
    with fused_mode("0"):
        ref = F.gelu(t, approximate="tanh")
        ref.backward(dy)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(dx, t.grad, atol=1e-5)


@pytest.mark.parametrize("shape,p", [((1,), 0.5), ((7, 33), 0.1), ((3, 5, 257), 0.5)])
def test_dropout_kernel_matches_the_mirror_any_size(shape, p, schedule):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) + 3      # never 0: zeros are dropped
    y = np.zeros_like(x)
    launch.run(launch.dropout_mul(x, y, p, 1234))
    want = mirror.dropout_mul(x, p, 1234)
    np.testing.assert_array_equal(y == 0, want == 0)
    np.testing.assert_allclose(y, want, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (3, 5, 257)])
def test_dropout_add_kernel_matches_the_mirror_any_size(shape, schedule):
    rng = np.random.default_rng(1)
    x, residual = rng.standard_normal(shape).astype(np.float32) + 3, rng.standard_normal(shape).astype(np.float32)
    y = np.zeros_like(x)
    launch.run(launch.dropout_add(x, residual, y, 0.3, 99))
    np.testing.assert_array_equal(y, mirror.dropout_add(x, residual, 0.3, 99))
    dropped = np.zeros_like(x)
    launch.run(launch.dropout_mul(x, dropped, 0.3, 99))
    np.testing.assert_array_equal(y == residual, dropped == 0)                # dropout_mul's mask, same seed


def test_dropout_mirror_keeps_one_minus_p_and_seeds_differ():
    x = np.ones(200_000, np.float32)
    masks = [mirror.dropout_mul(x, 0.2, seed) for seed in (1, 2)]
    for mask in masks:
        assert abs((mask > 0).mean() - 0.8) < 0.01 and np.allclose(mask[mask > 0], 1.25)
    assert 0.6 < ((masks[0] > 0) == (masks[1] > 0)).mean() < 0.74     # independent: 0.8^2 + 0.2^2 = 0.68


def test_fused_dropout_regenerates_its_mask_in_backward(schedule):
    """TENSORLITE_FUSED=emulate: F.dropout runs kernels/dropout.cu; backward multiplies by the same mask, and
    the same manual_seed gives the same mask."""
    x = np.random.default_rng(1).standard_normal((4, 50)).astype(np.float32) + 3
    outs = []
    with fused_mode("emulate"):
        for _ in range(2):
            tl.manual_seed(3)
            t = tl.tensor(x, requires_grad=True)
            out = F.dropout(t, p=0.3)
            assert type(out.creator).__name__ == "FusedDropoutFunction" and out.creator.saved == ()   # no mask kept
            out.backward(np.full(x.shape, 2.0, np.float32))
            np.testing.assert_allclose(t.grad, np.where(out.numpy() != 0, 2 / 0.7, 0), rtol=1e-6)
            outs.append(out.numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert 0.5 < (outs[0] != 0).mean() < 0.9


def test_fused_dropout_add_keeps_no_mask_and_the_model_adds_its_residuals_itself(schedule):
    """TENSORLITE_FUSED=emulate: F.dropout_add is one kernel with dropout's mask (nothing saved), gradients
    dropout's for x and unchanged for the residual. A GPT block does not use it: x + dropout(branch) is a plain
    add of the dropout kernel's output."""
    rng = np.random.default_rng(2)
    x, residual = rng.standard_normal((4, 50)).astype(np.float32) + 3, rng.standard_normal((4, 50)).astype(np.float32)
    with fused_mode("emulate"):
        tl.manual_seed(5)
        dropped = F.dropout(tl.tensor(x), p=0.3).numpy()
        tl.manual_seed(5)
        tx, tr = tl.tensor(x, requires_grad=True), tl.tensor(residual, requires_grad=True)
        out = F.dropout_add(tx, tr, p=0.3)
        assert type(out.creator).__name__ == "FusedDropoutAddFunction" and out.creator.saved == ()
        np.testing.assert_allclose(out.numpy(), residual + dropped, rtol=1e-6)
        out.backward(np.full(x.shape, 2.0, np.float32))
        np.testing.assert_allclose(tx.grad, np.where(dropped != 0, 2 / 0.7, 0), rtol=1e-6)
        np.testing.assert_array_equal(tr.grad, np.full(x.shape, 2.0, np.float32))

        from gpt import GPT, GPTConfig
        model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=64, dropout=0.1))
        block = model.transformer.h[0]
        h = block(tl.tensor(rng.standard_normal((2, 8, 64)).astype(np.float32)))
        assert type(h.creator).__name__ == "AddFunction"                      # x + mlp(ln_2(x))
        branch = h.creator.inputs[1]
        assert type(branch.creator).__name__ == "FusedDropoutFunction"        # the MLP's dropout, fused


@pytest.mark.parametrize("n,cols", [(1, 1), (61, 40), (300, 65)])
def test_embedding_backward_kernel_matches_the_mirror(n, cols, schedule):
    """Frequent ids (runs longer than the block's 8 warps), table rows no id points at (zeros), columns that are
    not a multiple of 32, and ids outside the table (skipped, never read out of bounds)."""
    rng = np.random.default_rng(n)
    ids = np.where(rng.random(n) < 0.5, 2, rng.integers(-1, 10, n)).astype(np.int64)    # -1 and 9: outside
    dy = rng.standard_normal((n, cols)).astype(np.float32)
    num_rows = 9
    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], np.arange(num_rows + 1))
    dweight = np.full((num_rows, cols), np.nan, np.float32)
    launch.run(launch.embedding_backward(dy, order, starts, dweight))
    want = mirror.embedding_backward(dy, ids, num_rows)
    np.testing.assert_array_equal(dweight, want)                   # the same additions in the same order
    naive = np.zeros((num_rows, cols))
    inside = (ids >= 0) & (ids < num_rows)
    np.add.at(naive, ids[inside], dy[inside])
    np.testing.assert_allclose(want, naive, rtol=1e-5, atol=1e-5)


def test_embedding_backward_runs_through_the_kernel_when_fused(schedule):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (3, 20))
    weight = rng.standard_normal((7, 33)).astype(np.float32)
    grads = {}
    for mode in ("0", "emulate"):
        with fused_mode(mode):
            w = tl.tensor(weight, requires_grad=True)
            out = F.embedding(tl.tensor(ids), w)
            assert type(out.creator).__name__ == ("EmbeddingFunction" if mode == "0" else "FusedEmbeddingFunction")
            (out * tl.tensor(np.arange(33, dtype=np.float32))).sum().backward()
            grads[mode] = w.grad
    np.testing.assert_allclose(grads["emulate"], grads["0"], rtol=1e-5)
    with fused_mode("emulate"):   # more table rows than positions: the reference scatter, no kernel launch
        assert fused.embedding(ids.reshape(-1)[:60], tl.tensor(np.ones((61, 33), np.float32))) is None
        assert fused.embedding(ids.reshape(-1)[:60], tl.tensor(np.ones((60, 33), np.float32))) is not None
    with pytest.raises(ValueError, match="int64"):
        launch.embedding_backward(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), np.zeros(3, np.int64),
                                  np.zeros((2, 3), np.float32))


def test_fused_adamw_matches_the_reference_optimizer(schedule):
    rng = np.random.default_rng(0)
    shapes = [(3, 5), (7,), (2, 2, 2)]
    results = {}
    for mode in ("0", "emulate"):
        with fused_mode(mode):
            params = [tl.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
            for p, s in zip(params, shapes):
                p.data[...] = np.arange(np.prod(s), dtype=np.float32).reshape(s) / 10
            opt = tl.optim.AdamW(params, lr=0.1, betas=(0.9, 0.95), weight_decay=0.1)
            for step in range(3):
                for i, p in enumerate(params):
                    p.grad = tl.tensor(np.cos(p.data + step + i).astype(np.float32))
                opt.step()
            results[mode] = ([p.numpy().copy() for p in params], opt.state_dict())
    for got, want in zip(results["emulate"][0], results["0"][0]):
        np.testing.assert_allclose(got, want, atol=1e-6)
    state = results["emulate"][1]["state"]
    assert state[0]["step"] == 3 and state[1]["exp_avg"].shape == (7,)


@pytest.mark.parametrize("mode", ["0", "emulate"])
def test_attention_dropout_is_the_masked_formula_scaled_by_1_over_1_minus_p(mode):
    """O = (softmax(Q K^T * scale + causal mask) * keep / (1 - p)) V for the mask the op drew, on the reference path
    and through the flash kernel (a gradcheck cannot see a missing 1 / (1 - p): it is self-consistent with any
    scale). The mask comes from a second call with the same seed and V = I, whose output is the weights."""
    B, H, T, D, p = 1, 2, 32, 32, 0.3
    q, k, v, _ = attention_inputs(B, H, T, D, seed=7)
    identity = np.broadcast_to(np.eye(T, dtype=np.float32), (B, H, T, T)).copy()
    outs = []
    with fused_mode(mode):
        for values in (v, identity):
            tl.manual_seed(11)                                     # the same draws, so the same mask
            query = tl.tensor(q, requires_grad=True)                 # a graph, so the kernel's seed can be read
            outs.append(F.scaled_dot_product_attention(query, tl.tensor(k), tl.tensor(values), is_causal=True,
                                                       dropout_p=p))
    out, weights = (o.numpy() for o in outs)
    visible = np.tril(np.ones((T, T), bool))
    s = np.where(visible, q @ k.transpose(0, 1, 3, 2) / np.sqrt(D), -np.inf)
    probs = np.exp(s - s.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    keep = weights != 0
    assert 0.6 < keep[:, :, visible].mean() < 0.8                 # about 1 - p of the visible weights survive
    if mode == "emulate":                                          # the kernel's hash, reproduced by the mirror
        bh, i, j = np.arange(B * H)[:, None, None], np.arange(T)[None, :, None], np.arange(T)[None, None, :]
        hashed = mirror.dropout_keep(p, outs[0].creator.seed, bh, i, j).reshape(B, H, T, T) > 0
        np.testing.assert_array_equal(keep, hashed & visible)
    np.testing.assert_allclose(weights, probs * keep / (1 - p), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, (probs * keep / (1 - p)) @ v, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- planted bugs
# Each is made in a copy of kernels/ (never in kernels/ itself) by deleting one barrier; the racecheck must report
# it under every schedule, naming the array, the index and both warps.
PLANTED = {
    # issue 23's bug: a fast warp's lane 0 writes scratch[w] for the next reduction before slow warps read this one
    "block_reduce": ("common.cuh", "    total = is_max ? warp_max(total) : warp_sum(total);\n    __syncthreads();\n",
                     "    total = is_max ? warp_max(total) : warp_sum(total);\n"),
    # the next K/V tile overwrites the one other warps still read
    "flash_tile": ("flash_attention.cu", "        __syncthreads();\n    }\n    if (active) {\n",
                   "    }\n    if (active) {\n"),
    # warp 0 adds up the other warps' partial sums before they have written them
    "embedding": ("embedding.cu", "    partial[warp][lane] = sum;\n    __syncthreads();\n",
                  "    partial[warp][lane] = sum;\n"),
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """name -> a copy of kernels/ with PLANTED[name]'s barrier deleted (built once per module)."""
    copies = {}
    for name, (source, correct, buggy) in PLANTED.items():
        directory = tmp_path_factory.mktemp(name)
        for f in os.listdir(kernel_dir()):
            if f.endswith((".cu", ".cuh")):
                shutil.copy(os.path.join(kernel_dir(), f), directory)
        text = (directory / source).read_text()
        assert text.count(correct) == 1, f"{source} changed: the planted bug {name!r} no longer applies"
        (directory / source).write_text(text.replace(correct, buggy))
        copies[name] = str(directory)
    return copies


def run_planted(directory, spec):
    emulator.launch(spec.source, spec.kernel, spec.grid, spec.block, spec.shared_mem, spec.args, kernel_dir=directory)


def test_block_reduce_without_its_second_barrier_is_a_reported_race(planted, schedule):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 300)).astype(np.float32)
    w, y, mean, rstd = np.ones(300, np.float32), np.zeros_like(x), np.zeros(3, np.float32), np.zeros(3, np.float32)
    for spec in (launch.softmax_forward(x, y), launch.layernorm_forward(x, w, w, y, mean, rstd, 1e-5)):
        with pytest.raises(emulator.SharedMemoryRace, match=rf"kernel {spec.kernel}: shared-memory race on "
                                                            r"scratch\[[0-3]\] in block \(0, 0, 0\): (read|written) by "
                                                            r"warp [0-3] lane \d+, then (read|written) by warp [0-3] "
                                                            rf"lane \d+, .*schedule {schedule}"):
            run_planted(planted["block_reduce"], spec)


def test_tile_reuse_and_partial_sums_without_a_barrier_are_reported_races(planted, schedule):
    q, k, v, _ = attention_inputs(1, 1, 65, 32)                   # two K/V tiles, two warps per block
    o, lse = np.zeros_like(q), np.zeros(q.shape[:3], np.float32)
    with pytest.raises(emulator.SharedMemoryRace, match=r"kernel flash_attn_fwd_d32: shared-memory race on "
                                                        r"[kv]_tile\[\d+\] in block \(0, 0, 0\): (read|written) by "
                                                        r"warp [01] lane \d+, then (read|written) by warp [01]"):
        run_planted(planted["flash_tile"], launch.flash_forward(q, k, v, o, lse, 0.2, False, 0.0, 0))
    dy, ids = np.ones((20, 3), np.float32), np.zeros(20, np.int64)  # one id: all 8 warps add into row 0
    with pytest.raises(emulator.SharedMemoryRace, match=r"kernel embedding_bwd: shared-memory race on "
                                                        r"partial\[[1-7]\]\[[0-2]\] in block \(0, 0, 0\)"):
        run_planted(planted["embedding"], launch.embedding_backward(dy, np.arange(20), np.array([0, 20]),
                                                                    np.zeros((1, 3), np.float32)))
