/* nn_save / nn_load: round trips, the exact file layout, failures that must
 * leave no file behind, and the corpus in bad_weights/ (each file rejected
 * with its expected message and the model left bit-identical, or accepted).
 *
 * usage: test_safetensors BAD_WEIGHTS_DIR
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixtures.h"

static const char *corpus_dir = ".";
static char workdir[256];

static void make_workdir(void)
{
    snprintf(workdir, sizeof workdir, "/tmp/nngen-rt-st-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void remove_workdir(void)
{
    DIR *d = opendir(workdir);
    struct dirent *e;
    char p[512];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", workdir, e->d_name);
        if (remove(p) != 0)
            rmdir(p);
    }
    closedir(d);
    rmdir(workdir);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long sz;
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)sz + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = 0;
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------ */

static void round_trip(const char *fixture)
{
    fx_model *a = fx_new_named(fixture), *b = fx_new_named(fixture);
    char path[512];
    size_t n;
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    fx_fill(a, 1);
    if (a->model.info->data_floats > 3) {  /* specials survive bit-exactly */
        a->data[0] = -0.0f;
        a->data[1] = (float)NAN;
        a->data[2] = (float)INFINITY;
        a->data[3] = 1e-42f;
    }
    ck_assert_msg(nn_save(&a->model, path) == 0, "%s", nn_error());
    fx_fill(b, 2);
    ck_assert_msg(nn_load(&b->model, path) == 0, "%s", nn_error());
    n = a->model.info->data_floats;
    ck_assert_int_eq(memcmp(a->data, b->data, n * sizeof(float)), 0);
    /* save over an existing file, modify, load back */
    a->data[n > 0 ? n - 1 : 0] = 0.5f;
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    ck_assert_int_eq(nn_load(&b->model, path), 0);
    ck_assert_int_eq(memcmp(a->data, b->data, n * sizeof(float)), 0);
    ck_assert_int_eq(count_entries(workdir), 1);              /* no temporary left */
    remove_workdir();
    fx_free(a);
    fx_free(b);
}

START_TEST(test_round_trip)
{
    round_trip("mlp");
    round_trip("rgnet");
    round_trip("tied");
    round_trip("misc");
    round_trip("empty");
}
END_TEST

/* The bytes are what the safetensors library writes: sorted names, data
   contiguous in that order, header padded to 8 with spaces. */
