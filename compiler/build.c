/* build.c: the first checking phase, module expressions -> module
 * instances: blocks copied (a fresh instance at each use), shared modules
 * referenced, layer arguments read by their op's schema (ops/op.h), meta
 * keys (init:, frozen:).  Every user error goes through error_at() with
 * the node's location. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "phases.h"

void namemap_init(namemap *nm, const ynode *map)
{
    nm->map = map;
    nm->cap = 16;
    while (map && nm->cap < (size_t)map->n * 2)
        nm->cap *= 2;
    nm->slot = xalloc(sizeof *nm->slot * nm->cap);
    for (int i = 0; map && i < map->n; i++) {
        size_t h = hash_str(map->keys[i]->str) & (nm->cap - 1);
        while (nm->slot[h])
            h = (h + 1) & (nm->cap - 1);
        nm->slot[h] = i + 1;
    }
}

/* The index of key k in the mapping, or -1. */
int namemap_find(const namemap *nm, const char *k)
{
    if (!nm->map)
        return -1;
    size_t h = hash_str(k) & (nm->cap - 1);
    for (; nm->slot[h]; h = (h + 1) & (nm->cap - 1))
        if (strcmp(nm->map->keys[nm->slot[h] - 1]->str, k) == 0)
            return nm->slot[h] - 1;
    return -1;
}

/* ---- module construction --------------------------------------------------- */

static module *new_module(ctx *c, loc l)
{
    program *p = c->p;
    module *m = xalloc(sizeof *m);
    m->loc = l;
    m->id = p->nmodules;
    if (p->nmodules >= MAX_MODULES)
        error_at(l, "the network has more than %d modules (nngen's limit): check the 'times' "
                    "of nested repeats and blocks that use other blocks several times",
                 MAX_MODULES);
    if (p->nmodules == c->cap_modules) {
        int nc = c->cap_modules ? c->cap_modules * 2 : 16;
        p->modules = xrealloc_array(p->modules, (size_t)c->cap_modules, (size_t)nc,
                                    sizeof *p->modules);
        c->cap_modules = nc;
    }
    p->modules[p->nmodules++] = m;
    return m;
}

/* Child names are unique by construction: list positions, the keys of a
 * YAML mapping (yaml.c rejects duplicate keys) or a repeat's names, which
 * differ when the template contains {i} (build_repeat checks that).  The
 * array grows to the next power of two, so n children cost O(n). */
static void add_child(module *m, const char *name, module *ch, loc l)
{
    int n = m->nchildren;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0))
        m->children = xrealloc_array(m->children, (size_t)n, n ? (size_t)n * 2 : 4,
                                     sizeof *m->children);
    child *cc = &m->children[m->nchildren++];
    cc->name = name;
    cc->m = ch;
    cc->loc = l;
}

static const char *const structural[] = {"sequential", "repeat", "ref", "residual"};

/* All names that can start a module, for suggestions. */
static const char **module_names(ctx *c, int *n)
{
    int nb = c->blocks ? c->blocks->n : 0;
    const char **v = xalloc(sizeof *v * (size_t)(op_count + 4 + nb));
    int k = 0;
    for (int i = 0; i < op_count; i++)
        v[k++] = op_registry[i]->name;
    for (int i = 0; i < 4; i++)
        v[k++] = structural[i];
    for (int i = 0; i < nb; i++)
        v[k++] = c->blocks->keys[i]->str;
    *n = k;
    return v;
}


static int strcasecmp_ascii(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 1;
    return *a != *b;
}

/* An unknown layer or block name: the nearest name when one is close
 * (util.c suggest()), otherwise every name that can start a module, so that
 * a newcomer sees what exists ('transformer' suggests nothing silly). */
NORETURN static void unknown_module(ctx *c, loc l, const char *name)
{
    int k;
    const char **names = module_names(c, &k);
    const char *s = suggest(name, names, k);
    if (s && strcasecmp_ascii(s, name) == 0)
        error_at(l, "unknown layer or block '%s' (did you mean '%s'? names are "
                    "case-sensitive%s)", name, s, op_find(s) ? ": layer names are lowercase" : "");
    if (s)
        error_at(l, "unknown layer or block '%s' (did you mean '%s'?)", name, s);
    const char *layers = op_name_list();
    strbuf b = {0};
    int nb = c->blocks ? c->blocks->n : 0;
    for (int i = 0; i < nb; i++)
        sb_printf(&b, "%s%s", i ? ", " : "", c->blocks->keys[i]->str);
    const char *blocks = xstrdup(b.s ? b.s : "");
    free(b.s);
    error_at(l, "unknown layer or block '%s'; the layers are %s (nngen --list-layers shows "
                "their arguments)%s%s; a module can also be a list, {sequential: ...}, "
                "{repeat: ...}, {residual: ...} or {ref: NAME}",
             name, layers, nb ? "; the blocks of this spec are " : "", blocks);
}

