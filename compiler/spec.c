/* spec.c: typed reads of YAML nodes, with errors at the node (shared by
 * every checking phase), and shape helpers. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nngen.h"

size_t hash_str(const char *s)
{
    size_t h = (size_t)14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211u;
    return h;
}

/* ---- node helpers ------------------------------------------------------ */

const char *describe(const ynode *n)
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

int is_null(const ynode *n)
{
    return n->kind == Y_SCALAR && !n->quoted &&
           (n->str[0] == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
            strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

ynode *map_get(const ynode *m, const char *key)
{
    if (!m || m->kind != Y_MAP)
        return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->str, key) == 0)
            return m->items[i];
    return NULL;
}

void expect_kind(const ynode *n, ykind k, const char *what)
{
    if (n->kind != k)
        error_at(n->loc, "%s must be %s, got %s", what,
                 k == Y_SEQ ? "a list" : k == Y_MAP ? "a mapping" : "a single value",
                 describe(n));
}

/* Unknown keys are errors: report the first with the nearest allowed key. */
void check_keys(const ynode *m, const char *const *allowed, int n, const char *what)
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

int64_t get_int(const ynode *n, const char *what, int64_t min, int64_t max)
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

uint64_t get_u64(const ynode *n, const char *what)
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

int is_int_text(const char *s)
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

/* Every number of a spec is used as a float (parameters, initializer
   arguments, optimizer settings), so it must be one: its magnitude at most
   FLT_MAX, and a nonzero value not below the smallest float (which would
   round to zero).  Both ends are refused alike, where they are written. */
double get_num(const ynode *n, const char *what)
{
    if (n->kind != Y_SCALAR || n->quoted || is_null(n))
        error_at(n->loc, "%s must be a number, got %s", what, describe(n));
    char *end;
    errno = 0;
    double v = strtod(n->str, &end);
    if (end == n->str || (*end && !strpbrk(n->str, "xXnN")))
        error_at(n->loc, "%s must be a number, got %s", what, describe(n));
    if (*end || isnan(v) || isinf(v) ||
        /* strtod also takes hex and "inf"; YAML numbers are decimal */
        strpbrk(n->str, "xXnN")) {
        if (!*end && isinf(v) && !strpbrk(n->str, "xXnN"))
            error_at(n->loc, "%s is out of float's range: %s (the largest magnitude is "
                             "3.4028235e+38)", what, n->str);
        error_at(n->loc, "%s must be a finite decimal number, got %s", what, describe(n));
    }
    if (fabs(v) > FLT_MAX)
        error_at(n->loc, "%s is out of float's range: %s (the largest magnitude is "
                         "3.4028235e+38)", what, n->str);
    if (v != 0 && fabs(v) < 1.4012984643248171e-45) /* FLT_TRUE_MIN (C11) */
        error_at(n->loc, "%s is too small for a float: %s (the smallest nonzero magnitude is "
                         "1.4e-45; write 0 for zero)", what, n->str);
    if (v == 0 && errno == ERANGE)
        error_at(n->loc, "%s is too small for a float: %s (the smallest nonzero magnitude is "
                         "1.4e-45; write 0 for zero)", what, n->str);
    return v;
}

int get_bool(const ynode *n, const char *what)
{
    if (n->kind == Y_SCALAR && !n->quoted) {
        if (!strcmp(n->str, "true") || !strcmp(n->str, "True") || !strcmp(n->str, "TRUE"))
            return 1;
        if (!strcmp(n->str, "false") || !strcmp(n->str, "False") || !strcmp(n->str, "FALSE"))
            return 0;
    }
    error_at(n->loc, "%s must be true or false, got %s", what, describe(n));
}

const char *get_str(const ynode *n, const char *what)
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

const char *shape_text(const shape *s)
{
    char buf[256];
    shape_str(buf, sizeof buf, s, 1);
    return xstrdup(buf);
}

