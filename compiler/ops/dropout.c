/* ops/dropout.c (copies are loops, not memcpy: GCC 12 -O1 with the sanitizers
 * reports a memcpy into a gradient that might be NULL on a path it cannot
 * see is guarded, as -Warray-bounds): nn.Dropout(p) (SPEC 1.2.2, 1.6).
 *
 * Training mode: one draw per element of the call's n rows, in row-major
 * order, from the instance's generator, as torch 1.13's CPU
 * bernoulli_(1 - p): r64 = nn_rng_u64 (two mt19937 outputs, the first the
 * high half), kept when (r64 & (2^53 - 1)) * 2^-53 < 1 - p.  torch then
 * computes noise = mask / (1 - p) (in float: 1.0f / (float)(1 - p)) and
 * y = x * noise, so a dropped element is x * 0 (-0 for a negative x), as
 * here.  The noise is saved (extra_saved) and backward is gx = gy * noise.
 * p = 0 is the identity and p = 1 is x * 0 without draws, as torch's
 * _dropout_impl.  Eval mode: the identity, forward and backward.  Backward
 * uses the mode at the time of the call (the mode of the forward before it:
 * switching the mode between forward and backward is not supported). */
#include <string.h>

#include "op.h"

enum { P };
static const arg_spec args[] = {
    [P] = {"p", ARG_NUM, "0.5", 0, NULL, 0, 0, 0, NULL},
};

static void check_p(const module *m)
{
    double p = arg_num(m, P);
    if (!(p >= 0.0 && p <= 1.0))
        error_at(m->args[P].loc, "dropout probability has to be between 0 and 1, got %s",
                 arg_py(m, P));
}

static void dropout_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    (void)sc;
    check_p(m);
    *out = *in;
}

static void extra_saved(const program *p, op *o)
{
    double pr = arg_num(o->m, P);
    if (pr == 0.0)
        return;
    o->nsaved = 1;
    o->saved_numel[0] = shape_numel(&op_in(p, o, 0)->shape);
    o->saved_dtype[0] = DT_F32;
}

static const char *extra(const module *m)
{
    return xfmt("p=%s, inplace=False", arg_py(m, P));
}

static const char *ctor(const module *m)
{
    return xfmt("nn.Dropout(p=%s)", arg_py(m, P));
}

static void forward(op_emit *ec)
{
    double p = arg_num(ec->o->m, P);
    const char *cnt = rows_expr(per_example(op_in(ec->p, ec->o, 0)));
    kbegin(ec);
    if (p == 0.0) {
        K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
        K(ec, "{");
        K(ec, "    for (int k = 0; k < %s; k++) y[k] = x[k];", cnt);
        K(ec, "}");
        C(ec, "%s(n, %s, %s);", kend(ec, "f"), ec->x, ec->y);
        return;
    }
    float q = (float)(1.0 - p);
    float s = p == 1.0 ? 0.0f : 1.0f / q;
    int keep = ec->saved[0] != NULL;
    K(ec, "static void @(int n, const float *restrict x, float *restrict y, int training, "
          "nn_rng *rng%s)", keep ? ", float *restrict noise" : "");
    K(ec, "{");
    K(ec, "    if (!training) {");
    K(ec, "        for (int k = 0; k < %s; k++) y[k] = x[k];", cnt);
    K(ec, "        return;");
    K(ec, "    }");
    if (p == 1.0) {
        K(ec, "    (void)rng;");
        K(ec, "    for (int k = 0; k < %s; k++) {", cnt);
        if (keep)
            K(ec, "        noise[k] = 0.0f;");
        K(ec, "        y[k] = x[k] * 0.0f;");
        K(ec, "    }");
    } else {
        K(ec, "    for (int k = 0; k < %s; k++) {", cnt);
        K(ec, "        uint64_t r = nn_rng_u64(rng);");
        K(ec, "        double u = (double)(r & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;");
        K(ec, "        float v = u < %s ? %s : 0.0f;", dlit(1.0 - p), flit(s));
        if (keep)
            K(ec, "        noise[k] = v;");
        K(ec, "        y[k] = x[k] * v;");
        K(ec, "    }");
    }
    K(ec, "}");
    const char *f = kend(ec, "f");
    if (keep)
        C(ec, "%s(n, %s, %s, %s, %s, %s);", f, ec->x, ec->y, ec->training, ec->rng, ec->saved[0]);
    else
        C(ec, "%s(n, %s, %s, %s, %s);", f, ec->x, ec->y, ec->training, ec->rng);
}

static void backward(op_emit *ec)
{
    double p = arg_num(ec->o->m, P);
    const char *cnt = rows_expr(per_example(op_in(ec->p, ec->o, 0)));
    kbegin(ec);
    if (p == 0.0) {
        K(ec, "static void @(int n, const float *restrict gy, float *restrict gx)");
        K(ec, "{");
        K(ec, "    for (int k = 0; k < %s; k++) gx[k] = gy[k];", cnt);
        K(ec, "}");
        C(ec, "%s(n, %s, %s);", kend(ec, "b"), ec->gy, ec->gx);
        return;
    }
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, int training, "
          "const float *restrict noise)");
    K(ec, "{");
    K(ec, "    if (!training) {");
    K(ec, "        for (int k = 0; k < %s; k++) gx[k] = gy[k];", cnt);
    K(ec, "        return;");
    K(ec, "    }");
    K(ec, "    for (int k = 0; k < %s; k++) gx[k] = gy[k] * noise[k];", cnt);
    K(ec, "}");
    C(ec, "%s(n, %s, %s, %s, %s);", kend(ec, "b"), ec->gy, ec->gx, ec->training, ec->saved[0]);
}

const op_desc op_dropout = {
    .name = "dropout", .cls = "Dropout", .args = args, .nargs = 1, .main_arg = P,
    .main_what = "dropout's probability",
    .shape = dropout_shape, .extra_saved = extra_saved,
    .extra_repr = extra, .torch_ctor = ctor,
    .forward = forward, .backward = backward,
    .random = 1, .mode_dependent = 1,
};
