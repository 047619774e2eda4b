// flash_attention.cu: causal / non-causal scaled dot-product attention for (B, H, T, D) float32, D = 32, 64, 128,
// without ever storing the T x T matrix (FlashAttention, Dao et al. 2022), for any T >= 1.
//
// Forward: each thread owns one query row. The block walks K/V in tiles through shared memory (causal: only up
// to the diagonal of its last row) and keeps an online softmax: running max m, running sum l, and the output
// accumulator rescaled by exp(m_old - m_new) whenever the max grows. It writes O and lse = m + log(l).
// Backward: P_ij = exp(s_ij - lse_i) is recomputed from Q, K and lse; Dvec_i = rowsum(dO_i * O_i) (its own
// kernel); dS = P * (dP - Dvec). One kernel gives dK, dV (a thread per key row, walking query tiles), another
// gives dQ (a thread per query row, walking key tiles): no atomics, deterministic.
// Dropout on P uses a counter-based hash of (seed, batch-head, row, col), regenerated identically in backward.
// The NumPy mirror of this algorithm is tensorlite/cuda/mirror.py; launch specs are in tensorlite/cuda/launch.py.
#include "common.cuh"

#define FA_ROWS 64   // query rows per block (forward, dQ) = key rows per block (dK/dV) = threads per block
#define FA_TILE 32   // rows of the tile walked through shared memory

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
    __shared__ float k_tile[FA_TILE * D];
    __shared__ float v_tile[FA_TILE * D];
    const int bh = blockIdx.y, first_row = blockIdx.x * FA_ROWS, i = first_row + threadIdx.x;
    const size_t base = (size_t)bh * T * D;
    const bool active = i < T;
    float q[D], acc[D];
    for (int d = 0; d < D; ++d) {
        q[d] = active ? Q[base + (size_t)i * D + d] * scale : 0.0f;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last_key = causal ? min(T, first_row + FA_ROWS) : T;   // the block's keys: up to its last row
    for (int start = 0; start < last_key; start += FA_TILE) {
        load_tile<D>(k_tile, K + base, start, T);
        load_tile<D>(v_tile, V + base, start, T);
        __syncthreads();
        if (active) {
            float s[FA_TILE];
            float tile_max = -INFINITY;
            for (int j = 0; j < FA_TILE; ++j) {
                int key = start + j;
                bool visible = key < T && (!causal || key <= i);
                float dot = 0.0f;
                for (int d = 0; d < D; ++d) dot += q[d] * k_tile[j * D + d];
                s[j] = visible ? dot : -INFINITY;
                tile_max = fmaxf(tile_max, s[j]);
            }
            if (tile_max > -INFINITY) {
                float m_new = fmaxf(m, tile_max);
                float correction = expf(m - m_new);       // 0 on the first visible tile (m = -inf)
                l *= correction;
                for (int d = 0; d < D; ++d) acc[d] *= correction;
                for (int j = 0; j < FA_TILE; ++j) {
                    float p = expf(s[j] - m_new);          // 0 for masked keys
                    l += p;
                    float a = p * dropout_keep(dropout_p, seed, bh, i, start + j);
                    for (int d = 0; d < D; ++d) acc[d] += a * v_tile[j * D + d];
                }
                m = m_new;
            }
        }
        __syncthreads();
    }
    if (active) {
        for (int d = 0; d < D; ++d) O[base + (size_t)i * D + d] = acc[d] / l;
        LSE[(size_t)bh * T + i] = m + logf(l);
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

// dK and dV: each thread owns key row j and walks the query tiles that can see it.
template <int D>
__device__ void dkdv_impl(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                          const float* __restrict__ dO, const float* __restrict__ LSE,
                          const float* __restrict__ Dvec, float* __restrict__ dK, float* __restrict__ dV, int T,
                          float scale, int causal, float dropout_p, unsigned int seed) {
    __shared__ float q_tile[FA_TILE * D];
    __shared__ float do_tile[FA_TILE * D];
    __shared__ float lse_tile[FA_TILE];
    __shared__ float d_tile[FA_TILE];
    const int bh = blockIdx.y, first_key = blockIdx.x * FA_ROWS, j = first_key + threadIdx.x;
    const size_t base = (size_t)bh * T * D;
    const bool active = j < T;
    float k[D], v[D], dk[D], dv[D];
    for (int d = 0; d < D; ++d) {
        k[d] = active ? K[base + (size_t)j * D + d] : 0.0f;
        v[d] = active ? V[base + (size_t)j * D + d] : 0.0f;
        dk[d] = 0.0f;
        dv[d] = 0.0f;
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
        if (active) {
            for (int r = 0; r < FA_TILE; ++r) {
                int i = start + r;
                if (i >= T || (causal && j > i)) continue;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; ++d) {
                    s += q_tile[r * D + d] * k[d];
                    dp += do_tile[r * D + d] * v[d];
                }
                float p = expf(s * scale - lse_tile[r]);
                float keep = dropout_keep(dropout_p, seed, bh, i, j);
                float ds = p * (dp * keep - d_tile[r]);
                for (int d = 0; d < D; ++d) {
                    dv[d] += p * keep * do_tile[r * D + d];
                    dk[d] += ds * q_tile[r * D + d];
                }
            }
        }
        __syncthreads();
    }
    if (active)
        for (int d = 0; d < D; ++d) {
            dK[base + (size_t)j * D + d] = dk[d] * scale;
            dV[base + (size_t)j * D + d] = dv[d];
        }
}

// dQ: each thread owns query row i and walks the key tiles it can see.
template <int D>
__device__ void dq_impl(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                        const float* __restrict__ dO, const float* __restrict__ LSE, const float* __restrict__ Dvec,
                        float* __restrict__ dQ, int T, float scale, int causal, float dropout_p, unsigned int seed) {
    __shared__ float k_tile[FA_TILE * D];
    __shared__ float v_tile[FA_TILE * D];
    const int bh = blockIdx.y, first_row = blockIdx.x * FA_ROWS, i = first_row + threadIdx.x;
    const size_t base = (size_t)bh * T * D;
    const bool active = i < T;
    float q[D], g[D], dq[D];
    for (int d = 0; d < D; ++d) {
        q[d] = active ? Q[base + (size_t)i * D + d] : 0.0f;
        g[d] = active ? dO[base + (size_t)i * D + d] : 0.0f;
        dq[d] = 0.0f;
    }
    const float lse = active ? LSE[(size_t)bh * T + i] : 0.0f;
    const float delta = active ? Dvec[(size_t)bh * T + i] : 0.0f;
    const int last_key = causal ? min(T, first_row + FA_ROWS) : T;
    for (int start = 0; start < last_key; start += FA_TILE) {
        load_tile<D>(k_tile, K + base, start, T);
        load_tile<D>(v_tile, V + base, start, T);
        __syncthreads();
        if (active) {
            for (int c = 0; c < FA_TILE; ++c) {
                int j = start + c;
                if (j >= T || (causal && j > i)) continue;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; ++d) {
                    s += q[d] * k_tile[c * D + d];
                    dp += g[d] * v_tile[c * D + d];
                }
                float p = expf(s * scale - lse);
                float ds = p * (dp * dropout_keep(dropout_p, seed, bh, i, j) - delta);
                for (int d = 0; d < D; ++d) dq[d] += ds * k_tile[c * D + d];
            }
        }
        __syncthreads();
    }
    if (active)
        for (int d = 0; d < D; ++d) dQ[base + (size_t)i * D + d] = dq[d] * scale;
}

// Entry points, one per head size (the head size is a template argument so q/acc live in registers).
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
