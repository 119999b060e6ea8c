/* Unit tests for runtime/rng.c and runtime/init.c that need no torch:
 * the generator against published mt19937 values and against values torch
 * 1.13 printed (hard-coded), the statistics of mixture and trunc_normal,
 * zero_abs_below, fans and gains, and degenerate or invalid inputs (which
 * must leave the tensor and the generator untouched and set nn_error).
 * The full comparison with torch is compare_torch.py. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static nn_tensor make(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    nn_tensor t;
    int64_t dims[NN_MAX_DIM];
    int64_t numel = 1;
    int d;
    dims[0] = d0;
    dims[1] = d1;
    dims[2] = d2;
    dims[3] = d3;
    memset(&t, 0, sizeof t);
    t.name = "t";
    t.ndim = ndim;
    for (d = 0; d < ndim; d++) {
        t.shape[d] = dims[d];
        numel *= dims[d];
    }
    t.numel = numel;
    t.data = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(float));
    ck_assert_ptr_nonnull(t.data);
    for (d = 0; d < numel; d++)
        t.data[d] = 123.0f; /* sentinel: "untouched" */
    return t;
}

static nn_tensor vec(int64_t n) { return make(1, n, 0, 0, 0); }

static int untouched(const nn_tensor *t)
{
    int64_t i;
    for (i = 0; i < t->numel; i++)
        if (t->data[i] != 123.0f)
            return 0;
    return 1;
}

/* Same generator state: same words, same position, same cached samples. */
static int same_rng(const nn_rng *a, const nn_rng *b)
{
    return memcmp(a->state, b->state, sizeof a->state) == 0 && a->left == b->left &&
           a->seed == b->seed && a->has_next_double_normal == b->has_next_double_normal &&
           (!a->has_next_double_normal || a->next_double_normal == b->next_double_normal);
}

static float hexf(const char *s)
{
    return (float)strtod(s, NULL);
}

static void clear_error(void)
{
    nn_set_error("%s", "");
}

static int has_error(void)
{
    return nn_error() != NULL && nn_error()[0] != '\0';
}

/* ------------------------------------------------------------------ */
/* the generator                                                        */

START_TEST(test_mt19937_reference)
{
    nn_rng r;
    uint32_t v = 0;
    int i;
    /* std::mt19937 with its default seed 5489: first output, and the
       10000th output required by the C++ standard */
    nn_rng_seed(&r, 5489);
    ck_assert_uint_eq(nn_rng_u32(&r), 3499211612u);
    nn_rng_seed(&r, 5489);
    for (i = 0; i < 10000; i++)
        v = nn_rng_u32(&r);
    ck_assert_uint_eq(v, 4123659995u);
}
END_TEST

START_TEST(test_u64_and_seed)
{
    nn_rng a, b;
    uint64_t hi, lo;
    nn_rng_seed(&a, 42);
    nn_rng_seed(&b, 42);
    hi = nn_rng_u32(&b);
    lo = nn_rng_u32(&b);
    ck_assert(nn_rng_u64(&a) == ((hi << 32) | lo)); /* first word is the high half */
    /* only the low 32 bits of the seed enter the state; all 64 are kept */
    nn_rng_seed(&a, (UINT64_C(7) << 32) | 5);
    nn_rng_seed(&b, 5);
    ck_assert(a.seed == ((UINT64_C(7) << 32) | 5));
    ck_assert_uint_eq(nn_rng_u32(&a), nn_rng_u32(&b));
    /* re-seeding drops a cached normal sample */
    nn_rng_seed(&a, 1);
    (void)nn_rng_normal(&a, 0.0, 1.0);
    ck_assert_int_eq(a.has_next_double_normal, 1);
    nn_rng_seed(&a, 1);
    ck_assert_int_eq(a.has_next_double_normal, 0);
}
END_TEST

