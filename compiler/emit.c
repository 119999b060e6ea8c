/* emit.c: the checked program as C99, and the kernels.
 *
 * Order of the .c file: banner, includes, layout constants, the static
 * tables (tensors, state dict, module tree in post-order), the instance
 * struct, create / place / destroy, init, the forward kernels and fwd(),
 * the optimizer and backward kernels and bwd(), the public entry points,
 * and with train: the loss and the train step.
 *
 * Each op's forward and backward is a static kernel function written by
 * its op (ops/op.h) whose pointer parameters are restrict-qualified (the
 * buffers never overlap), so the C compiler vectorizes the loops without
 * run-time alias checks; fwd() and bwd() call them with pointers into the
 * instance, each call under a comment naming the op and its spec path.
 * Kernels with the same text are written once: f<i> / b<i> is named after
 * the first op i that uses it.  Every kernel takes the row count n.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* ---- text ------------------------------------------------------------------- */

static void vline(emitter *e, const char *fmt, va_list ap)
{
    if (fmt[0] && fmt[0] != '\n')
        for (int i = 0; i < e->indent; i++)
            sb_puts(e->out, "    ");
    sb_vprintf(e->out, fmt, ap);
    sb_putc(e->out, '\n');
}

void E(emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(e, fmt, ap);
    va_end(ap);
}

void NL(emitter *e)
{
    sb_putc(e->out, '\n');
}

void open_block(emitter *e, const char *head)
{
    E(e, "%s{", head);
    e->indent++;
}

void close_block(emitter *e)
{
    e->indent--;
    E(e, "}");
}

/* C string literal of s: quotes and backslashes escaped, control and
   non-ASCII bytes as three-digit octal escapes, and "??" written "?\?" so
   that no trigraph can form (C99 translation phase 1 would turn "??=" into
   "#"). */
const char *cstr(const char *s)
{
    strbuf b = {0};
    sb_putc(&b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_printf(&b, "\\%c", c);
        else if (c < 32 || c >= 127)
            sb_printf(&b, "\\%03o", c);
        else if (c == '?' && s[1] == '?')
            sb_puts(&b, "?\\");
        else
            sb_putc(&b, (char)c);
    }
    sb_putc(&b, '"');
    char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

/* s as text inside a C comment, whatever it holds: printable ASCII stays,
 * except what could end or nest the comment or form a trigraph ("*" "/",
 * "/" "*", "??" get a backslash between them) and the backslash itself
 * (doubled); newlines, other control bytes and non-ASCII bytes become \ooo.
 * Every string that comes from the spec (module paths, tensor names, the
 * file name) goes into comments through this one function. */
const char *ccomment(const char *s)
{
    strbuf b = {0};
    for (const char *q = s; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '\\')
            sb_puts(&b, "\\\\");
        else if (c < 32 || c >= 127)
            sb_printf(&b, "\\%03o", c);
        else {
            sb_putc(&b, (char)c);
            if ((c == '*' && q[1] == '/') || (c == '/' && q[1] == '*') ||
                (c == '?' && q[1] == '?'))
                sb_putc(&b, '\\');
        }
    }
    const char *r = xstrdup(b.s ? b.s : "");
    free(b.s);
    return r;
}

/* A double literal that reads back exactly. */
const char *dlit(double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".en"))
        strcat(buf, ".0");
    return xstrdup(buf);
}

const char *flit(double v)
{
    return xfmt("%sf", dlit((float)v));
}

int64_t align16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

/* ---- kernels ------------------------------------------------------------------ */

static size_t ktext_hash(const char *s)
{
    return hash_str(s);
}

