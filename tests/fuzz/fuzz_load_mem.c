/* fuzz_load_mem.c: libFuzzer target for nn_load_mem (runtime/safetensors.c),
 * and for nn_load against it.
 *
 * The model is tests/fuzz/load_model.yaml, as for fuzz-load (fzload.c/.h,
 * compiled by nngen at build time: a Linear shared at three places, so
 * alias keys; a Linear without bias; a frozen one).  Each input is loaded
 * from libFuzzer's own buffer (exactly the input's size: AddressSanitizer
 * sees any read past it) into an instance whose data block holds a known
 * bit pattern.  The contract (include/nngen/rt.h):
 *
 *   - nn_load_mem returns 0 or -1, and never writes the input;
 *   - on -1: nn_error() starts with "nn_load_mem: " and says more, and the
 *     model is unchanged: the whole data block (every parameter, and the
 *     padding between them) and the tensor table are bit-identical to
 *     before;
 *   - on 0: every tensor was written from the input (loading it into a
 *     second, different pattern gives bit-identical tensors), nothing
 *     outside the tensors was written, the tensor table is unchanged;
 *     nn_save_mem's size query, nn_save_mem and nn_save_to (a writer that
 *     collects) give the same bytes, which nn_load_mem takes back with the
 *     same values, and a second save gives the same bytes;
 *   - nn_load of the same bytes as a file (one input in 8, by a hash of the
 *     input, and every input with NNGEN_FUZZ_FILE_EVERY=1) gives the same
 *     verdict, the same message after its "PATH: " prefix, and the same
 *     tensors.
 *
 * Violations print what broke and abort(), so that libFuzzer reports them.
 * NNGEN_FUZZ_VERBOSE=1 prints what nn_load_mem says about each input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nngen/rt.h>

#include "fzload.h"

static char tmpdir[4096], in_path[4200];
static fzload *net, *net2;
static nn_model *m, *m2;
static float *block, *block2;   /* the data blocks */
static size_t nfloats;
static unsigned char *covered;  /* 1 for the floats of some tensor */
static float *snap, *first;
static nn_tensor *table_snap;
static int ntensors;
static int verbose;
static unsigned file_every = 8;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    unlink(in_path);
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

#define VIOLATION(...)                                                                       \
    do {                                                                                     \
        say("\n==== fuzz_load_mem: CONTRACT VIOLATION: ");                                    \
        say(__VA_ARGS__);                                                                    \
        say("\n");                                                                           \
        remove_tmpdir();                                                                     \
        abort();                                                                             \
    } while (0)

static void die(const char *what)
{
    say("fuzz_load_mem: %s: %s\n", what, strerror(errno));
    abort();
}

static void fill(float *b, uint32_t tag)
{
    for (size_t i = 0; i < nfloats; i++) {
        uint32_t w = 0x7f800001u | (tag << 16) | (uint32_t)(i & 0xffffu);
        memcpy(&b[i], &w, 4);
    }
}

static long first_diff(const float *a, const float *b, int want)
{
    for (size_t i = 0; i < nfloats; i++)
        if (covered[i] == want && memcmp(&a[i], &b[i], 4) != 0)
            return (long)i;
    return -1;
}

static const char *owner(long i)
{
    for (int t = 0; t < ntensors; t++) {
        const nn_tensor *x = &m->tensors[t];
        if (x->data <= block + i && block + i < x->data + x->numel)
            return x->name;
    }
    return "padding";
}

static void check_table(const char *when)
{
    if (memcmp(table_snap, m->tensors, sizeof *table_snap * (size_t)ntensors) != 0)
        VIOLATION("%s: the model's tensor table changed", when);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die(path);
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            die("write");
        off += (size_t)w;
    }
    close(fd);
}

typedef struct collect {
    unsigned char *p;
    size_t len, cap;
} collect;

