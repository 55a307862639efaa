/* Binary (XNOR-popcount) convolution tiles of the fused engine.
 *
 * Input: a bit tensor with a zero-word border (+1) at least as wide as the conv's padding, so
 * every tap reads memory directly (no indirection table, no bounds checks). Zero padding, which
 * the models were trained with, is restored exactly per border class of output pixel: the padded
 * taps added popcount(w) mismatches (corr) and only valid taps count in K (kvalid).
 * Weights: [C_out/32 block][tap][C_in word][32 output channels] (PackedBinaryConv2d.weight_bits).
 * Output transform, identical in every tier: y = (float)(kvalid - 2 (acc - corr)) * m + b, as a
 * multiply then an add (no fused multiply-add, so the tiers round alike).
 *
 * The AMX tier computes the same integer dot product as an int8 GEMM of +-1 bytes (TDPBSSD): the
 * input is a byte tensor whose zero border is zero padding itself, so y = (float)dot * m + b with
 * no correction. Weights: [C_out/16][tap][C_in/64][16 rows][64 bytes], row r holding input
 * channels 4r..4r+3 of each of the 16 output channels (the VNNI layout TDPBSSD reads).
 */
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "engine.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BM_X86 1
#endif

/* Word pointer of tap (0, 0) for output pixel (y, x). */
static inline const uint32_t *in_origin(const bm_op *op, uint8_t *arena, int y, int x) {
    const bm_view *v = &op->in;
    int64_t wp = v->w + 2 * v->pad;
    int64_t iy = (int64_t)y * op->sh - op->ph + v->pad, ix = (int64_t)x * op->sw - op->pw + v->pad;
    return (const uint32_t *)(arena + v->off) + (iy * wp + ix) * v->cs;
}

static inline int row_step(const bm_op *op) { return (op->in.w + 2 * op->in.pad) * op->in.cs; }

/* vals[j] = (kv - 2 (acc[j] - corr[j])) * m[j] + b[j] for the 32 channels of block cb. */
static inline void transform32(const bm_op *op, int y, int x, int cb, const int32_t *acc, float *vals) {
    int cls = op->cls_y[y] * op->ncls_x + op->cls_x[x];
    const int32_t *corr = op->corr + (int64_t)cls * op->ldv + 32 * cb;
    int32_t kv = op->kvalid[cls];
    const float *m = op->m + 32 * cb, *b = op->b + 32 * cb;
    float *v = vals + 32 * cb;
    for (int j = 0; j < 32; j++) {
        float d = (float)(kv - 2 * (acc[j] - corr[j]));
        float t = d * m[j];
        v[j] = t + b[j];
    }
}

/* ---------------------------------------------------------------- portable: 1 pixel x 32 channels */

static void tile_portable(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    const int cw = op->in.cs, taps = op->kh * op->kw, cbn = op->ldv / 32, rs = row_step(op);
    for (int i = 0; i < np; i++) {
        const uint32_t *a = in_origin(op, cx->arena, y, x0 + i);
        for (int cb = 0; cb < cbn; cb++) {
            const uint32_t *wp = (const uint32_t *)op->w + (int64_t)cb * taps * cw * 32;
            int32_t acc[32] = {0};
            for (int ky = 0; ky < op->kh; ky++)
                for (int kx = 0; kx < op->kw; kx++) {
                    const uint32_t *t = a + ky * rs + kx * cw;
                    for (int k = 0; k < cw; k++, wp += 32) {
                        uint32_t ak = t[k];
                        for (int j = 0; j < 32; j++) acc[j] += __builtin_popcount(ak ^ wp[j]);
                    }
                }
            transform32(op, y, x0 + i, cb, acc, vals + (int64_t)i * op->ldv);
        }
    }
}

#ifdef BM_X86
/* ---------------------------------------------------------------- AVX2: 4 pixels x 8 channels */
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")

#include "popcount.h"

