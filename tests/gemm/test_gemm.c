/* Unit tests of nn_sgemm, nn_sgemm_impl, nn_set_num_threads / nn_num_threads,
 * nn_parallel and nn_linear_forward (runtime/gemm.c, runtime/gemm_avx512.c,
 * runtime/gemm_avx2.c).
 *
 * Oracle: a plain double-precision triple loop over op(A) and op(B) (never
 * cblas), compared with the tolerance 1e-5 * (1 + sum_p |op(A)(i,p)| |op(B)(p,j)|
 * (+ |old C(i,j)| when accumulating)); with small-integer inputs the product
 * is exact in float and the comparison is exact.  Every call also checks:
 *   - A and B are not written (bitwise copies);
 *   - the padding of A and B (columns past the logical width when the leading
 *     dimension is larger) holds NaN, so reading it poisons the result;
 *   - C has a guard row above and below and guard columns j >= n (ldc > n),
 *     all of which must keep their bits;
 *   - accumulate = 0 starts from a C full of NaN (must be ignored),
 *     accumulate = 1 from random values (must be added).
 * A and B end exactly where an inaccessible (PROT_NONE) region begins, and
 * start after an inaccessible page with NaN in front of them, so any read past
 * either end faults or poisons the result, sanitizer or not (masked AVX-512
 * and AVX2 loads are invisible to AddressSanitizer but not to page
 * protection).  C is
 * allocated to its exact extent for AddressSanitizer.
 *
 * The same program runs once per mode (tests/gemm/meson.build): as is
 * (auto: per class nngen's kernel -- AVX-512, or AVX2 on a CPU without it --
 * or cblas), with NNGEN_GEMM=nngen, cblas and portable, and with
 * NNGEN_GEMM=nngen NNGEN_ISA=avx2 (the AVX2 kernel, also on an AVX-512
 * CPU).  It prints which implementation it checks.
 *
 * Run with CK_FORK=no (one process: the pool persists from test to test, and
 * LeakSanitizer sees everything); the fork tests fork their own children. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* test_pool_placement: sched_getcpu, cpu_set_t */
#include <sched.h>
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nngen/rt.h>

#include "fence.h"

/* set by tests/gemm/meson.build when the runtime was built with the kernel */
#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif
/* and, from the runtime's options, NN_HAVE_CBLAS=0 (-Dblas=disabled: the
   generic product is the portable loops) and NN_THREADS=0 (-Dthreads=
   disabled: one thread; tests/deploy builds this program so against the
   smallest runtime) */
#ifndef NN_HAVE_CBLAS
#define NN_HAVE_CBLAS 1
#endif
#ifndef NN_THREADS
#define NN_THREADS 1
#endif
#define GENERIC_IMPL (NN_HAVE_CBLAS ? "cblas" : "portable")

#define GUARD (-7777.5f)
#define MAXT 64 /* more nn_parallel shares than any sane pool */

/* ------------------------------------------------------------------ */
/* random numbers (per caller state, so threads do not share one)       */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t next(uint64_t *s)
{
    *s = mix(*s);
    return *s;
}

/* exact: an integer in [-4, 4] (products and sums stay exact in float);
   else uniform in [-1, 1) */
