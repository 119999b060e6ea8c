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
} decl;

typedef struct namer {
    program *p;
    int cap_tensors, cap_state;
    decl *decls;
    int ndecls, cap_decls;
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
    if (is_buffer)
        m->nbuffers++;
    else
        m->nparams++;
}

static void add_tensor(namer *nm, const decl *d, int slot)
{
    program *p = nm->p;
    module *m = d->m;
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
    for (int i = 0; i < p->ntensors; i++)
        if (!p->tensors[i].is_buffer)
            p->nparam_tensors = i + 1;
    p->grad_floats = p->nparam_tensors ? p->tensors[p->nparam_tensors - 1].offset +
                     (p->tensors[p->nparam_tensors - 1].numel + 15) / 16 * 16 : 0;
    name_state(&nm, p->root, "");
    freeze(p, p->root, 0);
}
