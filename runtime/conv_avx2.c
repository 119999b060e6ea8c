/* nngen-rt: conv.c's kernels for CPUs with AVX2 and FMA but no AVX-512F
 * (AMD Zen 1-3, Intel Haswell to Comet Lake), or where NNGEN_ISA=avx2 asks
 * for them: the copies into and out of the phase planes and the two
 * products over row tables (gemm_internal.h: nn_gemm_rows, nn_gemm_dot).
 *
 * Built with -mavx2 -mfma; gemm.c hands them to conv.c
 * (nn__vec_kernels) only after __builtin_cpu_supports("avx2") and
 * ("fma").  The same loops as gemm_avx512.c's, on 8-float vectors:
 *   - rows (C = A B over row tables): a tile of 6 rows x 16 columns, 12
 *     ymm accumulators, per k 2 loads of B's row, 6 broadcasts of A and 12
 *     FMAs; columns in blocks of 16 outer, row tiles inner.  Each element
 *     of C is the sum over k in order, one FMA per k, then + bias, then
 *     added to C when beta: the AVX-512 kernel's bits wherever the rows of
 *     C do not overlap (with overlapping rows, the order in which the rows'
 *     sums land on a shared element follows the tile width);
 *   - dot (C = A B^T, the reduction along both rows): a tile of 4 x 3 sums
 *     of 8 lanes (12 accumulators, 3 of B and 1 of A: the 16 ymm
 *     registers), so nn_gemm_dot.cv holds 8 lanes per sum (conv.c reads
 *     the lane count from nn__vec_kernels_avx2.lanes);
 *   - edges through lane masks (maskload / maskstore), which neither read
 *     nor write past the n columns or the k of the reduction.
 */
#include <immintrin.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

/* lanes [0, left) of 8 (left clamped to [0, 8]) */
static inline __m256i mask8(long left)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int l = left >= 8 ? 8 : left <= 0 ? 0 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), iota);
}

static inline void zeros8(float *d, long n)
{
    const __m256 z = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, z);
    if (i < n)
        _mm256_maskstore_ps(d + i, mask8(n - i), z);
}

static void copy_rows(long rows, long w, const float *src, long ss, float *dst, long ds,
                      long lpad, long rpad)
{
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * ss;
        float *d = dst + r * ds;
        zeros8(d, lpad);
        d += lpad;
        long i = 0;
        for (; i + 8 <= w; i += 8)
            _mm256_storeu_ps(d + i, _mm256_loadu_ps(s + i));
        if (i < w) {
            __m256i m = mask8(w - i);
            _mm256_maskstore_ps(d + i, m, _mm256_maskload_ps(s + i, m));
        }
        zeros8(d + w, rpad);
    }
}

/* even[j] = src[2 j], odd[j] = src[2 j + 1] for j < n: 16 floats per
   step, two in-lane shuffles and a cross-lane permute of 64-bit pairs */
static void deinterleave2(long n, const float *src, float *even, float *odd)
{
    for (long j = 0; j < n; j += 8) {
        long left = 2 * (n - j);
        __m256 a = _mm256_maskload_ps(src + 2 * j, mask8(left));
        __m256 b = _mm256_maskload_ps(src + 2 * j + 8, mask8(left - 8));
        /* a0 a2 b0 b2 | a4 a6 b4 b6, and the odd ones likewise */
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
        o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
        __m256i mo = mask8(n - j);
        _mm256_maskstore_ps(even + j, mo, e);
        _mm256_maskstore_ps(odd + j, mo, o);
    }
}