/* The layer's arguments from its value v (written after the type key at
 * key_loc): nothing, the main argument, or a mapping of named arguments,
 * checked against the op's schema; defaults fill in the rest. */
static void set_arg(argval *a, const arg_spec *as, const ynode *x, const char *what)
{
    a->given = 1;
    a->loc = x->loc;
    switch (as->type) {
    case ARG_INT:
        a->i = get_int(x, what, as->min, as->max);
        a->d = (double)a->i;
        return;
    case ARG_NUM:
        a->d = get_num(x, what);
        a->text = x->str;
        a->is_int = is_int_text(x->str);
        return;
    case ARG_BOOL:
        a->i = get_bool(x, what);
        return;
    case ARG_PAIR:
        a->word = NULL;
        a->is_list = 0;
        if (x->kind == Y_SCALAR && as->words) {
            for (int w = 0; as->words[w]; w++)
                if (!strcmp(x->str, as->words[w])) {
                    a->word = as->words[w];
                    return;
                }
        }
        if (x->kind == Y_SEQ) {
            if (x->n != 2)
                error_at(x->loc, "%s takes one int or a pair [a, b], got a list of %d", what,
                         x->n);
            a->i = get_int(x->items[0], what, as->min, as->max);
            a->i2 = get_int(x->items[1], what, as->min, as->max);
            a->is_list = 1;
            return;
        }
        if (x->kind == Y_SCALAR && as->words && !is_int_text(x->str)) {
            strbuf b = {0};
            int nw = 0;
            for (; as->words[nw]; nw++)
                sb_printf(&b, "%s'%s'", nw ? ", " : "", as->words[nw]);
            const char *list = xstrdup(b.s ? b.s : "");
            free(b.s);
            error_at(x->loc, "%s takes an int, a pair [a, b] or one of %s, got %s%s", what,
                     list, describe(x), did_you_mean(x->str, as->words, nw));
        }
        a->i = a->i2 = get_int(x, what, as->min, as->max);
        return;
    case ARG_WORD: {
        int nw = 0;
        strbuf b = {0};
        for (; as->words[nw]; nw++)
            sb_printf(&b, "%s'%s'", nw ? ", " : "", as->words[nw]);
        const char *list = xstrdup(b.s ? b.s : "");
        free(b.s);
        if (x->kind == Y_SCALAR)
            for (int w = 0; w < nw; w++)
                if (!strcmp(x->str, as->words[w])) {
                    a->word = as->words[w];
                    return;
                }
        error_at(x->loc, "%s takes one of %s, got %s%s", what, list, describe(x),
                 x->kind == Y_SCALAR ? did_you_mean(x->str, as->words, nw) : "");
    }
    case ARG_TIED: {
        static const char *const keys[] = {"tied", "transpose"};
        if (x->kind != Y_MAP)
            error_at(x->loc, "%s takes {tied: PATH} or {tied: PATH, transpose: true} (PATH a "
                             "state_dict key such as encoder.weight), got %s",
                     what, describe(x));
        check_keys(x, keys, 2, what);
        const ynode *t = map_get(x, "tied");
        if (!t)
            error_at(x->loc, "%s needs 'tied: PATH', the state_dict key of the weight to use "
                             "(e.g. {tied: encoder.weight})", what);
        a->text = get_str(t, xfmt("%s 'tied'", what));
        if (!a->text[0])
            error_at(t->loc, "%s 'tied' is empty: give the state_dict key of the weight to use "
                             "(e.g. encoder.weight)", what);
        a->loc = t->loc;
        const ynode *tr = map_get(x, "transpose");
        a->i = tr ? get_bool(tr, xfmt("%s 'transpose'", what)) : 0;
        a->i2 = tr != NULL;
        return;
    }
    case ARG_SHAPE:
        a->is_list = x->kind == Y_SEQ;
        if (!a->is_list) {
            a->ndims = 1;
            a->dims[0] = a->i = get_int(x, what, as->min, as->max);
            return;
        }
        if (x->n < 1 || x->n > NN_MAX_DIM - 1)
            error_at(x->loc, "%s takes an int or a list of 1 to %d sizes, got a list of %d",
                     what, NN_MAX_DIM - 1, x->n);
        a->ndims = x->n;
        for (int k = 0; k < x->n; k++)
            a->dims[k] = get_int(x->items[k], what, as->min, as->max);
        a->i = a->dims[0];
        return;
    }
    unreachable();
}

