// FlashAttention-2 backward, as two kernels that recompute the probabilities tile by tile from q, k and the
// forward's log-sum-exp (nothing of size Tq x Tk is read or written):
//
//   flash_bwd_dkdv: a block owns FLASH_ROWS key rows (one per thread) and walks the query tiles that can see
//                   them, accumulating dK and dV in registers;
//   flash_bwd_dq:   a block owns FLASH_ROWS query rows and walks the key tiles they can see, accumulating dQ.
//
// With p = exp(q.k * scale - lse), keep = the forward's dropout multiplier and delta = rowsum(dO * O):
//   dV_j += p keep dO_i;   dP = (dO_i . v_j) keep;   dS = p (dP - delta_i);
//   dQ_i += dS k_j scale;  dK_j += dS q_i scale.
// Layout as in flash_fwd.cu; delta and lse are (BH, Tq) float32; dq, dk, dv are written in the input dtype.
#include "common.cuh"

template <typename T, int D>
__device__ void flash_bwd_dkdv(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                               const T* __restrict__ dout, const float* __restrict__ lse,
                               const float* __restrict__ delta, T* __restrict__ dk, T* __restrict__ dv, int tq,
                               int tk, float scale, int causal, float dropout_p, unsigned long long seed) {
    constexpr int TILE = FlashTile<D>::value;
    __shared__ float qs[TILE][D];
    __shared__ float dos[TILE][D];
    __shared__ float lses[TILE];
    __shared__ float deltas[TILE];
    const int bh = blockIdx.y;
    const int col = blockIdx.x * FLASH_ROWS + threadIdx.x;  // this thread's key row
    const bool active = col < tk;
    const int offset = tk - tq;
    const T* qb = q + (size_t)bh * tq * D;
    const T* dob = dout + (size_t)bh * tq * D;

    float kr[D], vr[D], dkr[D], dvr[D];
    for (int d = 0; d < D; ++d) {
        kr[d] = active ? to_float(k[((size_t)bh * tk + col) * D + d]) : 0.0f;
        vr[d] = active ? to_float(v[((size_t)bh * tk + col) * D + d]) : 0.0f;
        dkr[d] = 0.0f;
        dvr[d] = 0.0f;
    }
    // The first query that can see the block's first key: earlier query tiles are skipped.
    int qstart = 0;
    if (causal) qstart = max(0, (int)(blockIdx.x * FLASH_ROWS) - offset) / TILE * TILE;
    for (int i0 = qstart; i0 < tq; i0 += TILE) {
        stage_tiles<T, TILE, D>(qs, dos, qb, dob, i0, tq);
        for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
            const bool in = i0 + i < tq;
            lses[i] = in ? lse[(size_t)bh * tq + i0 + i] : 0.0f;
            deltas[i] = in ? delta[(size_t)bh * tq + i0 + i] : 0.0f;
        }
        __syncthreads();
        if (active) {
            const int imax = min(TILE, tq - i0);
            for (int i = 0; i < imax; ++i) {
                const int row = i0 + i;
                if (causal && col > row + offset) continue;  // p is 0 here (and the row may see no key at all)
                float s = 0.0f;
                for (int d = 0; d < D; ++d) s += qs[i][d] * kr[d];
                const float p = __expf(s * scale - lses[i]);
                const float keep = dropout_scale(seed, (unsigned int)bh, (unsigned int)row, (unsigned int)col,
                                                 dropout_p);
                float dp = 0.0f;
                for (int d = 0; d < D; ++d) dp += dos[i][d] * vr[d];
                const float ds = p * (dp * keep - deltas[i]);
                for (int d = 0; d < D; ++d) {
                    dvr[d] += p * keep * dos[i][d];
                    dkr[d] += ds * qs[i][d] * scale;
                }
            }
        }
        __syncthreads();
    }
    if (active) {
        for (int d = 0; d < D; ++d) {
            dk[((size_t)bh * tk + col) * D + d] = from_float<T>(dkr[d]);
            dv[((size_t)bh * tk + col) * D + d] = from_float<T>(dvr[d]);
        }
    }
}

