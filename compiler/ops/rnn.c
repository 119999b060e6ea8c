/* ops/rnn.c: nn.RNN, nn.LSTM, nn.GRU (SPEC 1.2.4) with batch_first=True,
 * on [N, T, F]; the output is torch's `output`, [N, T, hidden * dirs]
 * (h_n and c_n are not exposed), from a zero initial state.
 *
 * Parameters, per layer k and direction (suffix _reverse), in torch's
 * registration order: weight_ih_lk [G*H, in_k], weight_hh_lk [G*H, H],
 * bias_ih_lk [G*H], bias_hh_lk [G*H], with G gate blocks in torch's order
 * (LSTM i, f, g, o; GRU r, z, n; RNN 1) and in_k the input size for k = 0,
 * H * dirs above.  Default init: every parameter U(+-1/sqrt(H)), in
 * registration order (RNNBase.reset_parameters).
 *
 * The work is the runtime's (nn_rnn_forward / nn_rnn_backward in
 * runtime/rnn.c): one call per use, with this use's geometry as a static
 * const; the products go through nn_sgemm when the layer is large enough
 * (uses_blas), else the runtime's loops (always with --no-blas).  The first
 * extra saved tensor is the work space forward fills and backward reads
 * (every layer's output, gates, cell states, dropout noise), which
 * --inference allocates too (saved_forward); the second is backward's
 * scratch.  Dropout between layers draws from the instance generator in
 * training mode (random, mode_dependent).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#include <nngen/rt.h>

enum { HIDDEN, LAYERS, BIAS, BIDIR, DROPOUT, IN, NONLIN };

static const char *const nl_words[] = {"tanh", "relu", NULL};

#define COMMON_ARGS                                                                             \
    [HIDDEN] = {"hidden", ARG_INT, NULL, 1, "the hidden size", 1, MAX_DIM_SIZE, 0, NULL}, \
    [LAYERS] = {"layers", ARG_INT, "1", 0, NULL, 1, 1000, 0, NULL},                              \
    [BIAS] = {"bias", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},                                 \
    [BIDIR] = {"bidirectional", ARG_BOOL, "false", 0, NULL, 0, 1, 0, NULL},                      \
    [DROPOUT] = {"dropout", ARG_NUM, "0", 0, NULL, 0, 0, 0, NULL},                               \
    [IN] = {"in", ARG_INT, NULL, 0, "the number of input features", 1, MAX_DIM_SIZE, 1, NULL}

static const arg_spec rnn_args[] = {
    COMMON_ARGS,
    [NONLIN] = {"nonlinearity", ARG_WORD, "tanh", 0, NULL, 0, 0, 0, nl_words},
};
static const arg_spec cell_args[] = {COMMON_ARGS};

static const char *const tensors[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                      "bias_hh_l0"};

static int kind_of(const module *m)
{
    if (!strcmp(m->op->name, "lstm"))
        return NN_LSTM;
    if (!strcmp(m->op->name, "gru"))
        return NN_GRU;
    return !strcmp(arg_word(m, NONLIN), "relu") ? NN_RNN_RELU : NN_RNN_TANH;
}

static int64_t gates(const module *m)
{
    int k = kind_of(m);
    return k == NN_LSTM ? 4 : k == NN_GRU ? 3 : 1;
}

static int dirs(const module *m)
{
    return arg_int(m, BIDIR) ? 2 : 1;
}

static void check_dropout(const module *m)
{
    double p = arg_num(m, DROPOUT);
    if (!(p >= 0.0 && p <= 1.0))
        error_at(m->args[DROPOUT].loc, "%s dropout must be a number in [0, 1] (the probability "
                                       "of zeroing each element between stacked layers), got %s",
                 m->op->name, arg_py(m, DROPOUT));
}

static void rnn_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    check_dropout(m);
    if (in->ndim != 3)
        shape_error(sc, "%s needs a sequence [batch, time, features] (batch_first), got %s%s",
                    shape_what(sc), shape_text(in),
                    in->ndim == 2 ? ": write the input as [time, features], e.g. 'input: [T, F]'"
                                  : "");
    int64_t f = in->d[2];
    if (!m->args[IN].given && !m->args[IN].inferred)
        shape_infer_arg(sc, IN, f);
    else if (arg_int(m, IN) != f)
        shape_error(sc, "%s takes %lld input features (%s) but gets input %s with %lld",
                    shape_what(sc), (long long)arg_int(m, IN), shape_arg_origin(sc, IN),
                    shape_text(in), (long long)f);
    *out = *in;
    out->d[2] = arg_int(m, HIDDEN) * dirs(m);
}

static void declare(module *m)
{
    if (!m->args[IN].given && !m->args[IN].inferred)
        error_at(m->loc, "cannot infer this %s layer's input size: it is never used in the "
                         "model; give 'in:' or use it", m->op->name);
    int64_t H = arg_int(m, HIDDEN), GH = gates(m) * H, D = dirs(m);
    for (int64_t l = 0; l < arg_int(m, LAYERS); l++)
        for (int64_t d = 0; d < D; d++) {
            const char *suf = d ? "_reverse" : "";
            int64_t wi[2] = {GH, l == 0 ? arg_int(m, IN) : H * D}, wh[2] = {GH, H};
            declare_tensor(m, xfmt("weight_ih_l%lld%s", (long long)l, suf), 2, wi, DT_F32, 0);
            declare_tensor(m, xfmt("weight_hh_l%lld%s", (long long)l, suf), 2, wh, DT_F32, 0);
            if (arg_int(m, BIAS)) {
                declare_tensor(m, xfmt("bias_ih_l%lld%s", (long long)l, suf), 1, &GH, DT_F32, 0);
                declare_tensor(m, xfmt("bias_hh_l%lld%s", (long long)l, suf), 1, &GH, DT_F32, 0);
            }
        }
}

/* torch stores dropout as float(dropout): it prints as a float */
static const char *dropout_py(const module *m)
{
    char b[64];
    py_float_repr(b, sizeof b, arg_num(m, DROPOUT));
    return xstrdup(b);
}

