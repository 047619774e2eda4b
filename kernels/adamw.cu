// adamw.cu: one AdamW step over a whole parameter group stored in one flat buffer (one launch per group
// instead of ~10 elementwise launches per parameter). Reference: tensorlite/optim.py AdamW.
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / bc1 * m / (sqrt(v / bc2) + eps),  bc1 = 1 - b1^t,  bc2 = 1 - b2^t
#include "common.cuh"

extern "C" __global__ void adamw_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                      float* __restrict__ v, long long n, float lr, float beta1, float beta2,
                                      float eps, float weight_decay, float bias_correction1,
                                      float bias_correction2) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float grad = g[i];
        float m_i = beta1 * m[i] + (1.0f - beta1) * grad;
        float v_i = beta2 * v[i] + (1.0f - beta2) * grad * grad;
        m[i] = m_i;
        v[i] = v_i;
        float denom = sqrtf(v_i / bias_correction2) + eps;
        p[i] = p[i] * (1.0f - lr * weight_decay) - lr / bias_correction1 * m_i / denom;
    }
}