template <typename T, int D>
__device__ void flash_bwd_dq(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                             const T* __restrict__ dout, const float* __restrict__ lse,
                             const float* __restrict__ delta, T* __restrict__ dq, int tq, int tk, float scale,
                             int causal, float dropout_p, unsigned long long seed) {
    constexpr int TILE = FlashTile<D>::value;
    __shared__ float ks[TILE][D];
    __shared__ float vs[TILE][D];
    const int bh = blockIdx.y;
    const int row = blockIdx.x * FLASH_ROWS + threadIdx.x;
    const bool active = row < tq;
    const int offset = tk - tq;
    const T* kb = k + (size_t)bh * tk * D;
    const T* vb = v + (size_t)bh * tk * D;

    float qr[D], dor[D], dqr[D];
    for (int d = 0; d < D; ++d) {
        qr[d] = active ? to_float(q[((size_t)bh * tq + row) * D + d]) : 0.0f;
        dor[d] = active ? to_float(dout[((size_t)bh * tq + row) * D + d]) : 0.0f;
        dqr[d] = 0.0f;
    }
    const float lse_r = active ? lse[(size_t)bh * tq + row] : 0.0f;
    const float delta_r = active ? delta[(size_t)bh * tq + row] : 0.0f;
    const int kend = causal_key_end(tq, tk, causal);
    for (int k0 = 0; k0 < kend; k0 += TILE) {
        stage_tiles<T, TILE, D>(ks, vs, kb, vb, k0, tk);
        __syncthreads();
        if (active) {
            const int jmax = min(TILE, tk - k0);
            for (int j = 0; j < jmax; ++j) {
                const int col = k0 + j;
                if (causal && col > row + offset) break;  // the rest of this row's tile is masked too
                float s = 0.0f;
                for (int d = 0; d < D; ++d) s += qr[d] * ks[j][d];
                const float p = __expf(s * scale - lse_r);
                const float keep = dropout_scale(seed, (unsigned int)bh, (unsigned int)row, (unsigned int)col,
                                                 dropout_p);
                float dp = 0.0f;
                for (int d = 0; d < D; ++d) dp += dor[d] * vs[j][d];
                const float ds = p * (dp * keep - delta_r);
                for (int d = 0; d < D; ++d) dqr[d] += ds * ks[j][d] * scale;
            }
        }
        __syncthreads();
    }
    if (active) {
        for (int d = 0; d < D; ++d) dq[((size_t)bh * tq + row) * D + d] = from_float<T>(dqr[d]);
    }
}

#define FLASH_BWD(SUFFIX, T, D)                                                                                    \
    extern "C" __global__ void __launch_bounds__(FLASH_ROWS)                                                      \
        flash_bwd_dkdv_##SUFFIX(const T* q, const T* k, const T* v, const T* dout, const float* lse,             \
                                const float* delta, T* dk, T* dv, int tq, int tk, float scale, int causal,        \
                                float dropout_p, unsigned long long seed) {                                       \
        flash_bwd_dkdv<T, D>(q, k, v, dout, lse, delta, dk, dv, tq, tk, scale, causal, dropout_p, seed);         \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(FLASH_ROWS)                                                      \
        flash_bwd_dq_##SUFFIX(const T* q, const T* k, const T* v, const T* dout, const float* lse,               \
                              const float* delta, T* dq, int tq, int tk, float scale, int causal, float dropout_p, \
                              unsigned long long seed) {                                                          \
        flash_bwd_dq<T, D>(q, k, v, dout, lse, delta, dq, tq, tk, scale, causal, dropout_p, seed);               \
    }

FLASH_BWD(f32_d32, float, 32)
FLASH_BWD(f32_d64, float, 64)
FLASH_BWD(f32_d128, float, 128)
FLASH_BWD(f16_d32, __half, 32)
FLASH_BWD(f16_d64, __half, 64)
FLASH_BWD(f16_d128, __half, 128)
FLASH_BWD(bf16_d32, __nv_bfloat16, 32)
FLASH_BWD(bf16_d64, __nv_bfloat16, 64)
FLASH_BWD(bf16_d128, __nv_bfloat16, 128)
