/* Unit tests of the runtime's batch norm (runtime/norm.c, norm_vec.c).
 *
 * Oracles:
 *   - bits: the loops the generated --no-blas code runs
 *     (compiler/ops/batch_norm.c), written out here by hand as that code
 *     reads: per channel, 8 named partial sums over the positions when
 *     l >= 16 (the rest of each row added to the sum in order), one sum
 *     below; then the same expressions per element.  nn_batch_norm_* must
 *     give these bits exactly: y, running_mean, running_var,
 *     num_batches_tracked, the saved mean and invstd, gx, gw, gb;
 *   - values: the definition in long double (mean, biased variance, y =
 *     (x - mean) / sqrt(var + eps) w + b; the backward's formula), within
 *     1e-5 relative, so that the bit oracle is itself the right function.
 * Cases: positions 1, 5, 9 (one sum), 16, 17, 100, 1024 (partial sums with
 * and without a tail), channels 1 to 40 (groups of 16 and a remainder),
 * batches small and large enough for threads (n c l >= 65536); training,
 * eval, without running statistics, affine or not, the mean kept or not;
 * set and accumulated gw / gb, gx NULL; 1, 2 and 3 threads; the floats past
 * each output untouched; nn_batch_norm_relu_forward: the relu expression
 * v > 0 ? v : 0 on the reference y, bit for bit, and the same statistics.  meson runs it as is (AVX-512 where the CPU has
 * it), with NNGEN_ISA=avx2 and with NNGEN_GEMM=portable (the plain loops);
 * each run prints which loops it checked. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

int nn__vec_isa(void); /* runtime/gemm_internal.h: 2 AVX-512, 1 AVX2, 0 plain */

#define GUARD (-7777.5f)
#define PAD 8

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *arr(long n, float scale, float shift)
{
    float *p = malloc(sizeof(float) * (size_t)(n + PAD));
    ck_assert_ptr_nonnull(p);
    for (long i = 0; i < n; i++)
        p[i] = scale != 0.0f ? frand() * scale + shift : GUARD;
    for (long i = n; i < n + PAD; i++)
        p[i] = GUARD;
    return p;
}

static float *copy(const float *a, long n)
{
    float *p = arr(n, 0.0f, 0.0f);
    memcpy(p, a, sizeof(float) * (size_t)(n + PAD));
    return p;
}

