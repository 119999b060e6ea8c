/* ops/linear.c: nn.Linear(in, out, bias) on the last dimension.
 *
 * Parameters weight [out, in], bias [out]; torch's reset_parameters:
 * weight kaiming_uniform(a=sqrt(5)), bias U(+-1/sqrt(in)).  Small layers
 * are loops with constant bounds; from BLAS_MIN_MACS multiply-adds per
 * example batch the products go to the runtime (nn_linear_forward,
 * nn_sgemm), which also applies a following ReLU / leaky ReLU as it stores
 * y (the epilogue) and a preceding ReLU's backward as it stores gx (the
 * mask), see op.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

enum { OUT, IN, BIAS, WEIGHT };

static const arg_spec args[] = {
    [OUT] = {"out", ARG_INT, NULL, 1, "the number of output features", 1, MAX_DIM_SIZE, 0, NULL},
    [IN] = {"in", ARG_INT, NULL, 0, "the number of input features", 1, MAX_DIM_SIZE, 1, NULL},
    [BIAS] = {"bias", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
    [WEIGHT] = {"weight", ARG_TIED, NULL, 0, NULL, 0, 0, 0, NULL},
};

/* {tied: PATH, transpose: true} (SPEC 1.2.5): torch's TiedLinear, y = x W + b
   with W the tied-to [in, out] weight (the module's borrow) */
static int transposed(const module *m)
{
    return m->args[WEIGHT].given && m->args[WEIGHT].i;
}

static const char *cls_of(const module *m)
{
    return transposed(m) ? "TiedLinear" : "Linear";
}

static const char *const tensors[] = {"weight", "bias"};

static void linear_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    if (in->ndim < 2)
        shape_error(sc, "%s needs an input with features, got %s", shape_what(sc),
                    shape_text(in));
    int64_t last = in->d[in->ndim - 1];
    if (!m->args[IN].given && !m->args[IN].inferred)
        shape_infer_arg(sc, IN, last);
    else if (arg_int(m, IN) != last)
        shape_error(sc, "%s takes %lld input features (%s) but gets input %s with %lld",
                    shape_what(sc), (long long)arg_int(m, IN), shape_arg_origin(sc, IN),
                    shape_text(in), (long long)last);
    *out = *in;
    out->d[out->ndim - 1] = arg_int(m, OUT);
}

static void declare(module *m)
{
    if (!m->args[IN].given && !m->args[IN].inferred)
        error_at(m->loc, "cannot infer this linear layer's input size: it is never used "
                         "in the model; give 'in:' or use it");
    int64_t w[2] = {arg_int(m, OUT), arg_int(m, IN)};
    if (m->args[WEIGHT].given)
        declare_tied(m, "weight", WEIGHT, w);
    else
        declare_tensor(m, "weight", 2, w, DT_F32, 0);
    if (arg_int(m, BIAS))
        declare_tensor(m, "bias", 1, &w[0], DT_F32, 0);
}

static const char *extra_repr(const module *m)
{
    return xfmt("in_features=%lld, out_features=%lld, bias=%s%s", (long long)arg_int(m, IN),
                (long long)arg_int(m, OUT), arg_int(m, BIAS) ? "True" : "False",
                transposed(m) ? xfmt(", weight=%s.T", m->args[WEIGHT].text) : "");
}

static const char *torch_ctor(const module *m)
{
    if (transposed(m)) /* the class of emit_py.c, which also ties its weight */
        return xfmt("TiedLinear(%lld, %lld%s)", (long long)arg_int(m, IN),
                    (long long)arg_int(m, OUT), arg_int(m, BIAS) ? "" : ", bias=False");
    return xfmt("nn.Linear(%lld, %lld%s)", (long long)arg_int(m, IN), (long long)arg_int(m, OUT),
                arg_int(m, BIAS) ? "" : ", bias=False");
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
        double bound = 1.0 / sqrt((double)arg_int(m, IN));
        out->kind = I_UNIFORM;
        out->a = -bound;
        out->b = bound;
    }
}

