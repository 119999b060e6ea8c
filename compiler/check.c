/* check.c: from the YAML tree to a checked program.
 *
 *   build    - module expressions -> module instances (blocks copied,
 *              shared modules referenced), layer arguments, meta keys
 *   forward  - shape inference along the forward pass, one op per use
 *   naming   - canonical paths, the parameter list, the state dict
 *   plan     - the init sequence in PyTorch's construction order (§1.4)
 *   train    - loss and optimizer settings (§1.5)
 *
 * Every user error goes through error_at() with the node's location.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nngen.h"

const char *const layer_names[L_COUNT] = {
#define LAYER(E, name, cls, np) name,
#include "layers.def"
#undef LAYER
};
const char *const layer_classes[L_COUNT] = {
#define LAYER(E, name, cls, np) cls,
#include "layers.def"
#undef LAYER
};

/* Limits on the size of the expanded network, so that no spec (nested
 * repeats, blocks that use other blocks twice, shared modules used in
 * many places) can make the checker run for hours or exhaust memory. */
#define MAX_MODULES (1 << 20)       /* module instances, and module uses in the forward pass */
#define MAX_INIT_VISITS (1 << 24)   /* modules visited by all init rules together */
#define MAX_INIT_STEPS (1 << 23)    /* initializer calls in the init plan */
#define MAX_PATH_LEN 512            /* characters of a module path ("0.block1.2") */
#define MAX_PATH_BYTES (64 << 20)   /* all module paths of the forward pass together */

/* Names of a YAML mapping (blocks:, shared:) looked up by hash. */
typedef struct namemap {
    const ynode *map;
    int *slot;                  /* key index + 1; 0 is empty */
    size_t cap;
} namemap;

typedef struct ctx {
    program *p;
    ynode *blocks;              /* mapping or NULL */
    ynode *shared;              /* mapping or NULL */
    namemap block_ix, shared_ix;
    int *block_uses;            /* instances made of each block */
    int *shared_height;         /* module nesting height of each shared module */
    /* blocks being instantiated: a block whose body is just another block's
     * name nests no module, so this bound is separate from MAX_NESTING */
    const char *stack[2 * MAX_NESTING + 1];
    int nstack;
    int depth;                  /* modules enclosing the one being built */
    int maxdepth;               /* deepest module nesting reached (for shared heights) */
    int nshared_built;          /* shared modules constructed so far */
    int cap_modules;
    loc *argloc;                /* by module id: its shape-relevant argument (linear 'in',
                                   softmax 'dim') when written, else line 0 */
} ctx;

static size_t hash_str(const char *s)
{
    size_t h = (size_t)14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211u;
    return h;
}

static void namemap_init(namemap *nm, const ynode *map)
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
static int namemap_find(const namemap *nm, const char *k)
{
    if (!nm->map)
        return -1;
    size_t h = hash_str(k) & (nm->cap - 1);
    for (; nm->slot[h]; h = (h + 1) & (nm->cap - 1))
        if (strcmp(nm->map->keys[nm->slot[h] - 1]->str, k) == 0)
            return nm->slot[h] - 1;
    return -1;
}

/* ---- node helpers ------------------------------------------------------ */

static const char *describe(const ynode *n)
{
    switch (n->kind) {
    case Y_SEQ:
        return "a list";
    case Y_MAP:
        return "a mapping";
    case Y_SCALAR:
        if (!n->quoted && (n->str[0] == 0 || strcmp(n->str, "~") == 0 ||
                           strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
                           strcmp(n->str, "NULL") == 0))
            return "nothing (null)";
        if (n->quoted)
            return xfmt("the quoted string \"%s\"", n->str);
        return xfmt("'%s'", n->str);
    }
    return "?";
}

static int is_null(const ynode *n)
{
    return n->kind == Y_SCALAR && !n->quoted &&
           (n->str[0] == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
            strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

static ynode *map_get(const ynode *m, const char *key)
{
    if (!m || m->kind != Y_MAP)
        return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->str, key) == 0)
            return m->items[i];
    return NULL;
}

static void expect_kind(const ynode *n, ykind k, const char *what)
{
    if (n->kind != k)
        error_at(n->loc, "%s must be %s, got %s", what,
                 k == Y_SEQ ? "a list" : k == Y_MAP ? "a mapping" : "a single value",
                 describe(n));
}

/* Unknown keys are errors: report the first with the nearest allowed key. */
static void check_keys(const ynode *m, const char *const *allowed, int n, const char *what)
{
    for (int i = 0; i < m->n; i++) {
        const char *k = m->keys[i]->str;
        int ok = 0;
        for (int j = 0; j < n && !ok; j++)
            ok = strcmp(k, allowed[j]) == 0;
        if (!ok) {
            strbuf b = {0};
            for (int j = 0; j < n; j++)
                sb_printf(&b, "%s'%s'", j ? ", " : "", allowed[j]);
            char *list = xstrdup(b.s ? b.s : "");
            free(b.s);
            error_at(m->keys[i]->loc, "unknown key '%s' in %s%s; expected one of %s", k, what,
                     did_you_mean(k, allowed, n), list);
        }
    }
}

static int64_t get_int(const ynode *n, const char *what, int64_t min, int64_t max)
{
    if (n->kind != Y_SCALAR || n->quoted || is_null(n))
        error_at(n->loc, "%s must be an integer, got %s", what, describe(n));
    const char *s = n->str;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end) {
        char *fend;
        double d = strtod(s, &fend);
        if (fend != s && !*fend && d == floor(d) && fabs(d) < 9e18 && !strpbrk(s, "xXnN"))
            error_at(n->loc, "%s must be an integer, got '%s' (write it as a plain integer, "
                             "e.g. %.0f)", what, s, d);
        error_at(n->loc, "%s must be an integer, got %s", what, describe(n));
    }
    if (errno == ERANGE && v < 0)
        error_at(n->loc, "%s must be at least %lld, got %s", what, (long long)min, s);
    if (errno == ERANGE || v > max)
        error_at(n->loc, "%s is too large: %s (at most %lld)", what, s, (long long)max);
    if (v < min) {
        if (min == 1)
            error_at(n->loc, "%s must be at least 1, got %s", what, s);
        error_at(n->loc, "%s must be at least %lld, got %s", what, (long long)min, s);
    }
    return v;
}

static uint64_t get_u64(const ynode *n, const char *what)
{
    if (n->kind != Y_SCALAR || n->quoted || is_null(n))
        error_at(n->loc, "%s must be a non-negative integer, got %s", what, describe(n));
    const char *s = n->str;
    if (*s == '-')
        error_at(n->loc, "%s must be a non-negative integer, got %s", what, s);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || !isdigit((unsigned char)*s))
        error_at(n->loc, "%s must be a non-negative integer, got %s", what, describe(n));
    if (errno == ERANGE)
        error_at(n->loc, "%s is too large: %s (at most 18446744073709551615)", what, s);
    return v;
}

