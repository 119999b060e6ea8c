/* ops/conv2d.c: nn.Conv2d(in, out, kernel_size, stride, padding, dilation,
 * groups, bias) on [N, C, H, W].
 *
 * Parameters weight [out, in/groups, kh, kw], bias [out]; torch's
 * _ConvNd.reset_parameters: weight kaiming_uniform(a=sqrt(5)) (the
 * runtime's fan_in of a 4-d tensor is size(1) * kh * kw, as torch's),
 * bias U(+-1/sqrt(fan_in)), fan_in = in/groups * kh * kw.  padding 'same'
 * (stride 1 only) pads d*(k-1) in total, the odd element at the bottom /
 * right as torch does; 'valid' is 0.
 *
 * Implementation.  Small layers (below BLAS_MIN_MACS multiply-adds per
 * example and group) are direct loops with constant bounds, forward and
 * backward: each output element is one float sum over (c, kh, kw) in order.
 * Larger ones are lowered to the runtime's nn_sgemm, one example and group
 * at a time: im2col writes the group's input as a (in/groups * kh * kw) x
 * (oh * ow) matrix of columns into a work buffer (the op's extra saved
 * tensor, which --inference allocates too: saved_forward), then
 * y = W col; backward rebuilds the columns of each example (cheaper than
 * keeping them for the whole batch), gW += gy col^T, and col = W^T gy is
 * scattered back into gx (col2im).  nn_sgemm's sums are as exact as the
 * loops' for the conformance's 1e-5 (specs/d2l/lenet.yaml runs both).
 * --no-blas: loops for every size.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#include <nngen/rt.h>

enum { OUT, KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS, IN };

static const char *const pad_words[] = {"same", "valid", NULL};

static const arg_spec args[] = {
    [OUT] = {"out", ARG_INT, NULL, 1, "the number of output channels", 1, MAX_DIM_SIZE, 0, NULL},
    [KERNEL] = {"kernel", ARG_PAIR, NULL, 1, "the kernel size: k or [kh, kw]", 1, MAX_DIM_SIZE, 0, NULL},
    [STRIDE] = {"stride", ARG_PAIR, "1", 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [PADDING] = {"padding", ARG_PAIR, "0", 0, NULL, 0, MAX_DIM_SIZE, 0, pad_words},
    [DILATION] = {"dilation", ARG_PAIR, "1", 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [GROUPS] = {"groups", ARG_INT, "1", 0, NULL, 1, MAX_DIM_SIZE, 0, NULL},
    [BIAS] = {"bias", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
    [IN] = {"in", ARG_INT, NULL, 0, "the number of input channels", 1, MAX_DIM_SIZE, 1, NULL},
};

static const char *const tensors[] = {"weight", "bias"};

/* the geometry of one use: per example C x H x W -> O x OH x OW */
typedef struct {
    int64_t C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G;
} geo;

/* padding top / left, and the total of both sides, of dimension `which` */
static void pads(const module *m, int which, int64_t *lo, int64_t *total)
{
    const char *w = arg_word(m, PADDING);
    int64_t k = arg_pair(m, KERNEL, which), d = arg_pair(m, DILATION, which);
    if (w && !strcmp(w, "same")) {
        *total = d * (k - 1);
        *lo = *total / 2;
    } else if (w) {
        *lo = *total = 0;
    } else {
        *lo = arg_pair(m, PADDING, which);
        *total = 2 * *lo;
    }
}