static float rnd(uint64_t *s, int exact)
{
    uint64_t r = next(s);
    if (exact)
        return (float)((int)(r % 9u) - 4);
    return (float)((double)(r >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static uint64_t seed_of(int a, int b, int c, int d, int e, int f)
{
    uint64_t s = 12345;
    s = mix(s ^ (uint64_t)a);
    s = mix(s ^ (uint64_t)b);
    s = mix(s ^ (uint64_t)c);
    s = mix(s ^ (uint64_t)d);
    s = mix(s ^ (uint64_t)e);
    return mix(s ^ (uint64_t)f);
}

/* ------------------------------------------------------------------ */
/* one product: operands, oracle, checks                                */

typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc, exact;
    int m_arg, n_arg, k_arg;  /* passed to nn_sgemm: m, n, k unless a test says */
    float *a, *b, *cbase, *c; /* c = cbase + ldc: one guard row above */
    void *abase, *bbase;      /* fence_alloc mappings of a and b */
    size_t alen, blen;
    float *acopy, *bcopy, *cold;
    size_t na, nb, nc;
    double *ref, *bound; /* m x n: op(A) op(B), sum of |op(A)| |op(B)| */
    uint64_t rng;
} prob;

/* floats spanned by a rows x cols matrix with leading dimension ld (at
   least one, so that there is always a valid pointer) */
static size_t span(int rows, int cols, int ld)
{
    return rows > 0 && cols > 0 ? (size_t)(rows - 1) * (size_t)ld + (size_t)cols : 1;
}

static float *fill_matrix(int rows, int cols, int ld, size_t *count, uint64_t *s, int exact,
                          void **base, size_t *len)
{
    size_t cnt = span(rows, cols, ld);
    /* the fence covers two rows more, so reading "the next row" faults */
    float *x = fence_alloc(cnt, (size_t)ld * sizeof(float) * 2, base, len);
    if (!x)
        return NULL;
    for (size_t q = 0; q < cnt; q++)
        x[q] = NAN; /* padding: must never be read */
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            x[(size_t)r * ld + c] = rnd(s, exact);
    *count = cnt;
    return x;
}

static void prob_free(prob *p)
{
    fence_free(p->abase, p->alen);
    fence_free(p->bbase, p->blen);
    free(p->cbase);
    free(p->acopy);
    free(p->bcopy);
    free(p->cold);
    free(p->ref);
    free(p->bound);
    memset(p, 0, sizeof *p);
}

/* xa, xb, xc: how much larger than needed lda, ldb, ldc are.  Returns 0, or
   -1 when out of memory. */
static int prob_init(prob *p, int ta, int tb, int m, int n, int k, int xa, int xb, int xc,
                     int exact, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->ta = ta;
    p->tb = tb;
    p->m = m;
    p->n = n;
    p->k = k;
    p->exact = exact;
    p->m_arg = m;
    p->n_arg = n;
    p->k_arg = k;
    p->rng = seed;
    int ar = ta ? k : m, ac = ta ? m : k; /* A as stored */
    int br = tb ? n : k, bc = tb ? k : n; /* B as stored */
    p->lda = (ac > 1 ? ac : 1) + xa;
    p->ldb = (bc > 1 ? bc : 1) + xb;
    p->ldc = (n > 1 ? n : 1) + xc;
    p->a = fill_matrix(ar, ac, p->lda, &p->na, &p->rng, exact, &p->abase, &p->alen);
    p->b = fill_matrix(br, bc, p->ldb, &p->nb, &p->rng, exact, &p->bbase, &p->blen);
    p->nc = (size_t)(m + 2) * (size_t)p->ldc;
    p->cbase = malloc(p->nc * sizeof(float));
    p->cold = malloc(p->nc * sizeof(float));
    p->acopy = malloc(p->na * sizeof(float));
    p->bcopy = malloc(p->nb * sizeof(float));
    size_t mn = (size_t)(m > 0 ? m : 1) * (size_t)(n > 0 ? n : 1);
    p->ref = calloc(mn, sizeof(double));
    p->bound = calloc(mn, sizeof(double));
    double *oa = malloc((size_t)(m > 0 ? m : 1) * (size_t)(k > 0 ? k : 1) * sizeof(double));
    double *ob = malloc((size_t)(k > 0 ? k : 1) * (size_t)(n > 0 ? n : 1) * sizeof(double));
    double *aa = malloc((size_t)(k > 0 ? k : 1) * (size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!p->a || !p->b || !p->cbase || !p->cold || !p->acopy || !p->bcopy || !p->ref ||
        !p->bound || !oa || !ob || !aa) {
        free(oa);
        free(ob);
        free(aa);
        prob_free(p);
        return -1;
    }
    p->c = p->cbase + p->ldc;
    memcpy(p->acopy, p->a, p->na * sizeof(float));
    memcpy(p->bcopy, p->b, p->nb * sizeof(float));

    /* the oracle: op(A) (m x k) and op(B) (k x n) in double, row-major,
       then ref(i, j) = sum_p op(A)(i, p) op(B)(p, j) */
    for (int i = 0; i < m; i++)
        for (int q = 0; q < k; q++)
            oa[(size_t)i * k + q] =
                ta ? p->a[(size_t)q * p->lda + i] : p->a[(size_t)i * p->lda + q];
    for (int q = 0; q < k; q++)
        for (int j = 0; j < n; j++) {
            ob[(size_t)q * n + j] =
                tb ? p->b[(size_t)j * p->ldb + q] : p->b[(size_t)q * p->ldb + j];
            aa[(size_t)q * n + j] = fabs(ob[(size_t)q * n + j]);
        }
    for (int i = 0; i < m; i++) {
        double *r = p->ref + (size_t)i * n, *s = p->bound + (size_t)i * n;
        for (int q = 0; q < k; q++) {
            double x = oa[(size_t)i * k + q], ax = fabs(x);
            const double *y = ob + (size_t)q * n, *ay = aa + (size_t)q * n;
            for (int j = 0; j < n; j++) {
                r[j] += x * y[j];
                s[j] += ax * ay[j];
            }
        }
    }
    free(oa);
    free(ob);
    free(aa);
    return 0;
}

/* Calls nn_sgemm on p (C filled afresh) and checks everything.  Returns 0,
   or 1 with a message in err.  Thread-safe (touches only p). */
static int prob_run(prob *p, int acc, char *err, size_t errlen)
{
    int m = p->m, n = p->n, ldc = p->ldc;
    for (size_t q = 0; q < p->nc; q++)
        p->cbase[q] = GUARD;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            p->c[(size_t)i * ldc + j] = acc ? rnd(&p->rng, p->exact) : NAN;
    memcpy(p->cold, p->cbase, p->nc * sizeof(float));

    nn_sgemm(p->ta, p->tb, p->m_arg, p->n_arg, p->k_arg, p->a, p->lda, p->b, p->ldb, acc, p->c,
             ldc);
    int none = p->m_arg <= 0 || p->n_arg <= 0; /* nothing may be written */

#define CASE_FMT "nn_sgemm(%s) ta=%d tb=%d m=%d n=%d k=%d lda=%d ldb=%d ldc=%d acc=%d threads=%d: "
#define CASE_ARGS                                                                           \
    nn_sgemm_impl(), p->ta, p->tb, p->m_arg, p->n_arg, p->k_arg, p->lda, p->ldb, ldc, acc,  \
        nn_num_threads()
    if (memcmp(p->a, p->acopy, p->na * sizeof(float)) != 0) {
        snprintf(err, errlen, CASE_FMT "A was written", CASE_ARGS);
        return 1;
    }
    if (memcmp(p->b, p->bcopy, p->nb * sizeof(float)) != 0) {
        snprintf(err, errlen, CASE_FMT "B was written", CASE_ARGS);
        return 1;
    }
    for (size_t q = 0; q < p->nc; q++) {
        long row = (long)(q / (size_t)ldc) - 1, col = (long)(q % (size_t)ldc);
        float got = p->cbase[q];
        if (none || row < 0 || row >= m || col >= n) {
            if (memcmp(&got, &p->cold[q], sizeof got) != 0) {
                snprintf(err, errlen,
                         CASE_FMT "guard at row %ld col %ld (outside the %d x %d result) "
                                  "changed to %.9g",
                         CASE_ARGS, row, col, none ? 0 : m, none ? 0 : n, (double)got);
                return 1;
            }
            continue;
        }
        size_t r = (size_t)row * (size_t)n + (size_t)col;
        double old = acc ? (double)p->cold[q] : 0.0;
        double want = p->ref[r] + old;
        double tol = p->exact ? 0.0 : 1e-5 * (1.0 + p->bound[r] + fabs(old));
        double d = fabs((double)got - want);
        if (!(d <= tol)) {
            snprintf(err, errlen, CASE_FMT "C(%ld, %ld) = %.9g, want %.9g (error %.3g, tol %.3g)",
                     CASE_ARGS, row, col, (double)got, want, d, tol);
            return 1;
        }
    }
#undef CASE_FMT
#undef CASE_ARGS
    return 0;
}

/* The case the main thread is running, for the crash handler. */
static char current_case[256];

#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer reports crashes better */
static void on_crash(int sig)
{
    static const char pre[] = "\n*** crashed (out-of-bounds access?); the last case the main "
                              "thread started: ";
    ssize_t w = write(2, pre, sizeof pre - 1);
    w = write(2, current_case, strlen(current_case));
    w = write(2, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

/* ck_assert wrappers for the main thread */
static void run_checked(prob *p, int acc)
{
    char err[512];
    snprintf(current_case, sizeof current_case,
             "nn_sgemm ta=%d tb=%d m=%d n=%d k=%d lda=%d ldb=%d ldc=%d acc=%d threads=%d", p->ta,
             p->tb, p->m, p->n, p->k, p->lda, p->ldb, p->ldc, acc, nn_num_threads());
    int bad = prob_run(p, acc, err, sizeof err);
    ck_assert_msg(!bad, "%s", err);
}

static void init_checked(prob *p, int ta, int tb, int m, int n, int k, int xa, int xb, int xc,
                         int exact)
{
    ck_assert_msg(prob_init(p, ta, tb, m, n, k, xa, xb, xc, exact,
                            seed_of(ta * 2 + tb, m, n, k, xa * 64 + xb, xc)) == 0,
                  "out of memory");
}

/* build, run with accumulate 0 and 1, free */
static void check_case(int ta, int tb, int m, int n, int k, int xa, int xb, int xc, int exact)
{
    prob p;
    init_checked(&p, ta, tb, m, n, k, xa, xb, xc, exact);
    run_checked(&p, 0);
    run_checked(&p, 1);
    prob_free(&p);
}

static const int extras[4] = {0, 1, 3, 17};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#if NN_THREADS
static int default_threads_expected(void)
{
    const char *env = getenv("NNGEN_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1)
            return v > 16 ? 16 : (int)v;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > 16 ? 16 : (int)n;
}
#endif

static void restore_threads(void)
{
    nn_set_num_threads(0);
}

/* ------------------------------------------------------------------ */
/* dispatch and thread count                                            */

/* the instruction set of nngen's kernel on this CPU: "avx512" (AVX-512F
   and FMA, unless NNGEN_ISA=avx2), "avx2" (AVX2 and FMA), or NULL */
static const char *cpu_isa(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *isa = getenv("NNGEN_ISA");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") &&
        !(isa && strcmp(isa, "avx2") == 0))
        return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2";
#endif
    return NULL;
}

/* NNGEN_GEMM as the runtime reads it: "auto" unless nngen, cblas or portable */
static const char *env_mode(void)
{
    const char *env = getenv("NNGEN_GEMM");
    if (env && (strcmp(env, "nngen") == 0 || strcmp(env, "cblas") == 0 ||
                strcmp(env, "portable") == 0))
        return env;
    return "auto";
}

static int forced_cblas(void)
{
    return strcmp(env_mode(), "cblas") == 0;
}

/* nngen's kernel can run here (built, CPU) and the mode lets it */
static int kernel_in_use(void)
{
    const char *m = env_mode();
    /* either kernel (AVX-512 or AVX2) in auto and nngen modes (gemm.c) */
    return NN_HAVE_AVX512_KERNEL && cpu_isa() &&
           (strcmp(m, "auto") == 0 || strcmp(m, "nngen") == 0);
}

/* the kernel every class runs on, or NN_GEMM_NONE when the runtime chooses
   by measurement (auto, with both nngen's kernel and the BLAS) */
static int expected_fixed(void)
{
    const char *m = env_mode();
    int generic = NN_HAVE_CBLAS ? NN_GEMM_CBLAS : NN_GEMM_PORTABLE;
    if (strcmp(m, "portable") == 0)
        return NN_GEMM_PORTABLE;
    if (!kernel_in_use())
        return generic;
    if (strcmp(m, "nngen") == 0 || !NN_HAVE_CBLAS)
        return NN_GEMM_NNGEN;
    return NN_GEMM_NONE;
}

START_TEST(test_impl)
{
    const char *impl = nn_sgemm_impl();
    ck_assert_ptr_nonnull(impl);
    const char *want = kernel_in_use() ? cpu_isa()
                       : strcmp(env_mode(), "portable") == 0 ? "portable" : GENERIC_IMPL;
    ck_assert_str_eq(impl, want);
    ck_assert_str_eq(nn_sgemm_impl(), impl); /* decided once */
    ck_assert_str_eq(nn_gemm_mode(), env_mode());
    ck_assert_str_eq(nn_gemm_kernel_name(NN_GEMM_NNGEN), "nngen");
    ck_assert_str_eq(nn_gemm_kernel_name(NN_GEMM_CBLAS), "cblas");
    ck_assert_str_eq(nn_gemm_kernel_name(NN_GEMM_PORTABLE), "portable");
    ck_assert_str_eq(nn_gemm_kernel_name(NN_GEMM_NONE), "none");
    ck_assert_str_eq(nn_gemm_kernel_name(99), "none");
}
END_TEST

#if !NN_THREADS
/* Without threads: always 1, whatever is asked; nn_parallel runs the one
   share on the caller. */
static int serial_calls;
static void serial_fn(void *ctx, int t, int nt)
{
    ck_assert_ptr_eq(ctx, &serial_calls);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(nt, 1);
    serial_calls++;
}

START_TEST(test_num_threads)
{
    ck_assert_int_eq(nn_num_threads(), 1);
    for (int t = 0; t <= 17; t++) {
        nn_set_num_threads(t);
        ck_assert_int_eq(nn_num_threads(), 1);
    }
    serial_calls = 0;
    nn_parallel(serial_fn, &serial_calls);
    ck_assert_int_eq(serial_calls, 1);
}
END_TEST
#else
START_TEST(test_num_threads)
{
    int def = default_threads_expected();
    nn_set_num_threads(0);
    ck_assert_int_eq(nn_num_threads(), def);
    for (int t = 1; t <= 16; t++) {
        nn_set_num_threads(t);
        ck_assert_int_eq(nn_num_threads(), t);
    }
    nn_set_num_threads(-5);
    ck_assert_int_eq(nn_num_threads(), def);
    nn_set_num_threads(3);
    nn_set_num_threads(0);
    ck_assert_int_eq(nn_num_threads(), def);
    /* far above the pool's size: whatever it is clamped to, it is >= 1 and
       nn_parallel / nn_sgemm keep working (test_parallel_threads) */
    nn_set_num_threads(1000);
    ck_assert_int_ge(nn_num_threads(), 1);
    nn_set_num_threads(0);
}
END_TEST
#endif

/* ------------------------------------------------------------------ */
/* shapes                                                               */

/* every m < 14 (all residues mod 6 twice), n around the vector and panel
   widths, small k */
START_TEST(test_small_shapes)
{
    static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                             31, 32, 33, 47, 48, 49, 63, 64, 65};
    static const int ks[] = {1, 2, 5, 16, 17};
    int cnt = 0;
    for (int t = 0; t < 4; t++)
        for (int m = 1; m <= 13; m++)
            for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
                for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++, cnt++)
                    check_case(t >> 1, t & 1, m, ns[in], ks[ik], extras[cnt % 4],
                               extras[(cnt / 4) % 4], extras[(cnt / 16) % 4], 0);
}
END_TEST

/* m, n = 1 .. 70 (every residue mod 6 and mod 16 and mod 64 in both
   roles: the kernel's rows are m, or n when trans_b), exact */
START_TEST(test_remainders)
{
    static const int ks[] = {1, 2, 3, 4, 7, 16, 17};
    int cnt = 0;
    for (int t = 0; t < 4; t++)
        for (int m = 1; m <= 70; m++)
            for (int n = 1; n <= 70; n++, cnt++)
                check_case(t >> 1, t & 1, m, n, ks[cnt % 7], extras[cnt % 4],
                           extras[(cnt / 3) % 4], extras[(cnt / 5) % 4], 1);
}
END_TEST

/* k across the kernel's k blocks (as many rows as fit the pack buffer for
   the block's width: 512, 682 or 1024) and the 16-row transposes of the
   packing; every other case on one thread (a thread's block width depends
   on its share of the columns) */
START_TEST(test_k_sweep)
{
    static const int ks[] = {1,   2,   3,   15,  16,  17,  31,  32,  33,  63,   64,   65,
                             127, 128, 129, 255, 256, 257, 300, 511, 512, 513,  682,  683,
                             767, 768, 769, 1023, 1024, 1025, 1500, 2047, 2048, 2049};
    static const int ks_big[] = {255, 256, 257, 511, 512, 513, 682, 683, 1023, 1024, 1025, 2049};
    static const int mn[][2] = {{1, 1}, {6, 64}, {7, 65}, {13, 17}};
    static const int mn_big[][2] = {{17, 130}, {130, 17}, {6, 256}, {256, 6}};
    int cnt = 0;
    for (int t = 0; t < 4; t++) {
        for (size_t s = 0; s < sizeof mn / sizeof mn[0]; s++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++, cnt++) {
                nn_set_num_threads(cnt & 1);
                check_case(t >> 1, t & 1, mn[s][0], mn[s][1], ks[ik], extras[cnt % 4],
                           extras[(cnt / 2) % 4], extras[(cnt / 3) % 4], cnt % 5 == 0);
            }
        for (size_t s = 0; s < sizeof mn_big / sizeof mn_big[0]; s++)
            for (size_t ik = 0; ik < sizeof ks_big / sizeof ks_big[0]; ik++, cnt++) {
                nn_set_num_threads(cnt & 1);
                check_case(t >> 1, t & 1, mn_big[s][0], mn_big[s][1], ks_big[ik],
                           extras[cnt % 4], extras[(cnt / 2) % 4], extras[(cnt / 3) % 4],
                           cnt % 5 == 0);
            }
    }
    nn_set_num_threads(0);
}
END_TEST

/* k <= 0: C = 0 (from NaN) or C unchanged; m <= 0 or n <= 0: nothing
   written (rt.h) */
START_TEST(test_degenerate)
{
    static const int mn[][2] = {{1, 1}, {5, 3}, {6, 64}, {7, 65}, {13, 130}, {300, 70},
                                {70, 300}};
    for (int t = 0; t < 4; t++) {
        for (size_t s = 0; s < sizeof mn / sizeof mn[0]; s++)
            for (int x = 0; x < 2; x++)
                check_case(t >> 1, t & 1, mn[s][0], mn[s][1], 0, 3 * x, 2 * x, 5 * x, 1);
        check_case(t >> 1, t & 1, 0, 5, 7, 0, 0, 0, 1);
        check_case(t >> 1, t & 1, 5, 0, 7, 0, 0, 2, 1);
        check_case(t >> 1, t & 1, 0, 0, 7, 0, 0, 0, 1);
        check_case(t >> 1, t & 1, 0, 0, 0, 0, 0, 0, 1);
        /* negative sizes, on operands of a valid 7 x 9 x 5 (or k = 0) call */
        static const int neg[][3] = {{-1, 9, 5}, {7, -3, 5}, {-2, -2, 5}, {7, 9, -4}, {-1, 9, -1}};
        for (size_t q = 0; q < sizeof neg / sizeof neg[0]; q++) {
            prob p;
            init_checked(&p, t >> 1, t & 1, 7, 9, neg[q][2] < 0 ? 0 : 5, 1, 0, 2, 1);
            p.m_arg = neg[q][0];
            p.n_arg = neg[q][1];
            p.k_arg = neg[q][2];
            run_checked(&p, 0);
            run_checked(&p, 1);
            prob_free(&p);
        }
    }
}
END_TEST

/* a few hundred rows and columns: the 256-column packing blocks in both
   roles, threads split along either dimension, 1 to 3 threads */
START_TEST(test_medium_shapes)
{
    static const int shapes[][3] = {
        {300, 257, 129}, {257, 300, 255}, {255, 513, 64},  {64, 300, 513}, {199, 67, 300},
        {67, 199, 300},  {384, 384, 65},  {1, 700, 300},   {700, 1, 300},  {5, 1000, 100},
        {1000, 5, 100},  {128, 256, 256}, {97, 129, 257},
    };
    int cnt = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++, cnt++) {
            prob p;
            init_checked(&p, t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2],
                         extras[cnt % 4], extras[(cnt + 1) % 4], extras[(cnt + 2) % 4], 0);
            for (int th = 1; th <= 3; th++) {
                nn_set_num_threads(th);
                run_checked(&p, (th + cnt) & 1);
            }
            nn_set_num_threads(0);
            run_checked(&p, 0);
            prob_free(&p);
        }
}
END_TEST

/* the shapes of an MNIST MLP step, and one large product, all trans
   combinations, 1 to 3 threads */
START_TEST(test_large_shapes)
{
    static const int shapes[][3] = {
        {64, 256, 784}, {256, 784, 64}, {64, 784, 256}, {256, 1024, 1024},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            prob p;
            init_checked(&p, t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2],
                         (int)s & 1, 0, t == 3 ? 3 : 0, 0);
            for (int th = 1; th <= 3; th++) {
                nn_set_num_threads(th);
                run_checked(&p, th == 2);
            }
            nn_set_num_threads(0);
            prob_free(&p);
        }
}
END_TEST

