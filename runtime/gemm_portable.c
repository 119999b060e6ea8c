/* nngen-rt: the portable product, plain C99 loops, on the caller, no
 * allocation: the only kernel of a runtime built without BLAS and without
 * nngen's AVX-512 kernel, built into every runtime (NN_GEMM_PORTABLE;
 * NNGEN_GEMM=portable forces it, gemm.c).
 *
 * c = op(a) op(b), or c += op(a) op(b) when beta is 1 (beta is 0 or 1),
 * row-major, as cblas_sgemm with alpha 1 computes it: with beta 0 the old
 * content of c is never read (NaNs in it do not survive), and every
 * product is added (a zero times an infinity or a NaN gives NaN, as in
 * BLAS).  Each element is summed in float, in order of p, one multiply and
 * one add at a time (the compiler may contract them to an FMA where the
 * target has one).  Loop order: for b not transposed, row i of c is
 * accumulated over p from contiguous rows of b (the inner loop runs along
 * memory); for b transposed, each element is a dot product of two
 * contiguous runs (for a not transposed).  Speed: what the compiler makes
 * of these loops: 2.8 to 4.6 GFLOP/s on one core of the project's AMD EPYC
 * at -O2 (256^3 and 64 x 784 x 128 products; the transposed ones, dot
 * products summed in order, are the slower); the generated --no-blas code
 * does not call it.
 */
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

void nn__sgemm_portable(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc)
{
    long i, j, p;
    if (m <= 0 || n <= 0)
        return;
    for (i = 0; i < m; i++) {
        float *ci = c + i * (long)ldc;
        if (beta == 0.0f)
            memset(ci, 0, sizeof(float) * (size_t)n);
        if (!trans_b) {
            for (p = 0; p < k; p++) {
                float aip = trans_a ? a[p * (long)lda + i] : a[i * (long)lda + p];
                const float *bp = b + p * (long)ldb;
                for (j = 0; j < n; j++)
                    ci[j] += aip * bp[j];
            }
        } else {
            for (j = 0; j < n; j++) {
                const float *bj = b + j * (long)ldb;
                float s = 0.0f;
                if (trans_a)
                    for (p = 0; p < k; p++)
                        s += a[p * (long)lda + i] * bj[p];
                else
                    for (p = 0; p < k; p++)
                        s += a[i * (long)lda + p] * bj[p];
                ci[j] += s;
            }
        }
    }
}