static void conv_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    if (in->ndim != 4)
        shape_error(sc, "conv2d needs [N, C, H, W] (an input [C, H, W] per example), but %s "
                    "gets %s", shape_what(sc), shape_text(in));
    if (!m->args[KERNEL].given)
        error_at(m->loc, "conv2d needs 'kernel' (the kernel size: k or [kh, kw]): write "
                 "{conv2d: {out: %lld, kernel: 3}}", (long long)arg_int(m, OUT));
    int64_t c = in->d[1];
    if (!m->args[IN].given && !m->args[IN].inferred)
        shape_infer_arg(sc, IN, c);
    else if (arg_int(m, IN) != c)
        shape_error(sc, "%s takes %lld input channels (%s) but gets input %s with %lld",
                    shape_what(sc), (long long)arg_int(m, IN), shape_arg_origin(sc, IN),
                    shape_text(in), (long long)c);
    int64_t g = arg_int(m, GROUPS);
    if (c % g || arg_int(m, OUT) % g)
        shape_error_arg(sc, GROUPS, "%s: groups=%lld must divide the input channels (%lld) "
                 "and the output channels (%lld)", shape_what(sc), (long long)g, (long long)c,
                 (long long)arg_int(m, OUT));
    const char *w = arg_word(m, PADDING);
    if (w && !strcmp(w, "same") && (arg_pair(m, STRIDE, 0) != 1 || arg_pair(m, STRIDE, 1) != 1))
        error_at(m->args[PADDING].loc, "%s: padding 'same' needs stride 1 (torch does not "
                 "support it for strided convolutions), got stride %s", shape_what(sc),
                 arg_pair_py(m, STRIDE));
    *out = *in;
    out->d[1] = arg_int(m, OUT);
    int64_t padded[2], eff[2];
    for (int i = 0; i < 2; i++) {
        int64_t lo, tot;
        pads(m, i, &lo, &tot);
        padded[i] = in->d[2 + i] + tot;
        eff[i] = arg_pair(m, DILATION, i) * (arg_pair(m, KERNEL, i) - 1) + 1;
    }
    int dil = arg_pair(m, DILATION, 0) > 1 || arg_pair(m, DILATION, 1) > 1;
    if (eff[0] > padded[0] || eff[1] > padded[1])
        shape_error_arg(sc, KERNEL, "%s: the kernel (%lld x %lld%s) is larger than the "
                 "padded input (%lld x %lld) of %s", shape_what(sc), (long long)eff[0],
                 (long long)eff[1], dil ? " with its dilation" : "", (long long)padded[0],
                 (long long)padded[1], shape_text(in));
    for (int i = 0; i < 2; i++)
        out->d[2 + i] = (padded[i] - eff[i]) / arg_pair(m, STRIDE, i) + 1;
}

static void geometry(const op_emit *ec, geo *g)
{
    const module *m = ec->o->m;
    const shape *in = &op_in(ec->p, ec->o, 0)->shape, *out = &op_out(ec->p, ec->o)->shape;
    int64_t tot;
    g->C = in->d[1], g->H = in->d[2], g->W = in->d[3];
    g->O = out->d[1], g->OH = out->d[2], g->OW = out->d[3];
    g->KH = arg_pair(m, KERNEL, 0), g->KW = arg_pair(m, KERNEL, 1);
    g->SH = arg_pair(m, STRIDE, 0), g->SW = arg_pair(m, STRIDE, 1);
    g->DH = arg_pair(m, DILATION, 0), g->DW = arg_pair(m, DILATION, 1);
    pads(m, 0, &g->PT, &tot);
    pads(m, 1, &g->PL, &tot);
    g->G = arg_int(m, GROUPS);
}

static void declare(module *m)
{
    if (!m->args[IN].given && !m->args[IN].inferred)
        error_at(m->loc, "cannot infer this conv2d layer's input channels: it is never used "
                         "in the model; give 'in:' or use it");
    int64_t w[4] = {arg_int(m, OUT), arg_int(m, IN) / arg_int(m, GROUPS),
                    arg_pair(m, KERNEL, 0), arg_pair(m, KERNEL, 1)};
    declare_tensor(m, "weight", 4, w, DT_F32, 0);
    if (arg_int(m, BIAS))
        declare_tensor(m, "bias", 1, &w[0], DT_F32, 0);
}

/* torch converts kernel_size, stride, padding and dilation with _pair: they
   print as tuples; padding as a word prints bare (padding=same) */
static const char *tuple(const module *m, int k)
{
    return xfmt("(%lld, %lld)", (long long)arg_pair(m, k, 0), (long long)arg_pair(m, k, 1));
}

static const char *extra_repr(const module *m)
{
    strbuf b = {0};
    sb_printf(&b, "%lld, %lld, kernel_size=%s, stride=%s", (long long)arg_int(m, IN),
              (long long)arg_int(m, OUT), tuple(m, KERNEL), tuple(m, STRIDE));
    if (arg_word(m, PADDING))
        sb_printf(&b, ", padding=%s", arg_word(m, PADDING));
    else if (arg_pair(m, PADDING, 0) || arg_pair(m, PADDING, 1))
        sb_printf(&b, ", padding=%s", tuple(m, PADDING));
    if (arg_pair(m, DILATION, 0) != 1 || arg_pair(m, DILATION, 1) != 1)
        sb_printf(&b, ", dilation=%s", tuple(m, DILATION));
    if (arg_int(m, GROUPS) != 1)
        sb_printf(&b, ", groups=%lld", (long long)arg_int(m, GROUPS));
    if (!arg_int(m, BIAS))
        sb_puts(&b, ", bias=False");
    const char *s = xstrdup(b.s);
    free(b.s);
    return s;
}

