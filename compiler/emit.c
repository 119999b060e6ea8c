/* emit.c: write the checked program as C99.
 *
 * Order of the .c file: banner, includes, layout constants, the static
 * tables (tensors, state dict, module tree in post-order), the instance
 * struct, then the public API: create/place/destroy, init, forward,
 * backward, zero_grad, model view.
 *
 * Instance memory (one allocation, 64-byte aligned; P_place takes it from
 * the caller):
 *     [header: struct P, HEADER_BYTES] [data: parameters]
 *     [grad: gradients] [act: saved activations] [scratch: 2 gradient buffers]
 * Every region and every tensor inside it starts on a 64-byte boundary.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nngen.h"

/* Linear layers whose multiply-adds (rows * in * out) reach this many go to
 * the runtime's nn_linear_forward / nn_sgemm; smaller ones are emitted as
 * loops with constant bounds.  Measured on the project's 2-core machine
 * (cc -O2; forward + backward of two equal linear layers, best of 7, us):
 *     MACs per layer        64   256   512  1024  2048  8192  32768
 *     cblas_sgemm         0.37  0.45  0.48  0.53  0.69  1.53   3.11
 *     loops               0.08  0.28  0.55  0.72  1.43  5.23  16.25
 * (OpenBLAS 0.3.21, 2 threads), and later, with nngen's own AVX-512 kernel
 * behind nn_sgemm (batch 4, n x n layers):
 *     MACs per layer             256   484   676  1024  1444  4096
 *     nn_sgemm (avx512)         0.46  0.56  0.63  0.59  0.80  1.18
 *     loops                     0.14  0.76  1.11  0.87  2.10  3.56
 * so the call pays from about 512 multiply-adds on either path; 1024 keeps
 * a margin for the cblas path (at 1024 the two are within 10 % in some
 * shapes there) and costs at most a few tenths of a microsecond per layer
 * between 512 and 1024 on the AVX-512 path. */
#define BLAS_MIN_MACS 1024

typedef struct emitter {
    FILE *f;
    int indent;
    const program *p;
    const emit_opts *o;
    const char *n;              /* the spec's name: prefix of every symbol */
} emitter;

static void E(emitter *e, const char *fmt, ...) PRINTF(2, 3);
static void E(emitter *e, const char *fmt, ...)
{
    if (fmt[0] && fmt[0] != '\n')
        for (int i = 0; i < e->indent; i++)
            fputs("    ", e->f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->f, fmt, ap);
    va_end(ap);
    fputc('\n', e->f);
}

static void NL(emitter *e)
{
    fputc('\n', e->f);
}

static void open_block(emitter *e, const char *head)
{
    E(e, "%s{", head);
    e->indent++;
}

static void close_block(emitter *e)
{
    e->indent--;
    E(e, "}");
}

/* C string literal of s. */
static const char *cstr(const char *s)
{
    strbuf b = {0};
    sb_putc(&b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(&b, "\\%c", c);
        else if (c < 32 || c >= 127)
            sb_printf(&b, "\\%03o", c);
        else
            sb_putc(&b, (char)c);
    }
    sb_putc(&b, '"');
    char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

/* A double literal that reads back exactly. */
static const char *dlit(double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".en"))
        strcat(buf, ".0");
    return xstrdup(buf);
}

static const char *flit(double v)
{
    return xfmt("%sf", dlit((float)v));
}

static int64_t align16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

/* ---- layout ---------------------------------------------------------------- */

typedef struct layout {
    int64_t data, grad, act, scratch; /* floats per region */
    int64_t opt;                      /* optimizer state: 1-3 copies of the parameters */
    int64_t dy;                       /* the loss gradient (training only) */
    int64_t *buf_off;                 /* activation buffer offsets within act */
    int64_t scratch_each;
    const char **bufname;             /* C expression of each activation buffer */
    int64_t header_bytes;
    int64_t total_bytes;
} layout;

static int fused_with_next(const program *p, int i);

/* Training layout: every activation that backward reads has its own
 * buffer (buffer 0 is the input, read through the pointer X0), plus two
 * scratch buffers for the gradients flowing back.
 * Inference layout (--inference): no gradients; each layer's output goes
 * to one of two buffers used in turn, and the last layer writes straight
 * into the caller's y. */
static layout plan_layout(const program *p, const emit_opts *o)
{
    layout L = {0};
    L.data = p->param_floats;
    L.buf_off = xalloc(sizeof *L.buf_off * (size_t)p->nbufs);
    L.bufname = xalloc(sizeof *L.bufname * (size_t)p->nbufs);
    L.bufname[0] = "X0";
    int64_t maxbuf = 0;
    for (int i = 1; i < p->nbufs; i++)
        if (p->buf_numel[i] > maxbuf)
            maxbuf = p->buf_numel[i];
    /* a linear layer's output is never stored when its activation runs in
       its epilogue */
    char *dead = xalloc((size_t)p->nbufs + 1);
    for (int i = 0; i < p->nops; i++)
        if (fused_with_next(p, i))
            dead[p->ops[i].out_buf] = 1;
    if (o->inference) {
        int last_real = -1, turn = 0;
        for (int i = 0; i < p->nops; i++)
            if (p->ops[i].out_buf != p->ops[i].in_buf)
                last_real = p->ops[i].out_buf;
        for (int i = 0; i < p->nops; i++) {
            int b = p->ops[i].out_buf;
            if (b == p->ops[i].in_buf || L.bufname[b] || dead[b])
                continue;
            if (b == last_real)
                L.bufname[b] = "Y";
            else {
                L.bufname[b] = turn ? "A + PING" : "A";
                turn ^= 1;
            }
        }
        L.scratch_each = align16(maxbuf);
        L.act = 2 * L.scratch_each; /* the two turns */
    } else {
        L.act = align16(p->buf_numel[0]); /* P_forward's copy of x */
        for (int i = 1; i < p->nbufs; i++) {
            L.buf_off[i] = L.act;
            L.bufname[i] = xfmt("A + %lld", (long long)L.act);
            if (!dead[i])
                L.act += align16(p->buf_numel[i]);
        }
        L.grad = p->param_floats;
        L.scratch_each = align16(maxbuf > p->buf_numel[0] ? maxbuf : p->buf_numel[0]);
        L.scratch = 2 * L.scratch_each;
        int copies = 0;
        if (p->train.opt == OPT_SGD && p->train.momentum != 0)
            copies = 1;
        else if (p->train.opt == OPT_ADAM)
            copies = p->train.amsgrad ? 3 : 2;
        L.opt = copies * p->param_floats;
        L.dy = p->train.loss != LOSS_NONE ? align16(shape_numel(&p->output)) : 0;
    }
    /* the struct: nn_model, the tensor array and a few pointers; generous for
       any ABI, checked by a compile-time assertion in the output */
    L.header_bytes = (256 + 128 * (int64_t)p->ntensors + 63) / 64 * 64;
    L.total_bytes = L.header_bytes + 4 * (L.data + L.grad + L.act + L.scratch + L.opt + L.dy);
    return L;
}

/* ---- tables ---------------------------------------------------------------- */

