/* nngen-rt: single-precision GEMM for CPUs with AVX-512F.
 *
 * Built with -mavx512f -mfma; nn_sgemm (gemm.c) calls it only after
 * __builtin_cpu_supports("avx512f") (which also checks that the OS saves
 * the zmm state).
 *
 * Problem, in "roles" (the three products the generated code needs map onto
 * it without copying the big operand):
 *     C(i, j) (+)= sum_k A(i, k) B(k, j),   i < I, j < J, k < K
 *     A(i, k) = a[i*ais + k*aks]    read in place, one element at a time
 *                                   (broadcast), MR = 6 rows of it per tile
 *     B(k, j) = b[k*bks + j*bjs]    packed per kc x NC block (kc: see
 *                                   KC_MAX) into panels of kc rows x NR = 64
 *                                   columns (zero padded)
 *     C(i, j) = c[i*cis + j*cjs]
 * The micro-kernel keeps a 6 x 64 tile of C in 24 zmm registers: per k, 4
 * vector loads of the panel, 6 broadcasts of A and 24 FMAs.
 *
 * Which operand plays A: the one read along a contiguous or short stride,
 * so it needs no packing.  For nn_sgemm(trans_b = 1) (the forward pass,
 * x w^T with w stored out x in) the roles are transposed: A = w (rows of w
 * are contiguous along k), B = x^T (packed: the small operand), and C is
 * written transposed (cjs = ldc).
 *
 * Threads: the work is split along i (each thread packs all of B) when B is
 * the smaller operand, otherwise along j (each thread packs its own columns
 * of B and reads all of A).  No barrier inside: fork, compute, join.
 *
 * Epilogues, applied by the last k block as a tile is stored: bias (by i)
 * and ReLU / leaky ReLU for nn_linear_forward; a ReLU mask (C not
 * transposed) for nn_sgemm_relu_mask.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

/* Each pool slot's packing buffer: static, NN_PACK_FLOATS floats (512
   KiB); only the buffers of threads that ran are ever touched.  Aligned to
   a cache line: the micro-kernel loads whole 64-byte vectors of a panel,
   and a panel that starts mid-line makes every one of those loads a
   split load (the linker gave this array an address 32 bytes past a line
   in one build: bench (b)'s train step took 12 % longer). */
static float pack[NN_MAX_THREADS][NN_PACK_FLOATS] __attribute__((aligned(64)));

float *nn__pack_buffer(int t)
{
    return pack[t];
}

#define MR 6
#define NRV 4           /* zmm vectors per tile row */
#define NR (16 * NRV)   /* columns per packed panel */
#define NC 256          /* columns of B per packed block */
#define STREAM_MIN_FLOATS (1L << 20) /* 4 MiB: nn__sgemm_sgd_avx512 */
#define KC_MAX 1024     /* rows of B per packed block: as many as fit in the
                           pack buffer (NN_PACK_FLOATS, sized for L2) up to
                           this, so the 6 x kc slice of A stays in L1 */

typedef struct job {
    long I, J, K;
    const float *a;
    long ais, aks;
    const float *b;
    long bks, bjs;
    float *c;
    long cis, cjs;
    int beta;           /* 1: C += ..., 0: C = ... */
    int split_i;
    const float *bias;  /* epilogue (bias indexed by i), when has_epi */
    int act;
    float slope;
    int has_epi;
    const float *mask;  /* relu mask of C (not transposed), rows ldm apart */
    long ldm;
    const nn_sgd_step *sgd;  /* C not transposed: the update of each stored
                                element's parameter (rt.h) */
    int stream;         /* with sgd and C = ... (not +=): C's full, aligned
                           vectors stored non-temporally (see
                           nn__sgemm_sgd_avx512) */
} job;

/* In place: r[q] lane l  <-  r[l] lane q. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int q = 0; q < 16; q += 2) {
        t[q] = _mm512_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm512_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 16; q += 4) {
        r[q] = _mm512_shuffle_ps(t[q], t[q + 2], 0x44);
        r[q + 1] = _mm512_shuffle_ps(t[q], t[q + 2], 0xee);
        r[q + 2] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        r[q + 3] = _mm512_shuffle_ps(t[q + 1], t[q + 3], 0xee);
    }
    for (int q = 0; q < 4; q++) {
        t[q] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0x88);
        t[q + 4] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0xdd);
        t[q + 8] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0x88);
        t[q + 12] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0xdd);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        r[q + 4] = _mm512_shuffle_f32x4(t[q + 4], t[q + 12], 0x88);
        r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
        r[q + 12] = _mm512_shuffle_f32x4(t[q + 4], t[q + 12], 0xdd);
    }
}

/* Pack B(k0 .. k0+kc, j0 .. j0+nc) into panels of kc x NR: panel p holds
   columns j0 + p*NR ..; element (k, jj) at p*kc*NR + k*NR + jj.  Columns at
   or past J are zero. */
