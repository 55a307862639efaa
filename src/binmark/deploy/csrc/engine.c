/* The fused engine's run loop, shared epilogue, and the ops without weights (pooling, elementwise).
 * See engine.h for the plan's data model and docs/deploy.md for the design. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <omp.h>

#include "engine.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define BM_X86 1
#endif

#define BM_ENGINE_ABI 1
BM_API int bm_engine_abi(void) { return BM_ENGINE_ABI; }

/* ---------------------------------------------------------------- CPU features */

/* The best tier this CPU supports for binary convs (popcount); AMX is reported separately. */
int bm_cpu_tier(void) {
#ifdef BM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq"))
        return BM_T_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt"))
        return BM_T_AVX2;
#endif
    return BM_T_PORTABLE;
}

/* AMX tiles usable: CPUID says AMX-TILE/INT8/BF16 (with AVX-512 for the epilogues) and Linux granted
 * this process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Asked once. */
int bm_amx_ready(void) {
    static int ready = -1;
    if (ready >= 0) return ready;
    int ok = 0;
#if defined(BM_X86) && defined(__linux__)
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    int amx = (d >> 24) & 1, amx_bf16 = (d >> 22) & 1, amx_int8 = (d >> 25) & 1;
    if (amx && amx_bf16 && amx_int8 && bm_cpu_tier() == BM_T_AVX512 && __builtin_cpu_supports("avx512bf16"))
        ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#endif
    ready = ok;
    return ok;
}

/* Bit 0: AVX2 tier, bit 1: AVX-512 VPOPCNTDQ tier, bit 2: AMX tiles. */
BM_API int bm_engine_features(void) {
    int t = bm_cpu_tier(), f = 0;
    if (t >= BM_T_AVX2) f |= 1;
    if (t >= BM_T_AVX512) f |= 2;
    if (bm_amx_ready()) f |= 4;
    return f;
}

/* The clock of the calling core in GHz: a chain of dependent integer adds (one cycle each) timed
 * over about 0.1 s. Under turbo this is the clock the kernels run at, which /proc/cpuinfo does
 * not say. */
BM_API double bm_clock_ghz(void) {
#ifdef BM_X86
    const uint64_t iters = 20000000;
    uint64_t v = 0, one = 1;
    double t0 = omp_get_wtime();
    /* register operands: recent cores fold chains of add-immediate at rename */
    for (uint64_t i = 0; i < iters; i++)
        __asm__ volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
                         "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
                         "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
                         "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
                         : "+r"(v) : "r"(one));
    double t = omp_get_wtime() - t0;
    return (double)v / t / 1e9;
#else
    return 0.0;
#endif
}

/* ---------------------------------------------------------------- bit emission */

/* Up to 32 bits: bit q = mul[q] * v[q] < thr[q]. */
static uint32_t cmp_bits_portable(const float *v, const float *mul, const float *thr, int cnt) {
    uint32_t bits = 0;
    for (int q = 0; q < cnt; q++) bits |= (uint32_t)(mul[q] * v[q] < thr[q]) << q;
    return bits;
}

#ifdef BM_X86
#pragma GCC push_options
#pragma GCC target("avx2")
static uint32_t cmp_bits_avx2(const float *v, const float *mul, const float *thr, int cnt) {
    uint32_t bits = 0;
    int q = 0;
    for (; q + 8 <= cnt; q += 8) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(mul + q), _mm256_loadu_ps(v + q));
        bits |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(p, _mm256_loadu_ps(thr + q), _CMP_LT_OQ)) << q;
    }
    if (q < cnt) bits |= cmp_bits_portable(v + q, mul + q, thr + q, cnt - q) << q;
    return bits;
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
static uint32_t cmp_bits_avx512(const float *v, const float *mul, const float *thr, int cnt) {
    __mmask16 k0 = cnt >= 16 ? 0xffff : (__mmask16)((1u << cnt) - 1);
    __mmask16 k1 = cnt >= 32 ? 0xffff : cnt <= 16 ? 0 : (__mmask16)((1u << (cnt - 16)) - 1);
    __m512 p0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k0, mul), _mm512_maskz_loadu_ps(k0, v));
    uint32_t lo = _mm512_mask_cmp_ps_mask(k0, p0, _mm512_maskz_loadu_ps(k0, thr), _CMP_LT_OQ);
    if (!k1) return lo;
    __m512 p1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(k1, mul + 16), _mm512_maskz_loadu_ps(k1, v + 16));
    uint32_t hi = _mm512_mask_cmp_ps_mask(k1, p1, _mm512_maskz_loadu_ps(k1, thr + 16), _CMP_LT_OQ);
    return lo | hi << 16;
}
#pragma GCC pop_options
#endif

