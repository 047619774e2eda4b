// Exercise 12: a CUDA kernel, flash attention backward's dS / dQ step, one tile of keys at a time (head size 32).
//
// Read:      docs/backprop_through_attention.md#flash, and docs/cuda_emulation.md (how it runs on the CPU)
// Check:     python -m exercises check flash_backward
// Solution:  kernels/flash_attention.cu::dq_impl (the engine's own code, for when you want to look; its
//            flash_attn_bwd_dq_d32 is this kernel)
//
// Ready around it: the launch (tensorlite/cuda/launch.py::flash_backward_dq: for (B, H, T, 32) float32, one block
// per FA_ROWS query rows of one (batch, head), one thread per query row), the inputs the forward and
// flash_attn_bwd_dot computed (LSE: each query's logsumexp of its scaled scores; Dvec = rowsum(dO * O)), and the
// NumPy mirror it is checked against (tensorlite/cuda/mirror.py::flash_backward). FA_ROWS and FA_TILE are
// tensorlite/cuda/launch.py's, handed to the compiler. Each thread holds its query row (q) and dO row (g) and
// accumulates its row of dQ (dq). What to write, for the tile of keys [start, start + FA_TILE):
//   1. load the tile's rows of K and V into k_tile and v_tile (element e of a tile is row e / HEAD, column
//      e % HEAD), all the block's threads together, rows past T as zeros; then __syncthreads(): every thread
//      reads every row of the tile;
//   2. for each key j = start + c of the tile: s = q . K_j, dp = g . V_j, p = exp(s * scale - lse), or 0 where
//      query i may not see key j (j >= T, or j > i when causal); ds = p * (dp - delta); dq += ds * K_j;
//   3. __syncthreads() again, before the next tile overwrites k_tile and v_tile.
// dropout_p is 0 here (the solution's kernel also applies dropout; this exercise leaves it out).
#include "common.cuh"

constexpr int HEAD = 32;   // D, the head size of this kernel

extern "C" __global__ void flash_attn_bwd_dq_d32(const float* __restrict__ Q, const float* __restrict__ K,
                                                 const float* __restrict__ V, const float* __restrict__ dO,
                                                 const float* __restrict__ LSE, const float* __restrict__ Dvec,
                                                 float* __restrict__ dQ, int T, float scale, int causal,
                                                 float dropout_p, unsigned int seed) {
    __shared__ float k_tile[FA_TILE * HEAD];
    __shared__ float v_tile[FA_TILE * HEAD];
    const int bh = blockIdx.y, i = blockIdx.x * FA_ROWS + threadIdx.x;   // this thread's query row
    const size_t base = (size_t)bh * T * HEAD;                          // this (batch, head)'s (T, D) matrices
    const bool active = i < T;                                          // the last block's rows past T idle
    float q[HEAD], g[HEAD], dq[HEAD];
    for (int d = 0; d < HEAD; ++d) {
        q[d] = active ? Q[base + (size_t)i * HEAD + d] : 0.0f;
        g[d] = active ? dO[base + (size_t)i * HEAD + d] : 0.0f;
        dq[d] = 0.0f;
    }
    const float lse = active ? LSE[(size_t)bh * T + i] : 0.0f;
    const float delta = active ? Dvec[(size_t)bh * T + i] : 0.0f;
    const int last_key = causal ? min(T, (int)(blockIdx.x + 1) * FA_ROWS) : T;   // no query here sees later keys
    for (int start = 0; start < last_key; start += FA_TILE) {
        // ---- your code: begin ----

        // ---- your code: end ----
    }
    if (active)
        for (int d = 0; d < HEAD; ++d) dQ[base + (size_t)i * HEAD + d] = dq[d] * scale;
}
