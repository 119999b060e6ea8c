/* ops/pool.c: max_pool2d, avg_pool2d and adaptive_avg_pool2d on
 * [N, C, H, W], as torch's MaxPool2d, AvgPool2d and AdaptiveAvgPool2d.
 *
 * Output sizes are torch's pooling_output_shape (ceil_mode included: the
 * last window must start inside the input or its left padding).  Max
 * pooling follows torch's CPU kernel: a window's maximum starts at -inf
 * and is replaced by a value that is greater or NaN, so the gradient goes
 * to the first maximum in row-major order (NaN counts as the maximum); the
 * index of the maximum in its plane is saved for backward (int32, the
 * extra_saved tensor; not with --inference).  Average pooling divides by
 * the window clipped to the padded input (count_include_pad) or to the
 * input; adaptive pooling uses start = floor(o * in / out), end =
 * ceil((o + 1) * in / out) and divides by kh then kw as torch does.
 * Plain loops: no products to hand to BLAS.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"

#define LL(v) ((long long)(v))

enum { KERNEL, STRIDE, PADDING, DILATION, CEIL_MODE, COUNT_INCLUDE_PAD };
enum { AVG_KERNEL, AVG_STRIDE, AVG_PADDING, AVG_CEIL_MODE, AVG_COUNT_INCLUDE_PAD };

static const arg_spec max_args[] = {
    [KERNEL] = {"kernel", ARG_PAIR, NULL, 1, "the window size: k or [kh, kw]", 1, MAX_DIM_SIZE, 0, NULL},
    [STRIDE] = {"stride", ARG_PAIR, NULL, 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [PADDING] = {"padding", ARG_PAIR, "0", 0, NULL, 0, MAX_DIM_SIZE, 0, NULL},
    [DILATION] = {"dilation", ARG_PAIR, "1", 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [CEIL_MODE] = {"ceil_mode", ARG_BOOL, "false", 0, NULL, 0, 1, 0, NULL},
};

static const arg_spec avg_args[] = {
    [AVG_KERNEL] = {"kernel", ARG_PAIR, NULL, 1, "the window size: k or [kh, kw]", 1,
                    MAX_DIM_SIZE, 0, NULL},
    [AVG_STRIDE] = {"stride", ARG_PAIR, NULL, 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [AVG_PADDING] = {"padding", ARG_PAIR, "0", 0, NULL, 0, MAX_DIM_SIZE, 0, NULL},
    [AVG_CEIL_MODE] = {"ceil_mode", ARG_BOOL, "false", 0, NULL, 0, 1, 0, NULL},
    [AVG_COUNT_INCLUDE_PAD] = {"count_include_pad", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
};

static const arg_spec adaptive_args[] = {
    [0] = {"out", ARG_PAIR, NULL, 1, "the output size: s or [h, w]", 1, MAX_DIM_SIZE, 0, NULL},
};

static int is_max(const module *m)
{
    return m->op->args == max_args;
}

/* argument k of a max or avg pool (the two schemas share the first three) */
static int64_t kernel(const module *m, int i) { return arg_pair(m, KERNEL, i); }
static int64_t stride(const module *m, int i)
{
    return m->args[STRIDE].given ? arg_pair(m, STRIDE, i) : kernel(m, i);
}
static int64_t padding(const module *m, int i) { return arg_pair(m, PADDING, i); }
static int64_t dilation(const module *m, int i) { return is_max(m) ? arg_pair(m, DILATION, i) : 1; }
static int ceil_mode(const module *m)
{
    return (int)arg_int(m, is_max(m) ? CEIL_MODE : AVG_CEIL_MODE);
}

static void need_4d(shape_ctx *sc, const module *m, const shape *in)
{
    if (in->ndim != 4)
        shape_error(sc, "%s needs [N, C, H, W] (an input [C, H, W] per example), but %s gets %s",
                    m->op->name, shape_what(sc), shape_text(in));
}

