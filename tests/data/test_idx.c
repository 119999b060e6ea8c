/* The IDX readers (runtime/data.c) on small files this test writes itself,
 * plain and gzip-compressed: values (byte / 255.0f, labels as int32),
 * shapes, limit; then malformed files, each rejected with a message that
 * starts with the path, nothing allocated left behind (run under ASan/LSan
 * in the sanitizer build) and the outputs untouched: every truncation of
 * a valid file (plain and gzip), trailing data, wrong magic, element type
 * and number of dimensions, zero and overflowing dimensions, counts that
 * disagree between images and labels, corrupt gzip streams, a missing file
 * and a directory.  Also nn_epoch_order's refusals and what it draws from
 * the generator.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <nngen/rt.h>

static char workdir[256];

static void make_workdir(void)
{
    snprintf(workdir, sizeof workdir, "/tmp/nngen-data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void remove_path(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", workdir, name);
    if (remove(p) != 0)
        rmdir(p);
}

static const char *path_of(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", workdir, name);
    return p[k];
}

/* ---- writing files ------------------------------------------------------ */

typedef struct buf {
    unsigned char *p;
    size_t n;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    ck_assert_ptr_nonnull(b->p);
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(b, c, 4);
}

/* An IDX file: magic 0x00 0x00 type ndim, dims, then data bytes. */
static buf idx(int type, int ndim, const uint32_t *dims, const unsigned char *data, size_t n)
{
    buf b = {NULL, 0};
    unsigned char m[4] = {0, 0, (unsigned char)type, (unsigned char)ndim};
    int i;
    put(&b, m, 4);
    for (i = 0; i < ndim; i++)
        put_u32(&b, dims[i]);
    if (n)
        put(&b, data, n);
    return b;
}

