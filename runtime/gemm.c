/* nngen-rt: nn_sgemm, nn_linear_forward and nn_sgemm_relu_mask, the matrix
 * products the generated code calls, and their dispatch.
 *
 * Decided once per process (nn__setup): on x86-64 with AVX-512F (checked at
 * run time, see gemm_avx512.c) nngen's own kernel, on nn_num_threads()
 * threads of the pool (pool_threads.c, or pool_serial.c in a build without
 * threads); anywhere else the generic product nn__sgemm_generic:
 * cblas_sgemm (gemm_cblas.c) or, in a build without BLAS, plain C loops
 * (gemm_portable.c).  NNGEN_GEMM=cblas in the environment forces the
 * generic product (to compare the two).  A call made while another thread
 * holds the pool also goes to the generic product, so nn_sgemm is safe to
 * call from several threads at once (with pthreads).
 *
 * This file is ISO C99 apart from the kernel's CPU check (GCC builtins,
 * only where the kernel is built).
 */
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

/* NN_HAVE_AVX512_KERNEL: set by the build when gemm_avx512.c is built */
#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

/* Products smaller than this many multiply-adds run on the calling thread
   alone: waking a worker costs about a microsecond. */
#define PARALLEL_MIN_MACS (256L * 1024L)

static int use_avx512;

void nn__gemm_setup(void)
{
    const char *env = getenv("NNGEN_GEMM");
    int want = !(env && strcmp(env, "cblas") == 0);
#if NN_HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    use_avx512 = want && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#else
    (void)want;
    use_avx512 = 0;
#endif
}

const char *nn_sgemm_impl(void)
{
    nn__setup();
    return use_avx512 ? "avx512" : nn__generic_impl;
}

#if NN_HAVE_AVX512_KERNEL
/* Take the pool for an own-kernel product of this many multiply-adds (on
   all threads from PARALLEL_MIN_MACS, else on the caller); 0 when the
   kernel is not in use or another thread has the pool. */
static int kernel_acquire(long macs)
{
    return use_avx512 && nn__pool_hold(macs >= PARALLEL_MIN_MACS ? nn_num_threads() : 1);
}
#endif

void nn_linear_forward(int rows, int in, int out, const float *x, const float *w,
                       const float *b, int act, float slope, float *y)
{
    nn__setup();
    if (rows <= 0 || out <= 0)
        return;
#if NN_HAVE_AVX512_KERNEL
    if (in > 0 && kernel_acquire((long)rows * out * in)) {
        nn__linear_avx512(rows, in, out, x, w, b, act, slope, y);
        nn__pool_give();
        return;
    }
#endif
    /* y = b (broadcast), y += x w^T, then the activation in place */
    for (long r = 0; r < rows; r++) {
        if (b)
            memcpy(y + r * out, b, sizeof(float) * (size_t)out);
        else
            memset(y + r * out, 0, sizeof(float) * (size_t)out);
    }
    if (in > 0)
        nn__sgemm_generic(0, 1, rows, out, in, x, in, w, in, 1.0f, y, out);
    long n = (long)rows * out;
    if (act == NN_ACT_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    else if (act == NN_ACT_LEAKY_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : y[i] * slope;
}

void nn_sgemm_relu_mask(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                        float *c, int ldc, const float *mask, int ldm)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    if (m > 0 && n > 0 && k > 0 && kernel_acquire((long)m * n * k)) {
        nn__sgemm_relu_avx512(m, n, k, a, lda, b, ldb, c, ldc, mask, ldm);
        nn__pool_give();
        return;
    }
#endif
    /* otherwise (and for any m, n, k <= 0) nn_sgemm's result, masked */
    nn_sgemm(0, 0, m, n, k, a, lda, b, ldb, 0, c, ldc);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++)
            if (!(mask[i * ldm + j] > 0.0f))
                c[i * ldc + j] = 0.0f;
}

int nn__pool_take(int max_threads)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    if (use_avx512) {
        int nt = nn_num_threads();
        return nn__pool_hold(nt < max_threads ? nt : max_threads);
    }
#else
    (void)max_threads;
#endif
    return 0;
}

void nn_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
              const float *b, int ldb, int accumulate, float *c, int ldc)
{
    nn__setup();
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
#if NN_HAVE_AVX512_KERNEL
    if (kernel_acquire((long)m * n * (k > 0 ? k : 1))) {
        nn__sgemm_avx512(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate ? 1.0f : 0.0f,
                         c, ldc);
        nn__pool_give();
        return;
    }
#endif
    nn__sgemm_generic(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c,
                      ldc);
}