static void same(const float *got, const float *want, long n, const char *what, int ci)
{
    /* (ck_assert_* marks its place in a file per call: only on failure) */
    for (long i = 0; i < n + PAD; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            ck_abort_msg("case %d: %s[%ld] = %a, the generated loops give %a%s", ci, what, i,
                         (double)got[i], (double)want[i], i >= n ? " (past the end)" : "");
}

/* ---- the generated --no-blas loops, by hand ---- */

typedef struct {
    int c;
    long l;
    int n;
    float shift;   /* of x: a large mean beside a small spread */
} bcase;

static const bcase cases[] = {
    {3, 1, 7, 0.0f},   {6, 5, 9, 2.0f},    {4, 9, 4, 0.0f},     {2, 16, 3, 0.0f},
    {5, 17, 3, -3.0f}, {3, 100, 7, 0.5f},  {16, 1024, 5, 0.0f}, {1, 1024, 70, 10.0f},
    {40, 64, 128, 0.0f}, {19, 37, 100, 1.5f}, {7, 1, 20000, 0.25f}, {32, 256, 9, 0.0f},
};

static void ref_forward(const nn_batch_norm_geom *g, int n, const float *x, float *y,
                        int training, const float *w, const float *b, float *rm, float *rv,
                        int64_t *nbt, float *smean, float *sinvstd)
{
    const long C = g->c, L = g->l;
    const int M = n * (int)L;
    int batch = training || rm == NULL;
    if (rm && training)
        nbt[0] += 1;
    for (long c = 0; c < C; c++) {
        double mean, invstd;
        if (batch) {
            double s = 0.0, v = 0.0;
            if (L >= 16) {
                long body = L / 8 * 8;
                double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0,
                       s7 = 0.0, v0 = 0.0, v1 = 0.0, v2 = 0.0, v3 = 0.0, v4 = 0.0, v5 = 0.0,
                       v6 = 0.0, v7 = 0.0;
                for (int r = 0; r < n; r++) {
                    const float *xr = x + (r * C + c) * L;
                    for (long l = 0; l < body; l += 8) {
                        s0 += xr[l + 0];
                        s1 += xr[l + 1];
                        s2 += xr[l + 2];
                        s3 += xr[l + 3];
                        s4 += xr[l + 4];
                        s5 += xr[l + 5];
                        s6 += xr[l + 6];
                        s7 += xr[l + 7];
                    }
                    for (long l = body; l < L; l++)
                        s += xr[l];
                }
                s += ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
                mean = s / M;
                for (int r = 0; r < n; r++) {
                    const float *xr = x + (r * C + c) * L;
                    for (long l = 0; l < body; l += 8) {
                        { const double d = xr[l + 0] - mean; v0 += d * d; }
                        { const double d = xr[l + 1] - mean; v1 += d * d; }
                        { const double d = xr[l + 2] - mean; v2 += d * d; }
                        { const double d = xr[l + 3] - mean; v3 += d * d; }
                        { const double d = xr[l + 4] - mean; v4 += d * d; }
                        { const double d = xr[l + 5] - mean; v5 += d * d; }
                        { const double d = xr[l + 6] - mean; v6 += d * d; }
                        { const double d = xr[l + 7] - mean; v7 += d * d; }
                    }
                    for (long l = body; l < L; l++) {
                        double d = xr[l] - mean;
                        v += d * d;
                    }
                }
                v += ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));
            } else {
                for (int r = 0; r < n; r++)
                    for (long l = 0; l < L; l++)
                        s += x[(r * C + c) * L + l];
                mean = s / M;
                for (int r = 0; r < n; r++)
                    for (long l = 0; l < L; l++) {
                        double d = x[(r * C + c) * L + l] - mean;
                        v += d * d;
                    }
            }
            invstd = 1.0 / sqrt(v / M + g->eps);
            if (rm) {
                rm[c] = (float)(g->momentum * mean + (1.0 - g->momentum) * rm[c]);
                rv[c] = (float)(g->momentum * (v / (M - 1)) + (1.0 - g->momentum) * rv[c]);
            }
        } else {
            mean = rm[c];
            invstd = 1.0 / sqrt((double)rv[c] + g->eps);
        }
        if (smean) {
            smean[c] = (float)mean;
            sinvstd[c] = (float)invstd;
        }
        const float mf = (float)mean, a = w ? (float)invstd * w[c] : (float)invstd;
        for (int r = 0; r < n; r++)
            for (long l = 0; l < L; l++) {
                long k = (r * C + c) * L + l;
                y[k] = b ? (x[k] - mf) * a + b[c] : (x[k] - mf) * a;
            }
    }
}

static void ref_backward(const nn_batch_norm_geom *g, int n, const float *gy, float *gx,
                         const float *x, int batch, const float *smean, const float *sinvstd,
                         const float *w, float *gw, float *gb, int set_w, int set_b)
{
    const long C = g->c, L = g->l;
    const int M = n * (int)L;
    for (long c = 0; c < C; c++) {
        const double mean = smean[c], invstd = sinvstd[c];
        double sg = 0.0, sgx = 0.0;
        if (L >= 16) {
            long body = L / 8 * 8;
            double g0 = 0.0, g1 = 0.0, g2 = 0.0, g3 = 0.0, g4 = 0.0, g5 = 0.0, g6 = 0.0,
                   g7 = 0.0, h0 = 0.0, h1 = 0.0, h2 = 0.0, h3 = 0.0, h4 = 0.0, h5 = 0.0,
                   h6 = 0.0, h7 = 0.0;
            for (int r = 0; r < n; r++) {
                const float *gr = gy + (r * C + c) * L, *xr = x + (r * C + c) * L;
                for (long l = 0; l < body; l += 8) {
                    g0 += gr[l + 0]; h0 += (double)gr[l + 0] * (xr[l + 0] - mean);
                    g1 += gr[l + 1]; h1 += (double)gr[l + 1] * (xr[l + 1] - mean);
                    g2 += gr[l + 2]; h2 += (double)gr[l + 2] * (xr[l + 2] - mean);
                    g3 += gr[l + 3]; h3 += (double)gr[l + 3] * (xr[l + 3] - mean);
                    g4 += gr[l + 4]; h4 += (double)gr[l + 4] * (xr[l + 4] - mean);
                    g5 += gr[l + 5]; h5 += (double)gr[l + 5] * (xr[l + 5] - mean);
                    g6 += gr[l + 6]; h6 += (double)gr[l + 6] * (xr[l + 6] - mean);
                    g7 += gr[l + 7]; h7 += (double)gr[l + 7] * (xr[l + 7] - mean);
                }
                for (long l = body; l < L; l++) {
                    sg += gr[l];
                    sgx += (double)gr[l] * (xr[l] - mean);
                }
            }
            sg += ((g0 + g1) + (g2 + g3)) + ((g4 + g5) + (g6 + g7));
            sgx += ((h0 + h1) + (h2 + h3)) + ((h4 + h5) + (h6 + h7));
        } else {
            for (int r = 0; r < n; r++)
                for (long l = 0; l < L; l++) {
                    long k = (r * C + c) * L + l;
                    sg += gy[k];
                    sgx += (double)gy[k] * (x[k] - mean);
                }
        }
        if (gw)
            gw[c] = (float)((set_w ? 0.0 : (double)gw[c]) + sgx * invstd);
        if (gb)
            gb[c] = (float)((set_b ? 0.0 : (double)gb[c]) + sg);
        if (gx) {
            const double a = w ? invstd * w[c] : invstd;
            const double mg = sg / M, k2 = sgx * invstd * invstd / M;
            for (int r = 0; r < n; r++)
                for (long l = 0; l < L; l++) {
                    long k = (r * C + c) * L + l;
                    gx[k] = batch ? (float)((gy[k] - mg - (x[k] - mean) * k2) * a)
                                  : (float)(a * gy[k]);
                }
        }
    }
}

