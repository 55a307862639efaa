/* Real-valued convolution tiles of the fused engine: im2col of one row segment into a panel A
 * (the input prologue, e.g. the BatchNorm + ReLU before a projection shortcut, applied on the
 * way), then a GEMM with the packed weights:
 *
 * - fp32 tiers (portable, AVX2 FMA, AVX-512 FMA): weights [C_out/32][kpad][32] float32;
 * - AMX bf16 tier: A and weights rounded to bfloat16 (round to nearest even), fp32 accumulation
 *   in tiles; weights [C_out/16][kpad/32][16 k-pairs][16 channels x 2] bfloat16;
 * - AMX split tiers: A = A0 + A1 (+ A2) and W = W0 + W1 (+ W2) with bfloat16 parts, each part
 *   the top bits of what the previous ones left (see split_bf16), and A W = sum of Ai Wj over
 *   i + j <= order: order 1 (3 products) drops terms of about 2^-16 of a product, order 2 (6
 *   products) about 2^-24, float32's own rounding (the split of Henry, Tang and Heinecke, "Leveraging the bfloat16 artificial
 *   intelligence datatype for higher-precision computations", ARITH 2019); weights: the W0
 *   array, then W1 (then W2).
 *
 * Reduction order: (c, ky, kx) for the network's NCHW input image (the stem), (ky, kx, c) for NHWC
 * tensors. Output transform y = acc * m + b as a multiply then an add. */
#include <string.h>

#include "engine.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BM_X86 1
#endif

static inline float prologue(const bm_op *op, float v, int c) {
    if (!op->pm) return v;
    float t = v * op->pm[c];
    t = t + op->pb[c];
    return (op->prelu && !(t > 0.0f)) ? 0.0f : t;
}

static inline int round16(int n) { return (n + 15) & ~15; }

/* A[i][k] for pixels (y, x0 + i), i < np; zero in padded taps, for k >= K and for rows np..16k. */
static void pack_a(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *A) {
    const int kp = op->kpad, kh = op->kh, kw = op->kw, cin = op->cin, K = cin * kh * kw;
    for (int i = 0; i < np; i++) {
        float *r = A + (int64_t)i * kp;
        int iy0 = y * op->sh - op->ph, ix0 = (x0 + i) * op->sw - op->pw;
        if (op->in_image) {
            const int H = cx->plan->in_h, W = cx->plan->in_w;
            for (int c = 0; c < cin; c++)
                for (int ky = 0; ky < kh; ky++) {
                    float *d = r + (c * kh + ky) * kw;
                    int iy = iy0 + ky;
                    if (iy < 0 || iy >= H) { memset(d, 0, sizeof(float) * (size_t)kw); continue; }
                    const float *row = cx->image + ((int64_t)c * H + iy) * W;
                    for (int kx = 0; kx < kw; kx++) {
                        int ix = ix0 + kx;
                        d[kx] = (ix >= 0 && ix < W) ? prologue(op, row[ix], c) : 0.0f;
                    }
                }
        } else {
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    float *d = r + (ky * kw + kx) * cin;
                    int iy = iy0 + ky, ix = ix0 + kx;
                    if (iy < 0 || iy >= op->in.h || ix < 0 || ix >= op->in.w) { memset(d, 0, sizeof(float) * (size_t)cin); continue; }
                    bm_chunks k = bm_chunks_at(bm_real_at(cx->arena, &op->in, iy, ix, 0), &op->in);
                    for (int c0 = 0; c0 < cin; c0 += 16, bm_chunks_next(&k))
                        for (int c = c0; c < bm_min(cin, c0 + 16); c++) d[c] = prologue(op, k.p[c - c0], c);
                }
        }
        memset(r + K, 0, sizeof(float) * (size_t)(kp - K));
    }
    int rows = bm_min(BM_PT, round16(np));
    if (rows > np) memset(A + (int64_t)np * kp, 0, sizeof(float) * (size_t)(rows - np) * kp);
}