/* dst[2 j] = even[j], dst[2 j + 1] = odd[j] for j < n */
static void interleave2(long n, const float *even, const float *odd, float *dst)
{
    for (long j = 0; j < n; j += 8) {
        long left = 2 * (n - j);
        __m256i mi = mask8(n - j);
        __m256 e = _mm256_maskload_ps(even + j, mi), o = _mm256_maskload_ps(odd + j, mi);
        __m256 lo = _mm256_unpacklo_ps(e, o); /* e0 o0 e1 o1 | e4 o4 e5 o5 */
        __m256 hi = _mm256_unpackhi_ps(e, o); /* e2 o2 e3 o3 | e6 o6 e7 o7 */
        _mm256_maskstore_ps(dst + 2 * j, mask8(left), _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_maskstore_ps(dst + 2 * j + 8, mask8(left - 8), _mm256_permute2f128_ps(lo, hi, 0x31));
    }
}

/* ------------------------------------------------------------------ */
/* C = A B over row tables                                             */

#define MR 6
#define NRV 2          /* ymm vectors per tile row */
#define NR (8 * NRV)   /* columns per block */

/* One tile: rows i0 .. i0+mr, nv vectors from column jb of B and jc of C,
   w columns (full: w = NR, no masks, which would not fit in the registers
   with the 12 accumulators; else masked loads and stores). */
static inline __attribute__((always_inline)) void
gkernel(const int mr, const int nv, const int full, const nn_gemm_rows *g, long i0, long jb,
        long jc, long kc, long w)
{
    __m256 acc[MR][NRV];
    __m256i mk[NRV];
    const float *ar[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        ar[i] = g->a + g->aoff[i0 + i];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
        mk[v] = mask8(w - 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_setzero_ps();
    const long aks = g->aks;
    for (long p = 0; p < kc; p++) {
        const float *b = g->b + g->boff[p] + jb;
        __m256 bv[NRV];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            bv[v] = full ? _mm256_loadu_ps(b + 8 * v) : _mm256_maskload_ps(b + 8 * v, mk[v]);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 av = _mm256_broadcast_ss(ar[i] + p * aks);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
    /* row by row, load-add-store (rows of C may overlap when beta) */
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *cr = g->c + g->coff[i0 + i] + jc;
        __m256 bi = g->bias ? _mm256_set1_ps(g->bias[i0 + i]) : _mm256_setzero_ps();
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            __m256 r = _mm256_add_ps(acc[i][v], bi);
            if (full) {
                if (g->beta)
                    r = _mm256_add_ps(_mm256_loadu_ps(cr + 8 * v), r);
                _mm256_storeu_ps(cr + 8 * v, r);
            } else {
                if (g->beta)
                    r = _mm256_add_ps(_mm256_maskload_ps(cr + 8 * v, mk[v]), r);
                _mm256_maskstore_ps(cr + 8 * v, mk[v], r);
            }
        }
    }
}

typedef void (*gkernel_fn)(const nn_gemm_rows *, long, long, long, long, long);
#define G1(R, V, F)                                                                           \
    static void g##R##V##F(const nn_gemm_rows *g, long i0, long jb, long jc, long kc, long w) \
    {                                                                                         \
        gkernel(R, V, F, g, i0, jb, jc, kc, w);                                               \
    }
#define GROW(R) G1(R, 1, 0) G1(R, 2, 0) G1(R, 2, 1)
GROW(1) GROW(2) GROW(3) GROW(4) GROW(5) GROW(6)

/* [mr][0]: the masked tile of one vector, [1] of two, [2] the full tile */
static const gkernel_fn gkernels[MR + 1][3] = {
    {0, 0, 0},
    {g110, g120, g121},
    {g210, g220, g221},
    {g310, g320, g321},
    {g410, g420, g421},
    {g510, g520, g521},
    {g610, g620, g621},
};

static void rows(const nn_gemm_rows *g)
{
    long runs = g->nrow > 0 ? g->nrow : 1;
    for (long r = 0; r < runs; r++)
        for (long j0 = 0; j0 < g->n; j0 += NR) {
            long w = g->n - j0 < NR ? g->n - j0 : NR;
            int kind = w == NR ? 2 : w > 8 ? 1 : 0;
            for (long i0 = 0; i0 < g->m; i0 += MR) {
                int mr = (int)(g->m - i0 < MR ? g->m - i0 : MR);
                gkernels[mr][kind](g, i0, r * g->rsb + j0, r * g->rsc + j0, g->k, w);
            }
        }
}

/* ------------------------------------------------------------------ */
/* C = A B^T over row tables, the reduction along both operands' rows   */

#define DI 4
#define DJ 3
#define LANES 8

/* the 8 lanes' sum, in a fixed order */
static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void
dkernel(const int mi, const int nj, const nn_gemm_dot *g, long i0, long j0)
{
    __m256 acc[DI][DJ];
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 3
        for (int j = 0; j < nj; j++)
            acc[i][j] = _mm256_setzero_ps();
    const long k = g->k, full = k / 8 * 8;
    long runs = g->nrow > 0 ? g->nrow : 1;
    for (long r = 0; r < runs; r++) {
        const float *a[DI], *b[DJ];
#pragma GCC unroll 4
        for (int i = 0; i < mi; i++)
            a[i] = g->a + g->aoff[i0 + i] + r * g->rsa;
#pragma GCC unroll 3
        for (int j = 0; j < nj; j++)
            b[j] = g->b + g->boff[j0 + j] + r * g->rsb;
        for (long p = 0; p < full; p += 8) {
            __m256 bv[DJ];
#pragma GCC unroll 3
            for (int j = 0; j < nj; j++)
                bv[j] = _mm256_loadu_ps(b[j] + p);
#pragma GCC unroll 4
            for (int i = 0; i < mi; i++) {
                __m256 av = _mm256_loadu_ps(a[i] + p);
#pragma GCC unroll 3
                for (int j = 0; j < nj; j++)
                    acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
            }
        }
        if (full < k) {
            const __m256i m = mask8(k - full);
#pragma GCC unroll 4
            for (int i = 0; i < mi; i++) {
                __m256 av = _mm256_maskload_ps(a[i] + full, m);
#pragma GCC unroll 3
                for (int j = 0; j < nj; j++)
                    acc[i][j] = _mm256_fmadd_ps(av, _mm256_maskload_ps(b[j] + full, m),
                                                acc[i][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 3
        for (int j = 0; j < nj; j++) {
            if (g->cv) {
                float *c = g->cv + ((i0 + i) * g->n + j0 + j) * LANES;
                __m256 r = acc[i][j];
                if (g->beta)
                    r = _mm256_add_ps(_mm256_loadu_ps(c), r);
                _mm256_storeu_ps(c, r);
            } else {
                float *c = g->c + (i0 + i) * g->ldc + j0 + j;
                float s = hsum8(acc[i][j]);
                *c = g->beta ? *c + s : s;
            }
        }
}

typedef void (*dkernel_fn)(const nn_gemm_dot *, long, long);
#define D1(I, J)                                                                              \
    static void d##I##J(const nn_gemm_dot *g, long i0, long j0) { dkernel(I, J, g, i0, j0); }
#define DROW(I) D1(I, 1) D1(I, 2) D1(I, 3)
DROW(1) DROW(2) DROW(3) DROW(4)

static const dkernel_fn dkernels[DI + 1][DJ + 1] = {
    {0, 0, 0, 0},
    {0, d11, d12, d13},
    {0, d21, d22, d23},
    {0, d31, d32, d33},
    {0, d41, d42, d43},
};

static void dot(const nn_gemm_dot *g)
{
    for (long i0 = 0; i0 < g->m; i0 += DI)
        for (long j0 = 0; j0 < g->n; j0 += DJ) {
            int mi = (int)(g->m - i0 < DI ? g->m - i0 : DI);
            int nj = (int)(g->n - j0 < DJ ? g->n - j0 : DJ);
            dkernels[mi][nj](g, i0, j0);
        }
}

const nn_vec_kernels nn__vec_kernels_avx2 = {"avx2", LANES, copy_rows, deinterleave2,
                                               interleave2, rows, dot,
                                               nn__sigmoid_avx2, nn__sigmoid_backward_avx2,
                                               nn__tanh_avx2};
