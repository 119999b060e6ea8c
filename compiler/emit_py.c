/* emit_py.c: the checked program as a Python file that builds the same
 * network with torch.nn (`nngen --emit pytorch SPEC -o net.py`).
 *
 * The file defines build(seed=None, inits=None) -> nn.Module and a few
 * constants; with train: also loss_fn(), make_optimizer(params) and
 * train_step(); always save_safetensors() / load_safetensors(), nn_save's
 * file format in Python (write_weights; the tables TENSORS and ALIASES
 * come from the program's state dict).  The emitted module documents its
 * own API at its top.
 *
 * build() is one flat sequence of statements, written by walking the
 * module tree in PyTorch's construction order (§1.4: the shared modules in
 * declaration order, then the model; children before their parent) while
 * consuming the compiler's init plan p->steps in lockstep:
 *   - a Linear is constructed by nn.Linear(...), whose reset_parameters()
 *     makes exactly the plan's two default draws (weight, then bias);
 *   - right after a module is constructed come the steps of its own init:
 *     rules (their initializer objects belong to that module's rules);
 *   - the steps left after the model are the top-level init: rules.
 * Every step is checked against this walk, so the emitted stream of
 * torch.nn.init calls is the plan's, draw for draw.
 *
 * Each module that is shared, has parameters, init rules or `frozen` gets a
 * variable (the root is `net`, a shared module its shared name, the others
 * m_ + its path); a parameterless layer used once is written inline in its
 * parent's constructor.  Everything written is deterministic.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* ---- a set of names (open addressing), for unique variable names ------------ */

typedef struct nameset {
    const char **slot;
    size_t cap, n;
} nameset;

static size_t name_hash(const char *s)
{
    size_t h = (size_t)2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)16777619u;
    return h;
}

static int ns_has(const nameset *ns, const char *s)
{
    if (!ns->cap)
        return 0;
    for (size_t h = name_hash(s) & (ns->cap - 1); ns->slot[h]; h = (h + 1) & (ns->cap - 1))
        if (!strcmp(ns->slot[h], s))
            return 1;
    return 0;
}

static void ns_add(nameset *ns, const char *s)
{
    if ((ns->n + 1) * 2 > ns->cap) {
        size_t nc = ns->cap ? ns->cap * 2 : 64;
        const char **old = ns->slot;
        size_t oc = ns->cap;
        ns->slot = xalloc(sizeof *ns->slot * nc);
        ns->cap = nc;
        ns->n = 0;
        for (size_t i = 0; i < oc; i++)
            if (old[i])
                ns_add(ns, old[i]);
    }
    size_t h = name_hash(s) & (ns->cap - 1);
    while (ns->slot[h])
        h = (h + 1) & (ns->cap - 1);
    ns->slot[h] = s;
    ns->n++;
}

/* base, or base_2, base_3, ... : the first that is not taken; then taken. */
static const char *ns_claim(nameset *ns, const char *base)
{
    const char *s = base;
    for (int k = 2; ns_has(ns, s); k++)
        s = xfmt("%s_%d", base, k);
    ns_add(ns, s);
    return s;
}

/* Names build() and the file use, and Python's keywords. */
static const char *const reserved[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
    "try", "while", "with", "yield", "math", "torch", "nn", "init", "OrderedDict", "seed",
    "inits", "net", "build", "loss_fn", "make_optimizer", "train_step", "Residual",
    "Residual2", "RNN", "LSTM", "GRU", "LastStep", "TiedLinear", "SeqCrossEntropyLoss",
    "collections", "difflib", "json", "os", "struct", "tempfile", "numpy", "TENSORS", "ALIASES",
    "IncompatibleKeys", "safetensors_bytes", "save_safetensors", "load_safetensors"};

/* ---- Python text -------------------------------------------------------------- */

int utf8_decode(const unsigned char *s, unsigned long *cp)
{
    int n;
    unsigned long c = s[0], min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* s with Python escapes, ASCII only: usable inside a '...' literal and, as
 * it holds no newline, inside a comment. */
static void py_escape(strbuf *b, const char *s, int quote)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned long cp;
        int n = utf8_decode(u, &cp);
        if (n == 0) {
            sb_printf(b, "\\x%02x", *u);
            u++;
            continue;
        }
        u += n;
        if (cp == '\\' || (quote && cp == '\''))
            sb_printf(b, "\\%c", (char)cp);
        else if (cp == '\n')
            sb_puts(b, "\\n");
        else if (cp == '\t')
            sb_puts(b, "\\t");
        else if (cp < 32 || cp == 127)
            sb_printf(b, "\\x%02lx", cp);
        else if (cp < 127)
            sb_putc(b, (char)cp);
        else if (cp <= 0xffff)
            sb_printf(b, "\\u%04lx", cp);
        else
            sb_printf(b, "\\U%08lx", cp);
    }
}

