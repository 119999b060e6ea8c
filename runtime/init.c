/* torch.nn.init in C, consuming the generator exactly as the torch 1.13 CPU
 * kernels do (see rng.c for the generator itself).
 *
 * Reference points, all from torch 1.13 (python3-torch 1.13.1 in Debian 12):
 *   torch/nn/init.py            the initializers (bounds computed in double)
 *   torch/nn/modules/linear.py  Linear.reset_parameters
 *   aten/src/ATen/native/cpu/DistributionTemplates.h   normal_/uniform_ kernels
 *   aten/src/ATen/native/cpu/avx_mathfun.h  log256_ps / sincos256_ps
 *   aten/src/ATen/native/Math.h calc_erfinv (erfinv_)
 *
 * Floating-point contraction.  torch's CPU kernels are compiled once per CPU
 * capability; the AVX2 build (the one torch picks on any x86-64 with AVX2,
 * and on AVX-512 machines for normal_) is compiled with -mfma by GCC, whose
 * default for C++ is -ffp-contract=fast: every a*b+c in those kernels became
 * a fused multiply-add.  This file writes those places as explicit
 * fmaf()/fma() calls, so the result is the same on every machine and with
 * every compiler (this project builds as ISO C99, where GCC does not
 * contract).  Each fusion below was confirmed against the installed torch
 * (tests/init/compare_torch.py).
 *
 * Errors: the nn_init_* functions return nothing.  Where torch raises
 * (std < 0, from > to, fewer than 2 dimensions for a fan-based init, ...)
 * they leave the tensor untouched, draw nothing from the generator and
 * record the reason with nn_set_error(), as torch raises before drawing.
 *
 * dtypes: constant_, zeros_ and ones_ also fill integer tensors (NN_I64,
 * NN_I32: buffers such as num_batches_tracked), as Tensor.fill_ does; every
 * other initializer takes NN_F32 tensors only and refuses any other dtype
 * the same way (torch: "not implemented for 'Long'", or nothing nngen
 * needs).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <nngen/rt.h>

/* ------------------------------------------------------------------ */
/* Argument checks                                                      */

static const char *dtype_name(int dtype)
{
    switch (dtype) {
    case NN_F32: return "float32";
    case NN_I64: return "int64";
    case NN_I32: return "int32";
    default:     return "unknown";
    }
}

/* A tensor of any dtype we can write numel elements into.  numel 0 is
 * valid (torch's initializers are no-ops on empty tensors). */
static int tensor_ok_any(const nn_tensor *t, const char *fn)
{
    if (t == NULL) {
        nn_set_error("%s: tensor is NULL", fn);
        return 0;
    }
    if (t->numel < 0 || t->ndim < 0 || t->ndim > NN_MAX_DIM) {
        nn_set_error("%s: tensor '%s' has an invalid shape (ndim %d, numel %lld)", fn,
                     t->name ? t->name : "", t->ndim, (long long)t->numel);
        return 0;
    }
    if (t->numel > 0 && t->data == NULL) {
        nn_set_error("%s: tensor '%s' has no data", fn, t->name ? t->name : "");
        return 0;
    }
    return 1;
}

/* A float32 tensor we can write numel floats into. */
static int tensor_ok(const nn_tensor *t, const char *fn)
{
    if (!tensor_ok_any(t, fn))
        return 0;
    if (t->dtype != NN_F32) {
        nn_set_error("%s: tensor '%s' has dtype %s (%d), not float32", fn,
                     t->name ? t->name : "", dtype_name(t->dtype), t->dtype);
        return 0;
    }
    return 1;
}

