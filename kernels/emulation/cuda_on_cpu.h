// cuda_on_cpu.h: compile the CUDA C kernels in kernels/*.cu with g++ and run them on the CPU with CUDA's
// semantics, so CI (which has no GPU) executes the real kernel sources against their NumPy references.
//
// How: every CUDA thread of a block is a fiber (ucontext) on one OS thread. Fibers run one at a time and switch
// only at __syncthreads() and at warp-level operations (shuffles, __syncwarp, __ballot_sync). Which warp goes on
// at those points is the schedule's choice (lockstep, warp-at-a-time, reversed, seeded random): CUDA promises no
// order between warps, so a correct kernel gives the same result under every one, and a kernel whose result
// depends on the order shows it under one of them.
// Shared-memory races are also found directly, whatever the schedule (a racecheck): the library is compiled with
// g++'s -fsanitize=thread, which calls __tsan_read4(address), __tsan_write4(address), ... before every memory
// access; this header defines those hooks itself (no ThreadSanitizer runtime is linked) and keeps, per 4-byte word
// of shared memory, the last write and the reads of the current barrier interval. A write and another access by a
// different warp in one interval is a race: nothing orders them on a GPU.
// Blocks run one after another, which is why `__shared__` can simply mean `static`: one copy, shared by every
// thread of the block that is running (filled with 0xff bytes before each block, as fresh shared memory holds
// garbage: a float read before any write is NaN).
// Out-of-bounds accesses to global buffers hit guard pages set up by the Python launcher
// (tensorlite/cuda/emulator.py); the SIGSEGV is turned into an error naming the kernel, block and thread.
//
// Included with `g++ -include cuda_on_cpu.h -DTL_EMULATION -fsanitize=thread`; the kernel sources are not changed.
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
// The racecheck's own code and the emulator's atomics are not instrumented (an atomic is no race).
#define TL_UNCHECKED __attribute__((no_sanitize_thread))

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace tl_emu {

enum Wait { RUNNING, AT_BARRIER, AT_WARP, DONE };
enum Policy { LOCKSTEP, WARP_AT_A_TIME, REVERSED, RANDOM };   // emulator.py POLICIES, in this order

struct Fiber {
    ucontext_t context;
    uint3 idx;
    int linear;                 // threadIdx in row-major order; lane = linear % 32, warp = linear / 32
    Wait wait;
    uint64_t shfl_in, shfl_out; // a shuffle's value in and out (raw bits: works for float, int, unsigned)
    int shfl_src;               // lane to read from, -1 for "keep my own value"
    unsigned int ballot_in;
};

// ---------------------------------------------------------------------------------------------- racecheck
// What the racecheck knows of one 4-byte word of shared memory: its last write and up to two reads by different
// warps, each stamped with the barrier interval (epoch) it happened in. Two readers are enough: a later writer of
// another warp than the first reader races with it, and a writer of the first reader's warp with the second.
struct Word {
    uint32_t write_epoch, read_epoch, read2_epoch;
    uint16_t writer, reader, reader2;   // linear thread indices
    bool shared;                        // static memory: whether the word belongs to a __shared__ variable
};

// The first race of a launch, for emulator.py (which names the array and the index): keep in step with _Race there.
struct Race {
    uint64_t address;          // static shared memory: the address; dynamic: the byte offset into the buffer
    int32_t dynamic;
    int32_t first_thread, first_write, second_thread, second_write;
    uint32_t block[3];
    int64_t count;             // racing accesses in the whole launch
};

struct Racecheck {
    bool active;               // a fiber is running and the launch asked for the racecheck
    int thread;                // the running fiber's linear index
    uint32_t epoch;            // one more at every block start and every barrier
    uintptr_t static_lo, static_span, dynamic_lo, dynamic_span;
    Word *static_words, *dynamic_words;
    Race* report;
    uint32_t block[3];
};
inline Racecheck racecheck;

TL_UNCHECKED inline void found_race(uintptr_t address, bool dynamic, int earlier, bool earlier_write, bool write) {
    Racecheck& r = racecheck;
    if (r.report->count++ > 0) return;
    *r.report = Race{address, dynamic, earlier, earlier_write, r.thread, write,
                     {r.block[0], r.block[1], r.block[2]}, 1};
}

TL_UNCHECKED inline void check_word(Word& w, uintptr_t address, bool dynamic, bool write) {
    Racecheck& r = racecheck;
    const int warp = r.thread / 32;
    const bool written = w.write_epoch == r.epoch && w.writer / 32 != warp;
    if (write) {
        if (written) found_race(address, dynamic, w.writer, true, true);
        else if (w.read_epoch == r.epoch && w.reader / 32 != warp)
            found_race(address, dynamic, w.reader, false, true);
        else if (w.read2_epoch == r.epoch && w.reader2 / 32 != warp)
            found_race(address, dynamic, w.reader2, false, true);
        w.write_epoch = r.epoch;
        w.writer = (uint16_t)r.thread;
        return;
    }
    if (written) found_race(address, dynamic, w.writer, true, false);
    if (w.read_epoch != r.epoch) {
        w.read_epoch = r.epoch;
        w.reader = (uint16_t)r.thread;
    } else if (w.reader / 32 != warp && w.read2_epoch != r.epoch) {
        w.read2_epoch = r.epoch;
        w.reader2 = (uint16_t)r.thread;
    }
}

TL_UNCHECKED inline void on_access(const void* pointer, uintptr_t size, bool write) {
    Racecheck& r = racecheck;
    if (!r.active) return;
    const uintptr_t a = (uintptr_t)pointer;
    if (a - r.static_lo < r.static_span) {
        for (uintptr_t i = (a - r.static_lo) / 4, last = (a + size - 1 - r.static_lo) / 4; i <= last; ++i)
            if (r.static_words[i].shared) check_word(r.static_words[i], r.static_lo + 4 * i, false, write);
    } else if (a - r.dynamic_lo < r.dynamic_span) {
        for (uintptr_t i = (a - r.dynamic_lo) / 4, last = (a + size - 1 - r.dynamic_lo) / 4; i <= last; ++i)
            check_word(r.dynamic_words[i], 4 * i, true, write);
    }
}

// ---------------------------------------------------------------------------------------------- fibers
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
    Policy policy = LOCKSTEP;
    uint64_t random = 0;                       // the random schedule's splitmix64 state
    std::vector<Word> static_words, dynamic_words;
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

// Run fiber i until it waits at a barrier or a warp operation, or ends.
inline void resume(int i) {
    State& s = state();
    s.current = i;
    racecheck.thread = i;
    racecheck.active = racecheck.report != nullptr;
    swapcontext(&s.scheduler, &s.fibers[i].context);
    racecheck.active = false;
}

inline uint64_t next_random() {   // splitmix64
    uint64_t z = (state().random += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

inline int warp_size(int w) { return std::min(32, (int)state().fibers.size() - 32 * w); }

inline bool warp_running(int w) {
    const Fiber* f = &state().fibers[32 * w];
    for (int i = 0; i < warp_size(w); ++i) if (f[i].wait == RUNNING) return true;
    return false;
}

// Whether warp w can pass its warp operation: every live lane waits at one (and at least one lane is live).
inline bool warp_ready(int w) {
    const Fiber* f = &state().fibers[32 * w];
    bool waiting = false;
    for (int i = 0; i < warp_size(w); ++i) {
        if (f[i].wait != AT_WARP && f[i].wait != DONE) return false;
        waiting |= f[i].wait == AT_WARP;
    }
    return waiting;
}

// Release a ready warp: compute every lane's shuffle result from the values as they were, then let them go on.
inline void release_warp(int w) {
    Fiber* f = &state().fibers[32 * w];
    const int count = warp_size(w);
    unsigned int ballot = 0;
    for (int i = 0; i < count; ++i)
        if (f[i].wait == AT_WARP) ballot |= f[i].ballot_in << i;
    for (int i = 0; i < count; ++i) {   // every lane reads before any lane is released
        if (f[i].wait != AT_WARP) continue;
        int src = f[i].shfl_src;
        bool valid = src >= 0 && src < count && f[src].wait == AT_WARP;
        f[i].shfl_out = valid ? f[src].shfl_in : f[i].shfl_in;
        f[i].ballot_in = ballot;
    }
    for (int i = 0; i < count; ++i)
        if (f[i].wait == AT_WARP) f[i].wait = RUNNING;
}

// Run warp w's running lanes to their next stop: in lane order, or reversed or shuffled as the policy says.
inline void step_warp(int w) {
    State& s = state();
    int lanes[32], count = warp_size(w);
    for (int i = 0; i < count; ++i) lanes[i] = s.policy == REVERSED ? count - 1 - i : i;
    if (s.policy == RANDOM)
        for (int i = count - 1; i > 0; --i) std::swap(lanes[i], lanes[next_random() % (i + 1)]);
    for (int i = 0; i < count; ++i)
        if (s.fibers[32 * w + lanes[i]].wait == RUNNING) resume(32 * w + lanes[i]);
}

// The warp that moves next (it has a running lane or can pass its warp operation), or -1 when none can.
inline int pick_warp(int warps) {
    int candidates[32], k = 0;
    for (int w = 0; w < warps; ++w)
        if (warp_running(w) || warp_ready(w)) candidates[k++] = w;
    if (k == 0) return -1;
    const Policy policy = state().policy;
    return policy == WARP_AT_A_TIME ? candidates[0] : policy == REVERSED ? candidates[k - 1]
                                                                         : candidates[next_random() % k];
}

// Run one block to completion under the launch's schedule; release a barrier when every live thread reached it.
inline int run_block(char* err, int err_len, const char* kernel) {
    State& s = state();
    const int n = (int)s.fibers.size(), warps = (n + 31) / 32;
    for (int i = 0; i < n; ++i) {
        Fiber& f = s.fibers[i];
        f.wait = RUNNING;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = s.stacks.data() + (size_t)i * s.stack_size;
        f.context.uc_stack.ss_size = s.stack_size;
        f.context.uc_link = &s.scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    ++racecheck.epoch;
    for (;;) {
        if (s.policy == LOCKSTEP) {   // every fiber to its next stop, then every warp that can go on
            for (int i = 0; i < n; ++i) if (s.fibers[i].wait == RUNNING) resume(i);
            for (int w = 0; w < warps; ++w) if (warp_ready(w)) release_warp(w);
        } else {
            int w = pick_warp(warps);
            if (w >= 0) {
                if (warp_running(w)) step_warp(w);
                else release_warp(w);
                continue;
            }
        }
        int done = 0, at_barrier = 0, running = 0;
        for (auto& f : s.fibers) {
            done += f.wait == DONE;
            at_barrier += f.wait == AT_BARRIER;
            running += f.wait == RUNNING;
        }
        if (done == n) return 0;
        if (running > 0) continue;
        if (at_barrier > 0 && at_barrier + done == n) {
            for (auto& f : s.fibers) if (f.wait == AT_BARRIER) f.wait = RUNNING;
            ++racecheck.epoch;   // a new barrier interval: nothing before it races with anything after it
            continue;
        }
        snprintf(err, err_len, "kernel %s deadlocked in block (%u, %u, %u): threads wait at a barrier or "
                 "warp operation that the others never reach", kernel, s.block_idx.x, s.block_idx.y, s.block_idx.z);
        return 2;
    }
}

inline void on_fault(int, siginfo_t* info, void*) {
    State& s = state();
    racecheck.active = false;
    s.fault_address = (uintptr_t)info->si_addr;
    siglongjmp(s.fault_jump, 1);
}

// Point the racecheck at this launch's shared memory: the __shared__ variables (pairs (start, end) of addresses,
// as emulator.py found them in the library's symbol table) and the dynamic buffer.
inline void prepare_racecheck(const uintptr_t* shared, int n_shared, char* dynamic, size_t dynamic_size, Race* report) {
    State& s = state();
    Racecheck& r = racecheck;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < n_shared; ++i) { lo = std::min(lo, shared[2 * i]); hi = std::max(hi, shared[2 * i + 1]); }
    if (n_shared == 0) lo = hi = 0;
    lo &= ~(uintptr_t)3;
    if (lo != r.static_lo || hi - lo != r.static_span) {   // the same library keeps its records between launches
        s.static_words.assign((hi - lo) / 4 + 4, Word{});
        for (int i = 0; i < n_shared; ++i)
            for (uintptr_t a = shared[2 * i] & ~(uintptr_t)3; a < shared[2 * i + 1]; a += 4)
                s.static_words[(a - lo) / 4].shared = true;
        r.static_lo = lo;
        r.static_span = hi - lo;
        r.static_words = s.static_words.data();
    }
    if (s.dynamic_words.size() < dynamic_size / 4 + 4) s.dynamic_words.resize(dynamic_size / 4 + 4, Word{});
    r.dynamic_lo = (uintptr_t)dynamic;
    r.dynamic_span = dynamic_size;
    r.dynamic_words = s.dynamic_words.data();
    r.report = report;
}

inline int launch(void (*body)(void**), const char* kernel, dim3 grid, dim3 block, size_t smem, void** args,
                  const uintptr_t* guards, int n_guards, int policy, uint64_t seed, const uintptr_t* shared,
                  int n_shared, Race* race, char* err, int err_len) {
    State& s = state();
    int n = (int)(block.x * block.y * block.z);
    if (n < 1 || n > 1024) {
        snprintf(err, err_len, "kernel %s: %d threads per block (CUDA allows 1 to 1024)", kernel, n);
        return 3;
    }
    s.body = body; s.args = args; s.grid_dim = grid; s.block_dim = block;
    s.guards = guards; s.n_guards = n_guards;
    s.policy = (Policy)policy;
    std::vector<char> smem_buffer(smem + 16);
    s.dynamic_smem = smem_buffer.data();
    prepare_racecheck(shared, n_shared, smem_buffer.data(), smem, race);
    s.fibers.assign(n, Fiber());
    if (s.stacks.size() < (size_t)n * s.stack_size) s.stacks.resize((size_t)n * s.stack_size);   // reused as is
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
                    racecheck.block[0] = x; racecheck.block[1] = y; racecheck.block[2] = z;
                    s.random = seed ^ (0x9E3779B97F4A7C15ull * (1 + x + (uint64_t)grid.x * (y + (uint64_t)grid.y * z)));
                    // fresh shared memory is garbage on a GPU: make reads before writes visible
                    std::memset(smem_buffer.data(), 0xff, smem_buffer.size());
                    for (int i = 0; i < n_shared; ++i)
                        std::memset((void*)shared[2 * i], 0xff, shared[2 * i + 1] - shared[2 * i]);
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
    racecheck.report = nullptr;
    racecheck.dynamic_span = 0;
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

// ---------------------------------------------------------------------------------------------- racecheck hooks
// What g++'s -fsanitize=thread instrumentation calls (GCC's names and signatures): every access goes to the
// racecheck; function entry/exit are not instrumented (--param=tsan-instrument-func-entry-exit=0).
extern "C" {
TL_UNCHECKED void __tsan_init() {}
#define TL_ACCESS_HOOKS(n)                                                                                          \
    TL_UNCHECKED void __tsan_read##n(void* a) { tl_emu::on_access(a, n, false); }                                  \
    TL_UNCHECKED void __tsan_write##n(void* a) { tl_emu::on_access(a, n, true); }                                  \
    TL_UNCHECKED void __tsan_unaligned_read##n(void* a) { tl_emu::on_access(a, n, false); }                        \
    TL_UNCHECKED void __tsan_unaligned_write##n(void* a) { tl_emu::on_access(a, n, true); }
TL_ACCESS_HOOKS(1)
TL_ACCESS_HOOKS(2)
TL_ACCESS_HOOKS(4)
TL_ACCESS_HOOKS(8)
TL_ACCESS_HOOKS(16)
TL_UNCHECKED void __tsan_read_range(void* a, unsigned long size) { if (size) tl_emu::on_access(a, size, false); }
TL_UNCHECKED void __tsan_write_range(void* a, unsigned long size) { if (size) tl_emu::on_access(a, size, true); }
TL_UNCHECKED void __tsan_vptr_read(void**) {}
TL_UNCHECKED void __tsan_vptr_update(void**, void*) {}
}

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

// One OS thread and switches only at sync points: a plain read-modify-write is atomic here (and
// unchecked: atomics on one address from different warps are no race).
TL_UNCHECKED inline float atomicAdd(float* address, float value) {
    float old = *address;
    *address = old + value;
    return old;
}
TL_UNCHECKED inline int atomicAdd(int* address, int value) {
    int old = *address;
    *address = old + value;
    return old;
}
TL_UNCHECKED inline float atomicMax(float* address, float value) {
    float old = *address;
    *address = fmaxf(old, value);
    return old;
}

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
template <typename T> inline T __ldg(const T* p) { return *p; }
using std::max;
using std::min;
