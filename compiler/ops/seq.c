/* ops/seq.c: the sequence helpers of SPEC 1.2.4.
 *
 * last_step: [N, T, F] -> [N, F], the last time step (torch: x[:, -1]),
 * printed LastStep() (a class of the emitted PyTorch module); backward
 * puts the gradient in the last step and zeros elsewhere.
 *
 * embedding: nn.Embedding(num, dim, padding_idx) on the network's int32
 * indices (input_dtype: int32; it must be the first layer): [N, *] ->
 * [N, *, dim].  weight [num, dim], default normal(0, 1) with the
 * padding_idx row zeroed (Embedding.reset_parameters); the padding row gets
 * no gradient, as in torch.  An example with an index outside [0, num)
 * gets NaN in every element of its output (SPEC 1.2.4: the entry points set
 * nn_error(), see emit_api.c).  Its weight may be another layer's
 * ({tied: PATH}: the language-model tying, SPEC 1.2.5).
 */
#include <string.h>

#include "op.h"

/* ---- last_step ------------------------------------------------------------ */

static void last_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    (void)m;
    if (in->ndim != 3)
        shape_error(sc, "%s needs a sequence [batch, time, features], got %s", shape_what(sc),
                    shape_text(in));
    *out = *in;
    out->ndim = 2;
    out->d[1] = in->d[2];
    out->d[2] = 0;
}

static void last_dims(const op_emit *ec, long long *T, long long *F)
{
    const shape *in = &op_in(ec->p, ec->o, 0)->shape;
    *T = (long long)in->d[1];
    *F = (long long)in->d[2];
}

static void last_forward(op_emit *ec)
{
    long long T, F;
    last_dims(ec, &T, &F);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict x, float *restrict y)");
    K(ec, "{");
    K(ec, "    for (int r = 0; r < n; r++)");
    K(ec, "        for (int f = 0; f < %lld; f++) y[r * %lld + f] = x[(r * %lld + %lld) * %lld + "
          "f];", F, F, T, T - 1, F);
    K(ec, "}");
    C(ec, "%s(n, %s, %s);", kend(ec, "f"), ec->x, ec->y);
}

static void last_backward(op_emit *ec)
{
    long long T, F;
    last_dims(ec, &T, &F);
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, float *restrict gx)");
    K(ec, "{");
    K(ec, "    for (int r = 0; r < n; r++)");
    K(ec, "        for (int k = 0; k < %lld; k++)", T * F);
    K(ec, "            gx[r * %lld + k] = k < %lld ? 0.0f : gy[r * %lld + k - %lld];", T * F,
      (T - 1) * F, F, (T - 1) * F);
    K(ec, "}");
    C(ec, "%s(n, %s, %s);", kend(ec, "b"), ec->gy, ec->gx);
}

const op_desc op_last_step = {
    .name = "last_step", .cls = "LastStep", .main_arg = -1,
    .extra_fixed = "", .torch_ctor_fixed = "LastStep()",
    .shape = last_shape, .forward = last_forward, .backward = last_backward,
};

/* ---- embedding ------------------------------------------------------------ */

enum { NUM, DIM, PADDING_IDX, WEIGHT };

static const arg_spec emb_args[] = {
    [NUM] = {"num", ARG_INT, NULL, 1, "the number of embeddings, num_embeddings", 1,
             MAX_DIM_SIZE, 0, NULL},
    [DIM] = {"dim", ARG_INT, NULL, 1, "the size of each embedding, embedding_dim", 1,
             MAX_DIM_SIZE, 0, NULL},
    [PADDING_IDX] = {"padding_idx", ARG_INT, NULL, 0, NULL, -MAX_DIM_SIZE, MAX_DIM_SIZE, 0, NULL},
    [WEIGHT] = {"weight", ARG_TIED, NULL, 0, NULL, 0, 0, 0, NULL},
};

static const char *const emb_tensors[] = {"weight"};

/* padding_idx as torch keeps it (a negative one counts from the end), or -1 */
static int64_t pad_row(const module *m)
{
    if (!m->args[PADDING_IDX].given)
        return -1;
    int64_t v = arg_int(m, PADDING_IDX);
    return v < 0 ? v + arg_int(m, NUM) : v;
}

static void emb_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    if (!m->args[DIM].given)
        error_at(m->loc, "embedding needs 'dim' (the size of each embedding vector): write "
                         "{embedding: {num: %lld, dim: 16}}", (long long)arg_int(m, NUM));
    int64_t num = arg_int(m, NUM), v = arg_int(m, PADDING_IDX);
    if (m->args[PADDING_IDX].given && (v < -num || v >= num))
        error_at(m->args[PADDING_IDX].loc, "embedding padding_idx must be within [-%lld, %lld) "
                 "(num_embeddings is %lld), got %lld", (long long)num, (long long)num,
                 (long long)num, (long long)v);
    if (m->args[WEIGHT].given && m->args[WEIGHT].i)
        error_at(m->args[WEIGHT].loc, "an embedding's weight cannot be tied transposed: "
                 "{tied: PATH, transpose: true} is for a linear layer (the tied autoencoder's "
                 "decoder); write {tied: PATH} to share the weight as it is");
    if (in->ndim >= NN_MAX_DIM)
        shape_error(sc, "%s adds a dimension to its input %s, and nngen's tensors have at "
                    "most %d", shape_what(sc), shape_text(in), NN_MAX_DIM);
    *out = *in;
    out->d[out->ndim++] = arg_int(m, DIM);
}