/* products just above the size the pool is used for, with fewer row tiles
   or column panels than threads (some threads get nothing to do) */
START_TEST(test_thread_edges)
{
    static const int shapes[][3] = {
        {7, 3, 12500}, {3, 7, 12500}, {3, 65, 1400}, {65, 3, 1400},
        {3, 130, 700}, {130, 3, 700}, {12, 128, 171}, {128, 12, 171},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            prob p;
            init_checked(&p, t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], 1, 2,
                         1, 0);
            for (int th = 1; th <= 5; th++) {
                nn_set_num_threads(th);
                run_checked(&p, th & 1);
            }
            nn_set_num_threads(0);
            prob_free(&p);
        }
}
END_TEST

/* ------------------------------------------------------------------ */
/* nn_linear_forward: y = act(x w^T + b)                                */

/* One call on fresh operands (x, w, b fenced like A and B; y between
   guards and full of NaN beforehand); 0, or 1 with a message. */
static int linear_case(int rows, int in, int out, int has_bias, int act, float slope,
                       uint64_t seed, char *err, size_t errlen)
{
    enum { G = 32 };
    uint64_t rng = seed;
    size_t nx, nw, nb, ny = (size_t)rows * (size_t)out;
    void *xb = NULL, *wb = NULL, *bb = NULL;
    size_t xl = 0, wl = 0, bl = 0;
    int rc = 1;
    float *x = fill_matrix(rows, in, in > 1 ? in : 1, &nx, &rng, 0, &xb, &xl);
    float *w = fill_matrix(out, in, in > 1 ? in : 1, &nw, &rng, 0, &wb, &wl);
    float *b = has_bias ? fill_matrix(1, out, out, &nb, &rng, 0, &bb, &bl) : NULL;
    float *ybase = malloc((ny + 2 * G) * sizeof(float));
    float *xc = malloc(nx * sizeof(float)), *wc = malloc(nw * sizeof(float));
    if (!x || !w || (has_bias && !b) || !ybase || !xc || !wc) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    memcpy(xc, x, nx * sizeof(float));
    memcpy(wc, w, nw * sizeof(float));
    float *y = ybase + G;
    for (size_t q = 0; q < ny + 2 * G; q++)
        ybase[q] = GUARD;
    for (size_t q = 0; q < ny; q++)
        y[q] = NAN; /* y is output only */

    nn_linear_forward(rows, in, out, x, w, b, act, slope, y);

#define LIN_FMT "nn_linear_forward(%s) rows=%d in=%d out=%d bias=%d act=%d slope=%g threads=%d: "
#define LIN_ARGS nn_sgemm_impl(), rows, in, out, has_bias, act, (double)slope, nn_num_threads()
    if (memcmp(x, xc, nx * sizeof(float)) != 0 || memcmp(w, wc, nw * sizeof(float)) != 0) {
        snprintf(err, errlen, LIN_FMT "x or w was written", LIN_ARGS);
        goto done;
    }
    for (int g = 0; g < G; g++)
        if (ybase[g] != GUARD || y[ny + (size_t)g] != GUARD) {
            snprintf(err, errlen, LIN_FMT "guard %s y written", LIN_ARGS,
                     ybase[g] != GUARD ? "before" : "after");
            goto done;
        }
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double sum = b ? b[o] : 0.0, bound = b ? fabs(b[o]) : 0.0;
            for (int i = 0; i < in; i++) {
                double xv = x[(size_t)r * in + i], wv = w[(size_t)o * in + i];
                sum += xv * wv;
                bound += fabs(xv * wv);
            }
            double want = sum;
            if (act == NN_ACT_RELU)
                want = sum > 0 ? sum : 0;
            else if (act == NN_ACT_LEAKY_RELU)
                want = sum > 0 ? sum : slope * sum;
            double tol = 1e-5 * (1.0 + bound);
            double got = y[(size_t)r * out + o], d = fabs(got - want);
            if (!(d <= tol)) {
                snprintf(err, errlen, LIN_FMT "y(%d, %d) = %.9g, want %.9g (error %.3g, tol %.3g)",
                         LIN_ARGS, r, o, got, want, d, tol);
                goto done;
            }
        }
#undef LIN_FMT
#undef LIN_ARGS
    rc = 0;
done:
    fence_free(xb, xl);
    fence_free(wb, wl);
    fence_free(bb, bl);
    free(ybase);
    free(xc);
    free(wc);
    return rc;
}

static void linear_checked(int rows, int in, int out, int has_bias, int act, float slope)
{
    char err[512];
    snprintf(current_case, sizeof current_case,
             "nn_linear_forward rows=%d in=%d out=%d bias=%d act=%d threads=%d", rows, in, out,
             has_bias, act, nn_num_threads());
    int bad = linear_case(rows, in, out, has_bias, act, slope,
                          seed_of(rows, in, out, has_bias, act, 7), err, sizeof err);
    ck_assert_msg(!bad, "%s", err);
}

/* every row count mod 6 and output count mod 64 (the outputs are the
   kernel's rows here), with and without bias, each activation */
START_TEST(test_linear_small)
{
    static const int outs[] = {1, 2, 5, 6, 7, 12, 13, 16, 17, 31, 64, 65, 100};
    static const int ins[] = {0, 1, 5, 17, 300};
    static const float slopes[] = {0.01f, 0.2f, -0.5f};
    int cnt = 0;
    for (int rows = 1; rows <= 13; rows++)
        for (size_t io = 0; io < sizeof outs / sizeof outs[0]; io++)
            for (size_t ii = 0; ii < sizeof ins / sizeof ins[0]; ii++, cnt++)
                linear_checked(rows, ins[ii], outs[io], cnt % 4 != 3, cnt % 3, slopes[cnt % 3]);
    for (int rows = 60; rows <= 70; rows++)
        for (int out = 1; out <= 70; out += 3, cnt++)
            linear_checked(rows, 9, out, cnt & 1, cnt % 3, 0.1f);
}
END_TEST

/* layer-sized shapes, 1 to 3 threads (the bias follows each thread's
   share of the outputs) */
