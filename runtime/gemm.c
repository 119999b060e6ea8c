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
 * The pool: up to nn_num_threads() - 1 worker threads, started on first use
 * and never stopped.  A job is published in one word (generation and thread
 * count); its participants spin on it for up to SPIN_NS after their last
 * job (the generated code calls nn_sgemm several times per train step, tens
 * of microseconds apart), then sleep on their own condition variable, so a
 * job wakes only the workers it uses.  The caller runs share 0 itself and
 * waits until every participant has reported.  Every wait loop turns from
 * pause to sched_yield() after YIELD_NS (see relax()).  After
 * fork() the child starts with no workers (pthread_atfork).
 *
 * Memory: each thread's packing buffer is static, NN_PACK_FLOATS floats
 * (512 KiB); only the buffers of threads that ran are ever touched.
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

/* The current job is published in one word, (generation << 8) | nt, so a
   worker reads the generation and the thread count of the same job; fn and
   ctx are read only by the job's participants (workers 1 .. nt-1), whom the
   caller waits for before it writes the next job. */
#define JOB(gen, nt) (((unsigned long long)(gen) << 8) | (unsigned long long)(nt))
#define JOB_GEN(j) ((j) >> 8)
#define JOB_NT(j) ((int)((j)&0xff))

static struct {
    unsigned long long job;  /* atomic */
    int pending;             /* atomic: participants yet to finish the job */
    int workers;             /* started; only the pool holder changes it */
    nn_task_fn fn;
    void *ctx;
} pool;

/* Each worker sleeps on its own condition variable, so a job wakes only
   its participants. */
static struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleeping;            /* under mu */
    unsigned long long start_gen;  /* the generation current when started */
} slots[NN_MAX_THREADS];

static int held;          /* atomic try-lock: 1 while a caller owns the pool */
static int threads_set;   /* atomic: nn_set_num_threads value, 0 = default */
static int use_avx512 = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* One turn of a wait loop: the pause instruction while the wait is
   younger than YIELD_NS (a turn of the clock every 256 turns), then
   sched_yield(): when there are more runnable threads than cores, the
   thread waited for may be the one descheduled, and spinning would only
   keep it off the core for a whole time slice.  Not sooner: a worker that
   has turned to sched_yield() notices its next job later, and the serial
   stretches between the products of a train step last tens of
   microseconds (the first version yielded after 2048 pauses, ~35 us). */
#define YIELD_NS 200000L
static long now_ns(void);
static void relax(int spins, long *t0)
{
    if (*t0 < 0) {
        cpu_relax();
        if ((spins & 255) == 255 && now_ns() - (-*t0 - 1) > YIELD_NS)
            *t0 = 0; /* from now on: yield */
    } else {
        sched_yield();
    }
}

/* The start value for relax()'s clock: now, stored negative while pausing. */
static long wait_start(void);

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long wait_start(void)
{
    return -now_ns() - 1;
}

static void *worker(void *arg)
{
    int tid = (int)(size_t)arg;
    struct slot *sl = &slots[tid];
    unsigned long long seen = sl->start_gen;  /* not its first read: that may be
                                                 its first job's generation */
    int spin = 0;
    for (;;) {
        long t0 = now_ns(), clock = wait_start();
        unsigned long long j;
        for (int spins = 0;; spins++) {
            j = __atomic_load_n(&pool.job, __ATOMIC_ACQUIRE);
            if (JOB_GEN(j) != seen)
                break;
            if (spin) {
                relax(spins, &clock);
                if ((spins & 255) == 255 && now_ns() - t0 > SPIN_NS)
                    spin = 0;
                continue;
            }
            pthread_mutex_lock(&sl->mu);
            sl->sleeping = 1;
            while (JOB_GEN(j = __atomic_load_n(&pool.job, __ATOMIC_ACQUIRE)) == seen)
                pthread_cond_wait(&sl->cv, &sl->mu);
            sl->sleeping = 0;
            pthread_mutex_unlock(&sl->mu);
            break;
        }
        seen = JOB_GEN(j);
        spin = tid < JOB_NT(j);
        if (spin) {
            pool.fn(pool.ctx, tid, JOB_NT(j));
            __atomic_sub_fetch(&pool.pending, 1, __ATOMIC_RELEASE);
        }
    }
    return NULL;
}

