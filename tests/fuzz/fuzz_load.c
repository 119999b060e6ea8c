/* fuzz_load.c: libFuzzer target for nn_load (runtime/safetensors.c).
 *
 * The model is tests/fuzz/load_model.yaml, compiled by nngen at build time
 * (fzload.c/.h): a Linear shared at three places, so its state dict has
 * alias keys (2.a.*, 4.* for 0.*), a Linear without bias and a frozen one.
 * Each input is written to a file in a per-process temporary directory and
 * loaded into an instance whose data block was filled with a known bit
 * pattern.  The contract (include/nngen/rt.h, runtime/safetensors.c):
 *
 *   - nn_load returns 0 or -1;
 *   - on -1: nn_error() is non-empty and starts with "PATH: ", and the
 *     model is unchanged: the whole data block (every parameter, and the
 *     padding between them) and the tensor table are bit-identical to
 *     before;
 *   - on 0: every tensor was written from the file: loading the same file
 *     into an instance filled with a second, different pattern succeeds too
 *     and gives bit-identical tensors (a float left unwritten would keep its
 *     pattern); nothing outside the tensors was written (the padding keeps
 *     its pattern); the tensor table is unchanged; and the values round-trip:
 *     nn_save writes the model, nn_load of that file into a third pattern
 *     succeeds with the same values, and a second nn_save writes the same
 *     bytes.
 *
 * Violations print what broke and abort(), so that libFuzzer reports them.
 *
 * With NNGEN_FUZZ_LOAD_SEEDS=DIR set, the target writes nn_save files of the
 * model initialized with seeds 0, 1 and 2 into DIR and exits: that is how
 * tests/fuzz/corpus/load/save-*.safetensors were made.  NNGEN_FUZZ_VERBOSE=1
 * prints what nn_load says about each input.
 */
#include <dirent.h>
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

static char tmpdir[4096], in_path[4200], out_path[4200], out2_path[4200];
static fzload *net;
static nn_model *m;
static float *block;            /* m->data */
static size_t nfloats;          /* m->info->data_floats */
static unsigned char *covered;  /* 1 for the floats of some tensor */
static float *snap, *first;     /* copies of the data block */
static nn_tensor *table_snap;
static int ntensors;
static int verbose;             /* NNGEN_FUZZ_VERBOSE: print what nn_load says */

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void remove_tmpdir(void);

#define VIOLATION(...)                                                                       \
    do {                                                                                     \
        say("\n==== fuzz_load: CONTRACT VIOLATION: ");                                        \
        say(__VA_ARGS__);                                                                    \
        say("\n");                                                                           \
        remove_tmpdir();                                                                     \
        abort();                                                                             \
    } while (0)

static void die(const char *what)
{
    say("fuzz_load: %s: %s\n", what, strerror(errno));
    abort();
}

/* Fills the data block with a pattern: distinct, non-canonical bits (NaNs
   with a payload and a tag), never what a file is likely to hold. */
static void fill(uint32_t tag)
{
    for (size_t i = 0; i < nfloats; i++) {
        uint32_t w = 0x7f800001u | (tag << 16) | (uint32_t)(i & 0xffffu);
        memcpy(&block[i], &w, 4);
    }
}

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[8400];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    tmpdir[0] = 0;
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

static unsigned char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    if (fseek(f, 0, SEEK_END) != 0)
        die("fseek");
    long n = ftell(f);
    if (n < 0)
        die("ftell");
    rewind(f);
    unsigned char *s = malloc((size_t)n + 1);
    if (!s)
        die("malloc");
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        die("fread");
    fclose(f);
    *len = (size_t)n;
    return s;
}

/* The first float of the block where a and b differ among the floats whose
   covered[] is want (-1: none). */
static long first_diff(const float *a, const float *b, int want)
{
    for (size_t i = 0; i < nfloats; i++)
        if (covered[i] == want && memcmp(&a[i], &b[i], 4) != 0)
            return (long)i;
    return -1;
}