const char *kernel_once(emitter *e, strbuf *to, const char *text, const char *prefix, int id,
                        const char *comment)
{
    kernel_set *ks = &e->ks;
    if ((ks->n + 1) * 2 > ks->cap) {
        int nc = ks->cap ? ks->cap * 2 : 64;
        const char **nt = xalloc(sizeof *nt * (size_t)nc), **nn = xalloc(sizeof *nn * (size_t)nc);
        for (int i = 0; i < ks->cap; i++)
            if (ks->text[i]) {
                size_t h = ktext_hash(ks->text[i]) & (size_t)(nc - 1);
                while (nt[h])
                    h = (h + 1) & (size_t)(nc - 1);
                nt[h] = ks->text[i];
                nn[h] = ks->name[i];
            }
        ks->text = nt;
        ks->name = nn;
        ks->cap = nc;
    }
    size_t h = ktext_hash(text) & (size_t)(ks->cap - 1);
    for (; ks->text[h]; h = (h + 1) & (size_t)(ks->cap - 1))
        if (!strcmp(ks->text[h], text))
            return ks->name[h];
    const char *name = xfmt("%s%d", prefix, id);
    ks->text[h] = xstrdup(text);
    ks->name[h] = name;
    ks->n++;
    const char *at = strchr(text, '@');
    if (!at)
        unreachable();
    if (comment)
        sb_printf(to, "/* %s */\n", comment);
    /* a small network's kernels go inline too (see emit_c) */
    int inl = strcmp(e->pass, "static") != 0 && !strncmp(text, "static ", 7);
    /* every '@' is the kernel's name (a kernel may be several functions:
       "@_part", "@") */
    sb_printf(to, "%s%.*s%s", inl ? "PASS " : "", (int)(at - text) - (inl ? 7 : 0),
              text + (inl ? 7 : 0), name);
    for (const char *q = at + 1; *q; q++) {
        if (*q == '@')
            sb_puts(to, name);
        else
            sb_putc(to, *q);
    }
    sb_putc(to, '\n');
    return name;
}

void kbegin(op_emit *ec)
{
    ec->e->kbuf.len = 0;
    if (ec->e->kbuf.s)
        ec->e->kbuf.s[0] = 0;
}

void K(op_emit *ec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&ec->e->kbuf, fmt, ap);
    va_end(ap);
    sb_putc(&ec->e->kbuf, '\n');
}

const char *kend(op_emit *ec, const char *prefix)
{
    const program *p = ec->p;
    const char *comment = op_comment(p, ec->o);
    if (ec->epi)
        comment = xfmt("%s, then %s", comment, op_comment(p, ec->epi));
    if (ec->gy)
        comment = xfmt("backward of %s", comment);
    if (ec->fold_bias) {  /* the eval-mode variant of a folded pair: a name of its own */
        comment = xfmt("%s, with the batch norm after it folded in", comment);
        prefix = xfmt("%s_folded", prefix);
    }
    return kernel_once(ec->e, ec->e->kernels, ec->e->kbuf.s, prefix, ec->idx, comment);
}

void C(op_emit *ec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(ec->e, fmt, ap);
    va_end(ap);
}

const char *rows_expr(int64_t per)
{
    return per == 1 ? "n" : xfmt("n * %lld", (long long)per);
}

/* The same as a size_t for memcpy / memset: n as unsigned first, so that
   no compiler can see a negative int turned into an absurd size (GCC 12
   -Wstringop-overflow did on (size_t)(n * 7) once a kernel was inlined:
   specs/regress/adaptive_pool_upsample_memset.yaml) */
const char *rows_size(int64_t per)
{
    return per == 1 ? "(size_t)(unsigned)n" : xfmt("(size_t)(unsigned)n * %lld", (long long)per);
}

int64_t per_example(const value *v)
{
    return shape_numel(&v->shape) / v->shape.d[0];
}

const char *op_comment(const program *p, const op *o)
{
    char a[256], b[256];
    shape_str(a, sizeof a, &op_in(p, o, 0)->shape, 1);
    shape_str(b, sizeof b, &op_out(p, o)->shape, 1);
    const module *m = o->m;
    if (!m->op) /* a container's own op: a residual's sum */
        return ccomment(xfmt("%s: the sum of %s, %s -> %s", o->use_path[0] ? o->use_path
                             : "(root)", module_class(m), a, b));
    return ccomment(xfmt("%s: %s(%s), %s -> %s", o->use_path[0] ? o->use_path : "(root)",
                         m->op->cls, m->extra, a, b));
}

