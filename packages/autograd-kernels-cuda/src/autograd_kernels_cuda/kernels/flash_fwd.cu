// FlashAttention-2 forward: a block owns FLASH_ROWS query rows of one (batch, head); each thread owns one row.
// Key/value tiles of FlashTile<D> rows are staged in shared memory; each thread keeps its query row, the running
// max m, the running sum l and the output accumulator in registers (online softmax), in float32.
// Saves only the output and the per-row log-sum-exp. Causal tiles entirely above the diagonal are skipped.
//
// Layout: q (BH, Tq, D), k and v (BH, Tk, D), out (BH, Tq, D), lse (BH, Tq) float32; all contiguous.
// Causal (bottom-right aligned): query i sees key j when j <= i + Tk - Tq.
#include "common.cuh"

template <typename T, int D>
__device__ void flash_fwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                          T* __restrict__ out, float* __restrict__ lse, int tq, int tk, float scale, int causal,
                          float dropout_p, unsigned long long seed) {
    constexpr int TILE = FlashTile<D>::value;
    __shared__ float ks[TILE][D];
    __shared__ float vs[TILE][D];
    const int bh = blockIdx.y;
    const int row = blockIdx.x * FLASH_ROWS + threadIdx.x;
    const bool active = row < tq;
    const int offset = tk - tq;
    const T* qb = q + (size_t)bh * tq * D;
    const T* kb = k + (size_t)bh * tk * D;
    const T* vb = v + (size_t)bh * tk * D;

    float qr[D];
    float acc[D];
    for (int d = 0; d < D; ++d) {
        qr[d] = active ? to_float(qb[(size_t)row * D + d]) * scale : 0.0f;
        acc[d] = 0.0f;
    }
    float m = flash_neg_inf();
    float l = 0.0f;

    // Keys after the last one the block's last row can see are never loaded.
    const int kend = causal_key_end(tq, tk, causal);
    for (int k0 = 0; k0 < kend; k0 += TILE) {
        stage_tiles<T, TILE, D>(ks, vs, kb, vb, k0, tk);
        __syncthreads();
        if (active) {
            const int jmax = min(TILE, tk - k0);
            for (int j = 0; j < jmax; ++j) {
                const int col = k0 + j;
                float s = 0.0f;
                for (int d = 0; d < D; ++d) s += qr[d] * ks[j][d];
                if (causal && col > row + offset) s += FLASH_NEG;
                const float m_new = fmaxf(m, s);
                const float alpha = __expf(m - m_new);
                const float p = __expf(s - m_new);
                l = l * alpha + p;
                const float pd = p * dropout_scale(seed, (unsigned int)bh, (unsigned int)row, (unsigned int)col,
                                                   dropout_p);
                for (int d = 0; d < D; ++d) acc[d] = acc[d] * alpha + pd * vs[j][d];
                m = m_new;
            }
        }
        __syncthreads();
    }
    if (active) {
        T* ob = out + ((size_t)bh * tq + row) * D;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < D; ++d) ob[d] = from_float<T>(acc[d] * inv);
        lse[(size_t)bh * tq + row] = l > 0.0f ? m + logf(l) : flash_neg_inf();
    }
}

#define FLASH_FWD(NAME, T, D)                                                                                      \
    extern "C" __global__ void __launch_bounds__(FLASH_ROWS)                                                      \
        NAME(const T* q, const T* k, const T* v, T* out, float* lse, int tq, int tk, float scale, int causal,     \
             float dropout_p, unsigned long long seed) {                                                          \
        flash_fwd<T, D>(q, k, v, out, lse, tq, tk, scale, causal, dropout_p, seed);                               \
    }

FLASH_FWD(flash_fwd_f32_d32, float, 32)
FLASH_FWD(flash_fwd_f32_d64, float, 64)
FLASH_FWD(flash_fwd_f32_d128, float, 128)
FLASH_FWD(flash_fwd_f16_d32, __half, 32)
FLASH_FWD(flash_fwd_f16_d64, __half, 64)
FLASH_FWD(flash_fwd_f16_d128, __half, 128)
FLASH_FWD(flash_fwd_bf16_d32, __nv_bfloat16, 32)
FLASH_FWD(flash_fwd_bf16_d64, __nv_bfloat16, 64)
FLASH_FWD(flash_fwd_bf16_d128, __nv_bfloat16, 128)