/* Products of at least this many multiply-adds (rows * in * out, the full
 * batch) go to the runtime's nn_linear_forward / nn_sgemm; smaller ones are
 * loops with constant bounds.  Measured on the project's 2-core machine
 * (cc -O2; forward + backward of two equal linear layers, best of 7, us):
 *     MACs per layer        64   256   512  1024  2048  8192  32768
 *     cblas_sgemm         0.37  0.45  0.48  0.53  0.69  1.53   3.11
 *     loops               0.08  0.28  0.55  0.72  1.43  5.23  16.25
 * (OpenBLAS 0.3.21, 2 threads), and later, with nngen's own AVX-512 kernel
 * behind nn_sgemm (batch 4, n x n layers):
 *     MACs per layer             256   484   676  1024  1444  4096
 *     nn_sgemm (avx512)         0.46  0.56  0.63  0.59  0.80  1.18
 *     loops                     0.14  0.76  1.11  0.87  2.10  3.56
 * so the call pays from about 512 multiply-adds on either path; 1024 keeps
 * a margin for the cblas path (at 1024 the two are within 10 % in some
 * shapes there) and costs at most a few tenths of a microsecond per layer
 * between 512 and 1024 on the AVX-512 path. */
#define BLAS_MIN_MACS 1024

static int uses_blas(const program *p, const op *o)
{
    const module *m = o->m;
    int64_t rows = shape_numel(&op_in(p, o, 0)->shape) / arg_int(m, IN);
    return rows * arg_int(m, IN) * arg_int(m, OUT) >= BLAS_MIN_MACS;
}

/* rows x in -> rows x out, rows = n * (rows per example) */
static void geometry(const op_emit *ec, int64_t *rows_per, int64_t *in, int64_t *out)
{
    const module *m = ec->o->m;
    *in = arg_int(m, IN);
    *out = arg_int(m, OUT);
    *rows_per = per_example(op_in(ec->p, ec->o, 0)) / *in;
}

/* y = x W + b with W [in, out] (the tied-to weight); bias first, then the
   product added, as torch's addmm(b, x, W) */
static void forward_transposed(op_emit *ec, int64_t rp, int64_t in64, int64_t out64, int bias)
{
    long long in = (long long)in64, out = (long long)out64;
    const op *epi = ec->epi;
    const char *rows = rows_expr(rp);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y, const float "
          "*restrict w%s)", bias ? ", const float *restrict b" : "");
    K(ec, "{");
    if (ec->blas) {
        K(ec, "    for (int r = 0; r < %s; r++)", rows);
        K(ec, "        for (int o = 0; o < %lld; o++) y[r * %lld + o] = %s;", out, out,
          bias ? "b[o]" : "0.0f");
        K(ec, "    nn_sgemm(0, 0, %s, %lld, %lld, x, %lld, w, %lld, 1, y, %lld);", rows, out, in,
          in, out, out);
        if (epi)
            K(ec, "    for (int k = 0; k < %s; k++) y[k] = %s;", rows_expr(rp * out64),
              epi->d->epilogue_expr(epi->m, "y[k]"));
    } else {
        K(ec, "    for (int r = 0; r < %s; r++)", rows);
        K(ec, "        for (int o = 0; o < %lld; o++) {", out);
        K(ec, "            float s = 0.0f;");
        K(ec, "            for (int i = 0; i < %lld; i++)", in);
        K(ec, "                s += x[r * %lld + i] * w[i * %lld + o];", in, out);
        if (bias)
            K(ec, "            s += b[o];");
        K(ec, "            y[r * %lld + o] = %s;", out, epi ? epi->d->epilogue_expr(epi->m, "s")
                                                          : "s");
        K(ec, "        }");
    }
    K(ec, "}");
    const char *f = kend(ec, "f");
    if (bias)
        C(ec, "%s(n, %s, %s, %s, %s);", f, ec->x, ec->y, ec->tied_w, ec->data[0]);
    else
        C(ec, "%s(n, %s, %s, %s);", f, ec->x, ec->y, ec->tied_w);
}