/* Byte counters are widened to int32 every 31 words (31 * 8 = 248 fits a byte). */
static void tile_avx2(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    const int cw = op->in.cs, taps = op->kh * op->kw, cbn = op->ldv / 32, rs = row_step(op);
    const int ps = op->sw * cw;
    const __m256i lut = bm_nibble_lut();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int i0 = 0; i0 < np; i0 += 4) {
        int n4 = bm_min(4, np - i0);
        const uint32_t *a0 = in_origin(op, cx->arena, y, x0 + i0);
        const uint32_t *a[4];
        for (int i = 0; i < 4; i++) a[i] = a0 + (i < n4 ? i : n4 - 1) * ps;
        for (int cb = 0; cb < cbn; cb++) {
            int32_t acc[4][32];
            for (int q = 0; q < 4; q++) {
                const uint32_t *wp = (const uint32_t *)op->w + (int64_t)cb * taps * cw * 32 + 8 * q;
                __m256i sum[4], bytes[4];
                for (int i = 0; i < 4; i++) { sum[i] = _mm256_setzero_si256(); bytes[i] = _mm256_setzero_si256(); }
                int steps = 0;
                for (int ky = 0; ky < op->kh; ky++)
                    for (int kx = 0; kx < op->kw; kx++) {
                        const uint32_t *at[4];
                        for (int i = 0; i < 4; i++) at[i] = a[i] + ky * rs + kx * cw;
                        for (int k = 0; k < cw; k++, wp += 32) bm_step4(at, k, wp, sum, bytes, &steps, lut, low4);
                    }
                for (int i = 0; i < 4; i++)
                    _mm256_storeu_si256((__m256i *)(acc[i] + 8 * q), _mm256_add_epi32(sum[i], bm_widen_bytes(bytes[i])));
            }
            for (int i = 0; i < n4; i++) transform32(op, y, x0 + i0 + i, cb, acc[i], vals + (int64_t)(i0 + i) * op->ldv);
        }
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX-512 VPOPCNTDQ: 8 pixels x 32 channels */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vpopcntdq")

/* One 8-pixel x 32-channel block: 16 int32 accumulators, two weight registers, one broadcast
 * activation word per pixel and word (the shape of OpenVINO's jit_uni_bin_conv_kernel,
 * openvinotoolkit/openvino src/plugins/intel_cpu/src/nodes/bin_conv.cpp). CW (words per input pixel) is a compile-time
 * constant in the specialisations below, so the word loop unrolls and addresses are immediates. */
static inline __attribute__((always_inline)) void micro512(const uint32_t *const a[8], const uint32_t *wp, int kh, int kw,
                                                           int rs, int cw, const int CW, __m512i acc[8][2]) {
    for (int i = 0; i < 8; i++) { acc[i][0] = _mm512_setzero_si512(); acc[i][1] = _mm512_setzero_si512(); }
    const int n = CW ? CW : cw;
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < kw; kx++) {
            int toff = ky * rs + kx * n;
            for (int k = 0; k < n; k++, wp += 32) {
                __m512i w0 = _mm512_loadu_si512(wp), w1 = _mm512_loadu_si512(wp + 16);
                for (int i = 0; i < 8; i++) {
                    __m512i x = _mm512_set1_epi32((int)a[i][toff + k]);
                    acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_popcnt_epi32(_mm512_xor_si512(x, w0)));
                    acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_popcnt_epi32(_mm512_xor_si512(x, w1)));
                }
            }
        }
}

static inline __attribute__((always_inline)) void transform512(const bm_op *op, int y, int x, int cb, __m512i acc0, __m512i acc1, float *v) {
    int cls = op->cls_y[y] * op->ncls_x + op->cls_x[x];
    const int32_t *corr = op->corr + (int64_t)cls * op->ldv + 32 * cb;
    __m512i kv = _mm512_set1_epi32(op->kvalid[cls]);
    __m512i d0 = _mm512_sub_epi32(kv, _mm512_slli_epi32(_mm512_sub_epi32(acc0, _mm512_loadu_si512(corr)), 1));
    __m512i d1 = _mm512_sub_epi32(kv, _mm512_slli_epi32(_mm512_sub_epi32(acc1, _mm512_loadu_si512(corr + 16)), 1));
    const float *m = op->m + 32 * cb, *b = op->b + 32 * cb;
    _mm512_storeu_ps(v + 32 * cb, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d0), _mm512_loadu_ps(m)), _mm512_loadu_ps(b)));
    _mm512_storeu_ps(v + 32 * cb + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d1), _mm512_loadu_ps(m + 16)), _mm512_loadu_ps(b + 16)));
}