/* Values printed by torch 1.13 (float.hex of the float32 results). */
START_TEST(test_torch_reference_values)
{
    static const char *uni0[] = {"0x1.fc2abp-2", "0x1.89545ep-1", "0x1.6a675p-4",
                                 "0x1.0e66p-3"};
    static const char *norm42_3[] = {"0x1.58c55cp-2", "0x1.07cd3ap-3", "0x1.e02dcep-3"};
    static const char *norm42_20[] = {"0x1.ed4a52p+0", "0x1.7cbea6p+0", "0x1.cd2acep-1",
                                      "-0x1.0d81b6p+1"};
    static const char *lin_w[] = {"0x1.867e84p-2", "-0x1.ba1768p-2", "0x1.e1cc3p-2",
                                  "0x1.7a4936p-2", "0x1.f0bc64p-2", "-0x1.c548a8p-2"};
    static const char *lin_b[] = {"-0x1.8cd3f4p-2", "0x1.1951aep-2"};
    static const char *trunc1[] = {"0x1.52c6aep-1", "-0x1.1c4d62p-1", "-0x1.df4ccp-3"};
    nn_rng r;
    nn_tensor t;
    int i;

    /* torch.manual_seed(0); torch.empty(4).uniform_() */
    nn_rng_seed(&r, 0);
    t = vec(4);
    nn_init_uniform(&t, &r, 0.0f, 1.0f);
    for (i = 0; i < 4; i++)
        ck_assert_float_eq(t.data[i], hexf(uni0[i]));
    free(t.data);

    /* torch.manual_seed(42); torch.empty(3).normal_(): scalar double path */
    nn_rng_seed(&r, 42);
    t = vec(3);
    nn_init_normal(&t, &r, 0.0f, 1.0f);
    for (i = 0; i < 3; i++)
        ck_assert_float_eq_tol(t.data[i], hexf(norm42_3[i]), 1e-6 * fabs(hexf(norm42_3[i])));
    free(t.data);

    /* torch.manual_seed(42); torch.empty(20).normal_(): vectorized path
       (only +, *, fma and sqrt: exact everywhere) */
    nn_rng_seed(&r, 42);
    t = vec(20);
    nn_init_normal(&t, &r, 0.0f, 1.0f);
    for (i = 0; i < 4; i++)
        ck_assert_float_eq(t.data[i], hexf(norm42_20[i]));
    free(t.data);

    /* torch.manual_seed(2**32 + 5); nn.Linear(3, 2) */
    nn_rng_seed(&r, (UINT64_C(1) << 32) + 5);
    {
        nn_tensor w = make(2, 2, 3, 0, 0), b = vec(2);
        nn_init_linear_default(&w, &b, &r);
        for (i = 0; i < 6; i++)
            ck_assert_float_eq(w.data[i], hexf(lin_w[i]));
        for (i = 0; i < 2; i++)
            ck_assert_float_eq(b.data[i], hexf(lin_b[i]));
        free(w.data);
        free(b.data);
    }

    /* torch.manual_seed(1); nn.init.trunc_normal_(torch.empty(3)) */
    nn_rng_seed(&r, 1);
    t = vec(3);
    nn_init_trunc_normal(&t, &r, 0.0f, 1.0f, -2.0f, 2.0f);
    for (i = 0; i < 3; i++)
        ck_assert_float_eq_tol(t.data[i], hexf(trunc1[i]), 1e-6 * fabs(hexf(trunc1[i])));
    free(t.data);
}
END_TEST

START_TEST(test_uniform_and_normal_scalars)
{
    nn_rng r, copy;
    int i;
    double z1, z2;
    nn_rng_seed(&r, 3);
    for (i = 0; i < 100000; i++) {
        float u = nn_rng_uniform(&r, 0.0f, 1.0f);
        float v = nn_rng_uniform(&r, -2.5f, 7.0f);
        ck_assert(u >= 0.0f && u < 1.0f);
        ck_assert(v >= -2.5f && v <= 7.0f);
    }
    /* the second Box-Muller sample is cached: no draw for it */
    nn_rng_seed(&r, 3);
    z1 = nn_rng_normal(&r, 0.0, 1.0);
    memcpy(&copy, &r, sizeof r);
    z2 = nn_rng_normal(&r, 10.0, 2.0);
    ck_assert(memcmp(copy.state, r.state, sizeof r.state) == 0 && copy.left == r.left);
    ck_assert_int_eq(r.has_next_double_normal, 0);
    ck_assert(fabs(z2 - (10.0 + 2.0 * copy.next_double_normal)) < 1e-12);
    ck_assert(isfinite(z1));
}
END_TEST

/* ------------------------------------------------------------------ */
/* mixture                                                              */

/* The seed chapter's mixture: 1/4 uniform [5, 10), 1/2 zero, 1/4 [-10, -5). */
START_TEST(test_mixture_frequencies)
{
    const int64_t n = 200000;
    nn_mix_component c[3];
    nn_rng r;
    nn_tensor t = vec(n);
    int64_t i, cnt[3] = {0, 0, 0};
    double sum_hi = 0.0, sum_lo = 0.0, sd;
    c[0].p = 0.25; c[0].kind = NN_MIX_UNIFORM;  c[0].a = 5.0f;   c[0].b = 10.0f;
    c[1].p = 0.5;  c[1].kind = NN_MIX_CONSTANT; c[1].a = 0.0f;   c[1].b = 0.0f;
    c[2].p = 0.25; c[2].kind = NN_MIX_UNIFORM;  c[2].a = -10.0f; c[2].b = -5.0f;
    nn_rng_seed(&r, 0);
    clear_error();
    nn_init_mixture(&t, &r, c, 3);
    ck_assert(!has_error());
    for (i = 0; i < n; i++) {
        float v = t.data[i];
        if (v >= 5.0f && v <= 10.0f) {
            cnt[0]++;
            sum_hi += v;
        } else if (v == 0.0f) {
            cnt[1]++;
        } else if (v >= -10.0f && v <= -5.0f) {
            cnt[2]++;
            sum_lo += v;
        } else {
            ck_abort_msg("mixture value %g outside every component", (double)v);
        }
    }
    /* counts within 5 standard errors of n p */
    sd = sqrt(n * 0.25 * 0.75);
    ck_assert(fabs((double)cnt[0] - n * 0.25) < 5 * sd);
    ck_assert(fabs((double)cnt[2] - n * 0.25) < 5 * sd);
    ck_assert(fabs((double)cnt[1] - n * 0.5) < 5 * sqrt(n * 0.25));
    /* uniform components: mean within 5 standard errors (sd 5/sqrt(12)) */
    ck_assert(fabs(sum_hi / cnt[0] - 7.5) < 5 * (5 / sqrt(12.0)) / sqrt((double)cnt[0]));
    ck_assert(fabs(sum_lo / cnt[2] + 7.5) < 5 * (5 / sqrt(12.0)) / sqrt((double)cnt[2]));
    free(t.data);
}
END_TEST