int op_blas(const program *p, const op *o, int no_blas)
{
    return !no_blas && o->d->uses_blas && o->d->uses_blas(p, o);
}

/* Whether the output calls nn_sgemm (the runtime's, which calls
   cblas_sgemm on CPUs without AVX-512). */
int any_blas(const emitter *e)
{
    for (int i = 0; i < e->p->nops; i++)
        if (op_blas(e->p, &e->p->ops[i], e->o->no_blas))
            return 1;
    return 0;
}

/* acc += g over a batch of values of per floats each (after cond, "" or
   "if (dx) "): the runtime's threaded sum when large (RT_ADD_MIN) */
static void add_into(emitter *e, const char *cond, int64_t per, const char *acc, const char *g)
{
    if (!e->o->no_blas && per * e->p->batch >= RT_ADD_MIN)
        E(e, "%snn_add_forward((long)n * %lld, %s, %s, %s);", cond, (long long)per, acc, g, acc);
    else
        E(e, "%sfor (int k = 0; k < %s; k++) %s[k] += %s[k];", cond, rows_expr(per), acc, g);
}

/* The buffers and tensors of op i as its emitter sees them. */
static void op_setup(emitter *e, op_emit *ec, int i)
{
    const program *p = e->p;
    const op *o = &p->ops[i];
    memset(ec, 0, sizeof *ec);
    ec->e = e;
    ec->p = p;
    ec->o = o;
    ec->idx = i;
    ec->blas = op_blas(p, o, e->o->no_blas);
    ec->x = e->L->bufname[op_in(p, o, 0)->buf];
    for (int k = 0; k < o->nin; k++)
        ec->xs[k] = e->L->bufname[op_in(p, o, k)->buf];
    ec->y = e->L->bufname[op_out(p, o)->buf];
    int nt = o->m->nparams + o->m->nbuffers;
    ec->data = xalloc(sizeof *ec->data * (size_t)(nt + 1));
    ec->grad = xalloc(sizeof *ec->grad * (size_t)(nt + 1));
    ec->set = xalloc(sizeof *ec->set * (size_t)(nt + 1));
    ec->step = xalloc(sizeof *ec->step * (size_t)(nt + 1));
    ec->stepped = xalloc(sizeof *ec->stepped * (size_t)(nt + 1));
    for (int k = 0; k < nt; k++) {
        const tensor *t = &p->tensors[o->m->tens_ids[k]];
        ec->data[k] = xfmt("D + %lld", (long long)t->offset);
        ec->grad[k] = t->requires_grad ? xfmt("G + %lld", (long long)t->offset) : NULL;
    }
    if (o->m->has_borrow) {
        const tensor *t = &p->tensors[o->m->borrow];
        ec->tied_w = xfmt("D + %lld", (long long)t->offset);
        ec->tied_gw = t->requires_grad ? xfmt("G + %lld", (long long)t->offset) : NULL;
    }
    for (int k = 0; k < o->nsaved; k++)
        ec->saved[k] = e->L->saved[i * OP_MAX_SAVED + k];
    ec->training = "net->training";
    ec->rng = "&net->rng";
}

/* ---- forward -------------------------------------------------------------------- */

/* --inference, ops i (conv2d or linear, set up in ec) and i + 1 (a batch
   norm): in training mode the two as they are; in eval mode the norm's
   running statistics folded into the layer's weight and bias (each call:
   the weights may have been loaded since), then the layer alone, writing
   the norm's output. */
static void emit_folded(emitter *e, op_emit *ec, int i)
{
    const program *p = e->p;
    const op *o = &p->ops[i], *bn = &p->ops[i + 1];
    const tensor *w = &p->tensors[o->m->tens_ids[0]];
    op_emit eb;
    op_setup(e, &eb, i + 1);
    E(e, "/* %s, then %s: folded into one in eval mode */", op_comment(p, o), op_comment(p, bn));
    open_block(e, "if (net->training) ");
    o->d->forward(ec);
    bn->d->forward(&eb);
    close_block(e);
    open_block(e, "else ");
    const char *fw = e->L->fold[i], *fb = xfmt("%s + %lld", fw, (long long)w->numel);
    bn->d->fold(&eb, ec->data[0], o->m->nparams > 1 ? ec->data[1] : NULL, fw, fb,
                w->numel / w->shape[0]);
    op_emit ef;
    op_setup(e, &ef, i);
    ef.y = eb.y;
    ef.data[0] = fw;
    ef.data[1] = fb;
    ef.fold_bias = 1;
    o->d->forward(&ef);
    close_block(e);
}

