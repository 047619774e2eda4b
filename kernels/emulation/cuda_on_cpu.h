// cuda_on_cpu.h: compile the CUDA C kernels in kernels/*.cu with g++ and run them on the CPU with CUDA's
// semantics, so CI (which has no GPU) executes the real kernel sources against their NumPy references.
//
// How: every CUDA thread of a block is a fiber (ucontext) on one OS thread. Fibers run one at a time and switch
// only at __syncthreads() and at warp-level operations (shuffles, __syncwarp), so a kernel that forgets a barrier
// reads stale shared memory here just as it can on a GPU. Blocks run one after another, which is why
// `__shared__` can simply mean `static`: one copy, shared by every thread of the block that is running.
// Out-of-bounds accesses to global buffers hit guard pages set up by the Python launcher
// (tensorlite/cuda/emulator.py); the SIGSEGV is turned into an error naming the kernel, block and thread.
//
// Included with `g++ -include cuda_on_cpu.h -DTL_EMULATION`; the kernel sources are not changed.
#pragma once
#ifndef TL_EMULATION
#define TL_EMULATION 1
#endif

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <ucontext.h>
#include <vector>

// ---------------------------------------------------------------------------------------------- CUDA keywords
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define TL_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(tl_emu::state().dynamic_smem)

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace tl_emu {

enum Wait { RUNNING, AT_BARRIER, AT_WARP, DONE };

struct Fiber {
    ucontext_t context;
    uint3 idx;
    int linear;                 // threadIdx in row-major order; lane = linear % 32, warp = linear / 32
    Wait wait;
    uint64_t shfl_in, shfl_out; // a shuffle's value in and out (raw bits: works for float, int, unsigned)
    int shfl_src;               // lane to read from, -1 for "keep my own value"
    unsigned int ballot_in;
};

struct State {
    std::vector<Fiber> fibers;
    std::vector<char> stacks;
    size_t stack_size = 64 * 1024;
    int current = -1;
    ucontext_t scheduler;
    uint3 block_idx;
    dim3 block_dim, grid_dim;
    char* dynamic_smem = nullptr;
    void (*body)(void**) = nullptr;
    void** args = nullptr;
    // fault reporting
    sigjmp_buf fault_jump;
    const uintptr_t* guards = nullptr; // pairs (start, end) of guard regions
    int n_guards = 0;
    volatile uintptr_t fault_address = 0;
    char fault_stack[64 * 1024];
};

inline State& state() {
    static State s;
    return s;
}

inline Fiber& self() { return state().fibers[state().current]; }

inline void yield(Wait why) {
    State& s = state();
    s.fibers[s.current].wait = why;
    swapcontext(&s.fibers[s.current].context, &s.scheduler);
}

inline void fiber_main() {
    State& s = state();
    s.body(s.args);
    s.fibers[s.current].wait = DONE;
    swapcontext(&s.fibers[s.current].context, &s.scheduler);
}

inline int lane_of(const Fiber& f) { return f.linear % 32; }

// Release a warp whose live lanes all wait at a warp operation: compute every lane's shuffle result.
inline bool release_warp(int first, int count) {
    State& s = state();
    for (int i = first; i < first + count; ++i)
        if (s.fibers[i].wait != AT_WARP && s.fibers[i].wait != DONE) return false;
    unsigned int ballot = 0;
    for (int i = first; i < first + count; ++i)
        if (s.fibers[i].wait == AT_WARP) ballot |= s.fibers[i].ballot_in << (i - first);
    for (int i = first; i < first + count; ++i) {   // every lane reads before any lane is released
        Fiber& f = s.fibers[i];
        if (f.wait != AT_WARP) continue;
        int src = f.shfl_src;
        bool valid = src >= 0 && src < count && s.fibers[first + src].wait == AT_WARP;
        f.shfl_out = valid ? s.fibers[first + src].shfl_in : f.shfl_in;
        f.ballot_in = ballot;
    }
    for (int i = first; i < first + count; ++i)
        if (s.fibers[i].wait == AT_WARP) s.fibers[i].wait = RUNNING;
    return true;
}

// Run one block to completion: resume runnable fibers round-robin; release barriers when everyone arrived.
inline int run_block(char* err, int err_len, const char* kernel) {
    State& s = state();
    int n = (int)s.fibers.size();
    for (int i = 0; i < n; ++i) {
        Fiber& f = s.fibers[i];
        f.wait = RUNNING;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = s.stacks.data() + (size_t)i * s.stack_size;
        f.context.uc_stack.ss_size = s.stack_size;
        f.context.uc_link = &s.scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    for (;;) {
        bool progressed = false;
        for (int i = 0; i < n; ++i) {
            if (s.fibers[i].wait != RUNNING) continue;
            s.current = i;
            swapcontext(&s.scheduler, &s.fibers[i].context);
            progressed = true;
        }
        int done = 0, at_barrier = 0;
        for (auto& f : s.fibers) { done += f.wait == DONE; at_barrier += f.wait == AT_BARRIER; }
        if (done == n) return 0;
        for (int w = 0; w < n; w += 32) progressed |= release_warp(w, std::min(32, n - w));
        if (at_barrier > 0 && at_barrier + done == n) {
            for (auto& f : s.fibers) if (f.wait == AT_BARRIER) f.wait = RUNNING;
            progressed = true;
        }
        bool runnable = false;
        for (auto& f : s.fibers) runnable |= f.wait == RUNNING;
        if (!runnable && !progressed) {
            snprintf(err, err_len, "kernel %s deadlocked in block (%u, %u, %u): threads wait at a barrier or "
                     "warp operation that the others never reach", kernel, s.block_idx.x, s.block_idx.y,
                     s.block_idx.z);
            return 2;
        }
    }
}

inline void on_fault(int, siginfo_t* info, void*) {
    State& s = state();
    s.fault_address = (uintptr_t)info->si_addr;
    siglongjmp(s.fault_jump, 1);
}

inline int launch(void (*body)(void**), const char* kernel, dim3 grid, dim3 block, size_t smem, void** args,
                  const uintptr_t* guards, int n_guards, char* err, int err_len) {
    State& s = state();
    int n = (int)(block.x * block.y * block.z);
    if (n < 1 || n > 1024) {
        snprintf(err, err_len, "kernel %s: %d threads per block (CUDA allows 1 to 1024)", kernel, n);
        return 3;
    }
    s.body = body; s.args = args; s.grid_dim = grid; s.block_dim = block;
    s.guards = guards; s.n_guards = n_guards;
    std::vector<char> smem_buffer(smem + 16);
    s.dynamic_smem = smem_buffer.data();
    s.fibers.assign(n, Fiber());
    s.stacks.assign((size_t)n * s.stack_size, 0);
    for (int t = 0; t < n; ++t) {
        s.fibers[t].linear = t;
        s.fibers[t].idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    }
    stack_t alt = {}, old_alt;
    alt.ss_sp = s.fault_stack; alt.ss_size = sizeof(s.fault_stack);
    sigaltstack(&alt, &old_alt);
    struct sigaction action = {}, old_segv, old_bus;
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &action, &old_segv);
    sigaction(SIGBUS, &action, &old_bus);
    int status = 0;
    if (sigsetjmp(s.fault_jump, 1) == 0) {
        for (unsigned z = 0; z < grid.z && status == 0; ++z)
            for (unsigned y = 0; y < grid.y && status == 0; ++y)
                for (unsigned x = 0; x < grid.x && status == 0; ++x) {
                    s.block_idx = {x, y, z};
                    // fresh shared memory is garbage on a GPU: make reads before writes visible
                    std::memset(smem_buffer.data(), 0xff, smem_buffer.size());
                    status = run_block(err, err_len, kernel);
                }
    } else {
        int which = -1;
        for (int g = 0; g < s.n_guards; ++g)
            if (s.fault_address >= s.guards[2 * g] && s.fault_address < s.guards[2 * g + 1]) which = g;
        const Fiber& f = s.fibers[s.current];
        if (which >= 0)
            snprintf(err, err_len, "kernel %s accessed global memory out of bounds: argument %d, %ld bytes past "
                     "its end, in block (%u, %u, %u), thread (%u, %u, %u)", kernel, (int)s.guards[2 * n_guards + which],
                     (long)(s.fault_address - s.guards[2 * which]), s.block_idx.x, s.block_idx.y, s.block_idx.z,
                     f.idx.x, f.idx.y, f.idx.z);
        else
            snprintf(err, err_len, "kernel %s crashed with an invalid memory access at %p in block (%u, %u, %u), "
                     "thread (%u, %u, %u)", kernel, (void*)s.fault_address, s.block_idx.x, s.block_idx.y,
                     s.block_idx.z, f.idx.x, f.idx.y, f.idx.z);
        status = 1;
    }
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
    sigaltstack(&old_alt, nullptr);
    return status;
}

template <typename T> inline uint64_t to_bits(T v) { uint64_t b = 0; std::memcpy(&b, &v, sizeof(T)); return b; }
template <typename T> inline T from_bits(uint64_t b) { T v; std::memcpy(&v, &b, sizeof(T)); return v; }

template <typename T> inline T shuffle(T value, int src_lane) {
    Fiber& f = self();
    f.shfl_in = to_bits(value);
    f.shfl_src = src_lane;
    f.ballot_in = 0;
    yield(AT_WARP);
    return from_bits<T>(self().shfl_out);
}

inline int segment_base(int width) { return (lane_of(self()) / width) * width; }

}  // namespace tl_emu