START_TEST(test_mixture_normal_component)
{
    const int64_t n = 100000;
    nn_mix_component c[3];
    nn_rng r;
    nn_tensor t = vec(n);
    int64_t i, cnt_n = 0, cnt_u = 0;
    double s = 0.0, s2 = 0.0, mean, sd;
    c[0].p = 0.3; c[0].kind = NN_MIX_NORMAL;  c[0].a = 100.0f; c[0].b = 2.0f;
    c[1].p = 0.0; c[1].kind = NN_MIX_CONSTANT; c[1].a = 55.0f; c[1].b = 0.0f; /* never */
    c[2].p = 0.7; c[2].kind = NN_MIX_UNIFORM; c[2].a = -1.0f;  c[2].b = 1.0f;
    nn_rng_seed(&r, 77);
    nn_init_mixture(&t, &r, c, 3);
    for (i = 0; i < n; i++) {
        float v = t.data[i];
        ck_assert(v != 55.0f);
        if (v > 50.0f) {
            cnt_n++;
            s += v;
            s2 += (double)v * v;
        } else {
            ck_assert(v >= -1.0f && v <= 1.0f);
            cnt_u++;
        }
    }
    sd = sqrt(n * 0.3 * 0.7);
    ck_assert(fabs((double)cnt_n - n * 0.3) < 5 * sd);
    mean = s / cnt_n;
    ck_assert(fabs(mean - 100.0) < 5 * 2.0 / sqrt((double)cnt_n));
    sd = sqrt(s2 / cnt_n - mean * mean);
    ck_assert(fabs(sd - 2.0) < 5 * 2.0 / sqrt(2.0 * cnt_n));
    free(t.data);
}
END_TEST

/* The documented consumption: one 64-bit draw per element for the choice;
 * a constant draws nothing more. */
START_TEST(test_mixture_stream)
{
    nn_mix_component c[2];
    nn_rng r, ref;
    nn_tensor t = vec(1000);
    int i;
    c[0].p = 0.5; c[0].kind = NN_MIX_CONSTANT; c[0].a = 1.0f;  c[0].b = 0.0f;
    c[1].p = 0.5; c[1].kind = NN_MIX_CONSTANT; c[1].a = -1.0f; c[1].b = 0.0f;
    nn_rng_seed(&r, 9);
    nn_rng_seed(&ref, 9);
    nn_init_mixture(&t, &r, c, 2);
    for (i = 0; i < 1000; i++) {
        uint64_t bits = nn_rng_u64(&ref) & ((UINT64_C(1) << 53) - 1);
        double u = (double)bits / 9007199254740992.0;
        ck_assert_float_eq(t.data[i], u < 0.5 ? 1.0f : -1.0f);
    }
    ck_assert(same_rng(&r, &ref));
    free(t.data);
}
END_TEST

START_TEST(test_mixture_invalid)
{
    nn_mix_component c[2];
    nn_rng r, ref;
    nn_tensor t = vec(10);
    c[0].p = 0.5; c[0].kind = NN_MIX_UNIFORM; c[0].a = 0.0f; c[0].b = 1.0f;
    c[1].p = 0.4; c[1].kind = NN_MIX_CONSTANT; c[1].a = 3.0f; c[1].b = 0.0f;
    nn_rng_seed(&r, 1);
    memcpy(&ref, &r, sizeof r);

    clear_error();
    nn_init_mixture(&t, &r, c, 2);                 /* sums to 0.9 */
    ck_assert(has_error());
    clear_error();
    nn_init_mixture(&t, &r, c, 0);                 /* no components */
    ck_assert(has_error());
    clear_error();
    nn_init_mixture(&t, &r, NULL, 2);
    ck_assert(has_error());
    c[1].p = 0.5;
    c[0].a = 2.0f;                                 /* uniform a > b */
    clear_error();
    nn_init_mixture(&t, &r, c, 2);
    ck_assert(has_error());
    c[0].a = 0.0f;
    c[0].p = -0.5; c[1].p = 1.5;                   /* negative weight */
    clear_error();
    nn_init_mixture(&t, &r, c, 2);
    ck_assert(has_error());
    c[0].p = NAN; c[1].p = 0.5;
    clear_error();
    nn_init_mixture(&t, &r, c, 2);
    ck_assert(has_error());
    c[0].p = 0.5; c[0].kind = NN_MIX_NORMAL; c[0].b = -1.0f; /* negative std */
    clear_error();
    nn_init_mixture(&t, &r, c, 2);
    ck_assert(has_error());
    c[0].kind = (nn_mix_kind)42;
    clear_error();
    nn_init_mixture(&t, &r, c, 2);
    ck_assert(has_error());
    ck_assert(untouched(&t));
    ck_assert(same_rng(&r, &ref));
    free(t.data);
}
END_TEST

