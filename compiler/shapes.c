/* shapes.c: the shapes phase.  Walks the forward pass from the input,
 * checks every use of every layer against its op's shape rule and records
 * the program's dataflow: values (the input and each op's output: shape,
 * dtype, activation buffer) and one op per layer use, reading its input
 * values.  A view op's output shares its input's buffer. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "phases.h"

typedef struct fwd {
    program *p;
    int cap_ops, cap_bufs, cap_values;
    int nvisits;                /* module uses walked: bounded by MAX_MODULES */
    int64_t path_bytes;         /* bounded by MAX_PATH_BYTES */
    const ynode *shared_keys;   /* the shared: mapping */
    const module *sh;           /* the outermost shared module being walked, or NULL */
    loc sh_use;                 /* where it is used ({ref: ...}) */
} fwd;

struct shape_ctx {
    fwd *f;
    module *m;
    loc use;
    const char *what;           /* "linear '0'" */
};

static int new_value(fwd *f, const shape *s, dtype dt, int buf, int producer)
{
    program *p = f->p;
    if (p->nvalues == f->cap_values) {
        int nc = f->cap_values ? f->cap_values * 2 : 16;
        p->values = xrealloc_array(p->values, (size_t)f->cap_values, (size_t)nc,
                                   sizeof *p->values);
        f->cap_values = nc;
    }
    value *v = &p->values[p->nvalues];
    v->shape = *s;
    v->dtype = dt;
    v->buf = buf;
    v->producer = producer;
    return p->nvalues++;
}

static int new_buf(fwd *f, const shape *s)
{
    program *p = f->p;
    if (p->nbufs == f->cap_bufs) {
        int nc = f->cap_bufs ? f->cap_bufs * 2 : 16;
        p->buf_numel = xrealloc_array(p->buf_numel, (size_t)f->cap_bufs, (size_t)nc,
                                      sizeof *p->buf_numel);
        f->cap_bufs = nc;
    }
    p->buf_numel[p->nbufs] = shape_numel(s);
    return p->nbufs++;
}

/* An op d for this use of m, reading values in[0..nin); returns its output
   value. */
static int add_op(fwd *f, module *m, const op_desc *d, const char *use_path, const int *in,
                  int nin, const shape *out)
{
    program *p = f->p;
    if (p->nops == f->cap_ops) {
        int nc = f->cap_ops ? f->cap_ops * 2 : 16;
        p->ops = xrealloc_array(p->ops, (size_t)f->cap_ops, (size_t)nc, sizeof *p->ops);
        f->cap_ops = nc;
    }
    int idx = p->nops++;
    op *o = &p->ops[idx];
    memset(o, 0, sizeof *o);
    o->m = m;
    o->d = d;
    o->use_path = use_path;
    o->nin = nin;
    for (int k = 0; k < nin; k++)
        o->in[k] = in[k];
    int buf = d->view ? p->values[in[0]].buf : new_buf(f, out);
    o->out = new_value(f, out, DT_F32, buf, idx);
    if (d->extra_saved)
        d->extra_saved(p, o);
    return o->out;
}

/* A shape error in module m used at `use`.  Inside a shared module the
 * place to blame is where the shared module is used ({ref: ...}), since
 * its declaration was fine for its first use; otherwise the argument that
 * disagrees when it is written (its op's shape_arg), else the use. */
/* "in shared module 'S' (declared at line L), used here: " (f->sh set) */
static const char *shared_where(const fwd *f)
{
    int line = f->sh->loc.line;
    for (int i = 0; i < f->p->nshared; i++)
        if (f->p->shared[i] == f->sh)
            line = f->shared_keys->keys[i]->loc.line;
    return xfmt("in shared module '%s' (declared at line %d), used here: ", f->sh->shared_name,
                line);
}

static const char *shape_prefix(const fwd *f, const char *what)
{
    if (!f->sh)
        return xfmt("%s: ", what);
    return xfmt("%s %s", what, shared_where(f));
}

static loc blame(const fwd *f, const module *m, loc use)
{
    if (f->sh)
        return f->sh_use;
    for (int k = 0; m->op && k < m->op->nargs; k++)
        if (m->op->args[k].shape_arg && m->args[k].given)
            return m->args[k].loc;
    return use;
}

/* The two branches of residual m meet: same shape, or an error at m. */
static int residual_sum(fwd *f, module *m, const char *path, loc use, int a, int b,
                        const char *what_a, const char *what_b)
{
    program *p = f->p;
    const shape *sa = &p->values[a].shape, *sb = &p->values[b].shape;
    int same = sa->ndim == sb->ndim;
    for (int i = 0; same && i < sa->ndim; i++)
        same = sa->d[i] == sb->d[i];
    if (!same)
        error_at(f->sh ? f->sh_use : use, "%sresidual %s: %s is %s but %s is %s; the two "
                 "branches of a residual must have the same shape (use a shortcut that "
                 "maps one to the other, e.g. {residual: {body: ..., shortcut: {linear: N}}})",
                 shape_prefix(f, "shape mismatch"), path[0] ? xfmt("'%s'", path) : "(the model)",
                 what_a, shape_text(sa), what_b, shape_text(sb));
    if (p->values[a].dtype == DT_I32 || p->values[b].dtype == DT_I32)
        error_at(f->sh ? f->sh_use : use, "residual %s adds the network's int32 indices "
                 "(input_dtype: int32), which only an embedding can read: put the embedding "
                 "before the residual", path[0] ? xfmt("'%s'", path) : "(the model)");
    int in[2] = {a, b};
    return add_op(f, m, &op_add, path, in, 2, sa);
}

