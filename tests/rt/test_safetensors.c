/* nn_save / nn_load: round trips, the exact file layout, failures that must
 * leave no file behind, and the corpus in bad_weights/ (each file rejected
 * with its expected message and the model left bit-identical, or accepted).
 * The memory versions against them: nn_load_mem gives every file of the
 * corpus (and every truncation) the same verdict and the same message as
 * nn_load, with "nn_load_mem: " for the path; nn_save_mem and nn_save_to
 * write the bytes nn_save writes, a buffer too small stays untouched, a
 * writer that fails stops the save.
 *
 * Built twice (tests/rt, tests/deploy): against the runtime as configured,
 * and against the smallest runtime (no BLAS, no threads, the ISO C file
 * code of safetensors_file.c: NN_TEST_ISO_FILES, where a directory is not
 * refused up front but fails to read).
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

/* Bytes of t's storage. */
static size_t storage_bytes(const nn_tensor *t)
{
    return (size_t)t->numel * (t->dtype == NN_I64 ? 8 : 4);
}

/* Every tensor of a and b holds the same bytes. */
static int same_tensors(const fx_model *a, const fx_model *b)
{
    int i;
    for (i = 0; i < a->model.info->ntensors; i++)
        if (memcmp(a->tensors[i].data, b->tensors[i].data, storage_bytes(&a->tensors[i])) != 0)
            return 0;
    return 1;
}

/* Floats of the data block that belong to no tensor (padding) hold what
   fx_fill(seed) put there. */
static int padding_is(const fx_model *fx, uint32_t seed)
{
    fx_model *ref = fx_new(fx->model.info);
    size_t k;
    int i, ok = 1;
    fx_fill(ref, seed);
    for (k = 0; k < fx->model.info->data_floats; k++) {
        int covered = 0;
        for (i = 0; i < fx->model.info->ntensors; i++) {
            const nn_tensor_info *ti = &fx->model.info->tensors[i];
            size_t floats = storage_bytes(&fx->tensors[i]) / 4;
            if (k >= ti->offset && k < ti->offset + floats)
                covered = 1;
        }
        if (!covered && memcmp(&fx->data[k], &ref->data[k], 4) != 0)
            ok = 0;
    }
    fx_free(ref);
    return ok;
}