static void emit_forward(emitter *e)
{
    const program *p = e->p;
    const char *n = e->n;
    strbuf *main_out = e->out;
    strbuf kern = {0}, body = {0};
    e->kernels = &kern;
    e->out = &body;
    e->indent = 1;
    for (int i = 0; i < p->nops; i++) {
        const op *o = &p->ops[i];
        if (o->d->view) {
            E(e, "/* %s: no work (a view of its input) */", op_comment(p, o));
            continue;
        }
        op_emit ec;
        op_setup(e, &ec, i);
        if (e->s->folded[i]) {
            emit_folded(e, &ec, i);
            i++;
            continue;
        }
        if (e->s->fused[i]) {
            ec.epi = &p->ops[i + 1];
            ec.y = e->L->bufname[op_out(p, ec.epi)->buf];
            E(e, "/* %s, then %s */", op_comment(p, o), op_comment(p, ec.epi));
        } else {
            E(e, "/* %s */", op_comment(p, o));
        }
        o->d->forward(&ec);
        i += e->s->fused[i];
    }
    e->out = main_out;
    e->indent = 0;
    E(e, "/* ---- forward kernels ---- */");
    NL(e);
    if (kern.s)
        sb_puts(e->out, kern.s);
    NL(e);
    int last = p->values[p->nops ? p->ops[p->nops - 1].out : 0].buf;
    if (e->o->inference) {
        E(e, "/* the forward pass of n rows from X0: layers write to the two buffers in turn,");
        E(e, "   the last one into Y */");
        open_block(e, xfmt("%s void fwd(%s *net, const float *X0, float *Y, int n)\n", e->pass, n));
        E(e, "const float *D = net->data;");
        E(e, "float *A = net->act;");
        E(e, "(void)D; (void)A; (void)Y; (void)n;");
    } else {
        E(e, "/* the forward pass of n rows from X0 (buffer 0); returns the output buffer */");
        open_block(e, xfmt("%s const float *fwd(%s *net, const float *X0, int n)\n", e->pass, n));
        E(e, "const float *D = net->data;");
        E(e, "float *A = net->act;");
        E(e, "(void)D; (void)A; (void)n;");
    }
    if (body.s)
        sb_puts(e->out, body.s);
    if (e->o->inference) {
        if (strcmp(e->L->bufname[last], "Y") != 0) /* no layer does any work */
            E(e, "memcpy(Y, %s, sizeof(float) * %s);", e->L->bufname[last],
              rows_size(shape_numel(&p->output) / p->batch));
    } else {
        E(e, "return %s;", e->L->bufname[last]);
    }
    close_block(e);
    NL(e);
    free(kern.s);
    free(body.s);
}

/* ---- backward -------------------------------------------------------------------- */

/* The backward pass walks the ops in reverse.  Each value's gradient lives
 * somewhere (gx[v], a C expression): the caller's dy for the output; for a
 * value read once, by the op right after its producer, one of two scratch
 * buffers in turn (or the caller's dx for the input); for any other value
 * (read several times, as a residual's input, or read far from where it is
 * made, as a residual body's output) a buffer of its own, which its first
 * reader in backward order writes and the others add into.  An op runs
 * when it has a trainable tensor or an input whose gradient is needed
 * (value_need); when only dx needs it, under `if (dx)`.  set != 0 (a train
 * step): the first op to touch a gradient writes it instead of adding
 * (sched.set), and each tensor's optimizer step runs where its gradient is
 * complete. */

/* "S0"/"S1": the scratch buffer that is not `busy` */
static const char *other_scratch(const char *busy)
{
    return busy && !strcmp(busy, "S0") ? "S1" : "S0";
}