START_TEST(test_linear_large)
{
    static const int shapes[][3] = {
        {64, 784, 256}, {64, 256, 10}, {200, 300, 257}, {7, 12500, 3}, {3, 700, 130},
        {130, 700, 3},  {1, 1000, 1000},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int th = 1; th <= 3; th++) {
            nn_set_num_threads(th);
            linear_checked(shapes[s][0], shapes[s][1], shapes[s][2], th != 3, (int)(s + th) % 3,
                           0.125f);
        }
    nn_set_num_threads(0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* nn_sgemm_relu_mask: c = (a b) where mask > 0, else 0                 */

static int relu_mask_case(int m, int n, int k, int ldc, int ldm, int threads, uint64_t seed,
                          char *err, size_t errlen)
{
    enum { G = 32 };
    uint64_t rng = seed;
    size_t na, nb, nmask = (size_t)m * (size_t)ldm, nc = (size_t)m * (size_t)ldc;
    void *abase = NULL, *bbase = NULL;
    size_t al = 0, bl = 0;
    int rc = 1;
    float *a = fill_matrix(m, k, k > 1 ? k : 1, &na, &rng, 0, &abase, &al);
    float *b = fill_matrix(k, n, n, &nb, &rng, 0, &bbase, &bl);
    float *mask = malloc(nmask * sizeof(float));
    float *cbase = malloc((nc + 2 * G) * sizeof(float));
    if (!a || !b || !mask || !cbase) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* the mask: positive, zero, negative, -0.0 and NaN (only > 0 passes) */
    for (size_t q = 0; q < nmask; q++) {
        uint64_t r = next(&rng) % 8;
        mask[q] = r < 4 ? 0.5f + (float)r : r == 4 ? 0.0f : r == 5 ? -0.0f : r == 6 ? -1.0f : NAN;
    }
    float *c = cbase + G;
    for (size_t q = 0; q < nc + 2 * G; q++)
        cbase[q] = GUARD;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = NAN; /* output only */
    nn_set_num_threads(threads);
    nn_sgemm_relu_mask(m, n, k, a, k > 1 ? k : 1, b, n, c, ldc, mask, ldm);
    nn_set_num_threads(0);
#define RM_FMT "nn_sgemm_relu_mask(%s) m=%d n=%d k=%d ldc=%d ldm=%d threads=%d: "
#define RM_ARGS nn_sgemm_impl(), m, n, k, ldc, ldm, threads
    for (int g = 0; g < G; g++)
        if (cbase[g] != GUARD || c[nc + (size_t)g] != GUARD) {
            snprintf(err, errlen, RM_FMT "a guard around c was written", RM_ARGS);
            goto done;
        }
    for (int i = 0; i < m; i++) {
        for (int j = n; j < ldc; j++)
            if (c[(size_t)i * ldc + j] != GUARD) {
                snprintf(err, errlen, RM_FMT "c(%d, %d) past n was written", RM_ARGS, i, j);
                goto done;
            }
        for (int j = 0; j < n; j++) {
            double sum = 0.0, bound = 0.0;
            for (int p = 0; p < k; p++) {
                double t = (double)a[(size_t)i * (k > 1 ? k : 1) + p] * b[(size_t)p * n + j];
                sum += t;
                bound += fabs(t);
            }
            float mv = mask[(size_t)i * ldm + j];
            double want = mv > 0.0f ? sum : 0.0;
            double got = c[(size_t)i * ldc + j], d = fabs(got - want);
            if (!(d <= 1e-5 * (1.0 + bound)) || (!(mv > 0.0f) && (got != 0.0 || signbit(got)))) {
                snprintf(err, errlen, RM_FMT "c(%d, %d) = %.9g, want %.9g (mask %g)", RM_ARGS, i,
                         j, got, want, (double)mv);
                goto done;
            }
        }
    }
#undef RM_FMT
#undef RM_ARGS
    rc = 0;
done:
    fence_free(abase, al);
    fence_free(bbase, bl);
    free(mask);
    free(cbase);
    return rc;
}

/* masked-out elements are +0.0 (as the generated ReLU backward writes),
   every tile remainder, leading dimensions larger than n, 1-3 threads */
START_TEST(test_relu_mask)
{
    static const int shapes[][3] = {{1, 1, 1},   {5, 17, 3},   {6, 64, 10},  {7, 65, 33},
                                    {13, 100, 1}, {64, 784, 256}, {64, 256, 10}, {8, 40, 24},
                                    {33, 130, 300}, {4, 16, 0}};
    char err[512];
    int cnt = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int th = 1; th <= 3; th++, cnt++) {
            int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            int ldc = n + extras[cnt % 4], ldm = n + extras[(cnt + 1) % 4];
            snprintf(current_case, sizeof current_case, "nn_sgemm_relu_mask m=%d n=%d k=%d", m, n,
                     k);
            int bad = relu_mask_case(m, n, k, ldc, ldm, th, seed_of(m, n, k, ldc, ldm, th), err,
                                     sizeof err);
            ck_assert_msg(!bad, "%s", err);
        }
}
END_TEST

/* ------------------------------------------------------------------ */
/* nn_parallel                                                          */

typedef struct {
    pthread_t caller;
    long delay_us;    /* shares t > 0 sleep this long before finishing */
    long delay0_us;   /* share 0 sleeps this long before finishing */
    int count[MAXT];  /* atomic: runs of share t */
    int nt_of[MAXT];
    int done[MAXT];
    pthread_t who[MAXT];
    int bad;          /* atomic: calls with t or nt out of range */
} par_ctx;

static void par_fn(void *vctx, int t, int nt)
{
    par_ctx *x = vctx;
    if (t < 0 || t >= nt || nt > MAXT) {
        __atomic_add_fetch(&x->bad, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_add_fetch(&x->count[t], 1, __ATOMIC_RELAXED);
    x->nt_of[t] = nt;
    x->who[t] = pthread_self();
    if (t > 0 && x->delay_us > 0)
        sleep_us(x->delay_us);
    if (t == 0 && x->delay0_us > 0)
        sleep_us(x->delay0_us);
    x->done[t] = 1;
}

/* nn_parallel once; 0 when every share ran once, t = 0 on this thread, all
   done on return; *nt_out = nt.  With distinct, no thread but the caller
   may have run two shares (the caller runs share 0 and every share no
   worker had started when it was done with its own: pool_threads.c).
   *spread (when not NULL): 1 when the nt shares ran on nt distinct threads;
   *stolen: 1 when a share t > 0 ran on the caller. */
static int par_check2(long delay_us, long delay0_us, int distinct, int *nt_out, int *spread,
                      int *stolen, char *err, size_t errlen)
{
    par_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    x->caller = pthread_self();
    x->delay_us = delay_us;
    x->delay0_us = delay0_us;
    nn_parallel(par_fn, x);
    int nt = x->nt_of[0], rc = 1;
    *nt_out = nt;
    if (x->bad)
        snprintf(err, errlen, "nn_parallel: %d calls with t or nt out of range", x->bad);
    else if (x->count[0] != 1)
        snprintf(err, errlen, "nn_parallel: share 0 ran %d times", x->count[0]);
    else if (nt < 1)
        snprintf(err, errlen, "nn_parallel: nt = %d", nt);
    else if (!pthread_equal(x->who[0], x->caller))
        snprintf(err, errlen, "nn_parallel: share 0 did not run on the calling thread");
    else {
        rc = 0;
        for (int t = 0; t < MAXT && !rc; t++) {
            int want = t < nt;
            if (x->count[t] != want) {
                snprintf(err, errlen, "nn_parallel (nt = %d): share %d ran %d times", nt, t,
                         x->count[t]);
                rc = 1;
            } else if (want && x->nt_of[t] != nt) {
                snprintf(err, errlen, "nn_parallel: share %d got nt = %d, share 0 nt = %d", t,
                         x->nt_of[t], nt);
                rc = 1;
            } else if (want && !x->done[t]) {
                snprintf(err, errlen, "nn_parallel (nt = %d) returned before share %d finished",
                         nt, t);
                rc = 1;
            }
            for (int u = 0; u < t && want && distinct && !rc; u++)
                if (pthread_equal(x->who[u], x->who[t]) && !pthread_equal(x->who[t], x->caller)) {
                    snprintf(err, errlen, "nn_parallel: shares %d and %d ran on the same thread",
                             u, t);
                    rc = 1;
                }
        }
    }
    if (!rc && spread) {
        *spread = 1;
        for (int t = 1; t < nt; t++)
            for (int u = 0; u < t; u++)
                if (pthread_equal(x->who[u], x->who[t]))
                    *spread = 0;
    }
    if (!rc && stolen) {
        *stolen = 0;
        for (int t = 1; t < nt; t++)
            if (pthread_equal(x->who[t], x->caller))
                *stolen = 1;
    }
    free(x);
    return rc;
}

static int par_check(long delay_us, int distinct, int *nt_out, char *err, size_t errlen)
{
    return par_check2(delay_us, 0, distinct, nt_out, NULL, NULL, err, errlen);
}

static void parallel_counts(const int *counts, size_t ncounts)
{
    char err[256];
    for (size_t i = 0; i < ncounts; i++) {
        nn_set_num_threads(counts[i]);
        for (int rep = 0; rep < 3; rep++) {
            int nt;
            ck_assert_msg(par_check(rep == 0 ? 2000 : 0, 1, &nt, err, sizeof err) == 0,
                          "threads %d: %s", counts[i], err);
            ck_assert_msg(nt == nn_num_threads(), "nn_parallel nt = %d, nn_num_threads() = %d",
                          nt, nn_num_threads());
        }
        /* and the pool still multiplies correctly with this many threads */
        prob p;
        init_checked(&p, (int)i & 1, 1, 130, 200, 150, 0, 0, 1, 0);
        run_checked(&p, (int)(i >> 1) & 1);
        prob_free(&p);
    }
    nn_set_num_threads(0);
}

START_TEST(test_parallel_threads)
{
    static const int counts[] = {1, 2, 3, 1, 3, 2, 0};
    parallel_counts(counts, sizeof counts / sizeof counts[0]);
}
END_TEST

#if NN_THREADS
/* More pool threads than this machine may have cores.  Last in the suite:
   a worker once started takes part in every later job (gemm.c waits for
   pool.workers, not nt - 1), even after nn_set_num_threads lowers the
   count, which makes every later nn_parallel slow on a small machine. */
START_TEST(test_parallel_wide)
{
    static const int counts[] = {4, 8, 16, 1000, 2, 5};
    parallel_counts(counts, sizeof counts / sizeof counts[0]);
}
END_TEST
#endif

/* many short jobs back to back (the workers' spin and sleep paths),
   changing the thread count, interleaved with threaded products */
START_TEST(test_parallel_many)
{
    char err[256];
    prob p;
    init_checked(&p, 1, 0, 96, 200, 150, 0, 0, 0, 0);
    for (int i = 0; i < 600; i++) {
        if (i % 100 == 0)
            nn_set_num_threads(1 + (i / 100) % 3);
        if (i % 100 == 50)
            sleep_us(1500); /* let the workers go to sleep */
        int nt;
        ck_assert_msg(par_check(0, 1, &nt, err, sizeof err) == 0, "job %d: %s", i, err);
        ck_assert_int_eq(nt, nn_num_threads());
        if (i % 20 == 0)
            run_checked(&p, i & 1);
    }
    prob_free(&p);
    nn_set_num_threads(0);
}
END_TEST

#if NN_THREADS
/* The shares really run on the workers: with share 0 slow (2 ms), each
   worker has time to claim its own; some job of up to 50 must have run on
   nt distinct threads (a pool that never hands work out fails).  And the
   caller does not wait for a worker that has not started: right after the
   workers have gone to sleep (1.5 ms idle, past their 0.5 ms spin), a job
   of instant shares is over before a worker wakes, so the caller runs the
   workers' shares itself; some job of up to 50 must show it (a pool whose
   caller waits for every worker fails). */
START_TEST(test_parallel_claims)
{
    char err[256];
    int nt, spread = 0, stolen = 0;
    nn_set_num_threads(2);
    for (int i = 0; i < 50 && !spread; i++)
        ck_assert_msg(par_check2(0, 2000, 1, &nt, &spread, NULL, err, sizeof err) == 0, "%s",
                      err);
    ck_assert_msg(spread, "in 50 jobs with a 2 ms share 0, share 1 never ran on a worker");
    for (int i = 0; i < 50 && !stolen; i++) {
        sleep_us(1500);
        ck_assert_msg(par_check2(0, 0, 1, &nt, NULL, &stolen, err, sizeof err) == 0, "%s", err);
    }
    ck_assert_msg(stolen, "in 50 jobs right after the workers slept, the caller never ran a "
                          "worker's share: it waited for them to wake");
    nn_set_num_threads(0);
}
END_TEST
#endif

#if NN_THREADS && defined(__linux__) && defined(CPU_SET)
/* Placement (pool_threads.c): a worker runs on a CPU of its own, never the
   caller's.  The caller is pinned to one CPU, then to the CPU its worker
   was on (as if the kernel had moved it there), 6 times; each time the
   next job's share 1, run by the worker (share 0 lasts 2 ms, so the
   worker claims its own), must find the worker pinned to exactly one CPU,
   not the caller's.  Every job is checked, not some: the pool moves the
   worker before it publishes the job.  With NNGEN_PIN=0 (the gemm-cblas
   run) the worker must keep the CPUs it started with; with a single CPU
   there is nowhere to go, and the worker must be left alone too. */
typedef struct {
    int cpu[2];           /* sched_getcpu() in share t */
    int pinned_to;        /* share 1: its single CPU, -1 when not pinned */
    int ncpus;            /* share 1: CPUs in its affinity */
    pthread_t who1;
} place_ctx;

static void place_fn(void *vctx, int t, int nt)
{
    place_ctx *x = vctx;
    (void)nt;
    if (t > 1)
        return;
    x->cpu[t] = sched_getcpu();
    if (t == 0) {
        sleep_us(2000);
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    x->who1 = pthread_self();
    x->ncpus = -1;
    x->pinned_to = -1;
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0) {
        x->ncpus = CPU_COUNT(&set);
        for (int c = 0; c < CPU_SETSIZE && x->ncpus == 1; c++)
            if (CPU_ISSET(c, &set))
                x->pinned_to = c;
    }
}

/* One job whose share 1 ran on a worker (up to 50 tries). */
static void place_job(place_ctx *x)
{
    for (int i = 0; i < 50; i++) {
        memset(x, 0, sizeof *x);
        nn_parallel(place_fn, x);
        if (!pthread_equal(x->who1, pthread_self()))
            return;
    }
    ck_abort_msg("in 50 jobs with a 2 ms share 0, share 1 never ran on a worker");
}

static void pin_self(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
}

START_TEST(test_pool_placement)
{
    cpu_set_t mine;
    CPU_ZERO(&mine);
    ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
    int ncpu = CPU_COUNT(&mine), first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &mine))
            first = c;
    const char *pin = getenv("NNGEN_PIN");
    int off = pin && strcmp(pin, "0") == 0;
    nn_set_num_threads(2);
    place_ctx x;
    if (off || ncpu < 2) {
        place_job(&x);
        ck_assert_msg(x.ncpus == ncpu, "%s: the worker has %d CPUs, the process %d",
                      off ? "NNGEN_PIN=0" : "one CPU", x.ncpus, ncpu);
        printf("NOTE: placement %s: checked that the worker was left alone\n",
               off ? "off (NNGEN_PIN=0)" : "impossible (one CPU)");
    } else {
        int caller = first;
        for (int round = 0; round < 6; round++) {
            pin_self(caller);
            place_job(&x);
            ck_assert_msg(x.cpu[0] == caller, "round %d: the caller, pinned to CPU %d, ran on %d",
                          round, caller, x.cpu[0]);
            ck_assert_msg(x.ncpus == 1 && x.pinned_to >= 0 && x.pinned_to != caller &&
                              CPU_ISSET(x.pinned_to, &mine),
                          "round %d: the caller on CPU %d, its worker has %d CPUs (pinned to "
                          "%d): want one CPU of the process's, not the caller's",
                          round, caller, x.ncpus, x.pinned_to);
            ck_assert_msg(x.cpu[1] == x.pinned_to, "round %d: the worker pinned to %d ran on %d",
                          round, x.pinned_to, x.cpu[1]);
            caller = x.pinned_to; /* next: the caller where its worker is */
        }
    }
    ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof mine, &mine), 0);
    nn_set_num_threads(0);
}
END_TEST
#endif

