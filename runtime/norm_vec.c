/* nngen-rt: batch norm's loops over one channel (norm.c), and act.c's relu
 * and sums, 8 doubles or 16 floats at a time, in GCC's vector types.  Built twice: with -mavx512f
 * (NN_VEC_AVX512: the table nn__bn_loops_avx512) and with -mavx2
 * (nn__bn_loops_avx2, where each 64-byte vector is two ymm registers); gemm.c's
 * CPU check comes first.  Every lane does what one element of norm.c's
 * plain loops does, with the same roundings (no FMA: -ffp-contract=off),
 * and the sums keep the plain loops' order: lane k of the accumulator is
 * their partial sum k (positions i = k mod 8), so the results are the same
 * bits on every path. */
#include <nngen/rt.h>

#include "gemm_internal.h"

#ifdef NN_VEC_AVX512
#define VEC(name) name##_avx512
#define TABLE nn__bn_loops_avx512
#define EW nn__ew_avx512
#else
#define VEC(name) name##_avx2
#define TABLE nn__bn_loops_avx2
#define EW nn__ew_avx2
#endif

/* unaligned, and allowed to alias the floats they are read from */
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v16f __attribute__((vector_size(64), aligned(4), may_alias));
typedef int v16i __attribute__((vector_size(64)));

/* macros, not functions: a function taking or returning a 64-byte vector
   has no ABI without AVX-512 (-Wpsabi) */
#define LD8(p) __builtin_convertvector(*(const v8f *)(const void *)(p), v8d)
#define ST8(p, v) (*(v8f *)(void *)(p) = __builtin_convertvector((v), v8f))
#define LD16(p) (*(const v16f *)(const void *)(p))
#define ST16(p, v) (*(v16f *)(void *)(p) = (v))
#define TREE(p) (((p)[0] + (p)[1]) + ((p)[2] + (p)[3])) + (((p)[4] + (p)[5]) + ((p)[6] + (p)[7]))

/* The sums of nch <= NQ channels (channel q at x + q l) at once, their
   accumulators interleaved so that each chain of dependent additions has
   NQ - 1 others beside it; always_inline, so that nq is a constant in each
   use and the accumulators stay in registers. */
#define NQ 4

static inline __attribute__((always_inline)) void sums_q(int nq, long n, long rs, long l,
                                                         const float *x, double *s)
{
    long body = l / 8 * 8;
    v8d acc[NQ];
    double t[NQ];
    for (int q = 0; q < nq; q++)
        acc[q] = (v8d){0}, t[q] = 0.0;
    for (long r = 0; r < n; r++) {
        const float *xr = x + r * rs;
        for (long i = 0; i < body; i += 8)
            for (int q = 0; q < nq; q++)
                acc[q] += LD8(xr + q * l + i);
        for (int q = 0; q < nq; q++)
            for (long i = body; i < l; i++)
                t[q] += xr[q * l + i];
    }
    for (int q = 0; q < nq; q++)
        s[q] = t[q] + (TREE(acc[q]));
}

static void VEC(sum)(long n, long rs, long l, int nch, const float *x, double *s)
{
    int c = 0;
    for (; c + NQ <= nch; c += NQ)
        sums_q(NQ, n, rs, l, x + c * l, s + c);
    for (; c < nch; c++)
        sums_q(1, n, rs, l, x + c * l, s + c);
}

static inline __attribute__((always_inline)) void sqdev_q(int nq, long n, long rs, long l,
                                                          const float *x, const double *mean,
                                                          double *v)
{
    long body = l / 8 * 8;
    v8d acc[NQ];
    double t[NQ];
    for (int q = 0; q < nq; q++)
        acc[q] = (v8d){0}, t[q] = 0.0;
    for (long r = 0; r < n; r++) {
        const float *xr = x + r * rs;
        for (long i = 0; i < body; i += 8)
            for (int q = 0; q < nq; q++) {
                v8d d = LD8(xr + q * l + i) - mean[q];
                acc[q] += d * d;
            }
        for (int q = 0; q < nq; q++)
            for (long i = body; i < l; i++) {
                double d = xr[q * l + i] - mean[q];
                t[q] += d * d;
            }
    }
    for (int q = 0; q < nq; q++)
        v[q] = t[q] + (TREE(acc[q]));
}

static void VEC(sqdev)(long n, long rs, long l, int nch, const float *x, const double *mean,
                       double *v)
{
    int c = 0;
    for (; c + NQ <= nch; c += NQ)
        sqdev_q(NQ, n, rs, l, x + c * l, mean + c, v + c);
    for (; c < nch; c++)
        sqdev_q(1, n, rs, l, x + c * l, mean + c, v + c);
}

static inline __attribute__((always_inline)) void gsums_q(int nq, long n, long rs, long l,
                                                          const float *gy, const float *x,
                                                          const double *mean, double *sg,
                                                          double *sgx)
{
    long body = l / 8 * 8;
    v8d g[NQ], h[NQ];
    double a[NQ], b[NQ];
    for (int q = 0; q < nq; q++)
        g[q] = h[q] = (v8d){0}, a[q] = b[q] = 0.0;
    for (long r = 0; r < n; r++) {
        const float *gr = gy + r * rs, *xr = x + r * rs;
        for (long i = 0; i < body; i += 8)
            for (int q = 0; q < nq; q++) {
                v8d gv = LD8(gr + q * l + i);
                g[q] += gv;
                h[q] += gv * (LD8(xr + q * l + i) - mean[q]);
            }
        for (int q = 0; q < nq; q++)
            for (long i = body; i < l; i++) {
                a[q] += gr[q * l + i];
                b[q] += (double)gr[q * l + i] * (xr[q * l + i] - mean[q]);
            }
    }
    for (int q = 0; q < nq; q++) {
        sg[q] = a[q] + (TREE(g[q]));
        sgx[q] = b[q] + (TREE(h[q]));
    }
}