/* op_emit.step for tensor tid of op i: a `const nn_sgd_step *` expression
   when the op's backward completes its gradient in a train step with SGD
   (rt.h: the update as each element of the gradient is stored, the bits of
   the optimizer kernel's), else NULL.  At run time it is NULL outside a
   train step (set) and with train-step hooks (data parallel: the step
   waits for the averaged gradient). */
static const char *fused_sgd_step(emitter *e, int tid, int i)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    const tensor *ts = &p->tensors[tid];
    if (p->train.loss == LOSS_NONE || t->opt != OPT_SGD || e->o->inference ||
        !ts->requires_grad || e->s->complete_at[tid] != i)
        return NULL;
    /* a weight decay that is 0 as a float but not as a double: the kernel's
       (G + 0.0f * P) is not G where P is not finite */
    if (t->weight_decay != 0 && (float)t->weight_decay == 0.0f)
        return NULL;
    long long off = (long long)ts->offset;
    return xfmt("set && !net->model.hooks ? &(nn_sgd_step){net->data + %lld, %s, %s, %s, %s, %s, "
                "%d, net->steps == 0} : NULL",
                off, t->momentum != 0 ? xfmt("net->opt + %lld", off) : "NULL", flit(-t->lr),
                flit(t->momentum), flit(1.0 - t->dampening), flit(t->weight_decay),
                t->nesterov ? 1 : 0);
}