/* ------------------------------------------------------------------ */
/* nn_sgemm_sgd: the product, then torch.optim.SGD's update of each      */
/* element's parameter (fused into the stores on nngen's kernel)         */

/* The update in plain float, in rt.h's order (this file is built with
   -ffp-contract=off, as the runtime). */
static void sgd_ref(const nn_sgd_step *s, float g0, float *p, float *buf)
{
    float g = s->weight_decay != 0.0f ? g0 + s->weight_decay * *p : g0;
    float u = g;
    if (buf) {
        *buf = s->first ? g : *buf * s->momentum + s->damp1 * g;
        u = s->nesterov ? g + s->momentum * *buf : *buf;
    }
    *p = *p + s->neg_lr * u;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* One call: c, param and the momentum buffer (ldc = n + 3 columns; the
   3 past n hold NaN and must keep their bits) against nn_sgemm's c and
   sgd_ref on it; 0 when equal bit for bit. */
static int sgd_check(int ta, int tb, int m, int n, int k, int accumulate, int variant,
                     char *err, size_t errlen)
{
    static const struct { int mom, first, nesterov; float wd, damp; } V[] = {
        {0, 0, 0, 0.0f, 0.0f},   {0, 0, 0, 0.01f, 0.0f},  {1, 1, 0, 0.0f, 0.0f},
        {1, 0, 0, 0.0f, 0.0f},   {1, 0, 0, 0.001f, 0.3f}, {1, 0, 1, 0.01f, 0.0f},
        {1, 1, 1, 0.02f, 0.0f},
    };
    int ldc = n + 3, lda = ta ? m : k, ldb = tb ? k : n;
    long na = (long)(ta ? k : m) * lda + 1, nb = (long)(tb ? n : k) * ldb + 1;
    long nc = (long)m * ldc;
    float *a = malloc(sizeof *a * (size_t)na), *b = malloc(sizeof *b * (size_t)nb);
    float *c = malloc(sizeof *c * (size_t)nc), *cr = malloc(sizeof *cr * (size_t)nc);
    float *pa = malloc(sizeof *pa * (size_t)nc), *pr = malloc(sizeof *pr * (size_t)nc);
    float *ma = malloc(sizeof *ma * (size_t)nc), *mr = malloc(sizeof *mr * (size_t)nc);
    ck_assert(a && b && c && cr && pa && pr && ma && mr);
    uint64_t sd = seed_of(ta, tb, m, n, k, accumulate * 16 + variant);
    for (long i = 0; i < na; i++)
        a[i] = rnd(&sd, 0);
    for (long i = 0; i < nb; i++)
        b[i] = rnd(&sd, 0);
    for (long i = 0; i < nc; i++) {
        int pad = i % ldc >= n;
        c[i] = cr[i] = pad ? NAN : rnd(&sd, 0);
        pa[i] = pr[i] = pad ? NAN : rnd(&sd, 0);
        ma[i] = mr[i] = pad ? NAN : 0.1f * rnd(&sd, 0);
    }
    nn_sgd_step st;
    st.param = pa;
    st.momentum_buf = V[variant].mom ? ma : NULL;
    st.neg_lr = -0.05f;
    st.momentum = 0.9f;
    st.damp1 = 1.0f - V[variant].damp;
    st.weight_decay = V[variant].wd;
    st.nesterov = V[variant].nesterov;
    st.first = V[variant].first;
    nn_sgemm(ta, tb, m, n, k, a, lda, b, ldb, accumulate, cr, ldc);
    int kern = nn_gemm_last_kernel();
    nn_sgemm_sgd(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc, &st);
    nn_sgd_step sr = st;
    sr.param = pr;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++)
            sgd_ref(&sr, cr[i * ldc + j], &pr[i * ldc + j], st.momentum_buf ? &mr[i * ldc + j] : NULL);
    int rc = 0;
    for (long i = 0; i < nc && !rc; i++) {
        const char *what = !same_bits(c[i], cr[i]) ? "c" : !same_bits(pa[i], pr[i]) ? "param"
                         : !same_bits(ma[i], mr[i]) ? "momentum buffer" : NULL;
        if (what) {
            snprintf(err, errlen, "%s %dx%dx%d ta %d tb %d acc %d variant %d (kernel %s): %s "
                     "element (%ld, %ld)%s = %a, want %a", nn_sgemm_impl(), m, n, k, ta, tb,
                     accumulate, variant, nn_gemm_kernel_name(kern), what, i / ldc, i % ldc,
                     i % ldc >= n ? " (padding)" : "",
                     what[0] == 'c' ? c[i] : what[0] == 'p' ? pa[i] : ma[i],
                     what[0] == 'c' ? cr[i] : what[0] == 'p' ? pr[i] : mr[i]);
            rc = 1;
        }
    }
    free(a); free(b); free(c); free(cr); free(pa); free(pr); free(ma); free(mr);
    return rc;
}

START_TEST(test_sgemm_sgd)
{
    /* the weight gradients of linear layers (TN: gy^T x), a large one on
       the threads, tile remainders, the other transposes (trans_b: the
       update after the product), k = 0, and one above 2^20 elements,
       whose gradient nngen's kernel stores non-temporally where a vector
       is whole and aligned (rows n + 3 apart: both kinds of row) */
    static const int shapes[][5] = {
        {1, 0, 10, 256, 64}, {1, 0, 256, 784, 64}, {1, 0, 37, 70, 13}, {0, 0, 33, 65, 17},
        {0, 1, 40, 29, 31},  {1, 1, 7, 150, 9},    {1, 0, 6, 64, 0},   {1, 0, 130, 300, 128},
        {1, 0, 1024, 1030, 8},
    };
    char err[512];
    for (int th = 1; th <= 2; th++) {
        nn_set_num_threads(th);
        for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++)
            for (int acc = 0; acc < 2; acc++)
                for (int v = 0; v < 7; v++)
                    ck_assert_msg(sgd_check(shapes[q][0], shapes[q][1], shapes[q][2],
                                            shapes[q][3], shapes[q][4], acc, v, err,
                                            sizeof err) == 0,
                                  "threads %d: %s", th, err);
    }
    /* step NULL: nn_sgemm itself */
    float x = 2.0f, y = 3.0f, z = 1.0f;
    nn_sgemm_sgd(0, 0, 1, 1, 1, &x, 1, &y, 1, 1, &z, 1, NULL);
    ck_assert(z == 7.0f);
    nn_set_num_threads(0);
}
END_TEST

/* nn_parallel and nn_sgemm called from inside an nn_parallel share: the
   inner nn_parallel runs alone on the caller, the inner products are right */
typedef struct {
    prob p[MAXT];
    int nprob;
    int fail;  /* atomic */
    char err[MAXT][512];
} nest_ctx;