static void pack_b(const job *jb, long k0, long kc, long j0, long nc, float *dst)
{
    long np = (nc + NR - 1) / NR;
    for (long p = 0; p < np; p++) {
        float *d = dst + p * kc * NR;
        long jb0 = j0 + p * NR;
        long w = jb->J - jb0 < NR ? jb->J - jb0 : NR;
        if (jb->bjs == 1) {
            /* rows of B are contiguous: copy w floats per k */
            __mmask16 mk[NRV];
            for (int v = 0; v < NRV; v++) {
                long left = w - 16 * v;
                mk[v] = left >= 16 ? (__mmask16)0xffff
                        : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
            }
            for (long k = 0; k < kc; k++) {
                const float *s = jb->b + (k0 + k) * jb->bks + jb0;
                for (int v = 0; v < NRV; v++)
                    _mm512_storeu_ps(d + k * NR + 16 * v, _mm512_maskz_loadu_ps(mk[v], s + 16 * v));
            }
        } else {
            /* columns of B are contiguous (the forward pass: bks == 1):
               whole 16 x 16 blocks are transposed through registers, the
               rest (k tail, partial vector, padding) element by element */
            long kfull = jb->bks == 1 ? kc / 16 * 16 : 0;
            int vfull = (int)(w / 16);
            for (long k = 0; k < kfull; k += 16)
                for (int v = 0; v < vfull; v++) {
                    __m512 r[16];
                    for (int q = 0; q < 16; q++)
                        r[q] = _mm512_loadu_ps(jb->b + (jb0 + 16 * v + q) * jb->bjs + k0 + k);
                    transpose16(r);
                    for (int q = 0; q < 16; q++)
                        _mm512_storeu_ps(d + (k + q) * NR + 16 * v, r[q]);
                }
            for (long k = 0; k < kc; k++)
                for (long jj = k < kfull ? 16 * vfull : 0; jj < NR; jj++)
                    d[k * NR + jj] = jj < w ? jb->b[(k0 + k) * jb->bks + (jb0 + jj) * jb->bjs]
                                            : 0.0f;
        }
    }
}

/* What the last k block applies before storing: + bias[i] (bias of the
   tile's first row; NULL: none), then the activation. */
typedef struct epilogue {
    const float *bias;
    int act;            /* NN_ACT_* */
    float slope;
    const float *mask;  /* C not transposed: c = mask > 0 ? c : 0, mask at
                           the tile's first element, rows ldm apart */
    long ldm;
    const nn_sgd_step *sgd; /* C not transposed: each stored element's
                               parameter stepped (rt.h's arithmetic) */
    float *sp, *sm;     /* its parameter and momentum buffer at the tile's
                           first element (rows as C's) */
    int stream;         /* job's stream */
} epilogue;

/* nn_sgd_step's update of 16 (masked: m) elements whose gradient g has
   just been stored at offset off from the tile's first element: rt.h's
   expressions as separate products and sums, in their order, so that the
   bits are those of the plain C (nn__sgd_rows, the generated kernels). */
static inline void sgd16(const epilogue *ep, long off, __m512 g, __mmask16 m)
{
    const nn_sgd_step *s = ep->sgd;
    float *pp = ep->sp + off;
    __m512 p = _mm512_maskz_loadu_ps(m, pp);
    if (s->weight_decay != 0.0f)
        g = _mm512_add_ps(g, _mm512_mul_ps(_mm512_set1_ps(s->weight_decay), p));
    __m512 u = g;
    if (ep->sm) {
        float *mp = ep->sm + off;
        __m512 buf = s->first ? g
                              : _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, mp),
                                                            _mm512_set1_ps(s->momentum)),
                                              _mm512_mul_ps(_mm512_set1_ps(s->damp1), g));
        _mm512_mask_storeu_ps(mp, m, buf);
        u = s->nesterov ? _mm512_add_ps(g, _mm512_mul_ps(_mm512_set1_ps(s->momentum), buf)) : buf;
    }
    _mm512_mask_storeu_ps(pp, m, _mm512_add_ps(p, _mm512_mul_ps(_mm512_set1_ps(s->neg_lr), u)));
}

/* relu: x > 0 ? x : 0 (max_ps returns its second operand, 0, for NaN);
   leaky: x > 0 ? x : slope x (NaN stays NaN) -- as the generated loops. */
static inline __m512 activate(__m512 x, const epilogue *ep, __m512 zero)
{
    if (ep->act == NN_ACT_RELU)
        return _mm512_max_ps(x, zero);
    if (ep->act == NN_ACT_LEAKY_RELU) {
        __mmask16 pos = _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ);
        return _mm512_mask_blend_ps(pos, _mm512_mul_ps(x, _mm512_set1_ps(ep->slope)), x);
    }
    return x;
}

/* The micro-kernel: tile of mr rows x nv vectors; written for constant mr
   and nv (each instance below), so the accumulators live in registers. */