/* torch's pooling_output_shape */
static int64_t pooled(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t d, int ceil)
{
    int64_t num = in + 2 * pad - d * (k - 1) - 1 + (ceil ? s - 1 : 0);
    int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil && (o - 1) * s >= in + pad)
        o--;
    return o;
}

static void pool_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    need_4d(sc, m, in);
    for (int i = 0; i < 2; i++)
        if (padding(m, i) * 2 > kernel(m, i))
            error_at(m->args[PADDING].loc, "%s: padding %s must be at most half of the kernel "
                     "size %s", shape_what(sc), arg_pair_py(m, PADDING), arg_pair_py(m, KERNEL));
    *out = *in;
    for (int i = 0; i < 2; i++) {
        int64_t o = pooled(in->d[2 + i], kernel(m, i), padding(m, i), stride(m, i),
                           dilation(m, i), ceil_mode(m));
        if (o < 1)
            shape_error_arg(sc, KERNEL, "shape mismatch: %s: the window (kernel %s%s, padding %s) does not fit its input "
                        "%s: the output would be empty", shape_what(sc), arg_pair_py(m, KERNEL),
                        is_max(m) ? xfmt(", dilation %s", arg_pair_py(m, DILATION)) : "",
                        arg_pair_py(m, PADDING), shape_text(in));
        out->d[2 + i] = o;
    }
}

static void adaptive_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    need_4d(sc, m, in);
    *out = *in;
    out->d[2] = arg_pair(m, 0, 0);
    out->d[3] = arg_pair(m, 0, 1);
}

/* stride prints as the kernel when not given (torch: stride = kernel_size) */
static const char *stride_py(const module *m)
{
    return m->args[STRIDE].given ? arg_pair_py(m, STRIDE) : arg_pair_py(m, KERNEL);
}

static const char *max_extra(const module *m)
{
    return xfmt("kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
                arg_pair_py(m, KERNEL), stride_py(m), arg_pair_py(m, PADDING),
                arg_pair_py(m, DILATION), arg_int(m, CEIL_MODE) ? "True" : "False");
}

static const char *avg_extra(const module *m)
{
    return xfmt("kernel_size=%s, stride=%s, padding=%s", arg_pair_py(m, KERNEL), stride_py(m),
                arg_pair_py(m, PADDING));
}

static const char *adaptive_extra(const module *m)
{
    return xfmt("output_size=%s", arg_pair_py(m, 0));
}

static const char *max_ctor(const module *m)
{
    return xfmt("nn.MaxPool2d(kernel_size=%s, stride=%s, padding=%s, dilation=%s, "
                "ceil_mode=%s)", arg_pair_py(m, KERNEL), stride_py(m), arg_pair_py(m, PADDING),
                arg_pair_py(m, DILATION), arg_int(m, CEIL_MODE) ? "True" : "False");
}

static const char *avg_ctor(const module *m)
{
    return xfmt("nn.AvgPool2d(kernel_size=%s, stride=%s, padding=%s, ceil_mode=%s, "
                "count_include_pad=%s)", arg_pair_py(m, KERNEL), stride_py(m),
                arg_pair_py(m, PADDING), arg_int(m, AVG_CEIL_MODE) ? "True" : "False",
                arg_int(m, AVG_COUNT_INCLUDE_PAD) ? "True" : "False");
}

static const char *adaptive_ctor(const module *m)
{
    return xfmt("nn.AdaptiveAvgPool2d(output_size=%s)", arg_pair_py(m, 0));
}

typedef struct {
    int64_t H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
} geo;

static void geometry(const op_emit *ec, geo *g)
{
    const module *m = ec->o->m;
    const shape *in = &op_in(ec->p, ec->o, 0)->shape, *out = &op_out(ec->p, ec->o)->shape;
    memset(g, 0, sizeof *g);
    g->H = in->d[2], g->W = in->d[3], g->OH = out->d[2], g->OW = out->d[3];
    if (m->op->args == adaptive_args)
        return;
    g->KH = kernel(m, 0), g->KW = kernel(m, 1);
    g->SH = stride(m, 0), g->SW = stride(m, 1);
    g->PH = padding(m, 0), g->PW = padding(m, 1);
    g->DH = dilation(m, 0), g->DW = dilation(m, 1);
}