/* ------------------------------------------------------------------ */
/* trunc_normal                                                         */

START_TEST(test_trunc_normal_bounds)
{
    static const double cases[][4] = {
        /* mean, std, a, b */
        {0.0, 1.0, -2.0, 2.0},
        {0.1, 0.02, -0.05, 0.3},
        {5.0, 1.0, -1.0, 1.0},      /* mean far outside: torch only warns */
        {0.0, 1.0, 0.0, 3.0},       /* one-sided */
        {0.0, 0.01, -1.0, 1.0},     /* bounds 100 std away */
        {0.5, 1.0, 0.25, 0.25},     /* a == b */
    };
    const int64_t n = 50000;
    size_t k;
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        nn_rng r;
        nn_tensor t = vec(n);
        int64_t i;
        double s = 0.0;
        float lo = (float)cases[k][2], hi = (float)cases[k][3];
        nn_rng_seed(&r, 1000 + k);
        clear_error();
        nn_init_trunc_normal_d(&t, &r, cases[k][0], cases[k][1], cases[k][2], cases[k][3]);
        ck_assert_msg(!has_error(), "case %d: %s", (int)k, nn_error());
        for (i = 0; i < n; i++) {
            ck_assert_msg(t.data[i] >= lo && t.data[i] <= hi, "case %d: %g outside [%g, %g]",
                          (int)k, (double)t.data[i], (double)lo, (double)hi);
            s += t.data[i];
        }
        if (k == 0) /* symmetric: mean 0, sd of N(0,1) cut at +-2 is 0.88 */
            ck_assert(fabs(s / n) < 5 * 0.88 / sqrt((double)n));
        if (k == 5)
            ck_assert_float_eq(t.data[0], 0.25f);
        free(t.data);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* zero_abs_below                                                       */

START_TEST(test_zero_abs_below)
{
    const float in[] = {-6.0f, -4.9f, -0.0f, 0.0f, 3.0f, 5.0f, -5.0f, 4.9999995f,
                        NAN, INFINITY, -INFINITY, 1e-30f};
    nn_tensor t = vec(12);
    int i;
    memcpy(t.data, in, sizeof in);
    nn_init_zero_abs_below(&t, 5.0f);
    ck_assert_float_eq(t.data[0], -6.0f);
    ck_assert(t.data[1] == 0.0f && signbit(t.data[1]));   /* -0.0, as torch prints -0.0000 */
    ck_assert(t.data[2] == 0.0f && signbit(t.data[2]));
    ck_assert(t.data[3] == 0.0f && !signbit(t.data[3]));
    ck_assert(t.data[4] == 0.0f && !signbit(t.data[4]));
    ck_assert_float_eq(t.data[5], 5.0f);                 /* |w| >= t is kept */
    ck_assert_float_eq(t.data[6], -5.0f);
    ck_assert(t.data[7] == 0.0f);
    ck_assert(isnan(t.data[8]));                          /* NaN * 0 stays NaN */
    ck_assert(isinf(t.data[9]) && t.data[9] > 0);
    ck_assert(isinf(t.data[10]) && t.data[10] < 0);
    ck_assert(t.data[11] == 0.0f);
    /* threshold 0 keeps everything (but NaN) */
    memcpy(t.data, in, sizeof in);
    nn_init_zero_abs_below(&t, 0.0f);
    for (i = 0; i < 12; i++)
        if (i != 8)
            ck_assert(memcmp(&t.data[i], &in[i], sizeof(float)) == 0);
    free(t.data);
    /* degenerate tensors: no crash */
    clear_error();
    nn_init_zero_abs_below(NULL, 1.0f);
    ck_assert(has_error());
}
END_TEST

/* ------------------------------------------------------------------ */
/* fans and gains                                                       */

START_TEST(test_fans)
{
    nn_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = 2; t.shape[0] = 8; t.shape[1] = 4;
    ck_assert_int_eq(nn_fan_in(&t), 4);
    ck_assert_int_eq(nn_fan_out(&t), 8);
    t.ndim = 4; t.shape[0] = 6; t.shape[1] = 3; t.shape[2] = 5; t.shape[3] = 5;
    ck_assert_int_eq(nn_fan_in(&t), 75);
    ck_assert_int_eq(nn_fan_out(&t), 150);
    t.ndim = 3; t.shape[0] = 2; t.shape[1] = 3; t.shape[2] = 4;
    ck_assert_int_eq(nn_fan_in(&t), 12);
    ck_assert_int_eq(nn_fan_out(&t), 8);
    t.ndim = 2; t.shape[0] = 0; t.shape[1] = 3;
    ck_assert_int_eq(nn_fan_in(&t), 3);
    ck_assert_int_eq(nn_fan_out(&t), 0);
    t.ndim = 2; t.shape[0] = 1; t.shape[1] = INT64_C(3000000000);   /* saturates */
    ck_assert_int_eq(nn_fan_in(&t), INT_MAX);
    t.ndim = 4; t.shape[0] = INT64_MAX; t.shape[1] = INT64_MAX;      /* no overflow */
    t.shape[2] = INT64_MAX; t.shape[3] = 2;
    ck_assert_int_eq(nn_fan_in(&t), INT_MAX);
    ck_assert_int_eq(nn_fan_out(&t), INT_MAX);
    /* torch raises for fewer than 2 dimensions */
    clear_error();
    t.ndim = 1; t.shape[0] = 5;
    ck_assert_int_eq(nn_fan_in(&t), -1);
    ck_assert(has_error());
    t.ndim = 0;
    ck_assert_int_eq(nn_fan_out(&t), -1);
    t.ndim = 7;
    ck_assert_int_eq(nn_fan_out(&t), -1);
    ck_assert_int_eq(nn_fan_in(NULL), -1);
}
END_TEST

START_TEST(test_calculate_gain)
{
    ck_assert_double_eq(nn_calculate_gain(NN_NL_LINEAR, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV1D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV2D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV3D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV_TRANSPOSE1D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV_TRANSPOSE2D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_CONV_TRANSPOSE3D, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_SIGMOID, NAN), 1.0);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_TANH, NAN), 5.0 / 3);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_RELU, NAN), sqrt(2.0));
    ck_assert_double_eq(nn_calculate_gain(NN_NL_SELU, NAN), 0.75);
    /* leaky_relu: NaN stands for None, slope 0.01 */
    ck_assert_double_eq(nn_calculate_gain(NN_NL_LEAKY_RELU, NAN), sqrt(2.0 / (1 + 0.01 * 0.01)));
    ck_assert_double_eq(nn_calculate_gain(NN_NL_LEAKY_RELU, 0.0), sqrt(2.0));
    ck_assert_double_eq(nn_calculate_gain(NN_NL_LEAKY_RELU, 0.2), sqrt(2.0 / 1.04));
    /* kaiming_uniform(a=sqrt(5)), nn.Linear's default: gain sqrt(1/3) */
    ck_assert_double_eq_tol(nn_calculate_gain(NN_NL_LEAKY_RELU, sqrt(5.0)), sqrt(1.0 / 3), 1e-15);
    /* torch's literal values: repr(calculate_gain('leaky_relu')) */
    ck_assert_double_eq(nn_calculate_gain(NN_NL_LEAKY_RELU, NAN), 1.4141428569978354);
    ck_assert_double_eq(nn_calculate_gain(NN_NL_TANH, NAN), 1.6666666666666667);
    clear_error();
    ck_assert(isnan(nn_calculate_gain((nn_nonlinearity)99, NAN)));
    ck_assert(has_error());
}
END_TEST

