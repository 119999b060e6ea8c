/* nngen-rt internal: the thread pool and the AVX-512 sgemm, shared by gemm.c
 * (dispatch, pool) and gemm_avx512.c (kernels; built with -mavx512f -mfma and
 * only called after the CPU has been checked). */
#ifndef NNGEN_GEMM_INTERNAL_H
#define NNGEN_GEMM_INTERNAL_H

/* NN_THREADS (the build's -Dthreads): 1, a pool of worker threads
   (pool_threads.c, pthreads); 0, everything on the caller (pool_serial.c).
   NN_HAVE_CBLAS (-Dblas): cblas_sgemm (gemm_cblas.c) is among the products
   gemm.c chooses from (the plain loops, gemm_portable.c, always are). */
#ifndef NN_HAVE_CBLAS
#define NN_HAVE_CBLAS 1
#endif
#ifndef NN_THREADS
#define NN_THREADS 1
#endif
#if NN_THREADS
#define NN_MAX_THREADS 16
#else
#define NN_MAX_THREADS 1
#endif

/* Packing buffer of each pool slot, in floats (512 KiB: a block of B that
   stays in a core's L2). */
#define NN_PACK_FLOATS (512 * 256)

/* Once per process, before the first use of the pool or the products:
   nn__setup() calls gemm.c's nn__gemm_setup() (which reads NNGEN_GEMM and
   checks the CPU) and sets the pool up. */
void nn__setup(void);
void nn__gemm_setup(void);

/* fn(ctx, t, nt) for t = 0 .. nt-1 (nt = the thread count), t = 0 on the
   calling thread, which must hold the pool (nn__pool_hold; nn_sgemm takes
   it; a caller that finds it taken by another thread does not come here).
   nn__pack_buffer(t) is slot t's packing buffer, NN_PACK_FLOATS floats
   (gemm_avx512.c: only the kernel packs). */
typedef void (*nn_task_fn)(void *ctx, int t, int nt);
void nn__pool_run(nn_task_fn fn, void *ctx);
float *nn__pack_buffer(int t);
/* Takes the pool for a job of nt threads (clamped to 1 .. NN_MAX_THREADS)
   and returns that count, or 0 when another caller holds it;
   nn__pool_give() releases it. */
int nn__pool_hold(int nt);

/* The products gemm.c chooses from besides nngen's kernel, with
   nn__sgemm_avx512's contract (beta 0 or 1): cblas_sgemm (gemm_cblas.c,
   only in a runtime built with BLAS: NN_HAVE_CBLAS) and the plain loops
   (gemm_portable.c, in every runtime). */
/* alone: on the calling thread only (see gemm_cblas.c) */
void nn__sgemm_cblas(int alone, int trans_a, int trans_b, int m, int n, int k, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc);
void nn__sgemm_portable(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);

/* The same contract as nn_sgemm (rt.h), for CPUs with AVX-512F. */
void nn__sgemm_avx512(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);
/* nn_sgemm_sgd's (k >= 1, step not NULL), same CPUs, with the pool held:
   the update fused into the product's stores where c is not transposed
   (trans_b = 0), else nn__sgd_pass after it. */
void nn__sgemm_sgd_avx512(int trans_a, int trans_b, int m, int n, int k, const float *a,
                          int lda, const float *b, int ldb, float beta, float *c, int ldc,
                          const nn_sgd_step *step);
/* The update of rows [i0, i1) of an m x n gradient c (gemm.c, plain C: the
   arithmetic of rt.h's nn_sgd_step), and of all of it on the pool's threads
   when it is large (held: the caller holds the pool). */
void nn__sgd_rows(const nn_sgd_step *s, long i0, long i1, long n, const float *c, long ldc);
void nn__sgd_pass(const nn_sgd_step *s, long m, long n, const float *c, long ldc, int held);
/* nn_sgemm_relu_mask for k >= 1, same CPUs. */
void nn__sgemm_relu_avx512(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                           float *c, int ldc, const float *mask, int ldm);
/* nn_linear_forward for in >= 1, same CPUs. */
void nn__linear_avx512(int rows, int in, int out, const float *x, const float *w,
                       const float *bias, int act, float slope, float *y);