static void emit_backward(emitter *e)
{
    const program *p = e->p;
    const sched *s = e->s;
    const layout *L = e->L;
    const char *n = e->n;
    strbuf *main_out = e->out;
    strbuf kern = {0}, body = {0};
    e->kernels = &kern;
    e->out = &body;
    e->indent = 1;
    const char **gx = xalloc(sizeof *gx * (size_t)(p->nvalues + 1));
    int out_v = p->nops ? p->ops[p->nops - 1].out : 0;
    gx[out_v] = "dy";
    for (int i = p->nops - 1; i >= 0; i--) {
        const op *o = &p->ops[i];
        if (i + 1 < p->nops && s->masked[i + 1]) {
            /* its input gradient was written by the next op (sched.masked) */
            E(e, "/* backward of %s: applied by the backward of %s */", op_comment(p, o),
              ccomment(p->ops[i + 1].use_path));
            continue;
        }
        /* the values this op's backward writes: its inputs; a masked op the
           inputs of the op before it */
        const op *src = s->masked[i] ? &p->ops[i - 1] : o;
        int run = s->trainable_here[i], dx_only = !run;
        for (int k = 0; k < src->nin; k++) {
            int need = s->value_need[src->in[k]];
            run |= need != NEED_NO;
            dx_only &= need != NEED_YES;
        }
        if (!run)
            continue;
        const char *gy = gx[o->out];
        if (!gy)
            unreachable();
        E(e, "/* %s */", op_comment(p, o));
        if (dx_only)
            open_block(e, "if (dx) ");
        /* where each input's gradient goes; `acc`: add a temporary into it */
        const char *target[OP_MAX_IN], *acc[OP_MAX_IN];
        int maybe_null = 0;
        for (int k = 0; k < src->nin; k++) {
            int v = src->in[k];
            acc[k] = NULL;
            if (s->value_need[v] == NEED_NO) {
                target[k] = "NULL";
                maybe_null = 1;
                continue;
            }
            if (L->vgrad[v]) {
                if (!gx[v]) {
                    target[k] = gx[v] = L->vgrad[v];
                } else {
                    target[k] = other_scratch(gy);
                    acc[k] = gx[v];
                }
            } else if (v == 0) {
                target[k] = gx[v] = "dx";
                maybe_null = 1;
            } else {
                target[k] = gx[v] = other_scratch(gy);
            }
            if (s->value_need[v] == NEED_DX && !dx_only && strcmp(target[k], "dx") != 0) {
                target[k] = xfmt("dx ? %s : NULL", target[k]);
                maybe_null = 1;
            }
        }
        int *stepped = NULL; /* the tensors the op's backward stepped (op_emit.step) */
        if (o->d->backward_identity) {
            for (int k = 0; k < src->nin; k++) {
                int v = src->in[k];
                const char *cond = s->value_need[v] == NEED_DX && !dx_only ? "if (dx) " : "";
                if (!strcmp(target[k], "NULL"))
                    continue;
                if (acc[k])
                    add_into(e, cond, per_example(&p->values[v]), acc[k], gy);
                else if (v == 0 && !L->vgrad[0])
                    E(e, "%smemcpy(dx, %s, sizeof(float) * %s);",
                      dx_only ? "" : "if (dx) ", gy, rows_size(per_example(&p->values[v])));
                else if (L->vgrad[v])
                    E(e, "%smemcpy(%s, %s, sizeof(float) * %s);", cond, gx[v], gy,
                      rows_size(per_example(&p->values[v])));
                else
                    gx[v] = gy; /* the same gradient: no copy */
            }
        } else {
            op_emit ec;
            op_setup(e, &ec, i);
            ec.gy = gy;
            ec.gx = target[0];
            ec.gx_maybe_null = maybe_null;
            ec.saved_in = L->bufname[op_in(p, o, 0)->buf];
            ec.saved_out = L->bufname[op_out(p, o)->buf];
            if (s->masked[i])
                ec.mask = L->bufname[op_in(p, o, 0)->buf];
            for (int k = 0; k < o->m->nparams; k++)
                ec.set[k] = s->set[s->tbase[i] + k];
            if (o->d->fuses_sgd && ec.blas)
                for (int k = 0; k < o->m->nparams; k++)
                    ec.step[k] = fused_sgd_step(e, o->m->tens_ids[k], i);
            if (o->m->has_borrow)
                ec.tied_set = s->set[s->tbase[i] + o->m->nparams];
            /* ops with parameters check gx themselves; the others run only
               for their input gradient, which is dx here */
            int guard = o->m->nparams + o->m->has_borrow == 0 && !strcmp(target[0], "dx") &&
                        !dx_only;
            if (guard)
                open_block(e, "if (dx) ");
            o->d->backward(&ec);
            stepped = ec.stepped;
            if (guard)
                close_block(e);
            for (int k = 0; k < src->nin; k++)
                if (acc[k]) {
                    int v = src->in[k];
                    const char *t = s->value_need[v] == NEED_DX && !dx_only
                                        ? other_scratch(gy) : target[k];
                    add_into(e, s->value_need[v] == NEED_DX && !dx_only ? "if (dx) " : "",
                             per_example(&p->values[v]), acc[k], t);
                }
        }
        if (p->train.loss != LOSS_NONE)
            for (int k = 0; k < o->m->nparams + o->m->has_borrow; k++) {
                int tid = k < o->m->nparams ? o->m->tens_ids[k] : o->m->borrow;
                if (s->complete_at[tid] != i || !p->tensors[tid].requires_grad)
                    continue;
                if (stepped && k < o->m->nparams && stepped[k])
                    E(e, "if (set && net->model.hooks) "
                         "net->model.hooks->grad_ready(net->model.hooks, &net->model, %d); "
                         "/* %s is complete: stepped as it was stored */", tid,
                      ccomment(p->tensors[tid].name));
                else
                    E(e, "if (set) %s /* %s is complete: step */", opt_call(e, tid),
                      ccomment(p->tensors[tid].name));
            }
        if (dx_only)
            close_block(e);
    }
    /* the input's gradient in a buffer of its own: to the caller */
    if (L->vgrad[0] && gx[0])
        E(e, "if (dx) memcpy(dx, %s, sizeof(float) * %s);", gx[0],
          rows_size(per_example(&p->values[0])));
    e->out = main_out;
    e->indent = 0;
    E(e, "/* ---- backward kernels ---- */");
    NL(e);
    if (kern.s)
        sb_puts(e->out, kern.s);
    NL(e);
    E(e, "/* the backward pass of the last forward of n rows from X0 */");
    open_block(e, xfmt("%s void bwd(%s *net, const float *X0, const float *dy, float *dx, "
                       "int set, int n)\n", e->pass, n));
    E(e, "const float *D = net->data;");
    E(e, "float *G = net->grad;");
    E(e, "const float *A = net->act;");
    E(e, "float *S0 = net->scratch, *S1 = net->scratch + SCRATCH_FLOATS;");
    E(e, "float *R = net->scratch + 2 * (size_t)SCRATCH_FLOATS; /* gradients kept for later */");
    E(e, "(void)D; (void)G; (void)A; (void)S0; (void)S1; (void)R; (void)X0; (void)set; "
         "(void)n; (void)dx;");
    E(e, "nn_model_attach_grads(&net->model);");
    if (p->nops == 0) /* an empty model is the identity */
        E(e, "if (dx) memcpy(dx, dy, sizeof(float) * %s);",
          rows_size(shape_numel(&p->input) / p->batch));
    if (body.s)
        sb_puts(e->out, body.s);
    close_block(e);
    NL(e);
    free(kern.s);
    free(body.s);
}