/* Bounds as torch computes them: the first draw of kaiming/xavier uniform is
 * u * (2 bound) - bound with bound rounded to float. */
START_TEST(test_bounds)
{
    nn_rng r;
    nn_tensor t = make(2, 200, 50, 0, 0);
    int64_t i;
    float maxabs = 0.0f, bound;
    nn_rng_seed(&r, 5);
    nn_init_kaiming_uniform(&t, &r, 0.0, NN_FAN_IN, NN_NL_RELU);
    bound = (float)(sqrt(3.0) * sqrt(2.0) / sqrt(50.0));
    for (i = 0; i < t.numel; i++)
        maxabs = fmaxf(maxabs, fabsf(t.data[i]));
    ck_assert(maxabs <= bound && maxabs > 0.99f * bound);
    nn_init_xavier_uniform(&t, &r, 1.0f);
    bound = (float)sqrt(6.0 / 250.0);
    maxabs = 0.0f;
    for (i = 0; i < t.numel; i++)
        maxabs = fmaxf(maxabs, fabsf(t.data[i]));
    ck_assert(maxabs <= bound && maxabs > 0.99f * bound);
    free(t.data);
}
END_TEST

/* ------------------------------------------------------------------ */
/* degenerate and invalid inputs                                        */

START_TEST(test_degenerate)
{
    nn_rng r, ref;
    nn_tensor one = vec(5), w2 = make(2, 3, 4, 0, 0), zero = make(2, 0, 5, 0, 0);
    nn_tensor empty;
    nn_mix_component c;
    nn_rng_seed(&r, 11);
    memcpy(&ref, &r, sizeof r);
    c.p = 1.0; c.kind = NN_MIX_UNIFORM; c.a = 0.0f; c.b = 1.0f;

    /* NULL tensor / generator: an error, no crash, no draw */
    clear_error(); nn_init_uniform(NULL, &r, 0, 1);            ck_assert(has_error());
    clear_error(); nn_init_normal(NULL, &r, 0, 1);             ck_assert(has_error());
    clear_error(); nn_init_constant(NULL, 1);                  ck_assert(has_error());
    clear_error(); nn_init_zeros(NULL);                        ck_assert(has_error());
    clear_error(); nn_init_ones(NULL);                         ck_assert(has_error());
    clear_error(); nn_init_xavier_uniform(NULL, &r, 1);        ck_assert(has_error());
    clear_error(); nn_init_xavier_normal(NULL, &r, 1);         ck_assert(has_error());
    clear_error(); nn_init_kaiming_uniform(NULL, &r, 0, NN_FAN_IN, NN_NL_RELU);
    ck_assert(has_error());
    clear_error(); nn_init_kaiming_normal(NULL, &r, 0, NN_FAN_IN, NN_NL_RELU);
    ck_assert(has_error());
    clear_error(); nn_init_trunc_normal(NULL, &r, 0, 1, -2, 2); ck_assert(has_error());
    clear_error(); nn_init_mixture(NULL, &r, &c, 1);           ck_assert(has_error());
    clear_error(); nn_init_linear_default(NULL, NULL, &r);     ck_assert(has_error());
    clear_error(); nn_init_uniform(&one, NULL, 0, 1);          ck_assert(has_error());
    clear_error(); nn_init_normal(&one, NULL, 0, 1);           ck_assert(has_error());
    clear_error(); nn_init_trunc_normal(&one, NULL, 0, 1, -2, 2); ck_assert(has_error());
    clear_error(); nn_init_mixture(&one, NULL, &c, 1);         ck_assert(has_error());
    clear_error(); nn_init_xavier_uniform(&w2, NULL, 1);       ck_assert(has_error());
    clear_error(); nn_init_linear_default(&w2, NULL, NULL);    ck_assert(has_error());

    /* torch errors: refused before any draw */
    clear_error(); nn_init_uniform(&one, &r, 1.0f, 0.0f);      ck_assert(has_error());
    clear_error(); nn_init_uniform(&one, &r, 0.0f, NAN);       ck_assert(has_error());
    clear_error(); nn_init_uniform(&one, &r, -INFINITY, 0.0f); ck_assert(has_error());
    clear_error(); nn_init_uniform(&one, &r, -3e38f, 3e38f);   ck_assert(has_error());
    clear_error(); nn_init_normal(&one, &r, 0.0f, -1.0f);      ck_assert(has_error());
    clear_error(); nn_init_normal_d(&one, &r, 0.0, NAN);       ck_assert(has_error());
    clear_error(); nn_init_xavier_uniform(&one, &r, 1.0f);     ck_assert(has_error());
    clear_error(); nn_init_xavier_normal(&one, &r, 1.0f);      ck_assert(has_error());
    clear_error(); nn_init_kaiming_uniform(&one, &r, 0, NN_FAN_IN, NN_NL_RELU);
    ck_assert(has_error());
    clear_error(); nn_init_kaiming_normal(&w2, &r, 0, (nn_fan_mode)7, NN_NL_RELU);
    ck_assert(has_error());
    clear_error(); nn_init_kaiming_uniform(&w2, &r, 0, NN_FAN_IN, (nn_nonlinearity)99);
    ck_assert(has_error());
    clear_error(); nn_init_trunc_normal(&one, &r, 0, 0, -2, 2); ck_assert(has_error());
    clear_error(); nn_init_trunc_normal(&one, &r, 0, -1, -2, 2); ck_assert(has_error());
    clear_error(); nn_init_trunc_normal(&one, &r, 0, 1, 2, -2); ck_assert(has_error());
    clear_error(); nn_init_trunc_normal_d(&one, &r, NAN, 1, -2, 2); ck_assert(has_error());
    clear_error(); nn_init_linear_default(&one, &one, &r);     ck_assert(has_error());
    {
        nn_tensor nodata = vec(2);
        free(nodata.data);
        nodata.data = NULL;
        clear_error(); nn_init_linear_default(&w2, &nodata, &r); ck_assert(has_error());
    }
    ck_assert(untouched(&one));
    ck_assert(untouched(&w2));
    ck_assert(same_rng(&r, &ref));

    /* zero-element tensors (even without data): no-ops, no draws, no error */
    memset(&empty, 0, sizeof empty);
    empty.ndim = 2;
    empty.shape[0] = 0;
    empty.shape[1] = 4;
    clear_error();
    nn_init_uniform(&empty, &r, 0, 1);
    nn_init_normal(&empty, &r, 0, 1);
    nn_init_constant(&empty, 3);
    nn_init_xavier_uniform(&empty, &r, 1);
    nn_init_xavier_normal(&empty, &r, 1);
    nn_init_kaiming_uniform(&empty, &r, 0, NN_FAN_IN, NN_NL_RELU);
    nn_init_kaiming_normal(&empty, &r, 0, NN_FAN_OUT, NN_NL_RELU);
    nn_init_trunc_normal(&empty, &r, 0, 1, -2, 2);
    nn_init_mixture(&empty, &r, &c, 1);
    nn_init_zero_abs_below(&empty, 1);
    nn_init_kaiming_uniform(&zero, &r, 0, NN_FAN_IN, NN_NL_RELU);
    nn_init_linear_default(&zero, NULL, &r);
    ck_assert_msg(!has_error(), "%s", nn_error());
    ck_assert(same_rng(&r, &ref));

    /* a tensor that claims elements but has no data */
    empty.shape[0] = 3;
    empty.numel = 12;
    clear_error(); nn_init_uniform(&empty, &r, 0, 1);          ck_assert(has_error());
    clear_error(); nn_init_constant(&empty, 1);                ck_assert(has_error());
    empty.numel = -1;
    empty.data = one.data;
    clear_error(); nn_init_normal(&empty, &r, 0, 1);           ck_assert(has_error());
    ck_assert(same_rng(&r, &ref));

    /* Linear(in_features=0): weight [3, 0] untouched, bias bound 0 -> zeros
       (still one draw per element, as torch) */
    {
        nn_tensor w = make(2, 3, 0, 0, 0), b = vec(3);
        int i;
        clear_error();
        nn_init_linear_default(&w, &b, &r);
        ck_assert(!has_error());
        for (i = 0; i < 3; i++)
            ck_assert(b.data[i] == 0.0f);
        for (i = 0; i < 3; i++)
            (void)nn_rng_u32(&ref);
        ck_assert(same_rng(&r, &ref));
        free(w.data);
        free(b.data);
    }

    /* std 0 and a == b are valid: constant results */
    {
        int i;
        nn_tensor t = vec(20);
        nn_init_normal(&t, &r, 1.5f, 0.0f);
        for (i = 0; i < 20; i++)
            ck_assert_float_eq(t.data[i], 1.5f);
        nn_init_uniform(&t, &r, 2.0f, 2.0f);
        for (i = 0; i < 20; i++)
            ck_assert_float_eq(t.data[i], 2.0f);
        free(t.data);
    }
    free(one.data);
    free(w2.data);
    free(zero.data);
}
END_TEST