static inline __attribute__((always_inline)) void
kernel(const int mr, const int nv, long kc, const float *a, long ais, long aks, const float *bp,
       float *c, long cis, long cjs, long w, int beta, const epilogue *ep)
{
    __m512 acc[MR][NRV];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    if (ep && ep->sgd) {
        /* the tile's parameter (and momentum) lines, wanted by the stores
           after the k loop: fetched while it runs, not when they are
           needed (a weight larger than the caches comes from memory;
           4096x4096x256 with plain SGD, 2 threads: 284 -> 310 GFLOP/s,
           medians of 5) */
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                _mm_prefetch((const char *)(ep->sp + i * cis + 16 * v), _MM_HINT_T0);
                if (ep->sm)
                    _mm_prefetch((const char *)(ep->sm + i * cis + 16 * v), _MM_HINT_T0);
            }
    }
    for (long k = 0; k < kc; k++) {
        __m512 bv[NRV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_ps(bp + k * NR + 16 * v);
        const float *ak = a + k * aks;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(ak[i * ais]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
    __m512 zero = _mm512_setzero_ps();
    if (cjs == 1) {
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            long left = w - 16 * v;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
#pragma GCC unroll 6
            for (int i = 0; i < mr; i++) {
                float *p = c + i * cis + 16 * v;
                __m512 r = acc[i][v];
                if (beta)
                    r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, p));
                if (ep) {
                    if (ep->bias)
                        r = _mm512_add_ps(r, _mm512_set1_ps(ep->bias[i]));
                    r = activate(r, ep, zero);
                    if (ep->mask) {
                        __m512 y = _mm512_maskz_loadu_ps(m, ep->mask + i * ep->ldm + 16 * v);
                        r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ), r);
                    }
                }
                if (ep && ep->stream && !beta && m == (__mmask16)0xffff && !((uintptr_t)p & 63))
                    _mm512_stream_ps(p, r);
                else
                    _mm512_mask_storeu_ps(p, m, r);
                if (ep && ep->sgd)
                    sgd16(ep, i * cis + 16 * v, r, m);
            }
        }
    } else {
        /* transposed C (cis == 1): per 16 columns, transpose the tile so
           that vector q holds column j = 16v + q's mr values (lanes < mr),
           which are contiguous in memory */
        __mmask16 mi = (__mmask16)((1u << mr) - 1u);
        __m512 bias = ep && ep->bias ? _mm512_maskz_loadu_ps(mi, ep->bias) : zero;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int q = 0; q < 16; q++)
                r[q] = q < mr ? acc[q][v] : zero;
            transpose16(r);
            long cols = w - 16 * v < 16 ? w - 16 * v : 16;
            for (long q = 0; q < cols; q++) {
                float *p = c + (16 * v + q) * cjs;
                __m512 x = r[q];
                if (beta)
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mi, p));
                if (ep)
                    x = activate(_mm512_add_ps(x, bias), ep, zero);
                _mm512_mask_storeu_ps(p, mi, x);
            }
        }
    }
}

typedef void (*kernel_fn)(long, const float *, long, long, const float *, float *, long, long,
                          long, int, const epilogue *);
#define K1(R, V)                                                                              \
    static void k##R##V(long kc, const float *a, long ais, long aks, const float *bp,        \
                        float *c, long cis, long cjs, long w, int beta, const epilogue *ep)   \
    {                                                                                         \
        kernel(R, V, kc, a, ais, aks, bp, c, cis, cjs, w, beta, ep);                          \
    }
#define KROW(R) K1(R, 1) K1(R, 2) K1(R, 3) K1(R, 4)
KROW(1) KROW(2) KROW(3) KROW(4) KROW(5) KROW(6)
static const kernel_fn kernels[MR + 1][NRV + 1] = {
    {0},
    {0, k11, k12, k13, k14},
    {0, k21, k22, k23, k24},
    {0, k31, k32, k33, k34},
    {0, k41, k42, k43, k44},
    {0, k51, k52, k53, k54},
    {0, k61, k62, k63, k64},
};