static int collect_write(void *ctx, const void *data, size_t n)
{
    collect *c = ctx;
    if (c->len + n > c->cap) {
        size_t cap = (c->len + n) * 2;
        unsigned char *q = realloc(c->p, cap);
        if (!q)
            return -1;
        c->p = q;
        c->cap = cap;
    }
    memcpy(c->p + c->len, data, n);
    c->len += n;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    net = fzload_create();
    net2 = fzload_create();
    if (!net || !net2)
        die("fzload_create");
    m = fzload_model(net);
    m2 = fzload_model(net2);
    block = m->data;
    block2 = m2->data;
    nfloats = m->info->data_floats;
    ntensors = m->info->ntensors;
    const char *v = getenv("NNGEN_FUZZ_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    const char *every = getenv("NNGEN_FUZZ_FILE_EVERY");
    if (every && *every)
        file_every = (unsigned)strtoul(every, NULL, 10);

    covered = calloc(nfloats ? nfloats : 1, 1);
    snap = malloc(sizeof *snap * (nfloats ? nfloats : 1));
    first = malloc(sizeof *first * (nfloats ? nfloats : 1));
    table_snap = malloc(sizeof *table_snap * (size_t)(ntensors ? ntensors : 1));
    if (!covered || !snap || !first || !table_snap)
        die("malloc");
    for (int t = 0; t < ntensors; t++) {
        const nn_tensor *x = &m->tensors[t];
        if (x->data < block || x->data + x->numel > block + nfloats)
            VIOLATION("tensor %s lies outside the data block", x->name);
        for (int64_t j = 0; j < x->numel * (x->dtype == NN_I64 ? 2 : 1); j++)
            covered[(x->data - block) + j] = 1;
    }
    memcpy(table_snap, m->tensors, sizeof *table_snap * (size_t)ntensors);

    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nngen-fuzz-load-mem.XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    atexit(remove_tmpdir);
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", tmpdir);
    return 0;
}

/* The same verdict and message from nn_load of the bytes as a file. */
static void against_file(const uint8_t *data, size_t size, int rc, const char *msg)
{
    char file_msg[1100];
    size_t pl = strlen(in_path);
    write_file(in_path, data, size);
    fill(block2, 9);
    nn_set_error(NULL);
    int frc = nn_load(m2, in_path);
    snprintf(file_msg, sizeof file_msg, "%s", nn_error());
    if (frc != rc)
        VIOLATION("nn_load_mem returned %d (%s) but nn_load of the same bytes %d (%s)", rc, msg,
                  frc, file_msg);
    if (rc != 0) {
        if (strncmp(file_msg, in_path, pl) != 0 || strncmp(file_msg + pl, ": ", 2) != 0 ||
            strcmp(file_msg + pl + 2, msg + 13) != 0)
            VIOLATION("nn_load_mem said '%s' but nn_load '%s'", msg, file_msg);
        return;
    }
    for (int t = 0; t < ntensors; t++) {
        const nn_tensor *x = &m->tensors[t];
        size_t bytes = (size_t)x->numel * (x->dtype == NN_I64 ? 8 : 4);
        if (memcmp(x->data, m2->tensors[t].data, bytes) != 0)
            VIOLATION("nn_load and nn_load_mem loaded different values into %s", x->name);
    }
}

static uint32_t hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[1100];
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        die("malloc");
    if (size)
        memcpy(copy, data, size);

    /* 1. into pattern A */
    fill(block, 1);
    memcpy(snap, block, sizeof *snap * nfloats);
    nn_set_error(NULL);
    int rc = nn_load_mem(m, data, size);
    snprintf(msg, sizeof msg, "%s", nn_error());
    if (verbose)
        say("fuzz_load_mem: %s\n", rc == 0 ? "ok" : msg);
    check_table("nn_load_mem");
    if (size && memcmp(copy, data, size) != 0)
        VIOLATION("nn_load_mem wrote into its input");
    free(copy);
    if (rc != 0 && rc != -1)
        VIOLATION("nn_load_mem returned %d (0 or -1 expected)", rc);
    if (rc == -1) {
        if (strncmp(msg, "nn_load_mem: ", 13) != 0 || !msg[13])
            VIOLATION("nn_load_mem failed but nn_error() is '%s'", msg);
        long i = first_diff(snap, block, 1);
        if (i < 0)
            i = first_diff(snap, block, 0);
        if (i >= 0)
            VIOLATION("nn_load_mem failed ('%s') but changed the model: float %ld of the data "
                      "block (%s)", msg, i, owner(i));
        if (file_every && hash(data, size) % file_every == 0)
            against_file(data, size, rc, msg);
        return 0;
    }
    long i = first_diff(snap, block, 0);
    if (i >= 0)
        VIOLATION("nn_load_mem succeeded but wrote float %ld, outside every tensor", i);
    memcpy(first, block, sizeof *first * nfloats);
    if (file_every && hash(data, size) % file_every == 0)
        against_file(data, size, rc, msg);

    /* 2. into pattern B: the same tensors */
    fill(block, 2);
    memcpy(snap, block, sizeof *snap * nfloats);
    if (nn_load_mem(m, data, size) != 0)
        VIOLATION("nn_load_mem accepted the input once, then refused it: %s", nn_error());
    check_table("second nn_load_mem");
    i = first_diff(first, block, 1);
    if (i >= 0)
        VIOLATION("nn_load_mem succeeded but did not write float %ld (%s)", i, owner(i));
    i = first_diff(snap, block, 0);
    if (i >= 0)
        VIOLATION("nn_load_mem succeeded but wrote float %ld, outside every tensor", i);

    /* 3. the saves agree, and load back */
    size_t need = 0, got = 0;
    if (nn_save_mem(m, NULL, 0, &need) != 0)
        VIOLATION("nn_save_mem size query failed: %s", nn_error());
    unsigned char *out = malloc(need ? need : 1);
    if (!out)
        die("malloc");
    if (nn_save_mem(m, out, need, &got) != 0 || got != need)
        VIOLATION("nn_save_mem into %zu bytes failed: %s", need, nn_error());
    collect c = {NULL, 0, 0};
    if (nn_save_to(m, collect_write, &c) != 0 || c.len != need || memcmp(c.p, out, need) != 0)
        VIOLATION("nn_save_to and nn_save_mem wrote different bytes");
    free(c.p);
    fill(block, 3);
    if (nn_load_mem(m, out, need) != 0)
        VIOLATION("nn_load_mem refused what nn_save_mem wrote: %s", nn_error());
    i = first_diff(first, block, 1);
    if (i >= 0)
        VIOLATION("nn_save_mem and nn_load_mem did not round-trip float %ld (%s)", i, owner(i));
    unsigned char *out2 = malloc(need ? need : 1);
    if (!out2)
        die("malloc");
    if (nn_save_mem(m, out2, need, NULL) != 0 || memcmp(out, out2, need) != 0)
        VIOLATION("two nn_save_mem of the same values wrote different bytes");
    free(out);
    free(out2);
    return 0;
}