static void emit_module_tables(emitter *e, const module *m, char *done)
{
    if (done[m->id])
        return;
    done[m->id] = 1;
    for (int i = 0; i < m->nchildren; i++)
        emit_module_tables(e, m->children[i].m, done);
    const char *n = e->n;
    if (m->nchildren) {
        strbuf names = {0}, kids = {0};
        for (int i = 0; i < m->nchildren; i++) {
            sb_printf(&names, "%s%s", i ? ", " : "", cstr(m->children[i].name));
            sb_printf(&kids, "%s&%s_m%d", i ? ", " : "", n, m->children[i].m->id);
        }
        E(e, "static const char *const %s_m%d_names[] = {%s};", n, m->id, names.s);
        E(e, "static const nn_module *const %s_m%d_children[] = {%s};", n, m->id, kids.s);
        free(names.s);
        free(kids.s);
    }
    if (m->nparams) {
        strbuf names = {0}, ids = {0};
        for (int i = 0; i < m->nparams; i++) {
            sb_printf(&names, "%s%s", i ? ", " : "", cstr(m->param_local[i]));
            sb_printf(&ids, "%s%d", i ? ", " : "", m->param_ids[i]);
        }
        E(e, "static const char *const %s_m%d_pnames[] = {%s};", n, m->id, names.s);
        E(e, "static const int %s_m%d_pids[] = {%s};", n, m->id, ids.s);
        free(names.s);
        free(ids.s);
    }
    const char *dot = strrchr(m->path, '.');
    E(e, "static const nn_module %s_m%d = {%s, %s, %s, %s, %d, %s, %s, %d, %s, %s};", n, m->id,
      cstr(m->path), cstr(dot ? dot + 1 : m->path),
      cstr(m->is_layer ? layer_classes[m->layer] : "Sequential"), cstr(m->extra),
      m->nchildren, m->nchildren ? xfmt("%s_m%d_names", n, m->id) : "NULL",
      m->nchildren ? xfmt("%s_m%d_children", n, m->id) : "NULL", m->nparams,
      m->nparams ? xfmt("%s_m%d_pnames", n, m->id) : "NULL",
      m->nparams ? xfmt("%s_m%d_pids", n, m->id) : "NULL");
}

static void emit_tables(emitter *e, const layout *L)
{
    const program *p = e->p;
    const char *n = e->n;
    E(e, "/* ---- tables: parameters, state dict, module tree ---- */");
    NL(e);
    if (p->ntensors) {
        E(e, "static const nn_tensor_info %s_tensors[%d] = {", n, p->ntensors);
        for (int i = 0; i < p->ntensors; i++) {
            const tensor *t = &p->tensors[i];
            E(e, "    {%s, %d, {%lld, %lld, %lld, %lld}, %lld, %lld, %d, 0},", cstr(t->name),
              t->ndim, (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
              (long long)t->shape[3], (long long)t->numel, (long long)t->offset,
              t->requires_grad);
        }
        E(e, "};");
        E(e, "static const char *const %s_state_keys[%d] = {", n, p->nstate);
        for (int i = 0; i < p->nstate; i++)
            E(e, "    %s,", cstr(p->state[i].key));
        E(e, "};");
        strbuf ids = {0};
        for (int i = 0; i < p->nstate; i++)
            sb_printf(&ids, "%s%d", i ? ", " : "", p->state[i].tensor);
        E(e, "static const int %s_state_ids[%d] = {%s};", n, p->nstate, ids.s);
        free(ids.s);
    }
    char *done = xalloc((size_t)p->nmodules + 1);
    emit_module_tables(e, p->root, done);
    E(e, "static const nn_model_info %s_info = {%s, %d, %d, %s, %d, %s, %s, &%s_m%d, %lld, "
         "%lld};",
      n, cstr(n), p->ntensors, p->ntensors, p->ntensors ? xfmt("%s_tensors", n) : "NULL",
      p->nstate, p->nstate ? xfmt("%s_state_keys", n) : "NULL",
      p->nstate ? xfmt("%s_state_ids", n) : "NULL", n, p->root->id, (long long)L->data,
      (long long)L->grad);
    NL(e);
}

/* ---- kernels ------------------------------------------------------------------ */

static int use_blas(const emitter *e, const op *o)
{
    if (e->o->no_blas || o->m->layer != L_LINEAR)
        return 0;
    int64_t rows = shape_numel(&o->in) / o->m->in;
    return rows * o->m->in * o->m->out >= BLAS_MIN_MACS;
}

/* Op i is a large linear layer whose input is the output of a ReLU (op
   i-1): its input gradient is computed with that ReLU's backward applied as
   it is stored (nn_sgemm_relu_mask, the mask being the ReLU's output = this
   layer's input), and the ReLU's own backward is skipped. */
static int relu_into(const emitter *e, int i)
{
    const program *p = e->p;
    return i >= 1 && p->ops[i].m->layer == L_LINEAR && use_blas(e, &p->ops[i]) &&
           p->ops[i - 1].m->layer == L_RELU && p->ops[i].in_buf == p->ops[i - 1].out_buf;
}

/* Whether the output calls nn_sgemm (the runtime's, which calls
   cblas_sgemm on CPUs without AVX-512). */
static int any_blas(const emitter *e)
{
    for (int i = 0; i < e->p->nops; i++)
        if (use_blas(e, &e->p->ops[i]))
            return 1;
    return 0;
}

static const char *op_comment(const op *o)
{
    char a[128], b[128];
    shape_str(a, sizeof a, &o->in, 1);
    shape_str(b, sizeof b, &o->out, 1);
    const module *m = o->m;
    return xfmt("%s: %s(%s), %s -> %s", o->use_path[0] ? o->use_path : "(root)",
                layer_classes[m->layer], m->extra, a, b);
}

/* Activation buffer buf.  Buffer 0 is the network's input, read through the
 * pointer X0 (the caller's x during a train step, a copy in the instance
 * after P_forward) so that a train step copies nothing. */
static const char *act(const layout *L, int buf)
{
    return L->bufname[buf];
}

/* An elementwise activation that can run in the epilogue of the linear
 * layer before it, and whose backward needs only its own output (so the
 * linear layer's output buffer is never stored). */
static int fusable_activation(const module *m)
{
    switch (m->layer) {
    case L_RELU:
    case L_SIGMOID:
    case L_TANH:
        return 1;
    case L_LEAKY_RELU:
        return m->slope > 0; /* then x > 0 exactly when y > 0 */
    case L_LINEAR:
    case L_IDENTITY:
    case L_GELU:
    case L_FLATTEN:
    case L_LOG_SOFTMAX:
    case L_SOFTMAX:
    case L_COUNT:
        return 0;
    }
    return 0;
}

/* op i is a linear layer whose activation (op i + 1) runs in its epilogue */
static int fused_with_next(const program *p, int i)
{
    return p->ops[i].m->layer == L_LINEAR && i + 1 < p->nops &&
           fusable_activation(p->ops[i + 1].m) && p->ops[i + 1].in_buf == p->ops[i].out_buf;
}

/* The activation as a C expression of v (a float lvalue-free expression). */
static const char *activation_expr(const module *m, const char *v)
{
    switch (m->layer) {
    case L_RELU:
        return xfmt("(%s > 0.0f ? %s : 0.0f)", v, v);
    case L_LEAKY_RELU:
        return xfmt("(%s > 0.0f ? %s : %s * %s)", v, v, v, flit(m->slope));
    case L_SIGMOID:
        return xfmt("(1.0f / (1.0f + expf(-%s)))", v);
    case L_TANH:
        return xfmt("tanhf(%s)", v);
    case L_LINEAR:
    case L_IDENTITY:
    case L_GELU:
    case L_FLATTEN:
    case L_LOG_SOFTMAX:
    case L_SOFTMAX:
    case L_COUNT:
        break;
    }
    unreachable();
}

/* softmax geometry: outer x size x inner around the reduced dimension */
static void reduce_geometry(const op *o, int64_t *outer, int64_t *size, int64_t *inner)
{
    int d = o->m->dim < 0 ? o->m->dim + o->in.ndim : o->m->dim;
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++)
        *outer *= o->in.d[i];
    *size = o->in.d[d];
    for (int i = d + 1; i < o->in.ndim; i++)
        *inner *= o->in.d[i];
}

/* Each op's forward and backward is a static kernel function whose
 * pointer parameters are restrict-qualified (the buffers never overlap),
 * so the C compiler vectorizes the loops without runtime alias checks;
 * fwd() and bwd() call them with pointers into the instance.  Kernels of
 * op i are named f<i> and b<i>. */

/* Forward kernel of op o.  For a linear layer, act_op (if not NULL) is the
 * activation that follows it, computed in the same pass into that
 * activation's buffer. */
