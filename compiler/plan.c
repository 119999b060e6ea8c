/* plan.c: the init plan phase (§1.4).  The sequence of initializer calls
 * in PyTorch's construction order: the shared modules in declaration order,
 * then the model; a module constructs its children, then draws its own
 * defaults, then applies its own init: rules (as Module.apply: children
 * before parent); the top-level rules last.  Emitters replay the plan. */
#include <stdlib.h>
#include <string.h>

#include "phases.h"


typedef struct planner {
    program *p;
    int cap;
    int matched;
    int64_t visits;             /* modules visited by rules: bounded by MAX_INIT_VISITS */
    /* per module id, made when first needed: */
    const char **dup;           /* dup[id][i]: child i repeats an earlier child (or NULL) */
    char *dup_done;
    int **kidix;                /* hash of child names: index + 1, cap 2^k >= 2n */
    size_t *kidcap;
} planner;

static void add_step(planner *pl, module *m, int tid, const initializer *in)
{
    program *p = pl->p;
    const tensor *t = &p->tensors[tid];
    if ((in->kind == I_XAVIER_UNIFORM || in->kind == I_XAVIER_NORMAL ||
         in->kind == I_KAIMING_UNIFORM || in->kind == I_KAIMING_NORMAL) &&
        t->ndim < 2)
        error_at(in->loc, "%s needs a tensor with at least 2 dimensions to compute fan in and "
                          "fan out, but '%s' has shape [%lld]",
                 init_names[in->kind], t->name, (long long)t->shape[0]);
    if (p->nsteps >= MAX_INIT_STEPS)
        error_at(in->loc, "the init plan has more than %d steps (nngen's limit): narrow the "
                          "init rules with 'at:' or 'layer:'", MAX_INIT_STEPS);
    if (p->nsteps == pl->cap) {
        int nc = pl->cap ? pl->cap * 2 : 16;
        p->steps = xrealloc_array(p->steps, (size_t)pl->cap, (size_t)nc, sizeof *p->steps);
        pl->cap = nc;
    }
    init_step *s = &p->steps[p->nsteps++];
    s->discard = 0;
    s->tensor = tid;
    s->init = in;
    s->m = m;
}

static init_step *p_last_step(planner *pl)
{
    return &pl->p->steps[pl->p->nsteps - 1];
}

static const initializer default_init = {I_DEFAULT, {NULL, 0, 0}, 0, 0, 0, 0, 0, 0, NULL, 0,
                                         NULL, 0, 0, 0};

/* A rule that would initialize a weight this layer borrows ({tied: ...}). */
static NORETURN void borrowed_init(planner *pl, const module *m, const rule_param *rp)
{
    const char *where = m->path[0] ? xfmt("%s '%s'", module_class(m), m->path)
                                   : xfmt("%s (the model)", module_class(m));
    const char *tied = NULL;
    for (int k = 0; m->op && k < m->op->nargs && !tied; k++)
        if (m->op->args[k].type == ARG_TIED && m->args[k].given)
            tied = m->args[k].text;
    (void)pl;
    error_at(rp->loc, "this init rule initializes the weight of %s, which is tied to '%s' (line "
                      "%d): initialize it where it is declared, in an init rule of that layer",
             where, tied ? tied : "?", m->tied_loc.line);
}

/* Module.apply order: children first (each child object once per parent),
 * then the module itself. */
static void apply_rule(planner *pl, module *m, const rule *r)
{
    if (++pl->visits > MAX_INIT_VISITS)
        error_at(r->loc, "the init rules visit more than %d modules in all (nngen's limit): "
                         "narrow them with 'at:' or use fewer rules", MAX_INIT_VISITS);
    if (!pl->dup_done[m->id]) {
        /* only a shared module can be a child twice: mark its later uses */
        pl->dup_done[m->id] = 1;
        char *d = NULL;
        for (int i = 0; i < m->nchildren; i++)
            if (m->children[i].m->shared_name)
                for (int j = 0; j < i; j++)
                    if (m->children[j].m == m->children[i].m) {
                        if (!d)
                            d = xalloc((size_t)m->nchildren);
                        d[i] = 1;
                        break;
                    }
        pl->dup[m->id] = d;
    }
    const char *dup = pl->dup[m->id];
    for (int i = 0; i < m->nchildren; i++)
        if (!dup || !dup[i])
            apply_rule(pl, m->children[i].m, r);
    /* a transposed tie makes the layer a TiedLinear: no `layer: linear` */
    if (!m->op || (r->layer && (m->op != r->layer || m->has_borrow)))
        return;
    for (int k = 0; k < r->nparams; k++) {
        const char *pn = r->params[k].name;
        if (m->has_borrow && !strcmp(pn, "weight"))
            borrowed_init(pl, m, &r->params[k]);
        for (int i = 0; i < m->nparams; i++)
            if (!strcmp(m->tens_local[i], pn)) {
                if (m->tens_tied && m->tens_tied[i])
                    borrowed_init(pl, m, &r->params[k]);
                add_step(pl, m, m->tens_ids[i], r->params[k].init);
                pl->matched++;
            }
    }
}