static void write_plain(const char *name, const void *p, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *name, const void *p, size_t n)
{
    gzFile g = gzopen(path_of(name), "wb9");
    ck_assert_ptr_nonnull(g);
    if (n)
        ck_assert_int_eq(gzwrite(g, p, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

static buf read_whole(const char *name)
{
    buf b = {NULL, 0};
    unsigned char tmp[4096];
    size_t k;
    FILE *f = fopen(path_of(name), "rb");
    ck_assert_ptr_nonnull(f);
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        put(&b, tmp, k);
    fclose(f);
    return b;
}

/* The valid files of the tests: 5 images of 4 x 3 and their 5 labels. */
static unsigned char img_bytes[5 * 12];
static unsigned char lab_bytes[5] = {9, 0, 3, 255, 7};
static const uint32_t img_dims[3] = {5, 4, 3};
static const uint32_t lab_dims[1] = {5};

static void make_valid(void)
{
    buf b;
    int i;
    for (i = 0; i < 60; i++)
        img_bytes[i] = (unsigned char)(i * 37 + (i == 0 ? 0 : 1));
    img_bytes[1] = 255;
    img_bytes[2] = 0;
    b = idx(0x08, 3, img_dims, img_bytes, sizeof img_bytes);
    write_plain("img", b.p, b.n);
    write_gz("img.gz", b.p, b.n);
    free(b.p);
    b = idx(0x08, 1, lab_dims, lab_bytes, sizeof lab_bytes);
    write_plain("lab", b.p, b.n);
    write_gz("lab.gz", b.p, b.n);
    free(b.p);
}

/* ---- checks ------------------------------------------------------------- */

static const nn_dataset sentinel = {-7, -8, -9, {-1, -2, -3, -4}, -5,
                                    (float *)(uintptr_t)0x1000, (int32_t *)(uintptr_t)0x2000};

/* field by field: struct assignment need not copy the padding */
static int untouched(const nn_dataset *d)
{
    const nn_dataset *s = &sentinel;
    return d->count == s->count && d->file_count == s->file_count && d->ndim == s->ndim &&
           memcmp(d->shape, s->shape, sizeof d->shape) == 0 && d->size == s->size &&
           d->images == s->images && d->labels == s->labels;
}

/* nn_dataset_load(images, labels) must fail, say PATH: ..., leave d alone;
   the message must name `want_path` and contain `want` (when not NULL). */
static void expect_reject(const char *images, const char *labels, const char *want_path,
                          const char *want)
{
    nn_dataset d = sentinel;
    int rc;
    nn_set_error(NULL);
    rc = nn_dataset_load(&d, images, labels, 0);
    ck_assert_msg(rc == -1, "%s / %s: accepted", images, labels);
    ck_assert_msg(untouched(&d), "%s: the output was written", images);
    ck_assert_msg(strncmp(nn_error(), want_path, strlen(want_path)) == 0 &&
                      nn_error()[strlen(want_path)] == ':',
                  "message does not start with '%s:': %s", want_path, nn_error());
    if (want)
        ck_assert_msg(strstr(nn_error(), want) != NULL, "message lacks '%s': %s", want,
                      nn_error());
}

static void expect_images_reject(const char *name, const char *want)
{
    expect_reject(path_of(name), path_of("lab"), path_of(name), want);
}

static void check_valid(const nn_dataset *d, int64_t count)
{
    int64_t i;
    ck_assert_int_eq(d->count, count);
    ck_assert_int_eq(d->file_count, 5);
    ck_assert_int_eq(d->ndim, 2);
    ck_assert_int_eq(d->shape[0], 4);
    ck_assert_int_eq(d->shape[1], 3);
    ck_assert_int_eq(d->size, 12);
    for (i = 0; i < count * 12; i++) {
        float want = (float)img_bytes[i] / 255.0f;
        ck_assert_msg(memcmp(&d->images[i], &want, sizeof want) == 0, "image float %ld: %a, not %a",
                      (long)i, (double)d->images[i], (double)want);
    }
    ck_assert_float_eq(d->images[1], 1.0f);
    ck_assert_float_eq(d->images[2], 0.0f);
    for (i = 0; i < count; i++)
        ck_assert_int_eq(d->labels[i], lab_bytes[i]);
}

START_TEST(test_valid)
{
    const char *im[2] = {"img", "img.gz"}, *lb[2] = {"lab", "lab.gz"};
    int a, b;
    make_workdir();
    make_valid();
    for (a = 0; a < 2; a++)
        for (b = 0; b < 2; b++) {
            nn_dataset d;
            int64_t lim;
            for (lim = -1; lim <= 6; lim++) {
                ck_assert_msg(nn_dataset_load(&d, path_of(im[a]), path_of(lb[b]), lim) == 0,
                              "%s", nn_error());
                check_valid(&d, lim <= 0 || lim > 5 ? 5 : lim);
                nn_dataset_free(&d);
                ck_assert_ptr_null(d.images);
                ck_assert_ptr_null(d.labels);
                ck_assert_int_eq(d.count, 0);
            }
        }
    nn_dataset_free(NULL);
    {
        int32_t *l = NULL;
        int64_t n = 0;
        nn_dataset d;
        ck_assert_int_eq(nn_idx_read_labels(path_of("lab.gz"), 2, &l, &n), 0);
        ck_assert_int_eq(n, 2);
        ck_assert_int_eq(l[0], 9);
        ck_assert_int_eq(l[1], 0);
        free(l);
        ck_assert_int_eq(nn_idx_read_images(path_of("img.gz"), 0, &d), 0);
        ck_assert_ptr_null(d.labels);
        ck_assert_int_eq(d.count, 5);
        free(d.images);
    }
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

/* Other numbers of dimensions for images: [n, 7] and [n, 2, 3, 4]. */
START_TEST(test_shapes)
{
    unsigned char data[3 * 24];
    uint32_t d2[2] = {3, 7}, d4[4] = {3, 2, 3, 4}, l3[1] = {3};
    unsigned char labs[3] = {1, 2, 3};
    nn_dataset d;
    buf b;
    int i;
    make_workdir();
    for (i = 0; i < 72; i++)
        data[i] = (unsigned char)(255 - i);
    b = idx(0x08, 2, d2, data, 21);
    write_gz("i2", b.p, b.n);
    free(b.p);
    b = idx(0x08, 4, d4, data, 72);
    write_plain("i4", b.p, b.n);
    free(b.p);
    b = idx(0x08, 1, l3, labs, 3);
    write_plain("l3", b.p, b.n);
    free(b.p);
    ck_assert_msg(nn_dataset_load(&d, path_of("i2"), path_of("l3"), 0) == 0, "%s", nn_error());
    ck_assert_int_eq(d.ndim, 1);
    ck_assert_int_eq(d.shape[0], 7);
    ck_assert_int_eq(d.size, 7);
    ck_assert_float_eq(d.images[20], (float)(255 - 20) / 255.0f);
    nn_dataset_free(&d);
    ck_assert_msg(nn_dataset_load(&d, path_of("i4"), path_of("l3"), 2) == 0, "%s", nn_error());
    ck_assert_int_eq(d.ndim, 3);
    ck_assert_int_eq(d.shape[0], 2);
    ck_assert_int_eq(d.shape[1], 3);
    ck_assert_int_eq(d.shape[2], 4);
    ck_assert_int_eq(d.size, 24);
    ck_assert_int_eq(d.count, 2);
    ck_assert_int_eq(d.labels[1], 2);
    nn_dataset_free(&d);
    remove_path("i2");
    remove_path("i4");
    remove_path("l3");
    rmdir(workdir);
}
END_TEST

/* Every proper prefix of the valid files, plain and gzip, as images and as
   labels: rejected, outputs untouched. */
START_TEST(test_truncations)
{
    const char *names[4] = {"img", "img.gz", "lab", "lab.gz"};
    int k;
    make_workdir();
    make_valid();
    for (k = 0; k < 4; k++) {
        buf whole = read_whole(names[k]);
        size_t len;
        for (len = 0; len < whole.n; len++) {
            write_plain("cut", whole.p, len);
            if (k < 2)
                expect_reject(path_of("cut"), path_of("lab"), path_of("cut"), NULL);
            else
                expect_reject(path_of("img"), path_of("cut"), path_of("cut"), NULL);
        }
        free(whole.p);
    }
    /* the messages say what is wrong */
    {
        buf b = idx(0x08, 3, img_dims, img_bytes, sizeof img_bytes - 1);
        write_plain("short", b.p, b.n);
        expect_images_reject("short", "truncated");
        write_gz("short.gz", b.p, b.n);
        expect_images_reject("short.gz", "truncated");
        write_plain("short", b.p, 6);
        expect_images_reject("short", "too short for a header of 3 dimensions");
        write_plain("short", b.p, 2);
        expect_images_reject("short", "too short for an IDX header");
        write_plain("short", b.p, 0);
        expect_images_reject("short", "too short");
        free(b.p);
    }
    remove_path("cut");
    remove_path("short");
    remove_path("short.gz");
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

START_TEST(test_trailing)
{
    unsigned char more[sizeof img_bytes + 3];
    buf b;
    make_workdir();
    make_valid();
    memcpy(more, img_bytes, sizeof img_bytes);
    more[sizeof img_bytes] = 1;
    b = idx(0x08, 3, img_dims, more, sizeof img_bytes + 1);
    write_plain("long", b.p, b.n);
    expect_images_reject("long", "1 byte after the 60 bytes");
    write_gz("long.gz", b.p, b.n);
    expect_images_reject("long.gz", "more data than its header announces");
    free(b.p);
    b = idx(0x08, 3, img_dims, more, sizeof img_bytes + 3);
    write_plain("long", b.p, b.n);
    expect_images_reject("long", "3 bytes after");
    free(b.p);
    remove_path("long");
    remove_path("long.gz");
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

START_TEST(test_bad_headers)
{
    buf b;
    uint32_t big[3];
    make_workdir();
    make_valid();

    b = read_whole("img");
    b.p[0] = 1;
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "not an IDX file (magic number 0x01000803");
    b.p[0] = 0;
    b.p[1] = 8;
    write_gz("bad.gz", b.p, b.n);
    expect_images_reject("bad.gz", "not an IDX file");
    b.p[1] = 0;
    b.p[2] = 0x0D;
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "element type 0x0d (float) is not supported");
    b.p[2] = 0x08;
    b.p[3] = 0;
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "0 dimensions, but images have 2 to 4");
    b.p[3] = 5;
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "5 dimensions");
    b.p[3] = 1; /* a label file's header over image data */
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "1 dimensions, but images have 2 to 4");
    free(b.p);

    /* labels with an image header, images given as labels */
    expect_reject(path_of("img"), path_of("img"), path_of("img"),
                  "3 dimensions, but labels have 1 (magic number 0x00000803)");
    expect_reject(path_of("lab.gz"), path_of("lab"), path_of("lab.gz"), "1 dimensions");

    /* a text file */
    write_plain("bad", "hello, world\n", 13);
    expect_images_reject("bad", "not an IDX file");

    /* zero dimensions */
    {
        uint32_t z0[3] = {0, 4, 3}, z1[3] = {5, 0, 3};
        b = idx(0x08, 3, z0, NULL, 0);
        write_plain("bad", b.p, b.n);
        expect_images_reject("bad", "dimension 0 is 0 (no examples)");
        free(b.p);
        b = idx(0x08, 3, z1, NULL, 0);
        write_gz("bad.gz", b.p, b.n);
        expect_images_reject("bad.gz", "dimension 1 is 0");
        free(b.p);
    }

    /* sizes that overflow: the example, then the whole file */
    big[0] = 0xffffffffu;
    big[1] = 0xffffffffu;
    big[2] = 0xffffffffu;
    b = idx(0x08, 3, big, NULL, 0);
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "an example of more than 2147483647 elements");
    free(b.p);
    big[1] = 65536;
    big[2] = 32768; /* 2^31 */
    b = idx(0x08, 3, big, NULL, 0);
    write_gz("bad.gz", b.p, b.n);
    expect_images_reject("bad.gz", "an example of more than");
    free(b.p);
    big[1] = 0x7fff;
    big[2] = 0xffff; /* 2147385345 elements an example, 2^32 - 1 examples */
    b = idx(0x08, 3, big, NULL, 0);
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "too large");
    free(b.p);
    {
        uint32_t four[4] = {0xffffffffu, 0xffffu, 0xffffu, 0xffffu};
        b = idx(0x08, 4, four, NULL, 0);
        write_plain("bad", b.p, b.n);
        expect_images_reject("bad", "an example of more than");
        free(b.p);
    }
    /* a claim of a million examples in a 16-byte file: truncated, and no
       allocation of the claimed size (plain: the length is checked first;
       gzip: the output grows with what is read) */
    big[0] = 1000000;
    big[1] = 28;
    big[2] = 28;
    b = idx(0x08, 3, big, NULL, 0);
    write_plain("bad", b.p, b.n);
    expect_images_reject("bad", "truncated: its header announces 784000000 bytes");
    write_gz("bad.gz", b.p, b.n);
    expect_images_reject("bad.gz", "the decompressed file has 0");
    free(b.p);
    remove_path("bad");
    remove_path("bad.gz");
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

