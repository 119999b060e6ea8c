/* print_tool: prints tensors, parameters, module trees and state dicts with
 * the runtime, for comparison with PyTorch by test_print.py.
 *
 * Reads whitespace-separated commands from stdin; after each command's
 * output it prints the separator line "@@".  Float values are given as the
 * 8 hex digits of their IEEE-754 bits ("3f800000"), or as anything strtof
 * accepts (hex floats "%a") when prefixed with '='.
 *
 *   tensor MODE NDIM D0..    V..   MODE 0: nn_print_tensor
 *                                  MODE 1: nn_print_param, requires_grad
 *                                  MODE 2: nn_print_param, frozen
 *                                  MODE 3: nn_format_tensor (exact size)
 *                                  MODE 4: nn_print_param of a buffer
 *   itensor BITS MODE NDIM D0.. V..  the same for an integer tensor, NN_I64
 *                                  (BITS 64) or NN_I32 (BITS 32), values in
 *                                  decimal
 *   load FIX V..                   fill FIX's tensors in table order, each
 *                                  with numel values: float32 as above,
 *                                  int64 as 16 hex digits (two's complement),
 *                                  int32 as 8
 *   model FIX                      nn_print_model
 *   module FIX PATH                nn_print_module(nn_module_find(PATH))
 *   state FIX                      nn_print_state_dict
 *   mstate FIX PATH                nn_print_module_state_dict
 *   shapes FIX PATH                nn_print_named_shapes
 *   param FIX KEY                  nn_print_param(nn_find(KEY))
 *   data FIX KEY                   nn_print_tensor(nn_find(KEY))
 * PATH "-" is the root ("").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

#define NFIX 7
static const char *const fix_names[NFIX] = {"mlp", "rgnet", "tied", "misc", "bn", "tiedbn",
                                            "empty"};
static fx_model *fixtures[NFIX];

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "print_tool: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static int word(char *buf, size_t n)
{
    int c;
    size_t k = 0;
    do {
        c = getchar();
    } while (c == ' ' || c == '\n' || c == '\t' || c == '\r');
    if (c == EOF)
        return 0;
    while (c != EOF && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
        if (k + 1 < n)
            buf[k++] = (char)c;
        c = getchar();
    }
    buf[k] = '\0';
    return 1;
}

static long need_long(void)
{
    char w[64], *end;
    long v;
    if (!word(w, sizeof w))
        die("unexpected end of input", NULL);
    v = strtol(w, &end, 10);
    if (*end != '\0')
        die("bad integer", w);
    return v;
}

static float need_float(void)
{
    char w[128], *end;
    if (!word(w, sizeof w))
        die("unexpected end of input", NULL);
    if (w[0] == '=') {
        float f = strtof(w + 1, &end);
        if (*end != '\0')
            die("bad float", w);
        return f;
    } else {
        unsigned long bits = strtoul(w, &end, 16);
        float f;
        uint32_t b32 = (uint32_t)bits;
        if (*end != '\0' || strlen(w) != 8)
            die("bad float bits", w);
        memcpy(&f, &b32, sizeof f);
        return f;
    }
}

static long long need_ll(void)
{
    char w[64], *end;
    long long v;
    if (!word(w, sizeof w))
        die("unexpected end of input", NULL);
    v = strtoll(w, &end, 10);
    if (*end != '\0')
        die("bad integer", w);
    return v;
}

static uint64_t need_hex(size_t digits)
{
    char w[64], *end;
    unsigned long long v;
    if (!word(w, sizeof w))
        die("unexpected end of input", NULL);
    v = strtoull(w, &end, 16);
    if (*end != '\0' || strlen(w) != digits)
        die("bad hex word", w);
    return (uint64_t)v;
}

/* The value as print() shows it: tensor, parameter or buffer. */
static void show(nn_tensor *t, long mode)
{
    t->requires_grad = mode == 1;
    t->is_buffer = mode == 4;
    if (mode == 0) {
        nn_print_tensor(stdout, t);
    } else if (mode == 3) {
        size_t n = nn_format_tensor(NULL, 0, t);
        char *buf = (char *)malloc(n + 1);
        if (buf == NULL)
            die("out of memory", NULL);
        if (nn_format_tensor(buf, n + 1, t) != n || strlen(buf) != n)
            die("nn_format_tensor is inconsistent", NULL);
        printf("%s\n", buf);
        free(buf);
    } else {
        nn_print_param(stdout, t);
    }
}

static fx_model *need_fixture(void)
{
    char w[64];
    int i;
    if (!word(w, sizeof w))
        die("unexpected end of input", NULL);
    for (i = 0; i < NFIX; i++)
        if (strcmp(w, fix_names[i]) == 0) {
            if (fixtures[i] == NULL)
                fixtures[i] = fx_new_named(w);
            if (fixtures[i] == NULL)
                die("out of memory", NULL);
            return fixtures[i];
        }
    die("unknown fixture", w);
    return NULL;
}

