/* dot.c: a Graphviz picture of the network (`nngen --dot SPEC`).
 *
 *   - every Sequential or Residual is a cluster (subgraph cluster_ID)
 *     labelled with its path, its class and where it comes from (block,
 *     shared, frozen); a Residual's sum is a "+" node (s<id>) inside it,
 *     in short left-justified lines that the edge through the middle of
 *     the cluster does not cross;
 *   - every layer is one node labelled with its path, its torch print form
 *     (Linear(in_features=4, out_features=8, bias=True)) and its parameter
 *     shapes; a module is drawn once, at its canonical place (the first in
 *     the pre-order walk), however many times it is used;
 *   - the data flow: for every op in forward order, an edge from where each
 *     of its inputs is made (the input, a layer, a sum) to it, and one edge
 *     from the last to the output, each labelled with the activation shape
 *     (batch first) it carries; a module used several times gets an edge
 *     in (and out) per use, labelled with the use's path.
 * Node ids are m<module id>, clusters cluster_<module id>: the output is a
 * function of the program only.
 */
#include <stdlib.h>
#include <string.h>

#include "nngen.h"

#define MAX_LISTED_USES 4

typedef struct dotw {
    FILE *f;
    const program *p;
    int *nuse;                  /* by module id: places in the expanded tree */
    strbuf *uses;               /* by module id: the first few of those paths */
    int *nops;                  /* by module id: ops (forward uses) */
    char *drawn;
} dotw;

/* s inside a "..." DOT string: quotes and backslashes escaped, a newline
 * as the visible two characters \n (DOT "\\n": a name's newline must not
 * read as the line break "\n" that separates a label's lines), other control
 * characters and invalid UTF-8 as '?'. */
static void dot_escape(strbuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned long cp;
        int n = utf8_decode(u, &cp);
        if (n == 0) {
            sb_putc(b, '?');
            u++;
            continue;
        }
        if (cp == '"' || cp == '\\')
            sb_printf(b, "\\%c", (char)cp);
        else if (cp == '\n')
            sb_puts(b, "\\\\n");
        else if (cp < 32 || cp == 127)
            sb_putc(b, '?');
        else
            for (int i = 0; i < n; i++)
                sb_putc(b, (char)u[i]);
        u += n;
    }
}

static const char *esc(const char *s)
{
    strbuf b = {0};
    dot_escape(&b, s);
    char *r = xstrdup(b.s ? b.s : "");
    free(b.s);
    return r;
}

static void collect_uses(dotw *d, const module *m, strbuf *path)
{
    int k = ++d->nuse[m->id];
    if (k <= MAX_LISTED_USES)
        sb_printf(&d->uses[m->id], "%s%s", k > 1 ? ", " : "",
                  path->len ? path->s : "(model)");
    for (int i = 0; i < m->nchildren; i++) {
        size_t len = path->len;
        if (len)
            sb_putc(path, '.');
        sb_puts(path, m->children[i].name);
        collect_uses(d, m->children[i].m, path);
        path->len = len;
        if (path->s)
            path->s[len] = 0;
    }
}

/* "0.pre" or "0.pre, 1.0, 2.inner.pre, ... (5 uses)" (escaped) */
static const char *use_list(const dotw *d, const module *m)
{
    const char *s = esc(d->uses[m->id].s ? d->uses[m->id].s : "");
    if (d->nuse[m->id] > MAX_LISTED_USES)
        return xfmt("%s, ... (%d uses)", s, d->nuse[m->id]);
    return s;
}

static int is_frozen(const program *p, const module *m)
{
    if (m->frozen)
        return 1;
    for (int i = 0; i < m->nparams; i++)
        if (!p->tensors[m->tens_ids[i]].requires_grad)
            return 1;
    return 0;
}

static void indent(const dotw *d, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("    ", d->f);
}