START_TEST(test_layout_mlp)
{
    fx_model *a = fx_new(&fx_mlp_info);
    static const char expect_hdr[] =
        "{\"0.bias\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
        "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[8,4],\"data_offsets\":[32,160]},"
        "\"2.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[160,164]},"
        "\"2.weight\":{\"dtype\":\"F32\",\"shape\":[1,8],\"data_offsets\":[164,196]}}";
    char path[512];
    unsigned char *buf;
    size_t n, hlen = 0, k;
    int i;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    for (k = 0; k < 49; k++)
        a->data[k] = (float)k;
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    buf = read_file(path, &n);
    for (i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(hlen, (sizeof expect_hdr - 1 + 7) / 8 * 8);
    ck_assert_int_eq(memcmp(buf + 8, expect_hdr, sizeof expect_hdr - 1), 0);
    for (k = sizeof expect_hdr - 1; k < hlen; k++)
        ck_assert_int_eq(buf[8 + k], ' ');
    ck_assert_uint_eq(n, 8 + hlen + 196);
    /* 0.bias first: data[32..39], little-endian */
    {
        float f;
        uint32_t w = (uint32_t)buf[8 + hlen] | (uint32_t)buf[9 + hlen] << 8 |
                     (uint32_t)buf[10 + hlen] << 16 | (uint32_t)buf[11 + hlen] << 24;
        memcpy(&f, &w, 4);
        ck_assert_float_eq(f, 32.0f);
    }
    free(buf);
    remove_workdir();
    fx_free(a);
}
END_TEST

START_TEST(test_layout_tied_no_aliases)
{
    fx_model *a = fx_new(&fx_tied_info);
    char path[512];
    unsigned char *buf;
    size_t n;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    buf = read_file(path, &n);
    ck_assert_ptr_nonnull(strstr((char *)buf + 8, "\"2.weight\""));
    ck_assert_ptr_null(strstr((char *)buf + 8, "\"4.weight\""));
    ck_assert_ptr_null(strstr((char *)buf + 8, "\"4.bias\""));
    ck_assert_uint_eq(n % 4, 0);
    free(buf);
    remove_workdir();
    fx_free(a);
}
END_TEST

START_TEST(test_save_unwritable)
{
    fx_model *a = fx_new(&fx_mlp_info);
    char path[512], sub[512];
    make_workdir();
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/w.safetensors", workdir);
    ck_assert_int_eq(nn_save(&a->model, path), -1);
    ck_assert_ptr_nonnull(strstr(nn_error(), path));
    ck_assert_ptr_nonnull(strstr(nn_error(), "No such file or directory"));
    ck_assert_int_eq(count_entries(workdir), 0);
    /* the target is a directory: the temporary is written, the rename
       fails, and the temporary is removed */
    snprintf(sub, sizeof sub, "%s/target", workdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(nn_save(&a->model, sub), -1);
    ck_assert_ptr_nonnull(strstr(nn_error(), "cannot replace it"));
    ck_assert_int_eq(count_entries(workdir), 1);
    ck_assert_int_eq(count_entries(sub), 0);
    /* a file in the way of the directory */
    snprintf(path, sizeof path, "%s/target/x", workdir);
    write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/target/x/w.safetensors", workdir);
    ck_assert_int_eq(nn_save(&a->model, path), -1);
    ck_assert_int_eq(count_entries(sub), 1);
    snprintf(path, sizeof path, "%s/target/x", workdir);
    ck_assert_int_eq(remove(path), 0);
    remove_workdir();
    ck_assert_int_eq(access(workdir, F_OK), -1);
    fx_free(a);
}
END_TEST

START_TEST(test_save_keeps_old_file_on_failure)
{
    /* /dev/full: every write fails with ENOSPC.  Its directory is not
       writable for the temporary either way; what matters is that the old
       content of a target stays when saving fails. */
    fx_model *a = fx_new(&fx_mlp_info);
    char path[512];
    unsigned char *buf;
    size_t n;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    write_file(path, "old", 3);
    ck_assert_int_eq(chmod(workdir, 0500), 0);
    if (access(workdir, W_OK) != 0) {          /* not root: the directory is read-only */
        ck_assert_int_eq(nn_save(&a->model, path), -1);
        ck_assert_ptr_nonnull(strstr(nn_error(), "cannot create"));
    }
    ck_assert_int_eq(chmod(workdir, 0700), 0);
    buf = read_file(path, &n);
    ck_assert_uint_eq(n, 3);
    free(buf);
    remove_workdir();
    fx_free(a);
}
END_TEST

START_TEST(test_load_missing_file)
{
    fx_model *a = fx_new(&fx_mlp_info);
    ck_assert_int_eq(nn_load(&a->model, "/nonexistent/w.safetensors"), -1);
    ck_assert_str_eq(nn_error(), "/nonexistent/w.safetensors: cannot open: No such file or directory");
    ck_assert_int_eq(nn_load(&a->model, "/tmp"), -1);
    ck_assert_str_eq(nn_error(), "/tmp: not a regular file");
    fx_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Corpus                                                              */

typedef struct snapshot {
    float *data;
    nn_tensor *tensors;
} snapshot;

static snapshot take(const fx_model *fx)
{
    snapshot s;
    const nn_model_info *info = fx->model.info;
    s.data = (float *)malloc((info->data_floats + 1) * sizeof(float));
    s.tensors = (nn_tensor *)malloc(((size_t)info->ntensors + 1) * sizeof(nn_tensor));
    ck_assert_ptr_nonnull(s.data);
    ck_assert_ptr_nonnull(s.tensors);
    memcpy(s.data, fx->data, info->data_floats * sizeof(float));
    memcpy(s.tensors, fx->tensors, (size_t)info->ntensors * sizeof(nn_tensor));
    return s;
}

static int same(const snapshot *s, const fx_model *fx)
{
    const nn_model_info *info = fx->model.info;
    return memcmp(s->data, fx->data, info->data_floats * sizeof(float)) == 0 &&
           memcmp(s->tensors, fx->tensors, (size_t)info->ntensors * sizeof(nn_tensor)) == 0;
}

START_TEST(test_corpus)
{
    char path[2200], line[1024];
    FILE *list;
    int ncases = 0, nok = 0, failures = 0;
    snprintf(path, sizeof path, "%s/expected.txt", corpus_dir);
    list = fopen(path, "r");
    ck_assert_msg(list != NULL, "cannot open %s", path);
    while (fgets(line, sizeof line, list) != NULL) {
        char *file, *fixture, *expect, *nl;
        fx_model *fx;
        snapshot snap;
        int rc;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        file = line;
        fixture = strchr(file, '\t');
        ck_assert_ptr_nonnull(fixture);
        *fixture++ = '\0';
        expect = strchr(fixture, '\t');
        ck_assert_ptr_nonnull(expect);
        *expect++ = '\0';
        fx = fx_new_named(fixture);
        ck_assert_msg(fx != NULL, "unknown fixture %s", fixture);
        fx_fill(fx, 99);
        snap = take(fx);
        snprintf(path, sizeof path, "%s/%s", corpus_dir, file);
        nn_set_error("%s", "");
        rc = nn_load(&fx->model, path);
        ncases++;
        if (strcmp(expect, "OK") == 0) {
            nok++;
            if (rc != 0) {
                fprintf(stderr, "FAIL %s: rejected: %s\n", file, nn_error());
                failures++;
            } else if (fx->model.info->data_floats > 0 && same(&snap, fx)) {
                fprintf(stderr, "FAIL %s: accepted but the model did not change\n", file);
                failures++;
            }
        } else {
            if (rc != -1) {
                fprintf(stderr, "FAIL %s: accepted, expected: %s\n", file, expect);
                failures++;
            } else if (strstr(nn_error(), expect) == NULL ||
                       strncmp(nn_error(), path, strlen(path)) != 0) {
                fprintf(stderr, "FAIL %s: message \"%s\" lacks \"%s\"\n", file, nn_error(),
                        expect);
                failures++;
            } else if (!same(&snap, fx)) {
                fprintf(stderr, "FAIL %s: rejected but the model changed\n", file);
                failures++;
            }
        }
        free(snap.data);
        free(snap.tensors);
        fx_free(fx);
    }
    fclose(list);
    fprintf(stderr, "corpus: %d files (%d valid, %d malformed), %d failures\n", ncases, nok,
            ncases - nok, failures);
    ck_assert_int_gt(ncases, 50);
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* Every strict prefix of a valid file is rejected, and the model stays. */
START_TEST(test_all_truncations)
{
    fx_model *a = fx_new(&fx_tied_info), *b = fx_new(&fx_tied_info);
    char path[512], cut[512];
    unsigned char *buf;
    size_t n, k;
    snapshot snap;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", workdir);
    fx_fill(a, 5);
    fx_fill(b, 6);
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    buf = read_file(path, &n);
    snap = take(b);
    for (k = 0; k < n; k++) {
        write_file(cut, buf, k);
        ck_assert_int_eq(nn_load(&b->model, cut), -1);
        ck_assert(same(&snap, b));
    }
    /* and one byte more is trailing data */
    buf = (unsigned char *)realloc(buf, n + 1);
    buf[n] = 0;
    write_file(cut, buf, n + 1);
    ck_assert_int_eq(nn_load(&b->model, cut), -1);
    ck_assert_ptr_nonnull(strstr(nn_error(), "trailing data"));
    ck_assert(same(&snap, b));
    free(snap.data);
    free(snap.tensors);
    free(buf);
    remove_workdir();
    fx_free(a);
    fx_free(b);
}
END_TEST

/* Flip every byte of the header: the loader may accept (e.g. a changed
   digit in a value that stays valid), but must never crash, and when it
   rejects, the model is untouched. */
START_TEST(test_header_mutations)
{
    fx_model *a = fx_new(&fx_mlp_info), *b = fx_new(&fx_mlp_info);
    char path[512], mut[512];
    unsigned char *buf;
    size_t n, hlen, k;
    int bit, rejected = 0, total = 0;
    snapshot snap;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    snprintf(mut, sizeof mut, "%s/m.safetensors", workdir);
    fx_fill(a, 5);
    fx_fill(b, 6);
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    buf = read_file(path, &n);
    hlen = buf[0] | (size_t)buf[1] << 8;
    snap = take(b);
    for (k = 0; k < 8 + hlen; k++)
        for (bit = 0; bit < 8; bit++) {
            buf[k] ^= (unsigned char)(1u << bit);
            write_file(mut, buf, n);
            total++;
            if (nn_load(&b->model, mut) != 0) {
                rejected++;
                ck_assert(same(&snap, b));
            } else {
                memcpy(b->data, snap.data, 49 * sizeof(float));
            }
            buf[k] ^= (unsigned char)(1u << bit);
        }
    fprintf(stderr, "header mutations: %d of %d rejected\n", rejected, total);
    ck_assert_int_gt(rejected, total * 9 / 10);
    free(snap.data);
    free(snap.tensors);
    free(buf);
    remove_workdir();
    fx_free(a);
    fx_free(b);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    SRunner *sr;
    int failed;
    if (argc > 1)
        corpus_dir = argv[1];
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_layout_mlp);
    tcase_add_test(tc, test_layout_tied_no_aliases);
    tcase_add_test(tc, test_save_unwritable);
    tcase_add_test(tc, test_save_keeps_old_file_on_failure);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_corpus);
    tcase_add_test(tc, test_all_truncations);
    tcase_add_test(tc, test_header_mutations);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
