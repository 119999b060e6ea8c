/* ops/silu.c: nn.SiLU(), y = x * sigmoid(x) = x / (1 + exp(-x)), as torch's
 * CPU kernel computes it; backward (torch's silu_backward):
 * gx = gy * s * (1 + x * (1 - s)) with s = sigmoid(x), from the saved input.
 * A pointwise op (ops/pointwise.h): it reads its input in backward, so it
 * is not run as a linear layer's epilogue. */
#include "pointwise.h"

static const char *silu_expr(const module *m, const char *v)
{
    (void)m;
    return xfmt("%s / (1.0f + expf(-%s))", v, v);
}

static void silu_grad(op_emit *ec, const module *m, const char *s)
{
    (void)m;
    K(ec, "        float sg = 1.0f / (1.0f + expf(-%s[i]));", s);
    K(ec, "        gx[i] = gy[i] * sg * (1.0f + %s[i] * (1.0f - sg));", s);
}

static const pointwise silu_pw = {silu_expr, silu_grad, NULL, NULL};

const op_desc op_silu = {
    .name = "silu", .cls = "SiLU", .main_arg = -1, .data = &silu_pw,
    .torch_ctor_fixed = "nn.SiLU()",
    .forward = pointwise_forward, .backward = pointwise_backward,
    .backward_reads_input = 1,
};