/* gW += x^T gy (W [in, out]), gb += the sum of gy's rows, gx = gy W^T */
static void backward_transposed(op_emit *ec, int64_t rp, int64_t in64, int64_t out64, int bias)
{
    long long in = (long long)in64, out = (long long)out64;
    const char *rows = rows_expr(rp);
    int gw = ec->tied_gw != NULL, gb = bias && ec->grad[0] != NULL;
    int set_w = gw && ec->tied_set, set_b = gb && ec->set[0];
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict w%s%s%s%s)", gw ? ", const float *restrict x, float *restrict gw" : "",
      gb ? ", float *restrict gb" : "", set_w || set_b ? ", int set" : "",
      ec->mask ? ", const float *restrict mask" : "");
    K(ec, "{");
    if (gb) {
        if (set_b)
            K(ec, "    if (set) memset(gb, 0, sizeof(float) * %lld);", out);
        K(ec, "    for (int r = 0; r < %s; r++)", rows);
        K(ec, "        for (int o = 0; o < %lld; o++) gb[o] += gy[r * %lld + o];", out, out);
    }
    if (ec->blas) {
        if (gw)
            K(ec, "    nn_sgemm(1, 0, %lld, %lld, %s, x, %lld, gy, %lld, %s, gw, %lld);", in, out,
              rows, in, out, set_w ? "!set" : "1", out);
        K(ec, "    %snn_sgemm(0, 1, %s, %lld, %lld, gy, %lld, w, %lld, 0, gx, %lld);",
          ec->gx_maybe_null ? "if (gx) " : "", rows, in, out, out, out, in);
    } else {
        if (gw) {
            if (set_w)
                K(ec, "    if (set) memset(gw, 0, sizeof(float) * %lld);", out * in);
            K(ec, "    for (int r = 0; r < %s; r++)", rows);
            K(ec, "        for (int i = 0; i < %lld; i++) {", in);
            K(ec, "            float xv = x[r * %lld + i];", in);
            K(ec, "            for (int o = 0; o < %lld; o++) gw[i * %lld + o] += xv * gy[r * "
                  "%lld + o];", out, out, out);
            K(ec, "        }");
        }
        K(ec, "    %sfor (int r = 0; r < %s; r++)", ec->gx_maybe_null ? "if (gx) " : "", rows);
        K(ec, "        for (int i = 0; i < %lld; i++) {", in);
        K(ec, "            float s = 0.0f;");
        K(ec, "            for (int o = 0; o < %lld; o++) s += gy[r * %lld + o] * w[i * %lld + "
              "o];", out, out, out);
        K(ec, "            gx[r * %lld + i] = s;", in);
        K(ec, "        }");
    }
    if (ec->mask) /* the ReLU before this layer: gx = mask > 0 ? gx : 0 */
        K(ec, "    %sfor (int k = 0; k < %s; k++) if (!(mask[k] > 0.0f)) gx[k] = 0.0f;",
          ec->gx_maybe_null ? "if (gx) " : "", rows_expr(rp * in64));
    K(ec, "}");
    const char *b = kend(ec, "b");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s", ec->gy, ec->gx, ec->tied_w);
    if (gw)
        sb_printf(&a, ", %s, %s", ec->saved_in, ec->tied_gw);
    if (gb)
        sb_printf(&a, ", %s", ec->grad[0]);
    if (set_w || set_b)
        sb_puts(&a, ", set");
    if (ec->mask)
        sb_printf(&a, ", %s", ec->mask);
    C(ec, "%s(%s);", b, a.s);
    free(a.s);
}