static void init_slots(void)
{
    for (int t = 0; t < NN_MAX_THREADS; t++) {
        pthread_mutex_init(&slots[t].mu, NULL);
        pthread_cond_init(&slots[t].cv, NULL);
        slots[t].sleeping = 0;
    }
}

static void after_fork_child(void)
{
    /* the workers did not survive the fork */
    init_slots();
    pool.workers = 0;
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
    init_slots();
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
    unsigned long long gen = JOB_GEN(__atomic_load_n(&pool.job, __ATOMIC_RELAXED));
    while (pool.workers < nt - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        slots[pool.workers + 1].start_gen = gen;
        int rc = pthread_create(&th, &at, worker, (void *)(size_t)(pool.workers + 1));
        pthread_attr_destroy(&at);
        if (rc != 0)
            break;
        pool.workers++;
    }
    if (nt > pool.workers + 1)
        nt = pool.workers + 1;
    if (nt <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    __atomic_store_n(&pool.pending, nt - 1, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.job, JOB(gen + 1, nt), __ATOMIC_RELEASE);
    for (int t = 1; t < nt; t++) {
        pthread_mutex_lock(&slots[t].mu);
        if (slots[t].sleeping)
            pthread_cond_signal(&slots[t].cv);
        pthread_mutex_unlock(&slots[t].mu);
    }
    fn(ctx, 0, nt);
    long clock = wait_start();
    for (int spins = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0; spins++)
        relax(spins, &clock);
}

#if NN_HAVE_AVX512_KERNEL
/* Take the pool for an own-kernel product of this many multiply-adds (on
   all threads from PARALLEL_MIN_MACS, else on the caller); 0 when the
   kernel is not in use or another thread has the pool. */
static int kernel_acquire(long macs)
{
    if (!use_avx512 || __atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE))
        return 0;
    pool_job_threads = macs >= PARALLEL_MIN_MACS ? nn_num_threads() : 1;
    return 1;
}

static void kernel_release(void)
{
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
}
#endif

void nn_linear_forward(int rows, int in, int out, const float *x, const float *w,
                       const float *b, int act, float slope, float *y)
{
    pthread_once(&once, setup);
    if (rows <= 0 || out <= 0)
        return;
#if NN_HAVE_AVX512_KERNEL
    if (in > 0 && kernel_acquire((long)rows * out * in)) {
        nn__linear_avx512(rows, in, out, x, w, b, act, slope, y);
        kernel_release();
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

void nn_sgemm_relu_mask(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                        float *c, int ldc, const float *mask, int ldm)
{
    pthread_once(&once, setup);
#if NN_HAVE_AVX512_KERNEL
    if (m > 0 && n > 0 && k > 0 && kernel_acquire((long)m * n * k)) {
        nn__sgemm_relu_avx512(m, n, k, a, lda, b, ldb, c, ldc, mask, ldm);
        kernel_release();
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
    pthread_once(&once, setup);
#if NN_HAVE_AVX512_KERNEL
    if (kernel_acquire(PARALLEL_MIN_MACS)) {
        if (pool_job_threads > max_threads)
            pool_job_threads = max_threads < 1 ? 1 : max_threads;
        return pool_job_threads;
    }
#else
    (void)max_threads;
#endif
    return 0;
}

void nn__pool_give(void)
{
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
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
    if (kernel_acquire((long)m * n * (k > 0 ? k : 1))) {
        nn__sgemm_avx512(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate ? 1.0f : 0.0f,
                         c, ldc);
        kernel_release();
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                accumulate ? 1.0f : 0.0f, c, ldc);
}