static const char *torch_ctor(const module *m)
{
    strbuf b = {0};
    sb_printf(&b, "nn.Conv2d(%lld, %lld, kernel_size=%s", (long long)arg_int(m, IN),
              (long long)arg_int(m, OUT), arg_pair_py(m, KERNEL));
    if (m->args[STRIDE].given)
        sb_printf(&b, ", stride=%s", arg_pair_py(m, STRIDE));
    if (m->args[PADDING].given)
        sb_printf(&b, ", padding=%s", arg_pair_py(m, PADDING));
    if (m->args[DILATION].given)
        sb_printf(&b, ", dilation=%s", arg_pair_py(m, DILATION));
    if (arg_int(m, GROUPS) != 1)
        sb_printf(&b, ", groups=%lld", (long long)arg_int(m, GROUPS));
    if (!arg_int(m, BIAS))
        sb_puts(&b, ", bias=False");
    sb_puts(&b, ")");
    const char *s = xstrdup(b.s);
    free(b.s);
    return s;
}

static void default_init(const module *m, const tensor *t, initializer *out)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(t->local, "weight")) {
        out->kind = I_KAIMING_UNIFORM;
        out->a = sqrt(5.0);
        out->mode = NN_FAN_IN;
        out->nonlinearity = NN_NL_LEAKY_RELU;
    } else {
        int64_t fan = arg_int(m, IN) / arg_int(m, GROUPS) * arg_pair(m, KERNEL, 0) *
                      arg_pair(m, KERNEL, 1);
        double bound = 1.0 / sqrt((double)fan);
        out->kind = I_UNIFORM;
        out->a = -bound;
        out->b = bound;
    }
}

#define LL(v) ((long long)(v))

/* Per example and group, (out/groups) * (oh * ow) * (in/groups * kh * kw)
 * multiply-adds from which one nn_sgemm call pays for the im2col copy and
 * the call.  On LeNet (specs/d2l/lenet.yaml at batch 256, the loaded 2-core
 * project machine, cc -O2, best of 3) a train step took 0.24 s with loops
 * and 0.040 s through nn_sgemm (avx512); forward 0.10 s and 0.028 s.  The
 * threshold itself is a rough choice (about a 16 x 16 x 16 product), not
 * measured layer by layer.  bench/run.py row (d) (loaded machine): train
 * 49 ms vs torch 52 ms (1 thread), but forward 27 ms vs 11 ms: the many
 * small per-example products (6 x 784 x 25) are the next thing to batch. */
#define BLAS_MIN_MACS 4096

static int64_t col_rows(const module *m)
{
    return arg_int(m, IN) / arg_int(m, GROUPS) * arg_pair(m, KERNEL, 0) * arg_pair(m, KERNEL, 1);
}

static int uses_blas(const program *p, const op *o)
{
    const shape *out = &op_out(p, o)->shape;
    int64_t opg = arg_int(o->m, OUT) / arg_int(o->m, GROUPS);
    return opg * out->d[2] * out->d[3] * col_rows(o->m) >= BLAS_MIN_MACS;
}

/* the runtime's work buffer (nn_conv2d_work_floats) */
static void conv_extra_saved(const program *p, op *o)
{
    if (!uses_blas(p, o))
        return;
    /* the runtime says how much: one example's columns or its implicit
       GEMM's planes, and one block's weight and bias gradient sums */
    const shape *in = &op_in(p, o, 0)->shape, *out = &op_out(p, o)->shape;
    const module *m = o->m;
    int64_t tot, pt, pl;
    pads(m, 0, &pt, &tot);
    pads(m, 1, &pl, &tot);
    nn_conv2d_geom g = {(int)in->d[1], (int)in->d[2], (int)in->d[3], (int)out->d[1],
                        (int)out->d[2], (int)out->d[3], (int)arg_pair(m, KERNEL, 0),
                        (int)arg_pair(m, KERNEL, 1), (int)arg_pair(m, STRIDE, 0),
                        (int)arg_pair(m, STRIDE, 1), (int)pt, (int)pl,
                        (int)arg_pair(m, DILATION, 0), (int)arg_pair(m, DILATION, 1),
                        (int)arg_int(m, GROUPS)};
    o->nsaved = 1;
    o->saved_numel[0] = (int64_t)nn_conv2d_work_floats(&g);
    o->saved_dtype[0] = DT_F32;
}

