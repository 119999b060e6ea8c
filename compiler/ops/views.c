/* ops/views.c: identity and flatten do no work: their output is their
 * input, seen with another shape (the same activation buffer), and their
 * backward passes the gradient through. */
#include "op.h"

const op_desc op_identity = {
    .name = "identity", .cls = "Identity", .main_arg = -1,
    .torch_ctor_fixed = "nn.Identity()", .view = 1, .backward_identity = 1,
};

/* start_dim=1, end_dim=-1: [N, d1, ..., dk] -> [N, d1 * ... * dk] */
static void flatten_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    (void)m;
    if (in->ndim < 2)
        shape_error(sc, "%s needs at least 2 dimensions, got %s", shape_what(sc), shape_text(in));
    int64_t n = 1;
    for (int i = 1; i < in->ndim; i++)
        n *= in->d[i];
    *out = *in;
    out->ndim = 2;
    out->d[1] = n;
}

const op_desc op_flatten = {
    .name = "flatten", .cls = "Flatten", .main_arg = -1,
    .extra_fixed = "start_dim=1, end_dim=-1", .torch_ctor_fixed = "nn.Flatten()",
    .shape = flatten_shape, .view = 1, .backward_identity = 1,
};