static void VEC(gsums)(long n, long rs, long l, int nch, const float *gy, const float *x,
                       const double *mean, double *sg, double *sgx)
{
    int c = 0;
    for (; c + NQ <= nch; c += NQ)
        gsums_q(NQ, n, rs, l, gy + c * l, x + c * l, mean + c, sg + c, sgx + c);
    for (; c < nch; c++)
        gsums_q(1, n, rs, l, gy + c * l, x + c * l, mean + c, sg + c, sgx + c);
}

static void VEC(plane)(long n, long rs, long l, const float *x, float *y, float mf, float a,
                       const float *b, int relu)
{
    long body = l / 16 * 16;
    const v16f zero = {0};
    const float bb = b ? *b : 0.0f;
    for (long r = 0; r < n; r++) {
        const float *xr = x + r * rs;
        float *yr = y + r * rs;
        /* four loops, so that each body has no branch; relu: v or +0, the
           bits of relu's v > 0 ? v : 0 (act.c's EW) */
        if (b && relu) {
            for (long i = 0; i < body; i += 16) {
                v16f v = (LD16(xr + i) - mf) * a + bb;
                ST16(yr + i, (v16f)((v16i)v & (v > zero)));
            }
        } else if (b) {
            for (long i = 0; i < body; i += 16)
                ST16(yr + i, (LD16(xr + i) - mf) * a + bb);
        } else if (relu) {
            for (long i = 0; i < body; i += 16) {
                v16f v = (LD16(xr + i) - mf) * a;
                ST16(yr + i, (v16f)((v16i)v & (v > zero)));
            }
        } else {
            for (long i = 0; i < body; i += 16)
                ST16(yr + i, (LD16(xr + i) - mf) * a);
        }
        for (long i = body; i < l; i++) {
            float t = b ? (xr[i] - mf) * a + bb : (xr[i] - mf) * a;
            yr[i] = relu ? (t > 0.0f ? t : 0.0f) : t;
        }
    }
}

static void VEC(gtrain)(long n, long rs, long l, const float *gy, const float *x, float *gx,
                        double mg, double mean, double k2, double a)
{
    long body = l / 8 * 8;
    for (long r = 0; r < n; r++) {
        const float *gr = gy + r * rs, *xr = x + r * rs;
        float *d = gx + r * rs;
        for (long i = 0; i < body; i += 8)
            ST8(d + i, (LD8(gr + i) - mg - (LD8(xr + i) - mean) * k2) * a);
        for (long i = body; i < l; i++)
            d[i] = (float)((gr[i] - mg - (xr[i] - mean) * k2) * a);
    }
}

static void VEC(geval)(long n, long rs, long l, const float *gy, float *gx, double a)
{
    long body = l / 8 * 8;
    for (long r = 0; r < n; r++) {
        const float *gr = gy + r * rs;
        float *d = gx + r * rs;
        for (long i = 0; i < body; i += 8)
            ST8(d + i, a * LD8(gr + i));
        for (long i = body; i < l; i++)
            d[i] = (float)(a * gr[i]);
    }
}

const nn_bn_loops TABLE = {VEC(sum), VEC(sqdev), VEC(gsums), VEC(plane), VEC(gtrain), VEC(geval)};

/* act.c's elementwise loops over [0, n) (kind: act.c's EW_*; y may be a or
   b: each vector is loaded before it is stored) */
void EW(int kind, long n, const float *a, const float *b, float *y)
{
    long body = n / 16 * 16, i = 0;
    const v16f zero = {0};
    if (kind == 0) {
        for (; i < body; i += 16) {
            v16f v = LD16(a + i);
            ST16(y + i, (v16f)((v16i)v & (v > zero))); /* x or +0 */
        }
        for (; i < n; i++)
            y[i] = a[i] > 0.0f ? a[i] : 0.0f;
    } else if (kind == 1) {
        for (; i < body; i += 16) {
            v16f g = LD16(a + i);
            ST16(y + i, (v16f)((v16i)g & (LD16(b + i) > zero)));
        }
        for (; i < n; i++)
            y[i] = b[i] > 0.0f ? a[i] : 0.0f;
    } else if (kind == 2) {
        for (; i < body; i += 16)
            ST16(y + i, LD16(a + i) + LD16(b + i));
        for (; i < n; i++)
            y[i] = a[i] + b[i];
    } else { /* the sum, then relu */
        for (; i < body; i += 16) {
            v16f v = LD16(a + i) + LD16(b + i);
            ST16(y + i, (v16f)((v16i)v & (v > zero)));
        }
        for (; i < n; i++) {
            float t = a[i] + b[i];
            y[i] = t > 0.0f ? t : 0.0f;
        }
    }
}
