/* fashion: trains a network of specs/fashion/ on Fashion-MNIST, as Dive into
 * Deep Learning's train_ch6 / train_ch3 do in PyTorch, and evaluates it on
 * the test set after every epoch.  torch_fashion.py beside it is the same
 * run in PyTorch 1.13: same initial parameters, same batches, same dropout
 * masks (README.md).
 *
 * usage: fashion [--net NAME] [--epochs N] [--seed S] [--data DIR]
 *                [--limit N] [--csv FILE] [--steps-csv FILE] [--save FILE]
 *                [--save-init FILE] [--order-file FILE] [--quiet] [--dist]
 *
 *   mpirun -np W fashion --dist ...   (a runtime built with MPI: nngen-rt-mpi)
 *
 * --dist: data parallel over the MPI job's W ranks, as torch's
 * DistributedDataParallel with a DistributedSampler (SPEC 1.9,
 * README.md "Data parallel over MPI"): every rank starts from rank 0's
 * parameters (nn_dist_attach), takes its ceil(n / W) examples of the epoch
 * (nn_dist_sampler_indices, seed --seed, set_epoch(epoch - 1)) in local
 * batches of the spec's 256 (a global batch of W·256, the lr unchanged, as
 * DDP), and steps with the generated P_train_step_n, whose hooks average
 * the gradients over the ranks bucket by bucket while backward goes on.
 * The loss is the mean over all ranks' examples (duplicates of the
 * padding included, as DDP's loop sees them); the training accuracy is not
 * measured (P_train_step_n does not return its outputs; printed as "-");
 * the test set is split over the ranks, with rank 0's buffers
 * (nn_dist_sync_buffers, as DDP's forward would broadcast them).  Only rank
 * 0 prints and writes files.
 *
 * One epoch, as the book's loop and torch's DataLoader do it:
 *   - the example order: nn_epoch_order, drawing from the instance's
 *     generator exactly what iter(DataLoader(shuffle=True)) and its first
 *     batch draw from torch's global generator;
 *   - net.train(); for each batch of 256 (the last one partial, through
 *     the _n entry points): forward in training mode (dropout masks drawn,
 *     batch norm statistics updated), cross-entropy loss and its gradient,
 *     zero_grad, backward, the SGD step p -= lr * grad; the batch's mean
 *     loss and its correct predictions (argmax) are summed as the book's
 *     Accumulator does;
 *   - net.eval(); the test set in order, batches of 256 (iterating the
 *     book's unshuffled test DataLoader still draws its base seed: so does
 *     this, nn_loader_seed), accuracy of the argmax.
 *
 * Why not P_train_step_n: it returns the loss but not the outputs, and the
 * training accuracy the book prints is measured on the outputs of the
 * training step itself (a second forward would draw other dropout masks
 * and update the batch norm statistics twice).  So the step is written out
 * with P_forward_n / P_backward_n and the spec's SGD (plain SGD, lr from
 * the table below: tests/fashion checks it against the spec's through the
 * torch run, whose optimizer comes from the spec).
 *
 * Exit status: 0 done; 1 a failure (malformed data, out of memory, a file
 * not written); 2 usage; 3 the data set is not installed.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nngen/rt.h>

#if NNGEN_FASHION_MPI
#include <nngen/rt-mpi.h>
#endif

#include "fashion_lenet.h"
#include "fashion_lenet_bn.h"
#include "fashion_mlp.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define CLASSES 10

/* ---- the built-in networks ------------------------------------------- */

typedef struct net_def {
    const char *name;   /* --net */
    const char *spec;   /* where it comes from */
    const char *what;
    float lr;           /* the spec's sgd lr */
    int batch_norm;     /* has batch_norm1d: torch refuses a training batch of one row */
    int batch, in_size, out_size;
    size_t bytes;
    void *(*create)(void);
    void (*destroy)(void *);
    void (*init)(void *, uint64_t);
    void (*set_training)(void *, int);
    void (*forward_n)(void *, int, const float *, float *);
    void (*backward_n)(void *, int, const float *);
    void (*zero_grad)(void *);
    nn_rng *(*rng)(void *);
    nn_model *(*model)(void *);
    float (*train_step_n)(void *, int, const float *, const int32_t *);
} net_def;

