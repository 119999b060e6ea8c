/* ops/add.c: the sum of a residual connection, y = a + b (the skip and the
 * body, or the body and the shortcut).  Not a layer of the spec language:
 * shapes.c makes one for each use of a residual module.  Its backward is
 * the identity to both inputs (backward_identity): the schedule passes the
 * output gradient on, adding it into the skip path's gradient. */
#include "op.h"

/* large ones (RT_ADD_MIN floats per batch, outside --no-blas): the
   runtime's nn_add_forward, on its threads */
static int add_uses_rt(const program *p, const op *o)
{
    return per_example(op_out(p, o)) * p->batch >= RT_ADD_MIN;
}

/* with a relu after it (ec->epi: the schedule fused them), the relu in
   the same store */
static void add_forward(op_emit *ec)
{
    if (ec->blas) {
        C(ec, "nn_add%s_forward((long)n * %lld, %s, %s, %s);", ec->epi ? "_relu" : "",
          (long long)per_example(op_out(ec->p, ec->o)), ec->xs[0], ec->xs[1], ec->y);
        return;
    }
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict a, const float *restrict b, float "
          "*restrict y)");
    K(ec, "{");
    if (ec->epi) {
        K(ec, "    for (int i = 0; i < %s; i++) {", rows_expr(per_example(op_out(ec->p, ec->o))));
        K(ec, "        const float t = a[i] + b[i];");
        K(ec, "        y[i] = %s;", ec->epi->d->epilogue_expr(ec->epi->m, "t"));
        K(ec, "    }");
    } else {
        K(ec, "    for (int i = 0; i < %s; i++) y[i] = a[i] + b[i];",
          rows_expr(per_example(op_out(ec->p, ec->o))));
    }
    K(ec, "}");
    C(ec, "%s(n, %s, %s, %s);", kend(ec, "f"), ec->xs[0], ec->xs[1], ec->y);
}

const op_desc op_add = {
    .name = "add", .cls = "Residual", .main_arg = -1,
    .uses_blas = add_uses_rt, .forward = add_forward, .backward_identity = 1,
    .takes_epilogue = 2, /* a relu: nn_add_relu_forward */
};