typedef uint32_t (*cmp_fn)(const float *, const float *, const float *, int);

static cmp_fn cmp_for(int tier) {
#ifdef BM_X86
    if (tier >= BM_T_AVX512) return cmp_bits_avx512;
    if (tier == BM_T_AVX2) return cmp_bits_avx2;
#endif
    (void)tier;
    return cmp_bits_portable;
}

/* bfloat16 of a float, round to nearest even (NaN aside: the values here are finite). */
static inline uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Element pointer of pixel (y, x) in part 0 of a bf16 parts tensor. */
static inline uint16_t *bf16_px(uint8_t *arena, const bm_view *v, int y, int x) {
    return (uint16_t *)(arena + v->off) + ((int64_t)y * v->w + x) * v->cs;
}

/* Write the bits of one pixel's channels [src, src + n) at destination channels [bit0, bit0 + n);
 * words shared with other channels are read, modified and written (other ops own those bits).
 * Byte tensors get -1 where the bit is 1, +1 elsewhere. bf16 tensors get the reader's prologue
 * applied and the value split into parts (truncated top halves, the last part rounded). */
static void emit(const bm_emit *e, const float *v, uint8_t *arena, int y, int x, cmp_fn cmp) {
    const float *s = v + e->src;
    if (e->fmt == BM_FMT_BF16) {
        uint16_t *d = bf16_px(arena, &e->dst, y, x) + e->bit0;
        int64_t ps = bm_bf16_part_stride(&e->dst);
        for (int j = 0; j < e->n; j++) {
            float t = s[j];
            if (e->pm) {
                t = t * e->pm[j];
                t = t + e->pb[j];
                if (e->prelu && !(t > 0.0f)) t = 0.0f;
            }
            for (int p = 0; p < e->parts; p++) {
                if (p + 1 < e->parts) {
                    uint32_t u;
                    memcpy(&u, &t, 4);
                    u &= 0xffff0000u;
                    float h;
                    memcpy(&h, &u, 4);
                    d[p * ps + j] = (uint16_t)(u >> 16);
                    t = t - h;
                } else {
                    d[p * ps + j] = bf16_rne(t);
                }
            }
        }
        return;
    }
    if (e->fmt == BM_FMT_S8) {
        int8_t *b = bm_s8_px(arena, &e->dst, y, x) + e->bit0;
        for (int j = 0; j < e->n; j++) b[j] = e->mul[j] * s[j] < e->thr[j] ? -1 : 1;
        return;
    }
    uint32_t *d = bm_bits_px(arena, &e->dst, y, x);
    for (int j = 0; j < e->n;) {
        int pos = e->bit0 + j, wi = pos >> 5, sh = pos & 31;
        int cnt = bm_min(32 - sh, e->n - j);
        uint32_t bits = cmp(s + j, e->mul + j, e->thr + j, cnt);
        if (cnt == 32) {
            d[wi] = bits;
        } else {
            uint32_t mask = ((1u << cnt) - 1) << sh;
            d[wi] = (d[wi] & ~mask) | (bits << sh);
        }
        j += cnt;
    }
}

/* ---------------------------------------------------------------- the shared epilogue */

/* The portable code below is compiled for AVX-512, AVX2 and the baseline ISA and picked by the
 * CPU at load time (GCC target_clones): one source, vectorised loops where the CPU has them. The
 * loops work on contiguous 16-channel chunks so that the compiler can vectorise them in both
 * channel layouts. */
#if defined(BM_X86) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define BM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef BM_CLONES
#define BM_CLONES
#endif

