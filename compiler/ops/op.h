/* ops/op.h: what a layer is, in one place.
 *
 * Every layer type is an op_desc, defined in one file of compiler/ops/
 * (or a row of a family's table: the pointwise activations are rows of
 * ops/pointwise.c) and listed once in ops/registry.c.  The descriptor owns
 * the layer's whole story, and the phases of the compiler read it instead
 * of switching on a layer kind:
 *
 *   build.c   args[]          the argument schema: names, types, defaults,
 *                             the main argument ({linear: 8}), messages
 *   shapes.c  shape()         the shape rule, with errors at the argument
 *                             or the use; view (no work, output aliases input)
 *   names.c   declare()       the parameters and buffers, their dtype and
 *                             shape; extra_repr() for print(net)
 *   plan.c    default_init()  what the torch constructor draws
 *   emit_py.c torch_ctor()    the PyTorch constructor (the same argument
 *                             texts as extra_repr: one source for both)
 *   emit*.c   forward(), backward(), epilogue, mask backward
 *
 * Adding a layer: write its op_desc in a new file here (a pointwise one can
 * use ops/pointwise.h, as ops/silu.c does) and add one OP() line to
 * ops/ops.def (the registry and the build read it); then its hand-written
 * torch counterpart in tests/torch/nnspec.py, its cases in
 * tests/gen/cases.py and a spec under specs/ for the conformance run.
 *
 * Contracts of the emitters: forward() and backward() write their kernels
 * between kbegin() and kend() and their calls with C() (the caller may put
 * them in a block under a condition); an op with parameters is
 * called with gx possibly NULL (gx_maybe_null) and must check it.
 */
#ifndef NNGEN_OPS_OP_H
#define NNGEN_OPS_OP_H

#include "../nngen.h"

/* ---- arguments ----------------------------------------------------------- */

/* ARG_PAIR: an int k or a list [a, b] (print shows what was written: k or
   (a, b)), or one of `words` when the spec gives them ("same", "valid").
   ARG_SHAPE: an int k or a list [a, b, ...] of 1 .. NN_MAX_DIM - 1 sizes,
   each in [min, max] (argval ndims, dims; layer_norm's shape).
   ARG_WORD: one of `words` (a string: rnn's nonlinearity).
   ARG_TIED: {tied: PATH} or {tied: PATH, transpose: true} (SPEC 1.2.5):
   argval text is the path, i the transpose flag. */
typedef enum { ARG_INT, ARG_NUM, ARG_BOOL, ARG_PAIR, ARG_SHAPE, ARG_WORD, ARG_TIED } arg_type;

typedef struct arg_spec {
    const char *name;
    arg_type type;
    const char *def;            /* default as written in docs ("0.01", "true");
                                   NULL: required, or inferred from the input */
    int required;
    const char *help;           /* for "needs 'out' (HELP)" */
    int64_t min, max;           /* ARG_INT range */
    int shape_arg;              /* blame this argument (when written) for shape errors */
    const char *const *words;   /* ARG_PAIR: strings it also takes (NULL-terminated) */
} arg_spec;

/* The argument's value, and its text as Python writes it (an integer
   literal digit for digit, a float as repr()) for print and torch_ctor. */
int64_t arg_int(const module *m, int k);
double arg_num(const module *m, int k);
const char *arg_py(const module *m, int k);
/* ARG_PAIR: the two values (a written int k is (k, k)), the word if one
   was given (else NULL), and how torch prints it: "2", "(2, 3)", "'same'" */
int64_t arg_pair(const module *m, int k, int which);
const char *arg_word(const module *m, int k);
const char *arg_pair_py(const module *m, int k);

/* ---- shapes -------------------------------------------------------------- */

typedef struct shape_ctx shape_ctx;
/* A shape error of the op being checked: "shape mismatch: linear '0': ..."
   at the right place (the written argument, the use, or the {ref:} of a
   shared module).  `what` is "linear '0'" or "linear (the model)". */
NORETURN void shape_error(shape_ctx *sc, const char *fmt, ...) PRINTF(2, 3);
const char *shape_what(const shape_ctx *sc);
/* An error that this input shape makes of argument k (a kernel larger than
   the input, groups that do not divide its channels): at the argument, or,
   in a shared module, at the {ref:} with "... in shared module 'S'
   (declared at line L), used here: " in front and the argument's line
   after. */
NORETURN void shape_error_arg(shape_ctx *sc, int k, const char *fmt, ...) PRINTF(3, 4);
/* Records that argument k was inferred from this use (for later messages). */
void shape_infer_arg(shape_ctx *sc, int k, int64_t v);
/* "'in: 4' at line 3" or "fixed by its first use at line 5" */
const char *shape_arg_origin(const shape_ctx *sc, int k);

/* ---- tensors ------------------------------------------------------------- */

/* Declares the next parameter (or buffer) of m; registration order. */
void declare_tensor(module *m, const char *local, int ndim, const int64_t *shape, dtype dt,
                    int is_buffer);