/* The same four entry points for CPUs with AVX2 and FMA (gemm_avx2.c,
   built with -mavx2 -mfma where gemm_avx512.c is; the pool held as above):
   nngen's kernel where the CPU has no AVX-512F, or NNGEN_ISA=avx2. */
void nn__sgemm_avx2(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc);
void nn__sgemm_sgd_avx2(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc,
                        const nn_sgd_step *step);
void nn__sgemm_relu_avx2(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                         float *c, int ldc, const float *mask, int ldm);
void nn__linear_avx2(int rows, int in, int out, const float *x, const float *w,
                     const float *bias, int act, float slope, float *y);

/* nn_sgemm on the kernel the mode fixes, never the measured choice (auto
   with both kernels, i.e. on an AVX-512 CPU: nngen's, as conv.c's own
   AVX-512 paths are): conv.c's
   im2col products,
   whose bits must not depend on the thread count (the measured choice's
   classes do: one thread or more). */
void nn__sgemm_unmeasured(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                          const float *b, int ldb, int accumulate, float *c, int ldc);

/* For work split over examples or elements (conv.c, act.c; gemm.c):
   nn__pool_take(max) takes the pool for min(nn_num_threads(), max) threads
   (max >= 1) and returns that count when the pool was free, else 0 (then
   nothing is held; the caller works alone).  Between take and give,
   nn__pool_run(fn, ctx) runs fn on the threads. */
int nn__pool_take(int max_threads);
void nn__pool_give(void);

/* The vector instruction set for loops whose bits do not depend on it
   (norm.c): 2 AVX-512F, 1 AVX2 (or NNGEN_ISA=avx2 on an AVX-512 CPU), 0
   neither, or NNGEN_GEMM=portable (the plain loops everywhere).  Whatever
   the product's kernel or mode. */
int nn__vec_isa(void);

/* norm.c's loops over the channels of n rows (row r at x + r rs, l
   positions per channel; norm_vec.c, built once with -mavx512f and once
   with -mavx2: suffixes _avx512 and _avx2).  The sums take nch channels
   (channel q at x + q l; results s[q]), need l >= 16 and give exactly the
   generated code's 8 partial sums per channel (position i in lane i % 8
   over the first l / 8 * 8 positions, the rest added in order to the
   result, which then gets ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 +
   p7))); the planes are one channel's, elementwise, any l (relu: then
   v > 0 ? v : +0, relu's generated expression).  See rt.h
   nn_batch_norm_forward. */
typedef struct nn_bn_loops {
    void (*sum)(long n, long rs, long l, int nch, const float *x, double *s);
    void (*sqdev)(long n, long rs, long l, int nch, const float *x, const double *mean,
                  double *v);
    void (*gsums)(long n, long rs, long l, int nch, const float *gy, const float *x,
                  const double *mean, double *sg, double *sgx);
    void (*plane)(long n, long rs, long l, const float *x, float *y, float mf, float a,
                  const float *b, int relu);
    void (*gtrain)(long n, long rs, long l, const float *gy, const float *x, float *gx,
                   double mg, double mean, double k2, double a);
    void (*geval)(long n, long rs, long l, const float *gy, float *gx, double a);
} nn_bn_loops;
extern const nn_bn_loops nn__bn_loops_avx512, nn__bn_loops_avx2;
/* act.c's relu, relu backward, sum and relu of the sum (kind 0, 1, 2, 3)
   over n floats, the plain loops' bits (norm_vec.c) */
void nn__ew_avx512(int kind, long n, const float *a, const float *b, float *y);
void nn__ew_avx2(int kind, long n, const float *a, const float *b, float *y);

/* act.c's AVX-512 loops (any n >= 0; y may be x, gx may be gy) */
void nn__sigmoid_avx512(long n, const float *x, float *y);
void nn__sigmoid_backward_avx512(long n, const float *gy, const float *y, float *gx);
void nn__tanh_avx512(long n, const float *x, float *y);

/* y = tanh(x) over n floats (y may be x): the vector loop of
   nn__vec_kernels() (below) where there is one, else tanhf; act.c.  For
   rnn.c's gates. */