/* Which tensor holds float i of the block ("padding" if none). */
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
        VIOLATION("%s: nn_load changed the model's tensor table", when);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    net = fzload_create();
    if (!net)
        die("fzload_create");
    m = fzload_model(net);
    block = m->data;
    nfloats = m->info->data_floats;
    ntensors = m->info->ntensors;

    const char *v = getenv("NNGEN_FUZZ_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    const char *seeds = getenv("NNGEN_FUZZ_LOAD_SEEDS");
    if (seeds && *seeds) {
        for (unsigned s = 0; s < 3; s++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/save-seed%u.safetensors", seeds, s);
            fzload_init(net, s);
            if (nn_save(m, path) != 0) {
                say("fuzz_load: %s\n", nn_error());
                exit(1);
            }
            say("wrote %s\n", path);
        }
        exit(0);
    }

    covered = calloc(nfloats ? nfloats : 1, 1);
    snap = malloc(sizeof *snap * (nfloats ? nfloats : 1));
    first = malloc(sizeof *first * (nfloats ? nfloats : 1));
    table_snap = malloc(sizeof *table_snap * (size_t)(ntensors ? ntensors : 1));
    if (!covered || !snap || !first || !table_snap)
        die("malloc");
    /* every parameter (nn_param) and every other tensor of the table */
    for (size_t p = 0; p < nn_param_count(m); p++) {
        nn_tensor *t = nn_param(m, p);
        if (t->data < block || t->data + t->numel > block + nfloats)
            VIOLATION("parameter %s lies outside the data block", t->name);
    }
    for (int t = 0; t < ntensors; t++) {
        const nn_tensor *x = &m->tensors[t];
        for (int64_t j = 0; j < x->numel; j++)
            covered[(x->data - block) + j] = 1;
    }
    memcpy(table_snap, m->tensors, sizeof *table_snap * (size_t)ntensors);

    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nngen-fuzz-load.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    atexit(remove_tmpdir);
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", tmpdir);
    snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmpdir);
    snprintf(out2_path, sizeof out2_path, "%s/out2.safetensors", tmpdir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_file(in_path, data, size);

    /* 1. into pattern A */
    fill(1);
    memcpy(snap, block, sizeof *snap * nfloats);
    nn_set_error(NULL);
    int rc = nn_load(m, in_path);
    if (verbose)
        say("fuzz_load: nn_load: %s\n", rc == 0 ? "ok" : nn_error());
    check_table("load");
    if (rc != 0 && rc != -1)
        VIOLATION("nn_load returned %d (0 or -1 expected)", rc);
    if (rc == -1) {
        const char *e = nn_error();
        size_t pl = strlen(in_path);
        if (!e || !*e)
            VIOLATION("nn_load failed with an empty nn_error()");
        if (strncmp(e, in_path, pl) != 0 || strncmp(e + pl, ": ", 2) != 0)
            VIOLATION("nn_load failed but nn_error() does not start with the path: '%s'", e);
        long i = first_diff(snap, block, 1);
        if (i < 0)
            i = first_diff(snap, block, 0);
        if (i >= 0)
            VIOLATION("nn_load failed ('%s') but changed the model: float %ld of the data "
                      "block (%s)", e, i, owner(i));
        return 0;
    }
    long i = first_diff(snap, block, 0);
    if (i >= 0)
        VIOLATION("nn_load succeeded but wrote float %ld of the data block, outside every "
                  "tensor", i);
    memcpy(first, block, sizeof *first * nfloats);

    /* 2. the same file into pattern B: the same tensors */
    fill(2);
    memcpy(snap, block, sizeof *snap * nfloats);
    rc = nn_load(m, in_path);
    check_table("second load");
    if (rc != 0)
        VIOLATION("nn_load accepted the file once, then refused it: %s", nn_error());
    i = first_diff(first, block, 1);
    if (i >= 0)
        VIOLATION("nn_load succeeded but did not write float %ld of the data block (%s): it "
                  "kept the value it had before", i, owner(i));
    i = first_diff(snap, block, 0);
    if (i >= 0)
        VIOLATION("nn_load succeeded but wrote float %ld of the data block, outside every "
                  "tensor", i);

    /* 3. round trip: save, load into pattern C, save again */
    if (nn_save(m, out_path) != 0)
        VIOLATION("nn_save of a loaded model failed: %s", nn_error());
    fill(3);
    rc = nn_load(m, out_path);
    check_table("load of the saved file");
    if (rc != 0)
        VIOLATION("nn_load refused the file nn_save wrote: %s", nn_error());
    i = first_diff(first, block, 1);
    if (i >= 0)
        VIOLATION("save and load did not round-trip float %ld (%s)", i, owner(i));
    if (nn_save(m, out2_path) != 0)
        VIOLATION("nn_save failed: %s", nn_error());
    size_t n1, n2;
    unsigned char *f1 = read_whole(out_path, &n1), *f2 = read_whole(out2_path, &n2);
    if (n1 != n2 || memcmp(f1, f2, n1) != 0)
        VIOLATION("two nn_save of the same values wrote different files");
    free(f1);
    free(f2);
    return 0;
}