/* ---- the whole file ---------------------------------------------------------------- */

void emit_c(FILE *c, FILE *h, const program *p, const emit_opts *o)
{
    sched *s = plan_schedule(p, o->no_blas, o->inference);
    layout L = plan_layout(p, o, s);
    strbuf out = {0};
    emitter ee;
    memset(&ee, 0, sizeof ee);
    ee.out = &out;
    ee.p = p;
    ee.o = o;
    ee.s = s;
    ee.L = &L;
    ee.n = p->name;
    emitter *e = &ee;
    /* Small networks (loops only): the passes are inlined into each entry
       point, so that the full-batch calls run with a constant row count
       (the loops unroll as before row counts existed: (a) of the benchmark,
       forward --inference 39.4 -> 34 ns) */
    int small = !any_blas(e) && p->nops <= 32;
    ee.pass = small ? "PASS" : "static";
    emit_header(e, h);

    const char *base = strrchr(p->file, '/') ? strrchr(p->file, '/') + 1 : p->file;
    E(e, "/* Generated by nngen %s from %s. Do not edit.", NNGEN_VERSION, ccomment(base));
    E(e, " * Build: cc -std=c99 -c %s.c  (link with -lnngen-rt%s -lm) */", p->name,
      any_blas(e) ? " -lopenblas -lpthread" : "");
    E(e, "#include \"%s\"", o->header_name);
    NL(e);
    E(e, "#include <math.h>");
    E(e, "#include <stdlib.h>");
    E(e, "#include <string.h>");
    NL(e);
    if (small) {
        E(e, "/* the passes of this small network go inline into each entry point */");
        E(e, "#if defined(__GNUC__)");
        E(e, "#define PASS static inline __attribute__((always_inline))");
        E(e, "#else");
        E(e, "#define PASS static inline");
        E(e, "#endif");
        NL(e);
    }
    E(e, "/* memory layout, in floats from the start of each region */");
    E(e, "#define HEADER_BYTES %lld", (long long)L.header_bytes);
    E(e, "#define DATA_FLOATS %lld", (long long)L.data);
    E(e, "#define GRAD_FLOATS %lld", (long long)L.grad);
    E(e, "#define ACT_FLOATS %lld", (long long)L.act);
    E(e, "#define SCRATCH_FLOATS %lld", (long long)(L.scratch ? L.scratch_each : 0));
    E(e, "#define VGRAD_FLOATS %lld /* gradients kept for later (residuals) */",
      (long long)L.vgrad_floats);
    if (o->inference)
        E(e, "#define PING %lld /* the second activation buffer */", (long long)L.scratch_each);
    E(e, "#define OPT_FLOATS %lld", (long long)L.opt);
    E(e, "#define DY_FLOATS %lld", (long long)L.dy);
    NL(e);
    emit_tables(e);
    emit_struct_and_create(e);
    emit_init(e);
    emit_forward(e);
    if (!o->inference) {
        if (p->train.loss != LOSS_NONE)
            emit_opt_kernels(e);
        emit_backward(e);
    }
    emit_entry_points(e);
    if (p->train.loss != LOSS_NONE && !o->inference)
        emit_train(e);
    if (out.s)
        fputs(out.s, c);
    free(out.s);
    free(ee.kbuf.s);
}
