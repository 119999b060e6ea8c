/* ops/pointwise.c: relu, sigmoid, tanh, leaky_relu, gelu — the elementwise
 * activations of torch.nn, one row each; their kernels are the two loops
 * of pointwise_forward / pointwise_backward.
 *
 * relu and leaky_relu backward select with a bit mask instead of a branch:
 * the same result as PyTorch's select (gy or +0.0, even for infinite gy),
 * and C compilers vectorize it at -O2 (a branch in the loop stops GCC).
 * relu, sigmoid, tanh, and leaky_relu with a positive slope (then x > 0
 * exactly when y > 0) read only their output in backward, so they can run
 * in the epilogue of the linear layer before them, whose output is then
 * never stored. */
#include "pointwise.h"

const char *pointwise_epilogue(const module *m, const char *v)
{
    const pointwise *pw = m->op->data;
    return pw->expr(m, v);
}

/* Floats per batch from which an activation with a runtime version calls
   it (outside --no-blas): 2 threads' shares of act.c's PER_THREAD_MIN
   (also add.c's and the schedule's sums, RT_ADD_MIN).  On
   LeNet at batch 256 (4704 and 1600 sigmoids per example; 2-core AVX-512
   machine) the expf loops took about 40 % of the forward. */
#define RT_MIN_FLOATS 32768

int pointwise_uses_rt(const program *p, const op *o)
{
    const pointwise *pw = o->m->op->data;
    return pw->rt_forward && per_example(op_in(p, o, 0)) * p->batch >= RT_MIN_FLOATS;
}

const char *pointwise_epilogue_rt(const program *p, const op *o)
{
    const pointwise *pw = o->m->op->data;
    return pointwise_uses_rt(p, o) ? pw->rt_forward : NULL;
}

void pointwise_forward(op_emit *ec)
{
    const module *m = ec->o->m;
    const pointwise *pw = m->op->data;
    if (ec->blas) {
        C(ec, "%s((long)n * %lld, %s, %s);", pw->rt_forward,
          (long long)per_example(op_in(ec->p, ec->o, 0)), ec->x, ec->y);
        return;
    }
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
    K(ec, "{");
    K(ec, "    for (int i = 0; i < %s; i++) y[i] = %s;",
      rows_expr(per_example(op_in(ec->p, ec->o, 0))), pw->expr(m, "x[i]"));
    K(ec, "}");
    C(ec, "%s(n, %s, %s);", kend(ec, "f"), ec->x, ec->y);
}

void pointwise_backward(op_emit *ec)
{
    const module *m = ec->o->m;
    const pointwise *pw = m->op->data;
    int in = op_reads_input(m);
    const char *s = in ? "x" : "y";
    if (ec->blas) {
        C(ec, "%s((long)n * %lld, %s, %s, %s);", pw->rt_backward,
          (long long)per_example(op_in(ec->p, ec->o, 0)), ec->gy,
          in ? ec->saved_in : ec->saved_out, ec->gx);
        return;
    }
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict %s)", s);
    K(ec, "{");
    K(ec, "    for (int i = 0; i < %s; i++) {", rows_expr(per_example(op_in(ec->p, ec->o, 0))));
    pw->grad(ec, m, s);
    K(ec, "    }");
    K(ec, "}");
    C(ec, "%s(n, %s, %s, %s);", kend(ec, "b"), ec->gy, ec->gx, in ? ec->saved_in : ec->saved_out);
}

/* ---- relu ------------------------------------------------------------------ */

static const char *relu_expr(const module *m, const char *v)
{
    (void)m;
    return xfmt("(%s > 0.0f ? %s : 0.0f)", v, v);
}

static void relu_grad(op_emit *ec, const module *m, const char *s)
{
    (void)m;
    K(ec, "        union { float f; uint32_t u; } g;");
    K(ec, "        g.f = gy[i];");
    K(ec, "        g.u &= (uint32_t)0 - (uint32_t)(%s[i] > 0.0f);", s);
    K(ec, "        gx[i] = g.f;");
}

static int relu_act(const module *m, double *slope)
{
    (void)m;
    *slope = 0;
    return NN_ACT_RELU;
}

/* large ones through the runtime's threads (memory-bound: one thread of
   the small ResNet's relus read and wrote about half of what two do) */
static const pointwise relu_pw = {relu_expr, relu_grad, "nn_relu_forward", "nn_relu_backward"};

const op_desc op_relu = {
    .name = "relu", .cls = "ReLU", .main_arg = -1, .data = &relu_pw,
    .torch_ctor_fixed = "nn.ReLU()",
    .uses_blas = pointwise_uses_rt,
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_output = 1,
    .epilogue_expr = pointwise_epilogue, .epilogue_act = relu_act,
    .mask_backward = 1,
};

/* ---- sigmoid, tanh ------------------------------------------------------------ */

