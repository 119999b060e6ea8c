/* yaml.c: read one YAML document with libyaml's event parser into a tree
 * of ynodes, each with its location.  The event API (rather than the
 * document API) lets us see anchors, aliases, tags and document
 * boundaries, which nngen rejects with explanations. */
#include <string.h>
#include <yaml.h>

#include "nngen.h"

typedef struct reader {
    yaml_parser_t parser;
    const char *file;
    int depth;
} reader;

static loc mark_loc(const reader *r, yaml_mark_t m)
{
    loc l = {r->file, (int)m.line + 1, (int)m.column + 1};
    return l;
}

/* Unwinding through error_at skips yaml_parser_delete; the reader lives
 * on main's side through this pointer so it can be released. */
static reader *live_reader;

static void next(reader *r, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&r->parser, ev)) {
        yaml_parser_t *p = &r->parser;
        loc l = mark_loc(r, p->problem_mark);
        const char *problem = p->problem ? p->problem : "malformed YAML";
        if (p->context)
            error_at(l, "YAML syntax error: %s %s", problem, p->context);
        error_at(l, "YAML syntax error: %s", problem);
    }
}

static const char anchor_help[] =
    "YAML anchors and aliases are not supported: to use ONE module in several places "
    "(tied parameters) declare it under 'shared:' and write '{ref: NAME}'; to make a fresh "
    "copy each time, define it under 'blocks:' and write its name";

static ynode *parse_node(reader *r, yaml_event_t *ev);

static void parse_seq(reader *r, ynode *n)
{
    int cap = 0;
    for (;;) {
        yaml_event_t ev;
        next(r, &ev);
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return;
        }
        ynode *item = parse_node(r, &ev);
        if (n->n == cap) {
            int nc = cap ? cap * 2 : 4;
            n->items = xrealloc_array(n->items, (size_t)cap, (size_t)nc, sizeof *n->items);
            cap = nc;
        }
        n->items[n->n++] = item;
    }
}

static void parse_map(reader *r, ynode *n)
{
    int cap = 0;
    for (;;) {
        yaml_event_t ev;
        next(r, &ev);
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return;
        }
        loc kl = mark_loc(r, ev.start_mark);
        ynode *key = parse_node(r, &ev);
        if (key->kind != Y_SCALAR)
            error_at(kl, "mapping keys must be plain names, not a %s",
                     key->kind == Y_SEQ ? "list" : "mapping");
        if (!key->quoted && strcmp(key->str, "<<") == 0)
            error_at(kl, "YAML merge keys ('<<') are not supported: use a block under 'blocks:' "
                         "to reuse a definition");
        for (int i = 0; i < n->n; i++)
            if (strcmp(n->keys[i]->str, key->str) == 0)
                error_at(kl, "duplicate key '%s' (first given at line %d)", key->str,
                         n->keys[i]->loc.line);
        yaml_event_t vev;
        next(r, &vev);
        ynode *val = parse_node(r, &vev);
        if (n->n == cap) {
            int nc = cap ? cap * 2 : 4;
            n->items = xrealloc_array(n->items, (size_t)cap, (size_t)nc, sizeof *n->items);
            n->keys = xrealloc_array(n->keys, (size_t)cap, (size_t)nc, sizeof *n->keys);
            cap = nc;
        }
        n->keys[n->n] = key;
        n->items[n->n++] = val;
    }
}

/* Consumes ev: everything needed is copied out and the event deleted
 * before anything can fail, so an error unwinds without leaking. */
static ynode *parse_node(reader *r, yaml_event_t *ev)
{
    yaml_event_type_t type = ev->type;
    loc l = mark_loc(r, ev->start_mark);
    const unsigned char *anchor = NULL, *tag = NULL;
    int implicit = 1;
    ynode *n = xalloc(sizeof *n);
    n->loc = l;
    switch (type) {
    case YAML_SCALAR_EVENT: {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        implicit = ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit;
        size_t len = ev->data.scalar.length;
        char *s = xalloc(len + 1);
        memcpy(s, ev->data.scalar.value, len);
        n->kind = Y_SCALAR;
        n->str = s;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (strlen(s) != len)
            n->str = NULL; /* NUL inside: reported below */
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        implicit = ev->data.sequence_start.implicit;
        n->kind = Y_SEQ;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        implicit = ev->data.mapping_start.implicit;
        n->kind = Y_MAP;
        break;
    default:
        break;
    }
    int has_anchor = anchor != NULL;
    const char *tagtext = tag && !implicit ? xstrdup((const char *)tag) : NULL;
    yaml_event_delete(ev);

    if (type == YAML_ALIAS_EVENT || has_anchor)
        error_at(l, "%s", anchor_help);
    if (type != YAML_SCALAR_EVENT && type != YAML_SEQUENCE_START_EVENT &&
        type != YAML_MAPPING_START_EVENT)
        error_at(l, "unexpected YAML structure");
    if (tagtext)
        error_at(l, "YAML tags ('%s') are not supported; write plain values", tagtext);
    if (type == YAML_SCALAR_EVENT) {
        if (!n->str)
            error_at(l, "NUL character in a string");
        return n;
    }
    if (++r->depth > MAX_NESTING)
        error_at(l, "nesting deeper than %d levels (nngen's limit)", MAX_NESTING);
    if (type == YAML_SEQUENCE_START_EVENT)
        parse_seq(r, n);
    else
        parse_map(r, n);
    r->depth--;
    return n;
}

static void release_reader(void)
{
    if (live_reader) {
        yaml_parser_delete(&live_reader->parser);
        live_reader = NULL;
    }
}

void yaml_release(void)
{
    release_reader();
}

ynode *yaml_load(const char *path, const char *text, size_t len)
{
    static reader r;
    release_reader();
    memset(&r, 0, sizeof r);
    r.file = path;
    if (!yaml_parser_initialize(&r.parser))
        io_error("cannot initialize the YAML parser");
    live_reader = &r;
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);

    /* Events that carry memory are deleted as we go; on error_at the
     * parser is released by the next yaml_load or by yaml_release(). */
    yaml_event_t ev;
    next(&r, &ev); /* STREAM-START */
    yaml_event_delete(&ev);
    next(&r, &ev);
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        loc l = {path, 1, 1};
        error_at(l, "the spec is empty: expected a mapping with 'nngen: 1', 'input:' and "
                    "'model:'");
    }
    /* DOCUMENT-START */
    yaml_event_delete(&ev);
    next(&r, &ev);
    ynode *root = parse_node(&r, &ev);
    next(&r, &ev); /* DOCUMENT-END */
    yaml_event_delete(&ev);
    next(&r, &ev);
    if (ev.type != YAML_STREAM_END_EVENT) {
        loc l = mark_loc(&r, ev.start_mark);
        yaml_event_delete(&ev);
        error_at(l, "more than one YAML document: a spec is exactly one document (remove "
                    "this '---' and what follows, or put it in its own file)");
    }
    yaml_event_delete(&ev);
    release_reader();
    return root;
}
