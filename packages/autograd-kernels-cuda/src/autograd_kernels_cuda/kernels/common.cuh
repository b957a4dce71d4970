// Shared pieces of the flash attention kernels: dtype conversion and the Philox dropout generator.
//
// tiling_model.py mirrors this file and the kernels line by line in NumPy.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Rows per block (one per thread): query rows in the forward and dQ kernels, key rows in the dK/dV kernel.
#define FLASH_ROWS 64

// Rows of the other sequence staged in shared memory per tile: two float tiles of tile x D must fit in
// the 48 KiB of static shared memory, so head_dim 128 uses tiles of 32 rows.
template <int D>
struct FlashTile {
    static constexpr int value = D > 64 ? 32 : 64;
};

__device__ __forceinline__ float flash_neg_inf() {
    return __int_as_float(0xff800000);
}
// The score of a forbidden (causally masked) position: finite, as in the dense reference.
#define FLASH_NEG (-1.0e9f)

template <typename T>
__host__ __device__ __forceinline__ float to_float(T x);
template <>
__host__ __device__ __forceinline__ float to_float<float>(float x) {
    return x;
}
template <>
__host__ __device__ __forceinline__ float to_float<__half>(__half x) {
    return __half2float(x);
}
template <>
__host__ __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

template <typename T>
__host__ __device__ __forceinline__ T from_float(float x);
template <>
__host__ __device__ __forceinline__ float from_float<float>(float x) {
    return x;
}
template <>
__host__ __device__ __forceinline__ __half from_float<__half>(float x) {
    return __float2half(x);
}
template <>
__host__ __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
__host__ __device__ __forceinline__ void philox_round(unsigned int ctr[4], const unsigned int key[2]) {
    const unsigned long long p0 = 0xD2511F53ull * ctr[0];
    const unsigned long long p1 = 0xCD9E8D57ull * ctr[2];
    const unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
    const unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
    const unsigned int c0 = hi1 ^ ctr[1] ^ key[0];
    const unsigned int c2 = hi0 ^ ctr[3] ^ key[1];
    ctr[0] = c0;
    ctr[1] = lo1;
    ctr[2] = c2;
    ctr[3] = lo0;
}

__host__ __device__ __forceinline__ unsigned int philox4x32_10(unsigned long long seed, unsigned int c0,
                                                               unsigned int c1, unsigned int c2, unsigned int c3) {
    unsigned int key[2] = {(unsigned int)seed, (unsigned int)(seed >> 32)};
    unsigned int ctr[4] = {c0, c1, c2, c3};
    for (int r = 0; r < 10; ++r) {
        philox_round(ctr, key);
        if (r < 9) {
            key[0] += 0x9E3779B9u;
            key[1] += 0xBB67AE85u;
        }
    }
    return ctr[0];
}

// The dropout multiplier of element (bh, i, j): keep / (1 - p), a function of the seed and the position only,
// so the backward kernels regenerate exactly the forward's mask and nothing of size Tq x Tk is stored.
__host__ __device__ __forceinline__ float dropout_scale(unsigned long long seed, unsigned int bh, unsigned int i,
                                                        unsigned int j, float p) {
    if (p <= 0.0f) return 1.0f;
    const unsigned int bits = philox4x32_10(seed, i, j, bh, 0u);
    const float u = (float)(bits >> 8) * (1.0f / 16777216.0f);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// Stage rows [start, start + TILE) of two (rows, D) arrays into shared float tiles, zero past `limit`.
// Every thread of the block takes part; the caller synchronises.
template <typename T, int TILE, int D>
__device__ __forceinline__ void stage_tiles(float (*dst_a)[D], float (*dst_b)[D], const T* src_a, const T* src_b,
                                            int start, int limit) {
    for (int idx = threadIdx.x; idx < TILE * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D;
        const bool in = start + r < limit;
        dst_a[r][d] = in ? to_float(src_a[(size_t)(start + r) * D + d]) : 0.0f;
        dst_b[r][d] = in ? to_float(src_b[(size_t)(start + r) * D + d]) : 0.0f;
    }
}

// One past the last key any of a block's query rows can see (all keys when not causal).
__device__ __forceinline__ int causal_key_end(int tq, int tk, int causal) {
    if (!causal) return tk;
    const int last_row = min(tq, (int)(blockIdx.x + 1) * FLASH_ROWS) - 1;
    return max(0, min(tk, last_row + (tk - tq) + 1));
}