#define WRAP(P)                                                                                  \
    static void *P##_w_create(void) { return P##_create(); }                                     \
    static void P##_w_destroy(void *n) { P##_destroy(n); }                                       \
    static void P##_w_init(void *n, uint64_t s) { P##_init(n, s); }                              \
    static void P##_w_train(void *n, int t) { P##_set_training(n, t); }                          \
    static void P##_w_fwd(void *n, int r, const float *x, float *y) { P##_forward_n(n, r, x, y); } \
    static void P##_w_bwd(void *n, int r, const float *dy) { P##_backward_n(n, r, dy, NULL); }   \
    static void P##_w_zero(void *n) { P##_zero_grad(n); }                                        \
    static nn_rng *P##_w_rng(void *n) { return P##_rng(n); }                                     \
    static nn_model *P##_w_model(void *n) { return P##_model(n); }                               \
    static float P##_w_step(void *n, int r, const float *x, const int32_t *t)                   \
    {                                                                                            \
        return P##_train_step_n(n, r, x, t);                                                     \
    }
#define DEF(P, NAME, SPEC, WHAT, LR, BN)                                                         \
    {NAME, SPEC, WHAT, LR, BN, P##_BATCH, P##_IN_SIZE, P##_OUT_SIZE, P##_BYTES, P##_w_create,        \
     P##_w_destroy, P##_w_init, P##_w_train, P##_w_fwd, P##_w_bwd, P##_w_zero, P##_w_rng,        \
     P##_w_model, P##_w_step}

WRAP(fashion_lenet)
WRAP(fashion_lenet_bn)
WRAP(fashion_mlp)

static const net_def nets[] = {
    DEF(fashion_lenet, "lenet", "specs/fashion/lenet.yaml",
        "D2L 6.6 LeNet: sigmoid, average pooling, xavier_uniform", 0.9f, 0),
    DEF(fashion_lenet_bn, "lenet_bn", "specs/fashion/lenet_bn.yaml",
        "D2L 8.5 LeNet with batch normalization", 1.0f, 1),
    DEF(fashion_mlp, "mlp", "specs/fashion/dropout_mlp.yaml",
        "D2L 4.6 MLP 784-256-256-10 with dropout 0.2 and 0.5", 0.5f, 0),
};
#define NNETS (sizeof nets / sizeof nets[0])

/* ---- options ---------------------------------------------------------- */

typedef struct options {
    const net_def *net;
    long epochs;
    uint64_t seed;
    const char *data;
    long limit;           /* 0: everything */
    const char *csv, *steps_csv, *save, *save_init, *order_file;
    int quiet;
    int dist;             /* --dist: data parallel over MPI */
} options;

static void usage(FILE *f)
{
    size_t i;
    fprintf(f,
            "usage: fashion [--net NAME] [--epochs N] [--seed S] [--data DIR] [--limit N]\n"
            "               [--csv FILE] [--steps-csv FILE] [--save FILE]\n"
            "               [--save-init FILE] [--order-file FILE] [--quiet] [--dist]\n"
            "Trains a network on Fashion-MNIST as D2L does in PyTorch, evaluating on the\n"
            "test set after every epoch.\n"
            "  --net NAME         the network (default lenet):\n");
    for (i = 0; i < NNETS; i++)
        fprintf(f, "                       %-9s %s, lr %g (%s)\n", nets[i].name, nets[i].what,
                (double)nets[i].lr, nets[i].spec);
    fprintf(f,
            "  --epochs N         epochs (default 10)\n"
            "  --seed S           P_init seed, as torch.manual_seed(S) (default 0)\n"
            "  --data DIR         the four IDX files, .gz or not (default " DEFAULT_DATA ")\n"
            "  --limit N          train on the first N training images, test on the first N/6\n"
            "  --csv FILE         one row per epoch: epoch,loss,train_acc,test_acc,seconds\n"
            "  --steps-csv FILE   one row per training step: step,loss\n"
            "  --save FILE        the parameters at the end (safetensors; torch reads it)\n"
            "  --save-init FILE   the parameters before training (safetensors)\n"
            "  --order-file FILE  each epoch's example order, one line per epoch\n"
            "  --quiet            no progress bar even on a terminal\n"
            "  --dist             data parallel over MPI: mpirun -np W fashion --dist ...\n"
            "                     (DistributedDataParallel's semantics: local batch 256, global\n"
            "                     W x 256; only rank 0 prints; README.md)\n"
            "Exit status: 0 done, 1 failure, 2 usage, 3 the data set is not installed.\n");
}

static int parse_long(const char *s, long lo, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return -1;
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->net = &nets[0];
    o->epochs = 10;
    o->data = DEFAULT_DATA;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--dist")) {
#if NNGEN_FASHION_MPI
            o->dist = 1;
            continue;
#else
            fprintf(stderr, "fashion: --dist: this build has no MPI (the runtime was built "
                            "without nngen-rt-mpi: install libopenmpi-dev and reconfigure "
                            "with -Dmpi=enabled)\n");
            return -1;
#endif
        }
        if (v == NULL || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "fashion: %s: %s\n", a,
                    strncmp(a, "--", 2) ? "unexpected argument" : "needs a value");
            return -1;
        }
        i++;
        if (!strcmp(a, "--net")) {
            size_t k;
            o->net = NULL;
            for (k = 0; k < NNETS; k++)
                if (!strcmp(v, nets[k].name))
                    o->net = &nets[k];
            if (!o->net) {
                fprintf(stderr, "fashion: --net %s: no such network (", v);
                for (k = 0; k < NNETS; k++)
                    fprintf(stderr, "%s%s", k ? ", " : "", nets[k].name);
                fprintf(stderr, ")\n");
                return -1;
            }
        } else if (!strcmp(a, "--epochs")) {
            if (parse_long(v, 1, &o->epochs) != 0) {
                fprintf(stderr, "fashion: --epochs %s: not a number >= 1\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "fashion: --seed %s: not a number in [0, 2^64)\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--limit")) {
            if (parse_long(v, 1, &o->limit) != 0) {
                fprintf(stderr, "fashion: --limit %s: not a number >= 1\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--data")) {
            o->data = v;
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
        } else if (!strcmp(a, "--steps-csv")) {
            o->steps_csv = v;
        } else if (!strcmp(a, "--save")) {
            o->save = v;
        } else if (!strcmp(a, "--save-init")) {
            o->save_init = v;
        } else if (!strcmp(a, "--order-file")) {
            o->order_file = v;
        } else {
            fprintf(stderr, "fashion: unknown option %s (see --help)\n", a);
            return -1;
        }
    }
    return 0;
}

/* ---- data --------------------------------------------------------------- */

/* DIR/NAME.gz, else DIR/NAME; NULL (and out untouched) if neither exists. */
static const char *find_file(const char *dir, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.gz", dir, name);
    if (access(out, F_OK) == 0)
        return out;
    snprintf(out, n, "%s/%s", dir, name);
    if (access(out, F_OK) == 0)
        return out;
    return NULL;
}

/* 0 ok, 1 malformed or unreadable, 3 not there. */
static int load_data(const options *o, nn_dataset *train, nn_dataset *test)
{
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char paths[4][4200];
    int i, missing = 0;
    long test_limit = o->limit > 0 ? (o->limit / 6 > 0 ? o->limit / 6 : 1) : 0;
    for (i = 0; i < 4; i++)
        if (!find_file(o->data, names[i], paths[i], sizeof paths[i]))
            missing++;
    if (missing) {
        fprintf(stderr,
                "fashion: the Fashion-MNIST data set is not in %s (%s.gz and the three other "
                "IDX files).\n"
                "  On Debian: apt-get install dataset-fashion-mnist (installs them under "
                DEFAULT_DATA "),\n"
                "  or give the directory that holds them with --data DIR.\n",
                o->data, names[0]);
        return 3;
    }
    if (nn_dataset_load(train, paths[0], paths[1], o->limit) != 0) {
        fprintf(stderr, "fashion: %s\n", nn_error());
        return 1;
    }
    if (nn_dataset_load(test, paths[2], paths[3], test_limit) != 0) {
        fprintf(stderr, "fashion: %s\n", nn_error());
        nn_dataset_free(train);
        return 1;
    }
    return 0;
}

static int check_data(const nn_dataset *d, const char *what, const net_def *net)
{
    int64_t i;
    if (d->size != net->in_size) {
        fprintf(stderr, "fashion: the %s images have %" PRId64 " pixels, the network takes %d\n",
                what, d->size, net->in_size);
        return -1;
    }
    for (i = 0; i < d->count; i++)
        if (d->labels[i] < 0 || d->labels[i] >= net->out_size) {
            fprintf(stderr, "fashion: %s label %" PRId32 " of example %" PRId64
                            " is not one of the network's %d classes\n",
                    what, d->labels[i], i, net->out_size);
            return -1;
        }
    return 0;
}

/* ---- the step ------------------------------------------------------------ */

/* nn.CrossEntropyLoss() (mean over n rows) of the logits y [n x c], its
   gradient dy = (softmax(y) - onehot) / n, and the rows whose argmax (the
   first maximum, as torch's) is the label. */
/* the batch of examples idx[0 .. rows-1] of d: images into x, labels into y */
static void gather(const nn_dataset *d, const int64_t *idx, int rows, float *x, int32_t *y)
{
    int r;
    for (r = 0; r < rows; r++) {
        memcpy(x + (size_t)r * (size_t)d->size, d->images + idx[r] * d->size,
               sizeof *x * (size_t)d->size);
        y[r] = d->labels[idx[r]];
    }
}

static float cross_entropy(const float *y, const int32_t *label, int n, int c, float *dy,
                           int *correct)
{
    double sum = 0.0;
    const float scale = (float)(1.0 / (double)n);
    int b, k;
    *correct = 0;
    for (b = 0; b < n; b++) {
        const float *row = y + (size_t)b * (size_t)c;
        float mx = row[0], s = 0.0f, lse;
        int arg = 0;
        for (k = 1; k < c; k++)
            if (row[k] > mx) {
                mx = row[k];
                arg = k;
            }
        *correct += arg == label[b];
        for (k = 0; k < c; k++)
            s += expf(row[k] - mx);
        lse = mx + logf(s);
        sum += (double)lse - row[label[b]];
        for (k = 0; k < c; k++)
            dy[(size_t)b * (size_t)c + (size_t)k] =
                (expf(row[k] - lse) - (k == label[b] ? 1.0f : 0.0f)) * scale;
    }
    return (float)(sum / (double)n);
}

static int count_correct(const float *y, const int32_t *label, int n, int c)
{
    int b, k, correct = 0;
    for (b = 0; b < n; b++) {
        const float *row = y + (size_t)b * (size_t)c;
        int arg = 0;
        for (k = 1; k < c; k++)
            if (row[k] > row[arg])
                arg = k;
        correct += arg == label[b];
    }
    return correct;
}

/* torch.optim.SGD (no momentum, no weight decay): p.add_(grad, alpha=-lr),
   which torch's CPU kernel computes as one fused multiply-add. */
static void sgd_step(nn_model *m, float lr)
{
    size_t i, n = nn_param_count(m);
    for (i = 0; i < n; i++) {
        nn_tensor *t = nn_param(m, i);
        int64_t j;
        if (!t->requires_grad || t->grad == NULL)
            continue;
        for (j = 0; j < t->numel; j++)
            t->data[j] = fmaf(-lr, t->grad[j], t->data[j]);
    }
}

/* ---- output ---------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "fashion: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path)
{
    if (f == NULL)
        return 0;
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "fashion: error writing %s\n", path);
        return -1;
    }
    return 0;
}

static void progress(int epoch, long epochs, long step, long steps, double loss)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    long k, fill = steps ? step * WIDTH / steps : WIDTH;
    for (k = 0; k < WIDTH; k++)
        bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
    bar[WIDTH] = 0;
    printf("\r epoch %*d/%ld [%s] %*ld/%ld  loss %.4f", epochs > 9 ? 2 : 1, epoch, epochs, bar,
           steps > 99 ? 3 : 2, step, steps, loss);
    fflush(stdout);
}

#if NNGEN_FASHION_MPI
/* ---- --dist: data parallel over MPI ---------------------------------------- */

static int main_dist(const options *o, int *argc, char ***argv)
{
    nn_dataset train, test;
    const net_def *def = o->net;
    void *net = NULL;
    nn_dist *d = NULL;
    nn_model *model;
    nn_rng *rng;
    int64_t *idx = NULL, *perm = NULL, count;
    float *xb = NULL, *yb = NULL;
    int32_t *lb = NULL;
    FILE *csv = NULL, *steps_csv = NULL, *order_f = NULL;
    int rc, rank, world, tty, status = 1;
    long epoch, step = 0, steps_per_epoch;
    double t_load, total = 0.0, train_total = 0.0, t_start, train_wait = 0.0;
    double last_loss = 0, last_test_acc = 0;
    nn_dist_stats st;

    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    tty = rank == 0 && !o->quiet && isatty(STDOUT_FILENO);
    t_start = now();
    /* every rank reads the data set (each needs its examples; the files are
       the same on every host: README.md) */
    rc = load_data(o, &train, &test);
    if (rc != 0)
        return nn_dist_exit(NULL, rc);
    t_load = now() - t_start;
    if (check_data(&train, "training", def) != 0 || check_data(&test, "test", def) != 0)
        goto out;
    count = nn_dist_num_samples(train.count, world);
    if (def->batch_norm && count % def->batch == 1) {
        fprintf(stderr, "fashion: rank %d: the last local batch would hold one example, and a "
                        "batch norm cannot train on one: choose another --limit\n", rank);
        goto out;
    }
    net = def->create();
    idx = malloc(sizeof *idx * (size_t)count);
    perm = malloc(sizeof *perm * (size_t)train.count);
    xb = malloc(sizeof *xb * (size_t)def->batch * (size_t)def->in_size);
    yb = malloc(sizeof *yb * (size_t)def->batch * (size_t)def->out_size);
    lb = malloc(sizeof *lb * (size_t)def->batch);
    if (!net || !idx || !perm || !xb || !yb || !lb) {
        fprintf(stderr, "fashion: rank %d: out of memory\n", rank);
        goto out;
    }
    def->init(net, o->seed);
    model = def->model(net);
    rng = def->rng(net);
    d = nn_dist_attach(model, MPI_COMM_WORLD, NULL);
    if (d == NULL) {
        fprintf(stderr, "fashion: rank %d: %s\n", rank, nn_error());
        goto out;
    }
    if (rank == 0) {
        if (o->csv && !(csv = open_out(o->csv)))
            goto out;
        if (o->steps_csv && !(steps_csv = open_out(o->steps_csv)))
            goto out;
        if (o->order_file && !(order_f = open_out(o->order_file)))
            goto out;
        if (csv)
            fprintf(csv, "epoch,loss,train_acc,test_acc,seconds\n");
        if (steps_csv)
            fprintf(steps_csv, "step,loss\n");
        if (o->save_init && nn_save(model, o->save_init) != 0) {
            fprintf(stderr, "fashion: %s\n", nn_error());
            goto out;
        }
    }
    steps_per_epoch = (long)((count + def->batch - 1) / def->batch);
    if (rank == 0) {
        nn_dist_get_stats(d, &st);
        printf("nngen: %s (%s, %s), SGD lr %g, %ld epochs, seed %" PRIu64 "\n", def->name,
               def->spec, def->what, (double)def->lr, o->epochs, o->seed);
        printf("data parallel: %d ranks (MPI), local batch %d, global batch %d; %" PRId64
               " examples a rank an epoch (DistributedSampler, seed %" PRIu64 "); %zu gradient "
               "bytes in %d bucket%s a step\n",
               world, def->batch, world * def->batch, count, o->seed, st.bytes_per_step,
               st.buckets, st.buckets == 1 ? "" : "s");
        printf("data: %s: %" PRId64 " training and %" PRId64 " test images (read in %.2f s)\n",
               o->data, train.count, test.count, t_load);
        printf("epoch    loss  train acc  test acc  examples/s    time   elapsed\n");
        fflush(stdout);
    }
    for (epoch = 1; epoch <= o->epochs; epoch++) {
        double t0, t_train, t_end, sums[3] = {0, 0, 0}, next_bar = 0.0;
        int64_t start, i;
        MPI_Barrier(MPI_COMM_WORLD); /* epochs timed from a common start */
        nn_dist_get_stats(d, &st);
        train_wait -= st.wait_seconds;
        t0 = now();
        /* DistributedSampler.set_epoch(epoch - 1); iter(loader) still draws
           the DataLoader's base seed from the global generator */
        (void)nn_loader_seed(rng);
        if (nn_dist_sampler_indices(o->seed, epoch - 1, train.count, world, rank, idx, perm) < 0) {
            fprintf(stderr, "fashion: %s\n", nn_error());
            goto out;
        }
        if (order_f) {
            for (i = 0; i < count; i++)
                fprintf(order_f, i ? " %" PRId64 : "%" PRId64, idx[i]);
            fprintf(order_f, "\n");
        }
        def->set_training(net, 1);
        for (start = 0; start < count; start += def->batch) {
            int rows = (int)(count - start < def->batch ? count - start : def->batch);
            float loss;
            gather(&train, idx + start, rows, xb, lb);
            loss = def->train_step_n(net, rows, xb, lb);
            if (isnan(loss)) {
                fprintf(stderr, "fashion: rank %d: %s\n", rank, nn_error());
                goto out;
            }
            sums[0] += (double)loss * rows;
            step++;
            if (steps_csv)
                fprintf(steps_csv, "%ld,%.9g\n", step, (double)loss);
            if (tty && (now() >= next_bar || start + rows >= count)) {
                progress((int)epoch, o->epochs, start / def->batch + 1, steps_per_epoch,
                         sums[0] / (double)(start + rows));
                next_bar = now() + 0.1;
            }
        }
        t_train = now() - t0;
        train_total += t_train;
        nn_dist_get_stats(d, &st);
        train_wait += st.wait_seconds;
        /* evaluation: rank 0's buffers everywhere, the test set split over
           the ranks */
        (void)nn_loader_seed(rng);
        if (nn_dist_sync_buffers(d) != 0) {
            fprintf(stderr, "fashion: rank %d: %s\n", rank, nn_error());
            goto out;
        }
        def->set_training(net, 0);
        {
            int64_t lo = test.count * rank / world, hi = test.count * (rank + 1) / world;
            for (start = lo; start < hi; start += def->batch) {
                int rows = (int)(hi - start < def->batch ? hi - start : def->batch);
                def->forward_n(net, rows, test.images + start * test.size, yb);
                sums[1] += count_correct(yb, test.labels + start, rows, def->out_size);
            }
        }
        def->set_training(net, 1);
        sums[2] = (double)count;
        if (nn_dist_allreduce_sum(d, sums, 3) != 0) {
            fprintf(stderr, "fashion: rank %d: %s\n", rank, nn_error());
            goto out;
        }
        t_end = now() - t0;
        total += t_end;
        last_loss = sums[0] / sums[2];
        last_test_acc = sums[1] / (double)test.count;
        if (rank == 0) {
            if (tty)
                printf("\r\033[K");
            printf("%5ld  %6.4f          -    %6.4f  %10.1f  %5.2f s  %6.1f s\n", epoch,
                   last_loss, last_test_acc, sums[2] / t_train, t_end, total);
            fflush(stdout);
            if (csv)
                fprintf(csv, "%ld,%.9g,,%.9g,%.6f\n", epoch, last_loss, last_test_acc, t_end);
        }
    }
    if (rank == 0) {
        nn_dist_get_stats(d, &st);
        printf("loss %.3f, test acc %.3f\n", last_loss, last_test_acc);
        printf("%.1f examples/sec over %d ranks, %.2f s an epoch (training and test), %.1f s "
               "in all\n", (double)count * world * (double)o->epochs / total, world,
               total / (double)o->epochs, total);
        printf("rank 0 waited on the other ranks %.2f s of its %.2f s of training (%.1f%%), "
               "%ld steps\n", train_wait, train_total,
               train_total > 0 ? 100.0 * train_wait / train_total : 0.0, st.steps);
        if (o->save) {
            if (nn_save(model, o->save) != 0) {
                fprintf(stderr, "fashion: %s\n", nn_error());
                goto out;
            }
            printf("saved %s\n", o->save);
        }
    }
    status = 0;
out:
    if (close_out(csv, o->csv) != 0)
        status = 1;
    if (close_out(steps_csv, o->steps_csv) != 0)
        status = 1;
    if (close_out(order_f, o->order_file) != 0)
        status = 1;
    if (net && !(d && nn_dist_failed(d))) {
        nn_dist_detach(d);
        d = NULL;
        def->destroy(net);
    }
    free(idx);
    free(perm);
    free(xb);
    free(yb);
    free(lb);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return nn_dist_exit(d, status);
}
#endif

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    options o;
    nn_dataset train, test;
    const net_def *def;
    void *net = NULL;
    nn_model *model;
    nn_rng *rng;
    int64_t *order = NULL;
    float *xb = NULL, *yb = NULL, *dyb = NULL;
    int32_t *lb = NULL;
    FILE *csv = NULL, *steps_csv = NULL, *order_f = NULL;
    int rc, tty, status = 1;
    long epoch, step = 0, steps_per_epoch;
    double t_start, t_load, total = 0.0;
    double last_loss = 0, last_train_acc = 0, last_test_acc = 0;

    if (parse_options(argc, argv, &o) != 0)
        return 2;
#if NNGEN_FASHION_MPI
    if (o.dist)
        return main_dist(&o, &argc, &argv);
#endif
    def = o.net;
    tty = !o.quiet && isatty(STDOUT_FILENO);

    t_start = now();
    rc = load_data(&o, &train, &test);
    if (rc != 0)
        return rc;
    t_load = now() - t_start;
    if (check_data(&train, "training", def) != 0 || check_data(&test, "test", def) != 0)
        goto out;
    if (def->batch_norm && train.count % def->batch == 1) {
        /* torch: "Expected more than 1 value per channel when training" */
        fprintf(stderr, "fashion: the last batch would hold one example, and a batch norm "
                        "cannot train on one (torch refuses it too): choose another --limit\n");
        goto out;
    }

    net = def->create();
    order = malloc(sizeof *order * (size_t)train.count);
    xb = malloc(sizeof *xb * (size_t)def->batch * (size_t)def->in_size);
    yb = malloc(sizeof *yb * (size_t)def->batch * (size_t)def->out_size);
    dyb = malloc(sizeof *dyb * (size_t)def->batch * (size_t)def->out_size);
    lb = malloc(sizeof *lb * (size_t)def->batch);
    if (!net || !order || !xb || !yb || !dyb || !lb) {
        fprintf(stderr, "fashion: out of memory\n");
        goto out;
    }
    if (o.csv && !(csv = open_out(o.csv)))
        goto out;
    if (o.steps_csv && !(steps_csv = open_out(o.steps_csv)))
        goto out;
    if (o.order_file && !(order_f = open_out(o.order_file)))
        goto out;
    if (csv)
        fprintf(csv, "epoch,loss,train_acc,test_acc,seconds\n");
    if (steps_csv)
        fprintf(steps_csv, "step,loss\n");

    def->init(net, o.seed);
    model = def->model(net);
    rng = def->rng(net);
    if (o.save_init && nn_save(model, o.save_init) != 0) {
        fprintf(stderr, "fashion: %s\n", nn_error());
        goto out;
    }

    steps_per_epoch = (long)((train.count + def->batch - 1) / def->batch);
    printf("nngen: %s (%s, %s), SGD lr %g, batch %d, %ld epochs, seed %" PRIu64 "\n", def->name,
           def->spec, def->what, (double)def->lr, def->batch, o.epochs, o.seed);
    printf("data: %s: %" PRId64 " training and %" PRId64 " test images of ", o.data, train.count,
           test.count);
    for (rc = 0; rc < train.ndim; rc++)
        printf(rc ? "x%" PRId64 : "%" PRId64, train.shape[rc]);
    printf(" (read in %.2f s)\n", t_load);
    printf("epoch    loss  train acc  test acc  examples/s    time   elapsed\n");
    fflush(stdout);

    for (epoch = 1; epoch <= o.epochs; epoch++) {
        double t0 = now(), t_train, t_end, loss_sum = 0.0, next_bar = 0.0;
        long correct = 0, test_correct = 0, s;
        int64_t start, i;

        /* for X, y in train_iter: the order of DataLoader(shuffle=True) */
        if (nn_epoch_order(rng, train.count, order) != 0) {
            fprintf(stderr, "fashion: %s\n", nn_error());
            goto out;
        }
        if (order_f) {
            for (i = 0; i < train.count; i++)
                fprintf(order_f, i ? " %" PRId64 : "%" PRId64, order[i]);
            fprintf(order_f, "\n");
        }
        def->set_training(net, 1);
        for (s = 0, start = 0; start < train.count; s++, start += def->batch) {
            int rows = (int)(train.count - start < def->batch ? train.count - start : def->batch);
            int ok = 0;
            float loss;
            gather(&train, order + start, rows, xb, lb);
            def->forward_n(net, rows, xb, yb);
            loss = cross_entropy(yb, lb, rows, def->out_size, dyb, &ok);
            def->zero_grad(net);
            def->backward_n(net, rows, dyb);
            sgd_step(model, def->lr);
            loss_sum += (double)loss * rows;
            correct += ok;
            step++;
            if (steps_csv)
                fprintf(steps_csv, "%ld,%.9g\n", step, (double)loss);
            if (tty && (now() >= next_bar || s + 1 == steps_per_epoch)) {
                progress((int)epoch, o.epochs, s + 1, steps_per_epoch, loss_sum / (double)(start + rows));
                next_bar = now() + 0.1;
            }
        }
        t_train = now() - t0;

        /* evaluate_accuracy_gpu: iter(test_iter) draws its base seed; net.eval() */
        (void)nn_loader_seed(rng);
        def->set_training(net, 0);
        for (start = 0; start < test.count; start += def->batch) {
            int rows = (int)(test.count - start < def->batch ? test.count - start : def->batch);
            def->forward_n(net, rows, test.images + start * test.size, yb);
            test_correct += count_correct(yb, test.labels + start, rows, def->out_size);
        }
        def->set_training(net, 1);
        t_end = now() - t0;
        total += t_end;

        last_loss = loss_sum / (double)train.count;
        last_train_acc = (double)correct / (double)train.count;
        last_test_acc = (double)test_correct / (double)test.count;
        if (tty)
            printf("\r\033[K");
        printf("%5ld  %6.4f     %6.4f    %6.4f  %10.1f  %5.2f s  %6.1f s\n", epoch, last_loss,
               last_train_acc, last_test_acc, (double)train.count / t_train, t_end, total);
        fflush(stdout);
        if (csv)
            fprintf(csv, "%ld,%.9g,%.9g,%.9g,%.6f\n", epoch, last_loss, last_train_acc,
                    last_test_acc, t_end);
    }
    printf("loss %.3f, train acc %.3f, test acc %.3f\n", last_loss, last_train_acc, last_test_acc);
    printf("%.1f examples/sec, %.2f s an epoch (training and test), %.1f s in all\n",
           (double)train.count * (double)o.epochs / total, total / (double)o.epochs, total);
    if (o.save) {
        if (nn_save(model, o.save) != 0) {
            fprintf(stderr, "fashion: %s\n", nn_error());
            goto out;
        }
        printf("saved %s\n", o.save);
    }
    status = 0;
out:
    if (close_out(csv, o.csv) != 0)
        status = 1;
    if (close_out(steps_csv, o.steps_csv) != 0)
        status = 1;
    if (close_out(order_f, o.order_file) != 0)
        status = 1;
    if (net)
        def->destroy(net);
    free(order);
    free(xb);
    free(yb);
    free(dyb);
    free(lb);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return status;
}
