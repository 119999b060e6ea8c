/* nngen-rt: nn_sgemm, nn_linear_forward and nn_sgemm_relu_mask, the matrix
 * products the generated code calls, and the choice of their kernel.
 *
 * Kernels: nngen's own (gemm_avx512.c, on the pool's threads: pool_threads.c,
 * or pool_serial.c in a build without threads), built on x86-64 and run
 * only where the CPU has AVX-512F and FMA (checked once, nn__gemm_setup);
 * cblas_sgemm (gemm_cblas.c, in a build with BLAS); the plain loops
 * (gemm_portable.c, always built).  "The generic product" below is
 * cblas_sgemm, or the loops in a build without BLAS.
 *
 * NNGEN_GEMM (read once per process) sets the mode: "auto" (the default)
 * chooses per product class (class_index: entry point, transposes, a range
 * of m, n and k each, one thread or more) where both nngen's kernel and
 * the BLAS exist: at the class's first use the call's own operands (or the
 * top-left part of them, at most 2^25 multiply-adds: representative())
 * are multiplied into a scratch buffer by each kernel, alternately, a few
 * times (measure()), and the faster one is kept, cblas_sgemm on a tie or
 * when nngen's kernel is slower; a few milliseconds per class.  The
 * choice is an atomic byte per class, written once; only one thread
 * measures at a time (a try-lock), and a call that finds the lock or the
 * pool taken runs on the generic product, so no caller ever waits for
 * another.  A forked child keeps the parent's choices (plain memory) and
 * releases the lock (pthread_atfork): a class its parent was measuring is
 * measured again.  "nngen", "cblas", "portable": that kernel for every
 * class ("nngen" where the CPU has it, else the generic product).  A call
 * made while another thread holds the pool goes to the generic product, so
 * nn_sgemm is safe to call from several threads at once (with pthreads).
 *
 * The measuring part exists where nngen's kernel is built (x86-64, GCC or
 * clang: __atomic builtins, clock_gettime, pthread_atfork with threads);
 * elsewhere the choice is fixed by the mode and this file is ISO C99.
 */
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

/* NN_HAVE_AVX512_KERNEL: set by the build when gemm_avx512.c is built */
#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

#if NN_HAVE_AVX512_KERNEL
#include <time.h>
#if NN_THREADS
#include <pthread.h>
#endif
#endif

/* Products smaller than this many multiply-adds run on the calling thread
   alone: waking a worker costs about a microsecond. */
#define PARALLEL_MIN_MACS (256L * 1024L)

/* Products at least this large run cblas_sgemm on OpenBLAS's own threads
   even where nngen's pool runs threads (gemm_cblas.c explains why smaller
   ones run alone): the two pools' spinning costs a fraction of a
   millisecond, a few percent of such a call, while OpenBLAS alone on one
   thread of two takes twice as long.  Measured on a 2-core Zen 3 while the
   AVX2 kernel was in auto mode's choice, where OpenBLAS's kernel is faster
   than it on large products
   (182 against 166 GFLOP/s): bench (c)'s train step took ~285 ms with
   every product on cblas (NNGEN_GEMM=cblas) and ~310 ms in auto mode,
   which could only choose nngen's kernel on two threads or cblas on one. */
#define BLAS_THREADS_MACS (1L << 26)

/* NN_GEMM_* of the generic product */
#define GENERIC_KERNEL (NN_HAVE_CBLAS ? NN_GEMM_CBLAS : NN_GEMM_PORTABLE)

enum { MODE_AUTO, MODE_NNGEN, MODE_CBLAS, MODE_PORTABLE };
static int mode;
static int use_nngen;   /* nngen's kernel may run (CPU, and the mode allows it) */
static int use_avx512;  /* ... and it is the AVX-512 one (else the AVX2 one):
                           conv.c's and act.c's AVX-512 loops are on too */
static int fixed;       /* the kernel of every class when nothing is measured, else 0 */
static int vec_isa;     /* nn__vec_isa() */

void nn__gemm_setup(void);

/* ------------------------------------------------------------------ */
/* The kernels, one call of an entry point on a given kernel            */

/* cblas alone (on the calling thread): where nngen's pool runs threads,
   unless the product is large (BLAS_THREADS_MACS; the call's own size) */
