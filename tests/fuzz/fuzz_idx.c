/* fuzz_idx.c: libFuzzer target for the IDX readers (runtime/data.c).
 *
 * Each input is written to a file in a per-process temporary directory and
 * read as images (nn_idx_read_images) and as labels (nn_idx_read_labels);
 * an input that does not start with gzip's magic is also gzip-compressed
 * (zlib, as gzip does) and read again.  The contract (include/nngen/rt.h):
 *
 *   - each reader returns 0 or -1;
 *   - on -1: nn_error() is non-empty and starts with "PATH: ", and the
 *     outputs are untouched (a sentinel dataset, label pointer and count
 *     keep their bits); LeakSanitizer sees that nothing is left allocated;
 *   - on 0: the header agrees with the file: 4 + 4 * NDIM + count * size
 *     bytes for a plain input (count the first dimension, size the product
 *     of the others, equal to the shape's product), every image float is
 *     b / 255.0f and every label b for the input's bytes b in order; a
 *     read with limit 1 keeps one example and gives the same first one;
 *   - the gzip copy is accepted exactly when the plain input is, with the
 *     same values.
 *
 * Violations print what broke and abort(), so that libFuzzer reports them.
 * NNGEN_FUZZ_VERBOSE=1 prints what the readers say about each input.
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

#include <zlib.h>

#include <nngen/rt.h>

static char tmpdir[4096], plain_path[4200], gz_path[4200];
static int verbose;

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
    unlink(plain_path);
    unlink(gz_path);
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

#define VIOLATION(...)                                                                       \
    do {                                                                                     \
        say("\n==== fuzz_idx: CONTRACT VIOLATION: ");                                         \
        say(__VA_ARGS__);                                                                    \
        say("\n");                                                                           \
        remove_tmpdir();                                                                     \
        abort();                                                                             \
    } while (0)

static void die(const char *what)
{
    say("fuzz_idx: %s: %s\n", what, strerror(errno));
    abort();
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

static void write_gz(const char *path, const uint8_t *data, size_t size)
{
    gzFile g = gzopen(path, "wb6");
    if (!g)
        die(path);
    if (size && gzwrite(g, data, (unsigned)size) != (int)size)
        die("gzwrite");
    if (gzclose(g) != Z_OK)
        die("gzclose");
}

static const nn_dataset sentinel = {-7, -8, -9, {-1, -2, -3, -4}, -5,
                                    (float *)(uintptr_t)0x1000, (int32_t *)(uintptr_t)0x2000};

static int untouched(const nn_dataset *d)
{
    const nn_dataset *s = &sentinel;
    return d->count == s->count && d->file_count == s->file_count && d->ndim == s->ndim &&
           memcmp(d->shape, s->shape, sizeof d->shape) == 0 && d->size == s->size &&
           d->images == s->images && d->labels == s->labels;
}

static void check_error(const char *path, const char *what)
{
    const char *e = nn_error();
    size_t n = strlen(path);
    if (!e[0])
        VIOLATION("%s: %s failed with an empty nn_error()", path, what);
    if (strncmp(e, path, n) != 0 || e[n] != ':' || e[n + 1] != ' ')
        VIOLATION("%s: %s: nn_error() does not start with the path: %s", path, what, e);
    if (verbose)
        say("fuzz_idx: %s\n", e);
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The header of a plain input that was accepted: returns the offset of the
   data and checks the size. */
static size_t check_plain_layout(const uint8_t *data, size_t size, int64_t count, int64_t esize,
                                 const char *what)
{
    size_t hdr;
    if (size < 4)
        VIOLATION("%s: accepted a %zu-byte file", what, size);
    hdr = 4 + 4 * (size_t)data[3];
    if (size < hdr)
        VIOLATION("%s: accepted a file shorter than its header", what);
    if ((uint64_t)count != be32(data + 4))
        VIOLATION("%s: count %lld, header %u", what, (long long)count, be32(data + 4));
    if ((uint64_t)(size - hdr) != (uint64_t)count * (uint64_t)esize)
        VIOLATION("%s: accepted %zu data bytes for %lld x %lld", what, size - hdr,
                  (long long)count, (long long)esize);
    return hdr;
}

