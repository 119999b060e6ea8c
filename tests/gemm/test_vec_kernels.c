/* Unit tests of conv.c's two products on each vector kernel set the CPU
 * can run (runtime/gemm_avx512.c's and runtime/conv_avx2.c's, through
 * gemm_internal.h's nn_vec_kernels): the kernels themselves, called
 * directly, whatever set nn_conv_impl() would pick.
 *
 *   - rows (C = A B + bias, + C when beta, over row tables, optionally in
 *     nrow runs): against a double-precision loop within 1e-5 (1 + the sum
 *     of the absolute terms); for every m 1-13 (the 6-row tiles and their
 *     remainders), n around the 8/16-lane vectors and the 16/64-column
 *     tiles, k 1-17; the floats of C between and after the rows keep their
 *     bits; and the two sets give the same bits (the claim of docs/api.md:
 *     each element is one FMA per k in order, then + bias, then + C);
 *   - dot (C = A B^T with the reduction along both rows, and the cv form:
 *     lanes per sum, to be summed later): against the double loop, k
 *     around every vector width, m and n around the 4 x 3 tile, nrow runs;
 *   - A and B end exactly where an inaccessible page begins (tests/gemm/
 *     fence.h), so a load past the last row's k or n floats faults; masked
 *     loads are invisible to AddressSanitizer, not to page protection.
 * A set the CPU cannot run is not run, and the program says so; where
 * there is neither (no AVX2) there is nothing of these kernels to test. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nngen/rt.h>

#include "../../runtime/gemm_internal.h"
#include "fence.h"

#define GUARD 12345.5f

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static float rnd(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (float)((double)(rng_state >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

/* the kernel sets this CPU can run, and their count */
static const nn_vec_kernels *sets[2];
static int nsets;

static char what[200];

