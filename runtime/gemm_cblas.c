/* nngen-rt: the product on BLAS (-Dblas=enabled only): cblas_sgemm,
 * row-major, alpha 1, one of the kernels gemm.c chooses from
 * (NN_GEMM_CBLAS).  The only file of the runtime that includes <cblas.h>.
 *
 * alone: OpenBLAS runs the call on the calling thread only
 * (openblas_set_num_threads(1) for the call's duration, the previous count
 * restored when the last such call in the process returns).  gemm.c asks
 * for it where nngen's pool runs threads: two pools on the same cores take
 * each other's time, because OpenBLAS's workers keep spinning (with
 * sched_yield) long after a parallel call and nngen's workers spin for up
 * to half a millisecond after each job.  Measured on a 2-core Xeon: a
 * LeNet train step (bench (d)) took 9.9 to 11.5 ms with OpenBLAS on 2
 * threads beside the pool, 7.3 to 7.7 ms with OpenBLAS on 1.  (The
 * interference also biased the choice towards cblas: nngen's kernel was
 * timed while OpenBLAS's workers still spun.) */
#include <cblas.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#if NN_THREADS
#include <pthread.h>

static pthread_mutex_t alone_mu = PTHREAD_MUTEX_INITIALIZER;
static int alone_inside;  /* under alone_mu: calls running alone */
static int alone_saved;   /* under alone_mu: OpenBLAS's count before the first */
static pthread_once_t alone_once = PTHREAD_ONCE_INIT;

/* fork: no thread holds alone_mu across it, and the child, where the
   calls of the parent's other threads are not running, starts with none
   inside and OpenBLAS's count as it was before them */
static void alone_prepare(void)
{
    pthread_mutex_lock(&alone_mu);
}

static void alone_parent(void)
{
    pthread_mutex_unlock(&alone_mu);
}

static void alone_child(void)
{
    if (alone_inside > 0 && alone_saved > 1)
        openblas_set_num_threads(alone_saved);
    alone_inside = 0;
    pthread_mutex_unlock(&alone_mu);
}

static void alone_setup(void)
{
    pthread_atfork(alone_prepare, alone_parent, alone_child);
}

static void alone_begin(void)
{
    pthread_once(&alone_once, alone_setup);
    pthread_mutex_lock(&alone_mu);
    if (alone_inside++ == 0) {
        alone_saved = openblas_get_num_threads();
        if (alone_saved > 1)
            openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&alone_mu);
}

static void alone_end(void)
{
    pthread_mutex_lock(&alone_mu);
    if (--alone_inside == 0 && alone_saved > 1)
        openblas_set_num_threads(alone_saved);
    pthread_mutex_unlock(&alone_mu);
}
#endif

static void call_cblas(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
                ldc);
}

void nn__sgemm_cblas(int alone, int trans_a, int trans_b, int m, int n, int k, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
#if NN_THREADS
    if (alone) {
        alone_begin();
        call_cblas(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        alone_end();
        return;
    }
#else
    (void)alone;
#endif
    call_cblas(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}
