/* nngen-rt: the thread pool (-Dthreads=enabled; pool_serial.c otherwise),
 * on which nngen's own kernel (gemm_avx512.c), conv.c, act.c and
 * nn_parallel run their shares.
 *
 * Up to nn_num_threads() - 1 worker threads, started on first use and never
 * stopped.  A job is published in one word (generation and thread count);
 * its participants spin on it for up to SPIN_NS after their last job (the
 * generated code calls nn_sgemm several times per train step, tens of
 * microseconds apart), then sleep on their own condition variable, so a job
 * wakes only the workers it uses.  The caller runs share 0 itself, then
 * every share no worker has started yet (each share is claimed once, by
 * its worker or by the caller: see claim()), and then waits only for the
 * shares being run.  So a worker that is late -- asleep, descheduled, or
 * sharing its core with another process or another library's spinning
 * threads -- costs at most the time of the work it would have done, not
 * the time it takes to get a core (measured on a 2-core VM: a 64x256x256
 * product took 470 us instead of 35 us per call whenever the worker shared
 * a core with the caller, which waited for it).  Every wait loop turns from pause
 * to sched_yield() after YIELD_NS (see relax()).  After fork() the child
 * starts with no workers (pthread_atfork).  The pool is held by one caller
 * at a time (a try-lock: nn__pool_hold); a caller that finds it held works
 * alone.
 *
 * Placement (Linux): each worker runs on a CPU of its own.  Before it
 * publishes a job, the caller gives every worker of the job that has no
 * CPU yet, or whose CPU is the caller's own, one of the process's CPUs
 * that neither the caller nor another worker of the job has (the worker's
 * affinity set to that one CPU; the kernel moves it at once).  Without
 * this, two threads often run on one CPU while the other idles: the
 * kernel starts a new thread, and often wakes a sleeping one, on the CPU
 * of the thread that started or woke it, and takes tens of milliseconds
 * to spread busy threads out -- while the caller, which never waits for a
 * share nobody has started, runs both shares one after the other.
 * Measured on a 2-core VM: in a fresh process 56 of 56 calls of a
 * 256x784x64 product ran both shares on one CPU, 183 us per call instead
 * of 116, and the kernel choice (gemm.c), which times the first calls,
 * saw nngen's kernel at one thread's speed.  NNGEN_PIN=0 in the
 * environment turns placement off.  With fewer free CPUs than workers the
 * rest are left where the kernel puts them.
 *
 * POSIX: pthreads, sched_yield, clock_gettime, sysconf; GCC's __atomic
 * builtins; on Linux also sched_getcpu, sched_getaffinity and
 * pthread_setaffinity_np.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, cpu_set_t, pthread_setaffinity_np */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_NS 500000L

#if defined(__linux__) && defined(CPU_SET)
#define POOL_PLACE 1
#else
#define POOL_PLACE 0
#endif

/* The current job is published in one word, (generation << 8) | nt, so a
   worker reads the generation and the thread count of the same job; fn and
   ctx are read only by the job's participants (workers 1 .. nt-1), whom the
   caller waits for before it writes the next job. */
#define JOB(gen, nt) (((unsigned long long)(gen) << 8) | (unsigned long long)(nt))
#define JOB_GEN(j) ((j) >> 8)
#define JOB_NT(j) ((int)((j)&0xff))

static struct {
    unsigned long long job;  /* atomic */
    unsigned long long claims; /* atomic: (generation << 16) | the shares of
                                  that job not yet claimed (bit t: share t) */
    int pending;             /* atomic: shares 1 .. nt-1 yet to finish */
    int workers;             /* started; only the pool holder changes it */
    nn_task_fn fn;
    void *ctx;
} pool __attribute__((aligned(64))); /* a cache line of its own: the workers
                                        spin on it, and nothing else the
                                        caller writes may share it */

/* Each worker sleeps on its own condition variable, so a job wakes only
   its participants. */
static struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleeping;            /* under mu */
    unsigned long long start_gen;  /* the generation current when started */
    pthread_t th;
    int cpu;                 /* the CPU it is pinned to; -1: none (only the
                                pool holder reads and writes it) */
} slots[NN_MAX_THREADS];

/* Placement (see the top): on unless NNGEN_PIN=0; off for good once
   pthread_setaffinity_np fails (a CPU set the process may not use). */
static int place_on;
#if POOL_PLACE
static cpu_set_t place_cpus;  /* where workers may go: the first caller's CPUs */
static int place_known;

/* A CPU of place_cpus that is not `avoid` and not the CPU of a worker
   1 .. nt-1 other than self; -1 when there is none. */
static int free_cpu(int avoid, int self, int nt)
{
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &place_cpus) || cpu == avoid)
            continue;
        int taken = 0;
        for (int t = 1; t < nt && !taken; t++)
            taken = t != self && slots[t].cpu == cpu;
        if (!taken)
            return cpu;
    }
    return -1;
}