#ifdef BM_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
/* pack_a with 16-lane masked loads: (c, ky) rows of the image, 16-channel runs of NHWC pixels. */
static void pack_a_avx512(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *A) {
    const int kp = op->kpad, kh = op->kh, kw = op->kw, cin = op->cin, K = cin * kh * kw;
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 kwm = (__mmask16)((1u << kw) - 1);
    for (int i = 0; i < np; i++) {
        float *r = A + (int64_t)i * kp;
        int iy0 = y * op->sh - op->ph, ix0 = (x0 + i) * op->sw - op->pw;
        if (op->in_image) {
            const int H = cx->plan->in_h, W = cx->plan->in_w;
            int lo = bm_max(0, -ix0), hi = bm_min(kw, W - ix0);
            __mmask16 valid = hi > lo ? (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
            for (int c = 0; c < cin; c++) {
                __m512 pm = _mm512_set1_ps(op->pm ? op->pm[c] : 1.0f), pb = _mm512_set1_ps(op->pm ? op->pb[c] : 0.0f);
                for (int ky = 0; ky < kh; ky++) {
                    float *d = r + (c * kh + ky) * kw;
                    int iy = iy0 + ky;
                    __m512 t = zero;
                    if (iy >= 0 && iy < H && valid) {
                        t = _mm512_maskz_loadu_ps(valid, cx->image + ((int64_t)c * H + iy) * W + ix0);
                        if (op->pm) {
                            t = _mm512_add_ps(_mm512_mul_ps(t, pm), pb);
                            if (op->prelu) t = _mm512_max_ps(t, zero);
                            t = _mm512_maskz_mov_ps(valid, t);
                        }
                    }
                    _mm512_mask_storeu_ps(d, kwm, t);
                }
            }
        } else {
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    float *d = r + (ky * kw + kx) * cin;
                    int iy = iy0 + ky, ix = ix0 + kx;
                    if (iy < 0 || iy >= op->in.h || ix < 0 || ix >= op->in.w) { memset(d, 0, sizeof(float) * (size_t)cin); continue; }
                    bm_chunks k = bm_chunks_at(bm_real_at(cx->arena, &op->in, iy, ix, 0), &op->in);
                    for (int c = 0; c < cin; c += 16, bm_chunks_next(&k)) {
                        __mmask16 km = cin - c >= 16 ? 0xffff : (__mmask16)((1u << (cin - c)) - 1);
                        __m512 t = _mm512_maskz_loadu_ps(km, k.p);
                        if (op->pm) {
                            t = _mm512_add_ps(_mm512_mul_ps(t, _mm512_maskz_loadu_ps(km, op->pm + c)), _mm512_maskz_loadu_ps(km, op->pb + c));
                            if (op->prelu) t = _mm512_max_ps(t, zero);
                        }
                        _mm512_mask_storeu_ps(d + c, km, t);
                    }
                }
        }
        memset(r + K, 0, sizeof(float) * (size_t)(kp - K));
    }
    int rows = bm_min(BM_PT, round16(np));
    if (rows > np) memset(A + (int64_t)np * kp, 0, sizeof(float) * (size_t)(rows - np) * kp);
}
#pragma GCC pop_options
#endif

/* ---------------------------------------------------------------- portable */

static void gemm_portable(const bm_op *op, const float *A, int np, float *vals) {
    const int kp = op->kpad, K = op->cin * op->kh * op->kw;
    for (int nb = 0; nb < op->ldv / 32; nb++) {
        const float *B = (const float *)op->w + (int64_t)nb * kp * 32;
        for (int i = 0; i < np; i++) {
            float acc[32] = {0};
            const float *a = A + (int64_t)i * kp;
            for (int k = 0; k < K; k++)
                for (int j = 0; j < 32; j++) { float t = a[k] * B[k * 32 + j]; acc[j] += t; }
            float *v = vals + (int64_t)i * op->ldv + 32 * nb;
            for (int j = 0; j < 32; j++) { float t = acc[j] * op->m[32 * nb + j]; v[j] = t + op->b[32 * nb + j]; }
        }
    }
}

#ifdef BM_X86
/* ---------------------------------------------------------------- AVX2 + FMA: 6 pixels x 16 channels */
#pragma GCC push_options
#pragma GCC target("avx2,fma")

/* acc[6][2] (two 8-channel vectors: channels 16h .. 16h + 15 of a 32-channel block) += A(i, k) B[k];
 * A as in micro512 below: rows[i][off ? off[k] : k]. 12 accumulators, 2 weights, 1 broadcast. */
