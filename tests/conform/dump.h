/* Dump files for the conformance driver (see driver.c for the format).
 * Header-only, static functions; included by driver.c and dumpcat.c.
 * Malformed input is reported as PATH:LINE: MESSAGE on stderr, exit 1.
 */
#ifndef CONFORM_DUMP_H
#define CONFORM_DUMP_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cf_prog = "driver";

static void cf_die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", cf_prog);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

/* ------------------------------------------------------------------ */
/* Dump files                                                           */

typedef struct cf_dump_entry {
    char *name;
    int none;            /* "NAME none" */
    size_t numel;
    float *vals;
    size_t line;         /* header line number */
} cf_dump_entry;

typedef struct cf_dump {
    const char *path;
    size_t n, cap;
    cf_dump_entry *e;
} cf_dump;

static void *cf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", cf_prog);
        exit(1);
    }
    return p;
}

static char *cf_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t cap = 1 << 16, n = 0;
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", cf_prog, path, strerror(errno));
        exit(1);
    }
    buf = cf_xmalloc(cap);
    for (;;) {
        size_t got;
        if (n == cap) {
            char *nb;
            if (cap > ((size_t)-1) / 2) {
                fprintf(stderr, "%s: %s: file too large\n", cf_prog, path);
                exit(1);
            }
            nb = realloc(buf, cap * 2);
            if (!nb) {
                fprintf(stderr, "%s: out of memory\n", cf_prog);
                exit(1);
            }
            buf = nb;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "%s: %s: read error\n", cf_prog, path);
                exit(1);
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static void cf_bad_dump(const char *path, size_t line, const char *msg)
{
    fprintf(stderr, "%s: %s:%lu: %s\n", cf_prog, path, (unsigned long)line, msg);
    exit(1);
}

/* Parses one float: the whole of [s, end) must be consumed by strtof. */
static int cf_parse_float(const char *s, const char *end, float *out)
{
    char tmp[128];
    size_t n = (size_t)(end - s);
    char *ep;
    float v;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (tmp[0] == ' ' || tmp[0] == '\t' || tmp[0] == '\r' || tmp[0] == '\f'
        || tmp[0] == '\v')
        return -1;
    errno = 0;
    v = strtof(tmp, &ep);
    if (ep != tmp + n)
        return -1;
    if (errno == ERANGE && (v == HUGE_VALF || v == -HUGE_VALF))
        return -1;     /* overflow of a finite literal */
    *out = v;
    return 0;
}

static int cf_parse_count(const char *s, const char *end, size_t *out)
{
    size_t v = 0;
    if (s == end)
        return -1;
    if (end - s > 1 && s[0] == '0')
        return -1;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (((size_t)1 << 40) - 10) / 10)
            return -1; /* absurd size */
        v = v * 10 + (size_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static void cf_dump_load(cf_dump *d, const char *path)
{
    size_t len, pos = 0, line = 0;
    char *buf = cf_read_file(path, &len);
    d->path = path;
    d->n = d->cap = 0;
    d->e = NULL;
    if (memchr(buf, '\0', len))
        cf_bad_dump(path, 0, "file contains a NUL byte");
    if (len > 0 && buf[len - 1] != '\n')
        cf_bad_dump(path, 0, "missing final newline");
    while (pos < len) {
        char *ls = buf + pos, *le = memchr(ls, '\n', len - pos), *sp;
        cf_dump_entry *e;
        size_t i;
        line++;
        /* header "NAME COUNT" */
        sp = memchr(ls, ' ', (size_t)(le - ls));
        if (!sp || sp == ls)
            cf_bad_dump(path, line, "expected \"NAME NUMEL\"");
        if (memchr(sp + 1, ' ', (size_t)(le - sp - 1)) || memchr(ls, '\t', (size_t)(le - ls))
            || memchr(ls, '\r', (size_t)(le - ls)))
            cf_bad_dump(path, line, "expected \"NAME NUMEL\" (exactly one space)");
        if (d->n == d->cap) {
            cf_dump_entry *ne;
            d->cap = d->cap ? 2 * d->cap : 16;
            ne = realloc(d->e, d->cap * sizeof *ne);
            if (!ne) {
                fprintf(stderr, "%s: out of memory\n", cf_prog);
                exit(1);
            }
            d->e = ne;
        }
        e = &d->e[d->n];
        e->line = line;
        e->name = cf_xmalloc((size_t)(sp - ls) + 1);
        memcpy(e->name, ls, (size_t)(sp - ls));
        e->name[sp - ls] = '\0';
        for (i = 0; i < d->n; i++)
            if (strcmp(d->e[i].name, e->name) == 0)
                cf_bad_dump(path, line, "duplicate tensor name");
        e->vals = NULL;
        e->none = 0;
        e->numel = 0;
        pos = (size_t)(le - buf) + 1;
        if ((size_t)(le - sp - 1) == 4 && memcmp(sp + 1, "none", 4) == 0) {
            e->none = 1;
            d->n++;
            continue;
        }
        if (cf_parse_count(sp + 1, le, &e->numel))
            cf_bad_dump(path, line, "bad element count");
        e->vals = cf_xmalloc(e->numel * sizeof(float));
        for (i = 0; i < e->numel; i++) {
            char *vs = buf + pos, *ve;
            line++;
            if (pos >= len)
                cf_bad_dump(path, line, "file ends before all values of the tensor were read");
            ve = memchr(vs, '\n', len - pos);
            if (cf_parse_float(vs, ve, &e->vals[i]))
                cf_bad_dump(path, line, "expected one float (C99 hex float, as printf %a)");
            pos = (size_t)(ve - buf) + 1;
        }
        d->n++;
    }
    free(buf);
}

static void cf_dump_free(cf_dump *d)
{
    size_t i;
    for (i = 0; i < d->n; i++) {
        free(d->e[i].name);
        free(d->e[i].vals);
    }
    free(d->e);
    d->e = NULL;
    d->n = d->cap = 0;
}

/* The single tensor NAME of numel N from PATH; returns a malloc'd copy. */
static float *cf_load_single(const char *path, const char *name, size_t numel)
{
    cf_dump d;
    float *v;
    char msg[256];
    cf_dump_load(&d, path);
    if (d.n != 1 || strcmp(d.e[0].name, name) != 0 || d.e[0].none) {
        snprintf(msg, sizeof msg, "expected exactly one tensor named \"%s\"", name);
        cf_bad_dump(path, 1, msg);
    }
    if (d.e[0].numel != numel) {
        snprintf(msg, sizeof msg, "tensor %s has %lu values, expected %lu", name,
                 (unsigned long)d.e[0].numel, (unsigned long)numel);
        cf_bad_dump(path, 1, msg);
    }
    v = d.e[0].vals;
    d.e[0].vals = NULL;
    cf_dump_free(&d);
    return v;
}

#endif
