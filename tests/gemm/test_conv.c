/* Unit tests of the runtime's conv2d (runtime/conv.c) and sigmoid
 * (runtime/act.c, the AVX-512 loops of gemm_avx512.c and the AVX2 ones of
 * act_avx2.c, which must give the same bits).
 *
 * Oracles: a direct double-precision convolution (the definition of
 * nn.Conv2d: cross-correlation over (c, kh, kw) with zero padding) and its
 * gradients written out as loops; 1 / (1 + exp(-x)) in double.  Checked:
 *   - forward, input, weight and bias gradients against the oracle within
 *     1e-5 * (1 + the sum of the absolute terms), for groups, unequal
 *     strides, dilations and paddings, batches 1, 3, 19 and 40 (below, at
 *     and above the 16 blocks of the gradient sums);
 *   - set vs accumulate (gw += ... when setw is 0), NULL gx / gw / gb;
 *   - the thread count changes no bit of any result (1, 2 and 3 threads);
 *   - the arrays past the end of y, gx, gw and gb are not written;
 *   - sigmoid within 3 float ulps of torch's float formula 1 / (1 + e^-x)
 *     computed with e^-x correctly rounded (from double; inf past FLT_MAX),
 *     absolute 1e-45 in the denormal range: the runtime's e^x is within 1
 *     ulp (0.996 measured over [-87, 88] against exp in double), which can move the rounding
 *     of 1 + e^-x by one more ulp, and the division rounds on both sides
 *     (3.0 ulps seen at x = -16.7; torch's own 1-ulp expf does the same); NaN, +-inf, in place, counts that are not a multiple
 *     of 16, and its backward bit for bit as the scalar expression
 *     gy * (1 - y) * y.
  * Three cases have output rows of 64 or more (conv.c computes those by rows,
 * the others wide); five are stride 1, one group and 8 or more input
 * channels, whose input gradient conv.c computes as the transposed forward
 * on nngen's kernel; five have stride 2 across (the phase planes' vector
 * path).
 * The program runs as is, with NNGEN_GEMM=cblas, with NNGEN_ISA=avx2 and
 * with NNGEN_GEMM=portable (tests/gemm/meson.build): the first runs the
 * threaded implicit GEMMs on the CPU's kernels (AVX-512, or AVX2 on a CPU
 * without AVX-512F), the third those on the AVX2 kernels (conv_avx2.c)
 * wherever the CPU has AVX2, the second and fourth im2col on the caller
 * alone. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "../../runtime/gemm_internal.h"

#define GUARD (-7777.5f)
#define PAD 8 /* guard floats after each output array */