static void gemm256_rows(const bm_op *op, const float *const rows[6], const int32_t *off, int n6, float *vals) {
    const int K = op->cin * op->kh * op->kw, kp = op->kpad;
    for (int c0 = 0; c0 < op->cout; c0 += 16) {
        const float *B = (const float *)op->w + (int64_t)(c0 / 32) * kp * 32 + (c0 % 32);
        __m256 acc[6][2];
        for (int i = 0; i < 6; i++) { acc[i][0] = _mm256_setzero_ps(); acc[i][1] = _mm256_setzero_ps(); }
        for (int k = 0; k < K; k++) {
            __m256 b0 = _mm256_loadu_ps(B + k * 32), b1 = _mm256_loadu_ps(B + k * 32 + 8);
            const int o = off ? off[k] : k;
            for (int i = 0; i < 6; i++) {
                __m256 av = _mm256_broadcast_ss(rows[i] + o);
                acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
            }
        }
        const float *m = op->m + c0, *b = op->b + c0;
        for (int i = 0; i < n6; i++) {
            float *v = vals + (int64_t)i * op->ldv + c0;
            _mm256_storeu_ps(v, _mm256_add_ps(_mm256_mul_ps(acc[i][0], _mm256_loadu_ps(m)), _mm256_loadu_ps(b)));
            _mm256_storeu_ps(v + 8, _mm256_add_ps(_mm256_mul_ps(acc[i][1], _mm256_loadu_ps(m + 8)), _mm256_loadu_ps(b + 8)));
        }
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX-512 FMA: 6 pixels x 64 channels */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")

/* acc[6][NV] (NV 16-channel vectors) += A(i, k) B[k] for k < K, A(i, k) = rows[i][off ? off[k] : k]:
 * rows of a packed panel, or pixels of the NCHW image with off[k] the offset of tap k. B: two
 * [kpad][32] panels (channels 0-31 and 32-63 of the block). */
static inline __attribute__((always_inline)) void micro512(const float *const rows[6], const int32_t *off, int K,
                                                           const float *b0, const float *b1, __m512 acc[6][4], const int NV) {
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 w[4];
        w[0] = _mm512_loadu_ps(b0 + k * 32);
        if (NV > 1) w[1] = _mm512_loadu_ps(b0 + k * 32 + 16);
        if (NV > 2) w[2] = _mm512_loadu_ps(b1 + k * 32);
        if (NV > 3) w[3] = _mm512_loadu_ps(b1 + k * 32 + 16);
        const int o = off ? off[k] : k;
        for (int i = 0; i < 6; i++) {
            __m512 av = _mm512_set1_ps(rows[i][o]);
            for (int j = 0; j < NV; j++) acc[i][j] = _mm512_fmadd_ps(av, w[j], acc[i][j]);
        }
    }
}

static inline __attribute__((always_inline)) void store512(const bm_op *op, __m512 acc[6][4], int n6, int c0, float *vals, const int NV) {
    for (int i = 0; i < n6; i++)
        for (int j = 0; j < NV; j++) {
            __m512 m = _mm512_loadu_ps(op->m + c0 + 16 * j), b = _mm512_loadu_ps(op->b + c0 + 16 * j);
            _mm512_storeu_ps(vals + (int64_t)i * op->ldv + c0 + 16 * j, _mm512_add_ps(_mm512_mul_ps(acc[i][j], m), b));
        }
}

/* Every channel of up to 6 pixels (rows[n6..5] repeat a valid row; their results are dropped). */
static void gemm512_rows(const bm_op *op, const float *const rows[6], const int32_t *off, int n6, float *vals) {
    const int K = op->cin * op->kh * op->kw, kp = op->kpad;
    for (int c0 = 0; c0 < op->cout; c0 += 64) {
        const float *b0 = (const float *)op->w + (int64_t)(c0 / 32) * kp * 32, *b1 = b0 + (int64_t)kp * 32;
        __m512 acc[6][4];
        switch (bm_min(4, (op->cout - c0 + 15) / 16)) {
        case 4: micro512(rows, off, K, b0, b1, acc, 4); store512(op, acc, n6, c0, vals, 4); break;
        case 3: micro512(rows, off, K, b0, b1, acc, 3); store512(op, acc, n6, c0, vals, 3); break;
        case 2: micro512(rows, off, K, b0, b1, acc, 2); store512(op, acc, n6, c0, vals, 2); break;
        default: micro512(rows, off, K, b0, b1, acc, 1); store512(op, acc, n6, c0, vals, 1); break;
        }
    }
}

typedef void (*rows_fn)(const bm_op *op, const float *const rows[6], const int32_t *off, int n6, float *vals);
#pragma GCC pop_options

/* A: np rows of lda floats (a packed panel, or the input pixels of a 1x1 conv without prologue),
 * 6 at a time (rows past np repeat the last one; their results are dropped). */
static void gemm_rows(const bm_op *op, rows_fn rows_kernel, const float *A, int64_t lda, int np, float *vals) {
    for (int i0 = 0; i0 < np; i0 += 6) {
        int n6 = bm_min(6, np - i0);
        const float *rows[6];
        for (int i = 0; i < 6; i++) rows[i] = A + (int64_t)(i0 + bm_min(i, n6 - 1)) * lda;
        rows_kernel(op, rows, NULL, n6, vals + (int64_t)i0 * op->ldv);
    }
}

/* Convolution of the network's NCHW input image: pixel tiles whose windows lie inside the image
 * read it directly (off[k]: the image offset of tap k = (c, ky, kx)); border tiles are packed. */
static void rconv_image(const bm_op *op, rows_fn rows_kernel, const bm_ctx *cx, int y, int x0, int np, float *vals, float *A) {
    const int H = cx->plan->in_h, W = cx->plan->in_w, kp = op->kpad;
    const int iy0 = y * op->sh - op->ph;
    const int rows_in = iy0 >= 0 && iy0 + op->kh <= H;
    for (int i0 = 0; i0 < np; i0 += 6) {
        int n6 = bm_min(6, np - i0);
        int ixa = (x0 + i0) * op->sw - op->pw, ixb = (x0 + i0 + n6 - 1) * op->sw - op->pw + op->kw;
        const float *rows[6];
        if (rows_in && ixa >= 0 && ixb <= W) {
            for (int i = 0; i < 6; i++) rows[i] = cx->image + (int64_t)iy0 * W + ixa + bm_min(i, n6 - 1) * op->sw;
            rows_kernel(op, rows, op->tap_off, n6, vals + (int64_t)i0 * op->ldv);
        } else {
            pack_a(op, cx, y, x0 + i0, n6, A);
            for (int i = 0; i < 6; i++) rows[i] = A + (int64_t)bm_min(i, n6 - 1) * kp;
            rows_kernel(op, rows, NULL, n6, vals + (int64_t)i0 * op->ldv);
        }
    }
}

/* ---------------------------------------------------------------- AMX bf16 */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")

/* rows x kp floats → `parts` bfloat16 arrays; part p of element e at out[p * stride + e]. One
 * part: round to nearest even. Several: every part but the last is the truncated top 16 bits of
 * what the previous parts left (the remainder is exact in float32), the last rounds; three parts
 * hold all 24 bits of a float32. */
static void split_bf16(const float *A, int rows, int kp, int parts, uint16_t *out, size_t stride) {
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t i = 0; i < (int64_t)rows * kp; i += 32) {
        __m512 a0 = _mm512_loadu_ps(A + i), a1 = _mm512_loadu_ps(A + i + 16);
        for (int p = 0; p + 1 < parts; p++) {
            __m512 t0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a0), top));
            __m512 t1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a1), top));
            _mm512_storeu_si512(out + p * stride + i, (__m512i)_mm512_cvtne2ps_pbh(t1, t0));  /* exact */
            a0 = _mm512_sub_ps(a0, t0);
            a1 = _mm512_sub_ps(a1, t1);
        }
        _mm512_storeu_si512(out + (parts - 1) * stride + i, (__m512i)_mm512_cvtne2ps_pbh(a1, a0));
    }
}