/* v[c] += r[c] (add), o[c] = v[c] (store) or v[c] = p[c] (load) for the n channels of a view at
 * one pixel (its chunks walked by bm_chunks). */
BM_CLONES static void chunks_add(float *v, const float *r, const bm_view *view, int n) {
    bm_chunks k = bm_chunks_at(r, view);
    for (int c0 = 0; c0 < n; c0 += 16, bm_chunks_next(&k)) {
        int m = bm_min(16, n - c0);
        for (int j = 0; j < m; j++) v[c0 + j] += k.p[j];
    }
}
BM_CLONES static void chunks_store(float *o, const float *v, const bm_view *view, int n) {
    bm_chunks k = bm_chunks_at(o, view);
    for (int c0 = 0; c0 < n; c0 += 16, bm_chunks_next(&k)) memcpy((float *)k.p, v + c0, sizeof(float) * (size_t)bm_min(16, n - c0));
}
BM_CLONES static void chunks_load(float *v, const float *p, const bm_view *view, int n) {
    bm_chunks k = bm_chunks_at(p, view);
    for (int c0 = 0; c0 < n; c0 += 16, bm_chunks_next(&k)) memcpy(v + c0, k.p, sizeof(float) * (size_t)bm_min(16, n - c0));
}
BM_CLONES static void relu_row(float *v, int n) {
    for (int c = 0; c < n; c++) v[c] = v[c] > 0.0f ? v[c] : 0.0f;
}
BM_CLONES static void affine_row(float *v, const float *m, const float *b, int n) {
    for (int c = 0; c < n; c++) { float t = v[c] * m[c]; v[c] = t + b[c]; }
}
/* 2x2 pooling of 4 pixels' n channels (PyTorch's order of summation for the average). */
BM_CLONES static void pool4(float *v, const float *a, const float *b, const float *c, const float *d, const bm_view *view, int n, int avg) {
    bm_chunks k = bm_chunks_at(a, view);
    for (int c0 = 0; c0 < n; c0 += 16, bm_chunks_next(&k)) {
        int64_t o = k.p - a;
        int m = bm_min(16, n - c0);
        for (int j = 0; j < m; j++) {
            float va = a[o + j], vb = b[o + j], vc = c[o + j], vd = d[o + j];
            if (avg) {
                v[c0 + j] = (((va + vb) + vc) + vd) / 4.0f;
            } else {
                float m1 = va > vb ? va : vb, m2 = vc > vd ? vc : vd;
                v[c0 + j] = m1 > m2 ? m1 : m2;
            }
        }
    }
}

/* The tile's final values into network output #out_index (NCHW), one channel row at a time:
 * a pixel's channels lie h*w floats apart, often a multiple of 4 KiB, so writing them per pixel
 * would thrash one L1 set. */
static void write_nchw(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, const float *vals) {
    if (op->out_index < 0) return;
    int64_t hw = (int64_t)op->oh * op->ow;
    float *d = cx->outs[op->out_index] + (int64_t)cx->img * cx->plan->out_numel[op->out_index] + (int64_t)y * op->ow + x0;
    for (int c = 0; c < op->cout; c++)
        for (int i = 0; i < np; i++) d[c * hw + i] = vals[(int64_t)i * op->ldv + c];
}

static void finish_portable(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    cmp_fn cmp = cmp_for(op->tier);
    const int n = op->cout;
    uint8_t *arena = cx->arena;
    for (int i = 0; i < np; i++) {
        float *v = vals + (int64_t)i * op->ldv;
        int x = x0 + i;
        if (op->relu) relu_row(v, n);
        for (int k = 0; k < op->ny; k++) emit(&op->ey[k], v, arena, y, x, cmp);
        if (op->has_res)
            chunks_add(v, bm_real_at(arena, &op->res, y >> op->res_shift, x >> op->res_shift, 0), &op->res, n);
        if (op->has_res2)
            chunks_add(v, bm_real_at(arena, &op->res2, y >> op->res2_shift, x >> op->res2_shift, 0), &op->res2, n);
        if (op->has_out) chunks_store(bm_real_at(arena, &op->out, y, x, 0), v, &op->out, n);
        for (int k = 0; k < op->nr; k++) emit(&op->er[k], v, arena, y, x, cmp);
    }
    write_nchw(op, cx, y, x0, np, vals);
}