START_TEST(test_constant)
{
    nn_tensor t = make(3, 2, 3, 4, 0);
    int64_t i;
    nn_init_ones(&t);
    for (i = 0; i < t.numel; i++)
        ck_assert_float_eq(t.data[i], 1.0f);
    nn_init_zeros(&t);
    for (i = 0; i < t.numel; i++)
        ck_assert(t.data[i] == 0.0f && !signbit(t.data[i]));
    nn_init_constant(&t, -42.5f);
    for (i = 0; i < t.numel; i++)
        ck_assert_float_eq(t.data[i], -42.5f);
    free(t.data);
}
END_TEST

/* Integer tensors (batch norm's num_batches_tracked): constant_, zeros_
   and ones_ fill them as Tensor.fill_ does; the expected values are what
   torch 1.13 gives for nn.init.constant_(torch.zeros(2, dtype=torch.long), v)
   (and torch.int32).  Every other initializer refuses them. */
static nn_tensor make_int(int dtype, int64_t n)
{
    nn_tensor t;
    int64_t i;
    memset(&t, 0, sizeof t);
    t.name = "n";
    t.ndim = 1;
    t.shape[0] = n;
    t.numel = n;
    t.dtype = dtype;
    t.data = malloc((size_t)n * 8 + 8);
    ck_assert_ptr_nonnull(t.data);
    for (i = 0; i < n * 2; i++)
        t.data[i] = 123.0f;
    return t;
}

