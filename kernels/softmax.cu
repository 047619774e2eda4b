// softmax.cu: row softmax forward and backward, and softmax + cross-entropy fused into one pass.
// One block per row (blockDim.x a multiple of 32); rows of any length: threads stride over the columns.
// The NumPy formulas they must match are the reference Functions in tensorlite/functional.py.
#include "common.cuh"

// y = exp(x - max) / sum(exp(x - max)) over each row of a (rows, cols) matrix.
extern "C" __global__ void softmax_fwd(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;   // uniform per block: no thread of this block reaches a barrier
    const float* in = x + (size_t)row * cols;
    float* out = y + (size_t)row * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, in[c]);
    m = block_reduce(m, scratch, true);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(in[c] - m);
        out[c] = e;
        sum += e;
    }
    const float inv = 1.0f / block_reduce(sum, scratch, false);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[c] *= inv;
}

// dx = y * (dy - sum(dy * y)) over each row.
extern "C" __global__ void softmax_bwd(const float* __restrict__ y, const float* __restrict__ dy,
                                       float* __restrict__ dx, int rows, int cols) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const size_t off = (size_t)row * cols;
    float dot = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[off + c] * y[off + c];
    dot = block_reduce(dot, scratch, false);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dx[off + c] = y[off + c] * (dy[off + c] - dot);
}

// Per row: loss = logsumexp(logits) - logits[target] and dlogits = softmax(logits) - onehot(target), both zero
// for rows whose target is ignore_index. A target out of range is F.cross_entropy's to report (without a host
// sync, so after this kernel has run): here its row only gets NaN, and nothing is read out of bounds.
extern "C" __global__ void softmax_xent(const float* __restrict__ logits, const long long* __restrict__ targets,
                                        float* __restrict__ loss, float* __restrict__ dlogits, int rows, int cols,
                                        long long ignore_index) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const size_t off = (size_t)row * cols;
    const long long target = targets[row];
    const bool ignored = target == ignore_index;
    const bool out_of_range = !ignored && (target < 0 || target >= cols);
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, logits[off + c]);
    m = block_reduce(m, scratch, true);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(logits[off + c] - m);
    sum = block_reduce(sum, scratch, false);
    const float log_norm = m + logf(sum);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float p = expf(logits[off + c] - log_norm);
        dlogits[off + c] = ignored ? 0.0f : out_of_range ? NAN : p - (c == target ? 1.0f : 0.0f);
    }
    if (threadIdx.x == 0) loss[row] = ignored ? 0.0f : out_of_range ? NAN : log_norm - logits[off + target];
}
