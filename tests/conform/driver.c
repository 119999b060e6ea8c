/* Conformance driver: compiled once per spec together with nngen's output.
 *
 *   cc -std=c99 -DNET_H='"net.h"' -DNET=mlp [-DNET_HAS_TRAIN [-DNET_TARGET_INT]]
 *      [-DNET_FORWARD_ONLY: code from nngen --inference; run and modes print
 *      the forward's outputs (and buffers) only, no dx and no gradients]
 *      [-DNET_INPUT_INT32: a spec with input_dtype: int32 (an embedding
 *      first): x is const int32_t * (X still holds floats, each an integer),
 *      P_backward gets dx == NULL, run and modes print no dx]
 *      [-DNET_TARGETS=T: with NET_TARGET_INT, T class labels per example
 *      (cross_entropy over an [N, T, V] output: TARGET holds N*T labels in
 *      [0, V), V = OUT_SIZE / T); default 1]
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
 *   driver badidx PARAMS X XBAD [TARGET]   (only with -DNET_INPUT_INT32; TARGET
 *                                  with NET_HAS_TRAIN) bad indices at run time
 *                                  (SPEC 1.2.4): P_init(0), load PARAMS; in
 *                                  eval mode (with NET_HAS_MODES) P_forward(XBAD)
 *                                  -> "forward_error E" (E 1 when nn_error()
 *                                  is set afterwards, 0 when not), and y as a
 *                                  tensor at the very end; back in training
 *                                  mode, with NET_HAS_TRAIN:
 *                                    loss0 V        P_train_step(X)
 *                                    loss_bad V     P_loss(XBAD)
 *                                    loss_error E
 *                                    loss_changed W (what that call changed:
 *                                                   "-" for nothing, else a
 *                                                   comma list of NAME,
 *                                                   grad.NAME and "rng")
 *                                    step_bad V     P_train_step(XBAD)
 *                                    step_error E
 *                                    step_changed W
 *                                    loss1 V        P_train_step(X)
 *                                  then y, every parameter and (NET_HAS_MODES)
 *                                  every buffer "buf.NAME" in dump format.
 *                                  With NET_HAS_MODES, first of all, on a
 *                                  second instance (P_init(0), PARAMS) in
 *                                  training mode: P_forward(XBAD) ->
 *                                  "forward_train_error E", its output as the
 *                                  tensor "y.train" after y.
 *                                  nn_error() is cleared before each bad call.
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

#ifndef NET_TARGETS
#define NET_TARGETS 1   /* class labels per example: T of an [N, T, V] output */
#endif

#ifdef NET_INPUT_INT32
typedef int32_t cf_x;   /* P_forward(P *, const int32_t *x, float *y) */
#else
typedef float cf_x;
#endif

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

/* X: NUMEL floats; with NET_INPUT_INT32 each must be an integer in
   int32's range (out-of-range indices are allowed: badidx) */
