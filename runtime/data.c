/* nngen-rt: data sets (SPEC 1.8).
 *
 * IDX files (http://yann.lecun.com/exdb/mnist/, the format of MNIST and
 * Fashion-MNIST):
 *
 *   bytes 0-1   0x00 0x00
 *   byte  2     element type: 0x08 unsigned byte (the only one read here),
 *               0x09 signed byte, 0x0B short, 0x0C int, 0x0D float,
 *               0x0E double
 *   byte  3     NDIM, the number of dimensions
 *   then        NDIM big-endian 32-bit sizes, the first the example count
 *   then        the elements, row-major, and nothing after them
 *
 * A file is read through zlib's gzread, which reads a gzip stream or, when
 * the file does not start with gzip's magic, the file as it is (gzdirect).
 * The reader is strict and transactional: it checks the header (magic,
 * type, NDIM for images or labels, no zero size, sizes whose products
 * overflow nothing), then, for a plain file, that its length is exactly
 * header + data before reading on; for a gzip stream, it reads until the
 * stream's end (so that zlib checks the CRC and the length in the gzip
 * trailer) and requires exactly the data the header announces.  The
 * output grows with the data actually read (never allocated from the
 * header's claim alone), so a short file that claims billions of examples
 * costs nothing.  Only when everything holds are the outputs written;
 * on any failure everything allocated is freed and the outputs are as
 * they were.
 *
 * (As zlib does, bytes after a complete gzip stream that do not start
 * another gzip member are ignored; a member that follows is read on.)
 *
 * The epoch order that goes with them (nn_epoch_order, nn_randperm,
 * nn_loader_seed) is in rng.c: it needs no zlib, and nngen-rt-mpi's
 * sampler uses it in every runtime.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <nngen/rt.h>

enum { IDX_UBYTE = 0x08, IDX_MAX_DIMS = NN_MAX_DIM };
/* elements of one example: what the generated code indexes with int */
#define IDX_MAX_EXAMPLE INT32_MAX
/* elements of a whole file: keeps every size in floats below 2^62 bytes */
#define IDX_MAX_ELEMENTS (UINT64_C(1) << 60)
#define IDX_CHUNK 65536

typedef enum { OUT_FLOAT, OUT_INT32 } out_kind;

typedef struct idx_file {
    const char *path;
    int ndim;
    uint64_t dims[IDX_MAX_DIMS];
    uint64_t example;              /* elements per example: product of dims[1..] */
    uint64_t total;                /* elements in the file */
} idx_file;

static const char *type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

/* gzerror's text without the "<fd:N>: " that zlib puts before it. */
static const char *gz_msg(gzFile gz, int *err)
{
    const char *m = gzerror(gz, err), *c;
    if (m == NULL)
        return "?";
    if (m[0] == '<' && (c = strstr(m, ">: ")) != NULL)
        return c + 3;
    return m;
}

/* Reads exactly n bytes (fewer only at the end of the data); -1 on a
   zlib or system error (message set). */
static long gz_read_all(gzFile gz, const char *path, unsigned char *buf, unsigned n)
{
    unsigned got = 0;
    while (got < n) {
        int r = gzread(gz, buf + got, n - got);
        if (r < 0) {
            int err;
            const char *msg = gz_msg(gz, &err);
            if (err == Z_ERRNO)
                nn_set_error("%s: read error: %s", path, strerror(errno));
            else
                nn_set_error("%s: corrupt gzip data: %s", path, msg);
            return -1;
        }
        if (r == 0)
            break;
        got += (unsigned)r;
    }
    return (long)got;
}

/* After the last read: a gzip stream that ended early is an error that
   gzread reports only through gzerror (Z_BUF_ERROR). */