static int is_int_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static double get_num(const ynode *n, const char *what)
{
    if (n->kind != Y_SCALAR || n->quoted || is_null(n))
        error_at(n->loc, "%s must be a number, got %s", what, describe(n));
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    if (end == n->str || (*end && !strpbrk(n->str, "xXnN")))
        error_at(n->loc, "%s must be a number, got %s", what, describe(n));
    if (*end || isnan(v) || isinf(v) || errno == ERANGE ||
        /* strtod also takes hex and "inf"; YAML numbers are decimal */
        strpbrk(n->str, "xXnN"))
        error_at(n->loc, "%s must be a finite decimal number, got %s", what, describe(n));
    return v;
}

static int get_bool(const ynode *n, const char *what)
{
    if (n->kind == Y_SCALAR && !n->quoted) {
        if (!strcmp(n->str, "true") || !strcmp(n->str, "True") || !strcmp(n->str, "TRUE"))
            return 1;
        if (!strcmp(n->str, "false") || !strcmp(n->str, "False") || !strcmp(n->str, "FALSE"))
            return 0;
    }
    error_at(n->loc, "%s must be true or false, got %s", what, describe(n));
}

static const char *get_str(const ynode *n, const char *what)
{
    if (n->kind != Y_SCALAR || is_null(n))
        error_at(n->loc, "%s must be a name, got %s", what, describe(n));
    return n->str;
}

/* ---- shapes -------------------------------------------------------------- */

/* Saturates at INT64_MAX instead of overflowing (sizes are >= 1). */
int64_t shape_numel(const shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] > 0 && n > INT64_MAX / s->d[i])
            return INT64_MAX;
        n *= s->d[i];
    }
    return n;
}

void shape_str(char *buf, size_t n, const shape *s, int with_batch)
{
    strbuf b = {0};
    sb_putc(&b, '[');
    for (int i = with_batch ? 0 : 1; i < s->ndim; i++)
        sb_printf(&b, "%s%lld", i > (with_batch ? 0 : 1) ? ", " : "", (long long)s->d[i]);
    sb_putc(&b, ']');
    snprintf(buf, n, "%s", b.s);
    free(b.s);
}

static const char *shape_text(const shape *s)
{
    char buf[128];
    shape_str(buf, sizeof buf, s, 1);
    return xstrdup(buf);
}

/* ---- module construction --------------------------------------------------- */