static void emit_forward_kernel(emitter *e, int idx, const op *o, const op *act_op)
{
    const module *m = o->m;
    int64_t n = shape_numel(&o->in);
    E(e, "/* %s%s%s */", op_comment(o), act_op ? ", then " : "",
      act_op ? op_comment(act_op) : "");
    if (m->layer == L_LINEAR)
        E(e, "static void f%d(const float *restrict x, float *restrict y, const float *restrict w%s)",
          idx, m->bias ? ", const float *restrict b" : "");
    else
        E(e, "static void f%d(const float *restrict x, float *restrict y)", idx);
    open_block(e, "");
    switch (m->layer) {
    case L_LINEAR: {
        long long rows = (long long)(n / m->in), in = (long long)m->in, out = (long long)m->out;
        if (use_blas(e, o)) {
            /* the runtime applies the bias and a relu / leaky relu as it
               stores y; other activations follow in a pass of their own */
            int fused = act_op && (act_op->m->layer == L_RELU || act_op->m->layer == L_LEAKY_RELU);
            E(e, "nn_linear_forward(%lld, %lld, %lld, x, w, %s, %s, %s, y);", rows, in, out,
              m->bias ? "b" : "NULL",
              !fused ? "NN_ACT_NONE"
              : act_op->m->layer == L_RELU ? "NN_ACT_RELU" : "NN_ACT_LEAKY_RELU",
              fused && act_op->m->layer == L_LEAKY_RELU ? flit(act_op->m->slope) : "0.0f");
            if (act_op && !fused)
                E(e, "for (int k = 0; k < %lld; k++) y[k] = %s;", rows * out,
                  activation_expr(act_op->m, "y[k]"));
        } else {
            E(e, "for (int r = 0; r < %lld; r++)", rows);
            E(e, "    for (int o = 0; o < %lld; o++) {", out);
            E(e, "        float s = 0.0f;");
            E(e, "        for (int i = 0; i < %lld; i++)", in);
            E(e, "            s += x[r * %lld + i] * w[o * %lld + i];", in, in);
            if (m->bias)
                E(e, "        s += b[o];");
            E(e, "        y[r * %lld + o] = %s;", out, act_op ? activation_expr(act_op->m, "s")
                                                             : "s");
            E(e, "    }");
        }
        break;
    }
    case L_RELU:
    case L_LEAKY_RELU:
    case L_SIGMOID:
    case L_TANH:
        E(e, "for (int i = 0; i < %lld; i++) y[i] = %s;", (long long)n,
          activation_expr(m, "x[i]"));
        break;
    case L_GELU:
        E(e, "for (int i = 0; i < %lld; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * "
             "0.70710678118654752f));", (long long)n);
        break;
    case L_SOFTMAX:
    case L_LOG_SOFTMAX: {
        int64_t outer, size, inner;
        reduce_geometry(o, &outer, &size, &inner);
        E(e, "for (int a = 0; a < %lld; a++)", (long long)outer);
        E(e, "    for (int c = 0; c < %lld; c++) {", (long long)inner);
        E(e, "        const float *xs = x + a * %lld + c;", (long long)(size * inner));
        E(e, "        float *ys = y + a * %lld + c;", (long long)(size * inner));
        E(e, "        float mx = xs[0];");
        E(e, "        for (int k = 1; k < %lld; k++) if (xs[k * %lld] > mx) mx = xs[k * %lld];",
          (long long)size, (long long)inner, (long long)inner);
        E(e, "        float sum = 0.0f;");
        if (m->layer == L_SOFTMAX) {
            E(e, "        for (int k = 0; k < %lld; k++) { ys[k * %lld] = expf(xs[k * %lld] - "
                 "mx); sum += ys[k * %lld]; }",
              (long long)size, (long long)inner, (long long)inner, (long long)inner);
            E(e, "        for (int k = 0; k < %lld; k++) ys[k * %lld] /= sum;", (long long)size,
              (long long)inner);
        } else {
            E(e, "        for (int k = 0; k < %lld; k++) sum += expf(xs[k * %lld] - mx);",
              (long long)size, (long long)inner);
            E(e, "        float lse = logf(sum);");
            E(e, "        for (int k = 0; k < %lld; k++) ys[k * %lld] = xs[k * %lld] - mx - lse;",
              (long long)size, (long long)inner, (long long)inner);
        }
        E(e, "    }");
        break;
    }
    case L_IDENTITY:
    case L_FLATTEN:
    case L_COUNT:
        unreachable();
    }
    close_block(e);
    NL(e);
}

static void emit_forward_call(emitter *e, const layout *L, int idx, const op *o,
                              const op *act_op)
{
    const program *p = e->p;
    const module *m = o->m;
    if (m->layer == L_IDENTITY || m->layer == L_FLATTEN) {
        E(e, "/* %s: no work (a view of its input) */", op_comment(o));
        return;
    }
    const char *x = act(L, o->in_buf), *y = act(L, act_op ? act_op->out_buf : o->out_buf);
    if (m->layer == L_LINEAR) {
        const tensor *w = &p->tensors[m->param_ids[0]];
        if (m->bias)
            E(e, "f%d(%s, %s, D + %lld, D + %lld);", idx, x, y, (long long)w->offset,
              (long long)p->tensors[m->param_ids[1]].offset);
        else
            E(e, "f%d(%s, %s, D + %lld);", idx, x, y, (long long)w->offset);
    } else {
        E(e, "f%d(%s, %s);", idx, x, y);
    }
}

/* Backward kernel of op o: gy (gradient of its output) -> gx (of its input;
 * NULL when nobody needs it) and the parameter gradients.  set_w / set_b:
 * this op is the first in backward order to touch that gradient, so when
 * the caller asks (set != 0: a train step, which does not zero the
 * gradients first) it writes instead of adding. */
