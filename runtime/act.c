/* nngen-rt: large elementwise activations (nn_sigmoid_forward,
 * nn_sigmoid_backward) for the generated code, and tanh for rnn.c's gates
 * (nn__tanh_forward).  The generated loops call expf one element at a time
 * (C has no vector exp, and cc -O2 does not vectorize the call); here,
 * where nngen has vector kernels for the CPU (nn__vec_kernels(): AVX-512,
 * or AVX2 in the auto and nngen modes; nn_conv_impl() names them), the
 * arrays are split over the pool's threads and each share runs 16 or 8
 * lanes at a time with a polynomial e^x good to about 1 ulp
 * (gemm_avx512.c; act_avx2.c gives the same bits on 8 lanes).  Elsewhere
 * (NNGEN_GEMM=cblas or portable, no AVX2), or while the pool is busy, the
 * caller runs the plain loop with expf.  Each element's result depends
 * only on that element, so the thread count never changes a value. */
#include <math.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

/* elements per thread from which a share pays for waking a thread */
#define PER_THREAD_MIN 16384L

typedef struct {
    const nn_vec_kernels *vk;
    long n;
    const float *a, *b;
    float *out;
    int backward;   /* 0 sigmoid, 1 its backward, 2 tanh */
} act_job;

static void act_task(void *ctx, int t, int nt)
{
    const act_job *j = ctx;
    /* shares in whole 16-float vectors */
    long vecs = (j->n + 15) / 16, lo = vecs * t / nt * 16, hi = vecs * (t + 1) / nt * 16;
    if (hi > j->n)
        hi = j->n;
    if (lo >= hi)
        return;
    if (j->backward == 2)
        j->vk->tanh(hi - lo, j->a + lo, j->out + lo);
    else if (j->backward)
        j->vk->sigmoid_backward(hi - lo, j->a + lo, j->b + lo, j->out + lo);
    else
        j->vk->sigmoid(hi - lo, j->a + lo, j->out + lo);
}

/* j with the vector loops, on the pool's threads, or on the caller alone
   while another thread holds the pool (the same loops: the bits do not
   depend on what other threads are doing); 0 where there are none */
static int run_pooled(act_job *j)
{
    if (!(j->vk = nn__vec_kernels()))
        return 0;
    long most = j->n / PER_THREAD_MIN;
    int nt = nn__pool_take(most < 1 ? 1 : most > NN_MAX_THREADS ? NN_MAX_THREADS : (int)most);
    if (nt == 0) {
        act_task(j, 0, 1);
        return 1;
    }
    nn__pool_run(act_task, j);
    nn__pool_give();
    return 1;
}

void nn_sigmoid_forward(long count, const float *x, float *y)
{
    act_job j = {NULL, count, x, NULL, y, 0};
    if (count <= 0 || run_pooled(&j))
        return;
    for (long i = 0; i < count; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void nn_sigmoid_backward(long count, const float *gy, const float *y, float *gx)
{
    act_job j = {NULL, count, gy, y, gx, 1};
    if (count <= 0 || run_pooled(&j))
        return;
    for (long i = 0; i < count; i++)
        gx[i] = gy[i] * (1.0f - y[i]) * y[i];
}

void nn__tanh_forward(long count, const float *x, float *y)
{
    act_job j = {NULL, count, x, NULL, y, 2};
    if (count <= 0 || run_pooled(&j))
        return;
    for (long i = 0; i < count; i++)
        y[i] = tanhf(x[i]);
}

/* ---- relu and sums: memory-bound, split over the pool where large ----

   One element's result depends on that element only, and the operations
   are the generated loops' (relu's backward: gy where y > 0, else +0, the
   bits of the generated mask), so neither the thread count nor the CPU
   changes a bit.  16 lanes at a time where the CPU has AVX-512F or AVX2
   (norm_vec.c; cc -O2 leaves these loops scalar: the arrays may overlap),
   else plain loops.  On any CPU with the pool (not only nngen's kernel's). */

enum { EW_RELU, EW_RELU_BACKWARD, EW_ADD, EW_ADD_RELU };

typedef struct {
    long n;
    const float *a, *b;
    float *y;
    int kind;
} ew_job;

static void ew_range(const ew_job *j, long lo, long hi)
{
    const float *a = j->a + lo, *b = j->b ? j->b + lo : NULL;
    float *y = j->y + lo;
    long n = hi - lo;
#if NN_HAVE_AVX512_KERNEL
    int isa = nn__vec_isa();
    if (isa == 2) {
        nn__ew_avx512(j->kind, n, a, b, y);
        return;
    }
    if (isa == 1) {
        nn__ew_avx2(j->kind, n, a, b, y);
        return;
    }
#endif
    if (j->kind == EW_RELU)
        for (long i = 0; i < n; i++)
            y[i] = a[i] > 0.0f ? a[i] : 0.0f;
    else if (j->kind == EW_RELU_BACKWARD)
        for (long i = 0; i < n; i++)
            y[i] = b[i] > 0.0f ? a[i] : 0.0f;
    else if (j->kind == EW_ADD)
        for (long i = 0; i < n; i++)
            y[i] = a[i] + b[i];
    else
        for (long i = 0; i < n; i++) {
            float t = a[i] + b[i];
            y[i] = t > 0.0f ? t : 0.0f;
        }
}

static void ew_task(void *ctx, int t, int nt)
{
    const ew_job *j = ctx;
    long vecs = (j->n + 15) / 16, lo = vecs * t / nt * 16, hi = vecs * (t + 1) / nt * 16;
    if (hi > j->n)
        hi = j->n;
    if (lo < hi)
        ew_range(j, lo, hi);
}

static void ew_run(const ew_job *j)
{
    if (j->n <= 0)
        return;
    long most = j->n / PER_THREAD_MIN;
    int nt = nn_num_threads();
    if (most < nt)
        nt = (int)most;
    if (nt >= 2 && (nt = nn__pool_hold(nt)) > 0) {
        nn__pool_run(ew_task, (void *)j);
        nn__pool_give();
        return;
    }
    ew_range(j, 0, j->n);
}

void nn_relu_forward(long count, const float *x, float *y)
{
    ew_job j = {count, x, NULL, y, EW_RELU};
    ew_run(&j);
}

void nn_relu_backward(long count, const float *gy, const float *y, float *gx)
{
    ew_job j = {count, gy, y, gx, EW_RELU_BACKWARD};
    ew_run(&j);
}

void nn_add_forward(long count, const float *a, const float *b, float *y)
{
    ew_job j = {count, a, b, y, EW_ADD};
    ew_run(&j);
}

void nn_add_relu_forward(long count, const float *a, const float *b, float *y)
{
    ew_job j = {count, a, b, y, EW_ADD_RELU};
    ew_run(&j);
}

/* ---- nn_parallel_rows ---- */

typedef struct {
    void (*fn)(int n, const float *a, float *b);
    int n;
    const float *a;
    long ap;
    float *b;
    long bp;
} rows_job;

static void rows_task(void *ctx, int t, int nt)
{
    const rows_job *j = ctx;
    int r0 = (int)((long)j->n * t / nt), r1 = (int)((long)j->n * (t + 1) / nt);
    if (r1 > r0)
        j->fn(r1 - r0, j->a + r0 * j->ap, j->b + r0 * j->bp);
}

void nn_parallel_rows(void (*fn)(int n, const float *a, float *b), int n, const float *a,
                      long a_per, float *b, long b_per)
{
    rows_job j = {fn, n, a, a_per, b, b_per};
    if (n < 2) {
        if (n == 1)
            fn(1, a, b);
        return;
    }
    nn_parallel(rows_task, &j);
}
