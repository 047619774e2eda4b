// dropout.cu: inverted dropout without a stored mask (reference: tensorlite/functional.py DropoutFunction).
// Element i is kept when the hash of (seed, i) is >= p, and kept values are scaled by 1 / (1 - p). Forward and
// backward multiply by the same regenerated mask, so one kernel serves both: nothing as big as x is kept between
// them (the reference path saves a float32 mask the size of x at every dropout site).
#include "common.cuh"

// x[i] as dropout leaves it: scaled by 1 / (1 - p) if element i is kept, else 0.
__device__ __forceinline__ float dropped(float x, long long i, float p, unsigned int seed) {
    float u = dropout_uniform(seed, (unsigned int)(i >> 32), (unsigned int)i, 0u);
    return u >= p ? x * (1.0f / (1.0f - p)) : 0.0f;
}

extern "C" __global__ void dropout_mul(const float* __restrict__ x, float* __restrict__ y, long long n, float p,
                                       unsigned int seed) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = dropped(x[i], i, p, seed);
}

// y = residual + dropout(x): a transformer block's residual connection in one pass (read x and the residual,
// write y) instead of two (dropout, then the add: one more write and read of an activation-sized array).
// Its backward needs no kernel of its own: dx = dropout_mul(dy), dresidual = dy.
extern "C" __global__ void dropout_add(const float* __restrict__ x, const float* __restrict__ residual,
                                       float* __restrict__ y, long long n, float p, unsigned int seed) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = residual[i] + dropped(x[i], i, p, seed);
}