static void emit_backward_kernel(emitter *e, int idx, const op *o, int set_w, int set_b)
{
    const program *p = e->p;
    const module *m = o->m;
    int64_t n = shape_numel(&o->in);
    E(e, "/* backward of %s */", op_comment(o));
    switch (m->layer) {
    case L_LINEAR: {
        const tensor *w = &p->tensors[m->param_ids[0]];
        const tensor *b = m->bias ? &p->tensors[m->param_ids[1]] : NULL;
        long long rows = (long long)(n / m->in), in = (long long)m->in, out = (long long)m->out;
        int gw = w->requires_grad, gb = b && b->requires_grad;
        int masked = relu_into(e, idx);
        E(e, "static void b%d(const float *restrict gy, float *restrict gx, const float *restrict "
             "w%s%s%s%s%s)", idx, gw ? ", const float *restrict x" : "",
          gw ? ", float *restrict gw" : "", gb ? ", float *restrict gb" : "",
          (gw && set_w) || (gb && set_b) ? ", int set" : "",
          masked ? ", const float *restrict mask" : "");
        open_block(e, "");
        if (gb) {
            if (set_b)
                E(e, "if (set) memset(gb, 0, sizeof(float) * %lld);", out);
            E(e, "for (int r = 0; r < %lld; r++)", rows);
            E(e, "    for (int o = 0; o < %lld; o++) gb[o] += gy[r * %lld + o];", out, out);
        }
        if (use_blas(e, o)) {
            if (gw)
                E(e, "nn_sgemm(1, 0, %lld, %lld, %lld, gy, %lld, x, %lld, %s, gw, %lld);", out, in,
                  rows, out, in, set_w ? "!set" : "1", in);
            if (masked)
                E(e, "if (gx) /* with the backward of the ReLU before this layer */");
            if (masked)
                E(e, "    nn_sgemm_relu_mask(%lld, %lld, %lld, gy, %lld, w, %lld, gx, %lld, mask, "
                     "%lld);", rows, in, out, out, in, in, in);
            else
                E(e, "if (gx) nn_sgemm(0, 0, %lld, %lld, %lld, gy, %lld, w, %lld, 0, gx, %lld);",
                  rows, in, out, out, in, in);
        } else {
            if (gw) {
                if (set_w)
                    E(e, "if (set) memset(gw, 0, sizeof(float) * %lld);", out * in);
                E(e, "for (int r = 0; r < %lld; r++)", rows);
                E(e, "    for (int o = 0; o < %lld; o++) {", out);
                E(e, "        float g = gy[r * %lld + o];", out);
                E(e, "        for (int i = 0; i < %lld; i++) gw[o * %lld + i] += g * x[r * %lld "
                     "+ i];", in, in, in);
                E(e, "    }");
            }
            /* gx = gy w, accumulated row by row so the inner loop runs along
               contiguous memory without a reduction (it vectorizes) */
            E(e, "if (gx) {");
            E(e, "    memset(gx, 0, sizeof(float) * %lld);", rows * in);
            E(e, "    for (int r = 0; r < %lld; r++)", rows);
            E(e, "        for (int o = 0; o < %lld; o++) {", out);
            E(e, "            float g = gy[r * %lld + o];", out);
            E(e, "            for (int i = 0; i < %lld; i++) gx[r * %lld + i] += g * w[o * %lld + "
                 "i];", in, in, in);
            E(e, "        }");
            E(e, "}");
        }
        close_block(e);
        NL(e);
        return;
    }
    case L_RELU:
    case L_SIGMOID:
    case L_TANH:
    case L_SOFTMAX:
    case L_LOG_SOFTMAX:
        /* these read their output */
        E(e, "static void b%d(const float *restrict gy, float *restrict gx, const float *restrict "
             "y)", idx);
        break;
    case L_LEAKY_RELU:
        /* with a positive slope, x > 0 exactly when y > 0: the output is read,
           which is what is stored when the activation is fused */
        E(e, "static void b%d(const float *restrict gy, float *restrict gx, const float *restrict "
             "v)", idx);
        break;
    case L_GELU:
        E(e, "static void b%d(const float *restrict gy, float *restrict gx, const float *restrict "
             "x)", idx);
        break;
    case L_IDENTITY:
    case L_FLATTEN:
    case L_COUNT:
        unreachable();
    }
    open_block(e, "");
    switch (m->layer) {
    /* relu and leaky_relu backward select with a bit mask instead of a
       branch: the same result as PyTorch's select (gy or +0.0, even for
       infinite gy), and C compilers vectorize it at -O2 (a branch in the
       loop stops GCC) */
    case L_RELU:
        E(e, "for (int i = 0; i < %lld; i++) {", (long long)n);
        E(e, "    union { float f; uint32_t u; } g;");
        E(e, "    g.f = gy[i];");
        E(e, "    g.u &= (uint32_t)0 - (uint32_t)(y[i] > 0.0f);");
        E(e, "    gx[i] = g.f;");
        E(e, "}");
        break;
    case L_LEAKY_RELU:
        E(e, "for (int i = 0; i < %lld; i++) {", (long long)n);
        E(e, "    union { float f; uint32_t u; } g, s;");
        E(e, "    uint32_t m = (uint32_t)0 - (uint32_t)(v[i] > 0.0f);");
        E(e, "    g.f = gy[i];");
        E(e, "    s.f = gy[i] * %s;", flit(m->slope));
        E(e, "    g.u = (g.u & m) | (s.u & ~m);");
        E(e, "    gx[i] = g.f;");
        E(e, "}");
        break;
    case L_SIGMOID:
        E(e, "for (int i = 0; i < %lld; i++) gx[i] = gy[i] * (1.0f - y[i]) * y[i];", (long long)n);
        break;
    case L_TANH:
        E(e, "for (int i = 0; i < %lld; i++) gx[i] = gy[i] * (1.0f - y[i] * y[i]);", (long long)n);
        break;
    case L_GELU:
        E(e, "for (int i = 0; i < %lld; i++) {", (long long)n);
        E(e, "    float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));");
        E(e, "    float pdf = expf(-0.5f * x[i] * x[i]) * 0.39894228040143268f;");
        E(e, "    gx[i] = gy[i] * (cdf + x[i] * pdf);");
        E(e, "}");
        break;
    case L_SOFTMAX:
    case L_LOG_SOFTMAX: {
        int64_t outer, size, inner;
        reduce_geometry(o, &outer, &size, &inner);
        E(e, "for (int a = 0; a < %lld; a++)", (long long)outer);
        E(e, "    for (int c = 0; c < %lld; c++) {", (long long)inner);
        E(e, "        int base = a * %lld + c;", (long long)(size * inner));
        E(e, "        float s = 0.0f;");
        if (m->layer == L_SOFTMAX) {
            E(e, "        for (int k = 0; k < %lld; k++) s += gy[base + k * %lld] * y[base + k "
                 "* %lld];", (long long)size, (long long)inner, (long long)inner);
            E(e, "        for (int k = 0; k < %lld; k++) gx[base + k * %lld] = y[base + k * "
                 "%lld] * (gy[base + k * %lld] - s);",
              (long long)size, (long long)inner, (long long)inner, (long long)inner);
        } else {
            E(e, "        for (int k = 0; k < %lld; k++) s += gy[base + k * %lld];",
              (long long)size, (long long)inner);
            E(e, "        for (int k = 0; k < %lld; k++) gx[base + k * %lld] = gy[base + k * "
                 "%lld] - expf(y[base + k * %lld]) * s;",
              (long long)size, (long long)inner, (long long)inner, (long long)inner);
        }
        E(e, "    }");
        break;
    }
    case L_LINEAR:
    case L_IDENTITY:
    case L_FLATTEN:
    case L_COUNT:
        unreachable();
    }
    close_block(e);
    NL(e);
}

/* The call of op o's backward kernel inside bwd(): gradients flow from gy
 * to gx. */
static void emit_backward_call(emitter *e, const layout *L, int idx, const op *o, int set_w,
                               int set_b)
{
    const program *p = e->p;
    const module *m = o->m;
    if (m->layer != L_LINEAR) {
        const char *saved = m->layer == L_GELU || (m->layer == L_LEAKY_RELU && m->slope <= 0)
                                ? act(L, o->in_buf)
                                : act(L, o->out_buf);
        E(e, "b%d(gy, gx, %s);", idx, saved);
        return;
    }
    const tensor *w = &p->tensors[m->param_ids[0]];
    const tensor *b = m->bias ? &p->tensors[m->param_ids[1]] : NULL;
    int gw = w->requires_grad, gb = b && b->requires_grad;
    strbuf args = {0};
    sb_printf(&args, "gy, gx, D + %lld", (long long)w->offset);
    if (gw)
        sb_printf(&args, ", %s, G + %lld", act(L, o->in_buf), (long long)w->offset);
    if (gb)
        sb_printf(&args, ", G + %lld", (long long)b->offset);
    if ((gw && set_w) || (gb && set_b))
        sb_puts(&args, ", set");
    if (relu_into(e, idx))
        sb_printf(&args, ", %s", act(L, o->in_buf));
    E(e, "b%d(%s);", idx, args.s);
    free(args.s);
}

/* ---- init ---------------------------------------------------------------------- */

static const char *const fan_modes[] = {"NN_FAN_IN", "NN_FAN_OUT"};
static const char *const nl_enums[] = {
    "NN_NL_LINEAR", "NN_NL_CONV1D", "NN_NL_CONV2D", "NN_NL_CONV3D", "NN_NL_CONV_TRANSPOSE1D",
    "NN_NL_CONV_TRANSPOSE2D", "NN_NL_CONV_TRANSPOSE3D", "NN_NL_SIGMOID", "NN_NL_TANH",
    "NN_NL_RELU", "NN_NL_LEAKY_RELU", "NN_NL_SELU"};