static void draw_layer(dotw *d, const module *m, int depth)
{
    const program *p = d->p;
    strbuf b = {0};
    if (m->shared_name)
        sb_printf(&b, "shared '%s': ", esc(m->shared_name));
    sb_printf(&b, "%s\\n%s(%s)", use_list(d, m), module_class(m), esc(m->extra));
    for (int i = 0; i < m->nparams + m->nbuffers; i++) {
        const tensor *t = &p->tensors[m->tens_ids[i]];
        if (m->tens_tied && m->tens_tied[i]) {
            sb_printf(&b, "\\n%s = %s", esc(m->tens_local[i]), esc(t->name));
            continue;
        }
        sb_printf(&b, "\\n%s [", esc(t->local));
        for (int k = 0; k < t->ndim; k++)
            sb_printf(&b, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        sb_putc(&b, ']');
    }
    int frozen = is_frozen(p, m);
    if (frozen)
        sb_puts(&b, "\\nfrozen");
    const char *fill = d->nops[m->id] > 1 ? "#fde3c2" : frozen ? "#e4e4e4"
                       : m->nparams      ? "#dbe8fb"
                                         : "#f7f7f7";
    indent(d, depth);
    fprintf(d->f, "m%d [label=\"%s\", fillcolor=\"%s\"%s];\n", m->id, b.s, fill,
            frozen ? ", style=\"rounded,filled,dashed\"" : "");
    free(b.s);
}

/* Draws m at its canonical place; returns the nodes drawn inside it. */
static int draw(dotw *d, const module *m, int depth, int frozen_above)
{
    if (d->drawn[m->id])
        return 0;
    d->drawn[m->id] = 1;
    if (m->op) {
        draw_layer(d, m, depth);
        return 1;
    }
    int frozen = frozen_above || m->frozen;
    strbuf b = {0};
    if (m == d->p->root)
        sb_printf(&b, "%s\\l", esc(d->p->name));
    else
        sb_printf(&b, "%s\\l", use_list(d, m));
    sb_printf(&b, "%s\\l", module_class(m));
    if (m->shared_name)
        sb_printf(&b, "shared '%s'", esc(m->shared_name));
    else if (m->origin)
        sb_puts(&b, esc(m->origin));
    if (m->frozen)
        sb_puts(&b, m->shared_name || m->origin ? ", frozen" : "frozen");
    if (m->shared_name || m->origin || m->frozen)
        sb_puts(&b, "\\l");
    indent(d, depth);
    fprintf(d->f, "subgraph cluster_%d {\n", m->id);
    indent(d, depth + 1);
    fprintf(d->f, "label=\"%s\";\n", b.s);
    free(b.s);
    indent(d, depth + 1);
    fprintf(d->f, "style=\"rounded%s\"; color=\"#8a8a8a\"; bgcolor=\"%s\";\n",
            m->frozen ? ",dashed" : "", frozen ? "#f0f0f0" : "#fcfcfc");
    int nodes = 0;
    for (int i = 0; i < m->nchildren; i++)
        nodes += draw(d, m->children[i].m, depth + 1, frozen);
    if (m->kind != MOD_SEQUENTIAL) {
        indent(d, depth + 1);
        fprintf(d->f, "s%d [label=\"+\", shape=circle, style=\"\", width=0.3];\n", m->id);
        nodes++;
    }
    if (!nodes) {
        /* Graphviz drops a cluster without nodes: say why it is empty */
        indent(d, depth + 1);
        fprintf(d->f, "e%d [label=\"%s\", shape=plaintext, style=\"\"];\n", m->id,
                m->nchildren ? "(its modules are drawn elsewhere)" : "(empty)");
        nodes = 1;
    }
    indent(d, depth);
    fputs("}\n", d->f);
    return nodes;
}

static const char *shape_label(const shape *s)
{
    char buf[128];
    shape_str(buf, sizeof buf, s, 1);
    return xstrdup(buf);
}

static void edge(dotw *d, const char *from, const op *tail, const char *to, const op *head,
                 const shape *s)
{
    strbuf b = {0};
    sb_puts(&b, shape_label(s));
    int tmulti = tail && d->nops[tail->m->id] > 1;
    int hmulti = head && d->nops[head->m->id] > 1;
    if (tmulti && hmulti)
        sb_printf(&b, "\\nfrom use %s to use %s", esc(tail->use_path), esc(head->use_path));
    else if (tmulti)
        sb_printf(&b, "\\nfrom use %s", esc(tail->use_path));
    else if (hmulti)
        sb_printf(&b, "\\nuse %s", esc(head->use_path));
    fprintf(d->f, "    %s -> %s [label=\"%s\"];\n", from, to, b.s);
    free(b.s);
}

void emit_dot(FILE *f, const program *p)
{
    dotw d = {0};
    d.f = f;
    d.p = p;
    size_t nm = (size_t)p->nmodules + 1;
    d.nuse = xalloc(sizeof *d.nuse * nm);
    d.uses = xalloc(sizeof *d.uses * nm);
    d.nops = xalloc(sizeof *d.nops * nm);
    d.drawn = xalloc(nm);
    strbuf path = {0};
    collect_uses(&d, p->root, &path);
    free(path.s);
    for (int i = 0; i < p->nops; i++)
        d.nops[p->ops[i].m->id]++;

    const char *file = strrchr(p->file, '/');
    file = file ? file + 1 : p->file;
    fprintf(f, "// nngen %s: the network of %s (nngen --dot)\n", NNGEN_VERSION,
            esc(file)); /* no newline can reach the comment: esc() writes \n */
    fprintf(f, "digraph \"%s\" {\n", esc(p->name));
    fprintf(f, "    graph [fontname=\"Helvetica\", fontsize=12, rankdir=TB, nodesep=0.3, "
               "ranksep=0.3, labeljust=l, labelloc=t, label=\"%s (%s), batch %lld\"];\n",
            esc(p->name), esc(file), (long long)p->batch);
    fputs("    node [fontname=\"Helvetica\", fontsize=11, shape=box, "
          "style=\"rounded,filled\", fillcolor=\"#f7f7f7\"];\n"
          "    edge [fontname=\"Helvetica\", fontsize=10, color=\"#404040\"];\n"
          "    input [label=\"input\", shape=oval, fillcolor=\"#ffffff\"];\n"
          "    output [label=\"output\", shape=oval, fillcolor=\"#ffffff\"];\n",
          f);
    draw(&d, p->root, 1, 0);
    for (int i = 0; i < p->nmodules; i++)
        free(d.uses[i].s);

    /* the node of each op: its layer's, or its residual's sum */
    const char **node = xalloc(sizeof *node * (size_t)(p->nops + 1));
    for (int i = 0; i < p->nops; i++)
        node[i] = xfmt("%s%d", p->ops[i].m->op ? "m" : "s", p->ops[i].m->id);
    for (int i = 0; i < p->nops; i++) {
        const op *o = &p->ops[i];
        for (int k = 0; k < o->nin; k++) {
            int pr = p->values[o->in[k]].producer;
            edge(&d, pr < 0 ? "input" : node[pr], pr < 0 ? NULL : &p->ops[pr], node[i], o,
                 &op_in(p, o, k)->shape);
        }
    }
    int last = p->nops - 1;
    edge(&d, last < 0 ? "input" : node[last], last < 0 ? NULL : &p->ops[last], "output", NULL,
         &p->output);
    /* tied weights (SPEC 1.2.5): a dashed edge from the layer that declares
       the weight to each layer that uses it */
    for (int i = 0; i < p->nmodules; i++) {
        const module *m = p->modules[i];
        for (int k = 0; m->tens_tied && k < m->nparams; k++)
            if (m->tens_tied[k]) {
                const tensor *t = &p->tensors[m->tens_ids[k]];
                fprintf(f, "    m%d -> m%d [label=\"tied: %s\", style=dashed, "
                           "color=\"#2060c0\", fontcolor=\"#2060c0\", constraint=false];\n",
                        t->owner->id, m->id, esc(t->name));
            }
        if (m->has_borrow) {
            const tensor *t = &p->tensors[m->borrow];
            fprintf(f, "    m%d -> m%d [label=\"tied: %s.T\", style=dashed, "
                       "color=\"#2060c0\", fontcolor=\"#2060c0\", constraint=false];\n",
                    t->owner->id, m->id, esc(t->name));
        }
    }
    fputs("}\n", f);
}