static void emb_declare(module *m)
{
    int64_t w[2] = {arg_int(m, NUM), arg_int(m, DIM)};
    if (m->args[WEIGHT].given)
        declare_tied(m, "weight", WEIGHT, w);
    else
        declare_tensor(m, "weight", 2, w, DT_F32, 0);
}

static const char *emb_extra(const module *m)
{
    int64_t pr = pad_row(m);
    if (pr >= 0)
        return xfmt("%lld, %lld, padding_idx=%lld", (long long)arg_int(m, NUM),
                    (long long)arg_int(m, DIM), (long long)pr);
    return xfmt("%lld, %lld", (long long)arg_int(m, NUM), (long long)arg_int(m, DIM));
}

static const char *emb_ctor(const module *m)
{
    int64_t pr = pad_row(m);
    if (pr >= 0)
        return xfmt("nn.Embedding(%lld, %lld, padding_idx=%lld)", (long long)arg_int(m, NUM),
                    (long long)arg_int(m, DIM), (long long)pr);
    return xfmt("nn.Embedding(%lld, %lld)", (long long)arg_int(m, NUM),
                (long long)arg_int(m, DIM));
}

static void emb_default_init(const module *m, const tensor *t, initializer *out)
{
    (void)t;
    memset(out, 0, sizeof *out);
    out->kind = I_NORMAL;
    out->a = 0.0;
    out->b = 1.0;
    out->zero_row = pad_row(m) + 1;
}

static void emb_forward(op_emit *ec)
{
    const module *m = ec->o->m;
    long long per = (long long)per_example(op_in(ec->p, ec->o, 0));
    long long num = (long long)arg_int(m, NUM), dim = (long long)arg_int(m, DIM);
    kbegin(ec);
    K(ec, "static void @(int n, const int32_t *restrict x, float *restrict y, const float "
          "*restrict w)");
    K(ec, "{");
    K(ec, "    for (int r = 0; r < n; r++) {");
    K(ec, "        const int32_t *xr = x + r * %lld;", per);
    K(ec, "        int bad = 0;");
    K(ec, "        for (int k = 0; k < %lld; k++) bad |= xr[k] < 0 || xr[k] >= %lld;", per, num);
    K(ec, "        for (int k = 0; k < %lld; k++) {", per);
    K(ec, "            float *yk = y + (r * %lld + k) * %lld;", per, dim);
    K(ec, "            if (bad)");
    K(ec, "                for (int d = 0; d < %lld; d++) yk[d] = NAN;", dim);
    K(ec, "            else");
    K(ec, "                for (int d = 0; d < %lld; d++) yk[d] = w[xr[k] * %lld + d];", dim, dim);
    K(ec, "        }");
    K(ec, "    }");
    K(ec, "}");
    C(ec, "%s(n, (const int32_t *)(const void *)(%s), %s, %s);", kend(ec, "f"), ec->x, ec->y,
      ec->data[0]);
}

static void emb_backward(op_emit *ec)
{
    const module *m = ec->o->m;
    if (!ec->grad[0])
        return;
    long long per = (long long)per_example(op_in(ec->p, ec->o, 0));
    long long dim = (long long)arg_int(m, DIM), num = (long long)arg_int(m, NUM);
    long long pr = (long long)pad_row(m);
    int set = ec->set[0];
    kbegin(ec);
    K(ec, "static void @(int n, const float *restrict gy, const int32_t *restrict x, float "
          "*restrict gw%s)", set ? ", int set" : "");
    K(ec, "{");
    if (set)
        K(ec, "    if (set) memset(gw, 0, sizeof(float) * %lld);", num * dim);
    K(ec, "    for (int i = 0; i < %s; i++) {", rows_expr(per));
    if (pr >= 0)
        K(ec, "        if (x[i] == %lld) continue; /* padding_idx: no gradient */", pr);
    K(ec, "        for (int d = 0; d < %lld; d++) gw[x[i] * %lld + d] += gy[i * %lld + d];", dim,
      dim, dim);
    K(ec, "    }");
    K(ec, "}");
    C(ec, "%s(n, %s, (const int32_t *)(const void *)(%s), %s%s);", kend(ec, "b"), ec->gy,
      ec->saved_in, ec->grad[0], set ? ", set" : "");
}

const op_desc op_embedding = {
    .name = "embedding", .cls = "Embedding", .args = emb_args, .nargs = 4, .main_arg = NUM,
    .main_what = "embedding's number of embeddings",
    .null_msg = "embedding needs its size: write {embedding: {num: 100, dim: 16}}",
    .tensor_names = emb_tensors, .ntensor_names = 1,
    .shape = emb_shape, .declare = emb_declare, .extra_repr = emb_extra, .torch_ctor = emb_ctor,
    .default_init = emb_default_init, .default_init_what = "Embedding.reset_parameters",
    .forward = emb_forward, .backward = emb_backward, .backward_reads_input = 1,
    .int_input = 1,
};