/* Thread t's share [lo, hi) of n units. */
static void share(long n, int t, int nt, long *lo, long *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* Columns of B per packed block: NC, or NC / 2
   - where C is transposed (the forward's x w^T): a block of half the
     width holds twice the k (KC_MAX), so the tiles of C -- read, added to
     and transposed back at every k block -- go through half as many k
     blocks (256x4096x4096, 2 threads: 273 -> 311 GFLOP/s; 256x4096x1024:
     288 -> 326);
   - where k is short (at most 64: a weight gradient over a batch of 64),
     so the whole block, k x NC / 2 floats, stays in L1 while every tile of
     A runs over it (256x784x64: 233 -> 274 GFLOP/s).
   Elsewhere the half-width block was slower (4096x4096x256: 255 -> 226,
   NN 256x4096x4096: 289 -> 280). */
static long block_cols(const job *jb)
{
    return jb->cis == 1 || jb->K <= 64 ? NC / 2 : NC;
}

static void run(void *ctx, int t, int nt)
{
    const job *jb = ctx;
    float *pk = nn__pack_buffer(t);
    long i_lo = 0, i_hi = jb->I, j_lo = 0, j_hi = jb->J;
    if (jb->split_i) {
        long tiles = (jb->I + MR - 1) / MR, lo, hi;
        share(tiles, t, nt, &lo, &hi);
        i_lo = lo * MR;
        i_hi = hi * MR < jb->I ? hi * MR : jb->I;
    } else {
        /* in units of one vector, not one panel: 784 columns split as
           384 + 400, where whole panels would give 384 + 448 */
        long vecs = (jb->J + 15) / 16, lo, hi;
        share(vecs, t, nt, &lo, &hi);
        j_lo = lo * 16;
        j_hi = hi * 16 < jb->J ? hi * 16 : jb->J;
    }
    if (i_lo >= i_hi || j_lo >= j_hi)
        return;
    /* k blocks of equal size, each at most kmax rows: a block of B
       (kc x nc, nc rounded up to whole panels) must fit the pack buffer */
    long ncb = block_cols(jb);
    long ncr = ((j_hi - j_lo < ncb ? j_hi - j_lo : ncb) + NR - 1) / NR * NR;
    long kmax = NN_PACK_FLOATS / ncr < KC_MAX ? NN_PACK_FLOATS / ncr : KC_MAX;
    long nkb = (jb->K + kmax - 1) / kmax;
    for (long kb = 0; kb < nkb; kb++) {
        long k0 = jb->K * kb / nkb, kc = jb->K * (kb + 1) / nkb - k0;
        int beta = kb ? 1 : jb->beta;
        epilogue epi = {NULL, jb->act, jb->slope, NULL, jb->ldm, jb->sgd, NULL, NULL, jb->stream};
        int last = kb == nkb - 1 && jb->has_epi;
        for (long j0 = j_lo; j0 < j_hi; j0 += ncb) {
            long nc = j_hi - j0 < ncb ? j_hi - j0 : ncb;
            pack_b(jb, k0, kc, j0, nc, pk);
            for (long i0 = i_lo; i0 < i_hi; i0 += MR) {
                int mr = (int)(i_hi - i0 < MR ? i_hi - i0 : MR);
                const float *a = jb->a + i0 * jb->ais + k0 * jb->aks;
                for (long jj = 0; jj < nc; jj += NR) {
                    long w = nc - jj < NR ? nc - jj : NR;
                    int nv = (int)((w + 15) / 16);
                    epi.bias = jb->bias ? jb->bias + i0 : NULL;
                    epi.mask = jb->mask ? jb->mask + i0 * jb->ldm + j0 + jj : NULL;
                    if (jb->sgd) {
                        long off = i0 * jb->cis + (j0 + jj) * jb->cjs;
                        epi.sp = jb->sgd->param + off;
                        epi.sm = jb->sgd->momentum_buf ? jb->sgd->momentum_buf + off : NULL;
                    }
                    kernels[mr][nv](kc, a, jb->ais, jb->aks, pk + (jj / NR) * kc * NR,
                                    jb->c + i0 * jb->cis + (j0 + jj) * jb->cjs, jb->cis, jb->cjs,
                                    w, beta, last ? &epi : NULL);
                }
            }
        }
    }
    if (jb->stream)
        _mm_sfence(); /* the streamed stores are visible before the join */
}

static void setup_job(job *jbp, int trans_a, int trans_b, int m, int n, int k, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.K = k;
    jb.beta = beta != 0.0f;
    if (!trans_b) {
        /* C = op(A) B: A plays A, B is packed row by row */
        jb.I = m;
        jb.J = n;
        jb.a = a;
        jb.ais = trans_a ? 1 : lda;
        jb.aks = trans_a ? lda : 1;
        jb.b = b;
        jb.bks = ldb;
        jb.bjs = 1;
        jb.c = c;
        jb.cis = ldc;
        jb.cjs = 1;
    } else {
        /* C^T = B op(A)^T: rows of B (contiguous along k) play A, op(A)^T
           is packed, C is written transposed */
        jb.I = n;
        jb.J = m;
        jb.a = b;
        jb.ais = ldb;
        jb.aks = 1;
        jb.b = a;
        jb.bks = trans_a ? lda : 1;
        jb.bjs = trans_a ? 1 : lda;
        jb.c = c;
        jb.cis = 1;
        jb.cjs = ldc;
    }
    jb.split_i = jb.J < jb.I;
    *jbp = jb;
}

void nn__sgemm_avx512(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc)
{
    if (k == 0) {
        /* nothing to multiply: C = beta C */
        if (beta == 0.0f)
            for (long i = 0; i < m; i++)
                memset(c + i * ldc, 0, sizeof(float) * (size_t)n);
        return;
    }
    job jb;
    setup_job(&jb, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    nn__pool_run(run, &jb);
}

void nn__sgemm_sgd_avx512(int trans_a, int trans_b, int m, int n, int k, const float *a,
                          int lda, const float *b, int ldb, float beta, float *c, int ldc,
                          const nn_sgd_step *step)
{
    if (k == 0 || trans_b) {
        /* C = beta C, or C transposed in the kernel's roles: the update
           after the product, on the pool (held by the caller) */
        nn__sgemm_avx512(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        nn__sgd_pass(step, m, n, c, ldc, 1);
        return;
    }
    job jb;
    setup_job(&jb, trans_a, 0, m, n, k, a, lda, b, ldb, beta, c, ldc);
    jb.act = NN_ACT_NONE;
    jb.sgd = step;
    jb.has_epi = 1;
    /* split along the rows of the parameter (each thread packs all of B):
       the threads then step the same rows of it as their shares of the
       layer's forward product read (nn__linear_avx512 splits a weight's
       rows the same way), so the parameter, its momentum buffer and its
       gradient stay in one core's cache from step to step.  Measured on
       bench (b)'s train step (784-256-256-10, batch 64, 2 threads): 437
       us with the split along the columns, 375 us with this one */
    jb.split_i = 1;
    /* a gradient larger than STREAM_MIN_FLOATS is stored past the caches:
       the step does not read it again, and a store that does not first
       read its line (as an ordinary store does) saves a quarter of the
       update's memory traffic (read and write the parameter, write the
       gradient); a smaller one stays in the last-level cache, where the
       next step's stores find it */
    jb.stream = !jb.beta && (long)m * n > STREAM_MIN_FLOATS;
    nn__pool_run(run, &jb);
}

void nn__sgemm_relu_avx512(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                           float *c, int ldc, const float *mask, int ldm)
{
    job jb;
    setup_job(&jb, 0, 0, m, n, k, a, lda, b, ldb, 0.0f, c, ldc);
    jb.act = NN_ACT_NONE;
    jb.mask = mask;
    jb.ldm = ldm;
    jb.has_epi = 1;
    nn__pool_run(run, &jb);
}

void nn__linear_avx512(int rows, int in, int out, const float *x, const float *w,
                       const float *bias, int act, float slope, float *y)
{
    /* y = x w^T: the transposed roles (i = output feature), so the bias is
       indexed by i */
    job jb;
    setup_job(&jb, 0, 1, rows, out, in, x, in, w, in, 0.0f, y, out);
    jb.bias = bias;
    jb.act = act;
    jb.slope = slope;
    jb.has_epi = 1;
    nn__pool_run(run, &jb);
}

/* ------------------------------------------------------------------ */
/* Elementwise: sigmoid (act.c dispatches here on AVX-512 CPUs)        */

/* e^x to about 1 ulp: x = n ln2 + r (Cody-Waite, |r| <= ln2 / 2), Cephes'
   expf polynomial for e^r, then * 2^n by scalef (which rounds denormals and
   overflows to inf as the exact value does: e^89 is inf).  The clamp only
   keeps n and r small (n = +-150 is already past both ends); min/max return
   their second operand for NaN, x, so NaN stays NaN. */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(104.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    /* (p r^2 + r) + 1, Cephes' order: adding 1 last keeps r's low bits */
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* y = 1 / (1 + e^-x), as torch's vectorized sigmoid writes it.  -x is
   kept >= -87 first: below that e^-x would be a denormal (which costs a
   microcode assist per lane on Intel cores, 20x the loop's time on a
   saturated LeNet), and 1 + e^-x is exactly 1 from -x < -16.7 on anyway. */
void nn__sigmoid_avx512(long n, const float *x, float *y)
{
    const __m512 one = _mm512_set1_ps(1.0f), lo = _mm512_set1_ps(-87.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 e = exp16(_mm512_max_ps(lo, _mm512_sub_ps(_mm512_setzero_ps(), v)));
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
}

/* y = tanh(x) as Cephes' tanhf computes it: x + x^3 P(x^2) for |x| <
   0.625, else sign(x) (1 - 2 / (e^{2|x|} + 1)) (e^{2|x|} is inf from |x| >
   44, and the quotient 0 then: the result is exactly +-1 there, as tanhf's);
   -0 stays -0 and NaN stays NaN.  About 2 ulp against tanhf. */
void nn__tanh_avx512(long n, const float *x, float *y)
{
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512 small = _mm512_set1_ps(0.625f);
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512i vi = _mm512_castps_si512(v);
        __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(signbit, vi));
        /* |x| >= 0.625 (and NaN): 1 - 2 / (e^{2|x|} + 1) */
        __m512 e = exp16(_mm512_mul_ps(two, ax));
        __m512 big = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
        /* |x| < 0.625: the odd polynomial */
        __m512 z = _mm512_mul_ps(v, v);
        __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
        __m512 sm = _mm512_fmadd_ps(_mm512_mul_ps(p, z), v, v);
        __mmask16 lt = _mm512_cmp_ps_mask(ax, small, _CMP_LT_OQ);
        /* x's sign on both (tanh is odd; the polynomial gives +0 for -0) */
        __m512i r = _mm512_castps_si512(_mm512_mask_blend_ps(lt, big, sm));
        r = _mm512_or_si512(_mm512_andnot_si512(signbit, r), _mm512_and_si512(signbit, vi));
        _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(r));
    }
}

/* gx = gy (1 - y) y, torch's sigmoid_backward order */
void nn__sigmoid_backward_avx512(long n, const float *gy, const float *y, float *gx)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 g = _mm512_maskz_loadu_ps(m, gy + i), v = _mm512_maskz_loadu_ps(m, y + i);
        _mm512_mask_storeu_ps(gx + i, m, _mm512_mul_ps(_mm512_mul_ps(g, _mm512_sub_ps(one, v)), v));
    }
}

/* conv.c's copies into and out of its planes: rows of w floats, each
   after lpad zeros and before rpad zeros (dst row r at dst + r ds, src row
   at src + r ss), 16 lanes at a time with masked ends: a row of 32 or 34
   floats was a memcpy call (and a memset of the whole buffer before),
   about a tenth of the small ResNet's train step. */
static inline void zeros16(float *d, long n)
{
    const __m512 z = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, z);
    if (i < n)
        _mm512_mask_storeu_ps(d + i, (__mmask16)((1u << (n - i)) - 1u), z);
}