void nn__tanh_forward(long n, const float *x, float *y);

/* rows of w floats from src (row r at src + r ss) to dst (at dst + r ds),
   each after lpad zeros and before rpad zeros (conv.c's planes) */
void nn__copy_rows_avx512(long rows, long w, const float *src, long ss, float *dst, long ds,
                          long lpad, long rpad);

/* even[j] = src[2 j], odd[j] = src[2 j + 1] (j < n), and back */
void nn__deinterleave2_avx512(long n, const float *src, float *even, float *odd);
void nn__interleave2_avx512(long n, const float *even, const float *odd, float *dst);

/* C = A B (+ bias[i] per row, + C when beta) over row tables, on the
   calling thread alone, no packing (conv.c's implicit GEMMs): A(i, p) =
   a[aoff[i] + p aks], row p of B is b + boff[p] (n contiguous floats),
   row i of C is c + coff[i]; rows of C may overlap when beta (each row is
   added after the ones before it).  Only the n columns are read and
   written. */
typedef struct nn_gemm_rows {
    long m, n, k;
    const float *a;
    const int *aoff;
    long aks;
    const float *b;
    const int *boff;
    float *c;
    const int *coff;
    int beta;
    const float *bias;
    long nrow, rsb, rsc;  /* nrow > 0: the columns are nrow runs of n, rsb
                             floats apart in B's rows and rsc in C's */
} nn_gemm_rows;
void nn__sgemm_rows_avx512(const nn_gemm_rows *g);

/* C (m x n, ldc) = A B^T (+ C when beta) with row i of A at a + aoff[i]
   and row j of B at b + boff[j], both k contiguous floats: the reduction
   runs along the rows (conv.c's weight gradient).  With cv set, C is not
   written: cv (m x n x lanes) gets (or, beta, adds) each sum's lanes, for
   one reduction after many calls. */
typedef struct nn_gemm_dot {
    long m, n, k;
    const float *a;
    const int *aoff;
    const float *b;
    const int *boff;
    float *c;
    long ldc;
    int beta;
    float *cv;
    long nrow, rsa, rsb;  /* nrow > 0: the reduction is nrow runs of k, rsa
                             floats apart in A's rows and rsb in B's */
} nn_gemm_dot;
void nn__sgemm_dot_avx512(const nn_gemm_dot *g);

/* conv.c's and act.c's kernels on one instruction set: gemm_avx512.c's
   (above) and conv_avx2.c's with act_avx2.c's; lanes: the floats of a
   vector, and of each sum in nn_gemm_dot.cv (16 or 8).  The activations
   give the same bits in both sets (act_avx2.c). */
typedef struct nn_vec_kernels {
    const char *name;
    int lanes;
    void (*copy_rows)(long rows, long w, const float *src, long ss, float *dst, long ds,
                      long lpad, long rpad);
    void (*deinterleave2)(long n, const float *src, float *even, float *odd);
    void (*interleave2)(long n, const float *even, const float *odd, float *dst);
    void (*rows)(const nn_gemm_rows *g);
    void (*dot)(const nn_gemm_dot *g);
    void (*sigmoid)(long n, const float *x, float *y);
    void (*sigmoid_backward)(long n, const float *gy, const float *y, float *gx);
    void (*tanh)(long n, const float *x, float *y);
} nn_vec_kernels;
extern const nn_vec_kernels nn__vec_kernels_avx512, nn__vec_kernels_avx2;

void nn__sigmoid_avx2(long n, const float *x, float *y);
void nn__sigmoid_backward_avx2(long n, const float *gy, const float *y, float *gx);
void nn__tanh_avx2(long n, const float *x, float *y);

/* the kernels conv.c's implicit GEMMs and act.c's loops run on (gemm.c): AVX-512 where
   nngen's AVX-512 kernel is in use, AVX2 on an AVX2 CPU (or NNGEN_ISA=avx2)
   in the auto and nngen modes; NULL elsewhere (NNGEN_GEMM=cblas or
   portable, no AVX2): conv.c's im2col and nn_sgemm, act.c's libm loops */
const nn_vec_kernels *nn__vec_kernels(void);

#endif