/* planes = n * C: the loop over planes (p) and output positions (oh, ow) */
static void planes(op_emit *ec, int64_t nc, const geo *g)
{
    K(ec, "    for (int p = 0; p < %s; p++)", rows_expr(nc));
    K(ec, "        for (int oh = 0; oh < %lld; oh++)", LL(g->OH));
    K(ec, "            for (int ow = 0; ow < %lld; ow++) {", LL(g->OW));
    K(ec, "                int yi = (p * %lld + oh) * %lld + ow;", LL(g->OH), LL(g->OW));
    K(ec, "                const int xp = p * %lld;", LL(g->H * g->W));
}

static int64_t channels(const op_emit *ec)
{
    return op_in(ec->p, ec->o, 0)->shape.d[1];
}

static void max_extra_saved(const program *p, op *o)
{
    o->nsaved = 1;
    o->saved_numel[0] = shape_numel(&op_out(p, o)->shape);
    o->saved_dtype[0] = DT_I32;
}

static void max_forward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    int idx = ec->saved[0] != NULL;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y%s)",
      idx ? ", int32_t *restrict idx" : "");
    K(ec, "{");
    planes(ec, channels(ec), &g);
    K(ec, "                int h0 = oh * %lld - %lld, w0 = ow * %lld - %lld;", LL(g.SH), LL(g.PH),
      LL(g.SW), LL(g.PW));
    K(ec, "                int h1 = h0 + %lld < %lld ? h0 + %lld : %lld;", LL((g.KH - 1) * g.DH + 1),
      LL(g.H), LL((g.KH - 1) * g.DH + 1), LL(g.H));
    K(ec, "                int w1 = w0 + %lld < %lld ? w0 + %lld : %lld;", LL((g.KW - 1) * g.DW + 1),
      LL(g.W), LL((g.KW - 1) * g.DW + 1), LL(g.W));
    K(ec, "                while (h0 < 0) h0 += %lld;", LL(g.DH));
    K(ec, "                while (w0 < 0) w0 += %lld;", LL(g.DW));
    if (idx)
        /* torch's start index; -1 for a window that dilation leaves empty
           (it would point outside the plane): no gradient */
        K(ec, "                int mi = h0 < h1 && w0 < w1 ? h0 * %lld + w0 : -1;", LL(g.W));
    K(ec, "                float mv = -INFINITY;");
    K(ec, "                for (int ih = h0; ih < h1; ih += %lld)", LL(g.DH));
    K(ec, "                    for (int iw = w0; iw < w1; iw += %lld) {", LL(g.DW));
    K(ec, "                        int k = ih * %lld + iw;", LL(g.W));
    K(ec, "                        float v = x[xp + k];");
    if (idx)
        K(ec, "                        if (v > mv || isnan(v)) { mv = v; mi = k; }");
    else
        K(ec, "                        if (v > mv || isnan(v)) mv = v;");
    K(ec, "                    }");
    K(ec, "                y[yi] = mv;");
    if (idx)
        K(ec, "                idx[yi] = mi;");
    K(ec, "            }");
    K(ec, "}");
    const char *f = kend(ec, "f");
    if (idx)
        C(ec, "%s(n, %s, %s, %s);", f, ec->x, ec->y, ec->saved[0]);
    else
        C(ec, "%s(n, %s, %s);", f, ec->x, ec->y);
}

static void max_backward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    int64_t nc = channels(ec);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const int32_t "
          "*restrict idx)");
    K(ec, "{");
    K(ec, "    memset(gx, 0, sizeof(float) * %s);", rows_size(nc * g.H * g.W));
    K(ec, "    for (int p = 0; p < %s; p++)", rows_expr(nc));
    K(ec, "        for (int k = 0; k < %lld; k++)", LL(g.OH * g.OW));
    K(ec, "            if (idx[p * %lld + k] >= 0) gx[p * %lld + idx[p * %lld + k]] += gy[p * "
          "%lld + k];", LL(g.OH * g.OW), LL(g.H * g.W), LL(g.OH * g.OW), LL(g.OH * g.OW));
    K(ec, "}");
    C(ec, "%s(n, %s, %s, %s);", kend(ec, "b"), ec->gy, ec->gx, ec->saved[0]);
}

