// Exercise 11: a CUDA kernel, row softmax forward, graded on this machine: the CPU emulator runs it.
//
// Read:      docs/backprop_through_attention.md#softmax (why the max is subtracted first), and
//            docs/cuda_emulation.md (how a kernel runs on the CPU: warps, barriers, schedules, the racecheck)
// Check:     python -m exercises check softmax_kernel
// Solution:  kernels/softmax.cu::softmax_fwd with kernels/common.cuh::block_reduce (the engine's own code, for
//            when you want to look)
//
// Ready around it: the launch (tensorlite/cuda/launch.py::softmax_forward: one block per row, ROW_THREADS = 128
// threads, that is 4 warps, for rows of any length) and the reference it is checked against (the engine's
// softmax, tensorlite/functional.py::SoftmaxFunction.forward). What to write, for this block's row:
//   1. the row's max. Each thread takes the columns threadIdx.x, threadIdx.x + blockDim.x, ...; warp_max
//      (kernels/common.cuh) combines the 32 lanes of a warp; then the warps meet in shared memory (scratch: one
//      float per warp) and every thread reads the block's result back. Write that block-wide step yourself
//      (common.cuh's block_reduce is the solution's: writing it is the exercise). A warp may read scratch only
//      after every warp has written it (a __syncthreads() between), and scratch may be written again only after
//      every warp has read it (another one).
//   2. y = exp(x - max) for each of the thread's columns, and the row's sum of those, the same way;
//   3. y *= 1 / sum.
#include "common.cuh"

extern "C" __global__ void softmax_fwd(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;   // the same for the whole block: no thread of it waits alone at a barrier
    const float* in = x + (size_t)row * cols;
    float* out = y + (size_t)row * cols;
    // ---- your code: begin ----

    // ---- your code: end ----
}