static void forward(op_emit *ec)
{
    const module *m = ec->o->m;
    int64_t rp, in, out;
    geometry(ec, &rp, &in, &out);
    int bias = (int)arg_int(m, BIAS) || ec->fold_bias;
    const char *rows = rows_expr(rp);
    const op *epi = ec->epi;
    if (m->has_borrow) {
        forward_transposed(ec, rp, in, out, bias);
        return;
    }
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y, const float "
          "*restrict w%s)", bias ? ", const float *restrict b" : "");
    K(ec, "{");
    if (ec->blas) {
        /* the runtime applies the bias and a relu / leaky relu as it stores
           y; other activations follow in a pass of their own */
        double slope = 0;
        int act = epi && epi->d->epilogue_act ? epi->d->epilogue_act(epi->m, &slope) : 0;
        K(ec, "    nn_linear_forward(%s, %lld, %lld, x, w, %s, %s, %s, y);", rows, (long long)in,
          (long long)out, bias ? "b" : "NULL",
          act == NN_ACT_RELU ? "NN_ACT_RELU" : act == NN_ACT_LEAKY_RELU ? "NN_ACT_LEAKY_RELU"
                                                                          : "NN_ACT_NONE",
          act == NN_ACT_LEAKY_RELU ? flit(slope) : "0.0f");
        const char *rt = epi && !act && epi->d->epilogue_rt ? epi->d->epilogue_rt(ec->p, epi)
                                                           : NULL;
        if (rt)
            K(ec, "    %s((long)%s, y, y);", rt, rows_expr(rp * out));
        else if (epi && !act)
            K(ec, "    for (int k = 0; k < %s; k++) y[k] = %s;", rows_expr(rp * out),
              epi->d->epilogue_expr(epi->m, "y[k]"));
    } else {
        K(ec, "    for (int r = 0; r < %s; r++)", rows);
        K(ec, "        for (int o = 0; o < %lld; o++) {", (long long)out);
        K(ec, "            float s = 0.0f;");
        K(ec, "            for (int i = 0; i < %lld; i++)", (long long)in);
        K(ec, "                s += x[r * %lld + i] * w[o * %lld + i];", (long long)in,
          (long long)in);
        if (bias)
            K(ec, "            s += b[o];");
        K(ec, "            y[r * %lld + o] = %s;", (long long)out,
          epi ? epi->d->epilogue_expr(epi->m, "s") : "s");
        K(ec, "        }");
    }
    K(ec, "}");
    const char *f = kend(ec, "f");
    if (bias)
        C(ec, "%s(n, %s, %s, %s, %s);", f, ec->x, ec->y, ec->data[0], ec->data[1]);
    else
        C(ec, "%s(n, %s, %s, %s);", f, ec->x, ec->y, ec->data[0]);
}