/* torch's avg_pool2d window: [h0, h1) clipped to the padded input gives the
   divisor with count_include_pad, then clipped to the input */
static void avg_window(op_emit *ec, const geo *g, int include_pad)
{
    K(ec, "                int h0 = oh * %lld - %lld, w0 = ow * %lld - %lld;", LL(g->SH),
      LL(g->PH), LL(g->SW), LL(g->PW));
    K(ec, "                int h1 = h0 + %lld < %lld ? h0 + %lld : %lld;", LL(g->KH),
      LL(g->H + g->PH), LL(g->KH), LL(g->H + g->PH));
    K(ec, "                int w1 = w0 + %lld < %lld ? w0 + %lld : %lld;", LL(g->KW),
      LL(g->W + g->PW), LL(g->KW), LL(g->W + g->PW));
    K(ec, "                int cnt = (h1 - h0) * (w1 - w0);");
    K(ec, "                if (h0 < 0) h0 = 0;");
    K(ec, "                if (w0 < 0) w0 = 0;");
    K(ec, "                if (h1 > %lld) h1 = %lld;", LL(g->H), LL(g->H));
    K(ec, "                if (w1 > %lld) w1 = %lld;", LL(g->W), LL(g->W));
    if (!include_pad)
        K(ec, "                cnt = (h1 - h0) * (w1 - w0);");
    else
        K(ec, "                (void)0;");
}

/* Floats per batch (the larger side) from which the runtime splits a
   pool's rows over its threads (outside --no-blas): the pools of LeNet at
   batch 256 were a tenth of its serial time on 2 cores. */
#define ROWS_PARALLEL_MIN 32768

static int64_t larger_side(const program *p, const op *o)
{
    int64_t a = per_example(op_in(p, o, 0)), b = per_example(op_out(p, o));
    return (a > b ? a : b) * p->batch;
}

static int rows_parallel(const program *p, const op *o)
{
    return larger_side(p, o) >= ROWS_PARALLEL_MIN;
}

/* f(n, a, b) over the rows, or split over the runtime's threads (both
   arrays are row-major, one example per row) */
static void rows_call(op_emit *ec, const char *f, const char *a, const char *b, int fwd)
{
    if (!ec->blas) {
        C(ec, "%s(n, %s, %s);", f, a, b);
        return;
    }
    int64_t in = per_example(op_in(ec->p, ec->o, 0)), out = per_example(op_out(ec->p, ec->o));
    C(ec, "nn_parallel_rows(%s, n, %s, %lld, %s, %lld);", f, a, (long long)(fwd ? in : out), b,
      (long long)(fwd ? out : in));
}

static void avg_forward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
    K(ec, "{");
    planes(ec, channels(ec), &g);
    avg_window(ec, &g, (int)arg_int(ec->o->m, AVG_COUNT_INCLUDE_PAD));
    K(ec, "                float s = 0.0f;");
    K(ec, "                for (int ih = h0; ih < h1; ih++)");
    K(ec, "                    for (int iw = w0; iw < w1; iw++) s += x[xp + ih * %lld + iw];",
      LL(g.W));
    K(ec, "                y[yi] = s / (float)cnt;");
    K(ec, "            }");
    K(ec, "}");
    rows_call(ec, kend(ec, "f"), ec->x, ec->y, 1);
}

static void avg_backward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    int64_t nc = channels(ec);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx)");
    K(ec, "{");
    K(ec, "    memset(gx, 0, sizeof(float) * %s);", rows_size(nc * g.H * g.W));
    planes(ec, nc, &g);
    avg_window(ec, &g, (int)arg_int(ec->o->m, AVG_COUNT_INCLUDE_PAD));
    K(ec, "                float d = gy[yi] / (float)cnt;");
    K(ec, "                for (int ih = h0; ih < h1; ih++)");
    K(ec, "                    for (int iw = w0; iw < w1; iw++) gx[xp + ih * %lld + iw] += d;",
      LL(g.W));
    K(ec, "            }");
    K(ec, "}");
    rows_call(ec, kend(ec, "b"), ec->gy, ec->gx, 0);
}