#ifdef BM_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
#define BM_MAX_FAST_EMITS 8

/* Whether every emit covers the op's whole output, bits starting at a 16-bit boundary: then
 * each 16-channel compare mask is stored as one half-word (or 16 bytes). */
static int emits_fast(const bm_op *op) {
    if (op->ny > BM_MAX_FAST_EMITS || op->nr > BM_MAX_FAST_EMITS) return 0;
    for (int k = 0; k < op->ny + op->nr; k++) {
        const bm_emit *e = k < op->ny ? &op->ey[k] : &op->er[k - op->ny];
        if (e->src || e->n != op->cout || (e->fmt == BM_FMT_BITS && e->bit0 % 16)) return 0;
    }
    return 1;
}


/* The destination of a fast emit for pixel (y, x): half-words (bits), bytes or bf16 elements. */
static inline void *emit_dst(const bm_emit *e, uint8_t *arena, int y, int x) {
    if (e->fmt == BM_FMT_S8) return bm_s8_px(arena, &e->dst, y, x) + e->bit0;
    if (e->fmt == BM_FMT_BF16) return bf16_px(arena, &e->dst, y, x) + e->bit0;
    return (uint16_t *)bm_bits_px(arena, &e->dst, y, x) + e->bit0 / 16;
}

/* 16 channels (lanes k) of a bf16 emit: the reader's prologue, then the parts. Integer
 * arithmetic for the conversion, so that no BF16 instructions are needed here. */
static inline void store_bf16(const bm_emit *e, uint16_t *d, int c, __m512 t, __mmask16 k) {
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u), one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    if (e->pm) {
        t = _mm512_add_ps(_mm512_mul_ps(t, _mm512_maskz_loadu_ps(k, e->pm + 16 * c)), _mm512_maskz_loadu_ps(k, e->pb + 16 * c));
        if (e->prelu) t = _mm512_max_ps(t, _mm512_setzero_ps());
    }
    int64_t ps = bm_bf16_part_stride(&e->dst);
    for (int p = 0; p < e->parts; p++) {
        __m512i u = _mm512_castps_si512(t), h;
        if (p + 1 < e->parts) {
            h = _mm512_and_si512(u, top);
            t = _mm512_sub_ps(t, _mm512_castsi512_ps(h));
        } else {
            h = _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        }
        _mm256_mask_storeu_epi16(d + p * ps + 16 * c, k, _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
    }
}

/* Store 16 channels' compare mask m (lanes k valid) at chunk c of a fast emit's destination. */
static inline void store_emit(const bm_emit *e, void *d, int c, __mmask16 m, __mmask16 k) {
    if (e->fmt == BM_FMT_S8) {
        __m128i b = _mm_mask_blend_epi8(m, _mm_set1_epi8(1), _mm_set1_epi8(-1));
        _mm_mask_storeu_epi8((int8_t *)d + 16 * c, k, b);
    } else {
        uint16_t *h = (uint16_t *)d + c;
        *h = k == 0xffff ? (uint16_t)m : (uint16_t)((*h & ~k) | (m & k));
    }
}

/* One 16-channel chunk of a fast emit. */
static inline void fast_emit(const bm_emit *e, void *d, int c, __m512 t, __mmask16 km) {
    if (e->fmt == BM_FMT_BF16) { store_bf16(e, (uint16_t *)d, c, t, km); return; }
    __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(km, e->mul + 16 * c), t);
    store_emit(e, d, c, _mm512_mask_cmp_ps_mask(km, p, _mm512_maskz_loadu_ps(km, e->thr + 16 * c), _CMP_LT_OQ), km);
}

