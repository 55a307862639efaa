/* binmark's binary (XNOR-popcount) convolution kernels.
 *
 * A plain C ABI, loaded from Python with ctypes (which releases the GIL during a call); no Python
 * or torch headers are needed to build it. Design notes are in docs/deploy.md. Prior art: Larq
 * Compute Engine (github.com/larq/compute-engine, larq_compute_engine/core/: bitpacking/bitpack.h,
 * indirect_bgemm/kernel.h, bconv2d/zero_padding_correction.h; Bannink et al., MLSys 2021,
 * arXiv:2011.09398) and Dukhan, "The Indirect Convolution Algorithm", arXiv:1907.02129. In short:
 *
 * - Encoding (as Larq Compute Engine): bit 1 <=> value -1, bit 0 <=> +1, so sign(0) = +1.
 *   Channels are packed LSB-first into 32-bit words, ceil(C/32) words per pixel (NHWC), tail bits 0.
 *   A product of two packed words counts mismatches: dot = K - 2 * popcount(a ^ w).
 * - Weights are packed once as [Cout/32 block][tap][Cin word][32 output channels]; the kernels
 *   vectorise over output channels and broadcast one activation word at a time.
 * - Indirect convolution: a table of word offsets gives, for every output pixel and tap, the input
 *   pixel it reads; taps in the padding read a buffer of zero words (+1). Zero padding (what the
 *   models were trained with) is restored exactly by subtracting the mismatches the padded taps
 *   added, per border class of output pixel and output channel, and by counting only valid taps.
 * - The output transform writes float NHWC: y = (K_valid - 2 * (acc - corr)) * m[c] + b[c].
 * - Threads: OpenMP with an explicit num_threads from the caller on every parallel region.
 */
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BM_X86 1
#endif

#define BM_API __attribute__((visibility("default")))

enum { BM_CPU_AVX2 = 1, BM_CPU_AVX512_VPOPCNT = 2 };
enum { BM_TIER_PORTABLE = 0, BM_TIER_AVX2 = 1, BM_TIER_AVX512 = 2 };

typedef struct {
    const uint32_t *in;     /* packed input: n images of img_words words */
    const uint32_t *zero;   /* cw zero words, read by taps in the padding */
    const int32_t *offs;    /* [p][t] word offset of each tap's input pixel in an image, -1 = padding */
    const uint32_t *w;      /* [cb][t][cw][32] packed weights */
    const int16_t *cls;     /* [p] border class of each output pixel, 0 = no padded tap */
    const int32_t *corr;    /* [ncls][cb * 32] mismatches added by the padded taps */
    const int32_t *kvalid;  /* [ncls] number of real products per output */
    const float *m;         /* [cb * 32] output scale */
    const float *b;         /* [cb * 32] output bias */
    float *out;             /* [n][p][cout] */
    int64_t img_words;
    int32_t n, p, t, cw, cout, nthreads;
} bm_conv_t;

typedef struct {
    const float *x;         /* [npix][c] floats, channels innermost */
    uint32_t *out;          /* [npix][cw] packed words */
    const float *thr;       /* [c] per-channel threshold */
    const uint32_t *flip;   /* [cw] bit set: the bit is (x > thr) instead of (x < thr) */
    const uint32_t *set;    /* [cw] bit set: always 1 (-1) */
    const uint32_t *clr;    /* [cw] bit set: always 0 (+1) */
    int64_t npix;
    int32_t c, cw, nthreads;
} bm_pack_t;

BM_API int bm_abi_version(void) { return 1; }

BM_API int bm_cpu_features(void) {
    int f = 0;
#ifdef BM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) f |= BM_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq"))
        f |= BM_CPU_AVX512_VPOPCNT;
#endif
    return f;
}

/* ---------------------------------------------------------------- shared helpers (any ISA) */

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* The input pixel of tap t for output pixel p, or the zero buffer. */
static inline const uint32_t *tap_ptr(const bm_conv_t *c, const uint32_t *base, int p, int t) {
    int32_t o = c->offs[(int64_t)p * c->t + t];
    return o < 0 ? c->zero : base + o;
}

/* Output transform of one pixel's accumulators for channels [co, co + 32). */
static inline void epilogue_scalar(const bm_conv_t *c, int img, int p, int cb, const int32_t *acc) {
    int cl = c->cls[p];
    const int32_t *corr = c->corr + ((int64_t)cl * ((c->cout + 31) / 32) + cb) * 32;
    int32_t kv = c->kvalid[cl];
    float *dst = c->out + ((int64_t)img * c->p + p) * c->cout;
    int co = cb * 32, n = min_int(32, c->cout - co);
    for (int j = 0; j < n; j++)
        dst[co + j] = (float)(kv - 2 * (acc[j] - corr[j])) * c->m[co + j] + c->b[co + j];
}

