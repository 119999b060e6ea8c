/* nngen-rt: the product on BLAS (-Dblas=enabled only): cblas_sgemm,
 * row-major, alpha 1, one of the kernels gemm.c chooses from
 * (NN_GEMM_CBLAS).  The only file of the runtime that includes <cblas.h>. */
#include <cblas.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

void nn__sgemm_cblas(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
                ldc);
}