static module *new_module(ctx *c, loc l)
{
    program *p = c->p;
    module *m = xalloc(sizeof *m);
    m->loc = l;
    m->id = p->nmodules;
    m->bias = 1;
    m->slope = 0.01;
    m->dim = 1;
    if (p->nmodules >= MAX_MODULES)
        error_at(l, "the network has more than %d modules (nngen's limit): check the 'times' "
                    "of nested repeats and blocks that use other blocks several times",
                 MAX_MODULES);
    if (p->nmodules == c->cap_modules) {
        int nc = c->cap_modules ? c->cap_modules * 2 : 16;
        p->modules = xrealloc_array(p->modules, (size_t)c->cap_modules, (size_t)nc,
                                    sizeof *p->modules);
        c->argloc = xrealloc_array(c->argloc, (size_t)c->cap_modules, (size_t)nc,
                                   sizeof *c->argloc);
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

static int find_layer(const char *s)
{
    for (int i = 0; i < L_COUNT; i++)
        if (strcmp(layer_names[i], s) == 0)
            return i;
    return -1;
}

static const char *const structural[] = {"sequential", "repeat", "ref"};

/* All names that can start a module, for suggestions. */
static const char **module_names(ctx *c, int *n)
{
    int nb = c->blocks ? c->blocks->n : 0;
    const char **v = xalloc(sizeof *v * (size_t)(L_COUNT + 3 + nb));
    int k = 0;
    for (int i = 0; i < L_COUNT; i++)
        v[k++] = layer_names[i];
    for (int i = 0; i < 3; i++)
        v[k++] = structural[i];
    for (int i = 0; i < nb; i++)
        v[k++] = c->blocks->keys[i]->str;
    *n = k;
    return v;
}

static rule *parse_rules(ctx *c, const ynode *n, int *count);
static module *build(ctx *c, const ynode *n);

static void layer_args(ctx *c, module *m, const ynode *v, loc key_loc)
{
    const char *lname = layer_names[m->layer];
    switch (m->layer) {
    case L_LINEAR:
        if (is_null(v))
            error_at(key_loc, "linear needs its output size: write {linear: 8} or "
                              "{linear: {out: 8}}");
        if (v->kind == Y_MAP) {
            static const char *const keys[] = {"out", "in", "bias"};
            check_keys(v, keys, 3, "linear's arguments");
            const ynode *o = map_get(v, "out");
            if (!o)
                error_at(v->loc, "linear needs 'out' (the number of output features)");
            m->out = get_int(o, "linear 'out'", 1, MAX_DIM_SIZE);
            const ynode *in = map_get(v, "in");
            if (in) {
                m->in = get_int(in, "linear 'in'", 1, MAX_DIM_SIZE);
                m->in_loc = in->loc;
                c->argloc[m->id] = in->loc;
            }
            const ynode *b = map_get(v, "bias");
            if (b)
                m->bias = get_bool(b, "linear 'bias'");
        } else {
            m->out = get_int(v, "linear's output size", 1, MAX_DIM_SIZE);
        }
        return;
    case L_LEAKY_RELU:
        if (is_null(v))
            return;
        if (v->kind == Y_MAP) {
            static const char *const keys[] = {"negative_slope"};
            check_keys(v, keys, 1, "leaky_relu's arguments");
            v = map_get(v, "negative_slope");
            if (!v)
                return;
        }
        m->slope = get_num(v, "leaky_relu 'negative_slope'");
        m->slope_is_int = is_int_text(v->str);
        m->slope_text = v->str;
        return;
    case L_LOG_SOFTMAX:
    case L_SOFTMAX:
        if (is_null(v))
            return;
        if (v->kind == Y_MAP) {
            static const char *const keys[] = {"dim"};
            check_keys(v, keys, 1, xfmt("%s's arguments", lname));
            v = map_get(v, "dim");
            if (!v)
                return;
        }
        m->dim = (int)get_int(v, xfmt("%s 'dim'", lname), -NN_MAX_DIM, NN_MAX_DIM);
        c->argloc[m->id] = v->loc;
        return;
    case L_RELU:
    case L_SIGMOID:
    case L_TANH:
    case L_IDENTITY:
    case L_GELU:
    case L_FLATTEN:
        if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
            return;
        if (v->kind == Y_MAP)
            error_at(v->keys[0]->loc, "%s takes no arguments (got '%s')", lname,
                     v->keys[0]->str);
        error_at(v->loc, "%s takes no arguments; write just '%s'", lname, lname);
    case L_COUNT:
        break;
    }
    unreachable();
}

static module *instantiate_block(ctx *c, int bi, loc use)
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
static const char *key_list(const ynode *map)
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

static module *new_layer(ctx *c, int li, const ynode *v, loc l)
{
    enter(c, l);
    module *m = new_module(c, l);
    m->is_layer = 1;
    m->layer = (layer_kind)li;
    layer_args(c, m, v, l);
    leave(c);
    return m;
}

static module *build(ctx *c, const ynode *n)
{
    module *m = NULL;
    if (n->kind == Y_SEQ) {
        m = build_sequential(c, n, n->loc);
    } else if (n->kind == Y_SCALAR) {
        if (is_null(n))
            error_at(n->loc, "expected a module (a layer name, a block name, a list or a "
                             "mapping), got nothing");
        const char *name = n->str;
        int li = find_layer(name), bi = namemap_find(&c->block_ix, name);
        if (li >= 0) {
            ynode none = {Y_SCALAR, n->loc, "", 0, 0, NULL, NULL};
            m = new_layer(c, li, &none, n->loc);
        } else if (bi >= 0) {
            m = instantiate_block(c, bi, n->loc);
        } else if (namemap_find(&c->shared_ix, name) >= 0) {
            error_at(n->loc, "'%s' is a shared module: write {ref: %s} to use it here", name,
                     name);
        } else if (!strcmp(name, "sequential") || !strcmp(name, "repeat") ||
                   !strcmp(name, "ref")) {
            error_at(n->loc, "'%s' needs a value: write {%s: ...}", name, name);
        } else {
            int k;
            const char **names = module_names(c, &k);
            error_at(n->loc, "unknown layer or block '%s'%s", name, did_you_mean(name, names, k));
        }
    } else {
        /* a mapping: one type key plus meta keys */
        int ti = -1;
        for (int i = 0; i < n->n; i++) {
            const char *k = n->keys[i]->str;
            if (!strcmp(k, "init") || !strcmp(k, "frozen"))
                continue;
            if (ti >= 0)
                error_at(n->keys[i]->loc, "a module mapping holds exactly one type key, but "
                                          "has '%s' and '%s' (meta keys are 'init' and "
                                          "'frozen'); to chain modules use a list",
                         n->keys[ti]->str, k);
            ti = i;
        }
        if (ti < 0)
            error_at(n->loc, "this module mapping has no type key: expected a layer, "
                             "'sequential', 'repeat', 'ref' or a block name");
        const char *k = n->keys[ti]->str;
        const ynode *v = n->items[ti];
        loc kl = n->keys[ti]->loc;
        int li = find_layer(k), bi = namemap_find(&c->block_ix, k);
        if (!strcmp(k, "sequential")) {
            m = build_sequential(c, v, kl);
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
        } else if (li >= 0) {
            m = new_layer(c, li, v, kl);
        } else if (bi >= 0) {
            if (!is_null(v) && !(v->kind == Y_MAP && v->n == 0))
                error_at(v->loc, "a block instance takes no arguments: write '%s' or {%s: {}}",
                         k, k);
            m = instantiate_block(c, bi, kl);
        } else if (namemap_find(&c->shared_ix, k) >= 0) {
            error_at(kl, "'%s' is a shared module: write {ref: %s} to use it here", k, k);
        } else {
            int cnt;
            const char **names = module_names(c, &cnt);
            error_at(kl, "unknown layer or block '%s'%s", k, did_you_mean(k, names, cnt));
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
            rule *r = parse_rules(c, in, &cnt);
            m->rules = xrealloc_array(m->rules, (size_t)m->nrules, (size_t)(m->nrules + cnt),
                                      sizeof *r);
            memcpy(m->rules + m->nrules, r, sizeof *r * (size_t)cnt);
            m->nrules += cnt;
        }
    }
    return m;
}

/* ---- init rules ------------------------------------------------------------- */

static const char *const init_names[] = {
    "default", "zeros", "ones", "constant", "uniform", "normal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal", "trunc_normal", "mixture", "custom"};
#define N_INIT_NAMES ((int)(sizeof init_names / sizeof init_names[0]))

static const char *const nl_names[] = {
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"};

/* Positional [a, b] or named {k1: a, k2: b} arguments with defaults;
 * locs[i] is where value i is written (v itself for a default). */
static void num_args(const ynode *v, const char *what, const char *const *names, double *vals,
                     loc *locs, int n)
{
    for (int i = 0; i < n; i++)
        locs[i] = v->loc;
    if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
        return;
    if (v->kind == Y_SEQ) {
        if (v->n > n)
            error_at(v->items[n]->loc, "%s takes at most %d values, got %d", what, n, v->n);
        for (int i = 0; i < v->n; i++) {
            vals[i] = get_num(v->items[i], xfmt("%s '%s'", what, names[i]));
            locs[i] = v->items[i]->loc;
        }
        return;
    }
    if (v->kind == Y_MAP) {
        check_keys(v, names, n, xfmt("%s's arguments", what));
        for (int i = 0; i < n; i++) {
            const ynode *x = map_get(v, names[i]);
            if (x) {
                vals[i] = get_num(x, xfmt("%s '%s'", what, names[i]));
                locs[i] = x->loc;
            }
        }
        return;
    }
    if (n == 1) {
        vals[0] = get_num(v, what);
        return;
    }
    error_at(v->loc, "%s takes a list [%s, ...] or a mapping {%s: ...}, got %s", what, names[0],
             names[0], describe(v));
}

static void parse_kaiming(initializer *in, const ynode *v, const char *what)
{
    in->a = 0;
    in->mode = NN_FAN_IN;
    in->nonlinearity = NN_NL_LEAKY_RELU;
    if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
        return;
    expect_kind(v, Y_MAP, what);
    static const char *const keys[] = {"a", "mode", "nonlinearity"};
    check_keys(v, keys, 3, xfmt("%s's arguments", what));
    const ynode *x;
    if ((x = map_get(v, "a")))
        in->a = get_num(x, xfmt("%s 'a'", what));
    if ((x = map_get(v, "mode"))) {
        const char *s = get_str(x, "mode");
        static const char *const modes[] = {"fan_in", "fan_out"};
        if (!strcmp(s, "fan_in"))
            in->mode = NN_FAN_IN;
        else if (!strcmp(s, "fan_out"))
            in->mode = NN_FAN_OUT;
        else
            error_at(x->loc, "mode must be 'fan_in' or 'fan_out', got '%s'%s", s,
                     did_you_mean(s, modes, 2));
    }
    if ((x = map_get(v, "nonlinearity"))) {
        const char *s = get_str(x, "nonlinearity");
        int k = -1;
        for (int i = 0; i < (int)(sizeof nl_names / sizeof *nl_names); i++)
            if (!strcmp(s, nl_names[i]))
                k = i;
        if (k < 0)
            error_at(x->loc, "unknown nonlinearity '%s'%s", s,
                     did_you_mean(s, nl_names, (int)(sizeof nl_names / sizeof *nl_names)));
        in->nonlinearity = k;
    }
}

static int init_index(const char *s, loc l)
{
    for (int i = 0; i < N_INIT_NAMES; i++)
        if (!strcmp(s, init_names[i]))
            return i;
    error_at(l, "unknown initializer '%s'%s", s, did_you_mean(s, init_names, N_INIT_NAMES));
}

static void check_uniform(const initializer *in, loc l)
{
    if (in->a > in->b)
        error_at(l, "uniform needs a <= b, got [%g, %g]", in->a, in->b);
}

/* Fill in from kind (init_kind) and its argument node v. */
static void parse_init_args(initializer *in, const ynode *v, loc kl)
{
    switch (in->kind) {
    case I_DEFAULT:
    case I_ZEROS:
    case I_ONES:
        if (!is_null(v) && !(v->kind == Y_MAP && v->n == 0))
            error_at(v->loc, "%s takes no arguments", init_names[in->kind]);
        return;
    case I_CONSTANT:
        if (is_null(v))
            error_at(kl, "constant needs its value: {constant: 42}");
        in->a = get_num(v, "constant");
        return;
    case I_UNIFORM: {
        static const char *const k[] = {"a", "b"};
        double vals[2] = {0, 1};
        loc locs[2];
        num_args(v, "uniform", k, vals, locs, 2);
        in->a = vals[0];
        in->b = vals[1];
        check_uniform(in, v->loc);
        return;
    }
    case I_NORMAL: {
        static const char *const k[] = {"mean", "std"};
        double vals[2] = {0, 1};
        loc locs[2];
        num_args(v, "normal", k, vals, locs, 2);
        in->a = vals[0];
        in->b = vals[1];
        if (in->b < 0)
            error_at(locs[1], "normal needs std >= 0, got %g", in->b);
        return;
    }
    case I_XAVIER_UNIFORM:
    case I_XAVIER_NORMAL: {
        static const char *const k[] = {"gain"};
        double vals[1] = {1};
        loc locs[1];
        num_args(v, init_names[in->kind], k, vals, locs, 1);
        in->a = vals[0];
        return;
    }
    case I_KAIMING_UNIFORM:
    case I_KAIMING_NORMAL:
        parse_kaiming(in, v, init_names[in->kind]);
        return;
    case I_TRUNC_NORMAL: {
        static const char *const k[] = {"mean", "std", "a", "b"};
        double vals[4] = {0, 1, -2, 2};
        loc locs[4];
        num_args(v, "trunc_normal", k, vals, locs, 4);
        in->a = vals[0];
        in->b = vals[1];
        in->c = vals[2];
        in->d = vals[3];
        if (in->b < 0)
            error_at(locs[1], "trunc_normal needs std >= 0, got %g", in->b);
        if (in->c >= in->d)
            error_at(v->loc, "trunc_normal needs a < b, got a=%g, b=%g", in->c, in->d);
        return;
    }
    case I_MIXTURE: {
        expect_kind(v, Y_SEQ, "mixture");
        if (v->n == 0)
            error_at(v->loc, "mixture needs at least one component");
        in->nmix = v->n;
        in->mix = xalloc(sizeof *in->mix * (size_t)v->n);
        double sum = 0;
        for (int i = 0; i < v->n; i++) {
            const ynode *e = v->items[i];
            expect_kind(e, Y_MAP, "a mixture component");
            static const char *const keys[] = {"p", "constant", "uniform", "normal"};
            check_keys(e, keys, 4, "a mixture component");
            const ynode *p = map_get(e, "p");
            if (!p)
                error_at(e->loc, "a mixture component needs 'p' (its probability)");
            mix_part *mp = &in->mix[i];
            mp->p = get_num(p, "mixture 'p'");
            if (mp->p < 0 || mp->p > 1)
                error_at(p->loc, "mixture 'p' must be between 0 and 1, got %g", mp->p);
            sum += mp->p;
            int found = 0;
            for (int q = 0; q < e->n; q++) {
                int j = 1;
                while (j < 4 && strcmp(e->keys[q]->str, keys[j]) != 0)
                    j++;
                if (j == 4)
                    continue; /* 'p' */
                const ynode *x = e->items[q];
                if (found++)
                    error_at(e->keys[q]->loc, "a mixture component has one distribution, not "
                                              "several");
                initializer tmp = {0};
                tmp.kind = j == 1 ? I_CONSTANT : j == 2 ? I_UNIFORM : I_NORMAL;
                parse_init_args(&tmp, x, e->keys[q]->loc);
                mp->kind = tmp.kind;
                mp->a = tmp.a;
                mp->b = tmp.b;
            }
            if (!found)
                error_at(e->loc, "a mixture component needs a distribution: 'constant', "
                                 "'uniform' or 'normal'");
        }
        if (fabs(sum - 1) > 1e-6)
            error_at(v->loc, "mixture weights 'p' must sum to 1, they sum to %g", sum);
        return;
    }
    case I_CUSTOM: {
        const char *f = get_str(v, "custom");
        if (!is_identifier(f))
            error_at(v->loc, "custom needs a C function name, got '%s'", f);
        in->custom = f;
        return;
    }
    }
    unreachable();
}

static initializer *parse_init(const ynode *v)
{
    initializer *in = xalloc(sizeof *in);
    in->loc = v->loc;
    if (v->kind == Y_SCALAR) {
        in->kind = (init_kind)init_index(get_str(v, "an initializer"), v->loc);
        ynode none = {Y_SCALAR, v->loc, "", 0, 0, NULL, NULL};
        if (in->kind == I_CONSTANT || in->kind == I_MIXTURE || in->kind == I_CUSTOM)
            error_at(v->loc, "%s needs an argument: {%s: ...}", init_names[in->kind],
                     init_names[in->kind]);
        parse_init_args(in, &none, v->loc);
        return in;
    }
    if (v->kind != Y_MAP)
        error_at(v->loc, "an initializer is a name ('zeros', 'xavier_uniform', ...) or a "
                         "mapping ({normal: {std: 0.01}}), got %s", describe(v));
    int ki = -1;
    for (int i = 0; i < v->n; i++) {
        const char *k = v->keys[i]->str;
        if (!strcmp(k, "zero_abs_below")) {
            in->has_zero_abs_below = 1;
            in->zero_abs_below = get_num(v->items[i], "zero_abs_below");
            continue;
        }
        init_index(k, v->keys[i]->loc);
        if (ki >= 0)
            error_at(v->keys[i]->loc, "one initializer per parameter: got '%s' and '%s'",
                     v->keys[ki]->str, k);
        ki = i;
    }
    if (ki < 0)
        error_at(v->loc, "zero_abs_below modifies an initializer: write e.g. {uniform: [-10, "
                         "10], zero_abs_below: 5}");
    in->kind = (init_kind)init_index(v->keys[ki]->str, v->keys[ki]->loc);
    in->loc = v->keys[ki]->loc;
    parse_init_args(in, v->items[ki], v->keys[ki]->loc);
    return in;
}

static const char *const param_names_all[] = {"weight", "bias"};

static rule *parse_rules(ctx *c, const ynode *n, int *count)
{
    (void)c;
    expect_kind(n, Y_SEQ, "init");
    rule *rules = xalloc(sizeof *rules * (size_t)(n->n ? n->n : 1));
    for (int i = 0; i < n->n; i++) {
        const ynode *r = n->items[i];
        expect_kind(r, Y_MAP, "an init rule");
        rule *ru = &rules[i];
        ru->loc = r->loc;
        ru->layer = -1;
        ru->params = xalloc(sizeof *ru->params * (size_t)(r->n ? r->n : 1));
        for (int j = 0; j < r->n; j++) {
            const char *k = r->keys[j]->str;
            const ynode *v = r->items[j];
            if (!strcmp(k, "at")) {
                if (v->kind != Y_SCALAR || is_null(v))
                    error_at(v->loc, "'at' must be a module path like \"0\" or \"0.block1\", "
                                     "got %s", describe(v));
                ru->at = v->str;
                ru->at_loc = v->loc;
            } else if (!strcmp(k, "layer")) {
                const char *ln = get_str(v, "layer");
                int li = find_layer(ln);
                if (li < 0)
                    error_at(v->loc, "unknown layer type '%s'%s", ln,
                             did_you_mean(ln, layer_names, L_COUNT));
                ru->layer = li;
            } else {
                int known = 0;
                for (int q = 0; q < 2; q++)
                    known |= !strcmp(k, param_names_all[q]);
                if (!known) {
                    const char *cands[4] = {"at", "layer", "weight", "bias"};
                    error_at(r->keys[j]->loc, "unknown key '%s' in an init rule%s; expected "
                                              "'at', 'layer' or a parameter name ('weight', "
                                              "'bias')", k, did_you_mean(k, cands, 4));
                }
                rule_param *rp = &ru->params[ru->nparams++];
                rp->name = k;
                rp->loc = r->keys[j]->loc;
                rp->init = parse_init(v);
            }
        }
        if (!ru->nparams)
            error_at(r->loc, "this init rule initializes nothing: name a parameter, e.g. "
                             "'weight: zeros'");
    }
    *count = n->n;
    return rules;
}

/* ---- forward pass: shapes and ops ---------------------------------------------- */

typedef struct fwd {
    program *p;
    int cap_ops, cap_bufs;
    int nvisits;                /* module uses walked: bounded by MAX_MODULES */
    int64_t path_bytes;         /* bounded by MAX_PATH_BYTES */
    const loc *argloc;          /* from ctx: 'in' / 'dim' where written */
    const ynode *shared_keys;   /* the shared: mapping */
    loc *inferred_at;           /* by module id: the use that fixed a linear's 'in' */
    const module *sh;           /* the outermost shared module being walked, or NULL */
    loc sh_use;                 /* where it is used ({ref: ...}) */
} fwd;

static void add_op(fwd *f, module *m, const char *use_path, const shape *in, const shape *out,
                   int in_buf)
{
    program *p = f->p;
    if (p->nops == f->cap_ops) {
        int nc = f->cap_ops ? f->cap_ops * 2 : 16;
        p->ops = xrealloc_array(p->ops, (size_t)f->cap_ops, (size_t)nc, sizeof *p->ops);
        f->cap_ops = nc;
    }
    op *o = &p->ops[p->nops++];
    o->m = m;
    o->use_path = use_path;
    o->in = *in;
    o->out = *out;
    o->in_buf = in_buf;
    int alias = m->layer == L_IDENTITY || m->layer == L_FLATTEN;
    if (alias) {
        o->out_buf = in_buf;
    } else {
        if (p->nbufs == f->cap_bufs) {
            int nc = f->cap_bufs * 2;
            p->buf_numel = xrealloc_array(p->buf_numel, (size_t)f->cap_bufs, (size_t)nc,
                                          sizeof *p->buf_numel);
            f->cap_bufs = nc;
        }
        p->buf_numel[p->nbufs] = shape_numel(out);
        o->out_buf = p->nbufs++;
    }
}

static const char *join(const char *a, const char *b)
{
    return a[0] ? xfmt("%s.%s", a, b) : b;
}

/* A shape error in module m used at `use`.  Inside a shared module the
 * place to blame is where the shared module is used ({ref: ...}), since
 * its declaration was fine for its first use; otherwise the argument that
 * disagrees when it is written (argloc), else the use. */
static const char *shape_prefix(const fwd *f, const char *what)
{
    if (!f->sh)
        return xfmt("%s: ", what);
    int line = f->sh->loc.line;
    for (int i = 0; i < f->p->nshared; i++)
        if (f->p->shared[i] == f->sh)
            line = f->shared_keys->keys[i]->loc.line;
    return xfmt("%s in shared module '%s' (declared at line %d), used here: ", what,
                f->sh->shared_name, line);
}

static loc blame(const fwd *f, const module *m, loc use)
{
    if (f->sh)
        return f->sh_use;
    if (f->argloc[m->id].line)
        return f->argloc[m->id];
    return use;
}

static shape forward(fwd *f, module *m, shape in, int *buf, loc use, const char *path)
{
    program *p = f->p;
    if (++f->nvisits > MAX_MODULES)
        error_at(f->sh ? f->sh_use : use, "the forward pass goes through more than %d modules "
                 "(nngen's limit; a shared module counts at each use)", MAX_MODULES);
    const module *outer_sh = f->sh;
    if (m->shared_name) {
        if (!m->used)
            m->first_in = in;
        m->used++;
        if (!f->sh) {
            f->sh = m;
            f->sh_use = use;
        }
    }
    if (!m->is_layer) {
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
            in = forward(f, m->children[i].m, in, buf, m->children[i].loc, cp);
        }
        f->sh = outer_sh;
        return in;
    }
    shape out = in;
    const char *sh = shape_text(&in);
    const char *what = path[0] ? xfmt("%s '%s'", layer_names[m->layer], path)
                               : xfmt("%s (the model)", layer_names[m->layer]);
    switch (m->layer) {
    case L_LINEAR: {
        int64_t last = in.d[in.ndim - 1];
        if (in.ndim < 2)
            error_at(blame(f, m, use), "%s%s needs an input with features, got %s",
                     shape_prefix(f, "shape mismatch"), what, sh);
        if (m->in == 0) {
            m->in = last;
            f->inferred_at[m->id] = f->sh ? f->sh_use : use;
        } else if (m->in != last) {
            const char *why;
            if (f->argloc[m->id].line)
                why = xfmt("'in: %lld' at line %d", (long long)m->in, f->argloc[m->id].line);
            else
                why = xfmt("fixed by its first use at line %d", f->inferred_at[m->id].line);
            error_at(blame(f, m, use), "%s%s takes %lld input features (%s) but gets input %s "
                     "with %lld", shape_prefix(f, "shape mismatch"), what, (long long)m->in, why,
                     sh, (long long)last);
        }
        out.d[out.ndim - 1] = m->out;
        break;
    }
    case L_FLATTEN: {
        if (in.ndim < 2)
            error_at(blame(f, m, use), "%s%s needs at least 2 dimensions, got %s",
                     shape_prefix(f, "shape mismatch"), what, sh);
        int64_t n = 1;
        for (int i = 1; i < in.ndim; i++)
            n *= in.d[i];
        out.ndim = 2;
        out.d[1] = n;
        break;
    }
    case L_LOG_SOFTMAX:
    case L_SOFTMAX:
        if (m->dim < -in.ndim || m->dim >= in.ndim)
            error_at(blame(f, m, use), "%s%s: dim=%d is out of range for its input %s "
                     "(expected %d..%d)", shape_prefix(f, "shape mismatch"), what, m->dim, sh,
                     -in.ndim, in.ndim - 1);
        break;
    case L_RELU:
    case L_SIGMOID:
    case L_TANH:
    case L_IDENTITY:
    case L_LEAKY_RELU:
    case L_GELU:
        break;
    case L_COUNT:
        unreachable();
    }
    if (shape_numel(&out) > MAX_TENSOR_ELEMS)
        error_at(f->sh ? f->sh_use : use, "%sthe output of %s, %s, has more than %lld "
                 "elements (nngen's limit)", shape_prefix(f, "too large"), what,
                 shape_text(&out), MAX_TENSOR_ELEMS);
    add_op(f, m, path, &in, &out, *buf);
    *buf = p->ops[p->nops - 1].out_buf;
    f->sh = outer_sh;
    return out;
}

/* ---- naming: canonical paths, parameter list, state dict -------------------- */

static char *linear_extra(const module *m)
{
    return xfmt("in_features=%lld, out_features=%lld, bias=%s", (long long)m->in,
                (long long)m->out, m->bias ? "True" : "False");
}

static void make_extra(module *m)
{
    if (!m->is_layer) {
        m->extra = "";
        return;
    }
    char num[64];
    switch (m->layer) {
    case L_LINEAR:
        m->extra = linear_extra(m);
        return;
    case L_LEAKY_RELU:
        if (m->slope_is_int) { /* Python prints an int argument as an int, digits exact */
            const char *t = m->slope_text;
            int neg = *t == '-';
            t += *t == '-' || *t == '+';
            while (t[0] == '0' && t[1])
                t++;
            snprintf(num, sizeof num, "%s%s", neg && strcmp(t, "0") ? "-" : "", t);
        }
        else
            py_float_repr(num, sizeof num, m->slope);
        m->extra = xfmt("negative_slope=%s", num);
        return;
    case L_GELU:
        m->extra = "approximate='none'";
        return;
    case L_FLATTEN:
        m->extra = "start_dim=1, end_dim=-1";
        return;
    case L_LOG_SOFTMAX:
    case L_SOFTMAX:
        m->extra = xfmt("dim=%d", m->dim);
        return;
    case L_RELU:
    case L_SIGMOID:
    case L_TANH:
    case L_IDENTITY:
        m->extra = "";
        return;
    case L_COUNT:
        break;
    }
    unreachable();
}

static void add_tensor(program *p, module *m, const char *local, int ndim, const int64_t *shp,
                       int *cap)
{
    if (p->ntensors == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        p->tensors = xrealloc_array(p->tensors, (size_t)*cap, (size_t)nc, sizeof *p->tensors);
        *cap = nc;
    }
    tensor *t = &p->tensors[p->ntensors];
    t->name = join(m->path, local);
    t->local = local;
    t->owner = m;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shp[i];
        t->numel *= shp[i];
    }
    if (t->numel > MAX_TENSOR_ELEMS)
        error_at(m->loc, "parameter '%s' has %lld elements, more than nngen's limit of %lld",
                 t->name, (long long)t->numel, MAX_TENSOR_ELEMS);
    t->requires_grad = 1;
    t->offset = p->param_floats;
    /* keep every tensor 64-byte aligned inside its block */
    p->param_floats += (t->numel + 15) / 16 * 16;
    m->param_local[m->nparams] = local;
    m->param_ids[m->nparams++] = p->ntensors++;
}

typedef struct namer {
    program *p;
    int cap_tensors, cap_state;
} namer;

static void name_params(namer *nm, module *m, const char *path)
{
    if (m->path)
        return; /* a shared module: already named at its first place */
    m->path = path;
    make_extra(m);
    if (m->is_layer && m->layer == L_LINEAR) {
        if (m->in == 0)
            error_at(m->loc, "cannot infer this linear layer's input size: it is never used "
                             "in the model; give 'in:' or use it");
        int64_t w[2] = {m->out, m->in};
        add_tensor(nm->p, m, "weight", 2, w, &nm->cap_tensors);
        if (m->bias)
            add_tensor(nm->p, m, "bias", 1, &m->out, &nm->cap_tensors);
    }
    for (int i = 0; i < m->nchildren; i++)
        name_params(nm, m->children[i].m, join(path, m->children[i].name));
}

static void name_state(namer *nm, const module *m, const char *path)
{
    program *p = nm->p;
    for (int i = 0; i < m->nparams; i++) {
        if (p->nstate == nm->cap_state) {
            int nc = nm->cap_state ? nm->cap_state * 2 : 16;
            p->state = xrealloc_array(p->state, (size_t)nm->cap_state, (size_t)nc,
                                      sizeof *p->state);
            nm->cap_state = nc;
        }
        p->state[p->nstate].key = join(path, m->param_local[i]);
        p->state[p->nstate++].tensor = m->param_ids[i];
    }
    for (int i = 0; i < m->nchildren; i++)
        name_state(nm, m->children[i].m, join(path, m->children[i].name));
}

static void freeze(program *p, const module *m, int frozen)
{
    frozen |= m->frozen;
    if (frozen)
        for (int i = 0; i < m->nparams; i++)
            p->tensors[m->param_ids[i]].requires_grad = 0;
    for (int i = 0; i < m->nchildren; i++)
        freeze(p, m->children[i].m, frozen);
}

/* ---- init plan -------------------------------------------------------------------- */

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
    s->tensor = tid;
    s->init = in;
    s->m = m;
    s->fan_in = (int)m->in;
}