static int gz_check_end(gzFile gz, const char *path)
{
    int err;
    const char *msg = gz_msg(gz, &err);
    if (err == Z_OK)
        return 0;
    if (err == Z_BUF_ERROR)
        nn_set_error("%s: truncated gzip stream (%s)", path, msg);
    else if (err == Z_ERRNO)
        nn_set_error("%s: read error: %s", path, strerror(errno));
    else
        nn_set_error("%s: corrupt gzip data: %s", path, msg);
    return -1;
}

static int check_header(idx_file *f, const unsigned char *h, long got, int min_dims,
                        int max_dims, const char *what)
{
    int d;
    if (got < 4) {
        nn_set_error("%s: truncated: %ld bytes is too short for an IDX header", f->path, got);
        return -1;
    }
    if (h[0] != 0 || h[1] != 0) {
        nn_set_error("%s: not an IDX file (magic number 0x%02x%02x%02x%02x; an IDX %s file "
                     "starts 0x00 0x00 0x08 then its number of dimensions)",
                     f->path, h[0], h[1], h[2], h[3], what);
        return -1;
    }
    if (h[2] != IDX_UBYTE) {
        nn_set_error("%s: IDX element type 0x%02x (%s) is not supported: %s must be "
                     "unsigned bytes (0x08)", f->path, h[2], type_name(h[2]), what);
        return -1;
    }
    if (h[3] < min_dims || h[3] > max_dims) {
        if (min_dims == max_dims)
            nn_set_error("%s: %d dimensions, but %s have %d (magic number 0x0000%02x%02x)",
                         f->path, h[3], what, min_dims, h[2], h[3]);
        else
            nn_set_error("%s: %d dimensions, but %s have %d to %d: the count, then 1 to %d "
                         "per example", f->path, h[3], what, min_dims, max_dims, max_dims - 1);
        return -1;
    }
    f->ndim = h[3];
    if (got < 4 + 4 * (long)f->ndim) {
        nn_set_error("%s: truncated: %ld bytes is too short for a header of %d dimensions",
                     f->path, got, f->ndim);
        return -1;
    }
    f->example = 1;
    for (d = 0; d < f->ndim; d++) {
        const unsigned char *p = h + 4 + 4 * d;
        f->dims[d] = ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
        if (f->dims[d] == 0) {
            nn_set_error("%s: dimension %d is 0 (%s)", f->path, d,
                         d == 0 ? "no examples" : "empty examples");
            return -1;
        }
        if (d > 0) {
            f->example *= f->dims[d];   /* < 2^96 never: checked as it grows */
            if (f->example > IDX_MAX_EXAMPLE) {
                nn_set_error("%s: an example of more than %ld elements (dimensions 1 to %d "
                             "multiply to more)", f->path, (long)IDX_MAX_EXAMPLE, d);
                return -1;
            }
        }
    }
    if (f->dims[0] > IDX_MAX_ELEMENTS / f->example) {
        nn_set_error("%s: %llu examples of %llu elements: too large", f->path,
                     (unsigned long long)f->dims[0], (unsigned long long)f->example);
        return -1;
    }
    f->total = f->dims[0] * f->example;
    if (f->total > SIZE_MAX / sizeof(float)) {
        nn_set_error("%s: %llu elements do not fit in memory", f->path,
                     (unsigned long long)f->total);
        return -1;
    }
    return 0;
}

/* Grows *buf (elements of esize bytes) to hold at least need elements,
   at most cap. */
static int grow(void **buf, size_t *have, size_t need, size_t cap, size_t esize)
{
    size_t n = *have ? *have : 4096;
    void *p;
    if (need <= *have)
        return 0;
    while (n < need)
        n = n > cap / 2 ? cap : n * 2;
    if (n > cap)
        n = cap;
    p = realloc(*buf, n * esize);
    if (p == NULL)
        return -1;
    *buf = p;
    *have = n;
    return 0;
}

/* Reads the IDX file at path: header as for images (2..4 dimensions) or
   labels (1); the first keep examples converted to *out (malloc()ed). */