static void on_crash(int sig)
{
    static const char msg[] = "test_vec_kernels: fault in ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, what, strlen(what));
    (void)!write(2, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    void *base;
    size_t len;
    float *p;
} fenced;

/* count random floats ending at a fault */
static fenced fence_rand(size_t count)
{
    fenced f = {NULL, 0, NULL};
    f.p = fence_alloc(count ? count : 1, 4096, &f.base, &f.len);
    ck_assert_ptr_nonnull(f.p);
    for (size_t i = 0; i < count; i++)
        f.p[i] = rnd();
    return f;
}

/* ---- rows ---- */

typedef struct {
    long m, n, k, nrow;
    int beta, bias;
} rows_case;

/* C for one set: returns the C buffer (caller frees) */
static float *run_rows(const nn_vec_kernels *vk, const rows_case *rc, const fenced *a,
                       const int *aoff, long aks, const fenced *b, const int *boff, long rsb,
                       const float *bias, const float *c0, const int *coff, long rsc,
                       long csize)
{
    float *c = malloc(sizeof(float) * (size_t)csize);
    ck_assert_ptr_nonnull(c);
    memcpy(c, c0, sizeof(float) * (size_t)csize);
    nn_gemm_rows g = {rc->m, rc->n, rc->k, a->p, aoff, aks, b->p, boff, c, coff,
                      rc->beta, bias, rc->nrow, rsb, rsc};
    snprintf(what, sizeof what, "%s rows m %ld n %ld k %ld nrow %ld beta %d bias %d", vk->name,
             rc->m, rc->n, rc->k, rc->nrow, rc->beta, rc->bias);
    vk->rows(&g);
    return c;
}

static void rows_case_check(const rows_case *rc)
{
    long m = rc->m, n = rc->n, k = rc->k, runs = rc->nrow > 0 ? rc->nrow : 1;
    /* A(i, p) = a[aoff[i] + p aks], aks 2 (a column of a wider matrix);
       row i of A at (m - 1 - i) 2 k + 1: row 0 last, ending at the fence */
    long aks = 2, arow = 2 * k;
    fenced a = fence_rand((size_t)(m * arow));
    int *aoff = malloc(sizeof(int) * (size_t)m);
    for (long i = 0; i < m; i++)
        aoff[i] = (int)((m - 1 - i) * arow + 1); /* A(0, k - 1): the buffer's last float */
    /* B: k rows, each runs x (n floats, then 3 more) apart: rsb = n + 3;
       the row p at boff[p] = p (runs rsb); the last row's last run ends at
       the fence */
    long rsb = n + 3, brow = runs * rsb;
    fenced b = fence_rand((size_t)(k * brow - 3));
    int *boff = malloc(sizeof(int) * (size_t)k);
    for (long p = 0; p < k; p++)
        boff[p] = (int)(p * brow);
    /* C: rows 2 floats apart beyond their runs, runs rsc = n + 1 apart */
    long rsc = n + 1, crow = runs * rsc + 2, csize = m * crow + 5;
    int *coff = malloc(sizeof(int) * (size_t)m);
    for (long i = 0; i < m; i++)
        coff[i] = (int)(i * crow);
    float *c0 = malloc(sizeof(float) * (size_t)csize), *bias = malloc(sizeof(float) * (size_t)m);
    for (long q = 0; q < csize; q++)
        c0[q] = GUARD;
    for (long i = 0; i < m; i++) {
        bias[i] = rnd();
        for (long r = 0; r < runs; r++)
            for (long j = 0; j < n; j++)
                c0[coff[i] + r * rsc + j] = rc->beta ? rnd() : NAN;
    }
    float *first = NULL;
    for (int s = 0; s < nsets; s++) {
        float *c = run_rows(sets[s], rc, &a, aoff, aks, &b, boff, rsb, rc->bias ? bias : NULL, c0,
                            coff, rsc, csize);
        char *in = calloc((size_t)csize, 1);
        for (long i = 0; i < m; i++)
            for (long r = 0; r < runs; r++)
                for (long j = 0; j < n; j++) {
                    long q = coff[i] + r * rsc + j;
                    in[q] = 1;
                    double sum = 0.0, mag = 0.0;
                    for (long p = 0; p < k; p++) {
                        double t = (double)a.p[aoff[i] + p * aks] * b.p[boff[p] + r * rsb + j];
                        sum += t, mag += fabs(t);
                    }
                    if (rc->bias)
                        sum += bias[i], mag += fabs(bias[i]);
                    if (rc->beta)
                        sum += c0[q], mag += fabs(c0[q]);
                    ck_assert_msg(fabs(c[q] - sum) <= 1e-5 * (1.0 + mag),
                                  "%s: C(%ld, %ld) run %ld = %.9g, want %.9g", what, i, j, r,
                                  c[q], sum);
                }
        for (long q = 0; q < csize; q++)
            ck_assert_msg(in[q] || c[q] == GUARD, "%s: C[%ld] outside the rows written", what, q);
        free(in);
        if (!first) {
            first = c;
        } else {
            ck_assert_msg(!memcmp(first, c, sizeof(float) * (size_t)csize),
                          "%s: the bits differ from the %s set's", what, sets[0]->name);
            free(c);
        }
    }
    free(first);
    free(aoff), free(boff), free(coff), free(c0), free(bias);
    fence_free(a.base, a.len);
    fence_free(b.base, b.len);
}

START_TEST(test_rows)
{
    static const long ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 70};
    static const long ks[] = {1, 2, 5, 17};
    for (long m = 1; m <= 13; m++)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++) {
                rows_case rc = {m, ns[in], ks[ik], (m + (long)in) % 3 == 0 ? 3 : 0,
                                (int)((m + (long)ik) & 1), (int)(((long)in + (long)ik) & 1)};
                rows_case_check(&rc);
            }
}
END_TEST

/* ---- dot ---- */

