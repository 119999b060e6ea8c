/* tests/mpi: one data-parallel run checked against one process (SPEC 1.9).
 * Built once per spec of this directory: -DNET=dmlp -DNET_H="dmlp.h"
 * -DCE=1 (cross_entropy: int32 labels) or -DCE=0 (mse).
 *
 *   mpirun -np W dist_check --n N --batch B --steps S --seed S --out DIR
 *
 * Every rank starts from its OWN initial parameters (P_init(seed + 1000 r)):
 * nn_dist_attach must replace them with rank 0's.  Each epoch e, rank r
 * takes the examples nn_dist_sampler_indices(seed, e, N, W, r) in batches
 * of B (the last one partial, as a DataLoader over a DistributedSampler),
 * writing them to DIR/idx.W.r (run_mpi.py checks them against torch's
 * DistributedSampler) and trains with P_train_step_n.  After every step:
 *   - the parameters are bit-identical on every rank (rank 0's broadcast
 *     and compared with memcmp);
 *   - rank 0 runs the same step on one more instance, not attached, with
 *     all W local batches as one batch of W·B rows (rank 0, then 1, ...):
 *     the average of the ranks' losses equals its loss to 1e-5
 *     (|a - b| <= 1e-5 max(1, |b|)), and at the end every parameter too;
 *   - a model with buffers (batch norm, whose batch statistics are local,
 *     so the one-process reference does not apply): the buffers after the
 *     step equal those of a step that starts from rank 0's buffers (an
 *     instance of each rank's, not attached, given the same parameters
 *     and rank 0's buffers of before the step, on the same batch).
 * Fault injection (the fault tests): NNGEN_TEST_FAULT_RANK=r,
 * NNGEN_TEST_FAULT_STEP=k, NNGEN_TEST_FAULT=kill|stop: rank r raises
 * SIGKILL or SIGSTOP on itself at the start of step k.
 * Mutations (the tests that show the checks can fail): --mutate nohooks
 * (detach the hooks after attach: every rank trains alone), --mutate
 * sampler (rank r takes rank (r+1) mod W's examples), --mutate nobuffers
 * (broadcast_buffers off: each rank keeps its own batch norm statistics).
 * NNGEN_TEST_PRINT_NETNS=1: each rank prints its network namespace (netns test).
 * --sampler: for each line "N W R SEED EPOCH" on stdin, one line of
 * nn_dist_sampler_indices (no MPI).
 * Exit: 0 every check held; 1 a check failed or a rank failed (the others
 * are aborted).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nngen/rt-mpi.h>

#include NET_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define F(x) CAT(NET, x)
#define TOL 1e-5

#if CE
typedef int32_t target_t;
#define TPER 1
#else
typedef float target_t;
#define TPER F(_OUT_SIZE)
#endif

static int rank, world;

/* the data set: N examples, deterministic */
static float uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1u << 24)) * 2.0f - 1.0f;
}

static void make_data(int64_t n, float *x, target_t *t)
{
    uint64_t s = 12345;
    int64_t i, k;
    for (i = 0; i < n * F(_IN_SIZE); i++)
        x[i] = uniform(&s);
    for (i = 0; i < n; i++)
        for (k = 0; k < TPER; k++) {
#if CE
            (void)k;
            t[i] = (int32_t)((uniform(&s) + 1.0f) * 0.5f * F(_OUT_SIZE) * 0.999f);
#else
            t[i * TPER + k] = uniform(&s);
#endif
        }
}

static void gather(const int64_t *idx, int64_t rows, const float *X, const target_t *T,
                   float *x, target_t *t)
{
    int64_t r;
    for (r = 0; r < rows; r++) {
        memcpy(x + r * F(_IN_SIZE), X + idx[r] * F(_IN_SIZE), sizeof *x * F(_IN_SIZE));
        memcpy(t + r * TPER, T + idx[r] * TPER, sizeof *t * TPER);
    }
}

static double rel(double a, double b)
{
    return fabs(a - b) / (fabs(b) > 1 ? fabs(b) : 1);
}

static size_t param_floats(nn_model *m)
{
    size_t i, n = 0;
    for (i = 0; i < nn_param_count(m); i++)
        n += (size_t)nn_param(m, i)->numel;
    return n;
}