static void nest_fn(void *vctx, int t, int nt)
{
    nest_ctx *x = vctx;
    (void)nt;
    if (t >= x->nprob)
        return;
    int inner;
    if (par_check(t ? 500 : 0, 1, &inner, x->err[t], sizeof x->err[t]) != 0) {
        __atomic_add_fetch(&x->fail, 1, __ATOMIC_RELAXED);
        return;
    }
    if (inner != 1) {
        snprintf(x->err[t], sizeof x->err[t], "nested nn_parallel got nt = %d, want 1", inner);
        __atomic_add_fetch(&x->fail, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int acc = 0; acc < 2; acc++)
        if (prob_run(&x->p[t], acc, x->err[t], sizeof x->err[t]) != 0) {
            __atomic_add_fetch(&x->fail, 1, __ATOMIC_RELAXED);
            return;
        }
}

START_TEST(test_parallel_nested)
{
    nest_ctx *x = calloc(1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    nn_set_num_threads(3);
    x->nprob = 3;
    for (int t = 0; t < x->nprob; t++)
        ck_assert(prob_init(&x->p[t], t & 1, (t >> 1) & 1, 100 + t, 90 + 7 * t, 120, t, 0, 1, 0,
                            seed_of(77, t, 0, 0, 0, 0)) == 0);
    for (int rep = 0; rep < 3; rep++) {
        nn_parallel(nest_fn, x);
        for (int t = 0; t < x->nprob; t++)
            ck_assert_msg(x->fail == 0 || x->err[t][0] == '\0', "share %d: %s", t, x->err[t]);
        ck_assert_int_eq(x->fail, 0);
    }
    for (int t = 0; t < x->nprob; t++)
        prob_free(&x->p[t]);
    free(x);
    nn_set_num_threads(0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* several threads at once                                              */

#define NHAMMER 4

typedef struct {
    int id, iters;
    pthread_barrier_t *start;
    int fail;
    int alone;    /* nn_parallel calls that got nt = 1 while nn_num_threads() > 1 */
    char err[512];
} hammer_arg;

static void *hammer(void *varg)
{
    hammer_arg *h = varg;
    prob p[4];
    int ok = 1;
    for (int t = 0; t < 4; t++)
        if (prob_init(&p[t], t >> 1, t & 1, 90 + 11 * h->id + t, 150 - 9 * h->id + 3 * t,
                      100 + 13 * t, t & 1, h->id & 1, 2, 0, seed_of(h->id, t, 1, 2, 3, 4)) != 0)
            ok = 0;
    pthread_barrier_wait(h->start);
    if (!ok) {
        snprintf(h->err, sizeof h->err, "out of memory");
        h->fail = 1;
    }
    for (int i = 0; i < h->iters && !h->fail; i++) {
        if (prob_run(&p[i % 4], (i / 4) & 1, h->err, sizeof h->err) != 0) {
            h->fail = 1;
            break;
        }
        int nt;
        if (par_check(i % 8 == 0 ? 300 : 0, 1, &nt, h->err, sizeof h->err) != 0) {
            h->fail = 1;
            break;
        }
        if (nt != 1 && nt != nn_num_threads()) {
            snprintf(h->err, sizeof h->err, "nn_parallel nt = %d, nn_num_threads() = %d", nt,
                     nn_num_threads());
            h->fail = 1;
        }
        if (nt == 1 && nn_num_threads() > 1)
            h->alone++;
    }
    for (int t = 0; t < 4; t++)
        prob_free(&p[t]);
    return NULL;
}

static void run_hammer(int threads, int iters)
{
    pthread_t th[NHAMMER];
    hammer_arg args[NHAMMER];
    pthread_barrier_t start;
    nn_set_num_threads(threads);
    ck_assert_int_eq(pthread_barrier_init(&start, NULL, NHAMMER), 0);
    for (int i = 0; i < NHAMMER; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].id = i;
        args[i].iters = iters;
        args[i].start = &start;
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    int alone = 0;
    for (int i = 0; i < NHAMMER; i++) {
        pthread_join(th[i], NULL);
        alone += args[i].alone;
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NHAMMER; i++)
        ck_assert_msg(!args[i].fail, "thread %d: %s", i, args[i].err);
    printf("  concurrency (%d pool threads): %d of %d nn_parallel calls found the pool busy\n",
           threads, alone, NHAMMER * iters);
    nn_set_num_threads(0);
}

START_TEST(test_concurrent)
{
    run_hammer(2, 60);
    run_hammer(3, 40);
    run_hammer(1, 20);
}
END_TEST

#if NN_THREADS  /* fork and the pool's try-lock: the threaded pool only */
/* ------------------------------------------------------------------ */
/* fork                                                                 */

/* In the child: products on the (new) pool and nn_parallel with every
   share; returns the exit status (0: all right). */
static int child_checks(prob *p)
{
    char err[512];
    int nt;
    /* a hang (say, waiting for workers that did not survive the fork) ends
       in SIGALRM; not Check's handler, which would SIGKILL the process group */
    signal(SIGALRM, SIG_DFL);
    alarm(20);
    if (par_check(1000, 1, &nt, err, sizeof err) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    if (nt != nn_num_threads()) {
        fprintf(stderr, "child: nn_parallel nt = %d, nn_num_threads() = %d\n", nt,
                nn_num_threads());
        return 3;
    }
    for (int acc = 0; acc < 2; acc++)
        if (prob_run(p, acc, err, sizeof err) != 0) {
            fprintf(stderr, "child: %s\n", err);
            return 4;
        }
    nn_set_num_threads(3);
    if (prob_run(p, 1, err, sizeof err) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 5;
    }
    for (int i = 0; i < 50; i++) {
        if (par_check(0, 1, &nt, err, sizeof err) != 0) {
            fprintf(stderr, "child: %s\n", err);
            return 6;
        }
        if (nt != 3) {
            fprintf(stderr, "child: nn_parallel nt = %d after nn_set_num_threads(3)\n", nt);
            return 7;
        }
    }
    return 0;
}

/* Forks a child that runs child_checks; 0 when it succeeded, else 1 with a
   message in err. */
static int fork_and_check(prob *p, char *err, size_t errlen)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0)
        _exit(child_checks(p));
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w != pid)
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(err, errlen, "child killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (hung for 20 s)" : "");
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        snprintf(err, errlen, "child failed with status %d (see its message above)",
                 WEXITSTATUS(status));
    else
        return 0;
    return 1;
}

START_TEST(test_fork)
{
    prob p;
    char err[512];
    int nt;
    init_checked(&p, 0, 1, 200, 300, 300, 0, 1, 2, 0);
    /* start the pool's workers in the parent first */
    nn_set_num_threads(2);
    run_checked(&p, 0);
    ck_assert_msg(par_check(0, 1, &nt, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(fork_and_check(&p, err, sizeof err) == 0, "%s", err);
    /* the parent's pool still works */
    run_checked(&p, 1);
    ck_assert_msg(par_check(500, 1, &nt, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(nt, 2);
    prob_free(&p);
    nn_set_num_threads(0);
}
END_TEST

/* A thread that holds the pool, deterministically: it is inside an
   nn_parallel share 0 until released. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inside, release;
} hold_ctx;

static void hold_fn(void *vctx, int t, int nt)
{
    hold_ctx *h = vctx;
    (void)nt;
    if (t != 0)
        return;
    pthread_mutex_lock(&h->mu);
    h->inside = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->release)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void *holder(void *vctx)
{
    nn_parallel(hold_fn, vctx);
    return NULL;
}

static void hold_start(hold_ctx *h, pthread_t *th)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    ck_assert_int_eq(pthread_create(th, NULL, holder, h), 0);
    pthread_mutex_lock(&h->mu);
    while (!h->inside)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void hold_stop(hold_ctx *h, pthread_t th)
{
    pthread_mutex_lock(&h->mu);
    h->release = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
}

/* While another thread holds the pool: nn_parallel runs share 0 alone on
   the caller (nt = 1), nn_sgemm and nn_linear_forward still compute
   (cblas) */
START_TEST(test_pool_held)
{
    hold_ctx h;
    pthread_t th;
    char err[512];
    int nt, bad_par, bad_gemm, bad_lin;
    prob p;
    nn_set_num_threads(3);
    init_checked(&p, 0, 1, 150, 200, 300, 1, 0, 2, 0);
    hold_start(&h, &th);
    bad_par = par_check(0, 1, &nt, err, sizeof err);
    if (!bad_par && nt != 1) {
        snprintf(err, sizeof err, "nn_parallel nt = %d while another thread holds the pool", nt);
        bad_par = 1;
    }
    char err2[512], err3[512];
    bad_gemm = prob_run(&p, 0, err2, sizeof err2) || prob_run(&p, 1, err2, sizeof err2);
    bad_lin = linear_case(64, 300, 130, 1, NN_ACT_RELU, 0.0f, 5, err3, sizeof err3);
    hold_stop(&h, th); /* before any assertion can leave the test */
    ck_assert_msg(!bad_par, "%s", err);
    ck_assert_msg(!bad_gemm, "%s", err2);
    ck_assert_msg(!bad_lin, "%s", err3);
    /* and free again */
    ck_assert_msg(par_check(0, 1, &nt, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(nt, 3);
    run_checked(&p, 1);
    prob_free(&p);
    nn_set_num_threads(0);
}
END_TEST

/* fork while another thread holds the pool: the child starts with a free
   pool and no workers */
START_TEST(test_fork_while_held)
{
    hold_ctx h;
    pthread_t th;
    char err[512];
    prob p;
    nn_set_num_threads(2);
    init_checked(&p, 1, 1, 160, 140, 200, 0, 2, 0, 0);
    hold_start(&h, &th);
    int bad = fork_and_check(&p, err, sizeof err);
    hold_stop(&h, th);
    ck_assert_msg(!bad, "%s", err);
    prob_free(&p);
    nn_set_num_threads(0);
}
END_TEST

/* fork at arbitrary moments while another thread keeps using the pool (the
   child may inherit it held, workers mid-job): the child must start with a
   free pool */
typedef struct {
    int stop; /* atomic */
    int fail;
    long rounds;
    char err[512];
    prob p;
} busy_arg;

static void *busy(void *varg)
{
    busy_arg *b = varg;
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        int nt;
        if (par_check(50, 0, &nt, b->err, sizeof b->err) != 0 ||
            prob_run(&b->p, (int)(b->rounds & 1), b->err, sizeof b->err) != 0) {
            b->fail = 1;
            break;
        }
        b->rounds++;
    }
    return NULL;
}

START_TEST(test_fork_while_busy)
{
    busy_arg *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    prob p;
    init_checked(&p, 1, 0, 150, 120, 200, 0, 0, 0, 0);
    ck_assert(prob_init(&b->p, 0, 0, 40, 70, 90, 0, 0, 0, 0, 99) == 0);
    nn_set_num_threads(2);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, busy, b), 0);
    char err[512];
    int bad = 0;
    for (int i = 0; i < 4 && !bad; i++) {
        sleep_us(2000 + 1300 * i);
        bad = fork_and_check(&p, err, sizeof err);
    }
    /* stop the busy thread before any assertion can leave this test */
    __atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    ck_assert_msg(!bad, "%s", err);
    ck_assert_msg(!b->fail, "busy thread: %s", b->err);
    ck_assert_int_gt(b->rounds, 0);
    prob_free(&b->p);
    prob_free(&p);
    free(b);
    nn_set_num_threads(0);
}
END_TEST

#endif

/* ------------------------------------------------------------------ */
/* kernel choice (nn_gemm_*): the mode, forced kernels, the cache of the */
/* choice per class, threads and fork.  Behaviour only, never timing:   */
/* which kernel wins on this machine is not asserted.                   */

#if NN_HAVE_CBLAS
#include <cblas.h>
#endif
/* the runtime's portable loops (gemm_portable.c; internal, in every
   runtime): NNGEN_GEMM=portable must give exactly their bits */
void nn__sgemm_portable(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);

static int measured_mode(void)
{
    return expected_fixed() == NN_GEMM_NONE;
}

/* the record of the class first used with this op and shape, or NULL */
static const nn_gemm_class *find_class(int op, int ta, int tb, int m, int n, int k)
{
    static nn_gemm_class cls[256];
    int nc = nn_gemm_classes(cls, 256);
    ck_assert_int_ge(nc, 0);
    for (int i = 0; i < nc && i < 256; i++)
        if (cls[i].op == op && cls[i].trans_a == ta && cls[i].trans_b == tb && cls[i].m == m &&
            cls[i].n == n && cls[i].k == k && (cls[i].threads > 1) == (nn_num_threads() > 1))
            return &cls[i];
    return NULL;
}

/* A recorded class: its kernel is the one nn_gemm_choice gives; when
   measured, both kernels were timed, the shape timed is a part of the
   call's of at most 2^25 multiply-adds (or the call's own), and the kernel
   kept is nngen's only if it was the faster: never one slower than the
   BLAS. */
static void check_record(const nn_gemm_class *e)
{
    if (!NN_HAVE_AVX512_KERNEL) {
        ck_assert_ptr_null(e);  /* one kernel for everything: no record */
        return;
    }
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->kernel, nn_gemm_choice(e->op, e->trans_a, e->trans_b, e->m, e->n, e->k));
    if (!measured_mode()) {
        ck_assert_int_eq(e->kernel, expected_fixed());
        ck_assert(e->seconds[NN_GEMM_NNGEN] == 0.0 && e->seconds[NN_GEMM_CBLAS] == 0.0);
        return;
    }
    ck_assert(e->kernel == NN_GEMM_NNGEN || e->kernel == NN_GEMM_CBLAS);
    ck_assert(e->seconds[NN_GEMM_NNGEN] > 0.0 && e->seconds[NN_GEMM_CBLAS] > 0.0);
    ck_assert(e->tm >= 1 && e->tm <= e->m && e->tn >= 1 && e->tn <= e->n && e->tk >= 1 &&
              e->tk <= e->k);
    long macs = (long)e->m * e->n * e->k, tmacs = (long)e->tm * e->tn * e->tk;
    if (macs <= (1L << 25) && (long)e->m * e->n <= (1L << 18))
        ck_assert(e->tm == e->m && e->tn == e->n && e->tk == e->k);
    else
        ck_assert_int_le(tmacs, 1L << 25);
    if (e->kernel == NN_GEMM_NNGEN)
        ck_assert(e->seconds[NN_GEMM_NNGEN] < e->seconds[NN_GEMM_CBLAS]);
    else
        ck_assert(e->seconds[NN_GEMM_CBLAS] <= e->seconds[NN_GEMM_NNGEN]);
}

/* A fixed kernel (forced, or the only one there is): every class has it
   before and after its first use, every product runs on it, nothing is
   measured; with NNGEN_GEMM=cblas / portable the bits are cblas_sgemm's /
   the portable loops' own. */
START_TEST(test_fixed_kernel)
{
    int want = expected_fixed();
    if (want == NN_GEMM_NONE) {
        printf("  fixed kernel: not here (NNGEN_GEMM=auto with both kernels: measured)\n");
        return;
    }
    long m0 = nn_gemm_measurements();
    static const int shapes[][5] = {{0, 0, 30, 70, 50}, {0, 1, 64, 256, 784}, {1, 0, 256, 784, 64},
                                    {1, 1, 9, 130, 17}, {0, 0, 300, 200, 100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *sh = shapes[s];
        prob p;
        ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_SGEMM, sh[0], sh[1], sh[2], sh[3], sh[4]), want);
        init_checked(&p, sh[0], sh[1], sh[2], sh[3], sh[4], 1, 0, 3, 0);
        run_checked(&p, 0);
        ck_assert_int_eq(nn_gemm_last_kernel(), want);
        run_checked(&p, 1);
        ck_assert_int_eq(nn_gemm_last_kernel(), want);
        /* the kernel's own bits, where the test can call it directly */
        size_t nc = (size_t)p.m * (size_t)p.ldc;
        float *c1 = malloc(nc * sizeof(float)), *c2 = malloc(nc * sizeof(float));
        ck_assert(c1 && c2);
        memset(c1, 0, nc * sizeof(float));
        memset(c2, 0, nc * sizeof(float));
        nn_sgemm(p.ta, p.tb, p.m, p.n, p.k, p.a, p.lda, p.b, p.ldb, 0, c1, p.ldc);
        int direct = 0;
        if (want == NN_GEMM_PORTABLE) {
            nn__sgemm_portable(p.ta, p.tb, p.m, p.n, p.k, p.a, p.lda, p.b, p.ldb, 0.0f, c2, p.ldc);
            direct = 1;
        }
#if NN_HAVE_CBLAS
        if (want == NN_GEMM_CBLAS) {
            cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans,
                        p.tb ? CblasTrans : CblasNoTrans, p.m, p.n, p.k, 1.0f, p.a, p.lda, p.b,
                        p.ldb, 0.0f, c2, p.ldc);
            direct = 1;
        }
#endif
        if (direct)
            ck_assert_msg(memcmp(c1, c2, nc * sizeof(float)) == 0,
                          "NNGEN_GEMM=%s: nn_sgemm's bits are not %s's", env_mode(),
                          nn_gemm_kernel_name(want));
        free(c1);
        free(c2);
        check_record(find_class(NN_GEMM_OP_SGEMM, sh[0], sh[1], sh[2], sh[3], sh[4]));
        prob_free(&p);
    }
    char err[512];
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_LINEAR, 0, 0, 33, 65, 70), want);
    ck_assert_msg(linear_case(33, 70, 65, 1, NN_ACT_RELU, 0.0f, 3, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_int_eq(nn_gemm_last_kernel(), want);
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_RELU_MASK, 0, 0, 33, 65, 70), want);
    ck_assert_msg(relu_mask_case(33, 65, 70, 65, 66, nn_num_threads(), 4, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(nn_gemm_last_kernel(), want);
    ck_assert_int_eq(nn_gemm_measurements(), m0);
    ck_assert_int_eq(m0, 0);
    printf("  fixed kernel: %s for every class (NNGEN_GEMM=%s)\n", nn_gemm_kernel_name(want),
           env_mode());
}
END_TEST

/* One class, first used here: undecided before (when measured), decided
   by the first call (one measurement), the same kernel afterwards with no
   further measurement, also for another shape of the same class; the
   results right every time. */
static void cache_case(int ta, int tb, int m, int n, int k, int m2)
{
    prob p;
    long c0 = nn_gemm_measurements();
    int fixed = expected_fixed();
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_SGEMM, ta, tb, m, n, k), fixed);
    init_checked(&p, ta, tb, m, n, k, 0, 1, 0, 0);
    run_checked(&p, 0);
    int ch = nn_gemm_choice(NN_GEMM_OP_SGEMM, ta, tb, m, n, k);
    ck_assert_int_eq(nn_gemm_measurements(), c0 + (fixed == NN_GEMM_NONE));
    ck_assert(ch != NN_GEMM_NONE);
    ck_assert_int_eq(nn_gemm_last_kernel(), ch);
    for (int acc = 0; acc < 2; acc++) {
        run_checked(&p, acc);
        ck_assert_int_eq(nn_gemm_last_kernel(), ch);
    }
    prob_free(&p);
    /* another shape in the same ranges of m, n and k: the same class */
    init_checked(&p, ta, tb, m2, n, k, 0, 0, 1, 0);
    run_checked(&p, 1);
    ck_assert_int_eq(nn_gemm_last_kernel(), ch);
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_SGEMM, ta, tb, m2, n, k), ch);
    ck_assert_int_eq(nn_gemm_measurements(), c0 + (fixed == NN_GEMM_NONE));
    prob_free(&p);
    check_record(find_class(NN_GEMM_OP_SGEMM, ta, tb, m, n, k));
    ck_assert_ptr_null(find_class(NN_GEMM_OP_SGEMM, ta, tb, m2, n, k));
    printf("  class %s%s %dx%dx%d: %s\n", ta ? "T" : "N", tb ? "T" : "N", m, n, k,
           nn_gemm_kernel_name(ch));
}