static int idx_read(const char *path, int min_dims, int max_dims, const char *what,
                    int64_t limit, out_kind kind, idx_file *f, void **out, uint64_t *kept)
{
    unsigned char head[4 + 4 * IDX_MAX_DIMS];
    unsigned char *chunk = NULL;
    void *dst = NULL;
    size_t have = 0;
    uint64_t keep, keep_elems, done = 0;
    size_t esize = kind == OUT_FLOAT ? sizeof(float) : sizeof(int32_t);
    long got;
    struct stat st;
    gzFile gz;
    int fd, rc = -1;

    memset(f, 0, sizeof *f);
    memset(head, 0, sizeof head);
    f->path = path;
    if (path == NULL) {
        nn_set_error("(null): no file name");
        return -1;
    }
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        nn_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        nn_set_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        nn_set_error("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        nn_set_error("%s: out of memory", path);
        close(fd);
        return -1;
    }
    gzbuffer(gz, 1u << 17);

    /* magic, then the dimensions it announces */
    got = gz_read_all(gz, path, head, 4);
    if (got < 0)
        goto out;
    if (got == 4 && head[0] == 0 && head[1] == 0 && head[3] >= 1 && head[3] <= IDX_MAX_DIMS) {
        long more = gz_read_all(gz, path, head + 4, 4u * head[3]);
        if (more < 0)
            goto out;
        got += more;
    }
    if (got < 4 || got < 4 + 4 * (long)head[3]) {
        if (gz_check_end(gz, path) != 0)
            goto out;
    }
    if (check_header(f, head, got, min_dims, max_dims, what) != 0)
        goto out;
    if (gzdirect(gz)) {
        /* plain: the length must be what the header says, before reading on */
        uint64_t want = (uint64_t)(4 + 4 * f->ndim) + f->total;
        if ((uint64_t)st.st_size != want) {
            if ((uint64_t)st.st_size < want)
                nn_set_error("%s: truncated: its header announces %llu bytes of data "
                             "(%llu x %llu), the file has %llu", path,
                             (unsigned long long)f->total, (unsigned long long)f->dims[0],
                             (unsigned long long)f->example,
                             (unsigned long long)((uint64_t)st.st_size - (uint64_t)(4 + 4 * f->ndim)));
            else
                nn_set_error("%s: %llu byte%s after the %llu bytes of data its header "
                             "announces (%llu x %llu)", path,
                             (unsigned long long)((uint64_t)st.st_size - want),
                             (uint64_t)st.st_size - want == 1 ? "" : "s",
                             (unsigned long long)f->total, (unsigned long long)f->dims[0],
                             (unsigned long long)f->example);
            goto out;
        }
    }

    keep = f->dims[0];
    if (limit > 0 && (uint64_t)limit < keep)
        keep = (uint64_t)limit;
    keep_elems = keep * f->example;
    chunk = malloc(IDX_CHUNK);
    if (chunk == NULL) {
        nn_set_error("%s: out of memory", path);
        goto out;
    }
    for (;;) {
        long n = gz_read_all(gz, path, chunk, IDX_CHUNK);
        uint64_t i, use;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (done + (uint64_t)n > f->total) {
            nn_set_error("%s: more data than its header announces (%llu bytes: %llu x %llu)",
                         path, (unsigned long long)f->total, (unsigned long long)f->dims[0],
                         (unsigned long long)f->example);
            goto out;
        }
        use = done < keep_elems ? keep_elems - done : 0;
        if (use > (uint64_t)n)
            use = (uint64_t)n;
        if (use > 0) {
            if (grow(&dst, &have, (size_t)(done + use), (size_t)keep_elems, esize) != 0) {
                nn_set_error("%s: out of memory", path);
                goto out;
            }
            if (kind == OUT_FLOAT) {
                float *o = (float *)dst + done;
                for (i = 0; i < use; i++)
                    o[i] = (float)chunk[i] / 255.0f;
            } else {
                int32_t *o = (int32_t *)dst + done;
                for (i = 0; i < use; i++)
                    o[i] = chunk[i];
            }
        }
        done += (uint64_t)n;
    }
    if (gz_check_end(gz, path) != 0)
        goto out;
    if (done != f->total) {
        nn_set_error("%s: truncated: its header announces %llu bytes of data (%llu x %llu), "
                     "the %sfile has %llu", path, (unsigned long long)f->total,
                     (unsigned long long)f->dims[0], (unsigned long long)f->example,
                     gzdirect(gz) ? "" : "decompressed ", (unsigned long long)done);
        goto out;
    }
    *out = dst;
    dst = NULL;
    *kept = keep;
    rc = 0;
out:
    free(chunk);
    free(dst);
    gzclose(gz);
    return rc;
}