void nn__copy_rows_avx512(long rows, long w, const float *src, long ss, float *dst, long ds,
                          long lpad, long rpad)
{
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * ss;
        float *d = dst + r * ds;
        zeros16(d, lpad);
        d += lpad;
        long i = 0;
        for (; i + 16 <= w; i += 16)
            _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
        if (i < w) {
            __mmask16 m = (__mmask16)((1u << (w - i)) - 1u);
            _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
        }
        zeros16(d + w, rpad);
    }
}

/* even[j] = src[2 j], odd[j] = src[2 j + 1] for j < n (conv.c's stride-2
   phase planes), and the inverse: dst[2 j] = even[j], dst[2 j + 1] =
   odd[j]; 32 floats per step through two-source permutes. */
void nn__deinterleave2_avx512(long n, const float *src, float *even, float *odd)
{
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (long j = 0; j < n; j += 16) {
        long left = 2 * (n - j); /* floats of src from 2 j */
        __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __mmask16 m1 = left >= 32   ? (__mmask16)0xffff
                       : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u)
                                   : (__mmask16)0;
        __mmask16 mo = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m0, src + 2 * j);
        __m512 b = _mm512_maskz_loadu_ps(m1, src + 2 * j + 16);
        _mm512_mask_storeu_ps(even + j, mo, _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(odd + j, mo, _mm512_permutex2var_ps(a, io, b));
    }
}

