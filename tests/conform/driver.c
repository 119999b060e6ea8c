/* Conformance driver: compiled once per spec together with nngen's output.
 *
 *   cc -std=c99 -DNET_H='"net.h"' -DNET=mlp [-DNET_HAS_TRAIN [-DNET_TARGET_INT]]
 *      [-DNET_FORWARD_ONLY: code from nngen --inference; run and modes print
 *      the forward's outputs (and buffers) only, no dx and no gradients]
 *      driver.c net.c -lnngen-rt -lopenblas -lm
 *
 * Modes (all output on stdout; errors on stderr with exit status 1, usage 2):
 *   driver info                    batch N / in N / out N / param NAME NUMEL ...
 *   driver init SEED               P_init(SEED), every parameter in dump format
 *   driver run PARAMS X DY         load params, forward -> "y", backward(dy) ->
 *                                  "dx", then "grad.NAME" for every parameter
 *                                  ("grad.NAME none" when its grad is NULL)
 *   driver train PARAMS X TARGET STEPS   (only with NET_HAS_TRAIN)
 *                                  "loss K VALUE" for K = 0..STEPS-1 (VALUE in
 *                                  %a), then every parameter in dump format
 *   driver modes MODE SEED CALLS PARAMS X DY   (only with -DNET_HAS_MODES: code
 *                                  with P_set_training and P_init's generator)
 *                                  P_init(SEED) unless SEED is "-", load PARAMS
 *                                  (buffers may be given), P_set_training(MODE:
 *                                  train 1, eval 0), then CALLS times forward ->
 *                                  "y.K", backward(dy) -> "dx.K"; then
 *                                  "grad.NAME" (accumulated over the calls, as
 *                                  torch) and "buf.NAME" for every buffer
 *                                  (int64 ones printed as integers)
 *   driver trainm SEED PARAMS X TARGET STEPS   (NET_HAS_MODES and NET_HAS_TRAIN)
 *                                  P_init(SEED) unless "-", load PARAMS, then as
 *                                  train, followed by every buffer "buf.NAME"
 *   run ... rows=R, train ... rows=R   (with -DNET_HAS_ROWS: code from nngen
 *                                  after the op registry) the same through P_forward_n,
 *                                  P_backward_n, P_train_step_n on the first R
 *                                  rows of X, DY, TARGET (y and dx have R rows)
 *
 * Dump format: per tensor a line "NAME NUMEL" then NUMEL lines with one float
 * each, printed with "%a" (C99 hex float); a tensor without a value is the
 * single line "NAME none".  PARAMS holds parameter values by state_dict key
 * (every parameter must be given exactly once; buffers may be given); X holds
 * one tensor "x" of NET_BATCH*NET_IN_SIZE floats, DY one tensor "dy" of
 * NET_BATCH*NET_OUT_SIZE, TARGET one tensor "target" of NET_BATCH*NET_OUT_SIZE
 * floats (mse) or NET_BATCH integral class labels (cross_entropy).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NET_H
#error "compile with -DNET_H='\"net.h\"' -DNET=name"
#endif
#include NET_H

#define CF_CAT_(a, b) a##b
#define CF_CAT(a, b) CF_CAT_(a, b)
#define NETF(x) CF_CAT(NET, x)

#define NET_T NET
#define N_BATCH NETF(_BATCH)
#define N_IN NETF(_IN_SIZE)
#define N_OUT NETF(_OUT_SIZE)

#include "dump.h"

static void cf_load_params(nn_model *m, const char *path)
{
    cf_dump d;
    size_t i, j, np = nn_param_count(m), ns = nn_state_count(m);
    nn_tensor **set = cf_xmalloc((ns + 1) * sizeof *set);
    size_t nset = 0;
    char msg[512];
    cf_dump_load(&d, path);
    for (i = 0; i < d.n; i++) {
        cf_dump_entry *e = &d.e[i];
        nn_tensor *t = nn_find(m, e->name);
        if (!t) {
            snprintf(msg, sizeof msg, "%s is not a state_dict key of the model", e->name);
            cf_bad_dump(path, e->line, msg);
        }
        if (e->none) {
            snprintf(msg, sizeof msg, "%s has no values", e->name);
            cf_bad_dump(path, e->line, msg);
        }
        if ((int64_t)e->numel != t->numel) {
            snprintf(msg, sizeof msg, "%s has %lu values, the model's tensor %lld", e->name,
                     (unsigned long)e->numel, (long long)t->numel);
            cf_bad_dump(path, e->line, msg);
        }
        for (j = 0; j < nset; j++)
            if (set[j] == t) {
                snprintf(msg, sizeof msg, "%s is the tensor %s given before (tied)", e->name,
                         t->name);
                cf_bad_dump(path, e->line, msg);
            }
        if (nset < ns)
            set[nset++] = t;
        if (e->numel)
            memcpy(t->data, e->vals, e->numel * sizeof(float));
    }
    for (i = 0; i < np; i++) {
        nn_tensor *t = nn_param(m, i);
        for (j = 0; j < nset; j++)
            if (set[j] == t)
                break;
        if (j == nset) {
            snprintf(msg, sizeof msg, "parameter %s is not given", t->name);
            cf_bad_dump(path, 0, msg);
        }
    }
    free(set);
    cf_dump_free(&d);
}

/* ------------------------------------------------------------------ */
/* Output                                                               */