/* the runtime's geometry of this use, as a static const in the kernel */
static void geom_decl(op_emit *ec, const geo *g)
{
    K(ec, "    static const nn_conv2d_geom g = {%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, "
          "%lld, %lld, %lld, %lld, %lld, %lld, %lld};", LL(g->C), LL(g->H), LL(g->W), LL(g->O),
      LL(g->OH), LL(g->OW), LL(g->KH), LL(g->KW), LL(g->SH), LL(g->SW), LL(g->PT), LL(g->PL),
      LL(g->DH), LL(g->DW), LL(g->G));
}

/* the loops over (c, kh, kw) of one output element (r, o, oh, ow), with
   xg / wo the group's input and the filter; BODY uses xi and wi, the
   offsets of the input and weight elements */
static void window(op_emit *ec, const geo *g, const char *ind, const char *body)
{
    K(ec, "%sfor (int c = 0; c < %lld; c++)", ind, LL(g->C / g->G));
    K(ec, "%s    for (int kh = 0; kh < %lld; kh++) {", ind, LL(g->KH));
    K(ec, "%s        int ih = oh * %lld - %lld + kh * %lld;", ind, LL(g->SH), LL(g->PT),
      LL(g->DH));
    K(ec, "%s        if (ih < 0 || ih >= %lld) continue;", ind, LL(g->H));
    K(ec, "%s        for (int kw = 0; kw < %lld; kw++) {", ind, LL(g->KW));
    K(ec, "%s            int iw = ow * %lld - %lld + kw * %lld;", ind, LL(g->SW), LL(g->PL),
      LL(g->DW));
    K(ec, "%s            if (iw < 0 || iw >= %lld) continue;", ind, LL(g->W));
    K(ec, "%s            int xi = (c * %lld + ih) * %lld + iw, wi = (c * %lld + kh) * %lld + "
          "kw;", ind, LL(g->H), LL(g->W), LL(g->KH), LL(g->KW));
    K(ec, "%s            %s", ind, body);
    K(ec, "%s        }", ind);
    K(ec, "%s    }", ind);
}

/* the loops over the outputs: r, o (with xo: the group's input plane
   offset, wo the filter), oh, ow (yi the output offset) */
static void outputs(op_emit *ec, const geo *g)
{
    int64_t cpg = g->C / g->G, opg = g->O / g->G;
    K(ec, "    for (int r = 0; r < n; r++)");
    K(ec, "        for (int o = 0; o < %lld; o++) {", LL(g->O));
    K(ec, "            int xo = r * %lld + (o / %lld) * %lld, wo = o * %lld;",
      LL(g->C * g->H * g->W), LL(opg), LL(cpg * g->H * g->W), LL(cpg * g->KH * g->KW));
    K(ec, "            for (int oh = 0; oh < %lld; oh++)", LL(g->OH));
    K(ec, "                for (int ow = 0; ow < %lld; ow++) {", LL(g->OW));
    K(ec, "                    int yi = ((r * %lld + o) * %lld + oh) * %lld + ow;", LL(g->O),
      LL(g->OH), LL(g->OW));
}

static void forward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    int bias = (int)arg_int(ec->o->m, BIAS) || ec->fold_bias;
    if (ec->blas) {
        kbegin(ec);
        K(ec, "static void @(int n, const float *restrict x, float *restrict y, const float "
              "*restrict w%s, float *restrict work)", bias ? ", const float *restrict b" : "");
        K(ec, "{");
        geom_decl(ec, &g);
        K(ec, "    nn_conv2d_forward(&g, n, x, w, %s, y, work);", bias ? "b" : "NULL");
        K(ec, "}");
        const char *f = kend(ec, "f");
        if (bias)
            C(ec, "%s(n, %s, %s, %s, %s, %s);", f, ec->x, ec->y, ec->data[0], ec->data[1],
              ec->saved[0]);
        else
            C(ec, "%s(n, %s, %s, %s, %s);", f, ec->x, ec->y, ec->data[0], ec->saved[0]);
        return;
    }
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y, const float "
          "*restrict w%s)", bias ? ", const float *restrict b" : "");
    K(ec, "{");
    outputs(ec, &g);
    K(ec, "                    float s = 0.0f;");
    window(ec, &g, "                    ", "s += x[xo + xi] * w[wo + wi];");
    K(ec, "                    y[yi] = s%s;", bias ? " + b[o]" : "");
    K(ec, "                }");
    K(ec, "        }");
    K(ec, "}");
    const char *f = kend(ec, "f");
    if (bias)
        C(ec, "%s(n, %s, %s, %s, %s);", f, ec->x, ec->y, ec->data[0], ec->data[1]);
    else
        C(ec, "%s(n, %s, %s, %s);", f, ec->x, ec->y, ec->data[0]);
}