static inline __attribute__((always_inline)) void tile512_body(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, const int CW) {
    const int cw = op->in.cs, taps = op->kh * op->kw, cbn = op->ldv / 32, rs = row_step(op);
    const int ps = op->sw * cw;
    for (int i0 = 0; i0 < np; i0 += 8) {
        int n8 = bm_min(8, np - i0);
        const uint32_t *a0 = in_origin(op, cx->arena, y, x0 + i0);
        const uint32_t *a[8];
        for (int i = 0; i < 8; i++) a[i] = a0 + (i < n8 ? i : n8 - 1) * ps;
        for (int cb = 0; cb < cbn; cb++) {
            __m512i acc[8][2];
            micro512(a, (const uint32_t *)op->w + (int64_t)cb * taps * cw * 32, op->kh, op->kw, rs, cw, CW, acc);
            for (int i = 0; i < n8; i++) transform512(op, y, x0 + i0 + i, cb, acc[i][0], acc[i][1], vals + (int64_t)(i0 + i) * op->ldv);
        }
    }
}

static void tile512_w1(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *v) { tile512_body(op, cx, y, x0, np, v, 1); }
static void tile512_w2(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *v) { tile512_body(op, cx, y, x0, np, v, 2); }
static void tile512_w4(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *v) { tile512_body(op, cx, y, x0, np, v, 4); }
static void tile512_w8(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *v) { tile512_body(op, cx, y, x0, np, v, 8); }
static void tile512_any(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *v) { tile512_body(op, cx, y, x0, np, v, 0); }

static void tile_avx512(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    switch (op->in.cs) {
    case 1: tile512_w1(op, cx, y, x0, np, vals); break;
    case 2: tile512_w2(op, cx, y, x0, np, vals); break;
    case 4: tile512_w4(op, cx, y, x0, np, vals); break;
    case 8: tile512_w8(op, cx, y, x0, np, vals); break;
    default: tile512_any(op, cx, y, x0, np, vals); break;
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AMX int8: 32 pixels x 32 channels */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,amx-tile,amx-int8")

/* Tiles 0-3: int32 accumulators (pixels 0-15 / 16-31 x channels 16 n0 / 16 (n0 + 1)), 4-5 input
 * bytes of 16 pixels x 64 channels of one tap, 6-7 weights. Rows past the segment read the
 * buffer's slack and are dropped. */
static void tile_amx(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, int32_t *cbuf) {
    const bm_view *v = &op->in;
    const int cp = v->cs, kc_n = cp / 64, taps = op->kh * op->kw, n16 = (op->cout + 15) / 16;
    const int64_t rowb = (int64_t)(v->w + 2 * v->pad) * cp;
    const size_t pstep = (size_t)op->sw * cp;
    const int8_t *base = bm_s8_px(cx->arena, v, y * op->sh - op->ph, x0 * op->sw - op->pw);
    const int8_t *W = (const int8_t *)op->w;
    const int two = np > 16;
    for (int n0 = 0; n0 < n16; n0 += 2) {
        const int pair = n0 + 1 < n16;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int ky = 0; ky < op->kh; ky++)
            for (int kx = 0; kx < op->kw; kx++) {
                const int t = ky * op->kw + kx;
                const int8_t *a = base + ky * rowb + kx * cp;
                const int8_t *w0 = W + ((int64_t)n0 * taps + t) * kc_n * 1024, *w1 = w0 + (int64_t)taps * kc_n * 1024;
                for (int kc = 0; kc < kc_n; kc++) {
                    _tile_loadd(4, a + kc * 64, pstep);
                    _tile_loadd(6, w0 + kc * 1024, 64);
                    _tile_dpbssd(0, 4, 6);
                    if (two) { _tile_loadd(5, a + 16 * pstep + kc * 64, pstep); _tile_dpbssd(1, 5, 6); }
                    if (pair) {
                        _tile_loadd(7, w1 + kc * 1024, 64);
                        _tile_dpbssd(2, 4, 7);
                        if (two) _tile_dpbssd(3, 5, 7);
                    }
                }
            }
        _tile_stored(0, cbuf, 64); _tile_stored(1, cbuf + 256, 64);
        _tile_stored(2, cbuf + 512, 64); _tile_stored(3, cbuf + 768, 64);
        for (int q = 0; q <= pair; q++) {
            const int c0 = 16 * (n0 + q);
            __m512 m = _mm512_loadu_ps(op->m + c0), b = _mm512_loadu_ps(op->b + c0);
            for (int i = 0; i < np; i++) {
                __m512 d = _mm512_cvtepi32_ps(_mm512_loadu_si512(cbuf + 512 * q + 256 * (i >> 4) + 16 * (i & 15)));
                _mm512_storeu_ps(vals + (int64_t)i * op->ldv + c0, _mm512_add_ps(_mm512_mul_ps(d, m), b));
            }
        }
    }
}
#pragma GCC pop_options
#endif /* BM_X86 */

void bm_bconv_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, uint8_t *scratch) {
#ifdef BM_X86
    if (op->tier == BM_T_AMX) { tile_amx(op, cx, y, x0, np, vals, (int32_t *)scratch); return; }
    if (op->tier >= BM_T_AVX512) { tile_avx512(op, cx, y, x0, np, vals); return; }
    if (op->tier == BM_T_AVX2) { tile_avx2(op, cx, y, x0, np, vals); return; }
#endif
    tile_portable(op, cx, y, x0, np, vals);
}

