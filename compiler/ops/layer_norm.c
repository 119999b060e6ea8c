/* ops/layer_norm.c: nn.LayerNorm(shape, eps, elementwise_affine) (SPEC 1.2.2).
 *
 * `shape` (an int or a list, ARG_SHAPE) must be the input's trailing
 * dimensions (the batch dimension excluded).  Each of the call's rows
 * (n times the examples' leading positions) is normalized over its
 * M = prod(shape) elements with its mean and biased variance (in double);
 * y = xhat * w + b with weight, bias of that shape (ones, zeros).  mean and
 * rstd per row are saved; backward: gxhat = gy * w, gx = rstd * (gxhat -
 * mean(gxhat) - xhat * mean(gxhat * xhat)), gw = sum(gy * xhat), gb =
 * sum(gy) over the rows. */
#include <stdlib.h>
#include <string.h>

#include "op.h"

enum { SHAPE, EPS, AFFINE };
static const arg_spec args[] = {
    [SHAPE] = {"shape", ARG_SHAPE, NULL, 1, "the normalized trailing dimensions", 1,
               MAX_DIM_SIZE, 1, NULL},
    [EPS] = {"eps", ARG_NUM, "1e-5", 0, NULL, 0, 0, 0, NULL},
    [AFFINE] = {"elementwise_affine", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
};

static const char *const tensors[] = {"weight", "bias"};

static int64_t norm_size(const module *m)
{
    int64_t s = 1;
    for (int k = 0; k < m->args[SHAPE].ndims; k++)
        s *= m->args[SHAPE].dims[k];
    return s;
}

static const char *tuple(const module *m)
{
    strbuf b = {0};
    const argval *a = &m->args[SHAPE];
    sb_putc(&b, '(');
    for (int k = 0; k < a->ndims; k++)
        sb_printf(&b, "%s%lld", k ? ", " : "", (long long)a->dims[k]);
    if (a->ndims == 1)
        sb_putc(&b, ',');
    sb_putc(&b, ')');
    const char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

static void ln_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    const argval *a = &m->args[SHAPE];
    int ok = a->ndims <= in->ndim - 1;
    for (int k = 0; ok && k < a->ndims; k++)
        ok = in->d[in->ndim - a->ndims + k] == a->dims[k];
    if (!ok)
        shape_error(sc, "%s normalizes over the trailing dimensions %s but gets input %s "
                        "(batch first)", shape_what(sc), tuple(m), shape_text(in));
    *out = *in;
}

static void declare(module *m)
{
    if (!(arg_num(m, EPS) > 0))
        error_at(m->args[EPS].loc, "layer norm eps must be > 0, got %s", arg_py(m, EPS));
    if (arg_int(m, AFFINE)) {
        declare_tensor(m, "weight", m->args[SHAPE].ndims, m->args[SHAPE].dims, DT_F32, 0);
        declare_tensor(m, "bias", m->args[SHAPE].ndims, m->args[SHAPE].dims, DT_F32, 0);
    }
}

static const char *extra(const module *m)
{
    return xfmt("%s, eps=%s, elementwise_affine=%s", tuple(m), arg_py(m, EPS),
                arg_int(m, AFFINE) ? "True" : "False");
}

static const char *ctor(const module *m)
{
    return xfmt("nn.LayerNorm(%s, eps=%s, elementwise_affine=%s)", tuple(m), arg_py(m, EPS),
                arg_int(m, AFFINE) ? "True" : "False");
}

static void default_init(const module *m, const tensor *t, initializer *out)
{
    (void)m;
    memset(out, 0, sizeof *out);
    out->kind = !strcmp(t->local, "weight") ? I_ONES : I_ZEROS;
}

static void extra_saved(const program *p, op *o)
{
    int64_t rows = shape_numel(&op_in(p, o, 0)->shape) / norm_size(o->m);
    o->nsaved = 2;
    o->saved_numel[0] = o->saved_numel[1] = rows;
    o->saved_dtype[0] = o->saved_dtype[1] = DT_F32;
}

static void forward(op_emit *ec)
{
    const module *m = ec->o->m;
    long long M = (long long)norm_size(m);
    const char *rows = rows_expr(per_example(op_in(ec->p, ec->o, 0)) / M);
    int affine = (int)arg_int(m, AFFINE), keep = ec->saved[0] != NULL;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y%s%s)",
      affine ? ", const float *restrict w, const float *restrict b" : "",
      keep ? ", float *restrict smean, float *restrict srstd" : "");
    K(ec, "{");
    K(ec, "    for (int r = 0; r < %s; r++) {", rows);
    K(ec, "        const float *xr = x + (size_t)r * %lld;", M);
    K(ec, "        float *yr = y + (size_t)r * %lld;", M);
    K(ec, "        double s = 0.0, v = 0.0;");
    K(ec, "        for (int j = 0; j < %lld; j++) s += xr[j];", M);
    K(ec, "        const double mean = s / %lld;", M);
    K(ec, "        for (int j = 0; j < %lld; j++) { double d = xr[j] - mean; v += d * d; }", M);
    K(ec, "        const double rstd = 1.0 / sqrt(v / %lld + %s);", M, dlit(arg_num(m, EPS)));
    if (keep) {
        K(ec, "        smean[r] = (float)mean;");
        K(ec, "        srstd[r] = (float)rstd;");
    }
    K(ec, "        const float mf = (float)mean, rf = (float)rstd;");
    K(ec, "        for (int j = 0; j < %lld; j++) yr[j] = (xr[j] - mf) * rf%s;", M,
      affine ? " * w[j] + b[j]" : "");
    K(ec, "    }");
    K(ec, "}");
    const char *f = kend(ec, "f");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s", ec->x, ec->y);
    if (affine)
        sb_printf(&a, ", %s, %s", ec->data[0], ec->data[1]);
    if (keep)
        sb_printf(&a, ", %s, %s", ec->saved[0], ec->saved[1]);
    C(ec, "%s(%s);", f, a.s);
    free(a.s);
}