/* RNNBase.extra_repr's text (nonlinearity is not in it); the emitted
   module's constructor takes the same, and nonlinearity */
static void repr_args(strbuf *b, const module *m)
{
    sb_printf(b, "%lld, %lld", (long long)arg_int(m, IN), (long long)arg_int(m, HIDDEN));
    if (arg_int(m, LAYERS) != 1)
        sb_printf(b, ", num_layers=%lld", (long long)arg_int(m, LAYERS));
    if (!arg_int(m, BIAS))
        sb_puts(b, ", bias=False");
    sb_puts(b, ", batch_first=True");
    if (arg_num(m, DROPOUT) != 0.0)
        sb_printf(b, ", dropout=%s", dropout_py(m));
    if (arg_int(m, BIDIR))
        sb_puts(b, ", bidirectional=True");
}

static const char *extra_repr(const module *m)
{
    strbuf b = {0};
    repr_args(&b, m);
    const char *s = xstrdup(b.s);
    free(b.s);
    return s;
}

/* the emitted module's subclass (emit_py.c) of the same name */
static const char *torch_ctor(const module *m)
{
    strbuf b = {0};
    sb_printf(&b, "%s(", m->op->cls);
    repr_args(&b, m);
    if (kind_of(m) == NN_RNN_RELU)
        sb_puts(&b, ", nonlinearity='relu'");
    sb_puts(&b, ")");
    const char *s = xstrdup(b.s);
    free(b.s);
    return s;
}

static void default_init(const module *m, const tensor *t, initializer *out)
{
    (void)t;
    memset(out, 0, sizeof *out);
    double stdv = 1.0 / sqrt((double)arg_int(m, HIDDEN));
    out->kind = I_UNIFORM;
    out->a = -stdv;
    out->b = stdv;
}

static nn_rnn_geom geom(const program *p, const op *o, int blas)
{
    const module *m = o->m;
    const shape *in = &op_in(p, o, 0)->shape;
    double drop = arg_num(m, DROPOUT);
    nn_rnn_geom g;
    memset(&g, 0, sizeof g);
    g.kind = kind_of(m);
    g.layers = (int)arg_int(m, LAYERS);
    g.dirs = dirs(m);
    g.bias = (int)arg_int(m, BIAS);
    g.t = (int)in->d[1];
    g.in = (int)in->d[2];
    g.hidden = (int)arg_int(m, HIDDEN);
    g.batch = (int)in->d[0];
    g.blas = blas;
    /* torch's _dropout_impl: noise = bernoulli_(1 - p) / (1 - p), in float */
    g.keep = 1.0 - drop;
    g.scale = drop == 1.0 ? 0.0f : 1.0f / (float)(1.0 - drop);
    return g;
}

/* the products are worth nn_sgemm from this many multiply-adds per step
   (rows x gates x hidden), as linear's BLAS_MIN_MACS */
static int uses_blas(const program *p, const op *o)
{
    const shape *in = &op_in(p, o, 0)->shape;
    int64_t GH = gates(o->m) * arg_int(o->m, HIDDEN);
    return in->d[0] * GH * arg_int(o->m, HIDDEN) >= 1024;
}