static void layer_args(module *m, const ynode *v, loc key_loc)
{
    const op_desc *d = m->op;
    const char *lname = d->name;
    m->args = xalloc(sizeof *m->args * (size_t)(d->nargs ? d->nargs : 1));
    for (int k = 0; k < d->nargs; k++) {
        argval *a = &m->args[k];
        const char *def = d->args[k].def;
        a->loc = key_loc;
        if (!def)
            continue;
        a->text = def;
        a->is_int = is_int_text(def);
        a->d = strtod(def, NULL);
        a->i = !strcmp(def, "true") ? 1 : !strcmp(def, "false") ? 0 : strtoll(def, NULL, 10);
        a->i2 = a->i;
        if (d->args[k].type == ARG_WORD)
            a->word = def;
    }
    if (d->nargs == 0) {
        if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
            return;
        if (v->kind == Y_MAP)
            error_at(v->keys[0]->loc, "%s takes no arguments (got '%s')", lname,
                     v->keys[0]->str);
        error_at(v->loc, "%s takes no arguments; write just '%s'", lname, lname);
    }
    if (is_null(v)) {
        if (d->null_msg)
            error_at(key_loc, "%s", d->null_msg);
        return;
    }
    if (v->kind == Y_MAP) {
        const char **names = xalloc(sizeof *names * (size_t)d->nargs);
        for (int k = 0; k < d->nargs; k++)
            names[k] = d->args[k].name;
        check_keys(v, names, d->nargs, xfmt("%s's arguments", lname));
        for (int k = 0; k < d->nargs; k++)
            if (d->args[k].required && !map_get(v, d->args[k].name))
                error_at(v->loc, "%s needs '%s' (%s)", lname, d->args[k].name, d->args[k].help);
        for (int k = 0; k < d->nargs; k++) {
            const ynode *x = map_get(v, d->args[k].name);
            if (x)
                set_arg(&m->args[k], &d->args[k], x, xfmt("%s '%s'", lname, d->args[k].name));
        }
        return;
    }
    if (d->main_arg < 0)
        error_at(v->loc, "%s takes its arguments as a mapping, e.g. {%s: {%s: ...}}", lname,
                 lname, d->args[0].name);
    const arg_spec *as = &d->args[d->main_arg];
    set_arg(&m->args[d->main_arg], as, v,
            d->main_what ? d->main_what : xfmt("%s '%s'", lname, as->name));
}
module *instantiate_block(ctx *c, int bi, loc use)
{
    const char *name = c->blocks->keys[bi]->str;
    for (int i = 0; i < c->nstack; i++)
        if (strcmp(c->stack[i], name) == 0) {
            strbuf b = {0};
            for (int j = i; j < c->nstack; j++)
                sb_printf(&b, "%s -> ", c->stack[j]);
            sb_puts(&b, name);
            char *cyc = xstrdup(b.s);
            free(b.s);
            error_at(use, "block cycle: %s (a block cannot contain itself)", cyc);
        }
    if (c->nstack >= 2 * MAX_NESTING)
        error_at(use, "blocks nested deeper than %d levels (nngen's limit)", 2 * MAX_NESTING);
    c->stack[c->nstack++] = name;
    c->block_uses[bi]++;
    module *m = build(c, c->blocks->items[bi]);
    c->nstack--;
    if (!m->origin)
        m->origin = xfmt("block '%s'", name);
    return m;
}

/* "'a', 'b', 'c'" for the keys of a mapping (at most 20 of them). */
const char *key_list(const ynode *map)
{
    strbuf b = {0};
    for (int i = 0; i < map->n && i < 20; i++)
        sb_printf(&b, "%s'%s'", i ? ", " : "", map->keys[i]->str);
    if (map->n > 20)
        sb_printf(&b, ", ... (%d in all)", map->n);
    char *s = xstrdup(b.s ? b.s : "");
    free(b.s);
    return s;
}