/* adaptive windows: [floor(o * in / out), ceil((o + 1) * in / out)) */
static void adaptive_window(op_emit *ec, const geo *g)
{
    K(ec, "                int h0 = oh * %lld / %lld, h1 = ((oh + 1) * %lld + %lld) / %lld;",
      LL(g->H), LL(g->OH), LL(g->H), LL(g->OH - 1), LL(g->OH));
    K(ec, "                int w0 = ow * %lld / %lld, w1 = ((ow + 1) * %lld + %lld) / %lld;",
      LL(g->W), LL(g->OW), LL(g->W), LL(g->OW - 1), LL(g->OW));
    K(ec, "                int kh = h1 - h0, kw = w1 - w0;");
}

static void adaptive_forward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
    K(ec, "{");
    planes(ec, channels(ec), &g);
    adaptive_window(ec, &g);
    K(ec, "                float s = 0.0f;");
    K(ec, "                for (int ih = h0; ih < h1; ih++)");
    K(ec, "                    for (int iw = w0; iw < w1; iw++) s += x[xp + ih * %lld + iw];",
      LL(g.W));
    K(ec, "                y[yi] = s / (float)kh / (float)kw;");
    K(ec, "            }");
    K(ec, "}");
    rows_call(ec, kend(ec, "f"), ec->x, ec->y, 1);
}

static void adaptive_backward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    int64_t nc = channels(ec);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx)");
    K(ec, "{");
    K(ec, "    memset(gx, 0, sizeof(float) * %s);", rows_size(nc * g.H * g.W));
    planes(ec, nc, &g);
    adaptive_window(ec, &g);
    K(ec, "                float d = gy[yi] / (float)kh / (float)kw;");
    K(ec, "                for (int ih = h0; ih < h1; ih++)");
    K(ec, "                    for (int iw = w0; iw < w1; iw++) gx[xp + ih * %lld + iw] += d;",
      LL(g.W));
    K(ec, "            }");
    K(ec, "}");
    rows_call(ec, kend(ec, "b"), ec->gy, ec->gx, 0);
}


const op_desc op_max_pool2d = {
    .name = "max_pool2d", .cls = "MaxPool2d", .args = max_args, .nargs = 5,
    .main_arg = KERNEL, .main_what = "max_pool2d's kernel size",
    .null_msg = "max_pool2d needs its kernel size: write {max_pool2d: 2}",
    .shape = pool_shape, .extra_saved = max_extra_saved,
    .extra_repr = max_extra, .torch_ctor = max_ctor,
    .forward = max_forward, .backward = max_backward,
};

const op_desc op_avg_pool2d = {
    .name = "avg_pool2d", .cls = "AvgPool2d", .args = avg_args, .nargs = 5,
    .main_arg = AVG_KERNEL, .main_what = "avg_pool2d's kernel size",
    .null_msg = "avg_pool2d needs its kernel size: write {avg_pool2d: 2}",
    .shape = pool_shape, .extra_repr = avg_extra, .torch_ctor = avg_ctor,
    .forward = avg_forward, .backward = avg_backward, .uses_blas = rows_parallel,
};

const op_desc op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d", .cls = "AdaptiveAvgPool2d", .args = adaptive_args, .nargs = 1,
    .main_arg = 0, .main_what = "adaptive_avg_pool2d's output size",
    .null_msg = "adaptive_avg_pool2d needs its output size: write {adaptive_avg_pool2d: 1}",
    .shape = adaptive_shape, .extra_repr = adaptive_extra, .torch_ctor = adaptive_ctor,
    .forward = adaptive_forward, .backward = adaptive_backward, .uses_blas = rows_parallel,
};