/* The pool holder, before publishing a job of nt threads: every worker of
   it that has no CPU, or has the caller's, moves to a free one. */
static void place(int nt)
{
    if (!place_on)
        return;
    if (!place_known) {
        CPU_ZERO(&place_cpus);
        if (sched_getaffinity(0, sizeof place_cpus, &place_cpus) != 0) {
            place_on = 0;
            return;
        }
        place_known = 1;
    }
    int here = sched_getcpu();
    for (int t = 1; t < nt; t++) {
        if (slots[t].cpu >= 0 && slots[t].cpu != here)
            continue;
        int cpu = free_cpu(here, t, nt);
        if (cpu < 0)
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (pthread_setaffinity_np(slots[t].th, sizeof one, &one) != 0) {
            place_on = 0;
            return;
        }
        slots[t].cpu = cpu;
    }
}
#else
static void place(int nt)
{
    (void)nt;
}
#endif

static int held;          /* atomic try-lock: 1 while a caller owns the pool */
static int threads_set;   /* atomic: nn_set_num_threads value, 0 = default */
static int pool_job_threads;  /* the holder's job size */
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

/* Claims share t of the job of generation gen: 1 when this caller is the
   one to run it, 0 when someone else has it or the job is over (a newer
   generation).  Each share of a job is claimed exactly once. */
static int claim(unsigned long long gen, int t)
{
    unsigned long long w = __atomic_load_n(&pool.claims, __ATOMIC_ACQUIRE);
    unsigned long long bit = 1ull << t;
    while ((w >> 16) == (gen & 0xffffffffffffull) && (w & bit))
        if (__atomic_compare_exchange_n(&pool.claims, &w, w & ~bit, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 1;
    return 0;
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
        if (spin && claim(seen, tid)) {
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
        slots[t].cpu = -1;
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
    const char *pin = getenv("NNGEN_PIN");
    place_on = !(pin && strcmp(pin, "0") == 0);
    default_nt = default_threads();
    nn__gemm_setup();
    init_slots();
    pthread_atfork(NULL, NULL, after_fork_child);
}

void nn__setup(void)
{
    pthread_once(&once, setup);
}

void nn_set_num_threads(int n)
{
    nn__setup();
    __atomic_store_n(&threads_set, n < 1 ? 0 : n > NN_MAX_THREADS ? NN_MAX_THREADS : n,
                     __ATOMIC_RELAXED);
}

int nn_num_threads(void)
{
    nn__setup();
    int n = __atomic_load_n(&threads_set, __ATOMIC_RELAXED);
    return n ? n : default_nt;
}

int nn__pool_hold(int nt)
{
    if (__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE))
        return 0;
    pool_job_threads = nt < 1 ? 1 : nt > NN_MAX_THREADS ? NN_MAX_THREADS : nt;
    return pool_job_threads;
}

void nn__pool_give(void)
{
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
}

/* Called with the pool held. */
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
        slots[pool.workers + 1].th = th;
        slots[pool.workers + 1].cpu = -1;
        pool.workers++;
    }
    if (nt > pool.workers + 1)
        nt = pool.workers + 1;
    if (nt <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    place(nt);
    pool.fn = fn;
    pool.ctx = ctx;
    __atomic_store_n(&pool.pending, nt - 1, __ATOMIC_RELAXED);
    /* shares 1 .. nt-1 open to claims, then the job published: a worker
       that sees the job sees its claims */
    __atomic_store_n(&pool.claims,
                     (((gen + 1) & 0xffffffffffffull) << 16) | (((1ull << nt) - 1) & ~1ull),
                     __ATOMIC_RELEASE);
    __atomic_store_n(&pool.job, JOB(gen + 1, nt), __ATOMIC_RELEASE);
    for (int t = 1; t < nt; t++) {
        pthread_mutex_lock(&slots[t].mu);
        if (slots[t].sleeping)
            pthread_cond_signal(&slots[t].cv);
        pthread_mutex_unlock(&slots[t].mu);
    }
    fn(ctx, 0, nt);
    /* the shares no worker has started: here, now */
    for (int t = 1; t < nt; t++)
        if (claim(gen + 1, t)) {
            fn(ctx, t, nt);
            __atomic_sub_fetch(&pool.pending, 1, __ATOMIC_RELEASE);
        }
    long clock = wait_start();
    for (int spins = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0; spins++)
        relax(spins, &clock);
}

void nn_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    nn__setup();
    if (!nn__pool_hold(nn_num_threads())) {
        fn(ctx, 0, 1);  /* another thread has the pool */
        return;
    }
    nn__pool_run(fn, ctx);
    nn__pool_give();
}