static cf_x *cf_load_x(const char *path, size_t numel)
{
    float *v = cf_load_single(path, "x", numel);
#ifdef NET_INPUT_INT32
    size_t i;
    int32_t *x = cf_xmalloc(numel * sizeof *x);
    for (i = 0; i < numel; i++) {
        if (!(v[i] >= -2147483648.0f && v[i] < 2147483648.0f) || v[i] != floorf(v[i]))
            cf_bad_dump(path, 2 + i, "an index must be an integer in int32's range");
        x[i] = (int32_t)v[i];
    }
    free(v);
    return x;
#else
    return v;
#endif
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

#ifdef NET_HAS_TRAIN
#ifdef NET_TARGET_INT
typedef int32_t cf_target;
#else
typedef float cf_target;
#endif

/* TARGET: NET_BATCH*NET_TARGETS class labels in [0, OUT_SIZE / NET_TARGETS)
   (cross_entropy), or NET_BATCH*NET_OUT_SIZE floats (mse) */
static cf_target *cf_load_target(const char *path)
{
#ifdef NET_TARGET_INT
    size_t i, n = (size_t)N_BATCH * NET_TARGETS;
    int32_t *target = cf_xmalloc(n * sizeof(int32_t));
    float *tf = cf_load_single(path, "target", n);
    for (i = 0; i < n; i++) {
        if (!(tf[i] >= 0 && tf[i] < (float)(N_OUT / NET_TARGETS)) || tf[i] != floorf(tf[i]))
            cf_bad_dump(path, 2 + i, "class label must be an integer in [0, OUT_SIZE / TARGETS)");
        target[i] = (int32_t)tf[i];
    }
    free(tf);
    return target;
#else
    return cf_load_single(path, "target", (size_t)N_BATCH * N_OUT);
#endif
}
#endif

#ifdef NET_INPUT_INT32
static int cf_error_set(void)
{
    const char *e = nn_error();
    return e != NULL && *e != '\0';
}

#ifdef NET_HAS_TRAIN
/* Everything a failing call must leave alone that the driver can see: every
   tensor of the state dict (data and grad, bit for bit) and the generator. */
typedef struct cf_snap_entry {
    nn_tensor *t;
    size_t bytes;
    unsigned char *data, *grad;   /* grad NULL when t->grad was NULL */
} cf_snap_entry;

typedef struct cf_snap {
    nn_rng *rng;
    nn_rng rng_copy;
    size_t n;
    cf_snap_entry *e;
} cf_snap;

static void cf_snap_take(cf_snap *s, nn_model *m, nn_rng *rng)
{
    size_t i, j, ns = nn_state_count(m);
    s->rng = rng;
    s->rng_copy = *rng;
    s->n = 0;
    s->e = cf_xmalloc((ns + 1) * sizeof *s->e);
    for (i = 0; i < ns; i++) {
        nn_tensor *t = nn_find(m, nn_state_key(m, i));
        cf_snap_entry *e;
        for (j = 0; j < s->n; j++)
            if (s->e[j].t == t)
                break;
        if (j < s->n)
            continue;
        e = &s->e[s->n++];
        e->t = t;
        e->bytes = (size_t)t->numel * (t->dtype == NN_I64 ? 8 : 4);
        e->data = cf_xmalloc(e->bytes);
        memcpy(e->data, t->data, e->bytes);
        e->grad = NULL;
        if (t->grad) {
            e->grad = cf_xmalloc((size_t)t->numel * sizeof(float));
            memcpy(e->grad, t->grad, (size_t)t->numel * sizeof(float));
        }
    }
}

static int cf_rng_same(const nn_rng *a, const nn_rng *b)
{
    return memcmp(a->state, b->state, sizeof a->state) == 0 && a->left == b->left
           && a->seed == b->seed && a->has_next_double_normal == b->has_next_double_normal
           && memcmp(&a->next_double_normal, &b->next_double_normal, sizeof(double)) == 0
           && a->has_next_float_normal == b->has_next_float_normal
           && memcmp(&a->next_float_normal, &b->next_float_normal, sizeof(float)) == 0;
}

/* Prints what differs from the snapshot ("-" for nothing) and a newline. */
static void cf_snap_diff(const cf_snap *s)
{
    size_t i;
    int any = 0;
    for (i = 0; i < s->n; i++) {
        const cf_snap_entry *e = &s->e[i];
        if (memcmp(e->data, e->t->data, e->bytes) != 0) {
            printf("%s%s", any++ ? "," : "", e->t->name);
        }
        if ((e->grad == NULL) != (e->t->grad == NULL)
            || (e->grad && memcmp(e->grad, e->t->grad, (size_t)e->t->numel * sizeof(float))))
            printf("%sgrad.%s", any++ ? "," : "", e->t->name);
    }
    if (!cf_rng_same(&s->rng_copy, s->rng))
        printf("%srng", any++ ? "," : "");
    printf("%s\n", any ? "" : "-");
}

static void cf_snap_free(cf_snap *s)
{
    size_t i;
    for (i = 0; i < s->n; i++) {
        free(s->e[i].data);
        free(s->e[i].grad);
    }
    free(s->e);
}
#endif
#endif

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
#ifdef NET_INPUT_INT32
#ifdef NET_HAS_TRAIN
            "       %s badidx PARAMS X XBAD TARGET\n"
#else
            "       %s badidx PARAMS X XBAD\n"
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
#ifdef NET_INPUT_INT32
            , cf_prog
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
        cf_x *x;
        float *dy, *y, *dx;
        net = cf_create();
        m = NETF(_model)(net);
        cf_load_params(m, argv[2]);
        x = cf_load_x(argv[3], (size_t)N_BATCH * N_IN);
        dy = cf_load_single(argv[4], "dy", (size_t)N_BATCH * N_OUT);
        y = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
#ifdef NET_INPUT_INT32
        dx = NULL;   /* no input gradient for indices: dx == NULL only */
#else
        dx = cf_xmalloc((size_t)N_BATCH * N_IN * sizeof(float));
        for (i = 0; i < (size_t)N_BATCH * N_IN; i++)
            dx[i] = NAN;
#endif
        for (i = 0; i < (size_t)N_BATCH * N_OUT; i++)
            y[i] = NAN;
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
        if (dx)
            cf_put_tensor("", "dx", dx, R * N_IN);
#endif
        /* the _n forms write nothing past their rows */
        for (i = R * N_OUT; i < (size_t)N_BATCH * N_OUT; i++)
            if (!isnan(y[i])) {
                fprintf(stderr, "%s: forward_n wrote y[%lu] beyond its %lu rows\n", cf_prog,
                        (unsigned long)i, (unsigned long)R);
                return 1;
            }
        for (i = R * N_IN; dx && i < (size_t)N_BATCH * N_IN; i++)
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
        cf_x *x;
        float *dy, *y, *dx;
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
        x = cf_load_x(argv[6], (size_t)N_BATCH * N_IN);
        dy = cf_load_single(argv[7], "dy", (size_t)N_BATCH * N_OUT);
        y = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
#ifdef NET_INPUT_INT32
        dx = NULL;
#else
        dx = cf_xmalloc((size_t)N_BATCH * N_IN * sizeof(float));
#endif
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
            if (dx)
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
        cf_x *x;
        unsigned long long steps, k;
        int modal = strcmp(argv[1], "trainm") == 0;
        const char *seed = modal ? argv[2] : "-";
        cf_target *target;
        argv += modal;
        steps = cf_parse_ull(argv[5], "step count");
        net = cf_create();
        m = NETF(_model)(net);
        if (strcmp(seed, "-") != 0)
            NETF(_init)(net, (uint64_t)cf_parse_ull(seed, "seed"));
        cf_load_params(m, argv[2]);
        x = cf_load_x(argv[3], (size_t)N_BATCH * N_IN);
        target = cf_load_target(argv[4]);
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

#ifdef NET_INPUT_INT32
#ifdef NET_HAS_TRAIN
    if (strcmp(argv[1], "badidx") == 0 && argc == 6 && !rows) {
#else
    if (strcmp(argv[1], "badidx") == 0 && argc == 5 && !rows) {
#endif
        cf_x *x, *xbad;
        float *y, *ytrain = NULL;
        net = cf_create();
        m = NETF(_model)(net);
        NETF(_init)(net, 0);
        cf_load_params(m, argv[2]);
        x = cf_load_x(argv[3], (size_t)N_BATCH * N_IN);
        xbad = cf_load_x(argv[4], (size_t)N_BATCH * N_IN);
        y = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
        for (i = 0; i < (size_t)N_BATCH * N_OUT; i++)
            y[i] = 0.0f;
#ifdef NET_HAS_MODES
        {
            /* training mode, on an instance of its own (its draws and buffer
               updates leave the other one as it is) */
            NET_T *net2 = cf_create();
            NETF(_init)(net2, 0);
            cf_load_params(NETF(_model)(net2), argv[2]);
            ytrain = cf_xmalloc((size_t)N_BATCH * N_OUT * sizeof(float));
            for (i = 0; i < (size_t)N_BATCH * N_OUT; i++)
                ytrain[i] = 0.0f;
            nn_set_error("%s", "");
            NETF(_forward)(net2, xbad, ytrain);
            printf("forward_train_error %d\n", cf_error_set());
            NETF(_destroy)(net2);
        }
        NETF(_set_training)(net, 0);
#endif
        nn_set_error("%s", "");
        NETF(_forward)(net, xbad, y);
        printf("forward_error %d\n", cf_error_set());
#ifdef NET_HAS_MODES
        NETF(_set_training)(net, 1);
#endif
#ifdef NET_HAS_TRAIN
        {
            cf_target *target = cf_load_target(argv[5]);
            cf_snap snap;
            float v;
            printf("loss0 %a\n", (double)NETF(_train_step)(net, x, target));
            cf_snap_take(&snap, m, NETF(_rng)(net));
            nn_set_error("%s", "");
            v = NETF(_loss)(net, xbad, target);
            printf("loss_bad %a\nloss_error %d\nloss_changed ", (double)v, cf_error_set());
            cf_snap_diff(&snap);
            nn_set_error("%s", "");
            v = NETF(_train_step)(net, xbad, target);
            printf("step_bad %a\nstep_error %d\nstep_changed ", (double)v, cf_error_set());
            cf_snap_diff(&snap);
            cf_snap_free(&snap);
            printf("loss1 %a\n", (double)NETF(_train_step)(net, x, target));
            free(target);
        }
#endif
        cf_put_tensor("", "y", y, (size_t)N_BATCH * N_OUT);
        if (ytrain)
            cf_put_tensor("", "y.train", ytrain, (size_t)N_BATCH * N_OUT);
#ifdef NET_HAS_TRAIN
        cf_put_params(m);
#ifdef NET_HAS_MODES
        cf_put_buffers(m);
#endif
#endif
        free(x);
        free(xbad);
        free(y);
        free(ytrain);
        NETF(_destroy)(net);
        return cf_finish();
    }
#endif

    return cf_usage();
}