/* Reads `path` as images; returns 1 and fills *d when accepted. */
static int read_images(const char *path, int64_t limit, nn_dataset *d)
{
    *d = sentinel;
    nn_set_error(NULL);
    int rc = nn_idx_read_images(path, limit, d);
    if (rc != 0 && rc != -1)
        VIOLATION("%s: nn_idx_read_images returned %d", path, rc);
    if (rc == -1) {
        if (!untouched(d))
            VIOLATION("%s: nn_idx_read_images failed but wrote its output", path);
        check_error(path, "nn_idx_read_images");
        return 0;
    }
    if (d->count < 1 || d->count > d->file_count || d->ndim < 1 || d->ndim > NN_MAX_DIM - 1 ||
        !d->images || d->labels)
        VIOLATION("%s: accepted with count %lld of %lld, ndim %d", path, (long long)d->count,
                  (long long)d->file_count, d->ndim);
    int64_t p = 1;
    for (int i = 0; i < d->ndim; i++)
        p *= d->shape[i];
    if (p != d->size || p < 1)
        VIOLATION("%s: size %lld is not the product of the shape (%lld)", path,
                  (long long)d->size, (long long)p);
    if (limit > 0 && d->count != (limit < d->file_count ? limit : d->file_count))
        VIOLATION("%s: limit %lld kept %lld of %lld", path, (long long)limit,
                  (long long)d->count, (long long)d->file_count);
    return 1;
}

static int read_labels(const char *path, int64_t limit, int32_t **l, int64_t *n)
{
    int32_t *const lsent = (int32_t *)(uintptr_t)0x3000;
    *l = lsent;
    *n = -11;
    nn_set_error(NULL);
    int rc = nn_idx_read_labels(path, limit, l, n);
    if (rc != 0 && rc != -1)
        VIOLATION("%s: nn_idx_read_labels returned %d", path, rc);
    if (rc == -1) {
        if (*l != lsent || *n != -11)
            VIOLATION("%s: nn_idx_read_labels failed but wrote its output", path);
        check_error(path, "nn_idx_read_labels");
        return 0;
    }
    if (*n < 1 || !*l || *l == lsent)
        VIOLATION("%s: labels accepted with count %lld", path, (long long)*n);
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *v = getenv("NNGEN_FUZZ_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fuzz-idx-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    snprintf(plain_path, sizeof plain_path, "%s/input", tmpdir);
    snprintf(gz_path, sizeof gz_path, "%s/input.gz", tmpdir);
    atexit(remove_tmpdir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int is_gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    nn_dataset d, d1, dz;
    int32_t *l, *lz;
    int64_t n, nz;

    write_file(plain_path, data, size);
    if (!is_gz)
        write_gz(gz_path, data, size);

    /* images */
    int ok = read_images(plain_path, 0, &d);
    if (ok) {
        if (!is_gz) {
            size_t hdr = check_plain_layout(data, size, d.count, d.size, plain_path);
            for (int64_t i = 0; i < d.count * d.size; i++) {
                float want = (float)data[hdr + (size_t)i] / 255.0f;
                if (memcmp(&want, &d.images[i], 4) != 0)
                    VIOLATION("image float %lld is %a, not %a", (long long)i,
                              (double)d.images[i], (double)want);
            }
        }
        if (!read_images(plain_path, 1, &d1))
            VIOLATION("accepted, but not with limit 1: %s", nn_error());
        if (d1.count != 1 || d1.size != d.size ||
            memcmp(d1.images, d.images, sizeof(float) * (size_t)d.size) != 0)
            VIOLATION("limit 1 gives another first example");
        nn_dataset_free(&d1);
    }
    if (!is_gz) {
        int okz = read_images(gz_path, 0, &dz);
        if (okz != ok)
            VIOLATION("images: the plain file is %s, its gzip copy %s", ok ? "accepted" : "refused",
                      okz ? "accepted" : "refused");
        if (ok && (dz.count != d.count || dz.size != d.size || dz.ndim != d.ndim ||
                   memcmp(dz.shape, d.shape, sizeof d.shape) != 0 ||
                   memcmp(dz.images, d.images, sizeof(float) * (size_t)(d.count * d.size)) != 0))
            VIOLATION("images: the gzip copy reads differently");
        if (okz)
            nn_dataset_free(&dz);
    }
    if (ok)
        nn_dataset_free(&d);

    /* labels */
    ok = read_labels(plain_path, 0, &l, &n);
    if (ok && !is_gz) {
        size_t hdr = check_plain_layout(data, size, n, 1, plain_path);
        for (int64_t i = 0; i < n; i++)
            if (l[i] != data[hdr + (size_t)i])
                VIOLATION("label %lld is %d, not %d", (long long)i, l[i], data[hdr + (size_t)i]);
    }
    if (!is_gz) {
        int okz = read_labels(gz_path, 0, &lz, &nz);
        if (okz != ok)
            VIOLATION("labels: the plain file is %s, its gzip copy %s", ok ? "accepted" : "refused",
                      okz ? "accepted" : "refused");
        if (ok && (nz != n || memcmp(lz, l, sizeof(int32_t) * (size_t)n) != 0))
            VIOLATION("labels: the gzip copy reads differently");
        if (okz)
            free(lz);
    }
    if (ok)
        free(l);
    return 0;
}
