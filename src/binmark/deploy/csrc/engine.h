/* binmark's fused inference engine: a static plan of ops over per-image NHWC buffers.
 *
 * The plan is built once in Python (binmark/deploy/plan.py, engine.py) per (network, input size)
 * and run here in one call: no Python per op, the GIL released (ctypes), one OpenMP parallel
 * region per call. Every op writes a tile of its output into a per-thread scratch row and hands
 * it to one shared epilogue (finish_tile in engine.c): optional ReLU, bit-packing for the binary
 * convs that read the value before the residual ("y" emits), the residual add (at full or half
 * resolution: nearest 2x upsampling + skip add), the store into a channel slice of the output
 * buffer (concatenation for free), the network-output write, and bit-packing of the final value
 * ("r" emits). This is Larq Compute Engine's output transform idea
 * (larq/compute-engine, core/bconv2d/output_transform.h) extended to several consumers.
 *
 * Tensors (bm_view): real tensors are float32, either NHWC with a channel stride (so a view can
 * be a channel slice of a wider buffer) or channel-blocked [C/blk][H][W][blk] (blk = 16, 32 or 64;
 * oneDNN's nChw16c for 16): then every channel slice of a row is a few sequential streams, which
 * the hardware prefetchers follow across pages where NHWC slices defeat them, and wider blocks
 * keep the number of streams of a slice small; bit tensors are NHWC 32-bit words, LSB-first, bit 1 = -1,
 * with a border of `pad` zero words (+1) around the image that is never written; byte tensors
 * (for AMX) are NHWC signed bytes +1/-1 with a zero border (zero padding needs no correction).
 */
#ifndef BM_ENGINE_H
#define BM_ENGINE_H
#include <stdint.h>

#define BM_API __attribute__((visibility("default")))

enum { BM_OP_BCONV = 1, BM_OP_RCONV = 2, BM_OP_POOL = 3, BM_OP_ELTWISE = 4 };
/* Kernel tiers. Binary convs: popcount tiers 0-2, 3 = AMX int8 tiles on +-1 bytes. Real convs:
 * 0-2 fp32, 3 = AMX bf16 tiles,
 * 4 = AMX with each float split into two bf16 parts (3 products, about 16 significant bits),
 * 5 = three bf16 parts (6 products, about 24 bits: float32's precision). */
enum { BM_T_PORTABLE = 0, BM_T_AVX2 = 1, BM_T_AVX512 = 2, BM_T_AMX = 3, BM_T_AMX3 = 4, BM_T_AMX6 = 5 };
/* Formats of the tensors binary convs read: bits (32-bit words, bit 1 = -1) for the popcount
 * kernels, one signed byte per channel (+1/-1, channels padded to 64) for the AMX kernel. */
enum { BM_FMT_BITS = 0, BM_FMT_S8 = 1, BM_FMT_BF16 = 2 };
/* bfloat16 parts tensors (what a 1x1 real conv on AMX reads): `parts` copies of [H*W + slack][cs]
 * bf16, part p the top bits of what parts 0..p-1 left (the last part rounded): see gemm.c. */
#define BM_BF16_SLACK 32

/* Pixel tile of one work item: up to BM_PT consecutive pixels of one output row. */
#define BM_PT 32

typedef struct {
    int64_t off;  /* arena byte offset of the buffer's origin (the padded origin for bits) */
    int32_t h, w; /* logical spatial size */
    int32_t pad;  /* border pixels on each side (bit tensors; 0 for real tensors) */
    int32_t cs;   /* channel stride: floats (real), 32-bit words (bits) or bytes (s8) per pixel */
    int32_t co;   /* first channel of the view (real tensors) */
    int32_t blk;  /* real tensors: 0 = NHWC, else [C/blk][H][W][blk] (blk 16, 32 or 64; co a multiple) */
} bm_view;

typedef struct {
    bm_view dst;             /* bit, byte or bf16 tensor written */
    int32_t fmt;             /* BM_FMT_BITS, BM_FMT_S8 or BM_FMT_BF16 */
    int32_t src;             /* first channel of the op's output this emit reads */
    int32_t n;               /* channels */
    int32_t bit0;            /* first destination channel (bit, byte or element) */
    const float *mul, *thr;  /* bits and bytes, (n,): bit = mul * v < thr (mul is +1, -1, or 0 for constants) */
    int32_t parts;           /* bf16: number of parts */
    const float *pm, *pb;    /* bf16: the reader's prologue v * pm + pb per channel, or NULL */
    int32_t prelu;           /* bf16: ... then a ReLU */
} bm_emit;

