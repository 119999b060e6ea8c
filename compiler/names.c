/* names.c: the names phase.  Canonical paths (a shared module is named at
 * its first place in the pre-order walk), each layer's print text
 * (extra_repr) and tensors (its op's declare: parameters, then buffers),
 * the parameter list (named_parameters(): pre-order, each tensor once,
 * parameters before every buffer), the state dict (the same walk without
 * de-duplication, a module's buffers after its parameters), and frozen. */
#include <string.h>

#include "phases.h"

typedef struct decl {
    module *m;
    const char *local;
    int ndim;
    int64_t shape[NN_MAX_DIM];
    dtype dt;
    int is_buffer;
    int tied;                   /* a {tied: PATH} slot: no tensor of its own */
} decl;

/* A tie to resolve once every layer is declared (SPEC 1.2.5). */
typedef struct tie {
    module *m;
    int slot;                   /* the parameter slot, or -1: transposed (borrow) */
    const char *path;           /* the state_dict key it names */
    loc loc;
    int64_t want[2];            /* the shape PATH's tensor must have */
    int64_t out, in;            /* the layer's weight as [out, in], for messages */
} tie;

typedef struct namer {
    program *p;
    int cap_tensors, cap_state;
    decl *decls;
    int ndecls, cap_decls;
    tie *ties;
    int nties, cap_ties;
} namer;

static namer *cur;              /* the namer declare_tensor() adds to */

void declare_tensor(module *m, const char *local, int ndim, const int64_t *shape, dtype dt,
                    int is_buffer)
{
    namer *nm = cur;
    if (!nm || ndim < 0 || ndim > NN_MAX_DIM)
        unreachable();
    if (nm->ndecls == nm->cap_decls) {
        int nc = nm->cap_decls ? nm->cap_decls * 2 : 16;
        nm->decls = xrealloc_array(nm->decls, (size_t)nm->cap_decls, (size_t)nc,
                                   sizeof *nm->decls);
        nm->cap_decls = nc;
    }
    decl *d = &nm->decls[nm->ndecls++];
    d->m = m;
    d->local = local;
    d->ndim = ndim;
    if (ndim > 0) /* a 0-d tensor (num_batches_tracked) may come with no shape */
        memcpy(d->shape, shape, sizeof *shape * (size_t)ndim);
    d->dt = dt;
    d->is_buffer = is_buffer;
    d->tied = 0;
    if (is_buffer)
        m->nbuffers++;
    else
        m->nparams++;
}

void declare_tied(module *m, const char *local, int k, const int64_t *shape)
{
    namer *nm = cur;
    const argval *a = &m->args[k];
    if (!nm)
        unreachable();
    if (nm->nties == nm->cap_ties) {
        int nc = nm->cap_ties ? nm->cap_ties * 2 : 8;
        nm->ties = xrealloc_array(nm->ties, (size_t)nm->cap_ties, (size_t)nc, sizeof *nm->ties);
        nm->cap_ties = nc;
    }
    tie *t = &nm->ties[nm->nties++];
    t->m = m;
    t->path = a->text;
    t->loc = a->loc;
    t->out = shape[0];
    t->in = shape[1];
    m->tied_loc = a->loc;
    if (a->i) { /* transposed: the layer computes with PATH's [in, out] tensor */
        t->slot = -1;
        t->want[0] = shape[1];
        t->want[1] = shape[0];
        return;
    }
    t->slot = m->nparams;
    t->want[0] = shape[0];
    t->want[1] = shape[1];
    declare_tensor(m, local, 2, shape, DT_F32, 0);
    nm->decls[nm->ndecls - 1].tied = 1;
}