static void backward(op_emit *ec)
{
    const module *m = ec->o->m;
    long long M = (long long)norm_size(m);
    const char *rows = rows_expr(per_example(op_in(ec->p, ec->o, 0)) / M);
    int affine = (int)arg_int(m, AFFINE);
    int gw = affine && ec->grad[0] != NULL, gb = affine && ec->grad[1] != NULL;
    int set_w = gw && ec->set[0], set_b = gb && ec->set[1];
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict x, const float *restrict smean, const float *restrict srstd%s%s%s%s)",
      affine ? ", const float *restrict w" : "", gw ? ", float *restrict gw" : "",
      gb ? ", float *restrict gb" : "", set_w || set_b ? ", int set" : "");
    K(ec, "{");
    if (set_w)
        K(ec, "    if (set) memset(gw, 0, sizeof(float) * %lld);", M);
    if (set_b)
        K(ec, "    if (set) memset(gb, 0, sizeof(float) * %lld);", M);
    K(ec, "    for (int r = 0; r < %s; r++) {", rows);
    K(ec, "        const float *xr = x + (size_t)r * %lld, *gr = gy + (size_t)r * %lld;", M, M);
    K(ec, "        const float mean = smean[r], rstd = srstd[r];");
    if (gw)
        K(ec, "        for (int j = 0; j < %lld; j++) gw[j] += gr[j] * ((xr[j] - mean) * rstd);",
          M);
    if (gb)
        K(ec, "        for (int j = 0; j < %lld; j++) gb[j] += gr[j];", M);
    K(ec, "        %s{", ec->gx_maybe_null ? "if (gx) " : "");
    K(ec, "            float *gxr = gx + (size_t)r * %lld;", M);
    K(ec, "            double sg = 0.0, sgx = 0.0;");
    K(ec, "            for (int j = 0; j < %lld; j++) {", M);
    K(ec, "                float g = gr[j]%s;", affine ? " * w[j]" : "");
    K(ec, "                sg += g;");
    K(ec, "                sgx += (double)g * ((xr[j] - mean) * rstd);");
    K(ec, "            }");
    K(ec, "            const float mg = (float)(sg / %lld), mgx = (float)(sgx / %lld);", M, M);
    K(ec, "            for (int j = 0; j < %lld; j++)", M);
    K(ec, "                gxr[j] = rstd * (gr[j]%s - mg - (xr[j] - mean) * rstd * mgx);",
      affine ? " * w[j]" : "");
    K(ec, "        }");
    K(ec, "    }");
    K(ec, "}");
    const char *b = kend(ec, "b");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s, %s, %s", ec->gy, ec->gx, ec->saved_in, ec->saved[0],
              ec->saved[1]);
    if (affine)
        sb_printf(&a, ", %s", ec->data[0]);
    if (gw)
        sb_printf(&a, ", %s", ec->grad[0]);
    if (gb)
        sb_printf(&a, ", %s", ec->grad[1]);
    if (set_w || set_b)
        sb_puts(&a, ", set");
    C(ec, "%s(%s);", b, a.s);
    free(a.s);
}

const op_desc op_layer_norm = {
    .name = "layer_norm", .cls = "LayerNorm", .args = args, .nargs = 3, .main_arg = SHAPE,
    .main_what = "layer_norm's shape",
    .null_msg = "layer_norm needs its shape: write {layer_norm: 8} or {layer_norm: [4, 8]}",
    .tensor_names = tensors, .ntensor_names = 2,
    .shape = ln_shape, .extra_saved = extra_saved, .declare = declare,
    .extra_repr = extra, .torch_ctor = ctor, .default_init = default_init,
    .default_init_what = "LayerNorm.reset_parameters (ones, zeros)",
    .forward = forward, .backward = backward, .backward_reads_input = 1,
};
