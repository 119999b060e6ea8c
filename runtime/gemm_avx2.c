/* nngen-rt: single-precision GEMM for CPUs with AVX2 and FMA but no
 * AVX-512F (AMD Zen 1-3, Intel Haswell to Comet Lake), or where NNGEN_ISA=avx2
 * asks for it.
 *
 * Built with -mavx2 -mfma; gemm.c calls it only after
 * __builtin_cpu_supports("avx2") and ("fma").  The same design as
 * gemm_avx512.c, which documents it (the roles A, B and C, which operand
 * plays A, the split over threads, the epilogues), on 8-float vectors:
 *     a tile of C is MR = 6 rows x NR = 16 columns, 12 ymm accumulators;
 *     per k: 2 vector loads of the packed panel, 6 broadcasts of A, 12 FMAs
 *     (15 of the 16 ymm registers);
 *     B is packed per kc x NC block into panels of kc x 16 (zero padded),
 *     a block at most half the packing buffer (256 KiB: half of a Zen 3 or
 *     Skylake client core's L2), kc at most KC_MAX;
 *     the edges (fewer rows or columns) are stored through lane masks
 *     (maskload / maskstore) -- the panel's padding is zero, so the
 *     arithmetic is the same in every lane.
 * Bits: each element of C is the sum over k in order, k block after k
 * block, as in gemm_avx512.c (FMA per k), whatever the thread count; the
 * fused SGD update uses rt.h's expressions as separate products and sums,
 * the bits of nn__sgd_rows.
 */
#include <immintrin.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#ifndef MR
#define MR 6
#endif
#ifndef NRV
#define NRV 2           /* ymm vectors per tile row */
#endif
#define NR (8 * NRV)    /* columns per packed panel */
#ifndef NC
#define NC 256          /* columns of B per packed block */
#endif
#ifndef KC_MAX
#define KC_MAX 512      /* rows of B per packed block (at most; see
                           block_cols) */
#endif
#define BLOCK_FLOATS (NN_PACK_FLOATS / 2) /* a packed block of B's floats, at
                                             most; A's packed tile after it */

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
} job;

/* lanes [0, n) set (n clamped to 0 .. 8) */
static inline __m256i lanes(long n)
{
    int k = n < 0 ? 0 : n > 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Loads and stores of n lanes (n <= 8; -1: all 8): whole vectors where
   n is 8, else through the lane mask m.  (A masked store, vmaskmovps, is
   microcoded on AMD's cores: about 40 uops on Zen 2 and 3, a tenth of the
   kernel's speed when every store of a tile went through it.) */
static inline __m256 load_n(const float *p, int full, __m256i m)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

static inline void store_n(float *p, int full, __m256i m, __m256 x)
{
    if (full)
        _mm256_storeu_ps(p, x);
    else
        _mm256_maskstore_ps(p, m, x);
}

/* The first mr (1 .. 8) lanes of x at p, by plain stores: 4, 2 and 1
   lanes at a time (a transposed tile's column: 6 lanes of 8). */
static inline void store_lanes(float *p, int mr, __m256 x)
{
    __m128 lo = _mm256_castps256_ps128(x);
    if (mr == 8) {
        _mm256_storeu_ps(p, x);
        return;
    }
    if (mr >= 4) {
        _mm_storeu_ps(p, lo);
        lo = _mm256_extractf128_ps(x, 1);
        p += 4;
        mr -= 4;
    }
    if (mr >= 2) {
        _mm_storel_pi((__m64 *)p, lo);
        lo = _mm_movehl_ps(lo, lo);
        p += 2;
        mr -= 2;
    }
    if (mr)
        _mm_store_ss(p, lo);
}

/* In place: r[q] lane l  <-  r[l] lane q. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        u[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
        u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xee);
        u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
        u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xee);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
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
            __m256i mk[NRV];
            for (int v = 0; v < NRV; v++)
                mk[v] = lanes(w - 8 * v);
            for (long k = 0; k < kc; k++) {
                const float *s = jb->b + (k0 + k) * jb->bks + jb0;
                for (int v = 0; v < NRV; v++)
                    _mm256_storeu_ps(d + k * NR + 8 * v, _mm256_maskload_ps(s + 8 * v, mk[v]));
            }
        } else {
            /* columns of B are contiguous (the forward pass: bks == 1):
               whole 8 x 8 blocks are transposed through registers, the
               rest (k tail, partial vector, padding) element by element */
            long kfull = jb->bks == 1 ? kc / 8 * 8 : 0;
            int vfull = (int)(w / 8);
            for (long k = 0; k < kfull; k += 8)
                for (int v = 0; v < vfull; v++) {
                    __m256 r[8];
                    for (int q = 0; q < 8; q++)
                        r[q] = _mm256_loadu_ps(jb->b + (jb0 + 8 * v + q) * jb->bjs + k0 + k);
                    transpose8(r);
                    for (int q = 0; q < 8; q++)
                        _mm256_storeu_ps(d + (k + q) * NR + 8 * v, r[q]);
                }
            for (long k = 0; k < kc; k++)
                for (long jj = k < kfull ? 8 * vfull : 0; jj < NR; jj++)
                    d[k * NR + jj] = jj < w ? jb->b[(k0 + k) * jb->bks + (jb0 + jj) * jb->bjs]
                                            : 0.0f;
        }
    }
}