/* Seconds per run of the tiles (no epilogue) of one binary conv of this shape with kernel tier
 * `tier`, one thread, best of `reps` runs on random data; -1 if the tier is not available. The
 * fused engine calls it to choose between popcount and AMX per layer shape. */
BM_API double bm_time_bconv(int tier, int cin, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int h, int w, int reps) {
    if (tier == BM_T_AMX ? !bm_amx_ready() : tier > bm_cpu_tier()) return -1.0;
    const int oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1, ldv = (cout + 31) / 32 * 32;
    const int pad = bm_max(kh, kw), amx = tier == BM_T_AMX;
    const int cs = amx ? (cin + 63) / 64 * 64 : (cin + 31) / 32;
    const size_t in_bytes = ((size_t)(h + 2 * pad) * (w + 2 * pad) + 64) * (size_t)cs * (amx ? 1 : 4);
    const size_t w_bytes = amx ? (size_t)(cout + 15) / 16 * kh * kw * (cs / 64) * 1024 : (size_t)ldv / 32 * kh * kw * cs * 32 * 4;
    uint8_t *in = aligned_alloc(64, (in_bytes + 63) / 64 * 64), *wt = aligned_alloc(64, (w_bytes + 63) / 64 * 64);
    float *m = aligned_alloc(64, (size_t)ldv * 4), *b = aligned_alloc(64, (size_t)ldv * 4);
    float *vals = aligned_alloc(64, (size_t)BM_PT * ldv * 4);
    int32_t *corr = calloc((size_t)ldv, 4), *cbuf = aligned_alloc(64, 4096), kv = kh * kw * cin;
    int16_t *cls = calloc((size_t)bm_max(oh, ow), 2);
    double best = -1.0;
    if (in && wt && m && b && vals && corr && cbuf && cls) {
        for (size_t i = 0; i < in_bytes; i++) in[i] = amx ? (uint8_t)(rand() & 1 ? 1 : 0xff) : (uint8_t)rand();
        for (size_t i = 0; i < w_bytes; i++) wt[i] = amx ? (uint8_t)(rand() & 1 ? 1 : 0xff) : (uint8_t)rand();
        for (int i = 0; i < ldv; i++) { m[i] = 1.0f; b[i] = 0.0f; }
        bm_op op;
        memset(&op, 0, sizeof op);
        op.kind = BM_OP_BCONV; op.tier = tier; op.oh = oh; op.ow = ow; op.cin = cin; op.cout = cout; op.ldv = ldv;
        op.kh = kh; op.kw = kw; op.sh = sh; op.sw = sw; op.ph = ph; op.pw = pw;
        op.in = (bm_view){0, h, w, pad, cs, 0, 0};
        op.w = wt; op.cls_y = cls; op.cls_x = cls; op.ncls_x = 1; op.corr = corr; op.kvalid = &kv; op.m = m; op.b = b;
        bm_ctx cx = {in, NULL, NULL, 0, NULL, NULL};
        if (amx) bm_amx_config();
        for (int r = 0; r < reps; r++) {
            double t0 = omp_get_wtime();
            for (int y = 0; y < oh; y++)
                for (int x0 = 0; x0 < ow; x0 += BM_PT) bm_bconv_tile(&op, &cx, y, x0, bm_min(BM_PT, ow - x0), vals, (uint8_t *)cbuf);
            double t = omp_get_wtime() - t0;
            if (best < 0 || t < best) best = t;
        }
        if (amx) bm_amx_release();
    }
    free(in); free(wt); free(m); free(b); free(vals); free(corr); free(cbuf); free(cls);
    return best;
}