/* vals[i][16 n .. 16 n + 15] = cbuf tile (16 x 16 floats, rows r0..) * m + b */
static inline void tile_out(const bm_op *op, const float *cbuf, int r0, int nrows, int n, float *vals) {
    __m512 mv = _mm512_loadu_ps(op->m + 16 * n), bv = _mm512_loadu_ps(op->b + 16 * n);
    for (int i = 0; i < nrows; i++)
        _mm512_storeu_ps(vals + (int64_t)(r0 + i) * op->ldv + 16 * n, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(cbuf + 16 * i), mv), bv));
}

/* Plain bf16: 32 pixels x 32 channels per pass, 2 A x 2 B tiles. A16: np rows of bf16 with row
 * stride ld elements (a packed panel, or a bf16 tensor a producer emitted). */
static void gemm_amx(const bm_op *op, const uint16_t *A16, size_t ld, int np, float *vals, float *cbuf) {
    const int kp = op->kpad, kb_n = kp / 32, n16 = (op->cout + 15) / 16;
    const uint16_t *W = (const uint16_t *)op->w;
    const int two_rows = np > 16;
    const size_t lda = ld * 2;
    for (int n0 = 0; n0 < n16; n0 += 2) {
        const int two = n0 + 1 < n16;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int kb = 0; kb < kb_n; kb++) {
            _tile_loadd(4, A16 + kb * 32, lda);
            _tile_loadd(6, W + ((int64_t)n0 * kb_n + kb) * 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            if (two_rows) { _tile_loadd(5, A16 + 16 * ld + kb * 32, lda); _tile_dpbf16ps(1, 5, 6); }
            if (two) {
                _tile_loadd(7, W + ((int64_t)(n0 + 1) * kb_n + kb) * 512, 64);
                _tile_dpbf16ps(2, 4, 7);
                if (two_rows) _tile_dpbf16ps(3, 5, 7);
            }
        }
        _tile_stored(0, cbuf, 64); _tile_stored(1, cbuf + 256, 64);
        _tile_stored(2, cbuf + 512, 64); _tile_stored(3, cbuf + 768, 64);
        for (int q = 0; q < 1 + two; q++) {
            tile_out(op, cbuf + 512 * q, 0, bm_min(16, np), n0 + q, vals);
            if (two_rows) tile_out(op, cbuf + 512 * q + 256, 16, np - 16, n0 + q, vals);
        }
    }
}

