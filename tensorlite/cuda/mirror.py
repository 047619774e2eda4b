"""NumPy mirrors of the CUDA kernels: the same algorithm, tile by tile, readable and testable on any machine.

What they are for: the tests compare the kernels with them (tests/test_kernels_emulated.py under the CPU emulator,
tests/test_kernels_gpu.py on a GPU) and check them against the naive formulas (tests/test_flash_mirror.py), and
docs/backprop_through_attention.md points readers here for the tiled algorithm in NumPy. The engine never calls
them: an op's reference path is tensorlite/functional.py. They live in the package rather than beside the tests
so that an installed tensorlite (where tests/ is not) can still check its kernels against them.

`flash_forward` walks K/V in tiles of FA_TILE keys for blocks of FA_ROWS queries, keeping the online softmax
(running max m, running sum l, output rescaled by exp(m_old - m_new)) exactly as kernels/flash_attention.cu
does per thread; `flash_backward` recomputes P from Q, K and the logsumexp, tile by tile, as its dK/dV and dQ
kernels do. The tile sizes are launch.py's, the same numbers the kernels are compiled with.
"""
import numpy as np

from .launch import EMB_WARPS, FA_ROWS, FA_TILE


def dropout_uniform(seed, a, b, c):
    """kernels/common.cuh's counter-based hash: uniform [0, 1) for every (a, b, c), in uint32 arithmetic
    (attention dropout hashes (batch-head, row, col), elementwise dropout (high and low word of the index, 0))."""
    with np.errstate(over="ignore"):
        h = (np.uint32(seed) ^ (np.asarray(a, np.uint32) * np.uint32(0x9E3779B1))
             ^ (np.asarray(b, np.uint32) * np.uint32(0x85EBCA77)) ^ (np.asarray(c, np.uint32) * np.uint32(0xC2B2AE3D)))
        h = (h ^ (h >> np.uint32(16))) * np.uint32(0x7FEB352D)
        h = (h ^ (h >> np.uint32(15))) * np.uint32(0x846CA68B)
        h = h ^ (h >> np.uint32(16))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def dropout_keep(p, seed, bh, i, j):
    """0 or 1/(1-p) per attention weight: the mask both the kernel and this mirror apply."""
    if p <= 0:
        return np.float32(1.0)
    return np.where(dropout_uniform(seed, bh, i, j) >= np.float32(p), np.float32(1 / (1 - p)), np.float32(0))


def dropout_mul(x, p, seed):
    """kernels/dropout.cu: element i kept when dropout_uniform(seed, i >> 32, i, 0) >= p, scaled by 1 / (1 - p)."""
    i = np.arange(x.size, dtype=np.uint64)
    u = dropout_uniform(seed, (i >> np.uint64(32)).astype(np.uint32), i.astype(np.uint32), 0)
    kept = (u >= np.float32(p)).reshape(x.shape)
    return np.where(kept, x * np.float32(1 / (1 - p)), np.float32(0)).astype(np.float32)


def dropout_add(x, residual, p, seed):
    """kernels/dropout.cu dropout_add: residual + dropout_mul(x, p, seed), in float32."""
    return residual.astype(np.float32) + dropout_mul(x, p, seed)


def embedding_backward(dy, ids, num_rows):
    """kernels/embedding.cu: the positions sorted by id (stably); id v's run summed as EMB_WARPS interleaved float32
    partial sums (warp w takes positions w, w + EMB_WARPS, ... of the run, in order), then the partial sums added
    in warp order. Ids outside [0, num_rows) belong to no run."""
    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], np.arange(num_rows + 1))
    dweight = np.zeros((num_rows, dy.shape[1]), np.float32)
    for v in range(num_rows):
        run = order[starts[v]:starts[v + 1]]
        for w in range(EMB_WARPS):
            partial = np.zeros(dy.shape[1], np.float32)
            for i in run[w::EMB_WARPS]:
                partial += dy[i]
            dweight[v] += partial
    return dweight


def _visible(rows, cols, T, causal):
    """(len(rows), len(cols)) mask of the keys each query row may attend to."""
    ok = (cols[None, :] < T) & (rows[:, None] < T)
    return ok & (cols[None, :] <= rows[:, None]) if causal else ok


def _keep(dropout_p, seed, rows, cols, n_bh):
    bh = np.arange(n_bh)[:, None, None]
    return dropout_keep(dropout_p, seed, bh, rows[None, :, None], cols[None, None, :])