START_TEST(test_choice_cache)
{
    /* (m and m2 in the same range: 65-256, 17-64, 257-1024) */
    cache_case(0, 0, 70, 90, 110, 250);
    cache_case(1, 0, 40, 300, 20, 60);
    cache_case(0, 1, 100, 40, 300, 200);
    nn_set_num_threads(1);  /* one thread: other classes */
    cache_case(0, 0, 70, 90, 110, 100);
    nn_set_num_threads(0);
    /* larger than 2^25 multiply-adds: a part of it is timed */
    cache_case(1, 1, 600, 700, 300, 1000);

    /* nn_linear_forward and nn_sgemm_relu_mask have classes of their own */
    char err[512];
    long c0 = nn_gemm_measurements();
    int fixed = expected_fixed(), meas = fixed == NN_GEMM_NONE;
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_LINEAR, 0, 0, 50, 20, 300), fixed);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(linear_case(50, 300, 20, i != 1, i, 0.1f, 11 + i, err, sizeof err) == 0,
                      "%s", err);
        ck_assert_int_eq(nn_gemm_measurements(), c0 + meas);
        ck_assert_int_eq(nn_gemm_last_kernel(), nn_gemm_choice(NN_GEMM_OP_LINEAR, 1, 1, 50, 20, 300));
    }
    check_record(find_class(NN_GEMM_OP_LINEAR, 0, 1, 50, 20, 300));
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_RELU_MASK, 0, 0, 50, 20, 300), fixed);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(relu_mask_case(50, 20, 300, 21, 20, nn_num_threads(), 21 + i, err,
                                      sizeof err) == 0, "%s",
                      err);
        ck_assert_int_eq(nn_gemm_measurements(), c0 + 2 * meas);
        ck_assert_int_eq(nn_gemm_last_kernel(), nn_gemm_choice(NN_GEMM_OP_RELU_MASK, 0, 0, 50, 20, 300));
    }
    check_record(find_class(NN_GEMM_OP_RELU_MASK, 0, 0, 50, 20, 300));
    /* k = 0 and empty products choose nothing */
    float z[25] = {0};
    nn_sgemm(0, 0, 5, 5, 0, z, 1, z, 5, 1, z, 5);
    ck_assert_int_eq(nn_gemm_measurements(), c0 + 2 * meas);
}
END_TEST

/* Several threads use one class first, at once: every result right, the
   class measured once (the others run on the generic product meanwhile,
   or find it decided) */
#define NFIRST 3
typedef struct {
    pthread_barrier_t *start;
    prob p;
    int fail;
    char err[512];
} first_arg;

static void *first_use(void *varg)
{
    first_arg *f = varg;
    pthread_barrier_wait(f->start);
    for (int i = 0; i < 3 && !f->fail; i++)
        f->fail = prob_run(&f->p, i & 1, f->err, sizeof f->err);
    return NULL;
}