// ---------------------------------------------------------------------------------------------- built-ins
#define threadIdx (tl_emu::self().idx)
#define blockIdx (tl_emu::state().block_idx)
#define blockDim (tl_emu::state().block_dim)
#define gridDim (tl_emu::state().grid_dim)
#define warpSize 32

inline void __syncthreads() { tl_emu::yield(tl_emu::AT_BARRIER); }
inline void __syncwarp(unsigned = 0xffffffffu) { tl_emu::shuffle<int>(0, -1); }
inline unsigned __activemask() { return 0xffffffffu; }

template <typename T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    return tl_emu::shuffle(v, tl_emu::segment_base(width) + (src % width));
}
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    int lane = tl_emu::lane_of(tl_emu::self()), base = tl_emu::segment_base(width);
    int src = lane ^ mask;
    return tl_emu::shuffle(v, (src >= base && src < base + width) ? src : lane);
}
template <typename T> inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = tl_emu::lane_of(tl_emu::self()), base = tl_emu::segment_base(width);
    int src = lane + (int)delta;
    return tl_emu::shuffle(v, src < base + width ? src : lane);
}
template <typename T> inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = tl_emu::lane_of(tl_emu::self()), base = tl_emu::segment_base(width);
    int src = lane - (int)delta;
    return tl_emu::shuffle(v, src >= base ? src : lane);
}
inline unsigned __ballot_sync(unsigned, int predicate) {
    tl_emu::Fiber& f = tl_emu::self();
    f.shfl_in = 0; f.shfl_src = -1; f.ballot_in = predicate ? 1u : 0u;
    tl_emu::yield(tl_emu::AT_WARP);
    return tl_emu::self().ballot_in;
}

// One OS thread and switches only at sync points: a plain read-modify-write is atomic here.
inline float atomicAdd(float* address, float value) { float old = *address; *address = old + value; return old; }
inline int atomicAdd(int* address, int value) { int old = *address; *address = old + value; return old; }
inline float atomicMax(float* address, float value) { float old = *address; *address = fmaxf(old, value); return old; }

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
template <typename T> inline T __ldg(const T* p) { return *p; }
using std::max;
using std::min;