static int rng_ok(const nn_rng *r, const char *fn)
{
    if (r == NULL) {
        nn_set_error("%s: generator is NULL", fn);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Fans: torch.nn.init._calculate_fan_in_and_fan_out                    */

/* fan_in = size(1) * prod(size(2:)), fan_out = size(0) * prod(size(2:)).
 * torch raises for fewer than 2 dimensions; here that returns -1 (and the
 * fan-based initializers refuse the tensor).  Products are computed in
 * 64 bits and saturate at INT64_MAX instead of overflowing. */
static int calc_fans(const nn_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    int64_t receptive = 1;
    int d;
    if (t == NULL || t->ndim < 2 || t->ndim > NN_MAX_DIM)
        return -1;
    for (d = 2; d < t->ndim; d++) {
        int64_t s = t->shape[d];
        if (s < 0)
            return -1;
        if (s != 0 && receptive > INT64_MAX / s)
            receptive = INT64_MAX;
        else
            receptive *= s;
    }
    if (t->shape[0] < 0 || t->shape[1] < 0)
        return -1;
    *fan_in = (t->shape[1] != 0 && receptive > INT64_MAX / t->shape[1])
                  ? INT64_MAX : t->shape[1] * receptive;
    *fan_out = (t->shape[0] != 0 && receptive > INT64_MAX / t->shape[0])
                   ? INT64_MAX : t->shape[0] * receptive;
    return 0;
}

/* The int API: -1 (and nn_error set) for tensors with fewer than 2
 * dimensions, where torch raises ValueError; fans beyond INT_MAX are
 * reported as INT_MAX (the initializers use the exact 64-bit value). */
static int fan_as_int(const nn_tensor *t, int want_in)
{
    int64_t fi, fo, f;
    if (calc_fans(t, &fi, &fo) != 0) {
        nn_set_error("fan in and fan out can not be computed for a tensor with "
                     "fewer than 2 dimensions");
        return -1;
    }
    f = want_in ? fi : fo;
    return f > INT_MAX ? INT_MAX : (int)f;
}

int nn_fan_in(const nn_tensor *t)  { return fan_as_int(t, 1); }
int nn_fan_out(const nn_tensor *t) { return fan_as_int(t, 0); }

/* ------------------------------------------------------------------ */
/* torch.nn.init.calculate_gain                                         */

/* param is the leaky_relu negative slope; NaN stands for Python's None
 * (default slope 0.01).  Other nonlinearities ignore it.  An unknown enum
 * value gives NaN and sets nn_error (torch: ValueError). */
double nn_calculate_gain(nn_nonlinearity nl, double param)
{
    double slope;
    switch (nl) {
    case NN_NL_LINEAR:
    case NN_NL_CONV1D:
    case NN_NL_CONV2D:
    case NN_NL_CONV3D:
    case NN_NL_CONV_TRANSPOSE1D:
    case NN_NL_CONV_TRANSPOSE2D:
    case NN_NL_CONV_TRANSPOSE3D:
    case NN_NL_SIGMOID:
        return 1.0;
    case NN_NL_TANH:
        return 5.0 / 3;
    case NN_NL_RELU:
        return sqrt(2.0);
    case NN_NL_LEAKY_RELU:
        slope = isnan(param) ? 0.01 : param;
        /* Python: math.sqrt(2.0 / (1 + negative_slope ** 2)); x ** 2 is
           the correctly rounded square, as is x * x */
        return sqrt(2.0 / (1 + slope * slope));
    case NN_NL_SELU:
        return 3.0 / 4;
    }
    nn_set_error("unsupported nonlinearity %d", (int)nl);
    return NAN;
}

/* ------------------------------------------------------------------ */
/* uniform_                                                             */

/* Tensor.uniform_(a, b): torch checks a <= b (and that b - a is finite),
 * then casts both to float and draws one 32-bit word per element, in
 * order (cpu_serial_kernel).  A zero-element tensor returns before the
 * checks. */
static void fill_uniform(nn_tensor *t, nn_rng *r, double a, double b, const char *fn)
{
    int64_t i;
    float fa, fb;
    if (!tensor_ok(t, fn) || t->numel == 0)
        return;
    if (!rng_ok(r, fn))
        return;
    if (!(a <= b)) {
        nn_set_error("%s: expects a [from, to) range, but found from=%g > to=%g", fn, a, b);
        return;
    }
    /* check_uniform_bounds: both ends and the width must fit in a float */
    if (!(a >= -FLT_MAX && b <= FLT_MAX && b - a <= FLT_MAX)) {
        nn_set_error("%s: range [%g, %g) does not fit in float", fn, a, b);
        return;
    }
    fa = (float)a;
    fb = (float)b;
    for (i = 0; i < t->numel; i++)
        t->data[i] = nn_rng_uniform(r, fa, fb);
}

void nn_init_uniform(nn_tensor *t, nn_rng *r, float a, float b)
{
    fill_uniform(t, r, a, b, "uniform");
}

/* ------------------------------------------------------------------ */
/* normal_                                                              */

/* Scalar log and sincos that reproduce, lane for lane, log256_ps and
 * sincos256_ps of avx_mathfun.h (Cephes single-precision polynomials,
 * after Julien Pommier's sse_mathfun), including the multiply-adds GCC
 * fused in torch's AVX2 build.  Only valid for the inputs normal_ gives
 * them: log of (0, 1], sincos of [0, 2*pi). */
#define CF(x) ((float)(x))  /* the vector constants are double literals cast to float */

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float cephes_logf(float x)
{
    const float min_norm = bits_to_float(0x00800000u);
    int32_t exponent;
    float e, y, z, tmp;
    int below;

    if (x < min_norm)
        x = min_norm;
    exponent = (int32_t)(float_to_bits(x) >> 23) - 0x7f;
    /* keep the mantissa, as a number in [0.5, 1) */
    x = bits_to_float((float_to_bits(x) & ~0x7f800000u) | float_to_bits(0.5f));
    e = (float)exponent;
    e = e + 1.0f;
    below = x < CF(0.707106781186547524);
    tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;

    z = x * x;
    y = CF(7.0376836292E-2);
    y = fmaf(y, x, CF(-1.1514610310E-1));
    y = fmaf(y, x, CF(1.1676998740E-1));
    y = fmaf(y, x, CF(-1.2420140846E-1));
    y = fmaf(y, x, CF(1.4249322787E-1));
    y = fmaf(y, x, CF(-1.6668057665E-1));
    y = fmaf(y, x, CF(2.0000714765E-1));
    y = fmaf(y, x, CF(-2.4999993993E-1));
    y = fmaf(y, x, CF(3.3333331174E-1));
    y = y * x;
    y = fmaf(y, z, e * CF(-2.12194440e-4));
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, CF(0.693359375), x);
    return x;
}

static void cephes_sincosf(float xin, float *s, float *c)
{
    float x = fabsf(xin), y, z, yc, ys, ysin1, ysin2;
    uint32_t sign_sin = float_to_bits(xin) & 0x80000000u, sign_cos;
    int32_t j;
    int first_poly;

    /* octant: j = (int(x * 4/pi) + 1) & ~1 */
    j = (int32_t)(x * CF(1.27323954473516));
    j = (j + 1) & ~1;
    y = (float)j;
    sign_sin ^= (uint32_t)(j & 4) << 29;
    first_poly = (j & 2) == 0;
    sign_cos = (uint32_t)(~(j - 2) & 4) << 29;

    /* extended precision modular arithmetic: x - y * pi/4 in three parts */
    x = fmaf(y, CF(-0.78515625), x);
    x = fmaf(y, CF(-2.4187564849853515625e-4), x);
    x = fmaf(y, CF(-3.77489497744594108e-8), x);

    z = x * x;
    /* cosine polynomial on [0, pi/4] */
    yc = CF(2.443315711809948E-005);
    yc = fmaf(yc, z, CF(-1.388731625493765E-003));
    yc = fmaf(yc, z, CF(4.166664568298827E-002));
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    /* sine polynomial on [0, pi/4] */
    ys = CF(-1.9515295891E-4);
    ys = fmaf(ys, z, CF(8.3321608736E-3));
    ys = fmaf(ys, z, CF(-1.6666654611E-1));
    ys = ys * z;
    ys = fmaf(ys, x, x);

    /* select by masking, as the vector code does (x - x and 0 + x) */
    ysin2 = first_poly ? ys : 0.0f;
    ysin1 = first_poly ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = bits_to_float(float_to_bits(ysin1 + ysin2) ^ sign_sin);
    *c = bits_to_float(float_to_bits(yc + ys) ^ sign_cos);
}

/* normal_fill_16_AVX2: Box-Muller on 16 uniforms in place; u1 from the first
 * 8, u2 from the last 8; cosines go to the first half, sines to the second. */
static void normal_fill_16(float *d, float mean, float std)
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    int k;
    for (k = 0; k < 8; k++) {
        float u1 = 1.0f - d[k];
        float u2 = d[k + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float theta = two_pi * u2;
        float sn, cs;
        cephes_sincosf(theta, &sn, &cs);
        d[k] = fmaf(radius * cs, std, mean);
        d[k + 8] = fmaf(radius * sn, std, mean);
    }
}

/* Tensor.normal_(mean, std) on a contiguous float tensor (normal_kernel):
 *  - numel >= 16 (normal_fill_AVX2): fill every element with a float
 *    uniform [0, 1) (one 32-bit draw each), transform blocks of 16; if numel
 *    is not a multiple of 16, draw 16 fresh uniforms for the LAST 16
 *    elements and transform them again (overwriting up to 15 values of the
 *    previous block).  mean and std are cast to float.  The cached
 *    Box-Muller sample of the generator is neither used nor touched.
 *  - numel < 16: one at::normal_distribution<double>(mean, std) per
 *    element (nn_rng_normal: 64-bit draws, cached second sample), rounded
 *    to float. */
static void fill_normal(nn_tensor *t, nn_rng *r, double mean, double std, const char *fn)
{
    int64_t n, i;
    if (!tensor_ok(t, fn) || !rng_ok(r, fn))
        return;
    if (!(std >= 0.0)) {
        nn_set_error("%s: expects std >= 0.0, but found std %g", fn, std);
        return;
    }
    n = t->numel;
    if (n >= 16) {
        float fmean = (float)mean, fstd = (float)std;
        float *d = t->data;
        for (i = 0; i < n; i++)
            d[i] = nn_rng_uniform(r, 0.0f, 1.0f);
        for (i = 0; i + 16 <= n; i += 16)
            normal_fill_16(d + i, fmean, fstd);
        if (n % 16 != 0) {
            d += n - 16;
            for (i = 0; i < 16; i++)
                d[i] = nn_rng_uniform(r, 0.0f, 1.0f);
            normal_fill_16(d, fmean, fstd);
        }
    } else {
        for (i = 0; i < n; i++)
            t->data[i] = (float)nn_rng_normal(r, mean, std);
    }
}

/* What uniform_ (normal 0) or normal_ (normal 1) of numel floats draws,
   without a tensor: fill_uniform's one 32-bit word per element, or
   fill_normal's words (or 64-bit draws with the cached sample below 16). */
void nn_init_discard(nn_rng *r, int64_t numel, int normal)
{
    int64_t i;
    if (!r || numel <= 0)
        return;
    if (normal && numel < 16) {
        for (i = 0; i < numel; i++)
            (void)nn_rng_normal(r, 0.0, 1.0);
        return;
    }
    if (normal && numel % 16 != 0)
        numel += 16;
    for (i = 0; i < numel; i++)
        (void)nn_rng_u32(r);
}

void nn_init_normal(nn_tensor *t, nn_rng *r, float mean, float std)
{
    fill_normal(t, r, mean, std, "normal");
}

void nn_init_normal_d(nn_tensor *t, nn_rng *r, double mean, double std)
{
    fill_normal(t, r, mean, std, "normal");
}

/* ------------------------------------------------------------------ */
/* constant_, zeros_, ones_ (Tensor.fill_ / zero_: no draws)            */

/* On an integer tensor, fill_(v) converts the (double) scalar with c10's
 * checked_convert: NaN, infinities and values beyond the type's range are an
 * error ("value cannot be converted to type int64_t without overflow"),
 * anything else is truncated toward zero (2.7 -> 2, -2.7 -> -2).  The
 * range check compares with the limits as doubles, so 2^63 itself passes
 * for int64 and the cast gives INT64_MIN on x86-64, which torch 1.13 then
 * stores; 2^63 gives INT64_MIN here too, on every machine. */
void nn_init_constant(nn_tensor *t, float v)
{
    const double d = v;
    unsigned char *p;
    int64_t i;
    if (!tensor_ok_any(t, "constant"))
        return;
    switch (t->dtype) {
    case NN_F32:
        for (i = 0; i < t->numel; i++)
            t->data[i] = v;
        return;
    case NN_I64: {
        int64_t w;
        if (!(d >= -9223372036854775808.0 && d <= 9223372036854775808.0)) {
            nn_set_error("constant: value %g cannot be converted to type int64_t without "
                         "overflow (tensor '%s')", d, t->name ? t->name : "");
            return;
        }
        w = d == 9223372036854775808.0 ? INT64_MIN : (int64_t)d;
        p = (unsigned char *)t->data;
        for (i = 0; i < t->numel; i++)
            memcpy(p + 8 * i, &w, sizeof w);
        return;
    }
    case NN_I32: {
        int32_t w;
        if (!(d >= -2147483648.0 && d <= 2147483647.0)) {
            nn_set_error("constant: value %g cannot be converted to type int without "
                         "overflow (tensor '%s')", d, t->name ? t->name : "");
            return;
        }
        w = (int32_t)d;
        p = (unsigned char *)t->data;
        for (i = 0; i < t->numel; i++)
            memcpy(p + 4 * i, &w, sizeof w);
        return;
    }
    default:
        nn_set_error("constant: tensor '%s' has an unknown dtype %d", t->name ? t->name : "",
                     t->dtype);
        return;
    }
}

void nn_init_zeros(nn_tensor *t) { nn_init_constant(t, 0.0f); }
void nn_init_ones(nn_tensor *t)  { nn_init_constant(t, 1.0f); }

/* ------------------------------------------------------------------ */
/* xavier_uniform_, xavier_normal_                                      */

/* std = gain * sqrt(2 / (fan_in + fan_out)) in double, as init.py does.
 * Returns 0 and sets nn_error where torch raises (fewer than 2 dimensions;
 * fan_in + fan_out == 0 is a ZeroDivisionError in Python). */
static int xavier_std(const nn_tensor *t, double gain, double *std, const char *fn)
{
    int64_t fi, fo;
    if (!tensor_ok(t, fn))
        return 0;
    if (calc_fans(t, &fi, &fo) != 0) {
        nn_set_error("%s: fan in and fan out can not be computed for tensor '%s' with "
                     "fewer than 2 dimensions", fn, t->name ? t->name : "");
        return 0;
    }
    if (fi == 0 && fo == 0) {
        nn_set_error("%s: tensor '%s' has fan_in + fan_out == 0", fn, t->name ? t->name : "");
        return 0;
    }
    /* float(fan_in + fan_out); the sum cannot overflow for real shapes */
    *std = gain * sqrt(2.0 / (fi <= INT64_MAX - fo ? (double)(fi + fo)
                                                   : (double)fi + (double)fo));
    return 1;
}

void nn_init_xavier_uniform_d(nn_tensor *t, nn_rng *r, double gain)
{
    double std;
    if (!xavier_std(t, gain, &std, "xavier_uniform"))
        return;
    {
        double a = sqrt(3.0) * std;
        fill_uniform(t, r, -a, a, "xavier_uniform");
    }
}

void nn_init_xavier_normal_d(nn_tensor *t, nn_rng *r, double gain)
{
    double std;
    if (!xavier_std(t, gain, &std, "xavier_normal"))
        return;
    fill_normal(t, r, 0.0, std, "xavier_normal");
}

void nn_init_xavier_uniform(nn_tensor *t, nn_rng *r, float gain)
{
    nn_init_xavier_uniform_d(t, r, gain);
}

void nn_init_xavier_normal(nn_tensor *t, nn_rng *r, float gain)
{
    nn_init_xavier_normal_d(t, r, gain);
}

/* ------------------------------------------------------------------ */
/* kaiming_uniform_, kaiming_normal_                                    */

/* std = gain / sqrt(fan) with gain = calculate_gain(nl, a).  Returns 0 for
 * "do nothing": a zero in the shape (torch warns and returns before
 * anything else, even for 1-d tensors; no error) or a torch error. */
static int kaiming_std(const nn_tensor *t, double a, nn_fan_mode mode, nn_nonlinearity nl,
                       double *std, const char *fn)
{
    int64_t fi, fo, fan;
    double gain;
    int d;
    if (!tensor_ok(t, fn))
        return 0;
    for (d = 0; d < t->ndim; d++)
        if (t->shape[d] == 0)
            return 0;
    if (mode != NN_FAN_IN && mode != NN_FAN_OUT) {
        nn_set_error("%s: mode %d not supported, use fan_in or fan_out", fn, (int)mode);
        return 0;
    }
    if (calc_fans(t, &fi, &fo) != 0) {
        nn_set_error("%s: fan in and fan out can not be computed for tensor '%s' with "
                     "fewer than 2 dimensions", fn, t->name ? t->name : "");
        return 0;
    }
    fan = mode == NN_FAN_IN ? fi : fo;
    gain = nn_calculate_gain(nl, a);
    if (isnan(gain))
        return 0; /* nn_error set by nn_calculate_gain */
    *std = gain / sqrt((double)fan);
    return 1;
}

void nn_init_kaiming_uniform(nn_tensor *t, nn_rng *r, double a, nn_fan_mode mode,
                             nn_nonlinearity nl)
{
    double std;
    if (!kaiming_std(t, a, mode, nl, &std, "kaiming_uniform"))
        return;
    {
        double bound = sqrt(3.0) * std;
        fill_uniform(t, r, -bound, bound, "kaiming_uniform");
    }
}

void nn_init_kaiming_normal(nn_tensor *t, nn_rng *r, double a, nn_fan_mode mode,
                            nn_nonlinearity nl)
{
    double std;
    if (!kaiming_std(t, a, mode, nl, &std, "kaiming_normal"))
        return;
    fill_normal(t, r, 0.0, std, "kaiming_normal");
}

/* ------------------------------------------------------------------ */
/* trunc_normal_                                                        */

/* calc_erfinv<float> of ATen's Math.h: a rational initial guess (Pavlis'
 * erfinv, after MATLAB 2.0) refined by two Newton steps with the C
 * library's erff/expf.  The polynomials are fused multiply-adds in the AVX2
 * build; the Newton steps contain no multiply-add. */
static float torch_erfinvf(float y)
{
    const float a0 = CF(0.886226899), a1 = CF(-1.645349621), a2 = CF(0.914624893),
                a3 = CF(-0.140543331);
    const float b0 = CF(-2.118377725), b1 = CF(1.442710462), b2 = CF(-0.329097515),
                b3 = CF(0.012229801);
    const float c0 = CF(-1.970840454), c1 = CF(-1.624906493), c2 = CF(3.429567803),
                c3 = CF(1.641345311);
    const float d0 = CF(3.543889200), d1 = CF(1.637067800);
    const float two_over_sqrt_pi = 2.0f / (float)sqrt(3.14159265358979323846);
    float ya = fabsf(y), x, z, num, dem;
    int k;

    if (ya > 1.0f)
        return NAN;
    if (ya == 1.0f)
        return copysignf(INFINITY, y);
    if (ya <= CF(0.7)) {
        z = y * y;
        num = fmaf(fmaf(fmaf(a3, z, a2), z, a1), z, a0);
        dem = fmaf(fmaf(fmaf(fmaf(b3, z, b2), z, b1), z, b0), z, 1.0f);
        x = y * num / dem;
    } else {
        z = sqrtf(-logf((1.0f - ya) / 2.0f));
        num = fmaf(fmaf(fmaf(c3, z, c2), z, c1), z, c0);
        dem = fmaf(fmaf(d1, z, d0), z, 1.0f);
        x = copysignf(num, y) / dem;
    }
    for (k = 0; k < 2; k++)
        x = x - (erff(x) - y) / (two_over_sqrt_pi * expf(-x * x));
    return x;
}

/* init.py's _no_grad_trunc_normal_: with l = Phi((a - mean) / std) and
 * u = Phi((b - mean) / std) computed in double (Phi(x) = (1 + erf(x/sqrt 2))/2),
 * uniform_(2l - 1, 2u - 1) (float, one 32-bit draw per element), erfinv_,
 * mul_(std * sqrt(2)), add_(mean), clamp_(a, b) -- the scalars rounded to
 * float as the float tensor ops do.  std must be > 0 (torch divides by
 * it) and a <= b (else uniform_ fails).  torch only warns when mean is more
 * than 2 std outside [a, b]; so does nothing here. */
void nn_init_trunc_normal_d(nn_tensor *t, nn_rng *r, double mean, double std, double a,
                            double b)
{
    const char *fn = "trunc_normal";
    double l, u;
    float from, to, scale, shift, lo, hi;
    int64_t i;
    if (!tensor_ok(t, fn) || !rng_ok(r, fn))
        return;
    if (!(std > 0.0) || isnan(mean) || isnan(a) || isnan(b)) {
        nn_set_error("%s: expects std > 0 and numeric bounds (std %g)", fn, std);
        return;
    }
    l = (1.0 + erf(((a - mean) / std) / sqrt(2.0))) / 2.0;
    u = (1.0 + erf(((b - mean) / std) / sqrt(2.0))) / 2.0;
    /* uniform_ checks its (double) range before casting it to float */
    if (!(2 * l - 1 <= 2 * u - 1)) {
        nn_set_error("%s: expects a <= b, but found a=%g > b=%g", fn, a, b);
        return;
    }
    from = (float)(2 * l - 1);
    to = (float)(2 * u - 1);
    scale = (float)(std * sqrt(2.0));
    shift = (float)mean;
    lo = (float)a;
    hi = (float)b;
    for (i = 0; i < t->numel; i++) {
        float v = torch_erfinvf(nn_rng_uniform(r, from, to));
        v = v * scale;
        v = v + shift;
        /* clamp_(min, max) = min(max(v, lo), hi) */
        if (v < lo)
            v = lo;
        if (v > hi)
            v = hi;
        t->data[i] = v;
    }
}

void nn_init_trunc_normal(nn_tensor *t, nn_rng *r, float mean, float std, float a, float b)
{
    nn_init_trunc_normal_d(t, r, mean, std, a, b);
}

/* ------------------------------------------------------------------ */
/* mixture (not in torch)                                               */

/* For each element in order:
 *   1. draw u = one at::uniform_real_distribution<double>(0, 1) sample: a
 *      64-bit draw (nn_rng_u64: two 32-bit words, first one high), its low
 *      53 bits times 2^-53;
 *   2. pick the first component k with u < p_0 + ... + p_k (running sum in
 *      double, in the given order); if rounding leaves u >= the total, the
 *      last component with p > 0;
 *   3. draw the value: constant a (no draw); uniform [a, b):
 *      nn_rng_uniform (one 32-bit draw); normal (mean a, std b):
 *      nn_rng_normal (the scalar double path, which uses and refills the
 *      generator's cached Box-Muller sample), rounded to float.
 * This is what, in torch 1.13, this Python loop produces element by element:
 *   u = torch.empty((), dtype=torch.float64).uniform_().item()
 *   w = torch.empty(()).uniform_(a, b)  |  torch.empty(()).normal_(a, b)  |  a
 * Checks: n >= 1, every p finite and >= 0, |sum p - 1| <= 1e-6, uniform
 * components a <= b, normal components std >= 0. */
void nn_init_mixture(nn_tensor *t, nn_rng *r, const nn_mix_component *c, int n)
{
    const char *fn = "mixture";
    double total = 0.0;
    int k, last = -1;
    int64_t i;
    if (!tensor_ok(t, fn) || !rng_ok(r, fn))
        return;
    if (c == NULL || n < 1) {
        nn_set_error("%s: needs at least one component", fn);
        return;
    }
    for (k = 0; k < n; k++) {
        if (!(c[k].p >= 0.0) || !isfinite(c[k].p)) {
            nn_set_error("%s: component %d has an invalid weight %g", fn, k, c[k].p);
            return;
        }
        switch (c[k].kind) {
        case NN_MIX_CONSTANT:
            break;
        case NN_MIX_UNIFORM:
            if (!(c[k].a <= c[k].b) || !isfinite(c[k].b - c[k].a)) {
                nn_set_error("%s: component %d: uniform needs a <= b", fn, k);
                return;
            }
            break;
        case NN_MIX_NORMAL:
            if (!(c[k].b >= 0.0f)) {
                nn_set_error("%s: component %d: normal needs std >= 0", fn, k);
                return;
            }
            break;
        default:
            nn_set_error("%s: component %d has an unknown kind %d", fn, k, (int)c[k].kind);
            return;
        }
        total += c[k].p;
        if (c[k].p > 0.0)
            last = k;
    }
    if (fabs(total - 1.0) > 1e-6 || last < 0) {
        nn_set_error("%s: weights sum to %.17g, not 1", fn, total);
        return;
    }
    for (i = 0; i < t->numel; i++) {
        uint64_t bits = nn_rng_u64(r) & ((UINT64_C(1) << 53) - 1);
        double u = (double)bits * (1.0 / 9007199254740992.0);
        double cum = 0.0;
        int pick = last;
        for (k = 0; k < n; k++) {
            cum += c[k].p;
            if (u < cum) {
                pick = k;
                break;
            }
        }
        switch (c[pick].kind) {
        case NN_MIX_CONSTANT:
            t->data[i] = c[pick].a;
            break;
        case NN_MIX_UNIFORM:
            t->data[i] = nn_rng_uniform(r, c[pick].a, c[pick].b);
            break;
        case NN_MIX_NORMAL:
            t->data[i] = (float)nn_rng_normal(r, c[pick].a, c[pick].b);
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* zero_abs_below: the seed's  w *= w.abs() >= t                        */

/* Multiplies by 1.0 or 0.0, as torch does, so a negative value below the
 * threshold becomes -0.0 (printed "-0.0000") and NaN stays NaN.  The
 * comparison is in float. */
void nn_init_zero_abs_below(nn_tensor *t, float threshold)
{
    int64_t i;
    if (!tensor_ok(t, "zero_abs_below"))
        return;
    for (i = 0; i < t->numel; i++) {
        float w = t->data[i];
        t->data[i] = w * (fabsf(w) >= threshold ? 1.0f : 0.0f);
    }
}

/* ------------------------------------------------------------------ */
/* nn.Linear.reset_parameters                                           */

/* kaiming_uniform_(weight, a=sqrt(5)) (mode fan_in, leaky_relu), then, if
 * there is a bias, uniform_(bias, -1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in from the weight (bound 0 when fan_in is 0, still one draw per
 * element). */
void nn_init_linear_default(nn_tensor *weight, nn_tensor *bias, nn_rng *r)
{
    int64_t fi, fo;
    double bound;
    if (!tensor_ok(weight, "linear_default") || !rng_ok(r, "linear_default"))
        return;
    /* refuse a bad bias before drawing the weight: all or nothing */
    if (bias != NULL && !tensor_ok(bias, "linear_default"))
        return;
    if (calc_fans(weight, &fi, &fo) != 0) {
        nn_set_error("linear_default: weight '%s' must have 2 dimensions",
                     weight->name ? weight->name : "");
        return;
    }
    nn_init_kaiming_uniform(weight, r, sqrt(5.0), NN_FAN_IN, NN_NL_LEAKY_RELU);
    if (bias == NULL)
        return;
    bound = fi > 0 ? 1 / sqrt((double)fi) : 0.0;
    fill_uniform(bias, r, -bound, bound, "linear_default");
}