static void need_path(char *buf, size_t n)
{
    if (!word(buf, n))
        die("unexpected end of input", NULL);
    if (strcmp(buf, "-") == 0)
        buf[0] = '\0';
}

int main(void)
{
    char cmd[64], path[512];
    int i;
    while (word(cmd, sizeof cmd)) {
        if (strcmp(cmd, "tensor") == 0) {
            long mode = need_long(), ndim = need_long(), numel = 1, k;
            nn_tensor t;
            float *v;
            memset(&t, 0, sizeof t);
            if (ndim < 0 || ndim > NN_MAX_DIM)
                die("bad ndim", NULL);
            t.ndim = (int)ndim;
            for (k = 0; k < ndim; k++) {
                t.shape[k] = need_long();
                numel *= (long)t.shape[k];
            }
            t.numel = numel;
            v = (float *)malloc((size_t)(numel > 0 ? numel : 1) * sizeof(float));
            if (v == NULL)
                die("out of memory", NULL);
            for (k = 0; k < numel; k++)
                v[k] = need_float();
            t.data = v;
            show(&t, mode);
            free(v);
        } else if (strcmp(cmd, "itensor") == 0) {
            long bits = need_long(), mode = need_long(), ndim = need_long(), numel = 1, k;
            nn_tensor t;
            int64_t *v;
            memset(&t, 0, sizeof t);
            if ((bits != 64 && bits != 32) || ndim < 0 || ndim > NN_MAX_DIM)
                die("bad itensor header", NULL);
            t.dtype = bits == 64 ? NN_I64 : NN_I32;
            t.ndim = (int)ndim;
            for (k = 0; k < ndim; k++) {
                t.shape[k] = need_long();
                numel *= (long)t.shape[k];
            }
            t.numel = numel;
            v = (int64_t *)malloc((size_t)(numel > 0 ? numel : 1) * sizeof(int64_t));
            if (v == NULL)
                die("out of memory", NULL);
            for (k = 0; k < numel; k++) {
                long long x = need_ll();
                if (bits == 64) {
                    v[k] = (int64_t)x;
                } else {
                    int32_t x32 = (int32_t)x;
                    memcpy((char *)v + 4 * k, &x32, 4);
                }
            }
            t.data = (float *)(void *)v;
            show(&t, mode);
            free(v);
        } else if (strcmp(cmd, "load") == 0) {
            fx_model *fx = need_fixture();
            int i;
            int64_t k;
            for (i = 0; i < fx->model.info->ntensors; i++) {
                nn_tensor *t = &fx->model.tensors[i];
                for (k = 0; k < t->numel; k++) {
                    if (t->dtype == NN_I64) {
                        uint64_t w = need_hex(16);
                        memcpy((char *)t->data + 8 * k, &w, 8);
                    } else if (t->dtype == NN_I32) {
                        uint32_t w = (uint32_t)need_hex(8);
                        memcpy((char *)t->data + 4 * k, &w, 4);
                    } else {
                        t->data[k] = need_float();
                    }
                }
            }
            continue;                       /* no output, no separator */
        } else if (strcmp(cmd, "model") == 0) {
            nn_print_model(stdout, &need_fixture()->model);
        } else if (strcmp(cmd, "module") == 0) {
            fx_model *fx = need_fixture();
            const nn_module *mod;
            need_path(path, sizeof path);
            mod = nn_module_find(&fx->model, path);
            if (mod == NULL)
                die("no such module", path);
            nn_print_module(stdout, mod);
        } else if (strcmp(cmd, "state") == 0) {
            nn_print_state_dict(stdout, &need_fixture()->model);
        } else if (strcmp(cmd, "mstate") == 0 || strcmp(cmd, "shapes") == 0) {
            fx_model *fx = need_fixture();
            const nn_module *mod;
            need_path(path, sizeof path);
            mod = nn_module_find(&fx->model, path);
            if (mod == NULL)
                die("no such module", path);
            if (cmd[0] == 'm')
                nn_print_module_state_dict(stdout, &fx->model, mod);
            else
                nn_print_named_shapes(stdout, &fx->model, mod);
        } else if (strcmp(cmd, "param") == 0 || strcmp(cmd, "data") == 0) {
            fx_model *fx = need_fixture();
            nn_tensor *t;
            need_path(path, sizeof path);
            t = nn_find(&fx->model, path);
            if (t == NULL)
                die("no such tensor", path);
            if (cmd[0] == 'p')
                nn_print_param(stdout, t);
            else
                nn_print_tensor(stdout, t);
        } else {
            die("unknown command", cmd);
        }
        printf("@@\n");
    }
    for (i = 0; i < NFIX; i++)
        fx_free(fixtures[i]);
    return ferror(stdout) ? 1 : 0;
}