static const char *sigmoid_expr(const module *m, const char *v)
{
    (void)m;
    return xfmt("(1.0f / (1.0f + expf(-%s)))", v);
}

static void sigmoid_grad(op_emit *ec, const module *m, const char *s)
{
    (void)m;
    K(ec, "        gx[i] = gy[i] * (1.0f - %s[i]) * %s[i];", s, s);
}

static const pointwise sigmoid_pw = {sigmoid_expr, sigmoid_grad, "nn_sigmoid_forward",
                                     "nn_sigmoid_backward"};

const op_desc op_sigmoid = {
    .name = "sigmoid", .cls = "Sigmoid", .main_arg = -1, .data = &sigmoid_pw,
    .torch_ctor_fixed = "nn.Sigmoid()",
    .uses_blas = pointwise_uses_rt,
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_output = 1,
    .epilogue_expr = pointwise_epilogue, .epilogue_rt = pointwise_epilogue_rt,
};

static const char *tanh_expr(const module *m, const char *v)
{
    (void)m;
    return xfmt("tanhf(%s)", v);
}

static void tanh_grad(op_emit *ec, const module *m, const char *s)
{
    (void)m;
    K(ec, "        gx[i] = gy[i] * (1.0f - %s[i] * %s[i]);", s, s);
}

static const pointwise tanh_pw = {tanh_expr, tanh_grad, NULL, NULL};

const op_desc op_tanh = {
    .name = "tanh", .cls = "Tanh", .main_arg = -1, .data = &tanh_pw,
    .torch_ctor_fixed = "nn.Tanh()",
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_output = 1,
    .epilogue_expr = pointwise_epilogue,
};

/* ---- leaky_relu --------------------------------------------------------------- */

enum { SLOPE };
static const arg_spec leaky_args[] = {
    [SLOPE] = {"negative_slope", ARG_NUM, "0.01", 0, NULL, 0, 0, 0, NULL},
};

static const char *leaky_expr(const module *m, const char *v)
{
    return xfmt("(%s > 0.0f ? %s : %s * %s)", v, v, v, flit(arg_num(m, SLOPE)));
}

static void leaky_grad(op_emit *ec, const module *m, const char *s)
{
    K(ec, "        union { float f; uint32_t u; } g, s;");
    K(ec, "        uint32_t m = (uint32_t)0 - (uint32_t)(%s[i] > 0.0f);", s);
    K(ec, "        g.f = gy[i];");
    K(ec, "        s.f = gy[i] * %s;", flit(arg_num(m, SLOPE)));
    K(ec, "        g.u = (g.u & m) | (s.u & ~m);");
    K(ec, "        gx[i] = g.f;");
}

/* with a positive slope, x > 0 exactly when y > 0: the output is read,
   which is what is stored when the activation is fused */
static int leaky_reads_input(const module *m)
{
    return !(arg_num(m, SLOPE) > 0);
}

static int leaky_act(const module *m, double *slope)
{
    *slope = arg_num(m, SLOPE);
    return NN_ACT_LEAKY_RELU;
}

static const char *leaky_extra(const module *m)
{
    return xfmt("negative_slope=%s", arg_py(m, SLOPE));
}

static const char *leaky_ctor(const module *m)
{
    return xfmt("nn.LeakyReLU(negative_slope=%s)", arg_py(m, SLOPE));
}

static const pointwise leaky_pw = {leaky_expr, leaky_grad, NULL, NULL};

const op_desc op_leaky_relu = {
    .name = "leaky_relu", .cls = "LeakyReLU", .args = leaky_args, .nargs = 1,
    .main_arg = SLOPE, .data = &leaky_pw,
    .extra_repr = leaky_extra, .torch_ctor = leaky_ctor,
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_input_of = leaky_reads_input,
    .epilogue_expr = pointwise_epilogue, .epilogue_act = leaky_act,
};

/* ---- gelu (the erf form) ---------------------------------------------------------- */

static const char *gelu_expr(const module *m, const char *v)
{
    (void)m;
    return xfmt("0.5f * %s * (1.0f + erff(%s * 0.70710678118654752f))", v, v);
}

static void gelu_grad(op_emit *ec, const module *m, const char *s)
{
    (void)m;
    K(ec, "        float cdf = 0.5f * (1.0f + erff(%s[i] * 0.70710678118654752f));", s);
    K(ec, "        float pdf = expf(-0.5f * %s[i] * %s[i]) * 0.39894228040143268f;", s, s);
    K(ec, "        gx[i] = gy[i] * (cdf + %s[i] * pdf);", s);
}

static const pointwise gelu_pw = {gelu_expr, gelu_grad, NULL, NULL};

const op_desc op_gelu = {
    .name = "gelu", .cls = "GELU", .main_arg = -1, .data = &gelu_pw,
    .extra_fixed = "approximate='none'", .torch_ctor_fixed = "nn.GELU()",
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_input = 1,
};