/* Split products, one 16-channel block at a time for both 16-pixel halves of the tile: the
 * weight parts of a k-step stay in tiles 5-7 while the A parts of each half (tiles 2-4) stream
 * past them, so the weights, which live in L2, are loaded once per 32 pixels. Tiles 0-1: the two
 * halves' accumulators. Smaller products are accumulated first. Ap: the parts of A, part p at
 * Ap + p * astride, rows ld elements apart. */
static void gemm_amx_split(const bm_op *op, const uint16_t *Ap, size_t ld, size_t astride, int np, float *vals, float *cbuf,
                           const int order) {
    const int kp = op->kpad, kb_n = kp / 32, n16 = (op->cout + 15) / 16;
    const size_t wstride = (size_t)n16 * kb_n * 512;
    const uint16_t *W = (const uint16_t *)op->w;
    const size_t lda = ld * 2;
    const int two = np > 16;
    const uint16_t *a1 = Ap + 16 * ld;  /* the second half's rows */
    for (int n = 0; n < n16; n++) {
        _tile_zero(0); _tile_zero(1);
        for (int kb = 0; kb < kb_n; kb++) {
            const uint16_t *w = W + ((int64_t)n * kb_n + kb) * 512;
            const int64_t ka = kb * 32;
            if (order == 2) {
                _tile_loadd(5, w, 64); _tile_loadd(6, w + wstride, 64); _tile_loadd(7, w + 2 * wstride, 64);
                _tile_loadd(2, Ap + ka, lda); _tile_loadd(3, Ap + astride + ka, lda); _tile_loadd(4, Ap + 2 * astride + ka, lda);
                _tile_dpbf16ps(0, 4, 5); _tile_dpbf16ps(0, 3, 6); _tile_dpbf16ps(0, 2, 7);
                _tile_dpbf16ps(0, 3, 5); _tile_dpbf16ps(0, 2, 6); _tile_dpbf16ps(0, 2, 5);
                if (two) {
                    _tile_loadd(2, a1 + ka, lda); _tile_loadd(3, a1 + astride + ka, lda); _tile_loadd(4, a1 + 2 * astride + ka, lda);
                    _tile_dpbf16ps(1, 4, 5); _tile_dpbf16ps(1, 3, 6); _tile_dpbf16ps(1, 2, 7);
                    _tile_dpbf16ps(1, 3, 5); _tile_dpbf16ps(1, 2, 6); _tile_dpbf16ps(1, 2, 5);
                }
            } else {
                _tile_loadd(6, w, 64); _tile_loadd(7, w + wstride, 64);
                _tile_loadd(2, Ap + ka, lda); _tile_loadd(3, Ap + astride + ka, lda);
                _tile_dpbf16ps(0, 3, 6); _tile_dpbf16ps(0, 2, 7); _tile_dpbf16ps(0, 2, 6);
                if (two) {
                    _tile_loadd(4, a1 + ka, lda); _tile_loadd(5, a1 + astride + ka, lda);
                    _tile_dpbf16ps(1, 5, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(1, 4, 6);
                }
            }
        }
        _tile_stored(0, cbuf, 64);
        _tile_stored(1, cbuf + 256, 64);
        tile_out(op, cbuf, 0, bm_min(16, np), n, vals);
        if (two) tile_out(op, cbuf + 256, 16, np - 16, n, vals);
    }
}

/* The AMX kernels on a packed A panel: split it into the tier's bfloat16 parts in scratch. */
static void rconv_amx_panel(const bm_op *op, const float *A, int np, float *vals, uint8_t *scratch) {
    const int kp = op->kpad, parts = op->tier - BM_T_AMX + 1;
    const size_t astride = (size_t)BM_PT * kp;
    uint16_t *Ap = (uint16_t *)scratch;
    float *cbuf = (float *)(scratch + astride * 6);
    split_bf16(A, round16(np), kp, parts, Ap, astride);
    if (parts == 1) gemm_amx(op, Ap, kp, np, vals, cbuf);
    else gemm_amx_split(op, Ap, kp, astride, np, vals, cbuf, parts - 1);
}

/* The AMX kernels on the bfloat16 parts a producer emitted (a 1x1 conv, stride 1). */
static void rconv_amx_direct(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, uint8_t *scratch) {
    const bm_view *v = &op->in;
    const uint16_t *Ap = (const uint16_t *)(cx->arena + v->off) + ((int64_t)y * v->w + x0) * v->cs;
    const size_t astride = bm_bf16_part_stride(v);
    float *cbuf = (float *)scratch;
    if (op->in_parts == 1) gemm_amx(op, Ap, (size_t)v->cs, np, vals, cbuf);
    else gemm_amx_split(op, Ap, (size_t)v->cs, astride, np, vals, cbuf, op->in_parts - 1);
}
#pragma GCC pop_options
#endif /* BM_X86 */

void bm_rconv_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, uint8_t *scratch) {
    float *A = (float *)scratch;
#ifdef BM_X86
    if (op->in_parts) { rconv_amx_direct(op, cx, y, x0, np, vals, scratch); return; }
    rows_fn rows_kernel = op->tier == BM_T_AVX512 ? gemm512_rows : op->tier == BM_T_AVX2 ? gemm256_rows : NULL;
    if (rows_kernel) {
        if (op->in_image && op->tap_off) { rconv_image(op, rows_kernel, cx, y, x0, np, vals, A); return; }
        if (op->kh == 1 && op->kw == 1 && !op->pm && op->sh == 1 && op->sw == 1 && !op->in_image && !op->in.blk) {
            gemm_rows(op, rows_kernel, bm_real_at(cx->arena, &op->in, y, x0, 0), op->in.cs, np, vals);
            return;
        }
    }
    if (op->tier >= BM_T_AVX512 && op->kw <= 16) pack_a_avx512(op, cx, y, x0, np, A);
    else
#endif
    pack_a(op, cx, y, x0, np, A);
#ifdef BM_X86
    if (op->tier >= BM_T_AMX) { rconv_amx_panel(op, A, np, vals, scratch + (size_t)BM_PT * op->kpad * 4); return; }
    if (rows_kernel) { gemm_rows(op, rows_kernel, A, op->kpad, np, vals); return; }
#endif
    gemm_portable(op, A, np, vals);
}