static void add_tensor(namer *nm, const decl *d, int slot)
{
    program *p = nm->p;
    module *m = d->m;
    if (d->tied) {
        if (!m->tens_tied)
            m->tens_tied = xalloc((size_t)(m->nparams + m->nbuffers));
        m->tens_tied[slot] = 1;
        m->tens_local[slot] = d->local;
        m->tens_ids[slot] = -1; /* resolve_ties */
        return;
    }
    if (p->ntensors == nm->cap_tensors) {
        int nc = nm->cap_tensors ? nm->cap_tensors * 2 : 16;
        p->tensors = xrealloc_array(p->tensors, (size_t)nm->cap_tensors, (size_t)nc,
                                    sizeof *p->tensors);
        nm->cap_tensors = nc;
    }
    tensor *t = &p->tensors[p->ntensors];
    t->name = join(m->path, d->local);
    t->local = d->local;
    t->owner = m;
    t->ndim = d->ndim;
    t->numel = 1;
    for (int i = 0; i < d->ndim; i++) {
        t->shape[i] = d->shape[i];
        t->numel *= d->shape[i];
    }
    if (t->numel > MAX_TENSOR_ELEMS)
        error_at(m->loc, "%s '%s' has %lld elements, more than nngen's limit of %lld",
                 d->is_buffer ? "buffer" : "parameter", t->name, (long long)t->numel,
                 MAX_TENSOR_ELEMS);
    t->dtype = d->dt;
    t->is_buffer = d->is_buffer;
    t->requires_grad = !d->is_buffer;
    t->offset = p->param_floats;
    /* keep every tensor 64-byte aligned inside its block; an int64 element
       takes two floats' room */
    int64_t floats = t->numel * (d->dt == DT_I64 ? 2 : 1);
    p->param_floats += (floats + 15) / 16 * 16;
    m->tens_local[slot] = d->local;
    m->tens_ids[slot] = p->ntensors++;
}

static void name_modules(namer *nm, module *m, const char *path)
{
    if (m->path)
        return; /* a shared module: already named at its first place */
    m->path = path;
    if (m->op) {
        m->extra = (char *)op_extra_repr(m);
        if (m->op->declare)
            m->op->declare(m);
        int n = m->nparams + m->nbuffers;
        m->tens_local = xalloc(sizeof *m->tens_local * (size_t)(n ? n : 1));
        m->tens_ids = xalloc(sizeof *m->tens_ids * (size_t)(n ? n : 1));
    } else {
        m->extra = "";
    }
    for (int i = 0; i < m->nchildren; i++)
        name_modules(nm, m->children[i].m, join(path, m->children[i].name));
}

static void name_state(namer *nm, const module *m, const char *path)
{
    program *p = nm->p;
    for (int i = 0; i < m->nparams + m->nbuffers; i++) {
        if (p->nstate == nm->cap_state) {
            int nc = nm->cap_state ? nm->cap_state * 2 : 16;
            p->state = xrealloc_array(p->state, (size_t)nm->cap_state, (size_t)nc,
                                      sizeof *p->state);
            nm->cap_state = nc;
        }
        p->state[p->nstate].key = join(path, m->tens_local[i]);
        p->state[p->nstate++].tensor = m->tens_ids[i];
    }
    for (int i = 0; i < m->nchildren; i++)
        name_state(nm, m->children[i].m, join(path, m->children[i].name));
}

/* PyTorch's construction order of the modules (plan.c: shared modules in
   declaration order, then the model; children before their parent). */
static void construction_order(const module *m, int *next, int *ord)
{
    if (ord[m->id])
        return;
    for (int i = 0; i < m->nchildren; i++)
        construction_order(m->children[i].m, next, ord);
    ord[m->id] = ++*next;
}

/* Every state_dict key that names a resolved tensor, for suggestions. */
static void state_keys(const module *m, const char *path, const char ***keys, int *n, int *cap)
{
    for (int i = 0; i < m->nparams + m->nbuffers; i++) {
        if (m->tens_ids[i] < 0)
            continue;
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 16;
            *keys = xrealloc_array(*keys, (size_t)*cap, (size_t)nc, sizeof **keys);
            *cap = nc;
        }
        (*keys)[(*n)++] = join(path, m->tens_local[i]);
    }
    for (int i = 0; i < m->nchildren && *n < 100000; i++)
        state_keys(m->children[i].m, join(path, m->children[i].name), keys, n, cap);
}

static NORETURN void no_such_key(const program *p, const tie *t)
{
    const char **keys = NULL;
    int n = 0, cap = 0;
    state_keys(p->root, "", &keys, &n, &cap);
    error_at(t->loc, "tied weight '%s' is not a state_dict key of the model%s; a tie names a "
                     "weight declared by another layer, e.g. 'encoder.weight'",
             t->path, did_you_mean(t->path, keys, n));
}