static const initializer default_init = {I_DEFAULT, {NULL, 0, 0}, 0, 0, 0, 0, 0, 0, NULL, 0,
                                         NULL, 0, 0};

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
    if (!m->is_layer || (r->layer >= 0 && (int)m->layer != r->layer))
        return;
    for (int k = 0; k < r->nparams; k++)
        for (int i = 0; i < m->nparams; i++)
            if (!strcmp(m->param_local[i], r->params[k].name)) {
                add_step(pl, m, m->param_ids[i], r->params[k].init);
                pl->matched++;
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
                             "'%s'", r->layer >= 0 ? layer_names[r->layer] : "layer",
                     r->layer >= 0 ? " layer with " : " with ", what,
                     target->path[0] ? target->path : "(root)");
        }
    }
}

/* Construct as PyTorch would: children in order, a leaf draws its
 * defaults (weight, then bias), then the module's own rules. */
static void construct(planner *pl, module *m)
{
    if (m->constructed)
        return;
    m->constructed = 1;
    for (int i = 0; i < m->nchildren; i++)
        construct(pl, m->children[i].m);
    for (int i = 0; i < m->nparams; i++)
        add_step(pl, m, m->param_ids[i], &default_init);
    run_rules(pl, m, m->rules, m->nrules);
}

/* ---- train ----------------------------------------------------------------------- */