static void emit_init_step(emitter *e, const init_step *s, int k)
{
    const program *p = e->p;
    const tensor *t = &p->tensors[s->tensor];
    const initializer *in = s->init;
    const char *T = xfmt("&net->t[%d]", s->tensor);
    E(e, "/* %s: %s */", t->name,
      in->kind == I_DEFAULT ? "default (Linear.reset_parameters)" : "init rule");
    switch (in->kind) {
    case I_DEFAULT:
        if (!strcmp(t->local, "weight"))
            E(e, "nn_init_kaiming_uniform(%s, rng, %s, NN_FAN_IN, NN_NL_LEAKY_RELU);", T,
              dlit(sqrt(5.0)));
        else {
            double bound = s->fan_in > 0 ? 1.0 / sqrt((double)s->fan_in) : 0.0;
            E(e, "nn_init_uniform(%s, rng, (float)%s, (float)%s);", T, dlit(-bound),
              dlit(bound));
        }
        break;
    case I_ZEROS:
        E(e, "nn_init_zeros(%s);", T);
        break;
    case I_ONES:
        E(e, "nn_init_ones(%s);", T);
        break;
    case I_CONSTANT:
        E(e, "nn_init_constant(%s, (float)%s);", T, dlit(in->a));
        break;
    case I_UNIFORM:
        E(e, "nn_init_uniform(%s, rng, (float)%s, (float)%s);", T, dlit(in->a), dlit(in->b));
        break;
    case I_NORMAL:
        E(e, "nn_init_normal_d(%s, rng, %s, %s);", T, dlit(in->a), dlit(in->b));
        break;
    case I_XAVIER_UNIFORM:
        E(e, "nn_init_xavier_uniform_d(%s, rng, %s);", T, dlit(in->a));
        break;
    case I_XAVIER_NORMAL:
        E(e, "nn_init_xavier_normal_d(%s, rng, %s);", T, dlit(in->a));
        break;
    case I_KAIMING_UNIFORM:
    case I_KAIMING_NORMAL:
        E(e, "nn_init_kaiming_%s(%s, rng, %s, %s, %s);",
          in->kind == I_KAIMING_UNIFORM ? "uniform" : "normal", T, dlit(in->a),
          fan_modes[in->mode], nl_enums[in->nonlinearity]);
        break;
    case I_TRUNC_NORMAL:
        E(e, "nn_init_trunc_normal_d(%s, rng, %s, %s, %s, %s);", T, dlit(in->a), dlit(in->b),
          dlit(in->c), dlit(in->d));
        break;
    case I_MIXTURE: {
        open_block(e, "");
        E(e, "static const nn_mix_component mix%d[%d] = {", k, in->nmix);
        for (int i = 0; i < in->nmix; i++) {
            const mix_part *mp = &in->mix[i];
            const char *kind = mp->kind == I_CONSTANT  ? "NN_MIX_CONSTANT"
                               : mp->kind == I_UNIFORM ? "NN_MIX_UNIFORM"
                                                       : "NN_MIX_NORMAL";
            E(e, "    {%s, %s, %s, %s},", dlit(mp->p), kind, flit(mp->a), flit(mp->b));
        }
        E(e, "};");
        E(e, "nn_init_mixture(%s, rng, mix%d, %d);", T, k, in->nmix);
        close_block(e);
        break;
    }
    case I_CUSTOM:
        E(e, "%s(%s, rng);", in->custom, T);
        break;
    }
    if (in->has_zero_abs_below)
        E(e, "nn_init_zero_abs_below(%s, (float)%s);", T, dlit(in->zero_abs_below));
}


/* ---- training: loss, optimizer, the step ---------------------------------------- */

/* Optimizer kernels of tensors this large run on the runtime's threads
 * (nn_parallel), each thread on its own slice; smaller ones on the caller.
 * Not with --no-blas, which promises code without the runtime's threads. */
#define PAR_MIN_FLOATS 32768

static int use_parallel_opt(const emitter *e, const tensor *t)
{
    return !e->o->no_blas && !e->o->inference && t->requires_grad &&
           align16(t->numel) >= PAR_MIN_FLOATS;
}

/* The optimizer, one kernel per trainable tensor (restrict-qualified, so it
 * vectorizes; lengths are rounded up to 16: the padding is zero in data and
 * grad, and every update keeps a zero at zero).  bwd() calls a tensor's
 * kernel in a train step as soon as its gradient is complete, while it is
 * still in cache. */
static const char *opt_call_range(const emitter *e, int k, const char *lo, const char *n);

static void emit_opt_kernels(emitter *e)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    if (t->opt == OPT_SGD) {
        E(e, "/* ---- torch.optim.SGD(lr=%g, momentum=%g, dampening=%g, weight_decay=%g, "
             "nesterov=%s) ---- */", t->lr, t->momentum, t->dampening, t->weight_decay,
          t->nesterov ? "True" : "False");
    } else {
        E(e, "/* ---- torch.optim.Adam(lr=%g, betas=(%g, %g), eps=%g, weight_decay=%g, "
             "amsgrad=%s) ---- */",
          t->lr, t->beta1, t->beta2, t->eps, t->weight_decay, t->amsgrad ? "True" : "False");
    }
    NL(e);
    int sgd_m = t->opt == OPT_SGD && t->momentum != 0;
    for (int k = 0; k < p->ntensors; k++) {
        const tensor *ts = &p->tensors[k];
        if (!ts->requires_grad)
            continue;
        long long len = (long long)align16(ts->numel);
        E(e, "/* %s */", ts->name);
        if (t->opt == OPT_SGD)
            E(e, "static void opt%d(float *restrict P, const float *restrict G%s, int n)", k,
              sgd_m ? ", float *restrict M, int first" : "");
        else
            E(e, "static void opt%d(float *restrict P, const float *restrict G, float *restrict M, "
                 "float *restrict V%s, float neg_step_size, float bc2_sqrt, int n)", k,
              t->amsgrad ? ", float *restrict VMAX" : "");
        open_block(e, "");
        const char *g = t->weight_decay != 0 ? xfmt("(G[i] + %s * P[i])", flit(t->weight_decay))
                                             : "G[i]";
        if (t->opt == OPT_SGD) {
            const char *upd = t->nesterov ? xfmt("P[i] = P[i] + %s * (%s + %s * M[i]);",
                                                 flit(-t->lr), g, flit(t->momentum))
                                          : xfmt("P[i] = P[i] + %s * M[i];", flit(-t->lr));
            if (sgd_m) {
                E(e, "if (first) /* the momentum buffer starts as a copy of the gradient */");
                E(e, "    for (int i = 0; i < n; i++) { M[i] = %s; %s }", g, upd);
                E(e, "else");
                E(e, "    for (int i = 0; i < n; i++) { M[i] = M[i] * %s + %s * %s; %s }",
                  flit(t->momentum), flit(1.0 - t->dampening), g, upd);
            } else {
                E(e, "for (int i = 0; i < n; i++) P[i] = P[i] + %s * %s;", flit(-t->lr), g);
            }
        } else {
            E(e, "for (int i = 0; i < n; i++) {");
            E(e, "    float g = %s;", g);
            E(e, "    M[i] = M[i] * %s + %s * g;", flit(t->beta1), flit(1.0 - t->beta1));
            E(e, "    V[i] = V[i] * %s + %s * g * g;", flit(t->beta2), flit(1.0 - t->beta2));
            if (t->amsgrad) {
                E(e, "    VMAX[i] = V[i] > VMAX[i] ? V[i] : VMAX[i];");
                E(e, "    P[i] = P[i] + neg_step_size * (M[i] / (sqrtf(VMAX[i]) / bc2_sqrt + "
                     "%s));", flit(t->eps));
            } else {
                E(e, "    P[i] = P[i] + neg_step_size * (M[i] / (sqrtf(V[i]) / bc2_sqrt + %s));",
                  flit(t->eps));
            }
            E(e, "}");
        }
        close_block(e);
        NL(e);
        if (use_parallel_opt(e, ts)) {
            /* thread t of nt updates 16-float blocks [len16 t / nt, len16 (t+1) / nt) */
            long long len16 = len / 16;
            E(e, "static void opt%d_part(void *ctx, int t, int nt)", k);
            open_block(e, "");
            E(e, "%s *net = ctx;", e->n);
            E(e, "int lo = (int)(%lldLL * t / nt * 16), hi = (int)(%lldLL * (t + 1) / nt * 16);",
              len16, len16);
            E(e, "%s", opt_call_range(e, k, "lo", "hi - lo"));
            close_block(e);
            NL(e);
        }
    }
}

