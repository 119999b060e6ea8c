/* nngen-rt: act.c's sigmoid, its backward and tanh for CPUs with AVX2 and
 * FMA but no AVX-512F (AMD Zen 1-3, Intel Haswell to Comet Lake), or where
 * NNGEN_ISA=avx2 asks for them.  Built with -mavx2 -mfma; act.c calls them
 * through nn__vec_kernels() (gemm.c), so only after the CPU check.
 *
 * They give the bits of gemm_avx512.c's 16-lane loops, 8 lanes at a time:
 * every operation is the same IEEE operation in the same order (the
 * range reduction, Cephes' polynomial by FMA, the division), with one
 * substitution: AVX2 has no scalef, so p * 2^n (n an integer in
 * [-150, 150], p in [0.7, 1.5)) is two multiplies by 2^(n/2 rounded down)
 * and 2^(the rest), each a normal float (|n/2| <= 75).  The first product
 * is exact (p 2^-75 is still normal), so the only rounding is the second
 * one's: the correctly rounded p 2^n that scalef gives, denormals and
 * overflow to inf included.  tests/rt/test_act.c compares the two sets bit
 * for bit where the CPU has both. */
#include <immintrin.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

/* lanes [0, left) of 8 (left >= 1) */
static inline __m256i mask8(long left)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int l = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), iota);
}

/* 2^k for integer-valued k in [-126, 127], as a float */
static inline __m256 pow2(__m256 k)
{
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

/* e^x: gemm_avx512.c's exp16, term for term (see there) */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(104.0f), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    /* p 2^n as scalef rounds it: n1 = floor(n / 2), n2 = n - n1 (a NaN n
       gives junk powers, but p is NaN then too) */
    __m256 n1 = _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)),
                                _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m256 n2 = _mm256_sub_ps(n, n1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(n2));
}

void nn__sigmoid_avx2(long n, const float *x, float *y)
{
    const __m256 one = _mm256_set1_ps(1.0f), lo = _mm256_set1_ps(-87.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = exp8(_mm256_max_ps(lo, _mm256_sub_ps(_mm256_setzero_ps(), v)));
        _mm256_storeu_ps(y + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    if (i < n) {
        __m256i m = mask8(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        __m256 e = exp8(_mm256_max_ps(lo, _mm256_sub_ps(_mm256_setzero_ps(), v)));
        _mm256_maskstore_ps(y + i, m, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
}

/* gemm_avx512.c's nn__tanh_avx512, 8 lanes at a time */
static inline __m256 tanh8(__m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    const __m256 signbit = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    __m256 ax = _mm256_andnot_ps(signbit, v);
    __m256 e = exp8(_mm256_mul_ps(two, ax));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
    __m256 z = _mm256_mul_ps(v, v);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    __m256 sm = _mm256_fmadd_ps(_mm256_mul_ps(p, z), v, v);
    __m256 lt = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    __m256 r = _mm256_blendv_ps(big, sm, lt);
    return _mm256_or_ps(_mm256_andnot_ps(signbit, r), _mm256_and_ps(signbit, v));
}

void nn__tanh_avx2(long n, const float *x, float *y)
{
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = mask8(n - i);
        _mm256_maskstore_ps(y + i, m, tanh8(_mm256_maskload_ps(x + i, m)));
    }
}

/* gx = gy (1 - y) y, torch's sigmoid_backward order */
void nn__sigmoid_backward_avx2(long n, const float *gy, const float *y, float *gx)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gy + i), v = _mm256_loadu_ps(y + i);
        _mm256_storeu_ps(gx + i, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_sub_ps(one, v)), v));
    }
    if (i < n) {
        __m256i m = mask8(n - i);
        __m256 g = _mm256_maskload_ps(gy + i, m), v = _mm256_maskload_ps(y + i, m);
        _mm256_maskstore_ps(gx + i, m, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_sub_ps(one, v)), v));
    }
}