static void parse_train(program *p, const ynode *n)
{
    expect_kind(n, Y_MAP, "train");
    static const char *const keys[] = {"loss", "optimizer"};
    check_keys(n, keys, 2, "train");
    train_cfg *t = &p->train;
    const ynode *l = map_get(n, "loss");
    if (!l)
        error_at(n->loc, "train needs 'loss' (mse or cross_entropy)");
    const char *ls = get_str(l, "loss");
    static const char *const losses[] = {"mse", "cross_entropy"};
    if (!strcmp(ls, "mse"))
        t->loss = LOSS_MSE;
    else if (!strcmp(ls, "cross_entropy"))
        t->loss = LOSS_CROSS_ENTROPY;
    else
        error_at(l->loc, "unknown loss '%s'%s; expected 'mse' or 'cross_entropy'", ls,
                 did_you_mean(ls, losses, 2));
    if (t->loss == LOSS_CROSS_ENTROPY && p->output.ndim != 2)
        error_at(l->loc, "cross_entropy needs the model's output to be [batch, classes], but it "
                         "is %s", shape_text(&p->output));
    const ynode *o = map_get(n, "optimizer");
    if (!o)
        error_at(n->loc, "train needs 'optimizer' ({sgd: {lr: 0.1}} or {adam: {}})");
    expect_kind(o, Y_MAP, "optimizer");
    static const char *const opts[] = {"sgd", "adam"};
    if (o->n != 1)
        error_at(o->loc, "optimizer holds exactly one of 'sgd' or 'adam'");
    check_keys(o, opts, 2, "optimizer");
    const ynode *a = o->items[0];
    if (!is_null(a))
        expect_kind(a, Y_MAP, "the optimizer's settings");
    const ynode *x;
    if (!strcmp(o->keys[0]->str, "sgd")) {
        static const char *const k[] = {"lr", "momentum", "dampening", "nesterov",
                                        "weight_decay"};
        t->opt = OPT_SGD;
        if (!is_null(a))
            check_keys(a, k, 5, "sgd");
        if (!(x = map_get(a, "lr")))
            error_at(o->keys[0]->loc, "sgd needs 'lr' (the learning rate)");
        t->lr = get_num(x, "lr");
        if ((x = map_get(a, "momentum")))
            t->momentum = get_num(x, "momentum");
        if ((x = map_get(a, "dampening")))
            t->dampening = get_num(x, "dampening");
        if ((x = map_get(a, "nesterov")))
            t->nesterov = get_bool(x, "nesterov");
        if ((x = map_get(a, "weight_decay")))
            t->weight_decay = get_num(x, "weight_decay");
        if (t->momentum < 0)
            error_at(map_get(a, "momentum")->loc, "momentum must be >= 0");
        if (t->nesterov && (t->momentum <= 0 || t->dampening != 0))
            error_at(map_get(a, "nesterov")->loc,
                     "nesterov momentum requires a momentum > 0 and zero dampening");
    } else {
        static const char *const k[] = {"lr", "betas", "eps", "weight_decay", "amsgrad"};
        t->opt = OPT_ADAM;
        t->lr = 0.001;
        t->beta1 = 0.9;
        t->beta2 = 0.999;
        t->eps = 1e-8;
        if (!is_null(a))
            check_keys(a, k, 5, "adam");
        if ((x = map_get(a, "lr")))
            t->lr = get_num(x, "lr");
        if ((x = map_get(a, "betas"))) {
            expect_kind(x, Y_SEQ, "betas");
            if (x->n != 2)
                error_at(x->loc, "betas takes two values [beta1, beta2], got %d", x->n);
            t->beta1 = get_num(x->items[0], "beta1");
            t->beta2 = get_num(x->items[1], "beta2");
            if (t->beta1 < 0 || t->beta1 >= 1)
                error_at(x->items[0]->loc, "beta1 must be in [0, 1), got %g", t->beta1);
            if (t->beta2 < 0 || t->beta2 >= 1)
                error_at(x->items[1]->loc, "beta2 must be in [0, 1), got %g", t->beta2);
        }
        if ((x = map_get(a, "eps"))) {
            t->eps = get_num(x, "eps");
            if (t->eps < 0)
                error_at(x->loc, "eps must be >= 0, got %g", t->eps);
        }
        if ((x = map_get(a, "weight_decay")))
            t->weight_decay = get_num(x, "weight_decay");
        if ((x = map_get(a, "amsgrad")))
            t->amsgrad = get_bool(x, "amsgrad");
    }
    if (t->lr < 0)
        error_at(map_get(a, "lr") ? map_get(a, "lr")->loc : o->loc, "lr must be >= 0, got %g",
                 t->lr);
    if (t->weight_decay < 0)
        error_at(map_get(a, "weight_decay")->loc, "weight_decay must be >= 0, got %g",
                 t->weight_decay);
}