static module *build_ref(ctx *c, const ynode *v)
{
    const char *name = get_str(v, "ref");
    int si = namemap_find(&c->shared_ix, name);
    if (si < 0) {
        int n = c->shared ? c->shared->n : 0;
        if (!n)
            error_at(v->loc, "unknown shared module '%s': there is no 'shared:' section; "
                             "declare the module there to use it with {ref: %s}", name, name);
        const char **names = xalloc(sizeof *names * (size_t)(n + 1));
        for (int i = 0; i < n; i++)
            names[i] = c->shared->keys[i]->str;
        error_at(v->loc, "unknown shared module '%s'%s; declared under 'shared:': %s", name,
                 did_you_mean(name, names, n), key_list(c->shared));
    }
    if (si >= c->nshared_built)
        error_at(v->loc, "shared module '%s' is used before it is constructed: a shared "
                         "module may only refer to shared modules declared above it", name);
    /* the shared module's subtree hangs below this place */
    int reach = c->depth + c->shared_height[si];
    if (reach > MAX_NESTING)
        error_at(v->loc, "using shared module '%s' here nests modules %d levels deep, more "
                         "than nngen's limit of %d", name, reach, MAX_NESTING);
    if (reach > c->maxdepth)
        c->maxdepth = reach;
    return c->p->shared[si];
}

/* Entering a module that nests one level deeper; leave() when built. */
static void enter(ctx *c, loc l)
{
    if (c->depth >= MAX_NESTING) {
        if (c->nstack)
            error_at(l, "modules nested deeper than %d levels (nngen's limit), here inside "
                        "block '%s'", MAX_NESTING, c->stack[c->nstack - 1]);
        error_at(l, "modules nested deeper than %d levels (nngen's limit)", MAX_NESTING);
    }
    if (++c->depth > c->maxdepth)
        c->maxdepth = c->depth;
}

static void leave(ctx *c)
{
    c->depth--;
}

static module *build_sequential(ctx *c, const ynode *v, loc l)
{
    enter(c, l);
    module *m = new_module(c, l);
    if (v->kind == Y_SEQ) {
        for (int i = 0; i < v->n; i++)
            add_child(m, xfmt("%d", i), build(c, v->items[i]), v->items[i]->loc);
    } else if (v->kind == Y_MAP) {
        for (int i = 0; i < v->n; i++) {
            const char *name = v->keys[i]->str;
            if (!name[0] || strchr(name, '.'))
                error_at(v->keys[i]->loc, "child name '%s' is not allowed: names must be "
                                          "non-empty and contain no '.'", name);
            add_child(m, name, build(c, v->items[i]), v->keys[i]->loc);
        }
    } else if (!is_null(v)) {
        error_at(v->loc, "sequential takes a list of modules or a mapping of named modules, "
                         "got %s", describe(v));
    }
    leave(c);
    return m;
}

/* {residual: [m0, m1, ...]}: x + seq(x), children 0, 1, ...;
   {residual: {body: M, shortcut: S}}: body(x) + shortcut(x). */
static module *build_residual(ctx *c, const ynode *v, loc l)
{
    if (v->kind == Y_SEQ) {
        module *m = build_sequential(c, v, l);
        m->kind = MOD_RESIDUAL;
        return m;
    }
    if (v->kind != Y_MAP)
        error_at(is_null(v) ? l : v->loc, "residual takes a list of modules ({residual: [m0, "
                 "m1]}: x + m1(m0(x))) or {body: M, shortcut: S} (body(x) + shortcut(x)), "
                 "got %s", describe(v));
    static const char *const keys[] = {"body", "shortcut"};
    check_keys(v, keys, 2, "residual");
    const ynode *body = map_get(v, "body"), *sc = map_get(v, "shortcut");
    if (!body || !sc)
        error_at(v->loc, "residual needs both 'body' and 'shortcut' (for x + body(x) write "
                         "the list form {residual: [...]})");
    enter(c, l);
    module *m = new_module(c, l);
    m->kind = MOD_RESIDUAL2;
    /* children in the fixed order body, shortcut, as the torch class registers them */
    add_child(m, "body", build(c, body), body->loc);
    add_child(m, "shortcut", build(c, sc), sc->loc);
    leave(c);
    return m;
}