typedef void (*tile_fn)(const bm_conv_t *c, int img, int cb, int p0);

/* Run a tile function over every (image, output-channel block, pixel tile). Pixel tiles vary
 * fastest so that a thread keeps one weight panel hot in L1/L2. */
static void run_tiles(const bm_conv_t *c, int tile_pixels, tile_fn tile) {
    int cb_n = (c->cout + 31) / 32;
    int pt_n = (c->p + tile_pixels - 1) / tile_pixels;
    int64_t items = (int64_t)c->n * cb_n * pt_n;
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int pt = (int)(it % pt_n);
        int64_t rest = it / pt_n;
        int cb = (int)(rest % cb_n);
        int img = (int)(rest / cb_n);
        tile(c, img, cb, pt * tile_pixels);
    }
}

/* ---------------------------------------------------------------- portable kernel */

static void tile_portable(const bm_conv_t *c, int img, int cb, int p0) {
    const uint32_t *base = c->in + (int64_t)img * c->img_words;
    const uint32_t *wp = c->w + (int64_t)cb * c->t * c->cw * 32;
    int32_t acc[32] = {0};
    for (int t = 0; t < c->t; t++) {
        const uint32_t *a = tap_ptr(c, base, p0, t);
        for (int k = 0; k < c->cw; k++, wp += 32) {
            uint32_t ak = a[k];
            for (int j = 0; j < 32; j++) acc[j] += __builtin_popcount(ak ^ wp[j]);
        }
    }
    epilogue_scalar(c, img, p0, cb, acc);
}

static void pack_portable(const bm_pack_t *s) {
    #pragma omp parallel for num_threads(s->nthreads) schedule(static)
    for (int64_t i = 0; i < s->npix; i++) {
        const float *x = s->x + i * s->c;
        uint32_t *o = s->out + i * s->cw;
        for (int k = 0; k < s->cw; k++) {
            uint32_t lt = 0, gt = 0;
            int n = min_int(32, s->c - 32 * k);
            for (int j = 0; j < n; j++) {
                float v = x[32 * k + j], th = s->thr[32 * k + j];
                lt |= (uint32_t)(v < th) << j;
                gt |= (uint32_t)(v > th) << j;
            }
            o[k] = (((lt & ~s->flip[k]) | (gt & s->flip[k])) | s->set[k]) & ~s->clr[k];
        }
    }
}

#ifdef BM_X86
/* ---------------------------------------------------------------- AVX2 kernel */
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")

#include "popcount.h"

/* 4 pixels x 8 channels per pass, four passes per 32-channel block; byte counters are widened to
 * int32 every 31 words (31 * 8 = 248 fits a byte). */