int nn_idx_read_images(const char *path, int64_t limit, nn_dataset *d)
{
    idx_file f;
    void *data = NULL;
    uint64_t kept = 0;
    int i;
    if (d == NULL) {
        nn_set_error("%s: nn_idx_read_images: no dataset to fill", path ? path : "(null)");
        return -1;
    }
    if (idx_read(path, 2, IDX_MAX_DIMS, "images", limit, OUT_FLOAT, &f, &data, &kept) != 0)
        return -1;
    memset(d, 0, sizeof *d);
    d->count = (int64_t)kept;
    d->file_count = (int64_t)f.dims[0];
    d->ndim = f.ndim - 1;
    for (i = 1; i < f.ndim; i++)
        d->shape[i - 1] = (int64_t)f.dims[i];
    d->size = (int64_t)f.example;
    d->images = data;
    d->labels = NULL;
    return 0;
}

int nn_idx_read_labels(const char *path, int64_t limit, int32_t **labels, int64_t *count)
{
    idx_file f;
    void *data = NULL;
    uint64_t kept = 0;
    if (labels == NULL || count == NULL) {
        nn_set_error("%s: nn_idx_read_labels: no place for the labels", path ? path : "(null)");
        return -1;
    }
    if (idx_read(path, 1, 1, "labels", limit, OUT_INT32, &f, &data, &kept) != 0)
        return -1;
    *labels = data;
    *count = (int64_t)kept;
    return 0;
}

/* The label file's full count, for comparing with the images'. */
static int read_labels_full(const char *path, int64_t limit, int32_t **labels, int64_t *kept,
                            int64_t *file_count)
{
    idx_file f;
    void *data = NULL;
    uint64_t k = 0;
    if (idx_read(path, 1, 1, "labels", limit, OUT_INT32, &f, &data, &k) != 0)
        return -1;
    *labels = data;
    *kept = (int64_t)k;
    *file_count = (int64_t)f.dims[0];
    return 0;
}

int nn_dataset_load(nn_dataset *d, const char *images_path, const char *labels_path,
                    int64_t limit)
{
    nn_dataset img;
    int32_t *labels = NULL;
    int64_t kept = 0, file_count = 0;
    if (d == NULL) {
        nn_set_error("%s: nn_dataset_load: no dataset to fill",
                     images_path ? images_path : "(null)");
        return -1;
    }
    if (nn_idx_read_images(images_path, limit, &img) != 0)
        return -1;
    if (read_labels_full(labels_path, limit, &labels, &kept, &file_count) != 0) {
        free(img.images);
        return -1;
    }
    if (file_count != img.file_count) {
        nn_set_error("%s: %lld labels, but %s holds %lld images", labels_path,
                     (long long)file_count, images_path, (long long)img.file_count);
        free(img.images);
        free(labels);
        return -1;
    }
    (void)kept; /* equal to img.count: both files keep min(limit, the same count) */
    img.labels = labels;
    *d = img;
    return 0;
}

void nn_dataset_free(nn_dataset *d)
{
    if (d == NULL)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