START_TEST(test_choice_threads)
{
    pthread_t th[NFIRST];
    first_arg args[NFIRST];
    pthread_barrier_t start;
    long c0 = nn_gemm_measurements();
    ck_assert_int_eq(pthread_barrier_init(&start, NULL, NFIRST), 0);
    for (int i = 0; i < NFIRST; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].start = &start;
        ck_assert(prob_init(&args[i].p, 1, 0, 120, 130, 140, 0, 0, 0, 0, 500 + i) == 0);
    }
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_SGEMM, 1, 0, 120, 130, 140), expected_fixed());
    for (int i = 0; i < NFIRST; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, first_use, &args[i]), 0);
    for (int i = 0; i < NFIRST; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NFIRST; i++) {
        ck_assert_msg(!args[i].fail, "thread %d: %s", i, args[i].err);
        prob_free(&args[i].p);
    }
    ck_assert_int_eq(nn_gemm_measurements(), c0 + measured_mode());
    check_record(find_class(NN_GEMM_OP_SGEMM, 1, 0, 120, 130, 140));
}
END_TEST

#if NN_THREADS
/* fork after the choice: the child keeps its parent's choices (no new
   measurement for them), its products are right on the chosen kernel on a
   new pool, and it chooses for a class of its own */
static int fork_child(int (*fn)(void *), void *ctx, char *err, size_t errlen)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL);
        alarm(20);
        _exit(fn(ctx));
    }
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w != pid)
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(err, errlen, "child killed by signal %d", WTERMSIG(status));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        snprintf(err, errlen, "child failed with status %d (see its message above)",
                 WEXITSTATUS(status));
    else
        return 0;
    return 1;
}

typedef struct {
    prob *p;       /* its class decided in the parent */
    int choice;
    long measured; /* the parent's count at the fork */
    int ta, tb, m, n, k;  /* a class the parent never used */
} fork_sel;

static int fork_sel_child(void *vctx)
{
    fork_sel *f = vctx;
    char err[512];
    if (nn_gemm_measurements() != f->measured)
        return 10;
    if (nn_gemm_choice(NN_GEMM_OP_SGEMM, f->p->ta, f->p->tb, f->p->m, f->p->n, f->p->k) !=
        f->choice)
        return 11;
    for (int acc = 0; acc < 2; acc++) {
        if (prob_run(f->p, acc, err, sizeof err) != 0) {
            fprintf(stderr, "child: %s\n", err);
            return 12;
        }
        if (nn_gemm_last_kernel() != f->choice)
            return 13;
    }
    if (nn_gemm_measurements() != f->measured)
        return 14;  /* measured again */
    prob q;
    if (prob_init(&q, f->ta, f->tb, f->m, f->n, f->k, 0, 0, 0, 0, 77) != 0)
        return 15;
    int bad = prob_run(&q, 0, err, sizeof err) || prob_run(&q, 1, err, sizeof err);
    prob_free(&q);
    if (bad) {
        fprintf(stderr, "child: %s\n", err);
        return 16;
    }
    int ch = nn_gemm_choice(NN_GEMM_OP_SGEMM, f->ta, f->tb, f->m, f->n, f->k);
    if (ch == NN_GEMM_NONE || nn_gemm_last_kernel() != ch)
        return 17;
    if (nn_gemm_measurements() != f->measured + measured_mode()) {
        fprintf(stderr, "child: %ld measurements, want %ld\n", nn_gemm_measurements(),
                f->measured + measured_mode());
        return 18;  /* the child could not measure */
    }
    return 0;
}

START_TEST(test_choice_fork)
{
    prob p;
    char err[512];
    nn_set_num_threads(2);
    init_checked(&p, 0, 1, 200, 30, 500, 0, 0, 0, 0);
    run_checked(&p, 0);  /* decides the class, starts the pool */
    fork_sel f = {&p, nn_gemm_choice(NN_GEMM_OP_SGEMM, 0, 1, 200, 30, 500),
                  nn_gemm_measurements(), 1, 1, 30, 200, 500};
    ck_assert(f.choice != NN_GEMM_NONE);
    ck_assert_msg(fork_child(fork_sel_child, &f, err, sizeof err) == 0, "%s", err);
    /* the parent: unchanged by its child */
    ck_assert_int_eq(nn_gemm_measurements(), f.measured);
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_SGEMM, 1, 1, 30, 200, 500), expected_fixed());
    run_checked(&p, 1);
    ck_assert_int_eq(nn_gemm_last_kernel(), f.choice);
    prob_free(&p);
    nn_set_num_threads(0);
}
END_TEST

/* fork while another thread keeps choosing classes (so the fork may come
   in the middle of a measurement, which holds the choice's lock): the
   child still measures a class of its own.  OpenBLAS on one thread here:
   a fork while another thread is inside a threaded cblas_sgemm can hang in
   OpenBLAS's own fork handler (docs/api.md), whoever calls it. */
typedef struct {
    int stop; /* atomic */
    long calls;
    float *a, *b, *c;
} chooser_arg;

static void *chooser(void *varg)
{
    chooser_arg *ch = varg;
    static const int dims[] = {3, 10, 40, 150, 300};
    for (long i = 0; !__atomic_load_n(&ch->stop, __ATOMIC_ACQUIRE); i++) {
        int m = dims[i % 5], n = dims[(i / 5) % 5], k = dims[(i / 25) % 5];
        int t = (int)((i / 125) % 4);
        nn_sgemm(t >> 1, t & 1, m, n, k, ch->a, t >> 1 ? m : k, ch->b, t & 1 ? k : n, 0, ch->c,
                 n);
        ch->calls++;
    }
    return NULL;
}

typedef struct {
    long measured;
} busy_sel;

static int busy_sel_child(void *vctx)
{
    busy_sel *b = vctx;
    char err[512];
    long c0 = nn_gemm_measurements();
    if (c0 < b->measured)
        return 20;
    if (relu_mask_case(40, 50, 60, 50, 51, 2, 5, err, sizeof err) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 21;
    }
    if (nn_gemm_measurements() != c0 + measured_mode()) {
        fprintf(stderr, "child: measurements %ld -> %ld (the choice is stuck)\n", c0,
                nn_gemm_measurements());
        return 22;
    }
    return 0;
}

START_TEST(test_choice_fork_busy)
{
    chooser_arg *ch = calloc(1, sizeof *ch);
    ck_assert_ptr_nonnull(ch);
    ch->a = calloc(300 * 300, sizeof(float));
    ch->b = calloc(300 * 300, sizeof(float));
    ch->c = calloc(300 * 300, sizeof(float));
    ck_assert(ch->a && ch->b && ch->c);
    nn_set_num_threads(2);
#if NN_HAVE_CBLAS
    int ob_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#endif
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, chooser, ch), 0);
    char err[512];
    int bad = 0;
    for (int i = 0; i < 5 && !bad; i++) {
        sleep_us(1500 + 900 * i);
        busy_sel b = {nn_gemm_measurements()};
        bad = fork_child(busy_sel_child, &b, err, sizeof err);
    }
    __atomic_store_n(&ch->stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
#if NN_HAVE_CBLAS
    openblas_set_num_threads(ob_threads);
#endif
    ck_assert_msg(!bad, "%s", err);
    ck_assert_int_gt(ch->calls, 0);
    /* the parent never used that class */
    ck_assert_int_eq(nn_gemm_choice(NN_GEMM_OP_RELU_MASK, 0, 0, 40, 50, 60), expected_fixed());
    printf("  fork while choosing: %ld products in the other thread, %ld classes measured\n",
           ch->calls, nn_gemm_measurements());
    free(ch->a);
    free(ch->b);
    free(ch->c);
    free(ch);
    nn_set_num_threads(0);
}
END_TEST
#endif

/* ------------------------------------------------------------------ */

int main(void)
{
    const char *env = getenv("NNGEN_GEMM");
    const char *impl = nn_sgemm_impl();
    printf("nn_sgemm implementation under test: %s  (NNGEN_GEMM=%s, NNGEN_ISA=%s, CPU's "
           "kernel: %s, kernels built: %s, nn_num_threads() = %d)\n",
           impl, env ? env : "(unset)", getenv("NNGEN_ISA") ? getenv("NNGEN_ISA") : "(unset)",
           cpu_isa() ? cpu_isa() : "none",
           NN_HAVE_AVX512_KERNEL ? "yes" : "no", nn_num_threads());
    if (strcmp(impl, GENERIC_IMPL) == 0 && !forced_cblas())
        printf("NOTE: no AVX-512 or AVX2 kernel here: this run checks the %s fallback, not "
               "nngen's kernel\n", GENERIC_IMPL);
    fflush(stdout);
#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer reports crashes better */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
#endif

    Suite *s = suite_create("gemm");
    TCase *tc_api = tcase_create("api");
    TCase *tc_shapes = tcase_create("shapes");
    TCase *tc_pool = tcase_create("pool");
    TCase *tcs[] = {tc_api, tc_shapes, tc_pool};
    for (size_t i = 0; i < sizeof tcs / sizeof tcs[0]; i++) {
        tcase_add_checked_fixture(tcs[i], NULL, restore_threads);
        tcase_set_timeout(tcs[i], 120);
        suite_add_tcase(s, tcs[i]);
    }
    tcase_add_test(tc_api, test_impl);
    tcase_add_test(tc_api, test_num_threads);
    tcase_add_test(tc_api, test_fixed_kernel);
    tcase_add_test(tc_api, test_choice_cache);
    tcase_add_test(tc_api, test_choice_threads);
#if NN_THREADS
    tcase_add_test(tc_api, test_choice_fork);
    tcase_add_test(tc_api, test_choice_fork_busy);
#endif
    tcase_add_test(tc_shapes, test_small_shapes);
    tcase_add_test(tc_shapes, test_remainders);
    tcase_add_test(tc_shapes, test_k_sweep);
    tcase_add_test(tc_shapes, test_degenerate);
    tcase_add_test(tc_shapes, test_medium_shapes);
    tcase_add_test(tc_shapes, test_large_shapes);
    tcase_add_test(tc_shapes, test_thread_edges);
    tcase_add_test(tc_shapes, test_linear_small);
    tcase_add_test(tc_shapes, test_linear_large);
    tcase_add_test(tc_shapes, test_relu_mask);
    tcase_add_test(tc_shapes, test_sgemm_sgd);
    tcase_add_test(tc_pool, test_parallel_threads);
    tcase_add_test(tc_pool, test_parallel_many);
    tcase_add_test(tc_pool, test_parallel_nested);
    tcase_add_test(tc_pool, test_concurrent);
#if NN_THREADS   /* the pool's own behaviour: with threads only */
    tcase_add_test(tc_pool, test_pool_held);
    tcase_add_test(tc_pool, test_fork);
    tcase_add_test(tc_pool, test_fork_while_busy);
    tcase_add_test(tc_pool, test_fork_while_held);
    tcase_add_test(tc_pool, test_parallel_claims);
#if defined(__linux__) && defined(CPU_SET)
    tcase_add_test(tc_pool, test_pool_placement);
#endif
    tcase_add_test(tc_pool, test_parallel_wide);
#endif

    SRunner *sr = srunner_create(s);
    double t0 = now_s();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("gemm (%s): %.1f s\n", impl, now_s() - t0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