static int64_t geti(const nn_tensor *t, int64_t i)
{
    if (t->dtype == NN_I64) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        return v;
    } else {
        int32_t v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        return v;
    }
}

START_TEST(test_int_constant)
{
    static const struct {
        float v;
        int ok;
        int64_t want;
    } i64[] = {
        {2.7f, 1, 2}, {-2.7f, 1, -2}, {0.5f, 1, 0}, {-0.0f, 1, 0}, {1.0f, 1, 1},
        {16777216.0f, 1, 16777216}, {4611686018427387904.0f, 1, INT64_C(4611686018427387904)},
        {9223372036854775808.0f, 1, INT64_MIN},      /* 2^63: torch stores INT64_MIN */
        {-9223372036854775808.0f, 1, INT64_MIN},
        {1e19f, 0, 0}, {-1e19f, 0, 0}, {NAN, 0, 0}, {INFINITY, 0, 0}, {-INFINITY, 0, 0},
    }, i32[] = {
        {2.7f, 1, 2}, {-2.7f, 1, -2}, {-2147483648.0f, 1, -2147483647 - 1},
        {2147483520.0f, 1, 2147483520},               /* the largest float below 2^31 */
        {2147483648.0f, 0, 0}, {2.5e9f, 0, 0}, {-2147483904.0f, 0, 0}, {NAN, 0, 0},
    };
    size_t k;
    for (k = 0; k < sizeof i64 / sizeof i64[0] + sizeof i32 / sizeof i32[0]; k++) {
        int is64 = k < sizeof i64 / sizeof i64[0];
        float v = is64 ? i64[k].v : i32[k - sizeof i64 / sizeof i64[0]].v;
        int ok = is64 ? i64[k].ok : i32[k - sizeof i64 / sizeof i64[0]].ok;
        int64_t want = is64 ? i64[k].want : i32[k - sizeof i64 / sizeof i64[0]].want;
        nn_tensor t = make_int(is64 ? NN_I64 : NN_I32, 3);
        int64_t i;
        clear_error();
        nn_init_constant(&t, v);
        if (ok) {
            ck_assert_msg(!has_error(), "%g: %s", (double)v, nn_error());
            for (i = 0; i < 3; i++)
                ck_assert_msg(geti(&t, i) == want, "int%d constant %g: %lld", is64 ? 64 : 32,
                              (double)v, (long long)geti(&t, i));
            if (!is64)                      /* 4 bytes an element, nothing after */
                ck_assert_float_eq(t.data[3], 123.0f);
        } else {
            ck_assert_msg(has_error(), "int%d constant %g accepted", is64 ? 64 : 32, (double)v);
            ck_assert_ptr_nonnull(strstr(nn_error(), "without overflow"));
            for (i = 0; i < 6; i++)
                ck_assert(t.data[i] == 123.0f);
        }
        nn_init_ones(&t);
        for (i = 0; i < 3; i++)
            ck_assert(geti(&t, i) == 1);
        nn_init_zeros(&t);
        for (i = 0; i < 3; i++)
            ck_assert(geti(&t, i) == 0);
        free(t.data);
    }
}
END_TEST