/* The child of m named name, or NULL. */
static module *find_child(planner *pl, module *m, const char *name)
{
    if (m->nchildren <= 8) {
        for (int i = 0; i < m->nchildren; i++)
            if (!strcmp(m->children[i].name, name))
                return m->children[i].m;
        return NULL;
    }
    if (!pl->kidix[m->id]) {
        size_t cap = 16;
        while (cap < (size_t)m->nchildren * 2)
            cap *= 2;
        int *ix = xalloc(sizeof *ix * cap);
        for (int i = 0; i < m->nchildren; i++) {
            size_t h = hash_str(m->children[i].name) & (cap - 1);
            while (ix[h])
                h = (h + 1) & (cap - 1);
            ix[h] = i + 1;
        }
        pl->kidix[m->id] = ix;
        pl->kidcap[m->id] = cap;
    }
    const int *ix = pl->kidix[m->id];
    size_t cap = pl->kidcap[m->id];
    for (size_t h = hash_str(name) & (cap - 1); ix[h]; h = (h + 1) & (cap - 1))
        if (!strcmp(m->children[ix[h] - 1].name, name))
            return m->children[ix[h] - 1].m;
    return NULL;
}

static module *resolve_at(planner *pl, module *m, const rule *r)
{
    if (!r->at || !r->at[0])
        return m;
    char *path = xstrdup(r->at);
    char *save = path;
    for (char *tok = path; tok; tok = save) {
        char *dot = strchr(tok, '.');
        if (dot) {
            *dot = 0;
            save = dot + 1;
        } else {
            save = NULL;
        }
        module *next = find_child(pl, m, tok);
        if (!next) {
            const char **names = xalloc(sizeof *names * (size_t)(m->nchildren + 1));
            strbuf b = {0};
            for (int i = 0; i < m->nchildren; i++) {
                names[i] = m->children[i].name;
                if (i < 20)
                    sb_printf(&b, "%s'%s'", i ? ", " : "", names[i]);
            }
            if (m->nchildren > 20)
                sb_printf(&b, ", ... (%d in all)", m->nchildren);
            const char *have = m->nchildren ? xfmt("its children are %s", b.s)
                                            : "it has no children";
            free(b.s);
            /* no "did you mean '0'" for a position */
            int numeric = tok[0] && strspn(tok, "0123456789") == strlen(tok);
            error_at(r->at_loc, "init rule 'at: \"%s\"': no child '%s' in module '%s' (%s)%s",
                     r->at, tok, m->path[0] ? m->path : "(root)", have,
                     numeric ? "" : did_you_mean(tok, names, m->nchildren));
        }
        m = next;
    }
    return m;
}

static void run_rules(planner *pl, module *m, const rule *rules, int n)
{
    for (int i = 0; i < n; i++) {
        const rule *r = &rules[i];
        module *target = resolve_at(pl, m, r);
        pl->matched = 0;
        apply_rule(pl, target, r);
        if (!pl->matched) {
            strbuf b = {0};
            for (int k = 0; k < r->nparams; k++)
                sb_printf(&b, "%s'%s'", k ? ", " : "", r->params[k].name);
            char *what = xstrdup(b.s);
            free(b.s);
            error_at(r->loc, "this init rule matches no parameter: no %s%s%s under module "
                             "'%s'", r->layer ? r->layer->name : "layer",
                     r->layer ? " layer with " : " with ", what,
                     target->path[0] ? target->path : "(root)");
        }
    }
}

/* Construct as PyTorch would: children in order, a leaf draws its
 * defaults (its op's default_init, in registration order: weight, then
 * bias; buffers after), then the module's own rules. */
static void construct(planner *pl, module *m)
{
    if (m->constructed)
        return;
    m->constructed = 1;
    for (int i = 0; i < m->nchildren; i++)
        construct(pl, m->children[i].m);
    for (int i = 0; i < m->nparams + m->nbuffers; i++) {
        add_step(pl, m, m->tens_ids[i], &default_init);
        /* {tied: PATH}: torch draws the layer's own weight, then replaces it */
        if (m->tens_tied && m->tens_tied[i])
            p_last_step(pl)->discard = 1;
    }
    run_rules(pl, m, m->rules, m->nrules);
}


void plan_init(program *p, const ynode *top_rules)
{
    planner pl = {0};
    pl.p = p;
    pl.dup = xalloc(sizeof *pl.dup * (size_t)(p->nmodules + 1));
    pl.dup_done = xalloc((size_t)p->nmodules + 1);
    pl.kidix = xalloc(sizeof *pl.kidix * (size_t)(p->nmodules + 1));
    pl.kidcap = xalloc(sizeof *pl.kidcap * (size_t)(p->nmodules + 1));
    for (int i = 0; i < p->nshared; i++)
        construct(&pl, p->shared[i]);
    construct(&pl, p->root);
    if (top_rules) {
        int cnt;
        rule *r = parse_rules(top_rules, &cnt);
        run_rules(&pl, p->root, r, cnt);
    }
    /* distinct custom initializers, in order of first use */
    size_t hcap = 16;
    while (hcap < (size_t)p->nsteps * 2)
        hcap *= 2;
    int *seen = xalloc(sizeof *seen * hcap);
    p->custom = xalloc(sizeof *p->custom * (size_t)(p->nsteps + 1));
    for (int i = 0; i < p->nsteps; i++) {
        const char *fn = p->steps[i].init->custom;
        if (!fn)
            continue;
        size_t nl = strlen(p->name);
        if (!strcmp(fn, p->name) || (!strncmp(fn, p->name, nl) && fn[nl] == '_'))
            error_at(p->steps[i].init->loc, "custom initializer '%s' cannot be used: the "
                     "generated code names its own symbols %s and %s_*: choose another name",
                     fn, p->name, p->name);
        size_t h = hash_str(fn) & (hcap - 1);
        while (seen[h] && strcmp(p->custom[seen[h] - 1], fn) != 0)
            h = (h + 1) & (hcap - 1);
        if (!seen[h]) {
            p->custom[p->ncustom++] = fn;
            seen[h] = p->ncustom;
        }
    }
}