void nn__interleave2_avx512(long n, const float *even, const float *odd, float *dst)
{
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                        24, 8);
    for (long j = 0; j < n; j += 16) {
        long left = 2 * (n - j);
        __mmask16 mi = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
        __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __mmask16 m1 = left >= 32   ? (__mmask16)0xffff
                       : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u)
                                   : (__mmask16)0;
        __m512 e = _mm512_maskz_loadu_ps(mi, even + j), o = _mm512_maskz_loadu_ps(mi, odd + j);
        _mm512_mask_storeu_ps(dst + 2 * j, m0, _mm512_permutex2var_ps(e, lo, o));
        _mm512_mask_storeu_ps(dst + 2 * j + 16, m1, _mm512_permutex2var_ps(e, hi, o));
    }
}

/* ------------------------------------------------------------------ */
/* Products over row tables (conv.c's implicit GEMMs)                  */

/* One tile of C = A B: rows i0 .. i0+mr of C, nv vectors from column j0
   (w columns: loads and stores past them masked off). */
static inline __attribute__((always_inline)) void
gkernel(const int mr, const int nv, const nn_gemm_rows *g, long i0, long jb, long jc, long kc,
        long w)
{
    __m512 acc[MR][NRV];
    __mmask16 mk[NRV];
    const float *ar[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        ar[i] = g->a + g->aoff[i0 + i];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        long left = w - 16 * v;
        mk[v] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    const long aks = g->aks;
    for (long p = 0; p < kc; p++) {
        const float *b = g->b + g->boff[p] + jb;
        __m512 bv[NRV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_maskz_loadu_ps(mk[v], b + 16 * v);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(ar[i][p * aks]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
    /* row by row, load-add-store: rows of C may overlap (col2im's adjoint
       adds shifted rows into the same planes), each sees the ones before */
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *cr = g->c + g->coff[i0 + i] + jc;
        __m512 bi = g->bias ? _mm512_set1_ps(g->bias[i0 + i]) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_add_ps(acc[i][v], bi);
            if (g->beta)
                r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk[v], cr + 16 * v), r);
            _mm512_mask_storeu_ps(cr + 16 * v, mk[v], r);
        }
    }
}

typedef void (*gkernel_fn)(const nn_gemm_rows *, long, long, long, long, long);
#define G1(R, V)                                                                              \
    static void g##R##V(const nn_gemm_rows *g, long i0, long jb, long jc, long kc, long w)     \
    {                                                                                         \
        gkernel(R, V, g, i0, jb, jc, kc, w);                                                  \
    }
