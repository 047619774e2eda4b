// embedding.cu: the backward of a row lookup, dweight[v] = the sum of dy[i] over the positions i whose id is v
// (reference: tensorlite/functional.py EmbeddingFunction; on the CPU, tensorlite/backend.py scatter_add_rows sorts
// and sums runs the same way with NumPy).
// Atomic adds would serialise on frequent ids (a space is ~15% of Shakespeare's characters) and make the order of
// the sum, so its rounding, change from run to run. Instead the positions come sorted by id (`order`, a stable
// sort), id v's run of them is order[starts[v]] .. order[starts[v + 1] - 1], and one block sums one run for 32
// columns: warp w adds up positions w, w + EMB_WARPS, ... of the run, then warp 0 adds the warps' partial sums in
// warp order. The same ids give the same bits, and a row no id points at gets zeros (no separate zero-fill).
#include "common.cuh"

// EMB_WARPS: warps per block (launched with EMB_WARPS * 32 threads).
#ifndef EMB_WARPS
#error "EMB_WARPS is a -D macro from tensorlite/cuda/launch.py (KERNEL_DEFINES)"
#endif

extern "C" __global__ void embedding_bwd(const float* __restrict__ dy, const long long* __restrict__ order,
                                         const long long* __restrict__ starts, float* __restrict__ dweight,
                                         int cols) {
    __shared__ float partial[EMB_WARPS][TL_WARP];
    const int lane = threadIdx.x % TL_WARP, warp = threadIdx.x / TL_WARP;
    const long long row = blockIdx.x;
    const int col = blockIdx.y * TL_WARP + lane;
    float sum = 0.0f;
    if (col < cols)
        for (long long s = starts[row] + warp; s < starts[row + 1]; s += EMB_WARPS) sum += dy[order[s] * cols + col];
    partial[warp][lane] = sum;
    __syncthreads();
    if (warp == 0 && col < cols) {
        float total = 0.0f;
        for (int w = 0; w < EMB_WARPS; ++w) total += partial[w][lane];
        dweight[row * cols + col] = total;
    }
}