static void tile_avx2(const bm_conv_t *c, int img, int cb, int p0) {
    const uint32_t *base = c->in + (int64_t)img * c->img_words;
    const __m256i lut = bm_nibble_lut();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    int np = min_int(4, c->p - p0);
    int32_t acc[4][32];
    for (int q = 0; q < 4; q++) {
        const uint32_t *wp = c->w + (int64_t)cb * c->t * c->cw * 32 + 8 * q;
        __m256i sum[4], bytes[4];
        for (int i = 0; i < 4; i++) { sum[i] = _mm256_setzero_si256(); bytes[i] = _mm256_setzero_si256(); }
        int steps = 0;
        for (int t = 0; t < c->t; t++) {
            const uint32_t *a[4];
            for (int i = 0; i < 4; i++) a[i] = tap_ptr(c, base, p0 + (i < np ? i : np - 1), t);
            for (int k = 0; k < c->cw; k++, wp += 32) bm_step4(a, k, wp, sum, bytes, &steps, lut, low4);
        }
        for (int i = 0; i < 4; i++) {
            sum[i] = _mm256_add_epi32(sum[i], bm_widen_bytes(bytes[i]));
            _mm256_storeu_si256((__m256i *)(acc[i] + 8 * q), sum[i]);
        }
    }
    for (int i = 0; i < np; i++) epilogue_scalar(c, img, p0 + i, cb, acc[i]);
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX-512 VPOPCNTDQ kernel */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,fma,popcnt")

/* 8 pixels x 32 channels: 16 int32 accumulators + 2 weight registers, within the 32 zmm. */
static void tile_avx512(const bm_conv_t *c, int img, int cb, int p0) {
    const uint32_t *base = c->in + (int64_t)img * c->img_words;
    const uint32_t *wp = c->w + (int64_t)cb * c->t * c->cw * 32;
    int np = min_int(8, c->p - p0);
    __m512i acc[8][2];
    for (int i = 0; i < 8; i++) { acc[i][0] = _mm512_setzero_si512(); acc[i][1] = _mm512_setzero_si512(); }
    for (int t = 0; t < c->t; t++) {
        const uint32_t *a[8];
        for (int i = 0; i < 8; i++) a[i] = tap_ptr(c, base, p0 + (i < np ? i : np - 1), t);
        for (int k = 0; k < c->cw; k++, wp += 32) {
            __m512i w0 = _mm512_loadu_si512(wp), w1 = _mm512_loadu_si512(wp + 16);
            for (int i = 0; i < 8; i++) {
                __m512i x = _mm512_set1_epi32((int)a[i][k]);
                acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_popcnt_epi32(_mm512_xor_si512(x, w0)));
                acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_popcnt_epi32(_mm512_xor_si512(x, w1)));
            }
        }
    }
    int cb_n = (c->cout + 31) / 32, co = cb * 32;
    int rem = c->cout - co;
    __mmask16 k0 = rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1);
    __mmask16 k1 = rem >= 32 ? 0xffff : rem <= 16 ? 0 : (__mmask16)((1u << (rem - 16)) - 1);
    __m512 m0 = _mm512_loadu_ps(c->m + co), m1 = _mm512_loadu_ps(c->m + co + 16);
    __m512 b0 = _mm512_loadu_ps(c->b + co), b1 = _mm512_loadu_ps(c->b + co + 16);
    for (int i = 0; i < np; i++) {
        int p = p0 + i, cl = c->cls[p];
        const int32_t *corr = c->corr + ((int64_t)cl * cb_n + cb) * 32;
        __m512i kv = _mm512_set1_epi32(c->kvalid[cl]);
        __m512i d0 = _mm512_sub_epi32(kv, _mm512_slli_epi32(_mm512_sub_epi32(acc[i][0], _mm512_loadu_si512(corr)), 1));
        __m512i d1 = _mm512_sub_epi32(kv, _mm512_slli_epi32(_mm512_sub_epi32(acc[i][1], _mm512_loadu_si512(corr + 16)), 1));
        float *dst = c->out + ((int64_t)img * c->p + p) * c->cout + co;
        _mm512_mask_storeu_ps(dst, k0, _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), m0, b0));
        _mm512_mask_storeu_ps(dst + 16, k1, _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), m1, b1));
    }
}

/* Threshold compare and pack, 16 channels per compare (one k-mask each, two per word). */
static void pack_avx512(const bm_pack_t *s) {
    #pragma omp parallel for num_threads(s->nthreads) schedule(static)
    for (int64_t i = 0; i < s->npix; i++) {
        const float *x = s->x + i * s->c;
        uint32_t *o = s->out + i * s->cw;
        for (int k = 0; k < s->cw; k++) {
            uint32_t word = 0;
            for (int h = 0; h < 2; h++) {
                int c0 = 32 * k + 16 * h, n = s->c - c0;
                if (n <= 0) break;
                __mmask16 km = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
                __m512 v = _mm512_maskz_loadu_ps(km, x + c0);
                __m512 th = _mm512_maskz_loadu_ps(km, s->thr + c0);
                uint32_t lt = _mm512_mask_cmp_ps_mask(km, v, th, _CMP_LT_OQ);
                uint32_t gt = _mm512_mask_cmp_ps_mask(km, v, th, _CMP_GT_OQ);
                uint32_t f = (s->flip[k] >> (16 * h)) & 0xffff;
                word |= ((lt & ~f) | (gt & f)) << (16 * h);
            }
            o[k] = (word | s->set[k]) & ~s->clr[k];
        }
    }
}
#pragma GCC pop_options
#endif /* BM_X86 */

/* ---------------------------------------------------------------- entry points */

/* Pack float activations into bits with per-channel thresholds; tier as bm_conv. */
BM_API int bm_pack(const bm_pack_t *s, int tier) {
#ifdef BM_X86
    if (tier == BM_TIER_AVX512) { if (!(bm_cpu_features() & BM_CPU_AVX512_VPOPCNT)) return -1; pack_avx512(s); return 0; }
#endif
    if (tier < 0 || tier > BM_TIER_AVX512) return -1;
    pack_portable(s);
    return 0;
}

/* Binary convolution with the kernel of the given tier; -1 if this CPU or build lacks it. */
BM_API int bm_conv(const bm_conv_t *c, int tier) {
    switch (tier) {
    case BM_TIER_PORTABLE: run_tiles(c, 1, tile_portable); return 0;
#ifdef BM_X86
    case BM_TIER_AVX2:
        if (!(bm_cpu_features() & BM_CPU_AVX2)) return -1;
        run_tiles(c, 4, tile_avx2); return 0;
    case BM_TIER_AVX512:
        if (!(bm_cpu_features() & BM_CPU_AVX512_VPOPCNT)) return -1;
        run_tiles(c, 8, tile_avx512); return 0;
#endif
    default: return -1;
    }
}