/* ---- top level ----------------------------------------------------------------- */

static const char *file_stem(const char *file)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    char *s = xstrdup(b);
    char *dot = strrchr(s, '.');
    if (dot && dot != s)
        *dot = 0;
    return s;
}

static void check_names(ctx *c, const ynode *map, const char *what)
{
    expect_kind(map, Y_MAP, what);
    for (int i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str;
        loc l = map->keys[i]->loc;
        if (!is_identifier(k))
            error_at(l, "%s name '%s' must be a C-like identifier (letters, digits, '_')", what,
                     k);
        if (find_layer(k) >= 0)
            error_at(l, "%s name '%s' shadows the layer type '%s'; choose another name", what, k,
                     k);
        for (int j = 0; j < 3; j++)
            if (!strcmp(k, structural[j]))
                error_at(l, "%s name '%s' is reserved; choose another name", what, k);
        if (!strcmp(k, "init") || !strcmp(k, "frozen"))
            error_at(l, "%s name '%s' is reserved (a meta key); choose another name", what, k);
        if (map == c->shared && namemap_find(&c->block_ix, k) >= 0)
            error_at(l, "'%s' is both a block and a shared module; names must differ", k);
    }
}

program *check_program(const char *file, ynode *doc)
{
    program *p = xalloc(sizeof *p);
    p->file = file;
    ctx c = {0};
    c.p = p;
    if (doc->kind != Y_MAP)
        error_at(doc->loc, "a spec is a mapping with 'nngen: 1', 'input:' and 'model:', got %s",
                 describe(doc));
    static const char *const top[] = {"nngen", "name",  "input", "batch", "seed",
                                      "blocks", "shared", "model", "init",  "train"};
    check_keys(doc, top, 10, "the spec");

    const ynode *v = map_get(doc, "nngen");
    loc start = doc->loc; /* the top-level mapping: where a missing key belongs */
    if (!v)
        error_at(start, "missing 'nngen: 1' (the spec format version) at the top level");
    if (get_int(v, "nngen (the format version)", 0, 1000000) != 1)
        error_at(v->loc, "unsupported spec format version %s: this nngen reads version 1",
                 v->str);

    if ((v = map_get(doc, "name"))) {
        p->name = get_str(v, "name");
        if (!is_identifier(p->name) || strlen(p->name) > 64)
            error_at(v->loc, "name '%s' must be a C identifier of at most 64 characters (it "
                             "prefixes every generated symbol)", p->name);
    } else {
        p->name = file_stem(file);
        if (!is_identifier(p->name) || strlen(p->name) > 64)
            error_at(start, "the file name '%s' is not a C identifier: add 'name: NAME' to "
                            "the spec", p->name);
    }

    p->batch = 1;
    if ((v = map_get(doc, "batch")))
        p->batch = get_int(v, "batch", 1, MAX_DIM_SIZE);
    if ((v = map_get(doc, "seed"))) {
        p->has_seed = 1;
        p->seed = get_u64(v, "seed");
    }

    v = map_get(doc, "input");
    if (!v)
        error_at(start, "missing 'input:' (the shape of one example, e.g. input: [4])");
    if (v->kind == Y_SCALAR && !is_null(v)) {
        p->input.ndim = 2;
        p->input.d[1] = get_int(v, "input size", 1, MAX_DIM_SIZE);
    } else {
        expect_kind(v, Y_SEQ, "input (the shape of one example, e.g. [4])");
        if (v->n < 1 || v->n > NN_MAX_DIM - 1)
            error_at(v->loc, "input must have 1 to %d dimensions (the batch adds one), got %d",
                     NN_MAX_DIM - 1, v->n);
        p->input.ndim = v->n + 1;
        for (int i = 0; i < v->n; i++)
            p->input.d[i + 1] = get_int(v->items[i], "an input dimension", 1, MAX_DIM_SIZE);
    }
    p->input.d[0] = p->batch;
    if (shape_numel(&p->input) > MAX_TENSOR_ELEMS)
        error_at(v->loc, "the input batch %s has more than %lld elements (nngen's limit)",
                 shape_text(&p->input), MAX_TENSOR_ELEMS);

    if ((c.blocks = map_get(doc, "blocks"))) {
        if (is_null(c.blocks))
            c.blocks = NULL;
        else
            expect_kind(c.blocks, Y_MAP, "blocks (a mapping from block names to modules)");
    }
    if ((c.shared = map_get(doc, "shared"))) {
        if (is_null(c.shared))
            c.shared = NULL;
        else
            expect_kind(c.shared, Y_MAP, "shared (a mapping from names to modules)");
    }
    namemap_init(&c.block_ix, c.blocks);
    namemap_init(&c.shared_ix, c.shared);
    c.block_uses = xalloc(sizeof *c.block_uses * (size_t)(c.blocks ? c.blocks->n + 1 : 1));
    c.shared_height = xalloc(sizeof *c.shared_height * (size_t)(c.shared ? c.shared->n + 1 : 1));
    if (c.blocks)
        check_names(&c, c.blocks, "block");
    if (c.shared)
        check_names(&c, c.shared, "shared");

    /* shared modules first, in declaration order */
    int nsh = c.shared ? c.shared->n : 0;
    p->shared = xalloc(sizeof *p->shared * (size_t)(nsh ? nsh : 1));
    for (int i = 0; i < nsh; i++) {
        c.depth = c.maxdepth = 0;
        module *m = build(&c, c.shared->items[i]);
        c.shared_height[i] = c.maxdepth;
        if (m->shared_name)
            error_at(c.shared->items[i]->loc, "shared module '%s' is just a ref to '%s': "
                                              "use {ref: %s} directly",
                     c.shared->keys[i]->str, m->shared_name, m->shared_name);
        m->shared_name = c.shared->keys[i]->str;
        m->origin = xfmt("shared '%s'", m->shared_name);
        p->shared[p->nshared++] = m;
        c.nshared_built++;
    }

    const ynode *model = map_get(doc, "model");
    if (!model)
        error_at(start, "missing 'model:' (the network)");
    c.depth = c.maxdepth = 0;
    p->root = build(&c, model);
    if (p->root->shared_name)
        error_at(model->loc, "the model cannot be a shared module itself; write the module "
                             "directly under 'model:'");
    /* A block the model never uses is still checked (names, arguments,
     * cycles); its modules are then dropped. */
    for (int i = 0; c.blocks && i < c.blocks->n; i++)
        if (!c.block_uses[i]) {
            int keep = p->nmodules;
            c.depth = c.maxdepth = 0;
            instantiate_block(&c, i, c.blocks->keys[i]->loc);
            p->nmodules = keep;
        }

    /* forward pass: shapes */
    fwd f = {0};
    f.p = p;
    f.argloc = c.argloc;
    f.shared_keys = c.shared;
    f.inferred_at = xalloc(sizeof *f.inferred_at * (size_t)(p->nmodules + 1));
    f.cap_bufs = 16;
    p->nbufs = 1;
    p->buf_numel = xalloc(sizeof *p->buf_numel * (size_t)f.cap_bufs);
    p->buf_numel[0] = shape_numel(&p->input);
    int buf = 0;
    p->output = forward(&f, p->root, p->input, &buf, model->loc, "");
    for (int i = 0; i < p->nshared; i++)
        if (!p->shared[i]->used)
            error_at(c.shared->keys[i]->loc, "shared module '%s' is declared but never used "
                                             "(write {ref: %s} in the model)",
                     p->shared[i]->shared_name, p->shared[i]->shared_name);

    /* names */
    namer nm = {p, 0, 0};
    name_params(&nm, p->root, "");
    name_state(&nm, p->root, "");
    freeze(p, p->root, 0);

    /* memory: parameters, gradients, activations must fit */
    int64_t floats = p->param_floats * 2;
    for (int i = 0; i < p->nbufs; i++) {
        floats += p->buf_numel[i] * 2;
        if (floats > MAX_TOTAL_BYTES / 4)
            break;
    }
    if (floats > MAX_TOTAL_BYTES / 4)
        error_at(model->loc, "this network needs more than %lld bytes (nngen's limit for one "
                             "instance)", (long long)MAX_TOTAL_BYTES);

    /* the init plan: shared modules, the model, then top-level rules */
    planner pl = {0};
    pl.p = p;
    pl.dup = xalloc(sizeof *pl.dup * (size_t)(p->nmodules + 1));
    pl.dup_done = xalloc((size_t)p->nmodules + 1);
    pl.kidix = xalloc(sizeof *pl.kidix * (size_t)(p->nmodules + 1));
    pl.kidcap = xalloc(sizeof *pl.kidcap * (size_t)(p->nmodules + 1));
    for (int i = 0; i < p->nshared; i++)
        construct(&pl, p->shared[i]);
    construct(&pl, p->root);
    if ((v = map_get(doc, "init"))) {
        int cnt;
        rule *r = parse_rules(&c, v, &cnt);
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
        size_t h = hash_str(fn) & (hcap - 1);
        while (seen[h] && strcmp(p->custom[seen[h] - 1], fn) != 0)
            h = (h + 1) & (hcap - 1);
        if (!seen[h]) {
            p->custom[p->ncustom++] = fn;
            seen[h] = p->ncustom;
        }
    }

    if ((v = map_get(doc, "train")))
        parse_train(p, v);
    return p;
}