static const char *shape2(const int64_t *d)
{
    return xfmt("[%lld, %lld]", (long long)d[0], (long long)d[1]);
}

/* The tensors the {tied: ...} arguments name, in construction order: the
   tied-to layer must come earlier, so a tie to a tie resolves to the first
   weight and no cycle can form. */
static void resolve_ties(namer *nm)
{
    program *p = nm->p;
    if (!nm->nties)
        return;
    int *ord = xalloc(sizeof *ord * (size_t)(p->nmodules + 1)), next = 0;
    for (int i = 0; i < p->nshared; i++)
        construction_order(p->shared[i], &next, ord);
    construction_order(p->root, &next, ord);
    /* insertion sort by construction order (ties are few) */
    for (int i = 1; i < nm->nties; i++)
        for (int j = i; j > 0 && ord[nm->ties[j - 1].m->id] > ord[nm->ties[j].m->id]; j--) {
            tie t = nm->ties[j];
            nm->ties[j] = nm->ties[j - 1];
            nm->ties[j - 1] = t;
        }
    for (int i = 0; i < nm->nties; i++) {
        const tie *t = &nm->ties[i];
        /* the module at the path's prefix, through the children's names */
        module *a = p->root;
        char *path = xstrdup(t->path);
        char *local = strrchr(path, '.');
        if (local) {
            *local++ = 0;
            for (char *tok = path, *dot; tok && a; tok = dot) {
                dot = strchr(tok, '.');
                if (dot)
                    *dot++ = 0;
                module *c = NULL;
                for (int k = 0; k < a->nchildren && !c; k++)
                    if (!strcmp(a->children[k].name, tok))
                        c = a->children[k].m;
                a = c;
            }
        } else {
            local = path;
        }
        int slot = -1;
        for (int k = 0; a && k < a->nparams + a->nbuffers && slot < 0; k++)
            if (!strcmp(a->tens_local[k], local))
                slot = k;
        if (slot < 0)
            no_such_key(p, t);
        const char *what = a->path[0] ? xfmt("%s '%s'", a->op->name, a->path)
                                      : xfmt("%s (the model)", a->op->name);
        if (a == t->m)
            error_at(t->loc, "tied weight '%s' is this layer's own weight: tie it to another "
                             "layer's weight", t->path);
        if (ord[a->id] > ord[t->m->id] || a->tens_ids[slot] < 0)
            error_at(t->loc, "tied weight '%s' belongs to %s, which is constructed after this "
                             "layer; the tied-to layer must come earlier in construction order "
                             "(tie the later layer to the earlier one's weight)", t->path, what);
        const tensor *w = &p->tensors[a->tens_ids[slot]];
        if (w->is_buffer || strcmp(local, "weight") != 0)
            error_at(t->loc, "tied weight '%s' is the %s '%s' of %s, not a weight: a tie names "
                             "a layer's 'weight' (e.g. '%s')", t->path,
                     w->is_buffer ? "buffer" : "parameter", local, what,
                     join(a->path, "weight"));
        if (w->ndim != 2 || w->shape[0] != t->want[0] || w->shape[1] != t->want[1]) {
            const char *have = w->ndim == 2 ? shape2(w->shape) : "not 2-d";
            int64_t wt[2] = {t->out, t->in};
            const char *hint = "";
            if (w->ndim == 2 && t->slot >= 0 && w->shape[0] == t->in && w->shape[1] == t->out)
                hint = xfmt("; it fits transposed: write {tied: %s, transpose: true}", t->path);
            else if (w->ndim == 2 && t->slot < 0 && w->shape[0] == t->out &&
                     w->shape[1] == t->in)
                hint = xfmt("; it fits as it is: write {tied: %s} without transpose", t->path);
            if (t->slot >= 0)
                error_at(t->loc, "shape mismatch: tied weight '%s' is %s, but this layer's "
                                 "weight is %s ([out, in])%s", t->path, have, shape2(wt), hint);
            error_at(t->loc, "shape mismatch: tied weight '%s' is %s, but used transposed by "
                             "this layer (in %lld, out %lld) it must be %s ([in, out])%s",
                     t->path, have, (long long)t->in, (long long)t->out, shape2(t->want), hint);
        }
        if (t->slot >= 0) {
            t->m->tens_ids[t->slot] = a->tens_ids[slot];
        } else {
            t->m->has_borrow = 1;
            t->m->borrow = a->tens_ids[slot];
        }
    }
}

