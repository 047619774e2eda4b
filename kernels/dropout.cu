// dropout.cu: inverted dropout without a stored mask (reference: tensorlite/functional.py Dropout).
// Element i is kept when the hash of (seed, i) is >= p, and kept values are scaled by 1 / (1 - p). Forward and
// backward multiply by the same regenerated mask, so one kernel serves both: nothing as big as x is kept between
// them (the reference path saves a float32 mask the size of x at every dropout site).
#include "common.cuh"

extern "C" __global__ void dropout_mul(const float* __restrict__ x, float* __restrict__ y, long long n, float p,
                                       unsigned int seed) {
    const float scale = 1.0f / (1.0f - p);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float u = dropout_uniform(seed, (unsigned int)(i >> 32), (unsigned int)i, 0u);
        y[i] = u >= p ? x[i] * scale : 0.0f;
    }
}
