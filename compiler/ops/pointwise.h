/* ops/pointwise.h: the elementwise activations share their kernels.
 *
 * A pointwise op gives y = f(v) as a C expression of a float v (also its
 * epilogue when it can follow a linear layer's store), and the body of its
 * backward loop, which reads gy[i] and x[i] (the input) or y[i] (the
 * output) and writes gx[i].  pointwise_forward / pointwise_backward write
 * the kernels around them. */
#ifndef NNGEN_OPS_POINTWISE_H
#define NNGEN_OPS_POINTWISE_H

#include "op.h"

typedef struct pointwise {
    const char *(*expr)(const module *m, const char *v);
    /* backward loop body for element i; s is "x" or "y", the saved array */
    void (*grad)(op_emit *ec, const module *m, const char *s);
    /* the runtime's vectorized, threaded forward and backward (NULL: none),
       called instead of the loops for large uses (pointwise_uses_rt) */
    const char *rt_forward, *rt_backward;
} pointwise;

int pointwise_uses_rt(const program *p, const op *o);
const char *pointwise_epilogue_rt(const program *p, const op *o);

void pointwise_forward(op_emit *ec);
void pointwise_backward(op_emit *ec);
const char *pointwise_epilogue(const module *m, const char *v);

#endif