static uint64_t rs = 88172645463325252ull;
static float frand(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *arr(long n, int random)
{
    float *p = malloc(sizeof(float) * (size_t)(n + PAD));
    ck_assert_ptr_nonnull(p);
    for (long i = 0; i < n; i++)
        p[i] = random ? frand() : GUARD;
    for (long i = n; i < n + PAD; i++)
        p[i] = GUARD;
    return p;
}

static void guards_ok(const float *p, long n, const char *what)
{
    for (long i = n; i < n + PAD; i++)
        ck_assert_msg(p[i] == GUARD, "%s written past its end at %ld", what, i - n);
}

typedef struct {
    nn_conv2d_geom g;
    int n;
} conv_case;

/* input index of (r, c, ih, iw), or -1 when it is padding */
static long xidx(const nn_conv2d_geom *g, long r, long c, long oh, long ow, long kh, long kw)
{
    long ih = oh * g->sh - g->pt + kh * g->dh, iw = ow * g->sw - g->pl + kw * g->dw;
    if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
        return -1;
    return ((r * g->c + c) * g->h + ih) * g->w + iw;
}

typedef struct {
    long nx, nw, ny;
    float *x, *w, *b, *gy;
    float *y, *gx, *gw, *gb, *work;
} conv_run;

static void run_conv(const conv_case *k, conv_run *o, int threads, int setw, float init_grad)
{
    const nn_conv2d_geom *g = &k->g;
    nn_set_num_threads(threads);
    o->y = arr(o->ny, 0);
    o->gx = arr(o->nx, 0);
    o->gw = arr(o->nw, 0);
    o->gb = arr(g->o, 0);
    for (long i = 0; i < o->nw; i++)
        o->gw[i] = init_grad;
    for (long i = 0; i < g->o; i++)
        o->gb[i] = init_grad;
    o->work = arr((long)nn_conv2d_work_floats(g), 0);
    nn_conv2d_forward(g, k->n, o->x, o->w, o->b, o->y, o->work);
    nn_conv2d_backward(g, k->n, o->gy, o->x, o->w, o->gx, o->gw, o->gb, setw, setw, o->work);
    guards_ok(o->y, o->ny, "y");
    guards_ok(o->gx, o->nx, "gx");
    guards_ok(o->gw, o->nw, "gw");
    guards_ok(o->gb, g->o, "gb");
    guards_ok(o->work, (long)nn_conv2d_work_floats(g), "work");
}

static void free_outs(conv_run *o)
{
    free(o->y), free(o->gx), free(o->gw), free(o->gb), free(o->work);
}

static void near(double got, double want, double mag, const char *what, long i)
{
    ck_assert_msg(fabs(got - want) <= 1e-5 * (1.0 + mag), "%s[%ld]: got %.9g, want %.9g", what, i,
                  got, want);
}

static void check_case(const conv_case *k)
{
    const nn_conv2d_geom *g = &k->g;
    long cg = g->c / g->groups, og = g->o / g->groups, L = (long)g->oh * g->ow;
    conv_run o;
    o.nx = (long)k->n * g->c * g->h * g->w;
    o.nw = (long)g->o * cg * g->kh * g->kw;
    o.ny = (long)k->n * g->o * L;
    o.x = arr(o.nx, 1), o.w = arr(o.nw, 1), o.b = arr(g->o, 1), o.gy = arr(o.ny, 1);

    /* oracle */
    double *y = calloc((size_t)o.ny, sizeof(double)), *my = calloc((size_t)o.ny, sizeof(double));
    double *gx = calloc((size_t)o.nx, sizeof(double)), *mgx = calloc((size_t)o.nx, sizeof(double));
    double *gw = calloc((size_t)o.nw, sizeof(double)), *mgw = calloc((size_t)o.nw, sizeof(double));
    double *gb = calloc((size_t)g->o, sizeof(double)), *mgb = calloc((size_t)g->o, sizeof(double));
    for (long r = 0; r < k->n; r++)
        for (long oc = 0; oc < g->o; oc++)
            for (long oh = 0; oh < g->oh; oh++)
                for (long ow = 0; ow < g->ow; ow++) {
                    long yi = ((r * g->o + oc) * g->oh + oh) * g->ow + ow;
                    double s = o.b[oc], m = fabs(o.b[oc]), d = o.gy[yi];
                    gb[oc] += d, mgb[oc] += fabs(d);
                    for (long c = 0; c < cg; c++)
                        for (long kh = 0; kh < g->kh; kh++)
                            for (long kw = 0; kw < g->kw; kw++) {
                                long xi = xidx(g, r, oc / og * cg + c, oh, ow, kh, kw);
                                long wi = ((oc * cg + c) * g->kh + kh) * g->kw + kw;
                                if (xi < 0)
                                    continue;
                                s += (double)o.x[xi] * o.w[wi], m += fabs(o.x[xi] * o.w[wi]);
                                gx[xi] += d * o.w[wi], mgx[xi] += fabs(d * o.w[wi]);
                                gw[wi] += d * o.x[xi], mgw[wi] += fabs(d * o.x[xi]);
                            }
                    y[yi] = s, my[yi] = m;
                }

    conv_run one = o, two = o, three = o, acc = o;
    run_conv(k, &one, 1, 1, NAN);
    run_conv(k, &two, 2, 1, NAN);
    run_conv(k, &three, 3, 1, NAN);
    run_conv(k, &acc, 2, 0, 0.25f);
    for (long i = 0; i < o.ny; i++)
        near(one.y[i], y[i], my[i], "y", i);
    for (long i = 0; i < o.nx; i++)
        near(one.gx[i], gx[i], mgx[i], "gx", i);
    for (long i = 0; i < o.nw; i++) {
        near(one.gw[i], gw[i], mgw[i], "gw", i);
        near(acc.gw[i], gw[i] + 0.25, mgw[i] + 0.25, "gw (accumulated)", i);
    }
    for (long i = 0; i < g->o; i++) {
        near(one.gb[i], gb[i], mgb[i], "gb", i);
        near(acc.gb[i], gb[i] + 0.25, mgb[i] + 0.25, "gb (accumulated)", i);
    }
    ck_assert_msg(!memcmp(one.y, two.y, sizeof(float) * (size_t)o.ny) &&
                      !memcmp(one.y, three.y, sizeof(float) * (size_t)o.ny),
                  "y depends on the thread count");
    ck_assert_msg(!memcmp(one.gx, two.gx, sizeof(float) * (size_t)o.nx) &&
                      !memcmp(one.gx, three.gx, sizeof(float) * (size_t)o.nx),
                  "gx depends on the thread count");
    ck_assert_msg(!memcmp(one.gw, two.gw, sizeof(float) * (size_t)o.nw) &&
                      !memcmp(one.gw, three.gw, sizeof(float) * (size_t)o.nw),
                  "gw depends on the thread count");
    ck_assert_msg(!memcmp(one.gb, two.gb, sizeof(float) * (size_t)g->o) &&
                      !memcmp(one.gb, three.gb, sizeof(float) * (size_t)g->o),
                  "gb depends on the thread count");

    /* NULL gx, gw, gb: nothing else changes */
    conv_run part = o;
    nn_set_num_threads(2);
    part.gx = arr(o.nx, 0);
    part.work = arr((long)nn_conv2d_work_floats(g), 0);
    nn_conv2d_backward(g, k->n, o.gy, o.x, o.w, part.gx, NULL, NULL, 1, 1, part.work);
    ck_assert_msg(!memcmp(part.gx, one.gx, sizeof(float) * (size_t)o.nx), "gx without gw differs");
    part.gw = arr(o.nw, 0);
    nn_conv2d_backward(g, k->n, o.gy, o.x, o.w, NULL, part.gw, NULL, 1, 1, part.work);
    ck_assert_msg(!memcmp(part.gw, one.gw, sizeof(float) * (size_t)o.nw), "gw without gx differs");
    free(part.gx), free(part.gw), free(part.work);

    free_outs(&one), free_outs(&two), free_outs(&three), free_outs(&acc);
    free(o.x), free(o.w), free(o.b), free(o.gy);
    free(y), free(my), free(gx), free(mgx), free(gw), free(mgw), free(gb), free(mgb);
    nn_set_num_threads(0);
}

/* {c, h, w, o, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, groups}, n */
static const conv_case cases[] = {
    {{1, 28, 28, 6, 28, 28, 5, 5, 1, 1, 2, 2, 1, 1, 1}, 3},    /* LeNet's first */
    {{6, 14, 14, 16, 10, 10, 5, 5, 1, 1, 0, 0, 1, 1, 1}, 19},  /* its second */
    {{4, 16, 16, 6, 8, 18, 3, 2, 2, 1, 1, 2, 1, 2, 2}, 40},    /* groups, strides, dilation */
    {{6, 8, 18, 4, 6, 6, 3, 3, 1, 3, 0, 0, 1, 1, 1}, 1},
    {{8, 8, 8, 16, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1}, 17},      /* ResNet's downsampling */
    {{4, 7, 9, 8, 7, 9, 3, 3, 1, 1, 2, 2, 2, 2, 4}, 5},        /* dilated 'same', depth groups */
    {{3, 5, 5, 2, 1, 1, 5, 5, 1, 1, 0, 0, 1, 1, 1}, 16},       /* one output pixel */
    {{3, 6, 70, 8, 6, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 5},     /* rows of 70: by output rows */
    {{4, 9, 140, 6, 5, 71, 3, 2, 2, 2, 1, 1, 1, 1, 2}, 3},    /* by rows, strided, groups */
    /* stride 1, one group, 8 or more input channels: the input gradient as
       the transposed forward (conv.c) where nngen's kernel runs */
    {{16, 12, 12, 16, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 19},
    {{16, 9, 11, 20, 9, 7, 3, 3, 1, 1, 2, 0, 2, 2, 1}, 5},     /* dilated, unequal pads */
    {{8, 10, 10, 12, 9, 9, 2, 2, 1, 1, 0, 0, 1, 1, 1}, 17},    /* even kernel, no padding */
    {{9, 4, 70, 8, 4, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 3},      /* its rows of 70 */
    {{8, 6, 6, 5, 8, 8, 3, 3, 1, 1, 2, 2, 1, 1, 1}, 4},        /* padding = kernel extent */
    /* stride 2 across: the phase planes' even and odd columns by permutes */
    {{16, 9, 13, 8, 5, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1}, 6},      /* 1 x 1, odd sizes */
    {{3, 11, 11, 4, 6, 6, 5, 5, 2, 2, 2, 2, 1, 1, 1}, 3},      /* padding 2 */
    {{5, 6, 41, 7, 3, 20, 3, 3, 2, 2, 1, 0, 1, 1, 1}, 2},      /* columns past the last window */
};

START_TEST(test_conv)
{
    check_case(&cases[_i]);
}
END_TEST

START_TEST(test_conv_empty)
{
    const nn_conv2d_geom *g = &cases[1].g;
    long nw = (long)g->o * g->c * g->kh * g->kw;
    float *gw = arr(nw, 1), *gb = arr(g->o, 1);
    nn_conv2d_backward(g, 0, NULL, NULL, NULL, NULL, gw, gb, 1, 1, NULL);
    for (long i = 0; i < nw; i++)
        ck_assert(gw[i] == 0.0f);
    for (long i = 0; i < g->o; i++)
        ck_assert(gb[i] == 0.0f);
    guards_ok(gw, nw, "gw");
    free(gw), free(gb);
}
END_TEST

static double ulp(double v)
{
    float f = (float)fabs(v);
    return (double)nextafterf(f, INFINITY) - f;
}

/* the inputs of the activation tests: the arr() values times scale[i % 3],
   then the 12 special values first, then NaN and the infinities */
static void act_inputs(float *x, long n, const float scale[3], const float special[12])
{
    for (long i = 0; i < n; i++)
        x[i] = x[i] * scale[i % 3];
    for (long i = 0; i < n && i < 12; i++)
        x[i] = special[i];
    if (n > 14) {
        x[12] = NAN, x[13] = INFINITY, x[14] = -INFINITY;
    }
}

/* f in place and with 3 threads, then with 1, then while the pool is held
   (as by another thread: the caller alone), gives y's bits */
static void same_bits_threads(void (*f)(long, const float *, float *), const float *x,
                              const float *y, long n)
{
    float *z = arr(n, 0);
    memcpy(z, x, sizeof(float) * (size_t)n);
    nn_set_num_threads(3);
    f(n, z, z);
    ck_assert_msg(!memcmp(z, y, sizeof(float) * (size_t)n), "in place / 3 threads differ");
    nn_set_num_threads(1);
    f(n, x, z);
    ck_assert_msg(!memcmp(z, y, sizeof(float) * (size_t)n), "1 thread differs");
    nn_set_num_threads(0);
    memset(z, 0, sizeof(float) * (size_t)n);
    ck_assert_msg(nn__pool_hold(1), "the pool is free");
    f(n, x, z);
    nn__pool_give();
    ck_assert_msg(!memcmp(z, y, sizeof(float) * (size_t)n), "differs while the pool is held");
    free(z);
}

START_TEST(test_sigmoid)
{
    static const long counts[] = {1, 15, 16, 17, 33, 16384, 40001, 100003};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        long n = counts[c];
        float *x = arr(n, 1), *y = arr(n, 0), *gy = arr(n, 1), *gx = arr(n, 0);
        static const float scale[3] = {110.0f, 8.0f, 8.0f};
        static const float special[12] = {0.0f, -0.0f, 88.0f, -88.0f, 103.0f, -103.0f, 1e-8f,
                                          -1e-8f, 20.0f, -20.0f, 16.6f, -87.3f};
        act_inputs(x, n, scale, special);
        nn_sigmoid_forward(n, x, y);
        guards_ok(y, n, "y");
        for (long i = 0; i < n; i++) {
            /* the float formula's value: e^-x overflows to inf past
               FLT_MAX, and the result is then 0 (as torch's) */
            double e = exp(-(double)x[i]);
            double want = e > FLT_MAX ? 0.0 : 1.0f / (1.0f + (float)e);
            if (isnan(x[i])) {
                ck_assert_msg(isnan(y[i]), "sigmoid(nan) = %g", y[i]);
                continue;
            }
            ck_assert_msg(fabs(y[i] - want) <= 3.0 * ulp(want) + 1e-45,
                          "sigmoid(%.9g) = %.9g, want %.9g (count %ld)", x[i], y[i], want, n);
        }
        nn_sigmoid_backward(n, gy, y, gx);
        guards_ok(gx, n, "gx");
        for (long i = 0; i < n; i++) {
            float want = gy[i] * (1.0f - y[i]) * y[i];
            ck_assert_msg(!memcmp(&gx[i], &want, sizeof want) || (isnan(want) && isnan(gx[i])),
                          "sigmoid backward [%ld]: %.9g, want %.9g", i, gx[i], want);
        }
        same_bits_threads(nn_sigmoid_forward, x, y, n);
        free(x), free(y), free(gy), free(gx);
    }
}
END_TEST

/* the runtime's internal tanh of the recurrent layers' gates (act.c) */
void nn__tanh_forward(long n, const float *x, float *y);

/* The vector loops (nn_conv_impl() "avx512" or "avx2"): tanh within 2 float ulps of
   tanh in double, exactly +-1 where tanhf is, -0 and NaN kept; elsewhere
   the runtime calls tanhf, and must give its bits (glibc's tanhf itself is
   up to 2 ulps from the rounded result: tanhf(0.236277804f) =
   0.231976882f, 2.01 ulps from tanh in double).  In place and with 1 and
   3 threads the same bits. */
START_TEST(test_tanh)
{
    const int vec = strcmp(nn_conv_impl(), "im2col") != 0;
    static const long counts[] = {1, 15, 16, 17, 33, 100003};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        long n = counts[c];
        float *x = arr(n, 1), *y = arr(n, 0);
        static const float scale[3] = {30.0f, 1.3f, 0.01f};
        static const float special[12] = {0.0f, -0.0f, 0.625f, -0.625f, 0.62499994f, 9.0f,
                                          -9.0f, 44.5f, 1e-8f, -1e-30f, 1e-45f, 88.0f};
        act_inputs(x, n, scale, special);
        nn__tanh_forward(n, x, y);
        guards_ok(y, n, "y");
        for (long i = 0; i < n; i++) {
            if (isnan(x[i])) {
                ck_assert_msg(isnan(y[i]), "tanh(nan) = %g", y[i]);
                continue;
            }
            if (!vec) {
                float t = tanhf(x[i]);
                ck_assert_msg(!memcmp(&y[i], &t, sizeof t), "tanh(%.9g) = %.9g, tanhf %.9g",
                              x[i], y[i], t);
                continue;
            }
            double want = tanh((double)x[i]);
            ck_assert_msg(fabs(y[i] - want) <= 2.0 * ulp(want) + 1e-45,
                          "tanh(%.9g) = %.9g, want %.9g (count %ld)", x[i], y[i], want, n);
            if (tanhf(x[i]) == 1.0f || tanhf(x[i]) == -1.0f)
                ck_assert_msg(y[i] == tanhf(x[i]), "tanh(%.9g) = %.9g, tanhf %.9g", x[i], y[i],
                              tanhf(x[i]));
            ck_assert_msg(signbit(y[i]) == signbit(x[i]), "tanh(%.9g) = %.9g: sign", x[i], y[i]);
        }
        same_bits_threads(nn__tanh_forward, x, y, n);
        free(x), free(y);
    }
}
END_TEST

#if NN_HAVE_AVX512_KERNEL
#include "../../runtime/gemm_internal.h"

/* The two vector sets' activations give the same bits (act_avx2.c's
   claim: its p 2^n by two exact multiplies rounds as AVX-512's scalef),
   over a sweep of about 2^20 float bit patterns of both signs (denormals,
   the ends of the exp range, NaNs and infinities among them) and the
   special values, in counts that end in every tail length of both
   widths.  Only where the CPU has AVX-512F, AVX2 and FMA: it says so when
   it cannot run. */
START_TEST(test_act_sets_same_bits)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx2") ||
        !__builtin_cpu_supports("fma")) {
        printf("test_act_sets_same_bits: not run, this CPU lacks AVX-512F (the sets' bits are "
               "compared on one that has both)\n");
        return;
    }
    const long n = (1L << 20) + 13;
    float *x = arr(n, 0), *g = arr(n, 1), *a = arr(n, 0), *b = arr(n, 0);
    for (long i = 0; i < n; i++) {
        uint32_t u = (uint32_t)((uint64_t)i * 4099u);
        memcpy(&x[i], &u, sizeof u);
    }
    static const float special[] = {0.0f, -0.0f, 88.0f, -88.0f, 103.0f, -103.0f, 104.5f,
                                    -104.5f, 87.0f, -87.0f, 0.625f, -0.625f, 0.62499994f,
                                    44.5f, 1e-45f, -1e-45f, 89.5f, -89.5f};
    memcpy(x, special, sizeof special);
    struct {
        const char *what;
        void (*f512)(long, const float *, float *), (*f2)(long, const float *, float *);
    } un[] = {{"sigmoid", nn__sigmoid_avx512, nn__sigmoid_avx2},
              {"tanh", nn__tanh_avx512, nn__tanh_avx2}};
    for (int f = 0; f < 2; f++) {
        un[f].f512(n, x, a);
        un[f].f2(n, x, b);
        for (long i = 0; i < n; i++)
            if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
                ck_abort_msg("%s(%a): AVX-512 %a, AVX2 %a", un[f].what, (double)x[i],
                             (double)a[i], (double)b[i]);
    }
    /* the backward on the sigmoid's outputs and on the raw patterns */
    for (int pass = 0; pass < 2; pass++) {
        const float *y = pass ? x : a;
        nn__sigmoid_avx512(n, x, a);
        nn__sigmoid_backward_avx512(n, g, y, b);
        float *c = arr(n, 0);
        nn__sigmoid_backward_avx2(n, g, y, c);
        ck_assert_msg(!memcmp(b, c, sizeof(float) * (size_t)n) , "sigmoid backward differs");
        free(c);
    }
    /* every tail: counts 1 .. 33 on an unaligned start, the floats past
       the end untouched */
    for (long k = 1; k <= 33; k++) {
        float *y2 = arr(k, 0);
        nn__sigmoid_avx512(k, x + 3, a);
        nn__sigmoid_avx2(k, x + 3, y2);
        guards_ok(y2, k, "sigmoid tail");
        ck_assert_msg(!memcmp(a, y2, sizeof(float) * (size_t)k), "sigmoid count %ld", k);
        nn__tanh_avx2(k, x + 3, y2);
        nn__tanh_avx512(k, x + 3, a);
        guards_ok(y2, k, "tanh tail");
        ck_assert_msg(!memcmp(a, y2, sizeof(float) * (size_t)k), "tanh count %ld", k);
        nn__sigmoid_backward_avx2(k, g + 1, x + 3, y2);
        nn__sigmoid_backward_avx512(k, g + 1, x + 3, a);
        guards_ok(y2, k, "sigmoid backward tail");
        ck_assert_msg(!memcmp(a, y2, sizeof(float) * (size_t)k), "backward count %ld", k);
        free(y2);
    }
    free(x), free(g), free(a), free(b);
}
END_TEST
#endif

