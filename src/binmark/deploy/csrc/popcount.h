/* AVX2 popcount helpers shared by the module path's kernels (bitconv.c) and the fused engine's
 * (bconv.c). Include inside a region compiled for AVX2 (#pragma GCC target("avx2")). */
#ifndef BM_POPCOUNT_H
#define BM_POPCOUNT_H
#include <immintrin.h>
#include <stdint.h>

/* Per-byte population counts by a nibble lookup (Mula, Kurz, Lemire, arXiv:1611.07612). */
static inline __m256i bm_popcnt_bytes(__m256i v, __m256i lut, __m256i low4) {
    __m256i lo = _mm256_and_si256(v, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* Sum the four byte counts of each 32-bit lane. */
static inline __m256i bm_widen_bytes(__m256i bytes) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

/* The nibble lookup table of bm_popcnt_bytes. */
static inline __m256i bm_nibble_lut(void) {
    return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
}

/* One input word (at word k of each of 4 pixels' rows a[i]) against 8 output channels' weights
 * wp: mismatch counts added to byte counters, which are widened into the int32 sums every 31
 * words (31 * 8 = 248 fits a byte). */
static inline void bm_step4(const uint32_t *const a[4], int k, const uint32_t *wp, __m256i sum[4], __m256i bytes[4],
                            int *steps, __m256i lut, __m256i low4) {
    __m256i w = _mm256_loadu_si256((const __m256i *)wp);
    for (int i = 0; i < 4; i++) {
        __m256i x = _mm256_xor_si256(_mm256_set1_epi32((int)a[i][k]), w);
        bytes[i] = _mm256_add_epi8(bytes[i], bm_popcnt_bytes(x, lut, low4));
    }
    if (++*steps == 31) {
        for (int i = 0; i < 4; i++) {
            sum[i] = _mm256_add_epi32(sum[i], bm_widen_bytes(bytes[i]));
            bytes[i] = _mm256_setzero_si256();
        }
        *steps = 0;
    }
}
#endif