/* The epilogue with every step in registers, 16 channels at a time. */
static void finish_avx512(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    if (!emits_fast(op)) { finish_portable(op, cx, y, x0, np, vals); return; }
    const int n = op->cout, nch = (n + 15) / 16, ny = op->ny, nr = op->nr;
    const __mmask16 tail = n % 16 ? (__mmask16)((1u << (n % 16)) - 1) : 0xffff;
    uint8_t *arena = cx->arena;
    const __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < np; i++) {
        int x = x0 + i;
        float *v = vals + (int64_t)i * op->ldv;
        const float *r = op->has_res ? bm_real_at(arena, &op->res, y >> op->res_shift, x >> op->res_shift, 0) : NULL;
        const float *r2 = op->has_res2 ? bm_real_at(arena, &op->res2, y >> op->res2_shift, x >> op->res2_shift, 0) : NULL;
        float *o = op->has_out ? bm_real_at(arena, &op->out, y, x, 0) : NULL;
        void *dy[BM_MAX_FAST_EMITS], *dr[BM_MAX_FAST_EMITS];
        for (int k = 0; k < ny; k++) dy[k] = emit_dst(&op->ey[k], arena, y, x);
        for (int k = 0; k < nr; k++) dr[k] = emit_dst(&op->er[k], arena, y, x);
        bm_chunks kr = bm_chunks_at(r, &op->res), kr2 = bm_chunks_at(r2, &op->res2), ko = bm_chunks_at(o, &op->out);
        for (int c = 0; c < nch; c++, bm_chunks_next(&kr), bm_chunks_next(&kr2), bm_chunks_next(&ko)) {
            __mmask16 km = c == nch - 1 ? tail : 0xffff;
            __m512 t = _mm512_maskz_loadu_ps(km, v + 16 * c);
            if (op->relu) t = _mm512_max_ps(t, zero);
            for (int k = 0; k < ny; k++) fast_emit(&op->ey[k], dy[k], c, t, km);
            if (r) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(km, kr.p));
            if (r2) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(km, kr2.p));
            if (o) _mm512_mask_storeu_ps((float *)ko.p, km, t);
            if (op->out_index >= 0) _mm512_mask_storeu_ps(v + 16 * c, km, t);
            for (int k = 0; k < nr; k++) fast_emit(&op->er[k], dr[k], c, t, km);
        }
    }
    write_nchw(op, cx, y, x0, np, vals);
}

#pragma GCC pop_options
#endif

void bm_finish_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
#ifdef BM_X86
    if (op->tier >= BM_T_AVX512) { finish_avx512(op, cx, y, x0, np, vals); return; }
#endif
    finish_portable(op, cx, y, x0, np, vals);
}

/* ---------------------------------------------------------------- ops without weights */

/* out = prologue(in[y >> s, x >> s]) (nearest upsampling for s = 1); the residual, if any, is
 * added by the epilogue (skip + upsampled tensor, or any elementwise sum). */
static void eltwise_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    const int n = op->cout, s = op->in_shift;
    for (int i = 0; i < np; i++) {
        float *v = vals + (int64_t)i * op->ldv;
        chunks_load(v, bm_real_at(cx->arena, &op->in, y >> s, (x0 + i) >> s, 0), &op->in, n);
        if (op->pm) {
            affine_row(v, op->pm, op->pb, n);
            if (op->prelu) relu_row(v, n);
        }
    }
}

/* 2x2 stride-2 max or average pooling (PyTorch's order of summation for the average). */
static void pool_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals) {
    const int n = op->cout;
    for (int i = 0; i < np; i++) {
        int x = x0 + i;
        const float *a = bm_real_at(cx->arena, &op->in, 2 * y, 2 * x, 0);
        const float *b = bm_real_at(cx->arena, &op->in, 2 * y, 2 * x + 1, 0);
        const float *c = bm_real_at(cx->arena, &op->in, 2 * y + 1, 2 * x, 0);
        const float *d = bm_real_at(cx->arena, &op->in, 2 * y + 1, 2 * x + 1, 0);
        pool4(vals + (int64_t)i * op->ldv, a, b, c, d, &op->in, n, op->pool_avg);
    }
}

/* ---------------------------------------------------------------- run loop */

#ifdef BM_X86
#pragma GCC push_options
#pragma GCC target("amx-tile")
/* The engine's one tile configuration: 8 tiles of 16 rows x 64 bytes. A static object, not a
 * local: GCC 12 does not see that LDTILECFG reads its operand and drops the stores to a local. */