/* ---- the definition, in long double ---- */

static void check_values(const nn_batch_norm_geom *g, int n, const float *x, const float *y,
                         const float *w, const float *b, const float *gy, const float *gx,
                         const float *gw, const float *gb, int ci)
{
    const long C = g->c, L = g->l, M = n * L;
    for (long c = 0; c < C; c++) {
        long double s = 0, v = 0, sg = 0, sgx = 0;
        for (long r = 0; r < n; r++)
            for (long l = 0; l < L; l++)
                s += x[(r * C + c) * L + l];
        long double mean = s / M;
        for (long r = 0; r < n; r++)
            for (long l = 0; l < L; l++) {
                long double d = x[(r * C + c) * L + l] - mean;
                v += d * d;
            }
        long double invstd = 1.0L / sqrtl(v / M + (long double)g->eps);
        long double wc = w ? w[c] : 1.0L, bc = b ? b[c] : 0.0L;
        for (long r = 0; r < n; r++)
            for (long l = 0; l < L; l++) {
                long k = (r * C + c) * L + l;
                long double xh = (x[k] - mean) * invstd;
                sg += gy[k];
                sgx += gy[k] * xh;
                long double want = xh * wc + bc;
                if (!(fabsl(y[k] - want) <= 1e-5L * (1.0L + fabsl(want))))
                    ck_abort_msg("case %d: y[%ld] = %.9g, want %.9Lg", ci, k, y[k], want);
            }
        ck_assert_msg(fabsl(gb[c] - sg) <= 1e-5L * (1.0L + fabsl(sg)),
                      "case %d: gb[%ld] = %.9g, want %.9Lg", ci, c, gb[c], sg);
        ck_assert_msg(fabsl(gw[c] - sgx) <= 1e-5L * (1.0L + fabsl(sgx)),
                      "case %d: gw[%ld] = %.9g, want %.9Lg", ci, c, gw[c], sgx);
        for (long r = 0; r < n; r++)
            for (long l = 0; l < L; l++) {
                long k = (r * C + c) * L + l;
                long double xh = (x[k] - mean) * invstd;
                long double want = wc * invstd * (gy[k] - sg / M - xh * sgx / M);
                if (!(fabsl(gx[k] - want) <= 1e-5L * (1.0L + fabsl(want) + wc * invstd)))
                    ck_abort_msg("case %d: gx[%ld] = %.9g, want %.9Lg", ci, k, gx[k], want);
            }
    }
}

/* one configuration of one case: the runtime against the loops, bit for
   bit, at 1, 2 and 3 threads */