START_TEST(test_int_refused)
{
    nn_rng r, ref;
    nn_mix_component c;
    int dtypes[3] = {NN_I64, NN_I32, 9}, k;
    nn_rng_seed(&r, 3);
    memcpy(&ref, &r, sizeof r);
    c.p = 1.0; c.kind = NN_MIX_CONSTANT; c.a = 1.0f; c.b = 0.0f;
    for (k = 0; k < 3; k++) {
        nn_tensor t = make_int(dtypes[k], 4), w = make_int(dtypes[k], 4);
        w.ndim = 2;
        w.shape[0] = 2;
        w.shape[1] = 2;
        w.numel = 4;
#define REFUSED(call)                                                                 \
        do {                                                                          \
            clear_error();                                                            \
            call;                                                                     \
            ck_assert_msg(has_error(), "%s accepted dtype %d", #call, dtypes[k]);     \
        } while (0)
        REFUSED(nn_init_uniform(&t, &r, 0, 1));
        REFUSED(nn_init_normal(&t, &r, 0, 1));
        REFUSED(nn_init_normal(&w, &r, 0, 1));
        REFUSED(nn_init_xavier_uniform(&w, &r, 1));
        REFUSED(nn_init_xavier_normal(&w, &r, 1));
        REFUSED(nn_init_kaiming_uniform(&w, &r, 0, NN_FAN_IN, NN_NL_RELU));
        REFUSED(nn_init_kaiming_normal(&w, &r, 0, NN_FAN_IN, NN_NL_RELU));
        REFUSED(nn_init_trunc_normal(&t, &r, 0, 1, -2, 2));
        REFUSED(nn_init_mixture(&t, &r, &c, 1));
        REFUSED(nn_init_zero_abs_below(&t, 0.5f));
        REFUSED(nn_init_linear_default(&w, NULL, &r));
#undef REFUSED
        ck_assert_ptr_nonnull(strstr(nn_error(), "not float32"));
        ck_assert(untouched(&t) && untouched(&w));
        ck_assert(same_rng(&r, &ref));
        if (dtypes[k] == 9) {               /* an unknown dtype: constant refuses too */
            clear_error();
            nn_init_zeros(&t);
            ck_assert(has_error());
            ck_assert(untouched(&t));
        }
        free(t.data);
        free(w.data);
    }
    /* a float weight with an integer bias: refused before drawing the weight */
    {
        nn_tensor w = make(2, 3, 4, 0, 0), b = make_int(NN_I64, 3);
        clear_error();
        nn_init_linear_default(&w, &b, &r);
        ck_assert(has_error());
        ck_assert(untouched(&w) && untouched(&b));
        ck_assert(same_rng(&r, &ref));
        free(w.data);
        free(b.data);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("init");
    TCase *tc = tcase_create("init");
    SRunner *sr;
    int failed;
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mt19937_reference);
    tcase_add_test(tc, test_u64_and_seed);
    tcase_add_test(tc, test_torch_reference_values);
    tcase_add_test(tc, test_uniform_and_normal_scalars);
    tcase_add_test(tc, test_mixture_frequencies);
    tcase_add_test(tc, test_mixture_normal_component);
    tcase_add_test(tc, test_mixture_stream);
    tcase_add_test(tc, test_mixture_invalid);
    tcase_add_test(tc, test_trunc_normal_bounds);
    tcase_add_test(tc, test_zero_abs_below);
    tcase_add_test(tc, test_fans);
    tcase_add_test(tc, test_calculate_gain);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_degenerate);
    tcase_add_test(tc, test_constant);
    tcase_add_test(tc, test_int_constant);
    tcase_add_test(tc, test_int_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