/* Pack A's tile, rows i < mr (at most MR) x kc, k-major: dst[k*MR + i] =
   A(i, k) (rows past mr are not written; the kernel for mr rows reads only
   i < mr).  The kernel then reads one contiguous line of A for about 3 k
   instead of mr lines: in place, A's rows (or, in a TN product, its k's) are
   a leading dimension apart, and with a power-of-two one (4096 floats, say)
   every line of the slice falls in the same L1 set and is evicted before
   its next use (4096x4096x256 TN on Zen 3, one thread: 58 GFLOP/s in
   place).  dst has room for MR x kc + 8 floats (a vector's overhang). */
static void pack_a(const float *a, long ais, long aks, int mr, long kc, float *dst)
{
    if (mr == MR && MR <= 8 && aks == 1) {
        /* rows contiguous along k: 8 k at a time through a transpose (rows
           6 and 7 zero); each k's 8 lanes stored whole, the next k's
           store overwriting lanes 6 and 7 */
        long k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < MR ? _mm256_loadu_ps(a + i * ais + k) : _mm256_setzero_ps();
            transpose8(r);
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(dst + (k + q) * MR, r[q]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < MR; i++)
                dst[k * MR + i] = a[i * ais + k];
        return;
    }
    if (ais == 1) {
        /* a TN product: A's mr rows of each k are contiguous */
        __m256i m = lanes(mr);
        for (long k = 0; k < kc; k++)
            _mm256_storeu_ps(dst + k * MR, _mm256_maskload_ps(a + k * aks, m));
        return;
    }
    for (long k = 0; k < kc; k++)
        for (int i = 0; i < mr; i++)
            dst[k * MR + i] = a[i * ais + k * aks];
}

/* What the last k block applies before storing (gemm_avx512.c's): + bias[i],
   the activation, the ReLU mask, the SGD step. */
typedef struct epilogue {
    const float *bias;
    int act;
    float slope;
    const float *mask;
    long ldm;
    const nn_sgd_step *sgd;
    float *sp, *sm;
} epilogue;

/* nn_sgd_step's update of 8 (masked: m) elements whose gradient g has just
   been stored at offset off from the tile's first element, in rt.h's order
   (gemm_avx512.c's sgd16). */
static inline void sgd8(const epilogue *ep, long off, __m256 g, int full, __m256i m)
{
    const nn_sgd_step *s = ep->sgd;
    float *pp = ep->sp + off;
    __m256 p = load_n(pp, full, m);
    if (s->weight_decay != 0.0f)
        g = _mm256_add_ps(g, _mm256_mul_ps(_mm256_set1_ps(s->weight_decay), p));
    __m256 u = g;
    if (ep->sm) {
        float *mp = ep->sm + off;
        __m256 buf = s->first ? g
                              : _mm256_add_ps(_mm256_mul_ps(load_n(mp, full, m),
                                                            _mm256_set1_ps(s->momentum)),
                                              _mm256_mul_ps(_mm256_set1_ps(s->damp1), g));
        store_n(mp, full, m, buf);
        u = s->nesterov ? _mm256_add_ps(g, _mm256_mul_ps(_mm256_set1_ps(s->momentum), buf)) : buf;
    }
    store_n(pp, full, m, _mm256_add_ps(p, _mm256_mul_ps(_mm256_set1_ps(s->neg_lr), u)));
}

/* relu: x > 0 ? x : 0 (max_ps returns its second operand, 0, for NaN);
   leaky: x > 0 ? x : slope x (NaN stays NaN) -- as the generated loops. */
static inline __m256 activate(__m256 x, const epilogue *ep, __m256 zero)
{
    if (ep->act == NN_ACT_RELU)
        return _mm256_max_ps(x, zero);
    if (ep->act == NN_ACT_LEAKY_RELU) {
        __m256 pos = _mm256_cmp_ps(x, zero, _CMP_GT_OQ);
        return _mm256_blendv_ps(_mm256_mul_ps(x, _mm256_set1_ps(ep->slope)), x, pos);
    }
    return x;
}

