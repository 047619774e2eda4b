// common.cuh: what every tensorlite kernel shares. Included as #include "common.cuh" (compiled with -I kernels).
#pragma once

// Dynamic shared memory, sized at launch. Under the CPU emulator (TL_EMULATION) the emulation header defines
// this macro itself, so the kernel sources stay the same for NVRTC, nvcc and g++.
#ifndef TL_EMULATION
#define TL_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// NVRTC compiles without the host math headers: INFINITY and NAN are not defined there unless we do it.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fc00000)
#endif

#define TL_WARP 32

// Sum / max of `value` over the 32 lanes of a warp; every lane gets the result (butterfly reduction).
__device__ __forceinline__ float warp_sum(float value) {
    for (int offset = TL_WARP / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

__device__ __forceinline__ float warp_max(float value) {
    for (int offset = TL_WARP / 2; offset > 0; offset /= 2)
        value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
    return value;
}

// Sum / max over all threads of a block (blockDim.x a multiple of 32, at most 1024). `scratch` holds 32 floats
// of shared memory. Every thread gets the result. Two barriers: scratch may be reused right after.
__device__ __forceinline__ float block_reduce(float value, float* scratch, bool is_max) {
    const int lane = threadIdx.x % TL_WARP, warp = threadIdx.x / TL_WARP, n_warps = blockDim.x / TL_WARP;
    value = is_max ? warp_max(value) : warp_sum(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    float total = lane < n_warps ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
    total = is_max ? warp_max(total) : warp_sum(total);
    __syncthreads();
    return total;
}

// Uniform [0, 1) from (seed, a, b, c): a 32-bit integer hash (xorshift-multiply rounds), mirrored in NumPy
// (tensorlite/cuda/mirror.py::dropout_uniform). Dropout draws its decisions from it, so backward regenerates
// them from the seed instead of storing a mask.
__device__ __forceinline__ float dropout_uniform(unsigned int seed, unsigned int a, unsigned int b, unsigned int c) {
    unsigned int h = seed ^ (a * 0x9E3779B1u) ^ (b * 0x85EBCA77u) ^ (c * 0xC2B2AE3Du);
    h ^= h >> 16; h *= 0x7FEB352Du;
    h ^= h >> 15; h *= 0x846CA68Bu;
    h ^= h >> 16;
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}