static void one(int ci, int training, int track, int affine, int keep, int want_gx, int set)
{
    const bcase *bc = &cases[ci];
    nn_batch_norm_geom g = {bc->c, bc->l, 1e-5, 0.1};
    long nx = (long)bc->n * bc->c * bc->l, C = bc->c;
    float *x = arr(nx, 1.0f, bc->shift), *gy = arr(nx, 1.0f, 0.0f);
    float *w = arr(C, 1.0f, 1.0f), *b = arr(C, 1.0f, 0.0f);
    float *rm0 = arr(C, 0.5f, 0.0f), *rv0 = arr(C, 0.5f, 1.0f);
    float *gw0 = arr(C, 1.0f, 0.0f), *gb0 = arr(C, 1.0f, 0.0f);
    float *y_r = arr(nx, 0.0f, 0.0f), *gx_r = arr(nx, 0.0f, 0.0f), *rm_r = copy(rm0, C),
          *rv_r = copy(rv0, C), *sm_r = arr(C, 0.0f, 0.0f), *si_r = arr(C, 0.0f, 0.0f),
          *gw_r = copy(gw0, C), *gb_r = copy(gb0, C);
    int64_t nbt_r = 3;
    /* the backward needs a mean and invstd: the forward's when kept, else
       any (the eval-mode backward of a layer that kept none still reads them) */
    float *sm_in = arr(C, 0.5f, 0.0f), *si_in = arr(C, 0.25f, 1.0f);
    ref_forward(&g, bc->n, x, y_r, training, affine ? w : NULL, affine ? b : NULL,
                track ? rm_r : NULL, track ? rv_r : NULL, &nbt_r, keep ? sm_r : NULL,
                keep ? si_r : NULL);
    const float *sm_use = keep ? sm_r : sm_in, *si_use = keep ? si_r : si_in;
    int batch = training || !track;
    ref_backward(&g, bc->n, gy, want_gx ? gx_r : NULL, x, batch, sm_use, si_use,
                 affine ? w : NULL, gw_r, gb_r, set, set);
    for (int nt = 1; nt <= 3; nt++) {
        nn_set_num_threads(nt);
        float *y = arr(nx, 0.0f, 0.0f), *gx = arr(nx, 0.0f, 0.0f), *rm = copy(rm0, C),
              *rv = copy(rv0, C), *sm = arr(C, 0.0f, 0.0f), *si = arr(C, 0.0f, 0.0f),
              *gw = copy(gw0, C), *gb = copy(gb0, C);
        int64_t nbt = 3;
        nn_batch_norm_forward(&g, bc->n, x, y, training, affine ? w : NULL, affine ? b : NULL,
                              track ? rm : NULL, track ? rv : NULL, &nbt, keep ? sm : NULL,
                              keep ? si : NULL);
        same(y, y_r, nx, "y", ci);
        same(rm, rm_r, C, "running_mean", ci);
        same(rv, rv_r, C, "running_var", ci);
        same(sm, sm_r, C, "saved mean", ci);
        same(si, si_r, C, "saved invstd", ci);
        ck_assert_msg(nbt == nbt_r, "case %d: num_batches_tracked %lld, want %lld", ci,
                      (long long)nbt, (long long)nbt_r);
        nn_batch_norm_backward(&g, bc->n, gy, want_gx ? gx : NULL, x, batch, sm_use, si_use,
                               affine ? w : NULL, gw, gb, set, set);
        same(gx, gx_r, nx, "gx", ci);
        same(gw, gw_r, C, "gw", ci);
        same(gb, gb_r, C, "gb", ci);
        if (nt == 1 && training && keep && want_gx && set && bc->n * bc->l > 1)
            check_values(&g, bc->n, x, y, affine ? w : NULL, affine ? b : NULL, gy, gx, gw, gb,
                         ci);
        /* with the relu in the store: the relu expression on the reference
           y, the same statistics */
        float *yr = arr(nx, 0.0f, 0.0f), *want = copy(y_r, nx), *rm2 = copy(rm0, C),
              *rv2 = copy(rv0, C), *sm2 = arr(C, 0.0f, 0.0f), *si2 = arr(C, 0.0f, 0.0f);
        for (long i = 0; i < nx; i++)
            want[i] = y_r[i] > 0.0f ? y_r[i] : 0.0f;
        int64_t nbt2 = 3;
        nn_batch_norm_relu_forward(&g, bc->n, x, yr, training, affine ? w : NULL,
                                   affine ? b : NULL, track ? rm2 : NULL, track ? rv2 : NULL,
                                   &nbt2, keep ? sm2 : NULL, keep ? si2 : NULL);
        same(yr, want, nx, "relu(y)", ci);
        same(rm2, rm_r, C, "running_mean (relu)", ci);
        same(rv2, rv_r, C, "running_var (relu)", ci);
        same(sm2, sm_r, C, "saved mean (relu)", ci);
        same(si2, si_r, C, "saved invstd (relu)", ci);
        ck_assert_msg(nbt2 == nbt_r, "case %d: num_batches_tracked (relu)", ci);
        free(yr), free(want), free(rm2), free(rv2), free(sm2), free(si2);
        free(y), free(gx), free(rm), free(rv), free(sm), free(si), free(gw), free(gb);
    }
    nn_set_num_threads(0);
    free(x), free(gy), free(w), free(b), free(rm0), free(rv0), free(gw0), free(gb0);
    free(y_r), free(gx_r), free(rm_r), free(rv_r), free(sm_r), free(si_r), free(gw_r),
        free(gb_r), free(sm_in), free(si_in);
}

