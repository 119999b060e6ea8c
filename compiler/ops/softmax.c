/* ops/softmax.c: softmax and log_softmax over one dimension (`dim`, torch's
 * indexing with the batch as dimension 0; negative counts from the end).
 * Both save their output; log_softmax's backward is gy - exp(y) * sum(gy).
 * A reduction over the batch dimension (dim 0) covers the rows of the call. */
#include "op.h"

enum { DIM };
static const arg_spec args[] = {
    [DIM] = {"dim", ARG_INT, "1", 0, NULL, -NN_MAX_DIM, NN_MAX_DIM, 1, NULL},
};

static void softmax_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    int dim = (int)arg_int(m, DIM);
    if (dim < -in->ndim || dim >= in->ndim)
        shape_error(sc, "%s: dim=%d is out of range for its input %s (expected %d..%d)",
                    shape_what(sc), dim, shape_text(in), -in->ndim, in->ndim - 1);
    *out = *in;
}

static const char *extra(const module *m)
{
    return xfmt("dim=%d", (int)arg_int(m, DIM));
}

static const char *ctor(const module *m)
{
    return xfmt("nn.%s(dim=%d)", m->op->cls, (int)arg_int(m, DIM));
}

/* outer x size x inner around the reduced dimension, as C expressions of n */
static void geometry(const op_emit *ec, const char **outer, const char **size, int64_t *inner)
{
    const shape *s = &op_in(ec->p, ec->o, 0)->shape;
    int d = (int)arg_int(ec->o->m, DIM);
    if (d < 0)
        d += s->ndim;
    int64_t o = 1, in = 1;
    for (int i = 1; i < d; i++)
        o *= s->d[i];
    for (int i = d + 1; i < s->ndim; i++)
        in *= s->d[i];
    *inner = in;
    if (d == 0) {
        *outer = "1";
        *size = "n";
    } else {
        *outer = rows_expr(o);
        *size = xfmt("%lld", (long long)s->d[d]);
    }
}

static void forward(op_emit *ec)
{
    const char *outer, *size;
    int64_t in;
    geometry(ec, &outer, &size, &in);
    long long inner = (long long)in;
    int log = ec->o->m->op->data != NULL;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
    K(ec, "{");
    K(ec, "    for (int a = 0; a < %s; a++)", outer);
    K(ec, "        for (int c = 0; c < %lld; c++) {", inner);
    K(ec, "            const float *xs = x + a * (%s * %lld) + c;", size, inner);
    K(ec, "            float *ys = y + a * (%s * %lld) + c;", size, inner);
    K(ec, "            float mx = xs[0];");
    K(ec, "            for (int k = 1; k < %s; k++) if (xs[k * %lld] > mx) mx = xs[k * %lld];",
      size, inner, inner);
    K(ec, "            float sum = 0.0f;");
    if (!log) {
        K(ec, "            for (int k = 0; k < %s; k++) { ys[k * %lld] = expf(xs[k * %lld] - "
              "mx); sum += ys[k * %lld]; }", size, inner, inner, inner);
        K(ec, "            for (int k = 0; k < %s; k++) ys[k * %lld] /= sum;", size, inner);
    } else {
        K(ec, "            for (int k = 0; k < %s; k++) sum += expf(xs[k * %lld] - mx);", size,
          inner);
        K(ec, "            float lse = logf(sum);");
        K(ec, "            for (int k = 0; k < %s; k++) ys[k * %lld] = xs[k * %lld] - mx - lse;",
          size, inner, inner);
    }
    K(ec, "        }");
    K(ec, "}");
    C(ec, "%s(n, %s, %s);", kend(ec, "f"), ec->x, ec->y);
}

static void backward(op_emit *ec)
{
    const char *outer, *size;
    int64_t in;
    geometry(ec, &outer, &size, &in);
    long long inner = (long long)in;
    int log = ec->o->m->op->data != NULL;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict y)");
    K(ec, "{");
    K(ec, "    for (int a = 0; a < %s; a++)", outer);
    K(ec, "        for (int c = 0; c < %lld; c++) {", inner);
    K(ec, "            int base = a * (%s * %lld) + c;", size, inner);
    K(ec, "            float s = 0.0f;");
    if (!log) {
        K(ec, "            for (int k = 0; k < %s; k++) s += gy[base + k * %lld] * y[base + k * "
              "%lld];", size, inner, inner);
        K(ec, "            for (int k = 0; k < %s; k++) gx[base + k * %lld] = y[base + k * %lld] "
              "* (gy[base + k * %lld] - s);", size, inner, inner, inner);
    } else {
        K(ec, "            for (int k = 0; k < %s; k++) s += gy[base + k * %lld];", size, inner);
        K(ec, "            for (int k = 0; k < %s; k++) gx[base + k * %lld] = gy[base + k * "
              "%lld] - expf(y[base + k * %lld]) * s;", size, inner, inner, inner);
    }
    K(ec, "        }");
    K(ec, "}");
    C(ec, "%s(n, %s, %s, %s);", kend(ec, "b"), ec->gy, ec->gx, ec->saved_out);
}

static const int is_log = 1;

const op_desc op_log_softmax = {
    .name = "log_softmax", .cls = "LogSoftmax", .args = args, .nargs = 1, .main_arg = DIM,
    .data = &is_log,
    .shape = softmax_shape, .extra_repr = extra, .torch_ctor = ctor,
    .forward = forward, .backward = backward, .backward_reads_output = 1,
};

const op_desc op_softmax = {
    .name = "softmax", .cls = "Softmax", .args = args, .nargs = 1, .main_arg = DIM,
    .shape = softmax_shape, .extra_repr = extra, .torch_ctor = ctor,
    .forward = forward, .backward = backward, .backward_reads_output = 1,
};