static void cf_put_tensor(const char *prefix, const char *name, const float *v, size_t n)
{
    size_t i;
    printf("%s%s %lu\n", prefix, name, (unsigned long)n);
    for (i = 0; i < n; i++)
        printf("%a\n", (double)v[i]);
}

static void cf_put_params(nn_model *m)
{
    size_t i, np = nn_param_count(m);
    for (i = 0; i < np; i++) {
        nn_tensor *t = nn_param(m, i);
        cf_put_tensor("", t->name, t->data, (size_t)t->numel);
    }
}

#ifdef NET_HAS_MODES
/* Every buffer of the state dict once, in its order: "buf.NAME". */
static void cf_put_buffers(nn_model *m)
{
    size_t i, j, k, ns = nn_state_count(m), np = nn_param_count(m);
    for (i = 0; i < ns; i++) {
        nn_tensor *t = nn_find(m, nn_state_key(m, i));
        int dup = 0;
        for (j = 0; j < np && !dup; j++)
            dup = nn_param(m, j) == t;
        for (j = 0; j < i && !dup; j++)
            dup = nn_find(m, nn_state_key(m, j)) == t;
        if (dup)
            continue;
        if (t->dtype == NN_I64) {
            const int64_t *v = (const int64_t *)(void *)t->data;
            printf("buf.%s %lld\n", t->name, (long long)t->numel);
            for (k = 0; k < (size_t)t->numel; k++)
                printf("%lld\n", (long long)v[k]);
        } else {
            cf_put_tensor("buf.", t->name, t->data, (size_t)t->numel);
        }
    }
}
#endif

static int cf_finish(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: error writing output\n", cf_prog);
        return 1;
    }
    return 0;
}

static NET_T *cf_create(void)
{
    NET_T *net = NETF(_create)();
    if (!net) {
        fprintf(stderr, "%s: create failed (out of memory)\n", cf_prog);
        exit(1);
    }
    return net;
}

static unsigned long long cf_parse_ull(const char *s, const char *what)
{
    char *ep;
    unsigned long long v;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        cf_die("bad %s: %s", what, s);
    errno = 0;
    v = strtoull(s, &ep, 10);
    if (*ep || errno)
        cf_die("bad %s: %s", what, s);
    return v;
}

static int cf_usage(void)
{
    fprintf(stderr,
            "usage: %s info\n"
            "       %s init SEED\n"
            "       %s run PARAMS X DY [rows=R]\n"
#ifdef NET_HAS_TRAIN
            "       %s train PARAMS X TARGET STEPS [rows=R]\n"
#endif
#ifdef NET_HAS_MODES
            "       %s modes train|eval SEED|- CALLS PARAMS X DY [rows=R]\n"
#ifdef NET_HAS_TRAIN
            "       %s trainm SEED|- PARAMS X TARGET STEPS [rows=R]\n"
#endif
#endif
            , cf_prog, cf_prog, cf_prog
#ifdef NET_HAS_TRAIN
            , cf_prog
#endif
#ifdef NET_HAS_MODES
            , cf_prog
#ifdef NET_HAS_TRAIN
            , cf_prog
#endif
#endif
            );
    return 2;
}