#define GROW(R) G1(R, 1) G1(R, 2) G1(R, 3) G1(R, 4)
GROW(1) GROW(2) GROW(3) GROW(4) GROW(5) GROW(6)

static const gkernel_fn gkernels[MR + 1][NRV + 1] = {
    {0, 0, 0, 0, 0},
    {0, g11, g12, g13, g14},
    {0, g21, g22, g23, g24},
    {0, g31, g32, g33, g34},
    {0, g41, g42, g43, g44},
    {0, g51, g52, g53, g54},
    {0, g61, g62, g63, g64},
};

void nn__sgemm_rows_avx512(const nn_gemm_rows *g)
{
    /* column blocks outer: a block of B's rows (k x 64) stays in cache
       while every row tile of A passes over it; with nrow, the columns are
       nrow runs of n, rsb apart in B and rsc apart in C */
    long runs = g->nrow > 0 ? g->nrow : 1;
    for (long r = 0; r < runs; r++)
        for (long j0 = 0; j0 < g->n; j0 += NR) {
            long w = g->n - j0 < NR ? g->n - j0 : NR;
            int nv = (int)((w + 15) / 16);
            for (long i0 = 0; i0 < g->m; i0 += MR) {
                int mr = (int)(g->m - i0 < MR ? g->m - i0 : MR);
                gkernels[mr][nv](g, i0, r * g->rsb + j0, r * g->rsc + j0, g->k, w);
            }
        }
}

/* C = A B^T over row tables, both operands contiguous along the reduction
   (conv.c's weight gradient: gy's rows against the planes' rows): a tile of
   DI x DJ sums, 16 lanes of the reduction at a time, reduced at the end. */
#define DI 6
#define DJ 4
/* a dot tile's sums stored: its 16 lanes into cv (added when beta: one
   reduction per block of calls), else reduced into C (added when beta) */
static inline __attribute__((always_inline)) void
dstore(const int mi, const int nj, const nn_gemm_dot *g, __m512 acc[DI][DJ], long i0, long j0)
{
    if (g->cv) {
#pragma GCC unroll 6
        for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
            for (int j = 0; j < nj; j++) {
                float *c = g->cv + ((i0 + i) * g->n + j0 + j) * 16;
                __m512 r = acc[i][j];
                if (g->beta)
                    r = _mm512_add_ps(_mm512_loadu_ps(c), r);
                _mm512_storeu_ps(c, r);
            }
        return;
    }
#pragma GCC unroll 6
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++) {
            float *c = g->c + (i0 + i) * g->ldc + j0 + j;
            float s = _mm512_reduce_add_ps(acc[i][j]);
            *c = g->beta ? *c + s : s;
        }
}

static inline __attribute__((always_inline)) void
dkernel(const int mi, const int nj, const nn_gemm_dot *g, long i0, long j0)
{
    __m512 acc[DI][DJ];
    const float *ar[DI], *br[DJ];
#pragma GCC unroll 6
    for (int i = 0; i < mi; i++)
        ar[i] = g->a + g->aoff[i0 + i];
#pragma GCC unroll 4
    for (int j = 0; j < nj; j++)
        br[j] = g->b + g->boff[j0 + j];
#pragma GCC unroll 6
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++)
            acc[i][j] = _mm512_setzero_ps();
    long runs = g->nrow > 0 ? g->nrow : 1;
    for (long r = 0; r < runs; r++)
        for (long p = 0; p < g->k; p += 16) {
            long left = g->k - p;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512 bv[DJ];
#pragma GCC unroll 4
            for (int j = 0; j < nj; j++)
                bv[j] = _mm512_maskz_loadu_ps(m, br[j] + r * g->rsb + p);
#pragma GCC unroll 6
            for (int i = 0; i < mi; i++) {
                __m512 av = _mm512_maskz_loadu_ps(m, ar[i] + r * g->rsa + p);
#pragma GCC unroll 4
                for (int j = 0; j < nj; j++)
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
            }
        }
    dstore(mi, nj, g, acc, i0, j0);
}

typedef void (*dkernel_fn)(const nn_gemm_dot *, long, long);
#define D1(I, J)                                                                              \
    static void d##I##J(const nn_gemm_dot *g, long i0, long j0) { dkernel(I, J, g, i0, j0); }
#define DROW(I) D1(I, 1) D1(I, 2) D1(I, 3) D1(I, 4)
DROW(1) DROW(2) DROW(3) DROW(4) DROW(5) DROW(6)

static const dkernel_fn dkernels[DI + 1][DJ + 1] = {
    {0, 0, 0, 0, 0},
    {0, d11, d12, d13, d14},
    {0, d21, d22, d23, d24},
    {0, d31, d32, d33, d34},
    {0, d41, d42, d43, d44},
    {0, d51, d52, d53, d54},
    {0, d61, d62, d63, d64},
};

