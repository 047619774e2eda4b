// flash_attention.cu: causal / non-causal scaled dot-product attention for (B, H, T, D) float32, D = 32, 64, 128,
// without ever storing the T x T matrix (FlashAttention, Dao et al. 2022), for any T >= 1.
//
// Forward: each query row is owned by D / 32 threads, each holding 32 of its D dimensions (so a thread's state is
// the same few dozen registers for every head size: with whole rows per thread, D = 64 spilled to local memory in
// backward); a dot product over D is the row's threads' partial sums added by warp shuffles. The block walks K/V in
// tiles through shared memory (causal: only up to the diagonal of its last row) and keeps an online softmax:
// running max m, running sum l, and the output accumulator rescaled by exp(m_old - m_new) whenever the max grows.
// It writes O and lse = m + log(l).
// Backward: P_ij = exp(s_ij - lse_i) is recomputed from Q, K and lse; Dvec_i = rowsum(dO_i * O_i) (its own
// kernel); dS = P * (dP - Dvec). One kernel gives dK, dV (a key row per D / 32 threads, walking query tiles),
// another gives dQ (a query row per D / 32 threads, walking key tiles): no atomics, deterministic.
// Every thread of a warp reaches every shuffle: rows past T and masked entries compute zeros instead of branching
// around the shuffles.
// Dropout on P uses a counter-based hash of (seed, batch-head, row, col), regenerated identically in backward.
// The NumPy mirror of this algorithm is tensorlite/cuda/mirror.py; launch specs are in tensorlite/cuda/launch.py.
#include "common.cuh"

// FA_ROWS: query rows per block (forward, dQ) = key rows per block (dK/dV); FA_TILE: rows of the tile walked
// through shared memory; FA_PART: dimensions per thread, so a block has FA_ROWS * D / FA_PART threads.
#if !defined(FA_ROWS) || !defined(FA_TILE) || !defined(FA_PART)
#error "FA_ROWS, FA_TILE and FA_PART are -D macros from tensorlite/cuda/launch.py (KERNEL_DEFINES)"
#endif

// The k-th of the FA_PART dimensions that thread `part` of a row (0 <= part < S = D / FA_PART) owns. The parts
// interleave in runs of 4 floats, so one float4 read of a shared tile row by the S threads of a row touches S
// different 16-byte segments (no bank conflict) and each thread's run stays contiguous.
template <int S>
__device__ __forceinline__ int part_dim(int part, int k) {
    return 4 * (S * (k / 4) + part) + k % 4;
}