static void generic_sgemm(int kern, int alone, int trans_a, int trans_b, int m, int n, int k,
                          const float *a, int lda, const float *b, int ldb, float beta, float *c,
                          int ldc)
{
#if NN_HAVE_CBLAS
    if (kern != NN_GEMM_PORTABLE) {
        nn__sgemm_cblas(alone, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#else
    (void)kern;
    (void)alone;
#endif
    nn__sgemm_portable(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* nn_linear_forward on the generic kernel kern: y = b (broadcast),
   y += x w^T, then the activation in place */
static void generic_linear(int kern, int alone, int rows, int in, int out, const float *x,
                           const float *w, const float *b, int act, float slope, float *y)
{
    for (long r = 0; r < rows; r++) {
        if (b)
            memcpy(y + r * out, b, sizeof(float) * (size_t)out);
        else
            memset(y + r * out, 0, sizeof(float) * (size_t)out);
    }
    if (in > 0)
        generic_sgemm(kern, alone, 0, 1, rows, out, in, x, in, w, in, 1.0f, y, out);
    long n = (long)rows * out;
    if (act == NN_ACT_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    else if (act == NN_ACT_LEAKY_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : y[i] * slope;
}

/* nn_sgemm_relu_mask on the generic kernel kern (any k >= 0) */
static void generic_relu_mask(int kern, int alone, int m, int n, int k, const float *a, int lda,
                              const float *b, int ldb, float *c, int ldc, const float *mask,
                              int ldm)
{
    if (k > 0) {
        generic_sgemm(kern, alone, 0, 0, m, n, k, a, lda, b, ldb, 0.0f, c, ldc);
    } else {
        for (long i = 0; i < m; i++)
            memset(c + i * ldc, 0, sizeof(float) * (size_t)n);
    }
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++)
            if (!(mask[i * ldm + j] > 0.0f))
                c[i * ldc + j] = 0.0f;
}

/* One call of an entry point, as the choice sees it: the operands of the
   call, and where it writes. */
typedef struct call {
    int op, ta, tb, m, n, k;
    const float *a, *b;  /* linear: x, w */
    int lda, ldb;
    float beta;
    float *c;
    int ldc;
    const float *bias;   /* linear */
    int act;
    float slope;
    const float *mask;   /* relu mask */
    int ldm;
    const nn_sgd_step *sgd;  /* nn_sgemm_sgd: the update after the product */
    int blas_threads;    /* the call (not its representative) is large:
                            BLAS_THREADS_MACS */
    int unmeasured;      /* nn__sgemm_unmeasured: the mode's kernel, never
                            the measured choice */
} call;

/* Runs cl on kernel kern; for NN_GEMM_NNGEN the caller holds the pool. */
static void run_call(int kern, const call *cl)
{
    int alone = use_nngen && nn_num_threads() > 1 && !cl->blas_threads;
    switch (cl->op) {
    case NN_GEMM_OP_LINEAR:
#if NN_HAVE_AVX512_KERNEL
        if (kern == NN_GEMM_NNGEN) {
            (use_avx512 ? nn__linear_avx512 : nn__linear_avx2)(cl->m, cl->k, cl->n, cl->a, cl->b,
                                                               cl->bias, cl->act, cl->slope,
                                                               cl->c);
            return;
        }
#endif
        generic_linear(kern, alone, cl->m, cl->k, cl->n, cl->a, cl->b, cl->bias, cl->act,
                       cl->slope, cl->c);
        return;
    case NN_GEMM_OP_RELU_MASK:
#if NN_HAVE_AVX512_KERNEL
        if (kern == NN_GEMM_NNGEN) {
            (use_avx512 ? nn__sgemm_relu_avx512 : nn__sgemm_relu_avx2)(
                cl->m, cl->n, cl->k, cl->a, cl->lda, cl->b, cl->ldb, cl->c, cl->ldc, cl->mask,
                cl->ldm);
            return;
        }
#endif
        generic_relu_mask(kern, alone, cl->m, cl->n, cl->k, cl->a, cl->lda, cl->b, cl->ldb,
                          cl->c, cl->ldc, cl->mask, cl->ldm);
        return;
    default:
        if (cl->sgd) {
#if NN_HAVE_AVX512_KERNEL
            if (kern == NN_GEMM_NNGEN) {
                (use_avx512 ? nn__sgemm_sgd_avx512 : nn__sgemm_sgd_avx2)(
                    cl->ta, cl->tb, cl->m, cl->n, cl->k, cl->a, cl->lda, cl->b, cl->ldb,
                    cl->beta, cl->c, cl->ldc, cl->sgd);
                return;
            }
#endif
            generic_sgemm(kern, alone, cl->ta, cl->tb, cl->m, cl->n, cl->k, cl->a, cl->lda,
                          cl->b, cl->ldb, cl->beta, cl->c, cl->ldc);
            nn__sgd_pass(cl->sgd, cl->m, cl->n, cl->c, cl->ldc, 0);
            return;
        }
#if NN_HAVE_AVX512_KERNEL
        if (kern == NN_GEMM_NNGEN) {
            (use_avx512 ? nn__sgemm_avx512 : nn__sgemm_avx2)(cl->ta, cl->tb, cl->m, cl->n, cl->k,
                                                             cl->a, cl->lda, cl->b, cl->ldb,
                                                             cl->beta, cl->c, cl->ldc);
            return;
        }
#endif
        generic_sgemm(kern, alone, cl->ta, cl->tb, cl->m, cl->n, cl->k, cl->a, cl->lda, cl->b,
                      cl->ldb, cl->beta, cl->c, cl->ldc);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Atomics (GCC and clang; a plain variable elsewhere, where the choice  */
/* is fixed and nothing but the last kernel is written)                 */

#if NN_HAVE_AVX512_KERNEL
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define TRYLOCK(p) (!__atomic_exchange_n((p), 1, __ATOMIC_ACQUIRE))
#define THREAD_LOCAL __thread
#endif

/* the calling thread's last kernel (nn_gemm_last_kernel) */
#if NN_HAVE_AVX512_KERNEL
static THREAD_LOCAL int last_kernel;
#define SET_LAST(k) (last_kernel = (k))
#else
/* one kernel for the whole process: nothing to remember per thread */
static int last_used;
#if defined(__GNUC__)
#define SET_LAST(k) ((void)(k), __atomic_store_n(&last_used, 1, __ATOMIC_RELAXED))
#else
#define SET_LAST(k) ((void)(k), last_used = 1)
#endif
#endif

int nn_gemm_last_kernel(void)
{
#if NN_HAVE_AVX512_KERNEL
    return last_kernel;
#else
    return last_used ? fixed : NN_GEMM_NONE;
#endif
}

/* ------------------------------------------------------------------ */
/* Classes (where there is something to choose from)                    */

#if NN_HAVE_AVX512_KERNEL
#define NBUCKET 7
#define NKIND 6  /* sgemm with its 4 transposes, linear, relu mask */
#define NCLASS (NKIND * 2 * NBUCKET * NBUCKET * NBUCKET)

static int bucket(int d)
{
    int b = 0;
    for (long lim = 4; b < NBUCKET - 1 && d > lim; lim *= 4)
        b++;
    return b;
}

static int class_index(int op, int ta, int tb, int m, int n, int k, int threads)
{
    int kind = op == NN_GEMM_OP_LINEAR ? 4 : op == NN_GEMM_OP_RELU_MASK ? 5
                                                                        : 2 * !!ta + !!tb;
    return (((kind * 2 + (threads > 1)) * NBUCKET + bucket(m)) * NBUCKET + bucket(n)) * NBUCKET +
           bucket(k);
}

/* per class: NN_GEMM_NONE (undecided) or the kernel chosen; atomic */
static unsigned char choice[NCLASS];
/* the decided classes, for nn_gemm_classes: entries [0, nrecorded) are
   complete (nrecorded is stored after the entry, both under lock) */
#define NRECORD 256
static nn_gemm_class record[NRECORD];
static int nrecorded;        /* atomic */
static long nmeasured;       /* atomic */
static int lock;             /* atomic try-lock of the measurement and the record */
#define MEASURE_MACS (1L << 25)   /* the largest product timed */
#define SCRATCH_FLOATS (1L << 18) /* the largest output timed (1 MiB) */
/* where the measured products write: static (zero pages until the first
   measurement touches them), so that choosing allocates nothing and the
   generated code's "no allocation after P_create" holds; used under the
   lock only */
#if defined(__GNUC__)
static float scratch[SCRATCH_FLOATS] __attribute__((aligned(64)));
#else
static float scratch[SCRATCH_FLOATS];
#endif
#define SAMPLE_NS 20000L          /* a timed sample: at least this long */
#define BUDGET_NS 4000000L        /* per class, after the first two rounds */
#define ROUNDS 5

#if NN_THREADS
static void after_fork_child(void)
{
    /* a measurement in another thread of the parent did not survive */
    lock = 0;
}
#endif

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* The part of cl that is timed: the same operands, the top-left tm x tn x
   tk of the product (linear: k, the row length of x and w, stays), at
   most MEASURE_MACS multiply-adds and SCRATCH_FLOATS outputs where the
   dimensions allow, written to scratch. */
static call representative(const call *cl)
{
    call r = *cl;
    int can_k = cl->op != NN_GEMM_OP_LINEAR;
    for (;;) {
        long macs = (long)r.m * r.n * r.k, outs = (long)r.m * r.n;
        int *big;
        if (outs > SCRATCH_FLOATS)
            big = r.m >= r.n ? &r.m : &r.n;
        else if (macs > MEASURE_MACS) {
            big = r.m >= r.n ? &r.m : &r.n;
            if (can_k && r.k > *big)
                big = &r.k;
            if (*big <= 16)
                break;  /* linear with a very long k: as it is */
        } else
            break;
        *big = (*big + 1) / 2;
    }
    r.c = scratch;
    r.ldc = r.n;
    r.beta = 0.0f;
    r.sgd = NULL; /* the product alone: a parameter is never stepped here */
    return r;
}

/* Times cl's representative on kernels kern[0 .. nk-1]: per kernel a
   warm-up call and a call that sets the repetitions of a sample (at least
   SAMPLE_NS), then up to ROUNDS rounds of one sample per kernel in turn
   (the rounds after the second only while the class's BUDGET_NS lasts);
   best[i] is kernel i's fastest sample per call.  For nngen's kernel the
   pool is held. */
static void measure(const call *rep, const int *kern, int nk, double *best)
{
    long reps[4], t0 = now_ns();
    for (int i = 0; i < nk; i++) {
        run_call(kern[i], rep);
        long s = now_ns();
        run_call(kern[i], rep);
        long dt = now_ns() - s;
        best[i] = dt > 0 ? (double)dt * 1e-9 : 1e-9;
        reps[i] = dt > 0 && dt < SAMPLE_NS ? (SAMPLE_NS + dt - 1) / dt : 1;
    }
    for (int round = 0; round < ROUNDS; round++) {
        if (round >= 2 && now_ns() - t0 > BUDGET_NS)
            break;
        for (int i = 0; i < nk; i++) {
            long s = now_ns();
            for (long r = 0; r < reps[i]; r++)
                run_call(kern[i], rep);
            double t = (double)(now_ns() - s) * 1e-9 / (double)reps[i];
            if (t < best[i])
                best[i] = t;
        }
    }
}

/* Under lock: the class's entry in record. */
static void add_record(const call *cl, const call *rep, int threads, int kern,
                       const double *seconds)
{
    int i = nrecorded;
    if (i >= NRECORD)
        return;
    nn_gemm_class *e = &record[i];
    memset(e, 0, sizeof *e);
    e->op = cl->op;
    e->trans_a = cl->op == NN_GEMM_OP_SGEMM ? cl->ta : 0;
    e->trans_b = cl->op == NN_GEMM_OP_SGEMM ? cl->tb : cl->op == NN_GEMM_OP_LINEAR;
    e->threads = threads;
    e->m = cl->m;
    e->n = cl->n;
    e->k = cl->k;
    e->tm = rep ? rep->m : 0;
    e->tn = rep ? rep->n : 0;
    e->tk = rep ? rep->k : 0;
    e->kernel = kern;
    if (seconds)
        for (int q = 0; q < 4; q++)
            e->seconds[q] = seconds[q];
    STORE(&nrecorded, i + 1);
}

/* The kernel for cl (k >= 1), deciding (and recording) its class if it is
   undecided and nobody else is deciding one; still undecided: the generic
   product, this time. */
static int decide(const call *cl)
{
    int threads = nn_num_threads();
    int idx = class_index(cl->op, cl->ta, cl->tb, cl->m, cl->n, cl->k, threads);
    int c = LOAD(&choice[idx]);
    if (c != NN_GEMM_NONE)
        return c;
    if (!TRYLOCK(&lock))
        return fixed ? fixed : GENERIC_KERNEL;  /* undecided: the generic product for now */
    c = LOAD(&choice[idx]);
    if (c == NN_GEMM_NONE && fixed) {
        add_record(cl, NULL, threads, fixed, NULL);
        c = fixed;
        STORE(&choice[idx], (unsigned char)c);
    } else if (c == NN_GEMM_NONE) {
        long macs = (long)cl->m * cl->n * cl->k;
        int nt = macs >= PARALLEL_MIN_MACS ? threads : 1;
        if (nn__pool_hold(nt)) {
            call rep = representative(cl);
            int kern[2] = {NN_GEMM_NNGEN, NN_GEMM_CBLAS};
            double best[2], seconds[4] = {0, 0, 0, 0};
            measure(&rep, kern, 2, best);
            nn__pool_give();
            seconds[NN_GEMM_NNGEN] = best[0];
            seconds[NN_GEMM_CBLAS] = best[1];
            /* the BLAS unless nngen's kernel was faster */
            c = best[0] < best[1] ? NN_GEMM_NNGEN : NN_GEMM_CBLAS;
            add_record(cl, &rep, threads, c, seconds);
            __atomic_add_fetch(&nmeasured, 1, __ATOMIC_RELAXED);
            STORE(&choice[idx], (unsigned char)c);
        }
        /* no buffer, or the pool is taken: measured at a later call */
    }
    STORE(&lock, 0);
    return c != NN_GEMM_NONE ? c : GENERIC_KERNEL;
}
#endif

void nn__gemm_setup(void)
{
    const char *env = getenv("NNGEN_GEMM"), *isa = getenv("NNGEN_ISA");
    int cpu512 = 0, cpu2 = 0;
    mode = MODE_AUTO;
    if (env && strcmp(env, "nngen") == 0)
        mode = MODE_NNGEN;
    else if (env && strcmp(env, "cblas") == 0)
        mode = MODE_CBLAS;
    else if (env && strcmp(env, "portable") == 0)
        mode = MODE_PORTABLE;
#if NN_HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    cpu2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    /* NNGEN_ISA=avx2: as on a CPU without AVX-512 (the AVX2 kernel) */
    cpu512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") &&
             !(isa && strcmp(isa, "avx2") == 0);
#else
    (void)isa;
#endif
    /* nngen's kernel (AVX-512, else AVX2) in auto mode's measured choice
       and in the nngen mode */
    use_nngen = (cpu512 || cpu2) && (mode == MODE_AUTO || mode == MODE_NNGEN);
    use_avx512 = use_nngen && cpu512;
    vec_isa = mode == MODE_PORTABLE ? 0 : cpu512 ? 2 : cpu2 ? 1 : 0;
    if (mode == MODE_PORTABLE)
        fixed = NN_GEMM_PORTABLE;
    else if (mode == MODE_CBLAS || !use_nngen)
        fixed = GENERIC_KERNEL;
    else if (mode == MODE_NNGEN || !NN_HAVE_CBLAS)
        fixed = NN_GEMM_NNGEN;  /* (no BLAS: nngen's kernel, unmeasured) */
    else
        fixed = NN_GEMM_NONE;   /* auto with both kernels: measured */
#if NN_HAVE_AVX512_KERNEL && NN_THREADS
    pthread_atfork(NULL, NULL, after_fork_child);
#endif
}

const nn_vec_kernels *nn__vec_kernels(void)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    if (use_avx512)
        return &nn__vec_kernels_avx512;
    if (vec_isa == 1 && (mode == MODE_AUTO || mode == MODE_NNGEN))
        return &nn__vec_kernels_avx2;
#endif
    return NULL;
}

int nn__vec_isa(void)
{
    nn__setup();
    return vec_isa;
}

const char *nn_sgemm_impl(void)
{
    nn__setup();
    return use_avx512 ? "avx512"
           : use_nngen ? "avx2"
           : fixed == NN_GEMM_PORTABLE ? "portable"
                                       : "cblas";
}

const char *nn_conv_impl(void)
{
    const nn_vec_kernels *vk = nn__vec_kernels();
    return vk ? vk->name : "im2col";
}

const char *nn_gemm_mode(void)
{
    static const char *const names[] = {"auto", "nngen", "cblas", "portable"};
    nn__setup();
    return names[mode];
}

const char *nn_gemm_kernel_name(int kernel)
{
    return kernel == NN_GEMM_NNGEN ? "nngen" : kernel == NN_GEMM_CBLAS ? "cblas"
                                   : kernel == NN_GEMM_PORTABLE        ? "portable"
                                                                       : "none";
}

int nn_gemm_choice(int op, int trans_a, int trans_b, int m, int n, int k)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    if (fixed)
        return fixed;
    if (op == NN_GEMM_OP_LINEAR) {
        trans_a = 0;
        trans_b = 1;
    } else if (op == NN_GEMM_OP_RELU_MASK) {
        trans_a = trans_b = 0;
    }
    return LOAD(&choice[class_index(op, trans_a, trans_b, m, n, k, nn_num_threads())]);
#else
    (void)op;
    (void)trans_a;
    (void)trans_b;
    (void)m;
    (void)n;
    (void)k;
    return fixed;
#endif
}

int nn_gemm_classes(nn_gemm_class *out, int max)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    int n = LOAD(&nrecorded);
    for (int i = 0; out && i < n && i < max; i++)
        out[i] = record[i];
    return n;
#else
    (void)out;
    (void)max;
    return 0;
#endif
}

long nn_gemm_measurements(void)
{
    nn__setup();
#if NN_HAVE_AVX512_KERNEL
    return __atomic_load_n(&nmeasured, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ */
/* The entry points                                                     */

/* Runs cl (m, n >= 1) on its class's kernel: nngen's on the pool when it
   was chosen and the pool is free, else the generic product (or the
   portable loops when chosen). */
static void dispatch(call *cl)
{
    cl->blas_threads = (long)cl->m * cl->n * cl->k >= BLAS_THREADS_MACS;
#if NN_HAVE_AVX512_KERNEL
    /* k = 0: nothing to choose (nngen's kernel writes the zeros) */
    int kern = cl->unmeasured ? (fixed ? fixed : NN_GEMM_NNGEN)
               : cl->k > 0    ? decide(cl)
               : use_nngen    ? NN_GEMM_NNGEN
                              : fixed;
    if (kern == NN_GEMM_NNGEN) {
        long macs = (long)cl->m * cl->n * (cl->k > 0 ? cl->k : 1);
        if (nn__pool_hold(macs >= PARALLEL_MIN_MACS ? nn_num_threads() : 1)) {
            run_call(NN_GEMM_NNGEN, cl);
            nn__pool_give();
            SET_LAST(NN_GEMM_NNGEN);
            return;
        }
        kern = GENERIC_KERNEL;  /* another thread has the pool */
    }
    run_call(kern, cl);
    SET_LAST(kern);
#else
    run_call(fixed, cl);
    SET_LAST(fixed);
#endif
}

/* nngen's linear and masked product need k >= 1: k = 0 runs elsewhere */
static void run_k0(const call *cl)
{
    int kern = fixed == NN_GEMM_PORTABLE ? NN_GEMM_PORTABLE : GENERIC_KERNEL;
    run_call(kern, cl);
    SET_LAST(kern);
}

void nn_linear_forward(int rows, int in, int out, const float *x, const float *w,
                       const float *b, int act, float slope, float *y)
{
    nn__setup();
    if (rows <= 0 || out <= 0)
        return;
    call cl;
    memset(&cl, 0, sizeof cl);
    cl.op = NN_GEMM_OP_LINEAR;
    cl.tb = 1;
    cl.m = rows;
    cl.n = out;
    cl.k = in > 0 ? in : 0;
    cl.a = x;
    cl.b = w;
    cl.lda = cl.ldb = cl.k;
    cl.c = y;
    cl.ldc = out;
    cl.bias = b;
    cl.act = act;
    cl.slope = slope;
    if (cl.k == 0) {
        run_k0(&cl);  /* the bias and the activation alone */
        return;
    }
    dispatch(&cl);
}

void nn_sgemm_relu_mask(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                        float *c, int ldc, const float *mask, int ldm)
{
    nn__setup();
    if (m <= 0 || n <= 0)
        return;
    call cl;
    memset(&cl, 0, sizeof cl);
    cl.op = NN_GEMM_OP_RELU_MASK;
    cl.m = m;
    cl.n = n;
    cl.k = k > 0 ? k : 0;
    cl.a = a;
    cl.lda = lda;
    cl.b = b;
    cl.ldb = ldb;
    cl.c = c;
    cl.ldc = ldc;
    cl.mask = mask;
    cl.ldm = ldm;
    if (cl.k == 0) {
        run_k0(&cl);
        return;
    }
    dispatch(&cl);
}

int nn__pool_take(int max_threads)
{
    int nt = nn_num_threads();
    return nn__pool_hold(nt < max_threads ? nt : max_threads);
}

/* nn_sgd_step's update of rows [i0, i1) (rt.h), in plain C: the generated
   optimizer kernels' expressions, in the same order (no contraction: the
   runtime is built as ISO C with -ffp-contract=off). */
void nn__sgd_rows(const nn_sgd_step *s, long i0, long i1, long n, const float *c, long ldc)
{
    const float wd = s->weight_decay, mom = s->momentum, damp1 = s->damp1, nlr = s->neg_lr;
    for (long i = i0; i < i1; i++) {
        const float *restrict G = c + i * ldc;
        float *restrict P = s->param + i * ldc;
        if (!s->momentum_buf) {
            if (wd != 0.0f)
                for (long j = 0; j < n; j++)
                    P[j] = P[j] + nlr * (G[j] + wd * P[j]);
            else
                for (long j = 0; j < n; j++)
                    P[j] = P[j] + nlr * G[j];
            continue;
        }
        float *restrict M = s->momentum_buf + i * ldc;
        for (long j = 0; j < n; j++) {
            float g = wd != 0.0f ? G[j] + wd * P[j] : G[j];
            M[j] = s->first ? g : M[j] * mom + damp1 * g;
            P[j] = P[j] + nlr * (s->nesterov ? g + mom * M[j] : M[j]);
        }
    }
}

typedef struct sgd_job {
    const nn_sgd_step *s;
    long m, n, ldc;
    const float *c;
} sgd_job;

static void sgd_part(void *ctx, int t, int nt)
{
    const sgd_job *j = ctx;
    nn__sgd_rows(j->s, j->m * t / nt, j->m * (t + 1) / nt, j->n, j->c, j->ldc);
}

/* as the generated code's optimizer: tensors of at least this many floats
   on the pool's threads */
#define SGD_PARALLEL_MIN 32768L

void nn__sgd_pass(const nn_sgd_step *s, long m, long n, const float *c, long ldc, int held)
{
    sgd_job j;
    j.s = s;
    j.m = m;
    j.n = n;
    j.ldc = ldc;
    j.c = c;
    if (m < 2 || m * n < SGD_PARALLEL_MIN)
        nn__sgd_rows(s, 0, m, n, c, ldc);
    else if (held)
        nn__pool_run(sgd_part, &j);
    else
        nn_parallel(sgd_part, &j);
}

static void sgemm_call(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, int accumulate, float *c, int ldc,
                       const nn_sgd_step *step, int unmeasured);

void nn_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
              const float *b, int ldb, int accumulate, float *c, int ldc)
{
    sgemm_call(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc, NULL, 0);
}

void nn__sgemm_unmeasured(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                          const float *b, int ldb, int accumulate, float *c, int ldc)
{
    sgemm_call(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc, NULL, 1);
}

void nn_sgemm_sgd(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                  const float *b, int ldb, int accumulate, float *c, int ldc,
                  const nn_sgd_step *step)
{
    sgemm_call(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc, step, 0);
}

static void sgemm_call(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, int accumulate, float *c, int ldc,
                       const nn_sgd_step *step, int unmeasured)
{
    nn__setup();
    if (m <= 0 || n <= 0)
        return;
    call cl;
    memset(&cl, 0, sizeof cl);
    cl.op = NN_GEMM_OP_SGEMM;
    cl.ta = trans_a;
    cl.tb = trans_b;
    cl.m = m;
    cl.n = n;
    cl.k = k > 0 ? k : 0;
    cl.a = a;
    cl.lda = lda;
    cl.b = b;
    cl.ldb = ldb;
    cl.beta = accumulate ? 1.0f : 0.0f;
    cl.c = c;
    cl.ldc = ldc;
    cl.sgd = step;
    cl.unmeasured = unmeasured;
    dispatch(&cl);
}