/* A trailing "rows=R" (1 <= R <= BATCH) selects the _n entry points. */
static size_t cf_rows(int *argc, char **argv)
{
    if (*argc > 2 && strncmp(argv[*argc - 1], "rows=", 5) == 0) {
        unsigned long long r = cf_parse_ull(argv[*argc - 1] + 5, "row count");
        if (r < 1 || r > (unsigned long long)N_BATCH) {
            fprintf(stderr, "%s: rows=%llu is out of range [1, %lu]\n", cf_prog, r,
                    (unsigned long)N_BATCH);
            exit(2);
        }
        (*argc)--;
        return (size_t)r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char obuf[1 << 16];
    NET_T *net;
    nn_model *m;
    size_t i, rows, R;

    if (argc > 0 && argv[0][0])
        cf_prog = argv[0];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    if (argc < 2)
        return cf_usage();
    rows = cf_rows(&argc, argv);
#ifndef NET_HAS_ROWS
    if (rows) {
        fprintf(stderr, "%s: rows= needs a build with -DNET_HAS_ROWS\n", cf_prog);
        return 2;
    }
#endif
    R = rows ? rows : (size_t)N_BATCH;

    if (strcmp(argv[1], "info") == 0 && argc == 2) {
        net = cf_create();
        m = NETF(_model)(net);
        printf("batch %lu\nin %lu\nout %lu\n", (unsigned long)N_BATCH, (unsigned long)N_IN,
               (unsigned long)N_OUT);
        for (i = 0; i < nn_param_count(m); i++) {
            nn_tensor *t = nn_param(m, i);
            printf("param %s %lld\n", t->name, (long long)t->numel);
        }
        NETF(_destroy)(net);
        return cf_finish();
    }

    if (strcmp(argv[1], "init") == 0 && argc == 3) {
        unsigned long long seed = cf_parse_ull(argv[2], "seed");
        net = cf_create();
        m = NETF(_model)(net);
        NETF(_init)(net, (uint64_t)seed);
        cf_put_params(m);
        NETF(_destroy)(net);
        return cf_finish();
    }

    if (strcmp(argv[1], "run") == 0 && argc == 5) {
        float *x, *dy, *y, *dx;
        net = cf_create();
        m = NETF(_model)(net);
        cf_load_params(m, argv[2]);
        x = cf_load_single(argv[3], "x", (size_t)N_BATCH * N_IN);
        dy = cf_load_single(argv[4], "dy", (size_t)N_BATCH * N_OUT);
        y = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
        dx = cf_xmalloc((size_t)N_BATCH * N_IN * sizeof(float));
        for (i = 0; i < (size_t)N_BATCH * N_OUT; i++)
            y[i] = NAN;
        for (i = 0; i < (size_t)N_BATCH * N_IN; i++)
            dx[i] = NAN;
#ifdef NET_HAS_ROWS
        if (rows)
            NETF(_forward_n)(net, (int)rows, x, y);
        else
#endif
            NETF(_forward)(net, x, y);
        cf_put_tensor("", "y", y, R * N_OUT);
#ifndef NET_FORWARD_ONLY
#ifdef NET_HAS_ROWS
        if (rows)
            NETF(_backward_n)(net, (int)rows, dy, dx);
        else
#endif
            NETF(_backward)(net, dy, dx);
        cf_put_tensor("", "dx", dx, R * N_IN);
#endif
        /* the _n forms write nothing past their rows */
        for (i = R * N_OUT; i < (size_t)N_BATCH * N_OUT; i++)
            if (!isnan(y[i])) {
                fprintf(stderr, "%s: forward_n wrote y[%lu] beyond its %lu rows\n", cf_prog,
                        (unsigned long)i, (unsigned long)R);
                return 1;
            }
        for (i = R * N_IN; i < (size_t)N_BATCH * N_IN; i++)
            if (!isnan(dx[i])) {
                fprintf(stderr, "%s: backward_n wrote dx[%lu] beyond its %lu rows\n", cf_prog,
                        (unsigned long)i, (unsigned long)R);
                return 1;
            }
#ifndef NET_FORWARD_ONLY
        for (i = 0; i < nn_param_count(m); i++) {
            nn_tensor *t = nn_param(m, i);
            if (t->grad)
                cf_put_tensor("grad.", t->name, t->grad, (size_t)t->numel);
            else
                printf("grad.%s none\n", t->name);
        }
#endif
        free(x);
        free(dy);
        free(y);
        free(dx);
        NETF(_destroy)(net);
        return cf_finish();
    }

#ifdef NET_HAS_MODES
    if (strcmp(argv[1], "modes") == 0 && argc == 8) {
        float *x, *dy, *y, *dx;
        unsigned long long calls = cf_parse_ull(argv[4], "call count"), k;
        int train = strcmp(argv[2], "train") == 0;
        char nm[32];
        if (!train && strcmp(argv[2], "eval") != 0)
            return cf_usage();
        net = cf_create();
        m = NETF(_model)(net);
        if (strcmp(argv[3], "-") != 0)
            NETF(_init)(net, (uint64_t)cf_parse_ull(argv[3], "seed"));
        cf_load_params(m, argv[5]);
        NETF(_set_training)(net, train);
        x = cf_load_single(argv[6], "x", (size_t)N_BATCH * N_IN);
        dy = cf_load_single(argv[7], "dy", (size_t)N_BATCH * N_OUT);
        y = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
        dx = cf_xmalloc((size_t)N_BATCH * N_IN * sizeof(float));
        for (k = 0; k < calls; k++) {
#ifdef NET_HAS_ROWS
            if (rows)
                NETF(_forward_n)(net, (int)rows, x, y);
            else
#endif
                NETF(_forward)(net, x, y);
            snprintf(nm, sizeof nm, "y.%llu", k);
            cf_put_tensor("", nm, y, R * N_OUT);
#ifndef NET_FORWARD_ONLY
#ifdef NET_HAS_ROWS
            if (rows)
                NETF(_backward_n)(net, (int)rows, dy, dx);
            else
#endif
                NETF(_backward)(net, dy, dx);
            snprintf(nm, sizeof nm, "dx.%llu", k);
            cf_put_tensor("", nm, dx, R * N_IN);
#endif
        }
#ifndef NET_FORWARD_ONLY
        for (i = 0; i < nn_param_count(m); i++) {
            nn_tensor *t = nn_param(m, i);
            if (t->grad)
                cf_put_tensor("grad.", t->name, t->grad, (size_t)t->numel);
            else
                printf("grad.%s none\n", t->name);
        }
#endif
        cf_put_buffers(m);
        free(x);
        free(dy);
        free(y);
        free(dx);
        NETF(_destroy)(net);
        return cf_finish();
    }
#endif

#ifdef NET_HAS_TRAIN
    if ((strcmp(argv[1], "train") == 0 && argc == 6)
#ifdef NET_HAS_MODES
        || (strcmp(argv[1], "trainm") == 0 && argc == 7)
#endif
        ) {
        float *x;
        unsigned long long steps, k;
        int modal = strcmp(argv[1], "trainm") == 0;
        const char *seed = modal ? argv[2] : "-";
#ifdef NET_TARGET_INT
        int32_t *target = cf_xmalloc((size_t)N_BATCH * sizeof(int32_t));
        float *tf;
#else
        float *target;
#endif
        argv += modal;
        steps = cf_parse_ull(argv[5], "step count");
        net = cf_create();
        m = NETF(_model)(net);
        if (strcmp(seed, "-") != 0)
            NETF(_init)(net, (uint64_t)cf_parse_ull(seed, "seed"));
        cf_load_params(m, argv[2]);
        x = cf_load_single(argv[3], "x", (size_t)N_BATCH * N_IN);
#ifdef NET_TARGET_INT
        tf = cf_load_single(argv[4], "target", (size_t)N_BATCH);
        for (i = 0; i < (size_t)N_BATCH; i++) {
            if (!(tf[i] >= 0 && tf[i] < (float)N_OUT) || tf[i] != floorf(tf[i]))
                cf_bad_dump(argv[4], 2 + i, "class label must be an integer in [0, OUT_SIZE)");
            target[i] = (int32_t)tf[i];
        }
        free(tf);
#else
        target = cf_load_single(argv[4], "target", (size_t)N_BATCH * N_OUT);
#endif
        for (k = 0; k < steps; k++) {
#ifdef NET_HAS_ROWS
            float loss = rows ? NETF(_train_step_n)(net, (int)rows, x, target)
                              : NETF(_train_step)(net, x, target);
#else
            float loss = NETF(_train_step)(net, x, target);
#endif
            printf("loss %llu %a\n", k, (double)loss);
        }
        cf_put_params(m);
#ifdef NET_HAS_MODES
        if (modal)
            cf_put_buffers(m);
#endif
        free(x);
        free(target);
        NETF(_destroy)(net);
        return cf_finish();
    }
#endif

    return cf_usage();
}