/* The call of tensor k's optimizer kernel on floats [lo, lo + n) (lo NULL: 0). */
static const char *opt_call_range(const emitter *e, int k, const char *lo, const char *n)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    long long off = (long long)p->tensors[k].offset, PF = (long long)p->param_floats;
    const char *plus = lo ? xfmt(" + %s", lo) : "";
#define AT(region, o) xfmt("net->%s + %lld%s", region, (long long)(o), plus)
    if (t->opt == OPT_SGD)
        return xfmt("opt%d(%s, %s%s, %s);", k, AT("data", off), AT("grad", off),
                    t->momentum != 0 ? xfmt(", %s, net->steps == 0", AT("opt", off)) : "", n);
    return xfmt("opt%d(%s, %s, %s, %s%s, net->neg_step_size, net->bc2_sqrt, %s);", k,
                AT("data", off), AT("grad", off), AT("opt", off), AT("opt", PF + off),
                t->amsgrad ? xfmt(", %s", AT("opt", 2 * PF + off)) : "", n);
#undef AT
}

/* The call of tensor k's optimizer, inside bwd(). */
static const char *opt_call(const emitter *e, int k)
{
    const tensor *ts = &e->p->tensors[k];
    if (use_parallel_opt(e, ts))
        return xfmt("nn_parallel(opt%d_part, net);", k);
    return opt_call_range(e, k, NULL, xfmt("%lld", (long long)align16(ts->numel)));
}

static void emit_train(emitter *e, const layout *L)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    const char *n = e->n;
    int64_t N = shape_numel(&p->output);
    (void)L;
    NL(e);
    if (t->loss == LOSS_MSE) {
        E(e, "/* nn.MSELoss() (mean); writes d loss / d y into dy unless dy is NULL */");
        open_block(e, "static float loss_fn(const float *y, const float *target, float *dy, "
                      "int *bad)\n");
        E(e, "double sum = 0.0;");
        E(e, "*bad = 0;");
        open_block(e, xfmt("for (int i = 0; i < %lld; i++) ", (long long)N));
        E(e, "float d = y[i] - target[i];");
        E(e, "sum += (double)d * d;");
        E(e, "if (dy) dy[i] = d * %s;", flit(2.0 / (double)N));
        close_block(e);
        E(e, "return (float)(sum / %lld.0);", (long long)N);
        close_block(e);
    } else {
        int64_t B = p->output.d[0], C = p->output.d[1];
        E(e, "/* nn.CrossEntropyLoss() (mean) over integer class labels; writes d loss / d y");
        E(e, "   into dy unless dy is NULL; a label outside [0, %lld) sets *bad */", (long long)C);
        open_block(e, "static float loss_fn(const float *y, const int32_t *target, float *dy, "
                      "int *bad)\n");
        E(e, "double sum = 0.0;");
        E(e, "*bad = 0;");
        open_block(e, xfmt("for (int b = 0; b < %lld; b++) ", (long long)B));
        E(e, "const float *row = y + b * %lld;", (long long)C);
        E(e, "int32_t label = target[b];");
        E(e, "float mx = row[0], s = 0.0f, lse;");
        open_block(e, xfmt("if (label < 0 || label >= %lld) ", (long long)C));
        E(e, "nn_set_error(\"%s: class label %%ld of example %%d is out of range [0, %lld)\", "
             "(long)label, b);", n, (long long)C);
        E(e, "*bad = 1;");
        E(e, "return NAN;");
        close_block(e);
        E(e, "for (int c = 1; c < %lld; c++) if (row[c] > mx) mx = row[c];", (long long)C);
        E(e, "for (int c = 0; c < %lld; c++) s += expf(row[c] - mx);", (long long)C);
        E(e, "lse = mx + logf(s);");
        E(e, "sum += (double)lse - row[label];");
        E(e, "if (dy)");
        E(e, "    for (int c = 0; c < %lld; c++)", (long long)C);
        E(e, "        dy[b * %lld + c] = (expf(row[c] - lse) - (c == label ? 1.0f : 0.0f)) * %s;",
          (long long)C, flit(1.0 / (double)B));
        close_block(e);
        E(e, "return (float)(sum / %lld.0);", (long long)B);
        close_block(e);
    }
    const char *T = t->loss == LOSS_MSE ? "float" : "int32_t";
    NL(e);
    open_block(e, xfmt("float %s_loss(%s *net, const float *x, const %s *target)\n", n, n, T));
    E(e, "int bad;");
    E(e, "memcpy(net->act, x, sizeof(float) * %lld); /* for a later backward */",
      (long long)p->buf_numel[0]);
    E(e, "return loss_fn(fwd(net, net->act), target, NULL, &bad);");
    close_block(e);
    NL(e);

    open_block(e, xfmt("float %s_train_step(%s *net, const float *x, const %s *target)\n", n, n,
                       T));
    E(e, "int bad;");
    E(e, "/* x is read in place (no copy); the first write of each gradient replaces");
    E(e, "   it, so zero_grad costs nothing; bwd() updates each parameter as soon as");
    E(e, "   its gradient is complete */");
    E(e, "float loss = loss_fn(fwd(net, x), target, net->dy, &bad);");
    E(e, "if (bad) return loss;");
    if (t->opt == OPT_ADAM) {
        E(e, "{");
        E(e, "    const double step = (double)(net->steps + 1);");
        E(e, "    const double bc1 = 1.0 - pow(%s, step), bc2 = 1.0 - pow(%s, step);",
          dlit(t->beta1), dlit(t->beta2));
        E(e, "    net->neg_step_size = (float)-(%s / bc1);", dlit(t->lr));
        E(e, "    net->bc2_sqrt = (float)sqrt(bc2);");
        E(e, "}");
    }
    E(e, "bwd(net, x, net->dy, NULL, 1);");
    E(e, "net->steps++;");
    E(e, "return loss;");
    close_block(e);
}

/* ---- the whole file -------------------------------------------------------------- */