static module *build_repeat(ctx *c, const ynode *v, loc l)
{
    expect_kind(v, Y_MAP, "repeat");
    static const char *const keys[] = {"times", "name", "body"};
    check_keys(v, keys, 3, "repeat");
    const ynode *t = map_get(v, "times");
    const ynode *body = map_get(v, "body");
    if (!t)
        error_at(v->loc, "repeat needs 'times' (how many copies)");
    if (!body)
        error_at(v->loc, "repeat needs 'body' (the module to copy)");
    int64_t times = get_int(t, "repeat 'times'", 1, MAX_REPEAT);
    const char *tmpl = "{i}";
    const ynode *nm = map_get(v, "name");
    if (nm)
        tmpl = get_str(nm, "repeat 'name'");
    /* the template may use {i} and nothing else in braces */
    for (const char *s = tmpl; *s; s++)
        if ((*s == '{' && strncmp(s, "{i}", 3) != 0) || (*s == '}' && (s - tmpl < 2 ||
                                                                         strncmp(s - 2, "{i}", 3))))
            error_at(nm->loc, "repeat 'name' may contain '{i}' (the copy's number) and no "
                              "other braces: got \"%s\"", tmpl);
    enter(c, l);
    module *m = new_module(c, l);
    for (int64_t i = 0; i < times; i++) {
        strbuf b = {0};
        for (const char *s = tmpl; *s; s++) {
            if (strncmp(s, "{i}", 3) == 0) {
                sb_printf(&b, "%lld", (long long)i);
                s += 2;
            } else {
                sb_putc(&b, *s);
            }
        }
        char *name = xstrdup(b.s ? b.s : "");
        free(b.s);
        if (!name[0] || strchr(name, '.'))
            error_at(nm ? nm->loc : v->loc, "repeat 'name' gives '%s': names must be "
                                            "non-empty and contain no '.'", name);
        if (i == 1 && strcmp(name, m->children[0].name) == 0)
            error_at(nm ? nm->loc : v->loc, "duplicate child name '%s': repeat 'name' must "
                                            "contain '{i}' when times > 1", name);
        add_child(m, name, build(c, body), body->loc);
    }
    leave(c);
    return m;
}

static module *new_layer(ctx *c, const op_desc *d, const ynode *v, loc l)
{
    enter(c, l);
    module *m = new_module(c, l);
    m->op = d;
    layer_args(m, v, l);
    leave(c);
    return m;
}