static void extra_saved(const program *p, op *o)
{
    /* blas does not change the sizes */
    nn_rnn_geom g = geom(p, o, 0);
    o->nsaved = 2;
    o->saved_numel[0] = (int64_t)nn_rnn_work_floats(&g);
    o->saved_numel[1] = (int64_t)nn_rnn_scratch_floats(&g);
    o->saved_dtype[0] = o->saved_dtype[1] = DT_F32;
}

static void geom_decl(op_emit *ec)
{
    nn_rnn_geom g = geom(ec->p, ec->o, ec->blas);
    static const char *const kinds[] = {"NN_RNN_TANH", "NN_RNN_RELU", "NN_LSTM", "NN_GRU"};
    K(ec, "    static const nn_rnn_geom g = {%s, %d, %d, %d, %d, %d, %d, %d, %d, %s, %s};",
      kinds[g.kind], g.layers, g.dirs, g.bias, g.t, g.in, g.hidden, g.batch, g.blas,
      dlit(g.keep), flit(g.scale));
}

static int nparams(const module *m)
{
    return (int)(arg_int(m, LAYERS) * dirs(m) * (arg_int(m, BIAS) ? 4 : 2));
}

static void forward(op_emit *ec)
{
    const module *m = ec->o->m;
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y, const float *const "
          "*w, float *restrict work, int training, nn_rng *rng)");
    K(ec, "{");
    geom_decl(ec);
    K(ec, "    nn_rnn_forward(&g, n, x, y, w, work, training, rng);");
    K(ec, "}");
    const char *f = kend(ec, "f");
    strbuf b = {0};
    for (int k = 0; k < nparams(m); k++)
        sb_printf(&b, "%s%s", k ? ", " : "", ec->data[k]);
    C(ec, "{");
    C(ec, "    const float *const w[] = {%s};", b.s);
    C(ec, "    %s(n, %s, %s, w, %s, %s, %s);", f, ec->x, ec->y, ec->saved[0], ec->training,
      ec->rng);
    C(ec, "}");
    free(b.s);
}

static void backward(op_emit *ec)
{
    const module *m = ec->o->m;
    int set = 0;
    for (int k = 0; k < nparams(m); k++)
        if (ec->grad[k])
            set |= ec->set[k];
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx, const float "
          "*restrict x, const float *const *w, float *const *gw, int set, const float "
          "*restrict work, float *restrict scratch, int training)");
    K(ec, "{");
    geom_decl(ec);
    K(ec, "    nn_rnn_backward(&g, n, gy, x, w, gx, gw, set, work, scratch, training);");
    K(ec, "}");
    const char *f = kend(ec, "b");
    strbuf w = {0}, gw = {0};
    for (int k = 0; k < nparams(m); k++) {
        sb_printf(&w, "%s%s", k ? ", " : "", ec->data[k]);
        sb_printf(&gw, "%s%s", k ? ", " : "", ec->grad[k] ? ec->grad[k] : "NULL");
    }
    C(ec, "{");
    C(ec, "    const float *const w[] = {%s};", w.s);
    C(ec, "    float *const gw[] = {%s};", gw.s);
    C(ec, "    %s(n, %s, %s, %s, w, gw, %s, %s, %s, %s);", f, ec->gy, ec->gx, ec->saved_in,
      set ? "set" : "0", ec->saved[0], ec->saved[1], ec->training);
    C(ec, "}");
    free(w.s);
    free(gw.s);
}

#define RNN_OP(var, nm, klass, argv)                                                            \
    const op_desc var = {                                                                       \
        .name = nm, .cls = klass, .args = argv, .nargs = sizeof argv / sizeof argv[0],          \
        .main_arg = HIDDEN, .main_what = nm "'s hidden size",                                   \
        .null_msg = nm " needs its hidden size: write {" nm ": 8} or {" nm ": {hidden: 8}}",    \
        .tensor_names = tensors, .ntensor_names = 4,                                            \
        .shape = rnn_shape, .extra_saved = extra_saved, .saved_forward = 1,                     \
        .declare = declare, .extra_repr = extra_repr, .torch_ctor = torch_ctor,                 \
        .default_init = default_init, .default_init_what = "RNNBase.reset_parameters",          \
        .uses_blas = uses_blas, .forward = forward, .backward = backward,                      \
        .backward_reads_input = 1, .random = 1, .mode_dependent = 1,                            \
    }

RNN_OP(op_rnn, "rnn", "RNN", rnn_args);
RNN_OP(op_lstm, "lstm", "LSTM", cell_args);
RNN_OP(op_gru, "gru", "GRU", cell_args);