/* The tensors in the order named_parameters() (then the buffers) meets
   them, walking the modules as the state dict does: a tensor is named at
   its first place.  A tie can make that place another module's than the
   declaring one (a layer tied to the weight of a shared module used later
   in the walk), so after the ties the tensors are renumbered. */
static void first_places(const module *m, const char *path, int pass, int *order, int *n,
                         const char **name, char *seen)
{
    for (int i = 0; i < m->nparams + m->nbuffers; i++) {
        int t = m->tens_ids[i];
        if ((i >= m->nparams) != pass || seen[t])
            continue;
        seen[t] = 1;
        order[(*n)++] = t;
        name[t] = join(path, m->tens_local[i]);
    }
    for (int i = 0; i < m->nchildren; i++)
        first_places(m->children[i].m, join(path, m->children[i].name), pass, order, n, name,
                     seen);
}

static void renumber(program *p)
{
    int nt = p->ntensors;
    int *order = xalloc(sizeof *order * (size_t)(nt + 1)), n = 0;
    const char **name = xalloc(sizeof *name * (size_t)(nt + 1));
    char *seen = xalloc((size_t)nt + 1);
    for (int pass = 0; pass < 2; pass++)
        first_places(p->root, "", pass, order, &n, name, seen);
    /* a tensor only a transposed tie reaches is its owner's: still in the walk */
    int same = n == nt;
    for (int i = 0; same && i < nt; i++)
        same = order[i] == i && !strcmp(name[i], p->tensors[i].name);
    if (same)
        return;
    if (n != nt)
        unreachable();
    int *newid = xalloc(sizeof *newid * (size_t)(nt + 1));
    tensor *t2 = xalloc(sizeof *t2 * (size_t)(nt + 1));
    int64_t off = 0;
    for (int i = 0; i < nt; i++) {
        newid[order[i]] = i;
        t2[i] = p->tensors[order[i]];
        t2[i].name = name[order[i]];
        t2[i].offset = off;
        off += (t2[i].numel * (t2[i].dtype == DT_I64 ? 2 : 1) + 15) / 16 * 16;
    }
    p->tensors = t2;
    for (int i = 0; i < p->nmodules; i++) {
        module *m = p->modules[i];
        for (int k = 0; k < m->nparams + m->nbuffers; k++)
            m->tens_ids[k] = newid[m->tens_ids[k]];
        if (m->has_borrow)
            m->borrow = newid[m->borrow];
    }
}

static void freeze(program *p, const module *m, int frozen)
{
    frozen |= m->frozen;
    if (frozen)
        for (int i = 0; i < m->nparams; i++)
            p->tensors[m->tens_ids[i]].requires_grad = 0;
    for (int i = 0; i < m->nchildren; i++)
        freeze(p, m->children[i].m, frozen);
}

void name_program(program *p)
{
    namer nm = {0};
    nm.p = p;
    cur = &nm;
    name_modules(&nm, p->root, "");
    cur = NULL;
    /* parameters first, in the walk's order, then the buffers; each
       module's slots likewise */
    int *next = xalloc(sizeof *next * (size_t)(p->nmodules + 1));
    for (int pass = 0; pass < 2; pass++) {
        memset(next, 0, sizeof *next * (size_t)(p->nmodules + 1));
        for (int i = 0; i < nm.ndecls; i++) {
            const decl *d = &nm.decls[i];
            if (d->is_buffer != pass)
                continue;
            int slot = pass ? d->m->nparams + next[d->m->id] : next[d->m->id];
            next[d->m->id]++;
            add_tensor(&nm, d, slot);
        }
    }
    resolve_ties(&nm);
    if (nm.nties)
        renumber(p);
    for (int i = 0; i < p->ntensors; i++)
        if (!p->tensors[i].is_buffer)
            p->nparam_tensors = i + 1;
    p->grad_floats = p->nparam_tensors ? p->tensors[p->nparam_tensors - 1].offset +
                     (p->tensors[p->nparam_tensors - 1].numel + 15) / 16 * 16 : 0;
    name_state(&nm, p->root, "");
    freeze(p, p->root, 0);
}
