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
    const char *text;
    size_t len;
    int depth;
    /* the collections being read: for "never closed" at the end of input */
    char flow[MAX_NESTING + 1]; /* '[' or '{' for flow style, 0 for block */
    loc open[MAX_NESTING + 1];
} reader;

static loc mark_loc(const reader *r, yaml_mark_t m)
{
    loc l = {r->file, (int)m.line + 1, (int)m.column + 1};
    return l;
}

/* Unwinding through error_at skips yaml_parser_delete; the reader lives
 * on main's side through this pointer so it can be released. */
static reader *live_reader;

/* Byte offset of a 1-based line and column (libyaml counts columns in
 * characters, not bytes). */
static size_t offset_of(const reader *r, int line, int col)
{
    size_t i = 0;
    for (int l = 1; l < line && i < r->len; i++)
        if (r->text[i] == '\n')
            l++;
    for (int c = 1; c < col && i < r->len; c++) {
        i++;
        while (i < r->len && ((unsigned char)r->text[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

/* The location of byte offset off. */
static loc offset_loc(const reader *r, size_t off)
{
    loc l = {r->file, 1, 1};
    for (size_t i = 0; i < off && i < r->len; i++) {
        if (r->text[i] == '\n') {
            l.line++;
            l.col = 1;
        } else if (((unsigned char)r->text[i] & 0xC0) != 0x80) {
            l.col++;
        }
    }
    return l;
}

static void next(reader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->parser, ev))
        return;
    yaml_parser_t *p = &r->parser;
    if (p->error == YAML_MEMORY_ERROR)
        io_error("out of memory while reading the YAML");
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        /* reader errors carry a byte offset, not a mark */
        size_t off = p->problem_offset;
        if (strstr(problem, "trailing") || strstr(problem, "incomplete")) {
            /* blame the byte that starts the broken sequence */
            size_t k = off;
            while (k > 0 && off - k < 3 && off <= r->len &&
                   ((unsigned char)r->text[k] & 0xC0) != 0xC0)
                k--;
            if (k < r->len && ((unsigned char)r->text[k] & 0xC0) == 0xC0)
                error_at(offset_loc(r, k), "YAML syntax error: byte 0x%02X starts a UTF-8 "
                         "sequence that is not complete: a spec must be UTF-8 text",
                         (unsigned)(unsigned char)r->text[k]);
        }
        loc l = offset_loc(r, off);
        if (strstr(problem, "leading") && p->problem_value >= 0 && p->problem_value < 256)
            error_at(l, "YAML syntax error: byte 0x%02X is not valid UTF-8: a spec must be UTF-8 "
                        "text", (unsigned)p->problem_value);
        if (p->problem_value >= 0)
            error_at(l, "YAML syntax error: %s (0x%02X)%s", problem, (unsigned)p->problem_value,
                     strstr(problem, "UTF-8") ? ": a spec must be UTF-8 text" : "");
        error_at(l, "YAML syntax error: %s", problem);
    }
    loc l = mark_loc(r, p->problem_mark);
    size_t off = offset_of(r, l.line, l.col);
    char c = off < r->len ? r->text[off] : 0;
    if (strstr(problem, "cannot start any token")) {
        if (c == '\t')
            error_at(l, "YAML syntax error: a tab character here: YAML indentation and the space "
                        "after '-' or ':' must be spaces");
        if (c)
            error_at(l, "YAML syntax error: '%c' cannot start a value here (quote the value if "
                        "it is text)", c);
    }
    const char *hint = "";
    if (strstr(problem, "expected key") || strstr(problem, "expected '-'") ||
        strstr(problem, "expected <block end>"))
        hint = " (check the indentation of this line)";
    else if (strstr(problem, "mapping values are not allowed"))
        hint = " (a 'key: value' cannot follow a value on the same line: start a new, indented "
               "line or write {key: value})";
    const char *ctx = p->context ? p->context : NULL;
    /* Stuck at the end of the file (only blanks and comments follow) inside
     * a bracket or a quote: the place to fix is where it opens. */
    int at_end = 1;
    for (size_t i = off; i < r->len && at_end; i++) {
        if (r->text[i] == '#')
            while (i + 1 < r->len && r->text[i + 1] != '\n')
                i++;
        else
            at_end = r->text[i] == ' ' || r->text[i] == '\n' || r->text[i] == '\r' ||
                     r->text[i] == '\t';
    }
    if (at_end && ctx && strstr(ctx, "quoted scalar"))
        error_at(mark_loc(r, p->context_mark), "YAML syntax error: this quoted string is never "
                 "closed: no closing quote before the end of the file");
    if (at_end && r->depth > 0 && r->flow[r->depth])
        error_at(r->open[r->depth], "YAML syntax error: this '%c' is never closed: no matching "
                 "'%c' before the end of the file", r->flow[r->depth],
                 r->flow[r->depth] == '[' ? ']' : '}');
    if (ctx && p->context_mark.line != p->problem_mark.line)
        error_at(l, "YAML syntax error: %s %s that starts at line %d, column %d%s", problem,
                 ctx, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1, hint);
    if (ctx)
        error_at(l, "YAML syntax error: %s %s%s", problem, ctx, hint);
    error_at(l, "YAML syntax error: %s%s", problem, hint);
}

static const char anchor_help[] =
    "not supported: to use ONE module in several places (tied parameters) declare it under "
    "'shared:' and write '{ref: NAME}'; to make a fresh copy each time, define it under "
    "'blocks:' and write its name";

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

/* Keys seen in one mapping: an open-addressing hash set of key indices,
 * so that a mapping with many keys is checked in linear time. */
typedef struct keyset {
    int *slot;                  /* key index + 1; 0 is empty */
    size_t cap;
} keyset;

/* The index of an earlier key equal to keys[k], or -1 after adding it. */
static int keyset_add(keyset *ks, ynode **keys, int k)
{
    if ((size_t)(k + 1) * 2 > ks->cap) {
        size_t nc = ks->cap ? ks->cap * 2 : 16;
        int *ns = xalloc(sizeof *ns * nc);
        for (size_t i = 0; i < ks->cap; i++)
            if (ks->slot[i]) {
                size_t h = hash_str(keys[ks->slot[i] - 1]->str) & (nc - 1);
                while (ns[h])
                    h = (h + 1) & (nc - 1);
                ns[h] = ks->slot[i];
            }
        ks->slot = ns;
        ks->cap = nc;
    }
    size_t h = hash_str(keys[k]->str) & (ks->cap - 1);
    while (ks->slot[h]) {
        if (strcmp(keys[ks->slot[h] - 1]->str, keys[k]->str) == 0)
            return ks->slot[h] - 1;
        h = (h + 1) & (ks->cap - 1);
    }
    ks->slot[h] = k + 1;
    return -1;
}

static void parse_map(reader *r, ynode *n)
{
    int cap = 0;
    keyset ks = {NULL, 0};
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
            error_at(kl, "mapping keys must be plain names, not %s",
                     key->kind == Y_SEQ ? "a list" : "a mapping");
        if (!key->quoted && strcmp(key->str, "<<") == 0)
            error_at(kl, "YAML merge keys ('<<') are not supported: to reuse a definition, "
                         "define it under 'blocks:' and write its name (a fresh copy), or "
                         "declare it under 'shared:' and write '{ref: NAME}' (the same module)");
        if (n->n == cap) {
            int nc = cap ? cap * 2 : 4;
            n->items = xrealloc_array(n->items, (size_t)cap, (size_t)nc, sizeof *n->items);
            n->keys = xrealloc_array(n->keys, (size_t)cap, (size_t)nc, sizeof *n->keys);
            cap = nc;
        }
        n->keys[n->n] = key;
        int dup = keyset_add(&ks, n->keys, n->n);
        if (dup >= 0)
            error_at(kl, "duplicate key '%s' (first given at line %d, column %d)", key->str,
                     n->keys[dup]->loc.line, n->keys[dup]->loc.col);
        yaml_event_t vev;
        next(r, &vev);
        n->items[n->n++] = parse_node(r, &vev);
    }
}

/* Consumes ev: everything needed is copied out and the event deleted
 * before anything can fail, so an error unwinds without leaking. */
static ynode *parse_node(reader *r, yaml_event_t *ev)
{
    yaml_event_type_t type = ev->type;
    loc l = mark_loc(r, ev->start_mark);
    const unsigned char *anchor = NULL, *tag = NULL;
    int implicit = 1, flow = 0;
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
        flow = ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
        n->kind = Y_SEQ;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        implicit = ev->data.mapping_start.implicit;
        flow = ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
        n->kind = Y_MAP;
        break;
    default:
        break;
    }
    if (type == YAML_ALIAS_EVENT)
        anchor = ev->data.alias.anchor;
    const char *anchortext = anchor ? xstrdup((const char *)anchor) : NULL;
    const char *tagtext = NULL;
    if (tag && !implicit) {
        static const char std[] = "tag:yaml.org,2002:";
        tagtext = strncmp((const char *)tag, std, sizeof std - 1) == 0
                      ? xfmt("!!%s", (const char *)tag + sizeof std - 1)
                      : xstrdup((const char *)tag);
    }
    yaml_event_delete(ev);

    if (type == YAML_ALIAS_EVENT)
        error_at(l, "YAML aliases ('*%s') are %s", anchortext, anchor_help);
    if (anchortext)
        error_at(l, "YAML anchors ('&%s') and aliases are %s", anchortext, anchor_help);
    if (type != YAML_SCALAR_EVENT && type != YAML_SEQUENCE_START_EVENT &&
        type != YAML_MAPPING_START_EVENT)
        error_at(l, "unexpected YAML structure");
    if (tagtext)
        error_at(l, "YAML tags ('%s') are not supported: write plain values (nngen decides the "
                    "type of each value from where it is used)", tagtext);
    if (type == YAML_SCALAR_EVENT) {
        if (!n->str)
            error_at(l, "NUL character in a string");
        return n;
    }
    if (++r->depth > MAX_NESTING)
        error_at(l, "nesting deeper than %d levels (nngen's limit)", MAX_NESTING);
    r->flow[r->depth] = flow ? (type == YAML_SEQUENCE_START_EVENT ? '[' : '{') : 0;
    r->open[r->depth] = l;
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
    r.text = text;
    r.len = len;
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
