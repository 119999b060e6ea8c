/* nngen-rt: nn_sgemm, the matrix product the generated code calls, and the
 * thread pool it runs on.
 *
 * Dispatch, decided once per process: on x86-64 with AVX-512F (checked at
 * run time, see gemm_avx512.c) nngen's own kernel, on nn_num_threads()
 * threads; anywhere else cblas_sgemm.  NNGEN_GEMM=cblas in the environment
 * forces cblas (to compare the two).  A call made while another thread is
 * inside nn_sgemm with the pool also goes to cblas, so nn_sgemm is safe to
 * call from several threads at once.
 *
 * The pool: nt - 1 worker threads, started on first use and never stopped.
 * A job is published by bumping a generation counter; workers spin on it
 * for up to SPIN_NS after their last job (the generated code calls nn_sgemm
 * several times per train step, tens of microseconds apart), then sleep on
 * a condition variable.  The caller runs share 0 itself and spins until
 * every worker has reported.  Every wait loop turns from pause to
 * sched_yield() after a few microseconds (see relax()).  After fork() the child starts with no
 * workers (pthread_atfork).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif
/* NN_HAVE_AVX512_KERNEL: set by the build when gemm_avx512.c is built */
#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

#define SPIN_NS 500000L
/* Products smaller than this many multiply-adds run on the calling thread
   alone: waking a worker costs about a microsecond. */
#define PARALLEL_MIN_MACS (256L * 1024L)

static float pack[NN_MAX_THREADS][NN_PACK_FLOATS];

float *nn__pack_buffer(int t)
{
    return pack[t];
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned gen;       /* atomic: bumped once per job */
    int pending;        /* atomic: workers yet to finish the current job */
    int sleepers;       /* under mu */
    int workers;        /* started; only the pool holder changes it */
    nn_task_fn fn;
    void *ctx;
    int nt;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL, NULL, 1};

static int held;          /* atomic try-lock: 1 while a caller owns the pool */
static int threads_set;   /* atomic: nn_set_num_threads value, 0 = default */
static int use_avx512 = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* One turn of a wait loop: the pause instruction for the first
   YIELD_AFTER turns, then sched_yield(): when there are more runnable
   threads than cores, the thread waited for may be the one descheduled,
   and spinning would only keep it off the core for a whole time slice. */
#define YIELD_AFTER 2048
static void relax(int spins)
{
    if (spins < YIELD_AFTER)
        cpu_relax();
    else
        sched_yield();
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* The generation current when worker t was started: it must not take the
   generation it reads when it first runs, which may already be its first
   job's. */
static unsigned start_gen[NN_MAX_THREADS];

static void *worker(void *arg)
{
    int tid = (int)(size_t)arg;
    unsigned seen = start_gen[tid];
    for (;;) {
        long t0 = now_ns();
        for (int spins = 0;; spins++) {
            if (__atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) != seen)
                break;
            relax(spins);
            if ((spins & 255) == 255 && now_ns() - t0 > SPIN_NS) {
                pthread_mutex_lock(&pool.mu);
                pool.sleepers++;
                while (__atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == seen)
                    pthread_cond_wait(&pool.cv, &pool.mu);
                pool.sleepers--;
                pthread_mutex_unlock(&pool.mu);
                break;
            }
        }
        seen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
        if (tid < pool.nt)
            pool.fn(pool.ctx, tid, pool.nt);
        __atomic_sub_fetch(&pool.pending, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void after_fork_child(void)
{
    /* the workers did not survive the fork */
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pool.workers = 0;
    pool.sleepers = 0;
    pool.pending = 0;
    held = 0;
}

static int default_threads(void)
{
    const char *env = getenv("NNGEN_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1)
            return v > NN_MAX_THREADS ? NN_MAX_THREADS : (int)v;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > NN_MAX_THREADS ? NN_MAX_THREADS : (int)n;
}

static int default_nt = 1;

static void setup(void)
{
    default_nt = default_threads();
    const char *env = getenv("NNGEN_GEMM");
    int want = !(env && strcmp(env, "cblas") == 0);
#if NN_HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    use_avx512 = want && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#else
    (void)want;
    use_avx512 = 0;
#endif
    pthread_atfork(NULL, NULL, after_fork_child);
}

void nn_set_num_threads(int n)
{
    pthread_once(&once, setup);
    __atomic_store_n(&threads_set, n < 1 ? 0 : n > NN_MAX_THREADS ? NN_MAX_THREADS : n,
                     __ATOMIC_RELAXED);
}

int nn_num_threads(void)
{
    pthread_once(&once, setup);
    int n = __atomic_load_n(&threads_set, __ATOMIC_RELAXED);
    return n ? n : default_nt;
}

const char *nn_sgemm_impl(void)
{
    pthread_once(&once, setup);
    return use_avx512 ? "avx512" : "cblas";
}

/* Called with the pool held. */
static int pool_job_threads;

void nn__pool_run(nn_task_fn fn, void *ctx)
{
    int nt = pool_job_threads;
    while (pool.workers < nt - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        start_gen[pool.workers + 1] = __atomic_load_n(&pool.gen, __ATOMIC_RELAXED);
        int rc = pthread_create(&th, &at, worker, (void *)(size_t)(pool.workers + 1));
        pthread_attr_destroy(&at);
        if (rc != 0)
            break;
        pool.workers++;
    }
    if (nt > pool.workers + 1)
        nt = pool.workers + 1;
    if (nt <= 1 || pool.workers == 0) {
        fn(ctx, 0, 1);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.nt = nt;
    __atomic_store_n(&pool.pending, pool.workers, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool.mu);
    if (pool.sleepers)
        pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    fn(ctx, 0, nt);
    for (int spins = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0; spins++)
        relax(spins);
}

void nn_linear_forward(int rows, int in, int out, const float *x, const float *w,
                       const float *b, int act, float slope, float *y)
{
    pthread_once(&once, setup);
    if (rows <= 0 || out <= 0)
        return;
#if NN_HAVE_AVX512_KERNEL
    if (use_avx512 && in > 0 && !__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE)) {
        long macs = (long)rows * out * in;
        pool_job_threads = macs >= PARALLEL_MIN_MACS ? nn_num_threads() : 1;
        nn__linear_avx512(rows, in, out, x, w, b, act, slope, y);
        __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in,
                    1.0f, y, out);
    long n = (long)rows * out;
    if (act == NN_ACT_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    else if (act == NN_ACT_LEAKY_RELU)
        for (long i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : y[i] * slope;
}

void nn_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    pthread_once(&once, setup);
    if (__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE)) {
        fn(ctx, 0, 1);  /* another thread has the pool */
        return;
    }
    pool_job_threads = nn_num_threads();
    nn__pool_run(fn, ctx);
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
}

void nn_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
              const float *b, int ldb, int accumulate, float *c, int ldc)
{
    pthread_once(&once, setup);
    if (m <= 0 || n <= 0)
        return;
    if (k < 0)
        k = 0;
#if NN_HAVE_AVX512_KERNEL
    if (use_avx512 && !__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE)) {
        long macs = (long)m * n * (k > 0 ? k : 1);
        pool_job_threads = macs >= PARALLEL_MIN_MACS ? nn_num_threads() : 1;
        nn__sgemm_avx512(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate ? 1.0f : 0.0f,
                         c, ldc);
        __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                accumulate ? 1.0f : 0.0f, c, ldc);
}
