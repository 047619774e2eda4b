// layernorm.cu: LayerNorm over the last axis. Forward runs one block per row and saves the per-row mean and
// rstd; backward uses the closed form
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w,  xhat = (x - mean) * rstd
//   dw = sum over rows of dy * xhat,  db = sum over rows of dy
// with one block per LN_BWD_ROWS rows: each block writes its rows' dx and one row of partial dw and db sums,
// which the caller adds up (a fixed order: no atomics, so the same inputs give the same bits; atomics would also
// queue up, every row adding into the same cols addresses).
// Reference: tensorlite/functional.py LayerNormFunction.
#include "common.cuh"

extern "C" __global__ void layernorm_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ y,
                                         float* __restrict__ mean_out, float* __restrict__ rstd_out, int rows,
                                         int cols, float eps, int has_bias) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const size_t off = (size_t)row * cols;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += x[off + c];
    const float mean = block_reduce(sum, scratch, false) / cols;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = x[off + c] - mean;
        sq += d * d;
    }
    const float rstd = rsqrtf(block_reduce(sq, scratch, false) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = (x[off + c] - mean) * rstd * w[c];
        y[off + c] = has_bias ? v + b[c] : v;
    }
    if (threadIdx.x == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

// LN_BWD_ROWS: rows per block of layernorm_bwd.
#ifndef LN_BWD_ROWS
#error "LN_BWD_ROWS is a -D macro from tensorlite/cuda/launch.py (KERNEL_DEFINES)"
#endif

extern "C" __global__ void layernorm_bwd(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
                                         const float* __restrict__ dy, float* __restrict__ dx,
                                         float* __restrict__ dw_partial, float* __restrict__ db_partial, int rows,
                                         int cols) {
    __shared__ float scratch[32];
    // this block's row of partial sums; each thread owns columns threadIdx.x, + blockDim.x, ... of it
    float* __restrict__ dw_sum = dw_partial + (size_t)blockIdx.x * cols;
    float* __restrict__ db_sum = db_partial + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dw_sum[c] = db_sum[c] = 0.0f;
    const int first = blockIdx.x * LN_BWD_ROWS, last = min(first + LN_BWD_ROWS, rows);
    for (int row = first; row < last; ++row) {
        const size_t off = (size_t)row * cols;
        const float mean = mean_in[row], rstd = rstd_in[row];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float xhat = (x[off + c] - mean) * rstd, g = dy[off + c] * w[c];
            sum_g += g;
            sum_gx += g * xhat;
            dw_sum[c] += dy[off + c] * xhat;
            db_sum[c] += dy[off + c];
        }
        const float mean_g = block_reduce(sum_g, scratch, false) / cols;
        const float mean_gx = block_reduce(sum_gx, scratch, false) / cols;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float xhat = (x[off + c] - mean) * rstd;
            dx[off + c] = rstd * (dy[off + c] * w[c] - mean_g - xhat * mean_gx);
        }
    }
}