/* The same tile when A's rows are lda floats apart (conv.c's gy): the rows
   addressed from two pointers and lda, B's from four, every pointer
   advanced per step, and the masked step only at the end of each run.
   dkernel's general form kept ten row pointers and the run's offsets,
   more than the 16 general registers: GCC spilled them and reloaded
   addresses inside the loop (the weight gradient ran at about half the
   FMA rate).  The same FMAs in the same order: the same bits. */
static inline __attribute__((always_inline)) void
dkernel_lda(const int mi, const int nj, const nn_gemm_dot *g, long lda, long i0, long j0)
{
    __m512 acc[DI][DJ];
#pragma GCC unroll 6
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++)
            acc[i][j] = _mm512_setzero_ps();
    const long k = g->k, full = k / 16 * 16, left = k - full;
    const __mmask16 m = (__mmask16)((1u << left) - 1u);
    long runs = g->nrow > 0 ? g->nrow : 1;
    for (long r = 0; r < runs; r++) {
        const float *a0 = g->a + g->aoff[i0] + r * g->rsa, *a3 = a0 + 3 * lda;
        const float *b0 = g->b + g->boff[j0] + r * g->rsb;
        const float *b1 = nj > 1 ? g->b + g->boff[j0 + 1] + r * g->rsb : b0;
        const float *b2 = nj > 2 ? g->b + g->boff[j0 + 2] + r * g->rsb : b0;
        const float *b3 = nj > 3 ? g->b + g->boff[j0 + 3] + r * g->rsb : b0;
        for (long p = 0; p <= full; p += 16) {
            if (p == full && left == 0)
                break;
            const __mmask16 mk = p < full ? (__mmask16)0xffff : m;
            __m512 bv[DJ];
            bv[0] = _mm512_maskz_loadu_ps(mk, b0);
            if (nj > 1)
                bv[1] = _mm512_maskz_loadu_ps(mk, b1);
            if (nj > 2)
                bv[2] = _mm512_maskz_loadu_ps(mk, b2);
            if (nj > 3)
                bv[3] = _mm512_maskz_loadu_ps(mk, b3);
#pragma GCC unroll 6
            for (int i = 0; i < mi; i++) {
                const float *ai = i < 3 ? a0 + i * lda : a3 + (i - 3) * lda;
                __m512 av = _mm512_maskz_loadu_ps(mk, ai);
#pragma GCC unroll 4
                for (int j = 0; j < nj; j++)
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
            }
            a0 += 16, a3 += 16, b0 += 16, b1 += 16, b2 += 16, b3 += 16;
        }
    }
    dstore(mi, nj, g, acc, i0, j0);
}

typedef void (*dkernel_lda_fn)(const nn_gemm_dot *, long, long, long);
#define DL1(I, J)                                                                             \
    static void dl##I##J(const nn_gemm_dot *g, long lda, long i0, long j0)                    \
    {                                                                                         \
        dkernel_lda(I, J, g, lda, i0, j0);                                                    \
    }
#define DLROW(I) DL1(I, 1) DL1(I, 2) DL1(I, 3) DL1(I, 4)
DLROW(1) DLROW(2) DLROW(3) DLROW(4) DLROW(5) DLROW(6)

static const dkernel_lda_fn dkernels_lda[DI + 1][DJ + 1] = {
    {0, 0, 0, 0, 0},
    {0, dl11, dl12, dl13, dl14},
    {0, dl21, dl22, dl23, dl24},
    {0, dl31, dl32, dl33, dl34},
    {0, dl41, dl42, dl43, dl44},
    {0, dl51, dl52, dl53, dl54},
    {0, dl61, dl62, dl63, dl64},
};

/* rows of A lda floats apart: that lda, else -1 */
static long rows_apart(const nn_gemm_dot *g)
{
    if (g->m < 2)
        return 0;
    long lda = (long)g->aoff[1] - g->aoff[0];
    for (long i = 2; i < g->m; i++)
        if ((long)g->aoff[i] - g->aoff[i - 1] != lda)
            return -1;
    return lda;
}

void nn__sgemm_dot_avx512(const nn_gemm_dot *g)
{
    long lda = rows_apart(g);
    for (long i0 = 0; i0 < g->m; i0 += DI)
        for (long j0 = 0; j0 < g->n; j0 += DJ) {
            int mi = (int)(g->m - i0 < DI ? g->m - i0 : DI);
            int nj = (int)(g->n - j0 < DJ ? g->n - j0 : DJ);
            if (lda >= 0)
                dkernels_lda[mi][nj](g, lda, i0, j0);
            else
                dkernels[mi][nj](g, i0, j0);
        }
}

const nn_vec_kernels nn__vec_kernels_avx512 = {"avx512",           16,
                                                 nn__copy_rows_avx512, nn__deinterleave2_avx512,
                                                 nn__interleave2_avx512, nn__sgemm_rows_avx512,
                                                 nn__sgemm_dot_avx512,
                                                 nn__sigmoid_avx512,
                                                 nn__sigmoid_backward_avx512,
                                                 nn__tanh_avx512};