static const struct {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) amx_cfg = {1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};
void bm_amx_config(void) { _tile_loadconfig(&amx_cfg); }
void bm_amx_release(void) { _tile_release(); }
#pragma GCC pop_options
#endif

static void run_op(const bm_op *op, const bm_ctx *cx, int tid, int nt) {
    int tiles = (op->ow + BM_PT - 1) / BM_PT;
    int64_t items = (int64_t)op->oh * tiles;
    int64_t lo = items * tid / nt, hi = items * (tid + 1) / nt;
    float *vals = (float *)cx->scratch;
    uint8_t *rest = cx->scratch + (((size_t)BM_PT * op->ldv * sizeof(float) + 63) & ~(size_t)63);
#ifdef BM_X86
    if (op->tier >= BM_T_AMX && lo < hi) bm_amx_config();
#endif
    for (int64_t it = lo; it < hi; it++) {
        int y = (int)(it / tiles), x0 = (int)(it % tiles) * BM_PT;
        int np = bm_min(BM_PT, op->ow - x0);
        switch (op->kind) {
        case BM_OP_BCONV: bm_bconv_tile(op, cx, y, x0, np, vals, rest); break;
        case BM_OP_RCONV: bm_rconv_tile(op, cx, y, x0, np, vals, rest); break;
        case BM_OP_POOL: pool_tile(op, cx, y, x0, np, vals); break;
        default: eltwise_tile(op, cx, y, x0, np, vals); break;
        }
        bm_finish_tile(op, cx, y, x0, np, vals);
    }
}

static int uses_amx(const bm_plan *p) {
    for (int i = 0; i < p->nops; i++)
        if (p->ops[i].tier >= BM_T_AMX) return 1;
    return 0;
}

/* Run the plan on n images x (NCHW float32). Each arena holds arena_bytes of buffers followed by
 * nthreads scratch slots. With n >= nthreads > 1 and nthreads arenas, whole images run one per
 * thread (no barriers, each image's buffers stay in its core's cache); the remaining images run
 * one at a time with every op split over the threads. times: NULL, or nops doubles to which the
 * wall time of each op (seconds, from barrier to barrier) is added; it forces the split mode.
 * Returns 0, or -1 if AMX is needed but not available. */
BM_API int bm_plan_run(const bm_plan *p, const float *x, int32_t n, float *const *outs, uint8_t *const *arenas,
                       int32_t narenas, int32_t nthreads, double *times) {
    if (nthreads < 1) nthreads = 1;
    if (uses_amx(p) && !bm_amx_ready()) return -1;
    int64_t img_numel = (int64_t)p->in_c * p->in_h * p->in_w;
    int par = (!times && nthreads > 1 && narenas >= nthreads && n >= nthreads) ? n / nthreads * nthreads : 0;
    if (par) {
        #pragma omp parallel num_threads(nthreads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            bm_ctx cx = {arenas[t], NULL, outs, 0, p, arenas[t] + p->arena_bytes};
            for (int i = t; i < par; i += T) {
                cx.img = i;
                cx.image = x + i * img_numel;
                for (int k = 0; k < p->nops; k++) run_op(&p->ops[k], &cx, 0, 1);
            }
#ifdef BM_X86
            if (bm_amx_ready()) bm_amx_release();
#endif
        }
    }
    if (par < n) {
        #pragma omp parallel num_threads(nthreads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            bm_ctx cx = {arenas[0], NULL, outs, 0, p, arenas[0] + p->arena_bytes + (int64_t)t * p->scratch_bytes};
            for (int i = par; i < n; i++) {
                cx.img = i;
                cx.image = x + i * img_numel;
                double t0 = times ? omp_get_wtime() : 0.0;
                for (int k = 0; k < p->nops; k++) {
                    run_op(&p->ops[k], &cx, t, T);
                    #pragma omp barrier
                    if (times && t == 0) {
                        double t1 = omp_get_wtime();
                        times[k] += t1 - t0;
                        t0 = t1;
                    }
                }
            }
#ifdef BM_X86
            if (bm_amx_ready()) bm_amx_release();
#endif
        }
    }
    return 0;
}