/* The micro-kernel: tile of mr rows x nv vectors; written for constant mr
   and nv (each instance below), so the accumulators live in registers. */
static inline __attribute__((always_inline)) void
kernel(const int mr, const int nv, long kc, const float *a, long ais, long aks, const float *bp,
       float *c, long cis, long cjs, long w, int beta, const epilogue *ep)
{
    __m256 acc[MR][NRV];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_setzero_ps();
#ifndef NO_CPREF
    /* the tile of C, read (beta) and written after the k loop: its lines
       fetched while the loop runs (C is usually far larger than the
       caches, and read and written once per k block) */
    if (cjs == 1) {
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(c + i * cis), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * cis + NR - 1), _MM_HINT_T0);
        }
    } else {
        for (long q = 0; q < w; q++)
            _mm_prefetch((const char *)(c + q * cjs), _MM_HINT_T0);
    }
#endif
    if (ep && ep->sgd) {
        /* the tile's parameter (and momentum) lines, wanted by the stores
           after the k loop, fetched while it runs (gemm_avx512.c) */
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(ep->sp + i * cis), _MM_HINT_T0);
            if (ep->sm)
                _mm_prefetch((const char *)(ep->sm + i * cis), _MM_HINT_T0);
        }
    }
    for (long k = 0; k < kc; k++) {
        __m256 bv[NRV];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            bv[v] = _mm256_loadu_ps(bp + k * NR + 8 * v);
        const float *ak = a + k * aks;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 av = _mm256_broadcast_ss(ak + i * ais);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
    __m256 zero = _mm256_setzero_ps();
    if (cjs == 1) {
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m256i m = lanes(w - 8 * v);
            int full = w - 8 * v >= 8;
#pragma GCC unroll 6
            for (int i = 0; i < mr; i++) {
                float *p = c + i * cis + 8 * v;
                __m256 r = acc[i][v];
                if (beta)
                    r = _mm256_add_ps(r, load_n(p, full, m));
                if (ep) {
                    if (ep->bias)
                        r = _mm256_add_ps(r, _mm256_set1_ps(ep->bias[i]));
                    r = activate(r, ep, zero);
                    if (ep->mask) {
                        __m256 y = load_n(ep->mask + i * ep->ldm + 8 * v, full, m);
                        r = _mm256_and_ps(r, _mm256_cmp_ps(y, zero, _CMP_GT_OQ));
                    }
                }
                store_n(p, full, m, r);
                if (ep && ep->sgd)
                    sgd8(ep, i * cis + 8 * v, r, full, m);
            }
        }
    } else {
        /* transposed C (cis == 1): per 8 columns, transpose the tile so
           that vector q holds column j = 8v + q's mr values (lanes < mr),
           which are contiguous in memory */
        __m256i mi = lanes(mr);
        __m256 bias = ep && ep->bias ? _mm256_maskload_ps(ep->bias, mi) : zero;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                r[q] = q < mr ? acc[q][v] : zero;
            transpose8(r);
            long cols = w - 8 * v < 8 ? w - 8 * v : 8;
            for (long q = 0; q < cols; q++) {
                float *p = c + (8 * v + q) * cjs;
                __m256 x = r[q];
                if (beta)
                    x = _mm256_add_ps(x, _mm256_maskload_ps(p, mi));
                if (ep)
                    x = activate(_mm256_add_ps(x, bias), ep, zero);
                store_lanes(p, mr, x);
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
        kernel(R < MR ? R : MR, V < NRV ? V : NRV, kc, a, ais, aks, bp, c, cis, cjs, w, beta, \
               ep);                                                                           \
    }
#define KROW(R) K1(R, 1) K1(R, 2) K1(R, 3)
KROW(1) KROW(2) KROW(3) KROW(4) KROW(5) KROW(6)
static const kernel_fn kernels[7][4] = {
    {0},
    {0, k11, k12, k13},
    {0, k21, k22, k23},
    {0, k31, k32, k33},
    {0, k41, k42, k43},
    {0, k51, k52, k53},
    {0, k61, k62, k63},
};

/* Thread t's share [lo, hi) of n units. */
static void share(long n, int t, int nt, long *lo, long *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* Columns of B per packed block: NC, or NC / 2 where C is transposed (the
   forward's x w^T): with BLOCK_FLOATS, a block of 256 x 256 or 512 x 128,
   the second holding twice the k, so that the transposed tiles of C are
   read, added to and written back half as often */
static long block_cols(const job *jb)
{
#ifdef NC_T
    return jb->cis == 1 ? NC_T : NC;
#else
    return jb->cis == 1 ? NC / 2 : NC;
#endif
}

static void run(void *ctx, int t, int nt)
{
    const job *jb = ctx;
    float *pk = nn__pack_buffer(t), *pa = pk + BLOCK_FLOATS;
    long i_lo = 0, i_hi = jb->I, j_lo = 0, j_hi = jb->J;
    if (jb->split_i) {
        long tiles = (jb->I + MR - 1) / MR, lo, hi;
        share(tiles, t, nt, &lo, &hi);
        i_lo = lo * MR;
        i_hi = hi * MR < jb->I ? hi * MR : jb->I;
    } else {
        long vecs = (jb->J + 7) / 8, lo, hi;
        share(vecs, t, nt, &lo, &hi);
        j_lo = lo * 8;
        j_hi = hi * 8 < jb->J ? hi * 8 : jb->J;
    }
    if (i_lo >= i_hi || j_lo >= j_hi)
        return;
    /* k blocks of equal size, each at most kmax rows: a block of B (kc x
       nc, nc rounded up to whole panels) within BLOCK_FLOATS */
    long ncb = block_cols(jb);
    long ncr = ((j_hi - j_lo < ncb ? j_hi - j_lo : ncb) + NR - 1) / NR * NR;
    long kmax = BLOCK_FLOATS / ncr < KC_MAX ? BLOCK_FLOATS / ncr : KC_MAX;
    long nkb = (jb->K + kmax - 1) / kmax;
    for (long kb = 0; kb < nkb; kb++) {
        long k0 = jb->K * kb / nkb, kc = jb->K * (kb + 1) / nkb - k0;
        int beta = kb ? 1 : jb->beta;
        epilogue epi = {NULL, jb->act, jb->slope, NULL, jb->ldm, jb->sgd, NULL, NULL};
        int last = kb == nkb - 1 && jb->has_epi;
        for (long j0 = j_lo; j0 < j_hi; j0 += ncb) {
            long nc = j_hi - j0 < ncb ? j_hi - j0 : ncb;
            pack_b(jb, k0, kc, j0, nc, pk);
            /* A's tile packed where more than one panel reads it */
            int packa = nc > NR;
            long ais = packa ? 1 : jb->ais, aks = packa ? MR : jb->aks;
            for (long i0 = i_lo; i0 < i_hi; i0 += MR) {
                int mr = (int)(i_hi - i0 < MR ? i_hi - i0 : MR);
                const float *a = jb->a + i0 * jb->ais + k0 * jb->aks;
                if (packa) {
                    pack_a(a, jb->ais, jb->aks, mr, kc, pa);
                    a = pa;
                }
                for (long jj = 0; jj < nc; jj += NR) {
                    long w = nc - jj < NR ? nc - jj : NR;
                    int nv = (int)((w + 7) / 8);
                    epi.bias = jb->bias ? jb->bias + i0 : NULL;
                    epi.mask = jb->mask ? jb->mask + i0 * jb->ldm + j0 + jj : NULL;
                    if (jb->sgd) {
                        long off = i0 * jb->cis + (j0 + jj) * jb->cjs;
                        epi.sp = jb->sgd->param + off;
                        epi.sm = jb->sgd->momentum_buf ? jb->sgd->momentum_buf + off : NULL;
                    }
                    kernels[mr][nv](kc, a, ais, aks, pk + (jj / NR) * kc * NR,
                                    jb->c + i0 * jb->cis + (j0 + jj) * jb->cjs, jb->cis, jb->cjs,
                                    w, beta, last ? &epi : NULL);
                }
            }
        }
    }
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

void nn__sgemm_avx2(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
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

void nn__sgemm_sgd_avx2(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc,
                        const nn_sgd_step *step)
{
    if (k == 0 || trans_b) {
        /* C = beta C, or C transposed in the kernel's roles: the update
           after the product, on the pool (held by the caller) */
        nn__sgemm_avx2(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        nn__sgd_pass(step, m, n, c, ldc, 1);
        return;
    }
    job jb;
    setup_job(&jb, trans_a, 0, m, n, k, a, lda, b, ldb, beta, c, ldc);
    jb.act = NN_ACT_NONE;
    jb.sgd = step;
    jb.has_epi = 1;
    jb.split_i = 1; /* the parameter's rows per thread (gemm_avx512.c) */
    nn__pool_run(run, &jb);
}

void nn__sgemm_relu_avx2(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
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

void nn__linear_avx2(int rows, int in, int out, const float *x, const float *w,
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