/* relu, its backward, the sum and the sum's relu (act.c): the bits of the generated loops'
   expressions (relu's backward as the generated bit mask: gy where y > 0,
   else +0), NaN, infinities and signed zeros among the inputs, counts
   around the 16-lane vectors and the thread shares, in place, 1 and 3
   threads; the floats past the end untouched */
static float mask_select(float g, float y)
{
    union { float f; uint32_t u; } v;
    v.f = g;
    v.u &= (uint32_t)0 - (uint32_t)(y > 0.0f);
    return v.f;
}

static void ew_check(const float *got, const float *a, const float *b, long n, int kind,
                     const char *what)
{
    for (long i = 0; i < n; i++) {
        float t = a[i] + b[i];
        float want = kind == 0 ? (a[i] > 0.0f ? a[i] : 0.0f)
                     : kind == 1 ? mask_select(a[i], b[i])
                     : kind == 2 ? t
                                 : (t > 0.0f ? t : 0.0f);
        if (memcmp(&got[i], &want, sizeof want) != 0 && !(isnan(want) && isnan(got[i])))
            ck_abort_msg("%s[%ld] = %a, want %a (a %a, b %a, count %ld)", what, i,
                         (double)got[i], (double)want, (double)a[i], (double)b[i], n);
    }
}