/* the call of the backward kernel just written (the runtime's, with its
   work buffer, or the loops) */
static void backward_call(op_emit *ec, int gw, int gb, int set)
{
    const char *b = kend(ec, "b");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s", ec->gy, ec->gx, ec->data[0]);
    if (ec->blas)
        sb_printf(&a, ", %s", ec->saved[0]);
    if (gw)
        sb_printf(&a, ", %s, %s", ec->saved_in, ec->grad[0]);
    if (gb)
        sb_printf(&a, ", %s", ec->grad[1]);
    if (set)
        sb_puts(&a, ", set");
    C(ec, "%s(%s);", b, a.s);
    free(a.s);
}

static void backward(op_emit *ec)
{
    geo g;
    geometry(ec, &g);
    const module *m = ec->o->m;
    int bias = (int)arg_int(m, BIAS);
    int gw = ec->grad[0] != NULL, gb = bias && ec->grad[1] != NULL;
    int set_w = gw && ec->set[0], set_b = gb && ec->set[1];
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict w%s%s%s%s%s)", ec->blas ? ", float *restrict work" : "",
      gw ? ", const float *restrict x" : "",
      gw ? ", float *restrict gw" : "", gb ? ", float *restrict gb" : "",
      set_w || set_b ? ", int set" : "");
    K(ec, "{");
    if (ec->blas) {
        geom_decl(ec, &g);
        K(ec, "    nn_conv2d_backward(&g, n, gy, %s, w, gx, %s, %s, %s, %s, work);",
          gw ? "x" : "NULL", gw ? "gw" : "NULL", gb ? "gb" : "NULL", set_w ? "set" : "0",
          set_b ? "set" : "0");
        K(ec, "}");
        backward_call(ec, gw, gb, set_w || set_b);
        return;
    }
    if (set_w)
        K(ec, "    if (set) memset(gw, 0, sizeof(float) * %lld);",
          LL(g.O * (g.C / g.G) * g.KH * g.KW));
    if (gb) {
        /* summed in double: n * oh * ow terms whose sum is often near 0 (a
           batch norm after the conv makes it exactly 0 in theory), where a
           float running sum drifts far from torch's (tests/diff s3/n302) */
        K(ec, "    for (int o = 0; o < %lld; o++) {", LL(g.O));
        K(ec, "        double s = 0.0;");
        K(ec, "        for (int r = 0; r < n; r++)");
        K(ec, "            for (int k = 0; k < %lld; k++) s += gy[(r * %lld + o) * %lld + k];",
          LL(g.OH * g.OW), LL(g.O), LL(g.OH * g.OW));
        K(ec, "        gb[o] = (float)(%s + s);", set_b ? "(set ? 0.0 : (double)gb[o])"
                                                       : "(double)gb[o]");
        K(ec, "    }");
    }
    if (gw) {
        outputs(ec, &g);
        K(ec, "                    float d = gy[yi];");
        window(ec, &g, "                    ", "gw[wo + wi] += d * x[xo + xi];");
        K(ec, "                }");
        K(ec, "        }");
    }
    K(ec, "    %s{", ec->gx_maybe_null ? "if (gx) " : "");
    K(ec, "    memset(gx, 0, sizeof(float) * %s);", rows_size(g.C * g.H * g.W));
    outputs(ec, &g);
    K(ec, "                    float d = gy[yi];");
    window(ec, &g, "                    ", "gx[xo + xi] += d * w[wo + wi];");
    K(ec, "                }");
    K(ec, "        }");
    K(ec, "    }");
    K(ec, "}");
    backward_call(ec, gw, gb, set_w || set_b);
}

const op_desc op_conv2d = {
    .name = "conv2d",
    .cls = "Conv2d",
    .args = args,
    .nargs = 8,
    .main_arg = OUT,
    .main_what = "conv2d's output channels",
    .null_msg = "conv2d needs its output channels and kernel: write {conv2d: {out: 6, kernel: 5}}",
    .tensor_names = tensors,
    .ntensor_names = 2,
    .shape = conv_shape,
    .declare = declare,
    .extra_repr = extra_repr,
    .torch_ctor = torch_ctor,
    .default_init = default_init,
    .default_init_what = "_ConvNd.reset_parameters",
    .extra_saved = conv_extra_saved,
    .saved_forward = 1,
    .saved_blas_only = 1,
    .uses_blas = uses_blas,
    .forward = forward,
    .folds_bn = 4,
    .backward = backward,
    .backward_reads_input = 1,
};