/* A weight given by argument k, an ARG_TIED {tied: PATH[, transpose]}
   (SPEC 1.2.5): with shape [out, in] (what the layer would declare), the
   next parameter slot is the tensor at PATH (same shape), or, transposed,
   the layer computes with PATH's tensor of shape [in, out] as its weight
   (module has_borrow / borrow) and declares no weight.  Resolved after
   every layer is declared; the errors are at PATH. */
void declare_tied(module *m, const char *local, int k, const int64_t *shape);

/* ---- emission ------------------------------------------------------------ */

typedef struct emitter emitter;

/* What an op's emitter gets: the C expressions of its buffers and tensors,
 * and where to write.  Kernels are written with K() between kbegin() and
 * kend(), which returns the kernel's name: kernels with the same text are
 * emitted once (one kernel per distinct signature and body).  The call goes
 * into the forward or backward function with C().  Every kernel takes the
 * row count `int n` (the batch rows of this call, 1 .. P_BATCH) first. */
typedef struct op_emit {
    emitter *e;
    const program *p;
    const op *o;
    int idx;                    /* op index */
    int blas;                   /* this use goes through the runtime's nn_sgemm */
    const char *x, *y;          /* forward: input and output buffers */
    const char *xs[OP_MAX_IN];  /* forward: every input (xs[0] is x) */
    const op *epi;              /* forward: the elementwise op fused as this op's
                                   epilogue (writes y for both), or NULL */
    int fold_bias;              /* forward: a bias at data[1] although the layer
                                   has none (a batch norm folded into it) */
    const char *tied_w;         /* a weight used transposed (module has_borrow) */
    const char *tied_gw;        /* and its gradient (NULL: frozen where declared) */
    int tied_set;               /* backward: the first write of tied_gw (as set[]) */
    const char *gy, *gx;        /* backward: gradient of the output, of the input */
    int gx_maybe_null;          /* gx is NULL when nobody needs it (check at run time) */
    const char *mask;           /* backward: the ReLU output whose backward this op
                                   applies as it stores gx (see mask_backward), or NULL */
    const char *saved_in;       /* backward: the saved input and output */
    const char *saved_out;
    const char *saved[OP_MAX_SAVED];  /* extra saved tensors (nsaved); NULL with
                                   --inference, where no backward follows */
    const char *training;       /* the instance's mode as a C int expression */
    const char *rng;            /* the instance's generator: an nn_rng * expression */
    const char **data;          /* this module's tensors, by local index: "D + 12" */
    const char **grad;          /* and their gradients: "G + 12" (trainable only, else NULL) */
    int *set;                   /* backward: the first write of this gradient in a train
                                   step (write when `set`, else add) */
    const char **step;          /* backward, ops with fuses_sgd: a `const nn_sgd_step *`
                                   expression (NULL at run time outside a train step)
                                   when this op's backward completes trainable tensor
                                   k's gradient and may step it with nn_sgemm_sgd as
                                   the gradient is stored; NULL: not offered */
    int *stepped;               /* the op sets stepped[k] = 1 when it did so */
} op_emit;

void kbegin(op_emit *ec);
void K(op_emit *ec, const char *fmt, ...) PRINTF(2, 3);
const char *kend(op_emit *ec, const char *prefix);
void C(op_emit *ec, const char *fmt, ...) PRINTF(2, 3);
/* "n", or "n * 8": the elements of `per` per example times the rows */
const char *rows_expr(int64_t per);
/* the same as a size_t (memcpy, memset sizes) */
const char *rows_size(int64_t per);
/* per-example elements of a value (its numel / batch) */
int64_t per_example(const value *v);
const char *op_comment(const program *p, const op *o);
const char *flit(double v);     /* float literal that reads back exactly */
const char *dlit(double v);     /* double literal */

/* Whether op o runs through the runtime's matrix products (its uses_blas,
   never with --no-blas). */
int op_blas(const program *p, const op *o, int no_blas);
/* Floats per batch from which a sum (a residual's, or gradients added up
   in the backward schedule) calls the runtime's threaded nn_add_forward
   outside --no-blas: two threads' shares of act.c's PER_THREAD_MIN. */
#define RT_ADD_MIN 32768

/* ---- the descriptor -------------------------------------------------------- */

struct op_desc {
    const char *name;           /* spec name: "linear" */
    const char *cls;            /* torch class: "Linear" */
    const char *(*cls_of)(const module *m);  /* when the arguments decide ("TiedLinear") */
    const arg_spec *args;
    int nargs;
    int main_arg;               /* index of the main argument ({linear: 8}); -1: none */
    const char *main_what;      /* message name of the main argument as a scalar
                                   ("linear's output size"); NULL: "op 'arg'" */
    const char *null_msg;       /* error for {op: null} when the main argument is
                                   required; NULL: defaults */
    const char *const *tensor_names;  /* every local tensor name it may declare */
    int ntensor_names;