static void pack_params(nn_model *m, float *out)
{
    size_t i;
    for (i = 0; i < nn_param_count(m); i++) {
        const nn_tensor *t = nn_param(m, i);
        memcpy(out, t->data, sizeof *out * (size_t)t->numel);
        out += t->numel;
    }
}

/* the buffers as bytes (an int64 num_batches_tracked is 8 a value):
   copied out into `bytes` (when not NULL), or with `into_model` from
   `bytes` into the model; returns the byte count */
static size_t copy_buffers(nn_model *m, unsigned char *bytes, int into_model)
{
    size_t i, n = 0;
    for (i = 0; i < nn_state_count(m); i++) {
        const nn_tensor *t = nn_state_tensor(m, i);
        size_t b = (size_t)t->numel * (t->dtype == NN_I64 ? 8 : 4);
        if (!t->is_buffer)
            continue;
        if (bytes && into_model)
            memcpy(t->data, bytes + n, b);
        else if (bytes)
            memcpy(bytes + n, t->data, b);
        n += b;
    }
    return n;
}

static int fail_count;
#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "dist_check: rank %d: ", rank);                                      \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fprintf(stderr, "\n");                                                               \
            fail_count++;                                                                        \
        }                                                                                        \
    } while (0)

/* --sampler: lines "N W R SEED EPOCH" on stdin, one line of indices out each */
static int sampler_mode(void)
{
    long long n, e, W, r;
    unsigned long long seed;
    while (scanf("%lld %lld %lld %llu %lld", &n, &W, &r, &seed, &e) == 5) {
        int64_t i, c, *out = malloc(sizeof *out * (size_t)(n > 0 ? n + 1 : 1));
        c = out ? nn_dist_sampler_indices(seed, e, n, (int)W, (int)r, out, NULL) : -1;
        if (c < 0) {
            fprintf(stderr, "dist_check: %s\n", out ? nn_error() : "out of memory");
            free(out);
            return 1;
        }
        for (i = 0; i < c; i++)
            printf(i ? " %lld" : "%lld", (long long)out[i]);
        printf("\n");
        free(out);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int64_t N = 37, steps = 20, B = 3, step = 0, epoch, i;
    uint64_t seed = 7;
    const char *out_dir = ".", *mutate = "";
    const char *fault = getenv("NNGEN_TEST_FAULT");
    int fault_rank = getenv("NNGEN_TEST_FAULT_RANK") ? atoi(getenv("NNGEN_TEST_FAULT_RANK")) : -1;
    long fault_step = getenv("NNGEN_TEST_FAULT_STEP") ? atol(getenv("NNGEN_TEST_FAULT_STEP")) : -1;
    int a, has_buffers, status = 0;
    F() *net, *ref = NULL, *shadow = NULL;
    nn_dist *d;
    float *X, *x, *pk, *pk0;
    target_t *T, *t;
    int64_t *idx, *all_idx, *perm;
    unsigned char *buf0, *buf1;
    size_t pf, bb;
    double max_loss = 0, max_param = 0;
    FILE *idx_f;
    char path[4096];

    if (argc == 2 && !strcmp(argv[1], "--sampler"))
        return sampler_mode();
    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--n"))
            N = atoll(argv[a + 1]);
        else if (!strcmp(argv[a], "--batch"))
            B = atoll(argv[a + 1]);
        else if (!strcmp(argv[a], "--steps"))
            steps = atoll(argv[a + 1]);
        else if (!strcmp(argv[a], "--seed"))
            seed = strtoull(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--out"))
            out_dir = argv[a + 1];
        else if (!strcmp(argv[a], "--mutate"))
            mutate = argv[a + 1];
        else {
            fprintf(stderr, "dist_check: unknown option %s\n", argv[a]);
            return 2;
        }
    }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (B * world > F(_BATCH) || B < 1) {
        if (rank == 0)
            fprintf(stderr, "dist_check: W·B = %lld rows do not fit the spec's batch %d\n",
                    (long long)(B * world), F(_BATCH));
        return nn_dist_exit(NULL, 2);
    }
    if (getenv("NNGEN_TEST_PRINT_NETNS")) {
        char ns[256];
        ssize_t len = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
        ns[len > 0 ? len : 0] = 0;
        printf("dist_check: rank %d network namespace %s\n", rank, ns);
        fflush(stdout);
    }
    net = F(_create)();
    F(_init)(net, seed + 1000u * (uint64_t)rank);
    {
        nn_dist_options o;
        nn_dist_default_options(&o);
        o.broadcast_buffers = strcmp(mutate, "nobuffers") != 0;
        d = nn_dist_attach(F(_model)(net), MPI_COMM_WORLD, &o);
    }
    if (d == NULL) {
        fprintf(stderr, "dist_check: rank %d: %s\n", rank, nn_error());
        return nn_dist_exit(NULL, 1);
    }
    if (!strcmp(mutate, "nohooks"))
        F(_model)(net)->hooks = NULL;

    X = malloc(sizeof *X * (size_t)(N * F(_IN_SIZE)));
    T = malloc(sizeof *T * (size_t)(N * TPER));
    x = malloc(sizeof *x * (size_t)F(_BATCH) * F(_IN_SIZE));
    t = malloc(sizeof *t * (size_t)F(_BATCH) * TPER);
    idx = malloc(sizeof *idx * (size_t)N);
    all_idx = malloc(sizeof *all_idx * (size_t)N * (size_t)world);
    perm = malloc(sizeof *perm * (size_t)N);
    pf = param_floats(F(_model)(net));
    pk = malloc(sizeof *pk * (pf + 1));
    pk0 = malloc(sizeof *pk0 * (pf + 1));
    bb = copy_buffers(F(_model)(net), NULL, 0);
    has_buffers = bb > 0;
    buf0 = malloc(bb + 1);
    buf1 = malloc(bb + 1);
    make_data(N, X, T);

    /* attach gave every rank rank 0's initial parameters */
    pack_params(F(_model)(net), pk);
    memcpy(pk0, pk, sizeof *pk * pf);
    MPI_Bcast(pk0, (int)pf, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(pk, pk0, sizeof *pk * pf) == 0,
          "after nn_dist_attach the parameters are not rank 0's");
    if (rank == 0 && !has_buffers) {
        ref = F(_create)();
        F(_init)(ref, seed);
        pack_params(F(_model)(ref), pk0);
        CHECK(memcmp(pk, pk0, sizeof *pk * pf) == 0, "rank 0's parameters changed in attach");
    }
    if (has_buffers) {
        shadow = F(_create)();
        F(_init)(shadow, seed);
    }

    snprintf(path, sizeof path, "%s/idx.%d.%d", out_dir, world, rank);
    idx_f = fopen(path, "w");
    if (idx_f == NULL) {
        fprintf(stderr, "dist_check: cannot write %s\n", path);
        return nn_dist_exit(d, 1);
    }
    for (epoch = 0; step < steps; epoch++) {
        int64_t count = nn_dist_sampler_indices(seed, epoch, N, world,
                                                !strcmp(mutate, "sampler") ? (rank + 1) % world
                                                                           : rank,
                                                idx, perm);
        int64_t start;
        int q;
        fprintf(idx_f, "%lld", (long long)epoch);
        for (i = 0; i < count; i++)
            fprintf(idx_f, " %lld", (long long)idx[i]);
        fprintf(idx_f, "\n");
        if (ref)
            for (q = 0; q < world; q++)
                nn_dist_sampler_indices(seed, epoch, N, world, q, all_idx + q * count, perm);
        for (start = 0; start < count && step < steps; start += B, step++) {
            int rows = (int)(count - start < B ? count - start : B);
            float loss;
            double avg;
            if (fault && rank == fault_rank && step == fault_step) {
                fprintf(stderr, "dist_check: rank %d: raising SIG%s on itself at step %lld\n",
                        rank, !strcmp(fault, "stop") ? "STOP" : "KILL", (long long)step);
                fflush(stderr);
                raise(!strcmp(fault, "stop") ? SIGSTOP : SIGKILL);
            }
            gather(idx + start, rows, X, T, x, t);
            if (shadow) {
                /* the same parameters, and rank 0's buffers of before the step */
                copy_buffers(F(_model)(net), buf0, 0);
                MPI_Bcast(buf0, (int)bb, MPI_BYTE, 0, MPI_COMM_WORLD);
                memcpy(F(_model)(shadow)->data, F(_model)(net)->data,
                       sizeof(float) * F(_model)(net)->info->data_floats);
                copy_buffers(F(_model)(shadow), buf0, 1);
                (void)F(_train_step_n)(shadow, rows, x, t);
            }
            loss = F(_train_step_n)(net, rows, x, t);
            if (isnan(loss) && nn_dist_failed(d)) {
                fprintf(stderr, "dist_check: rank %d: %s\n", rank, nn_error());
                fclose(idx_f);
                return nn_dist_exit(d, 1);
            }
            CHECK(!isnan(loss), "step %lld: the train step failed: %s", (long long)step,
                  nn_error());
            avg = loss;
            MPI_Allreduce(MPI_IN_PLACE, &avg, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            avg /= world;
            /* bit-identical parameters everywhere */
            pack_params(F(_model)(net), pk);
            memcpy(pk0, pk, sizeof *pk * pf);
            MPI_Bcast(pk0, (int)pf, MPI_FLOAT, 0, MPI_COMM_WORLD);
            CHECK(memcmp(pk, pk0, sizeof *pk * pf) == 0,
                  "step %lld: the parameters differ from rank 0's", (long long)step);
            if (shadow) {
                copy_buffers(F(_model)(net), buf0, 0);
                copy_buffers(F(_model)(shadow), buf1, 0);
                CHECK(memcmp(buf0, buf1, bb) == 0,
                      "step %lld: the buffers are not rank 0's of before the step updated "
                      "with this rank's batch", (long long)step);
            }
            if (ref) {
                float rl;
                int q2;
                for (q2 = 0; q2 < world; q2++)
                    gather(all_idx + q2 * count + start, rows, X, T, x + q2 * rows * F(_IN_SIZE),
                           t + q2 * rows * TPER);
                rl = F(_train_step_n)(ref, rows * world, x, t);
                if (rel(avg, rl) > max_loss)
                    max_loss = rel(avg, rl);
                CHECK(rel(avg, rl) <= TOL,
                      "step %lld: the ranks' mean loss %.9g, one process of %d rows %.9g",
                      (long long)step, avg, rows * world, (double)rl);
            }
        }
    }
    fclose(idx_f);
    if (ref) {
        pack_params(F(_model)(ref), pk0);
        for (i = 0; i < (int64_t)pf; i++) {
            if (rel(pk[i], pk0[i]) > max_param)
                max_param = rel(pk[i], pk0[i]);
        }
        CHECK(max_param <= TOL, "after %lld steps a parameter differs from one process's by "
                                "%.3g (relative)", (long long)steps, max_param);
    }
    {
        int fails = fail_count;
        MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        status = fails ? 1 : 0;
        if (rank == 0) {
            nn_dist_stats st;
            nn_dist_get_stats(d, &st);
            uint64_t h = 14695981039346656037ull;
            const unsigned char *c = (const unsigned char *)pk;
            size_t j;
            for (j = 0; j < sizeof *pk * pf; j++)
                h = (h ^ c[j]) * 1099511628211ull;
            printf("dist_check %s: W=%d B=%lld N=%lld steps=%lld (%ld averaged, %d buckets, "
                   "%zu bytes a step): %s; max relative difference from one process of W·B "
                   "rows: loss %.3g, parameters %.3g%s; final parameters' hash %016llx\n",
                   F(_model)(net)->info->name, world, (long long)B, (long long)N,
                   (long long)steps, st.steps, st.buckets, st.bytes_per_step,
                   fails ? "FAILED" : "ok", max_loss, max_param,
                   has_buffers ? " (batch norm: checked against rank 0's buffers instead)" : "",
                   (unsigned long long)h);
        }
    }
    if (ref)
        F(_destroy)(ref);
    if (shadow)
        F(_destroy)(shadow);
    nn_dist_detach(d); /* before the instance it hooks goes */
    d = NULL;
    F(_destroy)(net);
    free(X), free(T), free(x), free(t), free(idx), free(all_idx), free(perm), free(pk),
        free(pk0), free(buf0), free(buf1);
    if (status) {
        /* a failed check is not a failed run: finish MPI normally */
        MPI_Finalize();
        return status;
    }
    return nn_dist_exit(NULL, 0);
}