START_TEST(test_elementwise)
{
    static const long counts[] = {1, 15, 16, 17, 33, 32768, 40001, 100003};
    static const float special[12] = {0.0f, -0.0f, 1e-45f, -1e-45f, 3.0f, -3.0f,
                                      1e30f, -1e30f, 0.5f, -0.5f, 7.0f, -0.0f};
    static const float scale[3] = {1.0f, 100.0f, 1e-3f};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        long n = counts[c];
        float *a = arr(n, 1), *b = arr(n, 1), *y = arr(n, 0), *z = arr(n, 0);
        act_inputs(a, n, scale, special);
        for (long i = 0; i < n && i < 12; i++) /* the other operand's signs vary too */
            b[i] = special[(i + 5) % 12];
        if (n > 16)
            b[15] = NAN, b[16] = -INFINITY;
        for (int nt = 1; nt <= 3; nt += 2) {
            nn_set_num_threads(nt);
            nn_relu_forward(n, a, y);
            guards_ok(y, n, "relu");
            ew_check(y, a, b, n, 0, "relu");
            nn_relu_backward(n, a, b, y);
            guards_ok(y, n, "relu backward");
            ew_check(y, a, b, n, 1, "relu backward");
            nn_add_forward(n, a, b, y);
            guards_ok(y, n, "add");
            ew_check(y, a, b, n, 2, "add");
            nn_add_relu_forward(n, a, b, y);
            guards_ok(y, n, "add relu");
            ew_check(y, a, b, n, 3, "add relu");
            /* in place: y = x, gx = gy, y = a */
            memcpy(z, a, sizeof(float) * (size_t)n);
            nn_relu_forward(n, z, z);
            ew_check(z, a, b, n, 0, "relu in place");
            memcpy(z, a, sizeof(float) * (size_t)n);
            nn_relu_backward(n, z, b, z);
            ew_check(z, a, b, n, 1, "relu backward in place");
            memcpy(z, a, sizeof(float) * (size_t)n);
            nn_add_forward(n, z, b, z);
            ew_check(z, a, b, n, 2, "add in place");
            memcpy(z, a, sizeof(float) * (size_t)n);
            nn_add_relu_forward(n, z, b, z);
            ew_check(z, a, b, n, 3, "add relu in place");
        }
        nn_set_num_threads(0);
        free(a), free(b), free(y), free(z);
    }
}
END_TEST

int main(void)
{
    printf("conv2d / sigmoid under test with nn_sgemm_impl() = %s, nn_conv_impl() = %s, "
           "nn_num_threads() = %d\n",
           nn_sgemm_impl(), nn_conv_impl(), nn_num_threads());
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_conv_empty);
    tcase_add_test(tc, test_sigmoid);
    tcase_add_test(tc, test_tanh);
    tcase_add_test(tc, test_elementwise);
#if NN_HAVE_AVX512_KERNEL
    tcase_add_test(tc, test_act_sets_same_bits);
#endif
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