    /* shapes.c: out from in; report errors with shape_error() */
    void (*shape)(shape_ctx *sc, module *m, const shape *in, shape *out);
    int view;                   /* no work: the output is the input, reshaped */
    /* the tensors backward needs beyond the op's input and output (masks,
       statistics, indices): sets o->nsaved, saved_numel, saved_dtype */
    void (*extra_saved)(const program *p, op *o);
    int saved_blas_only;        /* the extra saved tensors are the runtime's work space:
                                   none when the op runs as loops (--no-blas) */
    int saved_forward;          /* forward uses the first saved_forward extra saved
                                   tensors as work space (conv2d's im2col columns, a
                                   recurrent layer's states): --inference allocates
                                   those too, where the others are NULL */
    int backward_identity;      /* backward passes the output gradient to every input
                                   unchanged (views, a residual's sum): the schedule
                                   does it, the op writes no backward kernel */

    /* names.c: parameters then buffers (declare_tensor), and print's text */
    void (*declare)(module *m);
    const char *(*extra_repr)(const module *m);
    const char *(*torch_ctor)(const module *m);   /* "nn.Linear(4, 8)" */
    const char *extra_fixed;    /* extra_repr when it does not depend on arguments ("") */
    const char *torch_ctor_fixed;                 /* likewise: "nn.ReLU()" */

    /* plan.c: the default initializer of tensor t (reset_parameters) */
    void (*default_init)(const module *m, const tensor *t, initializer *out);
    const char *default_init_what;                 /* "Linear.reset_parameters" */

    /* emission; a view has neither.  uses_blas: this use is large enough
       for the runtime's nn_sgemm (NULL: never) */
    int (*uses_blas)(const program *p, const op *o);
    void (*forward)(op_emit *ec);
    void (*backward)(op_emit *ec);
    int backward_reads_input;   /* the saved tensors backward reads */
    int (*backward_reads_input_of)(const module *m);  /* when it depends on args */
    int backward_reads_output;

    /* Elementwise ops that can run in the epilogue of the op before them
       (a linear layer's store): the activation of v as a C expression, and
       the runtime's fused activation (NN_ACT_*, slope) or 0 if none. */
    const char *(*epilogue_expr)(const module *m, const char *v);
    int (*epilogue_act)(const module *m, double *slope);
    /* or the runtime function f(count, y, y) that applies it in place to a
       large use (NULL: the loop of epilogue_expr) */
    const char *(*epilogue_rt)(const program *p, const op *o);
    /* A ReLU-like op whose backward is gx = y > 0 ? gy : 0 (y its output):
       the next op may apply it as it stores its own gx (takes_mask). */
    int mask_backward;
    int takes_mask;             /* can apply the previous op's mask backward */
    int takes_epilogue;         /* can run the next op's epilogue_expr: 1 any,
                                   2 only a ReLU's (mask_backward: the runtime
                                   has nn_batch_norm_relu_forward and
                                   nn_add_relu_forward) */
    int fuses_sgd;              /* its backward can take op_emit.step (nn_sgemm_sgd) */
    /* --inference in eval mode: a batch norm right after a layer that
       folds_bn (conv2d, linear: weight [O, ...], bias [O] or none) is folded
       into that layer's weight and bias when fold_ok(bn) (it uses the
       running statistics in eval mode); fold(bn_ec, w, b, wout, bout, per)
       emits the kernel computing wout (O x per) and bout (O) from the
       layer's w and b (NULL: no bias) and the norm's tensors. */
    int folds_bn;               /* the rank of the output it folds on (2, 4), or 0 */
    /* a norm over the batch: the values per channel each example adds to
       the statistics (torch refuses 1 value per channel in training mode;
       *always: also in eval mode, where it uses the batch's statistics too) */
    int64_t (*batch_values)(const program *p, const op *o, int *always);
    int (*fold_ok)(const module *m);
    void (*fold)(op_emit *ec, const char *w, const char *b, const char *wout, const char *bout,
                 int64_t per);

    int int_input;              /* reads the network's int32 indices (embedding): the
                                   only op that may, and it may read nothing else */
    const void *data;           /* a family's row (ops/pointwise.h) */
    int random;                 /* draws from the instance generator */
    int mode_dependent;         /* differs between training and eval */
};

/* ops/add.c: the sum of a residual (an op of the IR, not a layer) */
extern const op_desc op_add;

/* ops/registry.c */
extern const op_desc *const op_registry[];
extern const int op_count;
const op_desc *op_find(const char *name);
/* "linear, relu, ...": every layer name, in registry order (--list-layers') */
const char *op_name_list(void);
/* Whether backward reads the op's input (args may decide). */
int op_reads_input(const module *m);
const char *op_extra_repr(const module *m);
/* The default initializer of tensor t of m (its op's default_init; zeros
   when the op has none), as an initializer of a concrete kind. */
void op_default_init(const module *m, const tensor *t, initializer *out);
const char *op_torch_ctor(const module *m);

#endif
