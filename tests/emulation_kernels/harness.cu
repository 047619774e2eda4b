// Kernels that test the emulator itself (not product kernels).
#include "common.cuh"

// Each warp sums its 32 values with shuffles; lane 0 writes the warp's sum.
extern "C" __global__ void warp_sums(const float* __restrict__ x, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

// Shuffle down (not xor): lane 0 of each warp ends with the total.
extern "C" __global__ void warp_sums_down(const float* __restrict__ x, float* __restrict__ out) {
    float v = x[blockIdx.x * 32 + threadIdx.x];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Transpose a rows x cols matrix through a shared-memory tile (16 x 16, padded against bank conflicts).
extern "C" __global__ void transpose(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
    __shared__ float tile[16][17];
    int x = blockIdx.x * 16 + threadIdx.x, y = blockIdx.y * 16 + threadIdx.y;
    if (x < cols && y < rows) tile[threadIdx.y][threadIdx.x] = in[y * cols + x];
    __syncthreads();
    x = blockIdx.y * 16 + threadIdx.x;
    y = blockIdx.x * 16 + threadIdx.y;
    if (x < rows && y < cols) out[y * rows + x] = tile[threadIdx.x][threadIdx.y];
}

// Every thread publishes its value, then reads its neighbour's: correct only with the barrier in between.
extern "C" __global__ void rotate(const float* __restrict__ x, float* __restrict__ out, int with_barrier) {
    TL_DYNAMIC_SHARED(float, slots);
    int t = threadIdx.x;
    slots[t] = x[blockIdx.x * blockDim.x + t];
    if (with_barrier) __syncthreads();
    out[blockIdx.x * blockDim.x + t] = slots[(t + 1) % blockDim.x];
}

// Block-wide reduction through common.cuh's block_reduce.
extern "C" __global__ void block_sum(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float scratch[32];
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[i];
    float total = block_reduce(v, scratch, false);
    if (threadIdx.x == 0) out[0] = total;
}

// Planted bug: reads one element past the end.
extern "C" __global__ void off_by_one(const float* __restrict__ x, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[0] += x[i];
}

// Planted bug: only half of warp 0 reaches the barrier (the rest of the block waits at a shuffle, and with more
// than one warp the other warps pass it and end).
extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < 16) __syncthreads();
    else __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    out[threadIdx.x] = 1.0f;
}

// atomicAdd on float from every thread of every block.
extern "C" __global__ void atomic_count(float* counter) { atomicAdd(counter, 1.0f); }

// Butterfly reduction: every lane (not only lane 0) must end with the warp's total.
extern "C" __global__ void warp_sums_every_lane(const float* __restrict__ x, float* __restrict__ out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = warp_sum(x[i]);
}

// Planted bug: common.cuh's block_reduce without its second barrier, called twice. A fast warp's lane 0 writes
// scratch[warp] for the second sum while slower warps may still read it for the first: the warp shuffles in
// between order nothing across warps. Lane 0 of warp w writes out[2 w] = sum(x), out[2 w + 1] = sum(2 x).
__device__ float block_sum_one_barrier(float value, float* scratch) {
    const int lane = threadIdx.x % TL_WARP, warp = threadIdx.x / TL_WARP, n_warps = blockDim.x / TL_WARP;
    value = warp_sum(value);
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    return warp_sum(lane < n_warps ? scratch[lane] : 0.0f);
}

extern "C" __global__ void two_sums_one_barrier(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float scratch[32];
    const float v = x[threadIdx.x];
    const float first = block_sum_one_barrier(v, scratch);
    const float second = block_sum_one_barrier(2.0f * v, scratch);
    if (threadIdx.x % TL_WARP == 0) {
        out[2 * (threadIdx.x / TL_WARP)] = first;
        out[2 * (threadIdx.x / TL_WARP) + 1] = second;
    }
}

// Planted bug: every warp's lane 0 writes the same word in one barrier interval (a write-write race): which warp
// wins is the schedule's choice.
extern "C" __global__ void last_warp_wins(int* __restrict__ out) {
    __shared__ int winner;
    if (threadIdx.x % 32 == 0) winner = threadIdx.x / 32;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = winner;
}

// Lanes of one warp exchange values through their warp's own slice of shared memory: warp-synchronous code,
// no race between warps.
extern "C" __global__ void swap_neighbours_in_warp(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float slots[256];
    slots[threadIdx.x] = x[threadIdx.x];
    __syncwarp();
    out[threadIdx.x] = slots[threadIdx.x ^ 1];
}

// Every thread adds 1 to one shared counter with atomicAdd: atomics are no race.
extern "C" __global__ void shared_atomic_count(int* __restrict__ out) {
    __shared__ int count;
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    atomicAdd(&count, 1);
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = count;
}