typedef struct {
    int32_t kind, tier;
    int32_t oh, ow, cin, cout, ldv; /* output size; ldv: scratch row stride (cout rounded up to 32) */
    int32_t kh, kw, sh, sw, ph, pw;
    bm_view in;                     /* input (bits for BCONV, real otherwise) */
    int32_t in_image;               /* RCONV: read the network's NCHW input image instead of `in` */
    int32_t in_shift;               /* ELTWISE: read `in` at (y >> s, x >> s) (nearest upsampling) */
    int32_t pool_avg;               /* POOL: 2x2 average instead of maximum */
    const void *w;                  /* packed weights (layout by kind and tier, see engine.py) */
    int32_t kpad;                   /* RCONV: reduction length padded for the kernel */
    const int32_t *tap_off;         /* RCONV of the image: offset of tap (c, ky, kx) in the NCHW image */
    int32_t in_parts;               /* RCONV: `in` is a bf16 parts tensor with this many parts (AMX, 1x1) */
    const int16_t *cls_y, *cls_x;   /* BCONV: border class of each output row / column */
    int32_t ncls_x;
    const int32_t *corr;            /* BCONV: [class][ldv] mismatches added by padded taps */
    const int32_t *kvalid;          /* BCONV: [class] real products per output */
    const float *m, *b;             /* output transform y = acc * m + b, (ldv,) */
    const float *pm, *pb;           /* RCONV/ELTWISE input prologue x * pm + pb per input channel, or NULL */
    int32_t prelu;                  /* ... followed by a ReLU */
    int32_t relu;                   /* ReLU on the output, first step of the epilogue */
    int32_t has_res; bm_view res; int32_t res_shift;  /* residual, read at (y >> s, x >> s) */
    int32_t has_res2; bm_view res2; int32_t res2_shift; /* a second one, added after the first */
    int32_t has_out; bm_view out;   /* real output store (may alias `res`: in place) */
    int32_t out_index;              /* >= 0: also write network output #out_index (NCHW) */
    int32_t ny, nr;
    const bm_emit *ey, *er;         /* emits of y (before the residual) and of the final value */
} bm_op;

typedef struct {
    int32_t nops;
    const bm_op *ops;
    int64_t arena_bytes;            /* per image slot, without scratch */
    int64_t scratch_bytes;          /* per thread */
    int32_t in_c, in_h, in_w;       /* network input per image */
    int32_t nout;
    const int64_t *out_numel;       /* per image */
    const int32_t *out_hw;          /* [nout][2] output spatial size */
} bm_plan;

/* Run-time context of one thread working on one image. */
typedef struct {
    uint8_t *arena;                 /* this image's buffers */
    const float *image;             /* this image's input, NCHW */
    float *const *outs;             /* network outputs (all images) */
    int32_t img;                    /* image index (for outputs) */
    const bm_plan *plan;
    uint8_t *scratch;               /* this thread's scratch */
} bm_ctx;

/* engine.c */
void bm_finish_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals);
int bm_cpu_tier(void);
int bm_amx_ready(void);
void bm_amx_config(void);   /* load the engine's tile configuration on this thread (AMX CPUs only) */
void bm_amx_release(void);

/* bconv.c: compute output tile (row y, pixels x0..x0+np) of a binary conv into vals[np][ldv];
 * scratch: the thread's scratch after vals (the AMX kernel's accumulator tiles) */
void bm_bconv_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, uint8_t *scratch);
/* gemm.c: the same for a real conv; scratch is the thread's scratch after vals */
void bm_rconv_tile(const bm_op *op, const bm_ctx *cx, int y, int x0, int np, float *vals, uint8_t *scratch);

/* Channel c of a real view at pixel (y, x). Channels c..c+15 (c a multiple of 16) are contiguous
 * in both layouts; walk a view's 16-channel chunks at one pixel with bm_chunks below. */
static inline float *bm_real_at(uint8_t *arena, const bm_view *v, int y, int x, int c) {
    if (!v->blk) return (float *)(arena + v->off) + ((int64_t)y * v->w + x) * v->cs + v->co + c;
    int ch = v->co + c, sh = __builtin_ctz((unsigned)v->blk);  /* blk is a power of two */
    return (float *)(arena + v->off) + (((int64_t)(ch >> sh) * v->h + y) * v->w + x) * v->blk + (ch & (v->blk - 1));
}

/* The 16-channel chunks of a view at one pixel, in order: next after every chunk. */
typedef struct { const float *p; int left, per; int64_t jump; } bm_chunks;
static inline bm_chunks bm_chunks_at(const float *base, const bm_view *v) {
    bm_chunks k = {base, 1 << 30, 1 << 30, 0};
    if (v->blk) { k.per = k.left = v->blk >> 4; k.jump = (int64_t)v->h * v->w * v->blk - v->blk; }
    return k;
}
static inline void bm_chunks_next(bm_chunks *k) {
    k->p += 16;
    if (--k->left == 0) { k->p += k->jump; k->left = k->per; }
}
static inline uint32_t *bm_bits_px(uint8_t *arena, const bm_view *v, int y, int x) {
    return (uint32_t *)(arena + v->off) + ((int64_t)(y + v->pad) * (v->w + 2 * v->pad) + x + v->pad) * v->cs;
}
static inline int8_t *bm_s8_px(uint8_t *arena, const bm_view *v, int y, int x) {
    return (int8_t *)(arena + v->off) + ((int64_t)(y + v->pad) * (v->w + 2 * v->pad) + x + v->pad) * v->cs;
}
static inline int64_t bm_bf16_part_stride(const bm_view *v) { return ((int64_t)v->h * v->w + BM_BF16_SLACK) * v->cs; }
static inline int bm_min(int a, int b) { return a < b ? a : b; }
static inline int bm_max(int a, int b) { return a > b ? a : b; }

#endif