static void round_trip(const char *fixture)
{
    fx_model *a = fx_new_named(fixture), *b = fx_new_named(fixture);
    char path[512];
    size_t n;
    int i;
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
    for (i = 0; i < a->model.info->ntensors; i++)   /* and int64 extremes */
        if (a->tensors[i].dtype == NN_I64)
            fx_set_i64(&a->tensors[i], 0, i % 3 == 0 ? INT64_MIN : i % 3 == 1 ? INT64_MAX : -1);
    ck_assert_msg(nn_save(&a->model, path) == 0, "%s", nn_error());
    fx_fill(b, 2);
    ck_assert_msg(nn_load(&b->model, path) == 0, "%s", nn_error());
    ck_assert(same_tensors(a, b));
    ck_assert(padding_is(b, 2));                              /* nothing else written */
    /* save over an existing file, modify, load back */
    n = a->model.info->data_floats;
    a->data[n > 0 ? n - 1 : 0] = 0.5f;
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    ck_assert_int_eq(nn_load(&b->model, path), 0);
    ck_assert(same_tensors(a, b));
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
    round_trip("bn");
    round_trip("tiedbn");
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

/* With int64 buffers: the I64 entries first (safetensors sorts by dtype,
   larger alignment first, then by name), 8 little-endian bytes each. */
START_TEST(test_layout_bn)
{
    fx_model *a = fx_new(&fx_bn_info);
    static const char expect_hdr[] =
        "{\"1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"4.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
        "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]},"
        "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[28,76]},"
        "\"1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[76,88]},"
        "\"1.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[88,100]},"
        "\"1.running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[100,112]},"
        "\"1.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[112,124]},"
        "\"3.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[124,132]},"
        "\"3.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[132,156]},"
        "\"4.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[156,164]},"
        "\"4.running_mean\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[164,172]},"
        "\"4.running_var\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[172,180]},"
        "\"4.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]}}";
    static const unsigned char nbt1[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    static const unsigned char nbt4[8] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    char path[512];
    unsigned char *buf;
    size_t n, hlen = 0, k;
    int i;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    for (k = 0; k < 48; k++)
        a->data[k] = (float)k;
    fx_set_i64(nn_find(&a->model, "1.num_batches_tracked"), 0, INT64_C(0x0102030405060708));
    fx_set_i64(nn_find(&a->model, "4.num_batches_tracked"), 0, -2);
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    buf = read_file(path, &n);
    for (i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(hlen, (sizeof expect_hdr - 1 + 7) / 8 * 8);
    ck_assert_int_eq(memcmp(buf + 8, expect_hdr, sizeof expect_hdr - 1), 0);
    for (k = sizeof expect_hdr - 1; k < hlen; k++)
        ck_assert_int_eq(buf[8 + k], ' ');
    ck_assert_uint_eq(n, 8 + hlen + 188);
    ck_assert_int_eq(memcmp(buf + 8 + hlen, nbt1, 8), 0);
    ck_assert_int_eq(memcmp(buf + 8 + hlen + 8, nbt4, 8), 0);
    /* then 0.bias: data[12..14] */
    {
        float f;
        uint32_t w = (uint32_t)buf[24 + hlen] | (uint32_t)buf[25 + hlen] << 8 |
                     (uint32_t)buf[26 + hlen] << 16 | (uint32_t)buf[27 + hlen] << 24;
        memcpy(&f, &w, 4);
        ck_assert_float_eq(f, 12.0f);
    }
    free(buf);
    remove_workdir();
    fx_free(a);
}
END_TEST

/* A model with an int32 buffer: "I32", after the F32 entries (smaller
   alignment), 4 bytes an element; round trip. */
static const nn_tensor_info i32_tensors[] = {
    {"0.weight", 1, {3, 0, 0, 0}, 3, 0, 1, 0, NN_F32},
    {"0.count", 1, {3, 0, 0, 0}, 3, 4, 0, 1, NN_I32},
    {"0.steps", 0, {0, 0, 0, 0}, 1, 8, 0, 1, NN_I64},
};
static const char *const i32_names[] = {"weight", "count", "steps"};
static const int i32_ids[] = {0, 1, 2};
static const nn_module i32_leaf = {"0", "0", "Counter", "", 0, NULL, NULL, 3, i32_names,
                                   i32_ids};
static const char *const i32_root_names[] = {"0"};
static const nn_module *const i32_root_children[] = {&i32_leaf};
static const nn_module i32_root = {"", "", "Sequential", "", 1, i32_root_names,
                                   i32_root_children, 0, NULL, NULL};
static const char *const i32_keys[] = {"0.weight", "0.count", "0.steps"};
static const int i32_key_ids[] = {0, 1, 2};
static const nn_model_info i32_info = {"i32", 3, 1, i32_tensors, 3, i32_keys, i32_key_ids,
                                       &i32_root, 10, 3};

START_TEST(test_layout_i32)
{
    fx_model *a = fx_new(&i32_info), *b = fx_new(&i32_info);
    static const char expect_hdr[] =
        "{\"0.steps\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]},"
        "\"0.count\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[20,32]}}";
    int32_t counts[3] = {-1, 2147483647, 5}, back[3];
    char path[512];
    unsigned char *buf;
    size_t n;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    fx_fill(a, 3);
    memcpy(nn_find(&a->model, "0.count")->data, counts, sizeof counts);
    fx_set_i64(nn_find(&a->model, "0.steps"), 0, 77);
    ck_assert_msg(nn_save(&a->model, path) == 0, "%s", nn_error());
    buf = read_file(path, &n);
    ck_assert_int_eq(memcmp(buf + 8, expect_hdr, sizeof expect_hdr - 1), 0);
    ck_assert_uint_eq(n, 8 + (sizeof expect_hdr - 1 + 7) / 8 * 8 + 32);
    ck_assert_int_eq(buf[n - 12], 0xff);                      /* -1, little-endian */
    ck_assert_int_eq(buf[n - 4], 5);
    fx_fill(b, 4);
    ck_assert_msg(nn_load(&b->model, path) == 0, "%s", nn_error());
    ck_assert(same_tensors(a, b));
    memcpy(back, nn_find(&b->model, "0.count")->data, sizeof back);
    ck_assert_int_eq(back[1], 2147483647);
    ck_assert(fx_get_i64(nn_find(&b->model, "0.steps"), 0) == 77);
    free(buf);
    remove_workdir();
    fx_free(a);
    fx_free(b);
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

/* The model says which dtype each tensor has: a file nn_save wrote for bn
   does not load into a model that wants num_batches_tracked as float32, or
   a running_mean as int64; the message names the key and both dtypes, and
   the model is left as it was. */
static void expect_refused(const nn_model_info *info, const char *path, const char *frag)
{
    fx_model *b = fx_new(info);
    float *before;
    fx_fill(b, 8);
    before = (float *)malloc(info->data_floats * sizeof(float) + 1);
    ck_assert_ptr_nonnull(before);
    memcpy(before, b->data, info->data_floats * sizeof(float));
    nn_set_error(NULL);
    ck_assert_int_eq(nn_load(&b->model, path), -1);
    ck_assert_msg(strstr(nn_error(), frag) != NULL, "\"%s\" lacks \"%s\"", nn_error(), frag);
    ck_assert_int_eq(strncmp(nn_error(), path, strlen(path)), 0);
    ck_assert_int_eq(memcmp(before, b->data, info->data_floats * sizeof(float)), 0);
    free(before);
    fx_free(b);
}

START_TEST(test_load_dtype_mismatch)
{
    fx_model *a = fx_new(&fx_bn_info);
    nn_tensor_info t1[14], t2[14];
    nn_model_info f32_nbt = fx_bn_info, i64_mean = fx_bn_info;
    char path[512];
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    fx_fill(a, 7);
    ck_assert_int_eq(nn_save(&a->model, path), 0);
    memcpy(t1, fx_bn_tensors, sizeof t1);
    memcpy(t2, fx_bn_tensors, sizeof t2);
    t1[13].dtype = NN_F32;                                   /* 4.num_batches_tracked */
    t2[8].dtype = NN_I64;                                    /* 1.running_mean [3] */
    t2[8].offset = 34;                                       /* refused before any write */
    f32_nbt.tensors = t1;
    i64_mean.tensors = t2;
    expect_refused(&f32_nbt, path,
                   "tensor '4.num_batches_tracked': dtype I64 does not match the model's F32");
    expect_refused(&i64_mean, path,
                   "tensor '1.running_mean': dtype F32 does not match the model's I64");
    /* and the file still loads into the model it came from */
    {
        fx_model *b = fx_new(&fx_bn_info);
        ck_assert_int_eq(nn_load(&b->model, path), 0);
        ck_assert(same_tensors(a, b));
        fx_free(b);
    }
    remove_workdir();
    fx_free(a);
}
END_TEST

/* A model tensor of a dtype nngen-rt cannot store: nothing saved, nothing
   loaded. */
START_TEST(test_unsupported_model_dtype)
{
    nn_tensor_info t[14];
    nn_model_info bad = fx_bn_info;
    fx_model *a = fx_new(&fx_bn_info), *b;
    char path[512], good[512];
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    snprintf(good, sizeof good, "%s/good.safetensors", workdir);
    ck_assert_int_eq(nn_save(&a->model, good), 0);
    memcpy(t, fx_bn_tensors, sizeof t);
    t[10].dtype = 7;
    bad.tensors = t;
    b = fx_new(&bad);
    ck_assert_int_eq(nn_save(&b->model, path), -1);
    ck_assert_ptr_nonnull(strstr(nn_error(), "tensor '1.num_batches_tracked' has an "
                                             "unsupported dtype 7"));
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(count_entries(workdir), 1);
    expect_refused(&bad, good, "tensor '1.num_batches_tracked' of the model has an "
                               "unsupported dtype 7");
    remove_workdir();
    fx_free(a);
    fx_free(b);
}
END_TEST

/* ok-bn of the corpus holds gen.py's values(): every float and int64 comes
   through (the int64 ones beyond 2^53). */
START_TEST(test_corpus_bn_values)
{
    fx_model *fx = fx_new(&fx_bn_info);
    static const char *const files[] = {"ok-bn.safetensors", "ok-bn-name-order.safetensors",
                                        "ok-bn-any-order.safetensors"};
    char path[2200];
    size_t f;
    int i;
    for (f = 0; f < sizeof files / sizeof files[0]; f++) {
        snprintf(path, sizeof path, "%s/%s", corpus_dir, files[f]);
        fx_fill(fx, 5);
        ck_assert_msg(nn_load(&fx->model, path) == 0, "%s", nn_error());
        for (i = 0; i < fx->model.info->ntensors; i++) {
            const nn_tensor *t = &fx->tensors[i];
            const unsigned char *p;
            int64_t j, seed = 0;
            for (p = (const unsigned char *)t->name; *p; p++)
                seed += *p;
            seed %= 97;
            for (j = 0; j < t->numel; j++) {
                int64_t q = (j * 37 + seed) % 101 - 50;
                if (t->dtype == NN_I64)
                    ck_assert(fx_get_i64(t, j) == q * (INT64_C(1) << 40) + seed + j);
                else
                    ck_assert_float_eq(t->data[j], (float)q / 16.0f);
            }
        }
        ck_assert(padding_is(fx, 5));
    }
    fx_free(fx);
}
END_TEST

START_TEST(test_load_missing_file)
{
    fx_model *a = fx_new(&fx_mlp_info);
    ck_assert_int_eq(nn_load(&a->model, "/nonexistent/w.safetensors"), -1);
    ck_assert_str_eq(nn_error(), "/nonexistent/w.safetensors: cannot open: No such file or directory");
    ck_assert_int_eq(nn_load(&a->model, "/tmp"), -1);
#ifdef NN_TEST_ISO_FILES
    ck_assert_msg(strncmp(nn_error(), "/tmp: read error: ", 18) == 0, "%s", nn_error());
#else
    ck_assert_str_eq(nn_error(), "/tmp: not a regular file");
#endif
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

/* nn_load_mem of buf[0 .. n) (copied into a buffer of exactly n bytes, so
   that a sanitizer sees any read past it) returns file_rc, as nn_load of
   the same bytes in file path did, and fails with the same message:
   "nn_load_mem: X" where nn_load said "PATH: X". */
static void expect_mem_like_file(fx_model *fx, const unsigned char *buf, size_t n, int file_rc,
                                 const char *path, const char *file_msg)
{
    unsigned char *copy = n ? (unsigned char *)malloc(n) : NULL;
    size_t pl = strlen(path);
    int rc;
    if (n)
        memcpy(copy, buf, n);
    nn_set_error(NULL);
    rc = nn_load_mem(&fx->model, copy, n);
    ck_assert_msg(rc == file_rc, "%s: nn_load gave %d, nn_load_mem %d (%s)", path, file_rc, rc,
                  nn_error());
    if (rc != 0) {
        ck_assert_msg(strncmp(file_msg, path, pl) == 0 && strncmp(file_msg + pl, ": ", 2) == 0,
                      "nn_load's message lacks the path: %s", file_msg);
        ck_assert_msg(strncmp(nn_error(), "nn_load_mem: ", 13) == 0 &&
                          strcmp(nn_error() + 13, file_msg + pl + 2) == 0,
                      "nn_load said \"%s\", nn_load_mem \"%s\"", file_msg, nn_error());
    }
    free(copy);
}

/* Every strict prefix of a valid file is rejected, and the model stays. */
static void all_truncations(const nn_model_info *info)
{
    fx_model *a = fx_new(info), *b = fx_new(info);
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
        char file_msg[1024];
        write_file(cut, buf, k);
        ck_assert_int_eq(nn_load(&b->model, cut), -1);
        ck_assert(same(&snap, b));
        snprintf(file_msg, sizeof file_msg, "%s", nn_error());
        expect_mem_like_file(b, buf, k, -1, cut, file_msg);
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

START_TEST(test_all_truncations)
{
    all_truncations(&fx_tied_info);
    all_truncations(&fx_bn_info);
}
END_TEST

/* Flip every byte of the header: the loader may accept (e.g. a changed
   digit in a value that stays valid), but must never crash, and when it
   rejects, the model is untouched. */
static void header_mutations(const nn_model_info *info)
{
    fx_model *a = fx_new(info), *b = fx_new(info);
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
                memcpy(b->data, snap.data, info->data_floats * sizeof(float));
            }
            buf[k] ^= (unsigned char)(1u << bit);
        }
    fprintf(stderr, "header mutations (%s): %d of %d rejected\n", info->name, rejected, total);
    ck_assert_int_gt(rejected, total * 9 / 10);
    free(snap.data);
    free(snap.tensors);
    free(buf);
    remove_workdir();
    fx_free(a);
    fx_free(b);
}

START_TEST(test_header_mutations)
{
    header_mutations(&fx_mlp_info);
    header_mutations(&fx_bn_info);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Memory I/O                                                          */

/* Each file of the corpus through nn_load and through nn_load_mem, into
   two instances filled alike: the same verdict, the same message, the
   models unchanged on failure and bit-identical on success. */
START_TEST(test_corpus_mem)
{
    char path[2200], line[1024];
    FILE *list;
    int ncases = 0, nfail = 0;
    snprintf(path, sizeof path, "%s/expected.txt", corpus_dir);
    list = fopen(path, "r");
    ck_assert_msg(list != NULL, "cannot open %s", path);
    while (fgets(line, sizeof line, list) != NULL) {
        char *file, *fixture, *nl, msg[1024];
        fx_model *a, *b;
        snapshot snap;
        unsigned char *buf;
        size_t n;
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
        *strchr(fixture, '\t') = '\0';
        a = fx_new_named(fixture);
        b = fx_new_named(fixture);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        fx_fill(a, 41);
        fx_fill(b, 41);
        snap = take(b);
        snprintf(path, sizeof path, "%s/%s", corpus_dir, file);
        rc = nn_load(&a->model, path);
        snprintf(msg, sizeof msg, "%s", nn_error());
        buf = read_file(path, &n);
        expect_mem_like_file(b, buf, n, rc, path, msg);
        if (rc != 0) {
            nfail++;
            ck_assert_msg(same(&snap, b), "%s: nn_load_mem failed but changed the model", file);
        } else {
            ck_assert_msg(memcmp(a->data, b->data,
                                 a->model.info->data_floats * sizeof(float)) == 0,
                          "%s: nn_load and nn_load_mem loaded different data", file);
        }
        ncases++;
        free(buf);
        free(snap.data);
        free(snap.tensors);
        fx_free(a);
        fx_free(b);
    }
    fclose(list);
    fprintf(stderr, "corpus in memory: %d files, %d rejected alike by nn_load and nn_load_mem\n",
            ncases, nfail);
    ck_assert_int_gt(ncases, 50);
    ck_assert_int_gt(nfail, 50);
}
END_TEST

/* A writer into a growing buffer that counts its calls, or fails (-1)
   once more than fail_after bytes would have been taken. */
typedef struct collect {
    unsigned char *p;
    size_t len, cap, fail_after;
    int calls, failed;
} collect;

static int collect_write(void *ctx, const void *data, size_t n)
{
    collect *c = (collect *)ctx;
    c->calls++;
    ck_assert_uint_gt(n, 0);
    ck_assert_msg(!c->failed, "the writer was called again after it failed");
    if (c->len + n > c->fail_after) {
        c->failed = 1;
        return -1;
    }
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->p = (unsigned char *)realloc(c->p, c->cap);
        ck_assert_ptr_nonnull(c->p);
    }
    memcpy(c->p + c->len, data, n);
    c->len += n;
    return 0;
}

static void mem_round_trip(const nn_model_info *info)
{
    fx_model *a = fx_new(info), *b = fx_new(info);
    char path[512];
    unsigned char *file, *buf;
    size_t n, need = 0, len, cap, k;
    collect c = {NULL, 0, 0, (size_t)-1, 0, 0};
    snapshot snap;
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    fx_fill(a, 11);
    ck_assert_msg(nn_save(&a->model, path) == 0, "%s", nn_error());
    file = read_file(path, &n);

    /* the size, then the bytes: those of nn_save */
    ck_assert_msg(nn_save_mem(&a->model, NULL, 0, &need) == 0, "%s", nn_error());
    ck_assert_uint_eq(need, n);
    buf = (unsigned char *)malloc(n + 16);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 0xab, n + 16);
    len = 0;
    ck_assert_msg(nn_save_mem(&a->model, buf, n + 16, &len) == 0, "%s", nn_error());
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(buf, file, n), 0);
    for (k = n; k < n + 16; k++)
        ck_assert_int_eq(buf[k], 0xab);          /* nothing written past the file */
    ck_assert_int_eq(nn_save_mem(&a->model, buf, n, NULL), 0);   /* exactly enough */
    ck_assert_int_eq(memcmp(buf, file, n), 0);

    /* every smaller buffer: -1, the size reported, the buffer untouched */
    for (cap = 0; cap < n; cap++) {
        memset(buf, 0xcd, n + 16);
        len = 0;
        nn_set_error(NULL);
        ck_assert_int_eq(nn_save_mem(&a->model, buf, cap, &len), -1);
        ck_assert_uint_eq(len, n);
        ck_assert_msg(strstr(nn_error(), "nn_save_mem: the buffer holds") == nn_error(), "%s",
                      nn_error());
        for (k = 0; k < n + 16; k++)
            ck_assert_int_eq(buf[k], 0xcd);
    }

    /* a writer: the same bytes */
    ck_assert_msg(nn_save_to(&a->model, collect_write, &c) == 0, "%s", nn_error());
    ck_assert_uint_eq(c.len, n);
    ck_assert_int_eq(memcmp(c.p, file, n), 0);
    fprintf(stderr, "nn_save_to (%s): %zu bytes in %d calls\n", info->name, n, c.calls);
    /* a writer that fails after k bytes, for every k: -1, and it was not
       called again after failing */
    for (k = 0; k < n; k++) {
        c.len = 0;
        c.calls = 0;
        c.failed = 0;
        c.fail_after = k;
        nn_set_error(NULL);
        ck_assert_int_eq(nn_save_to(&a->model, collect_write, &c), -1);
        ck_assert_msg(strstr(nn_error(), "nn_save_to: write error after") == nn_error(), "%s",
                      nn_error());
        ck_assert_uint_le(c.len, k);
        ck_assert_int_eq(c.failed, 1);
    }

    /* and back: nn_load_mem of nn_save_mem's bytes */
    ck_assert_int_eq(nn_save_mem(&a->model, buf, n, NULL), 0);
    fx_fill(b, 12);
    snap = take(b);
    ck_assert_msg(nn_load_mem(&b->model, buf, n) == 0, "%s", nn_error());
    ck_assert(same_tensors(a, b));
    ck_assert(padding_is(b, 12));
    free(snap.data);
    free(snap.tensors);
    free(c.p);
    free(buf);
    free(file);
    remove_workdir();
    fx_free(a);
    fx_free(b);
}

START_TEST(test_mem_round_trip)
{
    static const char *const names[] = {"mlp", "rgnet", "tied", "misc", "bn", "tiedbn", "empty"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        mem_round_trip(fx_lookup(names[i]));
    mem_round_trip(&i32_info);
}
END_TEST

/* More tensors than the save's stack table holds (64): the same bytes
   through the allocated table, names sorted. */
START_TEST(test_save_many_tensors)
{
    enum { N = 100 };
    static nn_tensor_info t[N];
    static char names[N][8];
    static const char *keys[N], *local[N];
    static int ids[N];
    nn_module leaf = {"0", "0", "Many", "", 0, NULL, NULL, N, local, ids};
    const nn_module *children[1] = {&leaf};
    const char *child_names[1] = {"0"};
    nn_module root = {"", "", "Sequential", "", 1, child_names, children, 0, NULL, NULL};
    nn_model_info info = {"many", N, N, t, N, keys, ids, &root, 0, 0};
    fx_model *a, *b;
    unsigned char *buf;
    size_t need = 0, off = 0;
    char path[512];
    unsigned char *file;
    size_t n;
    int i;
    for (i = 0; i < N; i++) {
        /* registration order is not name order: t099, t098, ... */
        snprintf(names[i], sizeof names[i], "0.t%03d", N - 1 - i);
        t[i].name = names[i];
        t[i].ndim = 1;
        t[i].shape[0] = i % 3 + 1;
        t[i].numel = i % 3 + 1;
        t[i].offset = off;
        t[i].requires_grad = 1;
        t[i].dtype = NN_F32;
        off += (size_t)(i % 3 + 1);
        keys[i] = names[i];
        local[i] = names[i] + 2;
        ids[i] = i;
    }
    info.data_floats = off;
    info.grad_floats = off;
    a = fx_new(&info);
    b = fx_new(&info);
    fx_fill(a, 21);
    fx_fill(b, 22);
    make_workdir();
    snprintf(path, sizeof path, "%s/w.safetensors", workdir);
    ck_assert_msg(nn_save(&a->model, path) == 0, "%s", nn_error());
    file = read_file(path, &n);
    ck_assert_int_eq(nn_save_mem(&a->model, NULL, 0, &need), 0);
    ck_assert_uint_eq(need, n);
    buf = (unsigned char *)malloc(need);
    ck_assert_int_eq(nn_save_mem(&a->model, buf, need, NULL), 0);
    ck_assert_int_eq(memcmp(buf, file, n), 0);
    ck_assert_int_eq(strncmp((char *)buf + 8, "{\"0.t000\":", 10), 0);
    ck_assert_ptr_nonnull(strstr((char *)buf + 8, "\"0.t098\":{\"dtype\":\"F32\",\"shape\":[2],"));
    ck_assert_msg(nn_load_mem(&b->model, buf, need) == 0, "%s", nn_error());
    ck_assert(same_tensors(a, b));
    free(buf);
    free(file);
    remove_workdir();
    fx_free(a);
    fx_free(b);
}
END_TEST

START_TEST(test_mem_arguments)
{
    fx_model *a = fx_new(&fx_mlp_info), *e = fx_new(&fx_empty_info);
    snapshot snap;
    static const unsigned char empty_file[16] = {8, 0, 0, 0, 0, 0, 0, 0,
                                                 '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    size_t len = 0;
    fx_fill(a, 3);
    snap = take(a);
    ck_assert_int_eq(nn_load_mem(&a->model, NULL, 0), -1);
    ck_assert_str_eq(nn_error(), "nn_load_mem: file is empty (not a safetensors file)");
    ck_assert_int_eq(nn_load_mem(&a->model, NULL, 5), -1);
    ck_assert_str_eq(nn_error(), "nn_load_mem: NULL buffer of 5 bytes");
    ck_assert(same(&snap, a));
    ck_assert_int_eq(nn_save_to(&a->model, NULL, NULL), -1);
    ck_assert_str_eq(nn_error(), "nn_save_to: no writer");
    /* a model without tensors: "{}" padded to 8 */
    ck_assert_int_eq(nn_save_mem(&e->model, NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 16);
    ck_assert_int_eq(nn_load_mem(&e->model, empty_file, sizeof empty_file), 0);
    free(snap.data);
    free(snap.tensors);
    fx_free(a);
    fx_free(e);
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
    tcase_add_test(tc, test_layout_bn);
    tcase_add_test(tc, test_layout_i32);
    tcase_add_test(tc, test_layout_tied_no_aliases);
    tcase_add_test(tc, test_load_dtype_mismatch);
    tcase_add_test(tc, test_unsupported_model_dtype);
    tcase_add_test(tc, test_corpus_bn_values);
    tcase_add_test(tc, test_save_unwritable);
    tcase_add_test(tc, test_save_keeps_old_file_on_failure);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_corpus);
    tcase_add_test(tc, test_all_truncations);
    tcase_add_test(tc, test_header_mutations);
    tcase_add_test(tc, test_corpus_mem);
    tcase_add_test(tc, test_mem_round_trip);
    tcase_add_test(tc, test_save_many_tensors);
    tcase_add_test(tc, test_mem_arguments);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