static void dot_case_check(long m, long n, long k, long nrow, int beta)
{
    long runs = nrow > 0 ? nrow : 1;
    /* A: m rows, B: n rows, each runs x k floats rs = k + 2 apart; row i
       of A at (m - 1 - i) * row: the first row is the buffer's last, so
       its last run ends at the fence; B likewise */
    long rs = k + 2, row = runs * rs;
    fenced a = fence_rand((size_t)(m * row - 2)), b = fence_rand((size_t)(n * row - 2));
    int *aoff = malloc(sizeof(int) * (size_t)m), *boff = malloc(sizeof(int) * (size_t)n);
    for (long i = 0; i < m; i++)
        aoff[i] = (int)((m - 1 - i) * row);
    for (long j = 0; j < n; j++)
        boff[j] = (int)((n - 1 - j) * row);
    long ldc = n + 2, csize = m * ldc;
    float *c0 = malloc(sizeof(float) * (size_t)csize), *c = malloc(sizeof(float) * (size_t)csize);
    for (long q = 0; q < csize; q++)
        c0[q] = GUARD;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++)
            c0[i * ldc + j] = beta ? rnd() : NAN;
    for (int s = 0; s < nsets; s++) {
        const nn_vec_kernels *vk = sets[s];
        for (int use_cv = 0; use_cv < 2; use_cv++) {
            long lanes = vk->lanes, cvn = m * n * lanes;
            float *cv = use_cv ? malloc(sizeof(float) * (size_t)(cvn + 16)) : NULL;
            memcpy(c, c0, sizeof(float) * (size_t)csize);
            if (cv)
                for (long q = 0; q < cvn + 16; q++)
                    cv[q] = q < cvn && beta ? 0.25f : GUARD;
            nn_gemm_dot g = {m, n, k, a.p, aoff, b.p, boff, c, ldc, beta, cv,
                             nrow, rs, rs};
            snprintf(what, sizeof what, "%s dot m %ld n %ld k %ld nrow %ld beta %d cv %d",
                     vk->name, m, n, k, nrow, beta, use_cv);
            vk->dot(&g);
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++) {
                    double sum = 0.0, mag = 0.0;
                    for (long r = 0; r < runs; r++)
                        for (long p = 0; p < k; p++) {
                            double t = (double)a.p[aoff[i] + r * rs + p] * b.p[boff[j] + r * rs + p];
                            sum += t, mag += fabs(t);
                        }
                    double got;
                    if (cv) {
                        got = 0.0;
                        for (long l = 0; l < lanes; l++)
                            got += cv[(i * n + j) * lanes + l];
                        if (beta)
                            sum += 0.25 * (double)lanes, mag += 0.25 * (double)lanes;
                    } else {
                        got = c[i * ldc + j];
                        if (beta)
                            sum += c0[i * ldc + j], mag += fabs(c0[i * ldc + j]);
                    }
                    ck_assert_msg(fabs(got - sum) <= 1e-5 * (1.0 + mag),
                                  "%s: C(%ld, %ld) = %.9g, want %.9g", what, i, j, got, sum);
                }
            if (cv) {
                for (long q = cvn; q < cvn + 16; q++)
                    ck_assert_msg(cv[q] == GUARD, "%s: cv written past its end", what);
                for (long q = 0; q < csize; q++)
                    ck_assert_msg(!memcmp(&c[q], &c0[q], sizeof c[q]), "%s: C written", what);
            } else {
                for (long i = 0; i < m; i++)
                    for (long j = n; j < ldc; j++)
                        ck_assert_msg(c[i * ldc + j] == GUARD, "%s: C(%ld, %ld) written", what,
                                      i, j);
            }
            free(cv);
        }
    }
    free(aoff), free(boff), free(c0), free(c);
    fence_free(a.base, a.len);
    fence_free(b.base, b.len);
}

START_TEST(test_dot)
{
    static const long ks[] = {1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40};
    for (long m = 1; m <= 9; m++)
        for (long n = 1; n <= 7; n++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                dot_case_check(m, n, ks[ik], (m + n) % 4 == 0 ? 2 : 0, (int)((m + n + (long)ik) & 1));
}
END_TEST

int main(void)
{
#if NN_HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
        sets[nsets++] = &nn__vec_kernels_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        sets[nsets++] = &nn__vec_kernels_avx2;
#endif
    printf("vector kernel sets under test:");
    for (int s = 0; s < nsets; s++)
        printf(" %s", sets[s]->name);
    printf("%s\n", nsets == 0   ? " none (no AVX2 on this CPU, or a runtime built without them)"
                   : nsets == 1 ? " (this CPU has no AVX-512F: the sets' bits are not compared)"
                                : "");
    if (nsets == 0)
        return 77; /* meson: skipped, not passed */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    Suite *s = suite_create("vec_kernels");
    TCase *tc = tcase_create("vec_kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rows);
    tcase_add_test(tc, test_dot);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