static void emit_header(emitter *e, FILE *h, const layout *L)
{
    const program *p = e->p;
    const char *n = e->n;
    strbuf guard = {0};
    for (const char *s = n; *s; s++)
        sb_putc(&guard, (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s));
    fprintf(h, "/* Generated by nngen %s from %s. Do not edit. */\n", NNGEN_VERSION,
            strrchr(p->file, '/') ? strrchr(p->file, '/') + 1 : p->file);
    fprintf(h, "#ifndef NNGEN_%s_H\n#define NNGEN_%s_H\n\n", guard.s, guard.s);
    free(guard.s);
    fprintf(h, "#include <stdint.h>\n#include <nngen/rt.h>\n\n");
    fprintf(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    char ish[128], osh[128];
    shape_str(ish, sizeof ish, &p->input, 0);
    shape_str(osh, sizeof osh, &p->output, 0);
    fprintf(h, "#define %s_BATCH %lld\n", n, (long long)p->batch);
    fprintf(h, "#define %s_IN_SIZE %lld  /* one example: %s */\n", n,
            (long long)(shape_numel(&p->input) / p->batch), ish);
    fprintf(h, "#define %s_OUT_SIZE %lld  /* one example: %s */\n", n,
            (long long)(shape_numel(&p->output) / p->batch), osh);
    fprintf(h, "#define %s_BYTES %lldu  /* one instance, for %s_place */\n", n,
            (long long)L->total_bytes, n);
    if (p->has_seed)
        fprintf(h, "#define %s_SEED %lluu\n", n, (unsigned long long)p->seed);
    fprintf(h, "\ntypedef struct %s %s;\n\n", n, n);
    fprintf(h, "%s *%s_create(void);                 /* one aligned allocation; NULL if out of "
               "memory */\n", n, n);
    fprintf(h, "%s *%s_place(void *mem);             /* in caller memory of %s_BYTES, 64-byte "
               "aligned */\n", n, n, n);
    fprintf(h, "void %s_destroy(%s *net);             /* no-op for placed instances */\n", n, n);
    fprintf(h, "void %s_init(%s *net, uint64_t seed);\n", n, n);
    fprintf(h, "/* the same, continuing the caller's generator (like torch's global one) */\n");
    fprintf(h, "void %s_init_rng(%s *net, nn_rng *rng);\n", n, n);
    fprintf(h, "void %s_forward(%s *net, const float *x, float *y);\n", n, n);
    if (e->o->inference) {
        fprintf(h, "/* emitted with --inference: forward only (no backward, no training) */\n");
    } else {
        fprintf(h, "/* backward of the last %s_forward%s%s%s: adds to the parameter grads;\n"
                   "   dx may be NULL and must not overlap dy */\n", n,
                p->train.loss != LOSS_NONE ? " or " : "", p->train.loss != LOSS_NONE ? n : "",
                p->train.loss != LOSS_NONE ? "_loss" : "");
        fprintf(h, "void %s_backward(%s *net, const float *dy, float *dx);\n", n, n);
        fprintf(h, "void %s_zero_grad(%s *net);\n", n, n);
    }
    fprintf(h, "nn_model *%s_model(%s *net);\n", n, n);
    if (p->train.loss != LOSS_NONE && !e->o->inference) {
        const char *T = p->train.loss == LOSS_MSE ? "float" : "int32_t";
        fprintf(h, "\n/* training (spec 'train:'): target is %s */\n",
                p->train.loss == LOSS_MSE ? "float[BATCH * OUT_SIZE] (mse)"
                                          : "int32_t[BATCH] class labels (cross_entropy)");
        fprintf(h, "float %s_loss(%s *net, const float *x, const %s *target);       /* forward + "
                   "loss */\n", n, n, T);
        fprintf(h, "float %s_train_step(%s *net, const float *x, const %s *target); /* zero_grad, "
                   "forward, loss, backward, optimizer step */\n", n, n, T);
        fprintf(h, "/* NAN (and nn_error()) when a class label is out of range */\n");
    }
    if (p->ncustom) {
        fprintf(h, "\n/* custom initializers named in the spec: define them in your program */\n");
        for (int i = 0; i < p->ncustom; i++)
            fprintf(h, "void %s(nn_tensor *param, nn_rng *rng);\n", p->custom[i]);
    }
    fprintf(h, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

void emit_c(FILE *c, FILE *h, const program *p, const emit_opts *o)
{
    emitter ee = {c, 0, p, o, p->name};
    emitter *e = &ee;
    const char *n = p->name;
    layout L = plan_layout(p, o);
    emit_header(e, h, &L);

    const char *base = strrchr(p->file, '/') ? strrchr(p->file, '/') + 1 : p->file;
    E(e, "/* Generated by nngen %s from %s. Do not edit.", NNGEN_VERSION, base);
    E(e, " * Build: cc -std=c99 -c %s.c  (link with -lnngen-rt%s -lm) */", n,
      any_blas(e) ? " -lopenblas -lpthread" : "");
    E(e, "#include \"%s\"", o->header_name);
    NL(e);
    E(e, "#include <math.h>");
    E(e, "#include <stdlib.h>");
    E(e, "#include <string.h>");
    NL(e);
    E(e, "/* memory layout, in floats from the start of each region */");
    E(e, "#define HEADER_BYTES %lld", (long long)L.header_bytes);
    E(e, "#define DATA_FLOATS %lld", (long long)L.data);
    E(e, "#define GRAD_FLOATS %lld", (long long)L.grad);
    E(e, "#define ACT_FLOATS %lld", (long long)L.act);
    E(e, "#define SCRATCH_FLOATS %lld", (long long)(L.scratch / 2));
    if (o->inference)
        E(e, "#define PING %lld /* the second activation buffer */", (long long)L.scratch_each);
    E(e, "#define OPT_FLOATS %lld", (long long)L.opt);
    E(e, "#define DY_FLOATS %lld", (long long)L.dy);
    NL(e);
    emit_tables(e, &L);

    E(e, "struct %s {", n);
    E(e, "    nn_model model;");
    E(e, "    nn_tensor t[%d];", p->ntensors ? p->ntensors : 1);
    E(e, "    void *raw;      /* what malloc returned; NULL when placed */");
    E(e, "    float *data;    /* parameters */");
    E(e, "    float *grad;    /* gradients (attached on the first backward) */");
    E(e, "    float *act;     /* saved activations; act + 0 holds a copy of x */");
    E(e, "    float *scratch; /* two gradient buffers for backward */");
    E(e, "    float *opt;     /* optimizer state */");
    E(e, "    float *dy;      /* gradient of the loss */");
    E(e, "    long steps;     /* optimizer steps taken */");
    E(e, "    float neg_step_size, bc2_sqrt; /* Adam: this step's -lr / (1 - beta1^t), "
         "sqrt(1 - beta2^t) */");
    E(e, "};");
    E(e, "typedef char %s_header_fits[sizeof(struct %s) <= HEADER_BYTES ? 1 : -1];", n, n);
    NL(e);

    /* create / place / destroy */
    open_block(e, xfmt("%s *%s_place(void *mem)\n", n, n));
    E(e, "char *base = mem;");
    E(e, "%s *net = mem;", n);
    E(e, "if (!mem || ((uintptr_t)mem & 63u)) return NULL;");
    E(e, "memset(net, 0, sizeof *net);");
    E(e, "net->data = (float *)(base + HEADER_BYTES);");
    E(e, "net->grad = net->data + DATA_FLOATS;");
    E(e, "net->act = net->grad + GRAD_FLOATS;");
    E(e, "net->scratch = net->act + ACT_FLOATS;");
    E(e, "net->opt = net->scratch + 2 * SCRATCH_FLOATS;");
    E(e, "net->dy = net->opt + OPT_FLOATS;");
    E(e, "memset(net->data, 0, sizeof(float) * ((size_t)DATA_FLOATS + GRAD_FLOATS + ACT_FLOATS "
         "+ 2 * SCRATCH_FLOATS + OPT_FLOATS + DY_FLOATS));");
    E(e, "nn_model_bind(&net->model, &%s_info, net->t, net->data, net->grad);", n);
    E(e, "return net;");
    close_block(e);
    NL(e);
    open_block(e, xfmt("%s *%s_create(void)\n", n, n));
    E(e, "void *raw = malloc((size_t)%s_BYTES + 64);", n);
    E(e, "%s *net;", n);
    E(e, "if (!raw) return NULL;");
    E(e, "net = %s_place((char *)raw + (64 - ((uintptr_t)raw & 63u)));", n);
    E(e, "net->raw = raw;");
    E(e, "return net;");
    close_block(e);
    NL(e);
    open_block(e, xfmt("void %s_destroy(%s *net)\n", n, n));
    E(e, "if (net && net->raw) free(net->raw);");
    close_block(e);
    NL(e);
    open_block(e, xfmt("nn_model *%s_model(%s *net)\n", n, n));
    E(e, "return &net->model;");
    close_block(e);
    NL(e);

    /* init */
    E(e, "/* PyTorch's construction order: shared modules, then the model (children");
    E(e, "   before parents, each module's own rules after its children), then the");
    E(e, "   top-level rules; one generator seeded like torch.manual_seed(seed). */");
    open_block(e, xfmt("void %s_init_rng(%s *net, nn_rng *rng)\n", n, n));
    if (!p->nsteps)
        E(e, "(void)net; (void)rng;");
    for (int i = 0; i < p->nsteps; i++)
        emit_init_step(e, &p->steps[i], i);
    close_block(e);
    NL(e);
    open_block(e, xfmt("void %s_init(%s *net, uint64_t seed)\n", n, n));
    E(e, "nn_rng rng;");
    E(e, "nn_rng_seed(&rng, seed);");
    E(e, "%s_init_rng(net, &rng);", n);
    close_block(e);
    NL(e);

    /* forward: every stored activation keeps its own buffer for backward */
    int last = p->nops ? p->ops[p->nops - 1].out_buf : 0;
    E(e, "/* ---- forward kernels ---- */");
    NL(e);
    for (int i = 0; i < p->nops; i++) {
        const op *oi = &p->ops[i];
        if (oi->m->layer == L_IDENTITY || oi->m->layer == L_FLATTEN)
            continue;
        int fused = fused_with_next(p, i);
        emit_forward_kernel(e, i, oi, fused ? &p->ops[i + 1] : NULL);
        i += fused;
    }
    if (o->inference) {
        E(e, "/* the forward pass: layers write to the two buffers in turn, the last one");
        E(e, "   into y */");
        open_block(e, xfmt("void %s_forward(%s *net, const float *input, float *output)\n", n,
                           n));
        E(e, "const float *D = net->data;");
        E(e, "float *A = net->act;");
        E(e, "const float *X0 = input;");
        E(e, "float *Y = output;");
        E(e, "(void)D; (void)A; (void)Y;");
    } else {
        E(e, "/* the forward pass from X0 (buffer 0); returns the output buffer */");
        open_block(e, xfmt("static const float *fwd(%s *net, const float *X0)\n", n));
        E(e, "const float *D = net->data;");
        E(e, "float *A = net->act;");
        E(e, "(void)D; (void)A;");
    }
    for (int i = 0; i < p->nops; i++) {
        int fused = fused_with_next(p, i);
        emit_forward_call(e, &L, i, &p->ops[i], fused ? &p->ops[i + 1] : NULL);
        i += fused;
    }
    if (o->inference) {
        if (strcmp(act(&L, last), "Y") != 0) /* no layer does any work */
            E(e, "memcpy(Y, %s, sizeof(float) * %lld);", act(&L, last),
              (long long)shape_numel(&p->output));
        close_block(e);
        return;
    }
    E(e, "return %s;", act(&L, last));
    close_block(e);
    NL(e);
    open_block(e, xfmt("void %s_forward(%s *net, const float *x, float *y)\n", n, n));
    E(e, "/* keep a copy of x: backward needs it after the caller's buffer may change */");
    E(e, "memcpy(net->act, x, sizeof(float) * %lld);", (long long)p->buf_numel[0]);
    E(e, "memcpy(y, fwd(net, net->act), sizeof(float) * %lld);",
      (long long)shape_numel(&p->output));
    close_block(e);
    NL(e);

    /* backward: ops in reverse; gradients ping-pong between two scratch
       buffers; the first op writes into dx (if asked).  Once no op
       upstream has a trainable parameter, only dx is left to compute.
       set != 0 (a train step): the first op to touch a gradient writes it
       instead of adding, so the gradients need no zeroing beforehand. */
    /* set_w[i] / set_b[i]: op i is the first in backward order to touch its
       weight / bias gradient */
    char *touched = xalloc((size_t)p->ntensors + 1);
    char *set_w = xalloc((size_t)p->nops + 1), *set_b = xalloc((size_t)p->nops + 1);
    for (int i = p->nops - 1; i >= 0; i--) {
        const module *m = p->ops[i].m;
        for (int k = 0; k < m->nparams; k++) {
            char *flag = k == 0 ? &set_w[i] : &set_b[i];
            *flag = !touched[m->param_ids[k]];
            touched[m->param_ids[k]] = 1;
        }
    }
    if (p->train.loss != LOSS_NONE)
        emit_opt_kernels(e);
    /* first_use[k]: the first op (forward order) using tensor k: the last in
       backward order, after which its gradient is complete */
    int *first_use = xalloc(sizeof *first_use * (size_t)(p->ntensors + 1));
    for (int k = 0; k < p->ntensors; k++)
        first_use[k] = -1;
    for (int i = p->nops - 1; i >= 0; i--)
        for (int k = 0; k < p->ops[i].m->nparams; k++)
            first_use[p->ops[i].m->param_ids[k]] = i;
    E(e, "/* ---- backward kernels ---- */");
    NL(e);
    for (int i = 0; i < p->nops; i++)
        if (p->ops[i].m->layer != L_IDENTITY && p->ops[i].m->layer != L_FLATTEN &&
            !(i + 1 < p->nops && relu_into(e, i + 1)))
            emit_backward_kernel(e, i, &p->ops[i], set_w[i], set_b[i]);
    E(e, "/* the backward pass of the last forward from X0 */");
    open_block(e, xfmt("static void bwd(%s *net, const float *X0, const float *dy, float *dx, "
                       "int set)\n", n));
    E(e, "const float *D = net->data;");
    E(e, "float *G = net->grad;");
    E(e, "const float *A = net->act;");
    E(e, "float *S0 = net->scratch, *S1 = net->scratch + SCRATCH_FLOATS;");
    E(e, "const float *gy = dy;");
    E(e, "(void)D; (void)G; (void)A; (void)S0; (void)S1; (void)gy; (void)X0; (void)set;");
    E(e, "nn_model_attach_grads(&net->model);");
    int pp = 0; /* which scratch buffer the next gx goes to */
    for (int i = p->nops - 1; i >= 0; i--) {
        const op *oi = &p->ops[i];
        if (oi->m->layer == L_IDENTITY || oi->m->layer == L_FLATTEN) {
            if (i == 0)
                E(e, "if (dx) memcpy(dx, gy, sizeof(float) * %lld);",
                  (long long)shape_numel(&oi->in));
            continue;
        }
        if (i + 1 < p->nops && relu_into(e, i + 1)) {
            /* gy already holds this ReLU's input gradient (see relu_into) */
            E(e, "/* backward of %s: applied by b%d */", op_comment(oi), i + 1);
            if (i == 0)
                E(e, "if (dx) memcpy(dx, gy, sizeof(float) * %lld);",
                  (long long)shape_numel(&oi->in));
            continue;
        }
        /* trainable parameters in this op or before it / strictly before it */
        int here = 0, before = 0;
        for (int j = 0; j <= i; j++)
            for (int k = 0; k < p->ops[j].m->nparams; k++)
                if (p->tensors[p->ops[j].m->param_ids[k]].requires_grad)
                    *(j < i ? &before : &here) = 1;
        if (!here && !before)
            E(e, "if (!dx) return; /* nothing from here on needs a gradient */");
        open_block(e, "");
        if (i == 0)
            E(e, "float *gx = dx;");
        else if (!before)
            E(e, "float *gx = dx ? S%d : NULL; /* only dx needs it */", pp);
        else
            E(e, "float *gx = S%d;", pp);
        if (oi->m->layer != L_LINEAR && i == 0)
            E(e, "if (gx)");
        emit_backward_call(e, &L, i, oi, set_w[i], set_b[i]);
        if (p->train.loss != LOSS_NONE)
            for (int k = 0; k < oi->m->nparams; k++) {
                int tid = oi->m->param_ids[k];
                if (first_use[tid] == i && p->tensors[tid].requires_grad)
                    E(e, "if (set) %s /* %s is complete: step */", opt_call(e, tid),
                      p->tensors[tid].name);
            }
        if (i > 0)
            E(e, "gy = gx;");
        else
            E(e, "(void)gx;");
        close_block(e);
        pp ^= 1;
    }
    close_block(e);
    NL(e);
    open_block(e, xfmt("void %s_backward(%s *net, const float *dy, float *dx)\n", n, n));
    E(e, "bwd(net, net->act, dy, dx, 0);");
    close_block(e);
    NL(e);

    open_block(e, xfmt("void %s_zero_grad(%s *net)\n", n, n));
    E(e, "if (net->model.grads_attached) memset(net->grad, 0, sizeof(float) * GRAD_FLOATS);");
    close_block(e);

    if (p->train.loss != LOSS_NONE)
        emit_train(e, &L);
}