module *build(ctx *c, const ynode *n)
{
    module *m = NULL;
    if (n->kind == Y_SEQ) {
        m = build_sequential(c, n, n->loc);
    } else if (n->kind == Y_SCALAR) {
        if (is_null(n))
            error_at(n->loc, "expected a module (a layer name, a block name, a list or a "
                             "mapping), got nothing");
        const char *name = n->str;
        const op_desc *d = op_find(name);
        int bi = namemap_find(&c->block_ix, name);
        if (d) {
            ynode none = {Y_SCALAR, n->loc, "", 0, 0, NULL, NULL};
            m = new_layer(c, d, &none, n->loc);
        } else if (bi >= 0) {
            m = instantiate_block(c, bi, n->loc);
        } else if (namemap_find(&c->shared_ix, name) >= 0) {
            error_at(n->loc, "'%s' is a shared module: write {ref: %s} to use it here", name,
                     name);
        } else if (!strcmp(name, "sequential") || !strcmp(name, "repeat") ||
                   !strcmp(name, "ref") || !strcmp(name, "residual")) {
            error_at(n->loc, "'%s' needs a value: write {%s: ...}", name, name);
        } else {
            unknown_module(c, n->loc, name);
        }
    } else {
        /* a mapping: one type key plus meta keys; or, when two or more keys
           and none is a type, named children (SPEC 1.2.5's example): the
           sequential mapping form {sequential: {a: m0, b: m1}} */
        int nonmeta = 0, types = 0;
        for (int i = 0; i < n->n; i++) {
            const char *k = n->keys[i]->str;
            if (!strcmp(k, "init") || !strcmp(k, "frozen"))
                continue;
            nonmeta++;
            types += op_find(k) || namemap_find(&c->block_ix, k) >= 0 ||
                     namemap_find(&c->shared_ix, k) >= 0 || !strcmp(k, "sequential") ||
                     !strcmp(k, "residual") || !strcmp(k, "repeat") || !strcmp(k, "ref");
        }
        if (nonmeta >= 2 && !types) {
            ynode *kids = xalloc(sizeof *kids);
            *kids = *n;
            kids->n = 0;
            kids->keys = xalloc(sizeof *kids->keys * (size_t)n->n);
            kids->items = xalloc(sizeof *kids->items * (size_t)n->n);
            for (int i = 0; i < n->n; i++) {
                const char *k = n->keys[i]->str;
                if (!strcmp(k, "init") || !strcmp(k, "frozen"))
                    continue;
                kids->keys[kids->n] = n->keys[i];
                kids->items[kids->n++] = n->items[i];
            }
            m = build_sequential(c, kids, n->loc);
            const ynode *fr = map_get(n, "frozen");
            if (fr && get_bool(fr, "frozen"))
                m->frozen = 1;
            const ynode *in = map_get(n, "init");
            if (in)
                m->rules = parse_rules(in, &m->nrules);
            return m;
        }
        int ti = -1;
        for (int i = 0; i < n->n; i++) {
            const char *k = n->keys[i]->str;
            if (!strcmp(k, "init") || !strcmp(k, "frozen"))
                continue;
            if (ti >= 0)
                error_at(n->keys[i]->loc, "a module mapping holds exactly one type key, but "
                                          "has '%s' and '%s' (meta keys are 'init' and "
                                          "'frozen'); to chain modules use a list, or "
                                          "{sequential: {name: module, ...}} for named "
                                          "children",
                         n->keys[ti]->str, k);
            ti = i;
        }
        if (ti < 0)
            error_at(n->loc, "this module mapping has no type key: expected a layer, "
                             "'sequential', 'residual', 'repeat', 'ref' or a block name");
        const char *k = n->keys[ti]->str;
        const ynode *v = n->items[ti];
        loc kl = n->keys[ti]->loc;
        const op_desc *d = op_find(k);
        int bi = namemap_find(&c->block_ix, k);
        if (!strcmp(k, "sequential")) {
            m = build_sequential(c, v, kl);
        } else if (!strcmp(k, "residual")) {
            m = build_residual(c, v, kl);
        } else if (!strcmp(k, "repeat")) {
            m = build_repeat(c, v, kl);
        } else if (!strcmp(k, "ref")) {
            for (int i = 0; i < n->n; i++)
                if (i != ti)
                    error_at(n->keys[i]->loc, "'%s' cannot be given on a ref: a shared module "
                                              "is constructed once; put '%s' on its "
                                              "declaration under 'shared:'",
                             n->keys[i]->str, n->keys[i]->str);
            return build_ref(c, v);
        } else if (d) {
            m = new_layer(c, d, v, kl);
        } else if (bi >= 0) {
            if (!is_null(v) && !(v->kind == Y_MAP && v->n == 0))
                error_at(v->loc, "a block instance takes no arguments: write '%s' or {%s: {}}",
                         k, k);
            m = instantiate_block(c, bi, kl);
        } else if (namemap_find(&c->shared_ix, k) >= 0) {
            error_at(kl, "'%s' is a shared module: write {ref: %s} to use it here", k, k);
        } else {
            unknown_module(c, kl, k);
        }
        /* errors about the module as a whole point at its mapping */
        if (m->loc.line == kl.line && m->loc.col == kl.col)
            m->loc = n->loc;
        const ynode *fr = map_get(n, "frozen");
        if (fr && get_bool(fr, "frozen"))
            m->frozen = 1;
        const ynode *in = map_get(n, "init");
        if (in) {
            int cnt;
            rule *r = parse_rules(in, &cnt);
            m->rules = xrealloc_array(m->rules, (size_t)m->nrules, (size_t)(m->nrules + cnt),
                                      sizeof *r);
            memcpy(m->rules + m->nrules, r, sizeof *r * (size_t)cnt);
            m->nrules += cnt;
        }
    }
    return m;
}


const char *join(const char *a, const char *b)
{
    return a[0] ? xfmt("%s.%s", a, b) : b;
}

/* Block and shared names: identifiers that shadow nothing. */
void check_names(ctx *c, const ynode *map, const char *what)
{
    expect_kind(map, Y_MAP, what);
    for (int i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str;
        loc l = map->keys[i]->loc;
        if (!is_identifier(k))
            error_at(l, "%s name '%s' must be a C-like identifier (letters, digits, '_')", what,
                     k);
        if (op_find(k))
            error_at(l, "%s name '%s' shadows the layer type '%s'; choose another name", what, k,
                     k);
        for (int j = 0; j < 4; j++)
            if (!strcmp(k, structural[j]))
                error_at(l, "%s name '%s' is reserved; choose another name", what, k);
        if (!strcmp(k, "init") || !strcmp(k, "frozen"))
            error_at(l, "%s name '%s' is reserved (a meta key); choose another name", what, k);
        if (map == c->shared && namemap_find(&c->block_ix, k) >= 0)
            error_at(l, "'%s' is both a block and a shared module; names must differ", k);
    }
}