// The sum of `partial` over the S consecutive lanes that own one row; each of them gets the same sum.
template <int S>
__device__ __forceinline__ float row_sum(float partial) {
    for (int offset = S / 2; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
    return partial;
}

// Multiplier of P_ij after dropout: 0 or 1 / (1 - p).
__device__ __forceinline__ float dropout_keep(float p, unsigned int seed, unsigned int bh, int i, int j) {
    if (p <= 0.0f) return 1.0f;
    return dropout_uniform(seed, bh, (unsigned int)i, (unsigned int)j) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// Load rows [start, start + FA_TILE) of a (T, D) matrix into shared memory; rows past T become zeros.
template <int D>
__device__ __forceinline__ void load_tile(float* tile, const float* __restrict__ src, int start, int T) {
    for (int e = threadIdx.x; e < FA_TILE * D; e += blockDim.x) {
        int row = start + e / D;
        tile[e] = row < T ? src[(size_t)row * D + e % D] : 0.0f;
    }
}

template <int D>
__device__ void forward_impl(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                             float* __restrict__ O, float* __restrict__ LSE, int T, float scale, int causal,
                             float dropout_p, unsigned int seed) {
    constexpr int S = D / FA_PART;
    __shared__ float k_tile[FA_TILE * D];
    __shared__ float v_tile[FA_TILE * D];
    const int bh = blockIdx.y, first_row = blockIdx.x * FA_ROWS;
    const int i = first_row + threadIdx.x / S, part = threadIdx.x % S;
    const size_t base = (size_t)bh * T * D;
    const bool active = i < T;
    float q[FA_PART], acc[FA_PART];
    for (int k = 0; k < FA_PART; ++k) {
        q[k] = active ? Q[base + (size_t)i * D + part_dim<S>(part, k)] * scale : 0.0f;
        acc[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last_key = causal ? min(T, first_row + FA_ROWS) : T;   // the block's keys: up to its last row
    for (int start = 0; start < last_key; start += FA_TILE) {
        load_tile<D>(k_tile, K + base, start, T);
        load_tile<D>(v_tile, V + base, start, T);
        __syncthreads();
        float s[FA_TILE];
        float tile_max = -INFINITY;
        for (int j = 0; j < FA_TILE; ++j) {
            int key = start + j;
            float dot = 0.0f;
            for (int k = 0; k < FA_PART; ++k) dot += q[k] * k_tile[j * D + part_dim<S>(part, k)];
            dot = row_sum<S>(dot);
            s[j] = active && key < T && (!causal || key <= i) ? dot : -INFINITY;
            tile_max = fmaxf(tile_max, s[j]);
        }
        if (tile_max > -INFINITY) {   // the same for the row's S threads: no shuffles inside
            float m_new = fmaxf(m, tile_max);
            float correction = expf(m - m_new);       // 0 on the first visible tile (m = -inf)
            l *= correction;
            for (int k = 0; k < FA_PART; ++k) acc[k] *= correction;
            for (int j = 0; j < FA_TILE; ++j) {
                float p = expf(s[j] - m_new);          // 0 for masked keys
                l += p;
                float a = p * dropout_keep(dropout_p, seed, bh, i, start + j);
                for (int k = 0; k < FA_PART; ++k) acc[k] += a * v_tile[j * D + part_dim<S>(part, k)];
            }
            m = m_new;
        }
        __syncthreads();
    }
    if (active) {
        for (int k = 0; k < FA_PART; ++k) O[base + (size_t)i * D + part_dim<S>(part, k)] = acc[k] / l;
        if (part == 0) LSE[(size_t)bh * T + i] = m + logf(l);
    }
}

// Dvec_i = sum_d dO_id * O_id: one thread per (bh, i) row.
extern "C" __global__ void flash_attn_bwd_dot(const float* __restrict__ dO, const float* __restrict__ O,
                                              float* __restrict__ Dvec, int rows, int D) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float sum = 0.0f;
    for (int d = 0; d < D; ++d) sum += dO[(size_t)r * D + d] * O[(size_t)r * D + d];
    Dvec[r] = sum;
}

// dK and dV: the S threads of key row j walk the query tiles that can see it.
template <int D>
__device__ void dkdv_impl(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                          const float* __restrict__ dO, const float* __restrict__ LSE,
                          const float* __restrict__ Dvec, float* __restrict__ dK, float* __restrict__ dV, int T,
                          float scale, int causal, float dropout_p, unsigned int seed) {
    constexpr int S = D / FA_PART;
    __shared__ float q_tile[FA_TILE * D];
    __shared__ float do_tile[FA_TILE * D];
    __shared__ float lse_tile[FA_TILE];
    __shared__ float d_tile[FA_TILE];
    const int bh = blockIdx.y, first_key = blockIdx.x * FA_ROWS;
    const int j = first_key + threadIdx.x / S, part = threadIdx.x % S;
    const size_t base = (size_t)bh * T * D;
    const bool active = j < T;
    float k[FA_PART], v[FA_PART], dk[FA_PART], dv[FA_PART];
    for (int e = 0; e < FA_PART; ++e) {
        const size_t at = base + (size_t)j * D + part_dim<S>(part, e);
        k[e] = active ? K[at] : 0.0f;
        v[e] = active ? V[at] : 0.0f;
        dk[e] = 0.0f;
        dv[e] = 0.0f;
    }
    const int first_query = causal ? (first_key / FA_TILE) * FA_TILE : 0;   // earlier queries cannot see these keys
    for (int start = first_query; start < T; start += FA_TILE) {
        load_tile<D>(q_tile, Q + base, start, T);
        load_tile<D>(do_tile, dO + base, start, T);
        for (int r = threadIdx.x; r < FA_TILE; r += blockDim.x) {
            bool in = start + r < T;
            lse_tile[r] = in ? LSE[(size_t)bh * T + start + r] : 0.0f;
            d_tile[r] = in ? Dvec[(size_t)bh * T + start + r] : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < FA_TILE; ++r) {
            int i = start + r;
            float s = 0.0f, dp = 0.0f;
            for (int e = 0; e < FA_PART; ++e) {
                int d = part_dim<S>(part, e);
                s += q_tile[r * D + d] * k[e];
                dp += do_tile[r * D + d] * v[e];
            }
            s = row_sum<S>(s);
            dp = row_sum<S>(dp);
            bool visible = active && i < T && (!causal || j <= i);
            float p = visible ? expf(s * scale - lse_tile[r]) : 0.0f;   // masked: no contribution below
            float keep = dropout_keep(dropout_p, seed, bh, i, j);
            float ds = p * (dp * keep - d_tile[r]);
            for (int e = 0; e < FA_PART; ++e) {
                int d = part_dim<S>(part, e);
                dv[e] += p * keep * do_tile[r * D + d];
                dk[e] += ds * q_tile[r * D + d];
            }
        }
        __syncthreads();
    }
    if (active)
        for (int e = 0; e < FA_PART; ++e) {
            const size_t at = base + (size_t)j * D + part_dim<S>(part, e);
            dK[at] = dk[e] * scale;
            dV[at] = dv[e];
        }
}

// dQ: the S threads of query row i walk the key tiles it can see.
template <int D>
__device__ void dq_impl(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                        const float* __restrict__ dO, const float* __restrict__ LSE, const float* __restrict__ Dvec,
                        float* __restrict__ dQ, int T, float scale, int causal, float dropout_p, unsigned int seed) {
    constexpr int S = D / FA_PART;
    __shared__ float k_tile[FA_TILE * D];
    __shared__ float v_tile[FA_TILE * D];
    const int bh = blockIdx.y, first_row = blockIdx.x * FA_ROWS;
    const int i = first_row + threadIdx.x / S, part = threadIdx.x % S;
    const size_t base = (size_t)bh * T * D;
    const bool active = i < T;
    float q[FA_PART], g[FA_PART], dq[FA_PART];
    for (int e = 0; e < FA_PART; ++e) {
        const size_t at = base + (size_t)i * D + part_dim<S>(part, e);
        q[e] = active ? Q[at] : 0.0f;
        g[e] = active ? dO[at] : 0.0f;
        dq[e] = 0.0f;
    }
    const float lse = active ? LSE[(size_t)bh * T + i] : 0.0f;
    const float delta = active ? Dvec[(size_t)bh * T + i] : 0.0f;
    const int last_key = causal ? min(T, first_row + FA_ROWS) : T;
    for (int start = 0; start < last_key; start += FA_TILE) {
        load_tile<D>(k_tile, K + base, start, T);
        load_tile<D>(v_tile, V + base, start, T);
        __syncthreads();
        for (int c = 0; c < FA_TILE; ++c) {
            int j = start + c;
            float s = 0.0f, dp = 0.0f;
            for (int e = 0; e < FA_PART; ++e) {
                int d = part_dim<S>(part, e);
                s += q[e] * k_tile[c * D + d];
                dp += g[e] * v_tile[c * D + d];
            }
            s = row_sum<S>(s);
            dp = row_sum<S>(dp);
            bool visible = active && j < T && (!causal || j <= i);
            float p = visible ? expf(s * scale - lse) : 0.0f;
            float ds = p * (dp * dropout_keep(dropout_p, seed, bh, i, j) - delta);
            for (int e = 0; e < FA_PART; ++e) dq[e] += ds * k_tile[c * D + part_dim<S>(part, e)];
        }
        __syncthreads();
    }
    if (active)
        for (int e = 0; e < FA_PART; ++e) dQ[base + (size_t)i * D + part_dim<S>(part, e)] = dq[e] * scale;
}

// Entry points, one per head size (a template argument: the per-thread arrays and loops have fixed sizes, so
// they live in registers and unroll).
#define FA_FORWARD_ARGS const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V, \
    float* __restrict__ O, float* __restrict__ LSE, int T, float scale, int causal, float dropout_p, unsigned int seed
#define FA_DKDV_ARGS const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V, \
    const float* __restrict__ dO, const float* __restrict__ LSE, const float* __restrict__ Dvec, \
    float* __restrict__ dK, float* __restrict__ dV, int T, float scale, int causal, float dropout_p, unsigned int seed
#define FA_DQ_ARGS const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V, \
    const float* __restrict__ dO, const float* __restrict__ LSE, const float* __restrict__ Dvec, \
    float* __restrict__ dQ, int T, float scale, int causal, float dropout_p, unsigned int seed

extern "C" __global__ void flash_attn_fwd_d32(FA_FORWARD_ARGS) {
    forward_impl<32>(Q, K, V, O, LSE, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_fwd_d64(FA_FORWARD_ARGS) {
    forward_impl<64>(Q, K, V, O, LSE, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_fwd_d128(FA_FORWARD_ARGS) {
    forward_impl<128>(Q, K, V, O, LSE, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dkdv_d32(FA_DKDV_ARGS) {
    dkdv_impl<32>(Q, K, V, dO, LSE, Dvec, dK, dV, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dkdv_d64(FA_DKDV_ARGS) {
    dkdv_impl<64>(Q, K, V, dO, LSE, Dvec, dK, dV, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dkdv_d128(FA_DKDV_ARGS) {
    dkdv_impl<128>(Q, K, V, dO, LSE, Dvec, dK, dV, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dq_d32(FA_DQ_ARGS) {
    dq_impl<32>(Q, K, V, dO, LSE, Dvec, dQ, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dq_d64(FA_DQ_ARGS) {
    dq_impl<64>(Q, K, V, dO, LSE, Dvec, dQ, T, scale, causal, dropout_p, seed);
}
extern "C" __global__ void flash_attn_bwd_dq_d128(FA_DQ_ARGS) {
    dq_impl<128>(Q, K, V, dO, LSE, Dvec, dQ, T, scale, causal, dropout_p, seed);
}