void shape_error(shape_ctx *sc, const char *fmt, ...)
{
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    const char *msg = xstrdup(b.s ? b.s : "");
    free(b.s);
    error_at(blame(sc->f, sc->m, sc->use), "%s%s", shape_prefix(sc->f, "shape mismatch"), msg);
}

void shape_error_arg(shape_ctx *sc, int k, const char *fmt, ...)
{
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    const char *msg = xstrdup(b.s ? b.s : "");
    free(b.s);
    const module *m = sc->m;
    const argval *a = &m->args[k];
    if (sc->f->sh)
        error_at(sc->f->sh_use, "%s%s (its '%s' at line %d)", shared_where(sc->f), msg,
                 m->op->args[k].name, a->given ? a->loc.line : m->loc.line);
    error_at(a->given ? a->loc : m->loc, "%s", msg);
}

const char *shape_what(const shape_ctx *sc)
{
    return sc->what;
}

void shape_infer_arg(shape_ctx *sc, int k, int64_t v)
{
    argval *a = &sc->m->args[k];
    a->i = v;
    a->d = (double)v;
    a->inferred = 1;
    sc->m->inferred_at = sc->f->sh ? sc->f->sh_use : sc->use;
}

const char *shape_arg_origin(const shape_ctx *sc, int k)
{
    const argval *a = &sc->m->args[k];
    if (a->given)
        return xfmt("'%s: %lld' at line %d", sc->m->op->args[k].name, (long long)a->i,
                    a->loc.line);
    return xfmt("fixed by its first use at line %d", sc->m->inferred_at.line);
}

/* Module m applied to value `in`; returns the output value. */
static int forward(fwd *f, module *m, int in, loc use, const char *path)
{
    program *p = f->p;
    if (++f->nvisits > MAX_MODULES)
        error_at(f->sh ? f->sh_use : use, "the forward pass goes through more than %d modules "
                 "(nngen's limit; a shared module counts at each use)", MAX_MODULES);
    const module *outer_sh = f->sh;
    if (m->shared_name) {
        if (!m->used)
            m->first_in = p->values[in].shape;
        m->used++;
        if (!f->sh) {
            f->sh = m;
            f->sh_use = use;
        }
    }
    if (!m->op) {
        int x = in;
        int two = m->kind == MOD_RESIDUAL2;
        int ys[2] = {in, in};
        for (int i = 0; i < m->nchildren; i++) {
            const char *cp = join(path, m->children[i].name);
            size_t len = strlen(cp);
            loc cl = f->sh ? f->sh_use : m->children[i].loc;
            if (len > MAX_PATH_LEN)
                error_at(cl, "the module path '%.40s...' is %zu characters long, more than "
                             "nngen's limit of %d: use shorter names", cp, len, MAX_PATH_LEN);
            f->path_bytes += (int64_t)len + 1;
            if (f->path_bytes > MAX_PATH_BYTES)
                error_at(cl, "the module paths of this network take more than %d bytes "
                             "(nngen's limit): use shorter names or fewer modules",
                         MAX_PATH_BYTES);
            if (two)
                ys[i] = forward(f, m->children[i].m, x, m->children[i].loc, cp);
            else
                in = forward(f, m->children[i].m, in, m->children[i].loc, cp);
        }
        if (m->kind == MOD_RESIDUAL)
            in = residual_sum(f, m, path, use, x, in, "its input", "the output of its body");
        else if (two)
            in = residual_sum(f, m, path, use, ys[0], ys[1], "the output of 'body'",
                              "the output of 'shortcut'");
        f->sh = outer_sh;
        return in;
    }
    shape sin = p->values[in].shape, out = sin;
    shape_ctx sc = {f, m, use, NULL};
    sc.what = path[0] ? xfmt("%s '%s'", m->op->name, path) : xfmt("%s (the model)", m->op->name);
    if (p->values[in].dtype == DT_I32 && !m->op->int_input)
        error_at(f->sh ? f->sh_use : use, "%s gets the network's int32 indices (input_dtype: "
                 "int32), which only an embedding can read: make embedding the first layer",
                 sc.what);
    if (m->op->int_input && p->values[in].dtype != DT_I32) {
        if (p->input_dtype == DT_I32)
            error_at(f->sh ? f->sh_use : use, "%s must be the first layer: it reads the "
                     "network's int32 indices, but here it gets the float output of another "
                     "layer", sc.what);
        error_at(f->sh ? f->sh_use : use, "%s reads int32 indices: add 'input_dtype: int32' at "
                 "the top level and make it the first layer", sc.what);
    }
    if (m->op->shape)
        m->op->shape(&sc, m, &sin, &out);
    if (shape_numel(&out) > MAX_TENSOR_ELEMS)
        error_at(f->sh ? f->sh_use : use, "%sthe output of %s, %s, has more than %lld "
                 "elements (nngen's limit)", shape_prefix(f, "too large"), sc.what,
                 shape_text(&out), MAX_TENSOR_ELEMS);
    int v = add_op(f, m, m->op, path, &in, 1, &out);
    f->sh = outer_sh;
    return v;
}

void check_shapes(program *p, const ynode *shared_keys, const ynode *model)
{
    fwd f = {0};
    f.p = p;
    f.shared_keys = shared_keys;
    int buf = new_buf(&f, &p->input); /* buffer 0: x */
    int in = new_value(&f, &p->input, p->input_dtype, buf, -1);
    int out = forward(&f, p->root, in, model->loc, "");
    if (p->values[out].dtype == DT_I32)
        error_at(p->input_dtype_loc, "input_dtype: int32 gives indices, which only an embedding "
                 "reads, but the model has no layer that reads them: make embedding the first "
                 "layer");
    p->output = p->values[out].shape;
}