static void backward(op_emit *ec)
{
    const module *m = ec->o->m;
    int64_t rp, in64, out64;
    geometry(ec, &rp, &in64, &out64);
    long long in = (long long)in64, out = (long long)out64;
    int bias = (int)arg_int(m, BIAS);
    if (m->has_borrow) {
        backward_transposed(ec, rp, in64, out64, bias);
        return;
    }
    int gw = ec->grad[0] != NULL, gb = bias && ec->grad[1] != NULL;
    int set_w = gw && ec->set[0], set_b = gb && ec->set[1];
    /* the weight stepped as its gradient is stored (nn_sgemm_sgd) */
    const char *step = gw && ec->blas ? ec->step[0] : NULL;
    const char *rows = rows_expr(rp);
    int masked = ec->mask != NULL;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict w%s%s%s%s%s%s)", gw ? ", const float *restrict x" : "",
      gw ? ", float *restrict gw" : "", gb ? ", float *restrict gb" : "",
      set_w || set_b ? ", int set" : "", masked ? ", const float *restrict mask" : "",
      step ? ", const nn_sgd_step *step" : "");
    K(ec, "{");
    if (gb) {
        if (set_b)
            K(ec, "    if (set) memset(gb, 0, sizeof(float) * %lld);", out);
        K(ec, "    for (int r = 0; r < %s; r++)", rows);
        K(ec, "        for (int o = 0; o < %lld; o++) gb[o] += gy[r * %lld + o];", out, out);
    }
    if (ec->blas) {
        if (gw && !step)
            K(ec, "    nn_sgemm(1, 0, %lld, %lld, %s, gy, %lld, x, %lld, %s, gw, %lld);", out, in,
              rows, out, in, set_w ? "!set" : "1", in);
        const char *cond = ec->gx_maybe_null ? "if (gx) " : "";
        if (masked) {
            K(ec, "    %s/* with the backward of the ReLU before this layer */", cond);
            K(ec, "    nn_sgemm_relu_mask(%s, %lld, %lld, gy, %lld, w, %lld, gx, %lld, mask, "
                  "%lld);", rows, in, out, out, in, in, in);
        } else {
            K(ec, "    %snn_sgemm(0, 0, %s, %lld, %lld, gy, %lld, w, %lld, 0, gx, %lld);", cond,
              rows, in, out, out, in, in);
        }
        /* stepping w as its gradient is stored: after gx, which reads w */
        if (gw && step)
            K(ec, "    nn_sgemm_sgd(1, 0, %lld, %lld, %s, gy, %lld, x, %lld, %s, gw, %lld, step);",
              out, in, rows, out, in, set_w ? "!set" : "1", in);
    } else {
        if (gw) {
            if (set_w)
                K(ec, "    if (set) memset(gw, 0, sizeof(float) * %lld);", out * in);
            K(ec, "    for (int r = 0; r < %s; r++)", rows);
            K(ec, "        for (int o = 0; o < %lld; o++) {", out);
            K(ec, "            float g = gy[r * %lld + o];", out);
            K(ec, "            for (int i = 0; i < %lld; i++) gw[o * %lld + i] += g * x[r * "
                  "%lld + i];", in, in, in);
            K(ec, "        }");
        }
        /* gx = gy w, accumulated row by row so the inner loop runs along
           contiguous memory without a reduction (it vectorizes) */
        K(ec, "    %s{", ec->gx_maybe_null ? "if (gx) " : "");
        K(ec, "        memset(gx, 0, sizeof(float) * %s);", rows_size(rp * in));
        K(ec, "        for (int r = 0; r < %s; r++)", rows);
        K(ec, "            for (int o = 0; o < %lld; o++) {", out);
        K(ec, "                float g = gy[r * %lld + o];", out);
        K(ec, "                for (int i = 0; i < %lld; i++) gx[r * %lld + i] += g * w[o * "
              "%lld + i];", in, in, in);
        K(ec, "            }");
        K(ec, "    }");
    }
    K(ec, "}");
    const char *b = kend(ec, "b");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s", ec->gy, ec->gx, ec->data[0]);
    if (gw)
        sb_printf(&a, ", %s, %s", ec->saved_in, ec->grad[0]);
    if (gb)
        sb_printf(&a, ", %s", ec->grad[1]);
    if (set_w || set_b)
        sb_puts(&a, ", set");
    if (masked)
        sb_printf(&a, ", %s", ec->mask);
    if (step) {
        sb_printf(&a, ", %s", step);
        ec->stepped[0] = 1;
    }
    C(ec, "%s(%s);", b, a.s);
    free(a.s);
}

const op_desc op_linear = {
    .name = "linear",
    .cls = "Linear",
    .cls_of = cls_of,
    .args = args,
    .nargs = 4,
    .main_arg = OUT,
    .main_what = "linear's output size",
    .null_msg = "linear needs its output size: write {linear: 8} or {linear: {out: 8}}",
    .tensor_names = tensors,
    .ntensor_names = 2,
    .shape = linear_shape,
    .declare = declare,
    .extra_repr = extra_repr,
    .torch_ctor = torch_ctor,
    .default_init = default_init,
    .default_init_what = "Linear.reset_parameters",
    .uses_blas = uses_blas,
    .forward = forward,
    .folds_bn = 2,
    .backward = backward,
    .backward_reads_input = 1,
    .takes_mask = 1,
    .takes_epilogue = 1,
    .fuses_sgd = 1,
};