START_TEST(test_counts_disagree)
{
    uint32_t four[1] = {4}, six[1] = {6};
    unsigned char l[6] = {1, 2, 3, 4, 5, 6};
    buf b;
    make_workdir();
    make_valid();
    b = idx(0x08, 1, four, l, 4);
    write_gz("lab4.gz", b.p, b.n);
    free(b.p);
    b = idx(0x08, 1, six, l, 6);
    write_plain("lab6", b.p, b.n);
    free(b.p);
    expect_reject(path_of("img"), path_of("lab4.gz"), path_of("lab4.gz"),
                  "4 labels, but");
    expect_reject(path_of("img.gz"), path_of("lab6"), path_of("lab6"), "holds 5 images");
    /* also with a limit below both counts: the files' counts are compared */
    {
        nn_dataset d = sentinel;
        ck_assert_int_eq(nn_dataset_load(&d, path_of("img"), path_of("lab6"), 2), -1);
        ck_assert(untouched(&d));
    }
    remove_path("lab4.gz");
    remove_path("lab6");
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

/* gzip streams whose data or trailer is damaged: every single-byte change
   after the 10-byte gzip header (whose mtime and OS bytes zlib ignores) is
   rejected, unless it only touches the padding bits of the deflate
   stream's last byte, which inflate ignores too: then the data must be
   exactly the original.  And the CRC and the length alone. */
START_TEST(test_corrupt_gzip)
{
    buf g;
    size_t i;
    int accepted = 0;
    make_workdir();
    make_valid();
    g = read_whole("img.gz");
    ck_assert_uint_gt(g.n, 18);
    for (i = 10; i < g.n; i++) {
        nn_dataset d = sentinel;
        int rc;
        g.p[i] ^= 0x5a;
        write_plain("cor.gz", g.p, g.n);
        g.p[i] ^= 0x5a;
        rc = nn_dataset_load(&d, path_of("cor.gz"), path_of("lab"), 0);
        if (rc == 0) {
            ck_assert_msg(i == g.n - 9, "byte %zu of %zu changed and accepted", i, g.n);
            check_valid(&d, 5);
            nn_dataset_free(&d);
            accepted++;
        } else {
            ck_assert(untouched(&d));
            ck_assert(strncmp(nn_error(), path_of("cor.gz"), strlen(path_of("cor.gz"))) == 0);
        }
    }
    ck_assert_int_le(accepted, 1);
    g.p[g.n - 8] ^= 1; /* the CRC-32 */
    write_plain("cor.gz", g.p, g.n);
    expect_images_reject("cor.gz", "corrupt gzip data");
    g.p[g.n - 8] ^= 1;
    g.p[g.n - 1] ^= 1; /* the length */
    write_plain("cor.gz", g.p, g.n);
    expect_images_reject("cor.gz", "corrupt gzip data");
    free(g.p);
    remove_path("cor.gz");
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

START_TEST(test_missing_and_dir)
{
    make_workdir();
    make_valid();
    expect_reject(path_of("nothing"), path_of("lab"), path_of("nothing"),
                  "cannot open: No such file or directory");
    expect_reject(path_of("img"), path_of("nothing"), path_of("nothing"), "cannot open");
    expect_reject(workdir, path_of("lab"), workdir, "not a regular file");
    {
        nn_dataset d = sentinel;
        ck_assert_int_eq(nn_dataset_load(NULL, path_of("img"), path_of("lab"), 0), -1);
        ck_assert_int_eq(nn_dataset_load(&d, NULL, path_of("lab"), 0), -1);
        ck_assert(untouched(&d));
        ck_assert_int_eq(nn_idx_read_labels(path_of("lab"), 0, NULL, NULL), -1);
    }
    remove_path("img");
    remove_path("img.gz");
    remove_path("lab");
    remove_path("lab.gz");
    rmdir(workdir);
}
END_TEST

START_TEST(test_epoch_order)
{
    nn_rng r, copy;
    int64_t order[64], n;
    int i;
    nn_rng_seed(&r, 5);
    copy = r;
    ck_assert_int_eq(nn_epoch_order(&r, 0, order), -1);
    ck_assert(strstr(nn_error(), "n = 0") != NULL);
    ck_assert_int_eq(nn_epoch_order(&r, -3, order), -1);
    ck_assert_int_eq(nn_epoch_order(&r, 5, NULL), -1);
    ck_assert_int_eq(nn_epoch_order(NULL, 5, order), -1);
    ck_assert(memcmp(&r, &copy, sizeof r) == 0);
    /* a permutation; two 64-bit draws from r, whatever n */
    for (n = 1; n <= 64; n++) {
        int seen[64] = {0};
        nn_rng s = r;
        ck_assert_int_eq(nn_epoch_order(&r, n, order), 0);
        for (i = 0; i < n; i++) {
            ck_assert(order[i] >= 0 && order[i] < n);
            ck_assert_int_eq(seen[order[i]]++, 0);
        }
        for (i = 0; i < 4; i++)
            (void)nn_rng_u32(&s);
        ck_assert(memcmp(&r, &s, sizeof r) == 0);
    }
    /* nn_loader_seed: one 64-bit draw, top bit cleared */
    copy = r;
    ck_assert_uint_eq(nn_loader_seed(&r), nn_rng_u64(&copy) & INT64_MAX);
    /* nn_randperm of seeds that differ above 32 bits: the same permutation */
    {
        int64_t a[40], b[40];
        nn_randperm(123, 40, a);
        nn_randperm(123 + ((uint64_t)7 << 32), 40, b);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        nn_randperm(1, 0, NULL); /* nothing */
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("idx");
    SRunner *sr;
    int failed;
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_valid);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_trailing);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_counts_disagree);
    tcase_add_test(tc, test_corrupt_gzip);
    tcase_add_test(tc, test_missing_and_dir);
    tcase_add_test(tc, test_epoch_order);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