/* A Python str literal of s. */
static const char *pystr(const char *s)
{
    strbuf b = {0};
    sb_putc(&b, '\'');
    py_escape(&b, s, 1);
    sb_putc(&b, '\'');
    char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

/* s made safe for a comment. */
static const char *pycomment(const char *s)
{
    strbuf b = {0};
    py_escape(&b, s, 0);
    char *r = xstrdup(b.s ? b.s : "");
    free(b.s);
    return r;
}

/* repr() of a double: reads back exactly. */
static const char *pyfloat(double v)
{
    char buf[64];
    py_float_repr(buf, sizeof buf, v);
    return xstrdup(buf);
}

static const char *pyshape(const shape *s)
{
    strbuf b = {0};
    sb_putc(&b, '(');
    for (int i = 0; i < s->ndim; i++)
        sb_printf(&b, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (s->ndim == 1)
        sb_putc(&b, ',');
    sb_putc(&b, ')');
    char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

/* ---- the writer ------------------------------------------------------------- */

typedef struct pyw {
    FILE *f;
    const program *p;
    const char **var;           /* by module id: its variable, NULL when written inline */
    int *uses;                  /* by module id: places in the tree (+1 if declared shared) */
    char *built;                /* by module id: its construction is written */
    char *drawn;                /* by tensor id: its default draws are written */
    int step;                   /* the next init step to write */
    nameset names;
    int use_mixture, use_sequential, use_residual; /* what the file needs */
    int use_rnn, use_lstm, use_gru, use_last, use_tied;
} pyw;

static void W(pyw *w, const char *fmt, ...) PRINTF(2, 3);
static void W(pyw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(w->f, fmt, ap);
    va_end(ap);
    fputc('\n', w->f);
}

static NORETURN void plan_mismatch(int line, int step)
{
    die_bug(__FILE__, line, xfmt("the init plan does not follow the construction order "
                                 "(step %d)", step));
}

static int needs_var(const pyw *w, const module *m)
{
    return !m->op || m->nparams + m->nbuffers > 0 || w->uses[m->id] != 1 || m->shared_name ||
           m->frozen || m->nrules > 0 || m->has_borrow;
}

/* The expression a parent uses for child m. */
static const char *child_expr(const pyw *w, const module *m)
{
    return w->var[m->id] ? w->var[m->id] : op_torch_ctor(m);
}

static const char *where(const module *m)
{
    const char *path = m->path[0] ? pycomment(m->path) : "(the model)";
    if (m->shared_name)
        return xfmt("%s (shared '%s')", path, m->shared_name);
    if (m->origin)
        return xfmt("%s (%s)", path, pycomment(m->origin));
    return path;
}

static void write_step(pyw *w, const init_step *s)
{
    const program *p = w->p;
    const tensor *t = &p->tensors[s->tensor];
    const initializer *in = s->init;
    const char *T = xfmt("%s.%s", w->var[t->owner->id], t->local);
    const char *call = NULL;
    const char *I = "        ";
    initializer def;
    if (in->kind == I_DEFAULT) {
        /* a `default` rule: what the layer's constructor draws */
        op_default_init(t->owner, t, &def);
        def.loc = in->loc; /* and it keeps its modifier */
        def.has_zero_abs_below = in->has_zero_abs_below;
        def.zero_abs_below = in->zero_abs_below;
        in = &def;
    }
    switch (in->kind) {
    case I_DEFAULT:
        unreachable();
    case I_ZEROS:
        call = xfmt("init.zeros_(%s)", T);
        break;
    case I_ONES:
        call = xfmt("init.ones_(%s)", T);
        break;
    case I_CONSTANT:
        call = xfmt("init.constant_(%s, %s)", T, pyfloat(in->a));
        break;
    case I_UNIFORM:
        call = xfmt("init.uniform_(%s, %s, %s)", T, pyfloat(in->a), pyfloat(in->b));
        break;
    case I_NORMAL:
        call = xfmt("init.normal_(%s, %s, %s)", T, pyfloat(in->a), pyfloat(in->b));
        break;
    case I_XAVIER_UNIFORM:
    case I_XAVIER_NORMAL:
        call = xfmt("init.xavier_%s_(%s, gain=%s)",
                    in->kind == I_XAVIER_UNIFORM ? "uniform" : "normal", T, pyfloat(in->a));
        break;
    case I_KAIMING_UNIFORM:
    case I_KAIMING_NORMAL:
        call = xfmt("init.kaiming_%s_(%s, a=%s, mode='%s', nonlinearity='%s')",
                    in->kind == I_KAIMING_UNIFORM ? "uniform" : "normal", T, pyfloat(in->a),
                    in->mode == NN_FAN_OUT ? "fan_out" : "fan_in",
                    nl_names[in->nonlinearity]);
        break;
    case I_TRUNC_NORMAL:
        call = xfmt("init.trunc_normal_(%s, mean=%s, std=%s, a=%s, b=%s)", T, pyfloat(in->a),
                    pyfloat(in->b), pyfloat(in->c), pyfloat(in->d));
        break;
    case I_MIXTURE: {
        /* the values nngen-rt uses: p in double, a and b in float */
        strbuf b = {0};
        for (int i = 0; i < in->nmix; i++) {
            const mix_part *mp = &in->mix[i];
            sb_printf(&b, "%s(%s, '%s', %s, %s)", i ? ", " : "", pyfloat(mp->p),
                      mp->kind == I_CONSTANT  ? "constant"
                      : mp->kind == I_UNIFORM ? "uniform"
                                              : "normal",
                      pyfloat((float)mp->a), pyfloat((float)mp->b));
        }
        call = xfmt("_mixture(%s, [%s])", T, b.s);
        free(b.s);
        break;
    }
    case I_CUSTOM:
        call = xfmt("_custom(inits, %s)(%s)", pystr(in->custom), T);
        break;
    }
    W(w, "%s%s  # %s, line %d", I, call, pycomment(t->name), in->loc.line);
    if (in->has_zero_abs_below)
        W(w, "%s%s.mul_(%s.abs() >= %s)  # zero_abs_below: %s", I, T, T,
          pyfloat(in->zero_abs_below), pyfloat(in->zero_abs_below));
}

static int step_of_rules(const init_step *s, const module *m)
{
    for (int r = 0; r < m->nrules; r++)
        for (int k = 0; k < m->rules[r].nparams; k++)
            if (m->rules[r].params[k].init == s->init)
                return 1;
    return 0;
}

static int is_positional(const module *m)
{
    char num[16];
    for (int i = 0; i < m->nchildren; i++) {
        snprintf(num, sizeof num, "%d", i);
        if (strcmp(m->children[i].name, num) != 0)
            return 0;
    }
    return 1;
}

static void write_children(pyw *w, const module *m)
{
    const char *I = "        ";
    const char *v = w->var[m->id];
    if (m->kind == MOD_RESIDUAL2) {
        W(w, "%s%s = Residual2(%s, %s)  # %s", I, v, child_expr(w, m->children[0].m),
          child_expr(w, m->children[1].m), where(m));
        return;
    }
    const char *cls = m->kind == MOD_RESIDUAL ? "Residual" : "nn.Sequential";
    if (is_positional(m)) {
        strbuf b = {0};
        sb_printf(&b, "%s%s = %s(", I, v, cls);
        for (int i = 0; i < m->nchildren; i++)
            sb_printf(&b, "%s%s", i ? ", " : "", child_expr(w, m->children[i].m));
        sb_puts(&b, ")");
        if (b.len + 2 + strlen(where(m)) <= 99) {
            W(w, "%s  # %s", b.s, where(m));
        } else {
            W(w, "%s%s = %s(  # %s", I, v, cls, where(m));
            for (int i = 0; i < m->nchildren; i++)
                W(w, "%s    %s,", I, child_expr(w, m->children[i].m));
            W(w, "%s)", I);
        }
        free(b.s);
        return;
    }
    W(w, "%s%s = _sequential([  # %s", I, v, where(m));
    for (int i = 0; i < m->nchildren; i++)
        W(w, "%s    (%s, %s),", I, pystr(m->children[i].name), child_expr(w, m->children[i].m));
    W(w, "%s])", I);
}

/* Construct m as PyTorch would (check.c construct()), consuming the plan. */
static void construct(pyw *w, const module *m)
{
    const program *p = w->p;
    if (w->built[m->id])
        return;
    w->built[m->id] = 1;
    for (int i = 0; i < m->nchildren; i++)
        construct(w, m->children[i].m);
    if (m->op) {
        if (w->var[m->id])
            W(w, "        %s = %s  # %s", w->var[m->id], op_torch_ctor(m), where(m));
        /* the constructor's reset_parameters(): the plan's default draws */
        for (int i = 0; i < m->nparams + m->nbuffers; i++) {
            if (w->step >= p->nsteps)
                plan_mismatch(__LINE__, w->step);
            const init_step *s = &p->steps[w->step];
            int tied = m->tens_tied && m->tens_tied[i];
            if (s->tensor != m->tens_ids[i] || s->init->kind != I_DEFAULT ||
                s->discard != tied || w->drawn[s->tensor] != tied)
                plan_mismatch(__LINE__, w->step);
            if (tied) { /* its own weight was drawn; now it is the other one */
                const tensor *t = &p->tensors[s->tensor];
                W(w, "        %s.%s = %s.%s  # tied: %s", w->var[m->id], m->tens_local[i],
                  w->var[t->owner->id], t->local, pycomment(t->name));
            }
            w->drawn[s->tensor] = 1;
            w->step++;
        }
        if (m->has_borrow) {
            const tensor *t = &p->tensors[m->borrow];
            const char *written = NULL;
            for (int k = 0; k < m->op->nargs; k++)
                if (m->op->args[k].type == ARG_TIED && m->args[k].given)
                    written = m->args[k].text;
            W(w, "        %s.tie(%s, %s, %s)  # tied transposed: %s", w->var[m->id],
              w->var[t->owner->id], pystr(t->local), pystr(written ? written : t->name),
              pycomment(t->name));
        }
    } else {
        write_children(w, m);
    }
    int first = 1;
    while (w->step < p->nsteps && step_of_rules(&p->steps[w->step], m)) {
        const init_step *s = &p->steps[w->step];
        if (!w->drawn[s->tensor])
            plan_mismatch(__LINE__, w->step);
        if (first)
            W(w, "        # init: rules of %s", where(m));
        first = 0;
        write_step(w, s);
        w->step++;
    }
    if (m->frozen)
        W(w, "        %s.requires_grad_(False)  # frozen: true", w->var[m->id]);
}

static void count_uses(pyw *w)
{
    const program *p = w->p;
    for (int i = 0; i < p->nmodules; i++) {
        const module *m = p->modules[i];
        for (int k = 0; k < m->nchildren; k++)
            w->uses[m->children[k].m->id]++;
    }
    w->uses[p->root->id]++;
    for (int i = 0; i < p->nshared; i++)
        w->uses[p->shared[i]->id]++;
}

static void name_vars(pyw *w)
{
    const program *p = w->p;
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        ns_add(&w->names, reserved[i]);
    w->var[p->root->id] = "net";
    for (int i = 0; i < p->nshared; i++) {
        const char *n = p->shared[i]->shared_name;
        /* m_... are the path names below; _... are the file's helpers */
        if (ns_has(&w->names, n) || n[0] == '_' || !strncmp(n, "m_", 2))
            n = xfmt("shared_%s", n);
        w->var[p->shared[i]->id] = ns_claim(&w->names, n);
    }
    for (int i = 0; i < p->nmodules; i++) {
        const module *m = p->modules[i];
        if (w->var[m->id] || !m->path || !needs_var(w, m))
            continue;
        strbuf b = {0};
        sb_puts(&b, "m_");
        for (const char *c = m->path; *c; c++)
            sb_putc(&b, (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                                (*c >= '0' && *c <= '9')
                            ? *c
                            : '_');
        w->var[m->id] = ns_claim(&w->names, xstrdup(b.s));
        free(b.s);
    }
}

/* ---- the file ------------------------------------------------------------------ */

static const char *st_dtype(dtype d)
{
    return d == DT_I64 ? "I64" : d == DT_I32 ? "I32" : "F32";
}

static const char *pytshape(const tensor *t)
{
    shape s;
    memset(&s, 0, sizeof s);
    s.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++)
        s.d[i] = t->shape[i];
    return pyshape(&s);
}

/* TENSORS: what nn_save writes (each tensor once, canonical names), in
 * state_dict order; ALIASES: the other keys of tied tensors. */
static void write_tensors(pyw *w)
{
    const program *p = w->p;
    char *done = xalloc((size_t)p->ntensors + 1);
    W(w, "%s", "");
    W(w, "# What nngen's nn_save writes and nn_load reads: every tensor once, under its");
    W(w, "# canonical name, in state_dict order: (key, safetensors dtype, shape).");
    W(w, "TENSORS = (");
    for (int i = 0; i < p->nstate; i++) {
        const tensor *t = &p->tensors[p->state[i].tensor];
        if (strcmp(t->name, p->state[i].key) != 0 || done[p->state[i].tensor])
            continue;
        done[p->state[i].tensor] = 1;
        W(w, "    (%s, '%s', %s),", pystr(t->name), st_dtype(t->dtype), pytshape(t));
    }
    for (int i = 0; i < p->ntensors; i++)
        if (!done[i])
            die_bug(__FILE__, __LINE__, xfmt("tensor '%s' has no state_dict key",
                                             p->tensors[i].name));
    W(w, ")");
    W(w, "# The other state_dict keys of tied tensors: {alias: canonical name}.");
    int first = 1;
    for (int i = 0; i < p->nstate; i++) {
        const tensor *t = &p->tensors[p->state[i].tensor];
        if (!strcmp(t->name, p->state[i].key))
            continue;
        if (first)
            W(w, "ALIASES = {");
        first = 0;
        W(w, "    %s: %s,", pystr(p->state[i].key), pystr(t->name));
    }
    W(w, "%s", first ? "ALIASES = {}" : "}");
}

static void write_header(pyw *w)
{
    const program *p = w->p;
    const char *n = p->name;
    W(w, "# Generated by nngen %s from %s: do not edit.", NNGEN_VERSION, pycomment(p->file));
    W(w, "\"\"\"%s: the network of its nngen spec as a torch.nn module (PyTorch 1.13).", n);
    W(w, "%s", "");
    W(w, "    build(seed=None, inits=None) -> torch.nn.Module");
    W(w, "        The network: the same module tree, child names, state_dict keys and");
    W(w, "        print(net) as nngen's, shared modules as one object used in several");
    W(w, "        places.  Modules are constructed and initialized in nngen's order");
    W(w, "        (nngen's docs/language.md, Initialization), so after");
    W(w, "        torch.manual_seed(s), build() draws the same initial parameters as");
    W(w, "        nngen's %s_init(net, s); build(s) seeds first.", n);
    W(w, "        With seed=None the global generator is used as it is.");
    W(w, "    NAME, SEED (the spec's seed: or None), BATCH, INPUT_SHAPE, OUTPUT_SHAPE");
    W(w, "        (full shapes, batch first: x = torch.randn(INPUT_SHAPE)), LOSS,");
    W(w, "        CUSTOM_INITS.");
    if (p->train.loss != LOSS_NONE) {
        W(w, "    loss_fn() -> nn.Module, the spec's train: loss");
        W(w, "    make_optimizer(params) -> torch.optim.Optimizer, the spec's optimizer");
        W(w, "    train_step(net, optimizer, x, target) -> float: zero_grad, forward, loss,");
        W(w, "        backward, step, as nngen's %s_train_step; returns the loss.", n);
    } else {
        W(w, "    loss_fn, make_optimizer, train_step: None (the spec has no train:).");
    }
    W(w, "    save_safetensors(net, path), load_safetensors(net, path, strict=True)");
    W(w, "        The parameters and buffers to and from a safetensors file, the format of");
    W(w, "        nngen's nn_save and nn_load: save_safetensors writes the bytes nn_save");
    W(w, "        writes for the same values; load_safetensors checks names, dtypes and");
    W(w, "        shapes as nn_load does (ValueError) and changes nothing unless all is");
    W(w, "        valid.  safetensors_bytes(net) is the file as bytes.  TENSORS lists what");
    W(w, "        the file holds (canonical name, dtype, shape), ALIASES the other");
    W(w, "        state_dict keys of tied tensors.  Standard library, numpy and torch only");
    W(w, "        (no safetensors package).  torch.load cannot read these files.");
    if (p->ncustom) {
        W(w, "%s", "");
        W(w, "Custom initializers ({custom: NAME} in the spec, listed in CUSTOM_INITS) are");
        W(w, "Python functions the caller passes to build(): inits is a dict {NAME: fn}");
        W(w, "or any object with an attribute NAME (e.g. an imported module).  fn(param)");
        W(w, "fills the parameter in place, drawing from torch's global generator; it runs");
        W(w, "under torch.no_grad(); its C counterpart is void NAME(nn_tensor *, nn_rng *).");
        W(w, "For example, the seed chapter's my_init:");
        W(w, "%s", "");
        W(w, "    def my_init(w):");
        W(w, "        init.uniform_(w, -10, 10)");
        W(w, "        w *= w.abs() >= 5");
        W(w, "    net = build(SEED, inits={'my_init': my_init})");
    }
    if (w->use_mixture) {
        W(w, "%s", "");
        W(w, "The mixture initializer has no torch.nn.init counterpart: _mixture() below");
        W(w, "draws exactly as nngen-rt's nn_init_mixture.");
    }
    W(w, "\"\"\"");
    W(w, "import collections");
    W(w, "import difflib");
    W(w, "import json");
    if (w->use_tied)
        W(w, "import math");
    W(w, "import os");
    W(w, "import struct");
    W(w, "import tempfile");
    W(w, "%s", "");
    W(w, "import numpy");
    W(w, "import torch");
    W(w, "from torch import nn");
    W(w, "from torch.nn import init");
    W(w, "%s", "");
    W(w, "NAME = %s", pystr(n));
    if (p->has_seed)
        W(w, "SEED = %llu", (unsigned long long)p->seed);
    else
        W(w, "SEED = None");
    W(w, "BATCH = %lld", (long long)p->batch);
    W(w, "INPUT_SHAPE = %s", pyshape(&p->input));
    W(w, "OUTPUT_SHAPE = %s", pyshape(&p->output));
    W(w, "LOSS = %s", p->train.loss == LOSS_MSE             ? "'mse'"
                      : p->train.loss == LOSS_CROSS_ENTROPY ? "'cross_entropy'"
                                                            : "None");
    strbuf b = {0};
    for (int i = 0; i < p->ncustom; i++)
        sb_printf(&b, "%s%s", i ? ", " : "", pystr(p->custom[i]));
    W(w, "CUSTOM_INITS = (%s%s)", b.s ? b.s : "", p->ncustom == 1 ? "," : "");
    free(b.s);
    write_tensors(w);
}

static void write_lines(pyw *w, const char *const *text, size_t n)
{
    for (size_t i = 0; i < n; i++)
        W(w, "%s", text[i]);
}

static void write_helpers(pyw *w)
{
    static const char *const seq[] = {
        "",
        "",
        "def _sequential(children):",
        "    \"\"\"nn.Sequential(OrderedDict(children)); a name that add_module refuses",
        "    because nn.Module has an attribute of that name ('training', 'forward',",
        "    ...) goes straight into _modules, as nngen allows any name without '.'.\"\"\"",
        "    m = nn.Sequential()",
        "    for name, child in children:",
        "        if hasattr(m, name) and name not in m._modules:",
        "            m._modules[name] = child",
        "        else:",
        "            m.add_module(name, child)",
        "    return m",
    };
    static const char *const custom[] = {
        "",
        "",
        "def _custom(inits, name):",
        "    \"\"\"The caller's custom initializer NAME, from a dict or an object.\"\"\"",
        "    fn = None",
        "    if isinstance(inits, dict):",
        "        fn = inits.get(name)",
        "    elif inits is not None:",
        "        fn = getattr(inits, name, None)",
        "    if not callable(fn):",
        "        raise ValueError('%s: the spec uses the custom initializer %r: pass '",
        "                         'build(inits={%r: fn}) with fn(param) filling the tensor '",
        "                         'in place' % (NAME, name, name))",
        "    return fn",
    };
    static const char *const mixture[] = {
        "",
        "",
        "def _mixture(param, parts):",
        "    \"\"\"nngen's mixture initializer, drawn as nngen-rt's nn_init_mixture:",
        "    for each element in order, one float64 uniform [0, 1) u picks the first",
        "    part k with u < p_0 + ... + p_k (else the last with p > 0), then the part",
        "    draws the value: constant a (no draw), or uniform [a, b) or normal(a, b)",
        "    drawn into a float32 scalar tensor.  parts: [(p, kind, a, b), ...].\"\"\"",
        "    last = max(k for k, part in enumerate(parts) if part[0] > 0)",
        "    values = []",
        "    for _ in range(param.numel()):",
        "        u = torch.empty((), dtype=torch.float64).uniform_().item()",
        "        cum = 0.0",
        "        pick = last",
        "        for k, part in enumerate(parts):",
        "            cum += part[0]",
        "            if u < cum:",
        "                pick = k",
        "                break",
        "        _, kind, a, b = parts[pick]",
        "        if kind == 'constant':",
        "            values.append(a)",
        "        elif kind == 'uniform':",
        "            values.append(torch.empty(()).uniform_(a, b).item())",
        "        else:",
        "            values.append(torch.empty(()).normal_(a, b).item())",
        "    param.copy_(torch.tensor(values, dtype=torch.float32).reshape(param.shape))",
    };
    static const char *const residual[] = {
        "",
        "",
        "class Residual(nn.Sequential):",
        "    \"\"\"{residual: [m0, m1, ...]}: x + m1(m0(x)); prints as a Sequential.\"\"\"",
        "",
        "    def forward(self, x):",
        "        return x + super().forward(x)",
        "",
        "",
        "class Residual2(nn.Module):",
        "    \"\"\"{residual: {body: M, shortcut: S}}: body(x) + shortcut(x); prints as",
        "    Residual( (body): ... (shortcut): ... ).\"\"\"",
        "",
        "    def __init__(self, body, shortcut):",
        "        super().__init__()",
        "        self.body = body",
        "        self.shortcut = shortcut",
        "",
        "    def _get_name(self):",
        "        return 'Residual'",
        "",
        "    def forward(self, x):",
        "        return self.body(x) + self.shortcut(x)",
    };
    static const char *const last[] = {
        "",
        "",
        "class LastStep(nn.Module):",
        "    \"\"\"last_step: [N, T, F] -> [N, F], the last time step.\"\"\"",
        "",
        "    def forward(self, x):",
        "        return x[:, -1]",
    };
    static const char *const tied[] = {
        "",
        "",
        "class TiedLinear(nn.Module):",
        "    \"\"\"{linear: {out: N, weight: {tied: PATH, transpose: true}}}: y = x W + b with",
        "    W another layer's weight, read at call time (F.linear(x, W.t(), bias)); only",
        "    the bias is this module's parameter, drawn U(+-1/sqrt(in_features)).\"\"\"",
        "",
        "    def __init__(self, in_features, out_features, bias=True):",
        "        super().__init__()",
        "        self.in_features = in_features",
        "        self.out_features = out_features",
        "        self._source = None",
        "        self._path = None",
        "        if bias:",
        "            self.bias = nn.Parameter(torch.empty(out_features))",
        "            bound = 1 / math.sqrt(in_features)",
        "            init.uniform_(self.bias, -bound, bound)",
        "        else:",
        "            self.register_parameter('bias', None)",
        "",
        "    def tie(self, module, name, path):",
        "        \"\"\"Use module's tensor `name` (the state_dict key `path`) transposed.\"\"\"",
        "        self._source = (module, name)  # a tuple: not a child of this module",
        "        self._path = path",
        "",
        "    def forward(self, x):",
        "        w = getattr(self._source[0], self._source[1])",
        "        return nn.functional.linear(x, w.t(), self.bias)",
        "",
        "    def extra_repr(self):",
        "        return 'in_features={}, out_features={}, bias={}, weight={}.T'.format(",
        "            self.in_features, self.out_features, self.bias is not None, self._path)",
    };
    static const char *const rnn_fmt[] = {
        "",
        "",
        "class %s(nn.%s):",
        "    \"\"\"nn.%s returning its output only (h_n%s dropped), so that it fits in a",
        "    Sequential; prints as nn.%s.\"\"\"",
        "",
        "    def forward(self, x):",
        "        return super().forward(x)[0]",
    };
    const char *const rnn_cls[3] = {"RNN", "LSTM", "GRU"};
    const int rnn_use[3] = {w->use_rnn, w->use_lstm, w->use_gru};
    for (int c = 0; c < 3; c++) {
        if (!rnn_use[c])
            continue;
        W(w, "%s", rnn_fmt[0]);
        W(w, "%s", rnn_fmt[1]);
        W(w, rnn_fmt[2], rnn_cls[c], rnn_cls[c]);
        W(w, rnn_fmt[3], rnn_cls[c], c == 1 ? ", c_n" : "");
        W(w, rnn_fmt[4], rnn_cls[c]);
        for (int k = 5; k < 8; k++)
            W(w, "%s", rnn_fmt[k]);
    }
    if (w->use_last)
        write_lines(w, last, sizeof last / sizeof *last);
    if (w->use_tied)
        write_lines(w, tied, sizeof tied / sizeof *tied);
    if (w->use_sequential)
        write_lines(w, seq, sizeof seq / sizeof *seq);
    if (w->use_residual)
        write_lines(w, residual, sizeof residual / sizeof *residual);
    if (w->p->ncustom)
        write_lines(w, custom, sizeof custom / sizeof *custom);
    if (w->use_mixture)
        write_lines(w, mixture, sizeof mixture / sizeof *mixture);
}

/* What the file needs: helpers, imports. */
static void survey(pyw *w)
{
    const program *p = w->p;
    for (int i = 0; i < p->nsteps; i++) {
        const init_step *s = &p->steps[i];
        if (s->init->kind == I_MIXTURE)
            w->use_mixture = 1;
    }
    for (int i = 0; i < p->nmodules; i++)
        if (!p->modules[i]->op && !is_positional(p->modules[i]))
            w->use_sequential = 1;
    for (int i = 0; i < p->nmodules; i++)
        if (!p->modules[i]->op && p->modules[i]->kind != MOD_SEQUENTIAL)
            w->use_residual = 1;
    for (int i = 0; i < p->nmodules; i++) {
        const module *m = p->modules[i];
        const char *c = m->op ? module_class(m) : "";
        w->use_rnn |= !strcmp(c, "RNN");
        w->use_lstm |= !strcmp(c, "LSTM");
        w->use_gru |= !strcmp(c, "GRU");
        w->use_last |= !strcmp(c, "LastStep");
        w->use_tied |= m->has_borrow;
    }
}

static void write_build(pyw *w)
{
    const program *p = w->p;
    W(w, "%s", "");
    W(w, "%s", "");
    W(w, "def build(seed=None, inits=None):");
    W(w, "    \"\"\"The network, constructed and initialized as nngen's %s_init does.\"\"\"",
      p->name);
    for (int i = 0; i < p->ncustom; i++)
        W(w, "    _custom(inits, %s)", pystr(p->custom[i]));
    W(w, "    if seed is not None:");
    W(w, "        torch.manual_seed(seed)");
    W(w, "    with torch.no_grad():");
    if (p->nshared)
        W(w, "        # shared modules first, in declaration order");
    for (int i = 0; i < p->nshared; i++)
        construct(w, p->shared[i]);
    if (p->nshared)
        W(w, "        # the model");
    construct(w, p->root);
    if (w->step < p->nsteps)
        W(w, "        # the top-level init:");
    for (; w->step < p->nsteps; w->step++) {
        if (!w->drawn[p->steps[w->step].tensor])
            plan_mismatch(__LINE__, w->step);
        write_step(w, &p->steps[w->step]);
    }
    W(w, "    return net");
}

static void write_train(pyw *w)
{
    const train_cfg *t = &w->p->train;
    W(w, "%s", "");
    W(w, "%s", "");
    if (t->loss == LOSS_NONE) {
        W(w, "loss_fn = None");
        W(w, "make_optimizer = None");
        W(w, "train_step = None");
        return;
    }
    if (t->loss == LOSS_CROSS_ENTROPY && w->p->output.ndim > 2) {
        /* SPEC 1.5: the classes are the last dimension, every position a row */
        W(w, "class SeqCrossEntropyLoss(nn.CrossEntropyLoss):");
        W(w, "    \"\"\"cross_entropy on an output [N, ..., V]: the classes are the last");
        W(w, "    dimension, CrossEntropyLoss()(out.reshape(-1, V), target.reshape(-1)).\"\"\"");
        W(w, "%s", "");
        W(w, "    def forward(self, input, target):");
        W(w, "        return super().forward(input.reshape(-1, input.shape[-1]), "
             "target.reshape(-1))");
        W(w, "%s", "");
        W(w, "%s", "");
    }
    W(w, "def loss_fn():");
    if (t->loss == LOSS_CROSS_ENTROPY && w->p->output.ndim > 2) {
        W(w, "    return SeqCrossEntropyLoss()");
    } else {
        W(w, "    return %s", t->loss == LOSS_MSE ? "nn.MSELoss()" : "nn.CrossEntropyLoss()");
    }
    W(w, "%s", "");
    W(w, "%s", "");
    W(w, "def make_optimizer(params):");
    if (t->opt == OPT_SGD)
        W(w, "    return torch.optim.SGD(params, lr=%s, momentum=%s, dampening=%s, "
             "weight_decay=%s, nesterov=%s)", pyfloat(t->lr), pyfloat(t->momentum),
          pyfloat(t->dampening), pyfloat(t->weight_decay), t->nesterov ? "True" : "False");
    else
        W(w, "    return torch.optim.Adam(params, lr=%s, betas=(%s, %s), eps=%s, "
             "weight_decay=%s, amsgrad=%s)", pyfloat(t->lr), pyfloat(t->beta1),
          pyfloat(t->beta2), pyfloat(t->eps), pyfloat(t->weight_decay),
          t->amsgrad ? "True" : "False");
    W(w, "%s", "");
    W(w, "%s", "");
    W(w, "def train_step(net, optimizer, x, target):");
    W(w, "    \"\"\"target: %s.\"\"\"", t->loss == LOSS_MSE
                                            ? "float32, OUTPUT_SHAPE"
                                            : w->p->output.ndim > 2
                                                  ? "int64 class labels of every position, "
                                                    "OUTPUT_SHAPE without its last dimension"
                                                  : "int64 class labels, shape (BATCH,)");
    W(w, "    optimizer.zero_grad()");
    W(w, "    loss = loss_fn()(net(x), target)");
    W(w, "    loss.backward()");
    W(w, "    optimizer.step()");
    W(w, "    return loss.item()");
}

/* save_safetensors / load_safetensors: nn_save's format (runtime/safetensors.c)
 * in Python, with the standard library, numpy and torch. */
static void write_weights(pyw *w)
{
    static const char *const st[] = {
        "_ST_DTYPES = {'F32': ('<f4', torch.float32), 'I64': ('<i8', torch.int64),",
        "              'I32': ('<i4', torch.int32)}",
        "# safetensors' dtypes in the order of its Dtype enum (\"increasing",
        "# alignment\"): a file's entries are sorted by it, larger first, then by name.",
        "_ST_RANK = {'BOOL': 0, 'U8': 1, 'I8': 2, 'F8_E5M2': 3, 'F8_E4M3': 4, 'I16': 5, 'U16': 6,",
        "            'F16': 7, 'BF16': 8, 'I32': 9, 'U32': 10, 'F32': 11, 'F64': 12, 'I64': 13,",
        "            'U64': 14}",
        "_ST_MAX_HEADER = 100000000",
        "_ST_FIX = ('write safetensors from torch with save_safetensors(model, PATH) of this module, '",
        "           'or convert a torch.save file with nngen\\'s tools/nngen_safetensors.py: '",
        "           'python3 nngen_safetensors.py convert FILE OUT.safetensors')",
        "",
        "IncompatibleKeys = collections.namedtuple('IncompatibleKeys', ['missing_keys',",
        "                                                               'unexpected_keys'])",
        "",
        "",
        "def _st_json_str(s):",
        "    \"\"\"s as a JSON string, escaped as nn_save escapes it.\"\"\"",
        "    out = ['\"']",
        "    for c in s:",
        "        if c == '\"' or c == '\\\\':",
        "            out.append('\\\\' + c)",
        "        elif ord(c) < 0x20:",
        "            out.append('\\\\u%04x' % ord(c))",
        "        else:",
        "            out.append(c)",
        "    out.append('\"')",
        "    return ''.join(out)",
        "",
        "",
        "def _st_dims(shape):",
        "    return '[%s]' % ', '.join(str(d) for d in shape)",
        "",
        "",
        "def _st_close(name, names):",
        "    near = difflib.get_close_matches(name, names, 1)",
        "    return ' (did you mean %r?)' % near[0] if near else ''",
        "",
        "",
        "def _st_state(model, what):",
        "    \"\"\"model.state_dict(), whose keys must be the spec's.\"\"\"",
        "    state = model.state_dict()",
        "    want = [k for k, _, _ in TENSORS] + list(ALIASES)",
        "    wanted = set(want)",
        "    missing = [k for k in want if k not in state]",
        "    unexpected = [k for k in state if k not in wanted]",
        "    if missing or unexpected:",
        "        raise ValueError('%s: the model is not the network of %s: its state_dict %s%s%s' % (",
        "            what, NAME, 'lacks %s' % ', '.join(repr(k) for k in missing) if missing else '',",
        "            ' and ' if missing and unexpected else '',",
        "            'has unknown keys %s' % ', '.join(repr(k) for k in unexpected)",
        "            if unexpected else ''))",
        "    return state",
        "",
        "",
        "def _st_raw(t):",
        "    return t.detach().cpu().contiguous().numpy().tobytes()",
        "",
        "",
        "def _st_bytes(t, dtype):",
        "    return t.detach().cpu().contiguous().numpy().astype(_ST_DTYPES[dtype][0],",
        "                                                        copy=False).tobytes()",
        "",
        "",
        "def safetensors_bytes(model):",
        "    \"\"\"The bytes nngen's nn_save writes for the values of model (this",
        "    module's network): every tensor of TENSORS once, under its canonical",
        "    name, in its dtype; the header's entries by dtype (I64 first) and then",
        "    by name, padded with spaces to a multiple of 8, no __metadata__; the",
        "    data little-endian, in the same order.\"\"\"",
        "    what = 'save_safetensors'",
        "    state = _st_state(model, what)",
        "    for alias, canon in sorted(ALIASES.items()):",
        "        a, c = state[alias], state[canon]",
        "        if a.data_ptr() != c.data_ptr() and (a.dtype != c.dtype or a.shape != c.shape or",
        "                                             _st_raw(a) != _st_raw(c)):",
        "            raise ValueError('%s: %r is tied to %r in the spec but holds other values (the '",
        "                             'tie was broken): tie them again (%s = %s)' % (",
        "                                 what, alias, canon, alias, canon))",
        "    entries = []",
        "    for name, dtype, shape in TENSORS:",
        "        t = state[name]",
        "        if t.dtype != _ST_DTYPES[dtype][1] or tuple(t.shape) != shape:",
        "            raise ValueError('%s: tensor %r is %s %s but the spec says %s %s' % (",
        "                what, name, t.dtype, _st_dims(t.shape), _ST_DTYPES[dtype][1],",
        "                _st_dims(shape)))",
        "        entries.append((-_ST_RANK[dtype], name.encode('utf-8'), name, dtype, shape,",
        "                        _st_bytes(t, dtype)))",
        "    entries.sort(key=lambda e: (e[0], e[1]))",
        "    parts = []",
        "    offset = 0",
        "    for _, _, name, dtype, shape, data in entries:",
        "        parts.append('%s:{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%d,%d]}' % (",
        "            _st_json_str(name), dtype, ','.join(str(d) for d in shape), offset,",
        "            offset + len(data)))",
        "        offset += len(data)",
        "    head = ('{' + ','.join(parts) + '}').encode('utf-8')",
        "    head += b' ' * (-len(head) % 8)",
        "    return struct.pack('<Q', len(head)) + head + b''.join(e[5] for e in entries)",
        "",
        "",
        "def save_safetensors(model, path):",
        "    \"\"\"Writes model's parameters and buffers to path as the safetensors file",
        "    nngen's nn_save writes for the same values (byte for byte), for nn_load",
        "    or nn_load_mem in C.  Written to a temporary file beside path and",
        "    renamed, so a failure leaves no partial file.\"\"\"",
        "    data = safetensors_bytes(model)",
        "    d = os.path.dirname(os.path.abspath(path))",
        "    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', dir=d)",
        "    try:",
        "        with os.fdopen(fd, 'wb') as f:",
        "            f.write(data)",
        "        os.replace(tmp, path)",
        "    except BaseException:",
        "        if os.path.exists(tmp):",
        "            os.unlink(tmp)",
        "        raise",
        "",
        "",
        "def _st_not_safetensors(data, where):",
        "    \"\"\"The message for bytes that are a torch.save file or a pickle.\"\"\"",
        "    if data[:4] == b'PK\\x03\\x04':",
        "        return '%s: this is a torch.save file (a zip archive), not safetensors: %s' % (",
        "            where, _ST_FIX)",
        "    if len(data) >= 3 and data[0] == 0x80 and 2 <= data[1] <= 5 and data[2] != 0:",
        "        what = 'a torch.save file' if data[2] in (0x8a, 0x95) else 'a Python pickle'",
        "        return '%s: this is %s (pickle, protocol %d), not safetensors: %s' % (",
        "            where, what, data[1], _ST_FIX)",
        "    return None",
        "",
        "",
        "def _st_parse(data, where):",
        "    \"\"\"{name: (dtype, shape, begin, end)} in header order and the offset of",
        "    the data section, after every check nn_load makes of the layout.\"\"\"",
        "    if len(data) == 0:",
        "        raise ValueError('%s: file is empty (not a safetensors file)' % where)",
        "    if len(data) < 8:",
        "        raise ValueError('%s: truncated: %d bytes is too short for the 8-byte header '",
        "                         'length' % (where, len(data)))",
        "    (n,) = struct.unpack('<Q', data[:8])",
        "    if not (2 <= n <= min(_ST_MAX_HEADER, len(data) - 8) and",
        "            data[8:8 + n].lstrip(b' \\t\\r\\n')[:1] == b'{'):",
        "        other = _st_not_safetensors(data, where)",
        "        if other:",
        "            raise ValueError(other)",
        "        if n > _ST_MAX_HEADER:",
        "            raise ValueError('%s: header length %d is absurd (more than %d bytes)' % (",
        "                where, n, _ST_MAX_HEADER))",
        "        if n > len(data) - 8:",
        "            raise ValueError('%s: truncated: header length %d is longer than the %d bytes '",
        "                             'after it' % (where, n, len(data) - 8))",
        "",
        "    def pairs(items):",
        "        d = {}",
        "        for k, v in items:",
        "            if k in d:",
        "                raise ValueError('%s: duplicate key %r in the header' % (where, k))",
        "            d[k] = v",
        "        return d",
        "",
        "    try:",
        "        header = json.loads(data[8:8 + n].decode('utf-8'), object_pairs_hook=pairs)",
        "    except (UnicodeDecodeError, json.JSONDecodeError) as e:",
        "        raise ValueError('%s: invalid header: %s' % (where, e)) from None",
        "    if not isinstance(header, dict):",
        "        raise ValueError('%s: the header must be a JSON object' % where)",
        "    meta = header.pop('__metadata__', None)",
        "    if meta is not None and not (isinstance(meta, dict) and",
        "                                 all(isinstance(v, str) for v in meta.values())):",
        "        raise ValueError('%s: __metadata__ must be an object of strings' % where)",
        "    size = len(data) - 8 - n",
        "",
        "    def count(v):",
        "        return isinstance(v, int) and not isinstance(v, bool) and v >= 0",
        "",
        "    out = {}",
        "    for name, e in header.items():",
        "        if not isinstance(e, dict) or set(e) != {'dtype', 'shape', 'data_offsets'}:",
        "            raise ValueError('%s: tensor %r: expected exactly dtype, shape, data_offsets' % (",
        "                where, name))",
        "        dtype, shape, offs = e['dtype'], e['shape'], e['data_offsets']",
        "        if dtype not in _ST_RANK:",
        "            raise ValueError('%s: tensor %r: unknown dtype %r' % (where, name, dtype))",
        "        if not (isinstance(shape, list) and all(count(d) for d in shape)):",
        "            raise ValueError('%s: tensor %r: bad shape %r' % (where, name, shape))",
        "        if not (isinstance(offs, list) and len(offs) == 2 and all(count(o) for o in offs)",
        "                and offs[0] <= offs[1] <= size):",
        "            raise ValueError('%s: tensor %r: bad data_offsets %r (data section of %d bytes)'",
        "                             % (where, name, offs, size))",
        "        if dtype not in _ST_DTYPES:",
        "            raise ValueError('%s: tensor %r: dtype %s is not supported (F32, I64, I32)' % (",
        "                where, name, dtype))",
        "        numel = 1",
        "        for d in shape:",
        "            numel *= d",
        "        if numel * int(dtype[1:]) // 8 != offs[1] - offs[0]:",
        "            raise ValueError('%s: tensor %r: shape %s needs %d bytes but data_offsets hold %d'",
        "                             % (where, name, _st_dims(shape), numel * int(dtype[1:]) // 8,",
        "                                offs[1] - offs[0]))",
        "        out[name] = (dtype, tuple(shape), offs[0], offs[1])",
        "    pos = 0",
        "    for name, (_, _, b, e) in sorted(out.items(), key=lambda x: (x[1][2], x[1][3])):",
        "        if b != pos:",
        "            raise ValueError('%s: tensor %r: %s at byte %d of the data section' % (",
        "                where, name, 'overlap' if b < pos else 'gap', pos))",
        "        pos = e",
        "    if pos != size:",
        "        raise ValueError('%s: %d bytes of trailing data after the last tensor' % (",
        "            where, size - pos))",
        "    return out, 8 + n",
        "",
        "",
        "def load_safetensors(model, path, strict=True):",
        "    \"\"\"Loads a safetensors file (nngen's nn_save, or save_safetensors) into",
        "    model (this module's network), as nngen's nn_load does: with strict,",
        "    every canonical name of TENSORS present, no unknown name, every dtype and",
        "    shape the spec's (a ValueError names the first problem); an alias key of",
        "    a tied tensor is accepted when it holds the same data as its canonical",
        "    key.  strict=False allows missing and unknown names (returned), as",
        "    load_state_dict(strict=False) does; wrong shapes and dtypes are still",
        "    errors.  Nothing is changed unless everything is valid.  Tied tensors",
        "    get their values from their canonical key.  Returns IncompatibleKeys",
        "    (missing_keys, unexpected_keys), as load_state_dict does.\"\"\"",
        "    where = 'load_safetensors: %s' % path",
        "    with open(path, 'rb') as f:",
        "        data = f.read()",
        "    entries, base = _st_parse(data, where)",
        "    state = _st_state(model, 'load_safetensors')",
        "    canon = {k: (dtype, shape) for k, dtype, shape in TENSORS}",
        "    known = list(canon) + list(ALIASES)",
        "    unexpected = []",
        "    for name, (dtype, shape, _, _) in entries.items():",
        "        target = ALIASES.get(name, name)",
        "        if target not in canon:",
        "            if strict:",
        "                raise ValueError(\"%s: unknown tensor %r (not in the state dict of %s)%s; \"",
        "                                 \"its names: %s\" % (where, name, NAME, _st_close(name, known),",
        "                                                    ', '.join(repr(k) for k in known)))",
        "            unexpected.append(name)",
        "            continue",
        "        want_dtype, want_shape = canon[target]",
        "        if dtype != want_dtype:",
        "            raise ValueError(\"%s: tensor %r: dtype %s does not match the model's %s\" % (",
        "                where, name, dtype, want_dtype))",
        "        if shape != want_shape:",
        "            raise ValueError(\"%s: tensor %r: shape %s does not match the model's %s\" % (",
        "                where, name, _st_dims(shape), _st_dims(want_shape)))",
        "    source = {}",
        "    for name in canon:",
        "        if name in entries:",
        "            source[name] = name",
        "        else:",
        "            given = [a for a, c in sorted(ALIASES.items()) if c == name and a in entries]",
        "            if strict:",
        "                raise ValueError('%s: missing tensor %r (%s %s)%s' % (",
        "                    where, name, canon[name][0], _st_dims(canon[name][1]),",
        "                    \", which its alias %r stands for: write it under its canonical name\"",
        "                    % given[0] if given else ''))",
        "            if given:",
        "                source[name] = given[0]",
        "    for alias, name in sorted(ALIASES.items()):",
        "        if alias in entries and name in entries:",
        "            a, c = entries[alias], entries[name]",
        "            if data[base + a[2]:base + a[3]] != data[base + c[2]:base + c[3]]:",
        "                raise ValueError('%s: tensor %r is an alias of %r but holds different data' % (",
        "                    where, alias, name))",
        "    missing = [k for k in state if ALIASES.get(k, k) not in source]",
        "    with torch.no_grad():",
        "        for key, t in state.items():",
        "            name = ALIASES.get(key, key)",
        "            if name not in source:",
        "                continue",
        "            dtype, shape, b, e = entries[source[name]]",
        "            a = numpy.frombuffer(data, dtype=_ST_DTYPES[dtype][0],",
        "                                 count=(e - b) // (int(dtype[1:]) // 8), offset=base + b)",
        "            t.copy_(torch.from_numpy(a.astype(a.dtype.newbyteorder('='))).reshape(shape))",
        "    return IncompatibleKeys(missing, unexpected)",
    };
    W(w, "%s", "");
    W(w, "%s", "");
    write_lines(w, st, sizeof st / sizeof *st);
}

void emit_pytorch(FILE *f, const program *p)
{
    pyw w = {0};
    w.f = f;
    w.p = p;
    size_t nm = (size_t)p->nmodules + 1;
    w.var = xalloc(sizeof *w.var * nm);
    w.uses = xalloc(sizeof *w.uses * nm);
    w.built = xalloc(nm);
    w.drawn = xalloc((size_t)p->ntensors + 1);
    count_uses(&w);
    name_vars(&w);
    survey(&w);
    write_header(&w);
    write_helpers(&w);
    write_build(&w);
    write_train(&w);
    write_weights(&w);
    if (!p->ncustom) { /* else build() needs the caller's functions */
        W(&w, "%s", "");
        W(&w, "%s", "");
        W(&w, "if __name__ == '__main__':");
        W(&w, "    print(build(SEED))");
    }
}