def flash_forward(q, k, v, causal=False, scale=None, dropout_p=0.0, seed=0):
    """q, k, v (B, H, T, D) -> (o (B, H, T, D), lse (B, H, T)) by tiles with an online softmax."""
    B, H, T, D = q.shape
    scale = 1 / np.sqrt(D) if scale is None else scale
    qs, ks, vs = (a.reshape(B * H, T, D).astype(np.float32) for a in (q, k, v))
    o = np.zeros_like(qs)
    lse = np.zeros((B * H, T), np.float32)
    for first in range(0, T, FA_ROWS):
        rows = np.arange(first, min(first + FA_ROWS, T))
        qb = qs[:, rows] * np.float32(scale)                                   # (BH, R, D)
        m = np.full((B * H, len(rows)), -np.inf, np.float32)
        l = np.zeros_like(m)
        acc = np.zeros_like(qb)
        last_key = min(T, first + FA_ROWS) if causal else T
        for start in range(0, last_key, FA_TILE):
            cols = np.arange(start, min(start + FA_TILE, T))
            s = np.where(_visible(rows, cols, T, causal), qb @ ks[:, cols].transpose(0, 2, 1), -np.inf)
            m_new = np.maximum(m, s.max(axis=-1))
            seen = m_new > -np.inf                                         # rows with a visible key so far
            correction = np.where(seen, np.exp(np.where(seen, m - m_new, 0)), 0)
            p = np.where(seen[..., None], np.exp(s - np.where(seen, m_new, 0)[..., None]), 0)
            l = l * correction + p.sum(axis=-1)
            acc = acc * correction[..., None] + (p * _keep(dropout_p, seed, rows, cols, B * H)) @ vs[:, cols]
            m = m_new
        o[:, rows] = acc / l[..., None]
        lse[:, rows] = m + np.log(l)
    return o.reshape(B, H, T, D), lse.reshape(B, H, T)


def flash_backward(q, k, v, o, lse, do, causal=False, scale=None, dropout_p=0.0, seed=0):
    """Gradients (dq, dk, dv) with P recomputed from q, k and lse; Dvec = rowsum(dO * O)."""
    B, H, T, D = q.shape
    scale = 1 / np.sqrt(D) if scale is None else scale
    qs, ks, vs, os_, dos = (a.reshape(B * H, T, D).astype(np.float32) for a in (q, k, v, o, do))
    lses = lse.reshape(B * H, T)
    dvec = (dos * os_).sum(axis=-1)                                            # (BH, T)
    dq, dk, dv = np.zeros_like(qs), np.zeros_like(ks), np.zeros_like(vs)

    def tile_terms(rows, cols):
        """P, dropout multiplier and dS for a (rows x cols) block, recomputed from the saved logsumexp."""
        s = qs[:, rows] @ ks[:, cols].transpose(0, 2, 1) * np.float32(scale)
        p = np.where(_visible(rows, cols, T, causal), np.exp(s - lses[:, rows, None]), 0)
        keep = _keep(dropout_p, seed, rows, cols, B * H)
        dp = dos[:, rows] @ vs[:, cols].transpose(0, 2, 1)
        return p, keep, p * (dp * keep - dvec[:, rows, None])

    for first in range(0, T, FA_ROWS):                         # dK, dV: a block of keys walks the query tiles
        cols = np.arange(first, min(first + FA_ROWS, T))
        for start in range((first // FA_TILE) * FA_TILE if causal else 0, T, FA_TILE):
            rows = np.arange(start, min(start + FA_TILE, T))
            p, keep, ds = tile_terms(rows, cols)
            dv[:, cols] += (p * keep).transpose(0, 2, 1) @ dos[:, rows]
            dk[:, cols] += ds.transpose(0, 2, 1) @ qs[:, rows] * np.float32(scale)
    for first in range(0, T, FA_ROWS):                         # dQ: a block of queries walks the key tiles
        rows = np.arange(first, min(first + FA_ROWS, T))
        for start in range(0, min(T, first + FA_ROWS) if causal else T, FA_TILE):
            cols = np.arange(start, min(start + FA_TILE, T))
            dq[:, rows] += tile_terms(rows, cols)[2] @ ks[:, cols] * np.float32(scale)
    shape = (B, H, T, D)
    return dq.reshape(shape), dk.reshape(shape), dv.reshape(shape)