START_TEST(test_bn)
{
    /* training with running statistics, the mean kept, gx and set gradients:
       the common case, and the one checked against the definition */
    one(_i, 1, 1, 1, 1, 1, 1);
    one(_i, 1, 1, 1, 1, 1, 0);   /* gradients accumulated */
    one(_i, 0, 1, 1, 1, 1, 1);   /* eval: running statistics */
    one(_i, 1, 0, 1, 1, 1, 1);   /* no running statistics */
    one(_i, 0, 0, 0, 1, 0, 0);   /* ... in eval (still the batch's), not affine, no gx */
    one(_i, 1, 1, 0, 0, 1, 1);   /* not affine, nothing kept */
}
END_TEST

/* the same layer twice, the second call's statistics from the first's
   running ones: nn_batch_norm_forward in eval mode reads what training
   wrote, and num_batches_tracked counts training calls only */
START_TEST(test_bn_modes)
{
    nn_batch_norm_geom g = {4, 20, 1e-3, 0.25};
    int n = 6;
    long nx = (long)n * 4 * 20;
    float *x = arr(nx, 2.0f, 1.0f), *y = arr(nx, 0.0f, 0.0f);
    float rm[4] = {0, 0, 0, 0}, rv[4] = {1, 1, 1, 1};
    int64_t nbt = 0;
    nn_batch_norm_forward(&g, n, x, y, 1, NULL, NULL, rm, rv, &nbt, NULL, NULL);
    ck_assert_int_eq((int)nbt, 1);
    for (int c = 0; c < 4; c++) {
        double s = 0, v = 0;
        for (int r = 0; r < n; r++)
            for (int l = 0; l < 20; l++)
                s += x[(r * 4 + c) * 20 + l];
        double mean = s / (n * 20);
        for (int r = 0; r < n; r++)
            for (int l = 0; l < 20; l++) {
                double d = x[(r * 4 + c) * 20 + l] - mean;
                v += d * d;
            }
        ck_assert_msg(fabs(rm[c] - 0.25 * mean) < 1e-6, "running_mean[%d] %g, want %g", c,
                      rm[c], 0.25 * mean);
        double want = 0.25 * v / (n * 20 - 1) + 0.75;
        ck_assert_msg(fabs(rv[c] - want) < 1e-6, "running_var[%d] %g, want %g", c, rv[c], want);
    }
    nn_batch_norm_forward(&g, n, x, y, 0, NULL, NULL, rm, rv, &nbt, NULL, NULL);
    ck_assert_int_eq((int)nbt, 1);
    for (long k = 0; k < nx; k++) {
        int c = (int)(k / 20 % 4);
        float want = (x[k] - rm[c]) * (float)(1.0 / sqrt((double)rv[c] + 1e-3));
        if (y[k] != want)
            ck_abort_msg("eval y[%ld] = %a, want %a", k, (double)y[k], (double)want);
    }
    free(x), free(y);
}
END_TEST

int main(void)
{
    static const char *const names[] = {"plain", "AVX2", "AVX-512"};
    const char *isa = getenv("NNGEN_ISA"), *mode = getenv("NNGEN_GEMM");
    int v = nn__vec_isa();
    printf("batch norm under test with the %s loops, nn_num_threads() = %d\n", names[v],
           nn_num_threads());
    /* the loops the environment asks for, where the CPU has them */
    if (mode && strcmp(mode, "portable") == 0 && v != 0) {
        printf("FAIL: NNGEN_GEMM=portable but the %s loops ran\n", names[v]);
        return EXIT_FAILURE;
    }
    if (isa && strcmp(isa, "avx2") == 0 && v == 2) {
        printf("FAIL: NNGEN_ISA=avx2 but the AVX-512 loops ran\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("norm");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_bn, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_bn_modes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
