/* nngen-rt-mpi: data-parallel training over MPI (SPEC 1.9), as torch
 * 1.13's DistributedDataParallel does it.  <nngen/rt-mpi.h> is the API;
 * docs/api.md "Data parallel over MPI" the user's view.
 *
 * How a train step runs with nn_dist_attach'ed hooks (nn_train_hooks,
 * <nngen/rt.h>; the generated code calls them and nothing of MPI):
 *
 *   pre_forward  rank 0's buffers are broadcast (DDP's broadcast_buffers,
 *                at the start of every forward in training), when the
 *                model has any;
 *   grad_ready   parameter i's gradient is final: it is copied into its
 *                bucket divided by the world size (DDP: copy into the
 *                bucket view, div_(world_size)), and when that was the
 *                bucket's last parameter the bucket's allreduce (sum) is
 *                started, non-blocking: a persistent MPIX_Allreduce_init
 *                request started with MPI_Start where Open MPI has the
 *                pcollreq extension (no allocation per step, not even in
 *                MPI), else MPI_Iallreduce; then the oldest allreduce in
 *                flight is tested, which is what makes Open MPI's
 *                non-blocking collectives progress while backward goes on;
 *   pre_step     buckets not started yet (a parameter backward never
 *                reached) are started in bucket order, all are waited on
 *                (MPI_Testall polling, with the deadline below), and the
 *                averaged gradients are copied back; the generated
 *                optimizer then steps every parameter.
 *
 * Buckets, as DDP's: the trainable parameters in reverse parameter order
 * (backward completes the last layers first), a bucket closing once it
 * holds at least its cap (1 MiB for the first, 25 MiB, bucket_cap_mb, for
 * the others; nn_dist_options).  Every rank runs the same code, so the
 * buckets start in the same order everywhere, as MPI requires.  Sums are
 * Open MPI's: its algorithm (and so the order of the additions) depends on
 * the world size and the message size, not on timing, and every rank gets
 * the same result (tests/mpi checks the parameters bit for bit across the
 * ranks after every step).
 *
 * Failures.  Every wait polls with a deadline (nn_dist_options.timeout,
 * NNGEN_MPI_TIMEOUT, 300 s by default).  When it passes, the rank sends a
 * small "I am stuck at step S" message to every other rank on a duplicate
 * communicator on which it has a receive from each of them posted since
 * attach, and waits a little more (at most 10 s) for theirs: the ranks it
 * heard nothing from are the ones named as dead or hung; the message goes
 * to nn_error(), the dist is failed (every later call fails at once), the
 * train step returns NAN, and nn_dist_exit aborts the job.  Errors MPI
 * reports (MPI_ERRORS_RETURN on our communicators) fail it likewise.  A
 * rank that dies outright is usually noticed by mpirun first, which then
 * ends the job naming it.
 *
 * Memory: everything (buckets, staging for buffers, requests) is allocated
 * by nn_dist_attach; the hooks allocate nothing.
 */
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nngen/rt-mpi.h>

#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>
#endif
#if defined(OMPI_HAVE_MPI_EXT_PCOLLREQ) && OMPI_HAVE_MPI_EXT_PCOLLREQ
#define HAVE_PERSISTENT 1
#else
#define HAVE_PERSISTENT 0
#endif

#define DEFAULT_BUCKET (25u * 1024u * 1024u)       /* DDP's bucket_cap_mb=25 */
#define DEFAULT_FIRST_BUCKET (1024u * 1024u)       /* dist._DEFAULT_FIRST_BUCKET_BYTES */
#define DEFAULT_TIMEOUT 300.0
#define DIAG_TAG 17
#define BCAST_CHUNK (1 << 30)

typedef struct bucket {
    int first, count;          /* d->order[first .. first + count - 1] */
    int floats;
    float *buf;
    int pending;               /* parameters not final yet in this step */
    int launched, done;
    MPI_Request req;
    int persistent;
} bucket;

struct nn_dist {
    nn_train_hooks hooks;
    nn_model *m;
    MPI_Comm comm, diag;
    int rank, size;
    int nb;
    bucket *b;
    int *order;                /* trainable parameter ids, in bucket order */
    int *bucket_of;            /* per parameter: its bucket, -1 when not trainable */
    size_t *off_of;            /* per parameter: its offset in the bucket's buf */
    char *ready;               /* per parameter: final in this step */
    float *bucket_mem;
    size_t grad_floats;
    /* buffers: packed for one broadcast */
    int nbuffers;
    size_t buffer_bytes;
    unsigned char *stage;
    int broadcast_buffers;
    double timeout;
    int failed;
    int broken;                /* a timeout or an MPI error: MPI may hang from now on */
    long steps;
    long early;                /* buckets whose allreduce finished during backward */
    double wait;
    int oldest;                /* the first bucket that may still be in flight */
    long *diag_in;             /* 2 per rank: what each peer told us */
    long diag_out[2];
    MPI_Request *diag_req;     /* 2 * size: the receives (own one MPI_REQUEST_NULL),
                                  then room for the sends of diagnose() */
};

/* ---- helpers ------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(long ns)
{
    struct timespec ts;
    ts.tv_sec = 0;
    ts.tv_nsec = ns;
    nanosleep(&ts, NULL);
}

static void fail_mpi(nn_dist *d, int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        len = 0;
    msg[len] = 0;
    d->failed = d->broken = 1;
    nn_set_error("nngen-rt-mpi: rank %d of %d: %s failed: %s", d->rank, d->size, what,
                 len ? msg : "(no message)");
}

/* Told nothing within the deadline: ask every peer, name those that are
   silent.  Fails d. */
static void diagnose(nn_dist *d, const char *what, double waited)
{
    char silent[600], waiting[600];
    size_t ls = 0, lw = 0;
    int p, nsilent = 0, nwaiting = 0;
    double grace = d->timeout < 10.0 ? d->timeout : 10.0, end;
    MPI_Request *sreq;
    d->failed = d->broken = 1;
    if (d->diag_req == NULL || d->diag_in == NULL) {
        nn_set_error("nngen-rt-mpi: rank %d of %d: %s did not complete within %.3g s "
                     "(NNGEN_MPI_TIMEOUT)", d->rank, d->size, what, waited);
        return;
    }
    sreq = d->diag_req + d->size; /* room reserved at attach */
    d->diag_out[0] = d->rank;
    d->diag_out[1] = d->steps + 1;
    for (p = 0; p < d->size; p++) {
        sreq[p] = MPI_REQUEST_NULL;
        if (p != d->rank)
            MPI_Isend(d->diag_out, 2, MPI_LONG, p, DIAG_TAG, d->diag, &sreq[p]);
    }
    end = now() + grace;
    for (;;) {
        int all = 1;
        for (p = 0; p < d->size; p++) {
            int flag = 1;
            if (p != d->rank && d->diag_req[p] != MPI_REQUEST_NULL)
                MPI_Test(&d->diag_req[p], &flag, MPI_STATUS_IGNORE);
            all &= flag;
        }
        if (all || now() > end)
            break;
        nap(1000000);
    }
    silent[0] = waiting[0] = 0;
    for (p = 0; p < d->size; p++) {
        if (p == d->rank)
            continue;
        if (d->diag_req[p] != MPI_REQUEST_NULL || d->diag_in[2 * p] != p) {
            if (ls + 16 < sizeof silent)
                ls += (size_t)snprintf(silent + ls, sizeof silent - ls, "%s%d",
                                       nsilent ? ", " : "", p);
            nsilent++;
        } else {
            if (lw + 16 < sizeof waiting)
                lw += (size_t)snprintf(waiting + lw, sizeof waiting - lw, "%s%d",
                                       nwaiting ? ", " : "", p);
            nwaiting++;
        }
    }
    if (nsilent)
        nn_set_error("nngen-rt-mpi: rank %d of %d: %s (train step %ld) did not complete "
                     "within %.3g s (NNGEN_MPI_TIMEOUT): rank%s %s did not answer within %.3g s more "
                     "(dead, stopped, hung or cut off)%s%s%s%s",
                     d->rank, d->size, what, d->steps + 1, waited, nsilent > 1 ? "s" : "",
                     silent, grace, nwaiting ? "; rank" : "", nwaiting > 1 ? "s " : " ",
                     waiting, nwaiting ? (nwaiting > 1 ? " are stuck too" : " is stuck too")
                                       : "");
    else
        nn_set_error("nngen-rt-mpi: rank %d of %d: %s (train step %ld) did not complete "
                     "within %.3g s (NNGEN_MPI_TIMEOUT), and every other rank is stuck waiting too: "
                     "MPI or the network does not deliver", d->rank, d->size, what,
                     d->steps + 1, waited);
}

/* Waits for n requests, polling: MPI_Testall in a tight loop for the first
   50 us, then with sched_yield() between tests (ranks oversubscribing the
   cores leave them to the others) for 5 ms, then with naps of 50 us (a
   long wait, as for a rank that evaluates alone), until the deadline.  0,
   or -1 with d failed. */
static int wait_all(nn_dist *d, int n, MPI_Request *req, const char *what)
{
    double t0 = now(), t = t0;
    for (;;) {
        int flag = 0, rc = MPI_Testall(n, req, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            fail_mpi(d, rc, what);
            break;
        }
        if (flag)
            break;
        t = now();
        if (d->timeout > 0 && t - t0 > d->timeout) {
            diagnose(d, what, t - t0);
            break;
        }
        if (t - t0 > 5e-3)
            nap(50000);
        else if (t - t0 > 5e-5)
            sched_yield();
    }
    d->wait += now() - t0;
    return d->failed ? -1 : 0;
}

static int dead(nn_dist *d, const char *what)
{
    if (!d->failed)
        return 0;
    /* nn_error() said why when it happened; say it again if overwritten */
    if (strncmp(nn_error(), "nngen-rt-mpi:", 13) != 0)
        nn_set_error("nngen-rt-mpi: rank %d of %d: %s: an earlier failure ended the "
                     "data-parallel run", d->rank, d->size, what);
    return 1;
}

/* Broadcast of len bytes from rank 0, in chunks MPI's int counts hold. */
static int bcast_bytes(nn_dist *d, void *p, size_t len, const char *what)
{
    MPI_Request req[8];
    unsigned char *c = p;
    while (len > 0) {
        int k = 0, rc = MPI_SUCCESS;
        while (len > 0 && k < 8) {
            int chunk = len > (size_t)BCAST_CHUNK ? BCAST_CHUNK : (int)len;
            rc = MPI_Ibcast(c, chunk, MPI_BYTE, 0, d->comm, &req[k]);
            if (rc != MPI_SUCCESS)
                break;
            k++;
            c += chunk;
            len -= (size_t)chunk;
        }
        if (rc != MPI_SUCCESS) {
            fail_mpi(d, rc, what);
            if (k)
                (void)wait_all(d, k, req, what);
            return -1;
        }
        if (wait_all(d, k, req, what) != 0)
            return -1;
    }
    return 0;
}

static size_t storage_bytes(const nn_tensor *t)
{
    return (size_t)t->numel * (t->dtype == NN_I64 ? 8u : 4u);
}

/* ---- buffers --------------------------------------------------------------- */

static int sync_buffers(nn_dist *d)
{
    nn_model *m = d->m;
    int i, n = m->info->ntensors;
    unsigned char *c = d->stage;
    if (d->nbuffers == 0 || d->size == 1)
        return 0;
    if (d->rank == 0)
        for (i = 0; i < n; i++)
            if (m->tensors[i].is_buffer) {
                memcpy(c, m->tensors[i].data, storage_bytes(&m->tensors[i]));
                c += storage_bytes(&m->tensors[i]);
            }
    if (bcast_bytes(d, d->stage, d->buffer_bytes, "the broadcast of rank 0's buffers") != 0)
        return -1;
    if (d->rank != 0)
        for (i = 0, c = d->stage; i < n; i++)
            if (m->tensors[i].is_buffer) {
                memcpy(m->tensors[i].data, c, storage_bytes(&m->tensors[i]));
                c += storage_bytes(&m->tensors[i]);
            }
    return 0;
}

/* ---- the gradient buckets ---------------------------------------------------- */

static void fill(nn_dist *d, int i)
{
    const nn_tensor *t = &d->m->tensors[i];
    float *dst = d->b[d->bucket_of[i]].buf + d->off_of[i];
    const float w = (float)d->size;
    int64_t j;
    if (t->grad == NULL)
        memset(dst, 0, sizeof *dst * (size_t)t->numel);
    else
        for (j = 0; j < t->numel; j++)
            dst[j] = t->grad[j] / w;
    d->ready[i] = 1;
}

static void launch(nn_dist *d, int k)
{
    bucket *b = &d->b[k];
    int rc;
    if (b->persistent)
        rc = MPI_Start(&b->req);
    else
        rc = MPI_Iallreduce(MPI_IN_PLACE, b->buf, b->floats, MPI_FLOAT, MPI_SUM, d->comm,
                            &b->req);
    b->launched = 1;
    if (rc != MPI_SUCCESS) {
        b->done = 1;
        fail_mpi(d, rc, "starting a gradient allreduce");
    }
}

/* One test of the oldest allreduce in flight: Open MPI progresses its
   non-blocking collectives only inside MPI calls. */
static void progress(nn_dist *d)
{
    while (d->oldest < d->nb && d->b[d->oldest].launched) {
        bucket *b = &d->b[d->oldest];
        int flag = 0;
        if (!b->done) {
            int rc = MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                fail_mpi(d, rc, "a gradient allreduce");
                return;
            }
            if (!flag)
                return;
            b->done = 1;
            d->early++; /* finished while backward was still running */
        }
        d->oldest++;
    }
}

static void hook_grad_ready(nn_train_hooks *h, nn_model *m, int i)
{
    nn_dist *d = h->ctx;
    int k;
    (void)m;
    if (d->failed || d->size == 1 || i < 0 || i >= m->info->nparams ||
        (k = d->bucket_of[i]) < 0 || d->ready[i])
        return;
    fill(d, i);
    if (--d->b[k].pending == 0)
        launch(d, k);
    progress(d);
}

static int finish_grads(nn_dist *d)
{
    int k, j;
    MPI_Request *req = d->diag_req + 2 * d->size; /* room for nb requests */
    int n = 0;
    if (dead(d, "the gradient average"))
        return -1;
    if (d->size == 1) {
        /* the average over one rank is the gradient itself (x / 1 and a sum
           of one term are exact): nothing to copy or reduce */
        d->steps++;
        return 0;
    }
    for (k = 0; k < d->nb; k++) {
        bucket *b = &d->b[k];
        if (!b->launched) {
            for (j = 0; j < b->count; j++)
                if (!d->ready[d->order[b->first + j]])
                    fill(d, d->order[b->first + j]);
            b->pending = 0;
            launch(d, k);
            if (d->failed)
                break;
        }
    }
    for (k = 0; k < d->nb; k++)
        if (!d->b[k].done)
            req[n++] = d->b[k].req;
    if (!d->failed && n)
        (void)wait_all(d, n, req, "the gradient allreduce");
    /* the requests wait_all completed: back into their buckets */
    for (k = 0, j = 0; k < d->nb; k++)
        if (!d->b[k].done) {
            d->b[k].req = req[j++];
            d->b[k].done = 1;
        }
    if (!d->failed)
        for (k = 0; k < d->nb; k++) {
            const bucket *b = &d->b[k];
            for (j = 0; j < b->count; j++) {
                nn_tensor *t = &d->m->tensors[d->order[b->first + j]];
                if (t->grad)
                    memcpy(t->grad, b->buf + d->off_of[d->order[b->first + j]],
                           sizeof(float) * (size_t)t->numel);
            }
        }
    /* ready for the next step */
    for (k = 0; k < d->nb; k++) {
        d->b[k].pending = d->b[k].count;
        d->b[k].launched = d->b[k].done = 0;
    }
    memset(d->ready, 0, (size_t)d->m->info->nparams);
    d->oldest = 0;
    if (d->failed)
        return -1;
    d->steps++;
    return 0;
}

static int hook_pre_step(nn_train_hooks *h, nn_model *m)
{
    (void)m;
    return finish_grads(h->ctx);
}

static int hook_pre_forward(nn_train_hooks *h, nn_model *m)
{
    nn_dist *d = h->ctx;
    (void)m;
    if (dead(d, "the train step"))
        return -1;
    if (!d->broadcast_buffers)
        return 0;
    return sync_buffers(d);
}

/* ---- the public functions -------------------------------------------------- */

void nn_dist_default_options(nn_dist_options *o)
{
    o->bucket_bytes = 0;
    o->first_bucket_bytes = 0;
    o->timeout = -1;
    o->broadcast_buffers = 1;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= c[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", strlen(s ? s : "") + 1);
}

static uint64_t fnv_i64(uint64_t h, int64_t v)
{
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    return fnv(h, b, 8);
}

/* What every rank must agree on: the model and the bucket options. */
typedef struct summary {
    int64_t hash, nparams, ntensors, floats, bucket, first;
    char name[80];
} summary;

static void summarize(const nn_model *m, size_t cap, size_t first, int bcast, summary *s)
{
    const nn_model_info *info = m->info;
    uint64_t h = UINT64_C(14695981039346656037);
    int i, k;
    memset(s, 0, sizeof *s);
    h = fnv_str(h, "nngen-rt-mpi 1 " NNGEN_VERSION);
    h = fnv_str(h, info->name);
    h = fnv_i64(h, info->ntensors);
    h = fnv_i64(h, info->nparams);
    h = fnv_i64(h, (int64_t)info->data_floats);
    h = fnv_i64(h, (int64_t)info->grad_floats);
    for (i = 0; i < info->ntensors; i++) {
        const nn_tensor_info *t = &info->tensors[i];
        h = fnv_str(h, t->name);
        h = fnv_i64(h, t->ndim);
        for (k = 0; k < t->ndim && k < NN_MAX_DIM; k++)
            h = fnv_i64(h, t->shape[k]);
        h = fnv_i64(h, t->numel);
        h = fnv_i64(h, (int64_t)t->offset);
        h = fnv_i64(h, t->requires_grad);
        h = fnv_i64(h, t->is_buffer);
        h = fnv_i64(h, t->dtype);
    }
    for (i = 0; i < info->nstate; i++)
        h = fnv_str(h, info->state_keys[i]);
    h = fnv_i64(h, (int64_t)cap);
    h = fnv_i64(h, (int64_t)first);
    h = fnv_i64(h, bcast);
    s->hash = (int64_t)h;
    s->nparams = info->nparams;
    s->ntensors = info->ntensors;
    s->floats = (int64_t)info->data_floats;
    s->bucket = (int64_t)cap;
    s->first = (int64_t)first;
    snprintf(s->name, sizeof s->name, "%s", info->name ? info->name : "");
}

static double env_double(const char *name, double dflt)
{
    const char *v = getenv(name);
    char *end;
    double x;
    if (v == NULL || !*v)
        return dflt;
    x = strtod(v, &end);
    if (*end || x < 0 || x != x)
        return dflt;
    return x;
}

static void free_dist(nn_dist *d)
{
    if (d == NULL)
        return;
    free(d->b);
    free(d->order);
    free(d->bucket_of);
    free(d->off_of);
    free(d->ready);
    free(d->bucket_mem);
    free(d->stage);
    free(d->diag_in);
    free(d->diag_req);
    free(d);
}

/* The buckets: sizes only (no MPI). */
static int plan_buckets(nn_dist *d, size_t cap, size_t first_cap)
{
    nn_model *m = d->m;
    int np = m->info->nparams, i, n = 0, k;
    size_t off = 0, bytes = 0, limit = first_cap;
    d->order = malloc(sizeof *d->order * (size_t)(np + 1));
    d->bucket_of = malloc(sizeof *d->bucket_of * (size_t)(np + 1));
    d->off_of = malloc(sizeof *d->off_of * (size_t)(np + 1));
    d->ready = calloc((size_t)np + 1, 1);
    d->b = calloc((size_t)np + 1, sizeof *d->b);
    if (!d->order || !d->bucket_of || !d->off_of || !d->ready || !d->b)
        return -1;
    d->nb = 0;
    for (i = np - 1; i >= 0; i--) {
        const nn_tensor *t = &m->tensors[i];
        d->bucket_of[i] = -1;
        if (!t->requires_grad || t->is_buffer || t->dtype != NN_F32 || t->numel < 1)
            continue;
        if (t->numel > INT_MAX) {
            nn_set_error("nn_dist_attach: parameter '%s' has %lld elements, more than one "
                         "MPI message takes (%d)", t->name, (long long)t->numel, INT_MAX);
            return -2;
        }
        if (d->nb == 0 || bytes >= limit) {
            if (d->nb > 0)
                limit = cap;
            d->b[d->nb].first = n;
            d->nb++;
            bytes = 0;
            off = 0;
        }
        k = d->nb - 1;
        if ((size_t)d->b[k].floats + (size_t)t->numel > (size_t)INT_MAX) {
            /* a new bucket rather than a count MPI cannot take */
            d->b[d->nb].first = n;
            d->nb++;
            k++;
            bytes = 0;
            off = 0;
        }
        d->order[n++] = i;
        d->bucket_of[i] = k;
        d->off_of[i] = off;
        d->b[k].count++;
        d->b[k].floats += (int)t->numel;
        off += (size_t)t->numel;
        bytes += sizeof(float) * (size_t)t->numel;
    }
    for (k = 0, d->grad_floats = 0; k < d->nb; k++)
        d->grad_floats += (size_t)d->b[k].floats;
    d->bucket_mem = malloc(sizeof(float) * (d->grad_floats + 1));
    if (!d->bucket_mem)
        return -1;
    for (k = 0, off = 0; k < d->nb; k++) {
        d->b[k].buf = d->bucket_mem + off;
        off += (size_t)d->b[k].floats;
        d->b[k].pending = d->b[k].count;
        d->b[k].req = MPI_REQUEST_NULL;
    }
    return 0;
}

nn_dist *nn_dist_attach(nn_model *m, MPI_Comm comm, const nn_dist_options *opt)
{
    nn_dist_options o;
    nn_dist *d;
    summary mine, *all = NULL;
    MPI_Request req;
    size_t cap, first;
    int initialized = 0, rc, p, i, bad = -1;
    if (m == NULL || m->info == NULL) {
        nn_set_error("nn_dist_attach: the model is NULL");
        return NULL;
    }
    if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) {
        nn_set_error("nn_dist_attach: MPI is not initialized (call MPI_Init first)");
        return NULL;
    }
    if (m->hooks != NULL) {
        nn_set_error("nn_dist_attach: the model already has train-step hooks");
        return NULL;
    }
    if (m->weights_readonly) {
        nn_set_error("nn_dist_attach: the model's weights are compiled-in const data (nngen "
                     "--weights --inference): nothing to train, and rank 0's cannot be copied "
                     "in");
        return NULL;
    }
    if (opt)
        o = *opt;
    else
        nn_dist_default_options(&o);
    cap = o.bucket_bytes ? o.bucket_bytes
                         : (size_t)env_double("NNGEN_MPI_BUCKET_BYTES", DEFAULT_BUCKET);
    if (cap == 0)
        cap = DEFAULT_BUCKET;
    first = o.first_bucket_bytes ? o.first_bucket_bytes : DEFAULT_FIRST_BUCKET;
    if (first > cap)
        first = cap;
    d = calloc(1, sizeof *d);
    if (d == NULL) {
        nn_set_error("nn_dist_attach: out of memory");
        return NULL;
    }
    d->m = m;
    d->timeout = o.timeout >= 0 ? o.timeout : env_double("NNGEN_MPI_TIMEOUT", DEFAULT_TIMEOUT);
    d->broadcast_buffers = o.broadcast_buffers != 0;
    if ((rc = MPI_Comm_dup(comm, &d->comm)) != MPI_SUCCESS) {
        free(d);
        nn_set_error("nn_dist_attach: MPI_Comm_dup failed (%d)", rc);
        return NULL;
    }
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_dup(d->comm, &d->diag);
    MPI_Comm_set_errhandler(d->diag, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);

    d->diag_in = calloc((size_t)d->size * 2 + 2, sizeof *d->diag_in);
    rc = plan_buckets(d, cap, first);
    d->diag_req = malloc(sizeof *d->diag_req * (size_t)(2 * d->size + d->nb + 1));
    if (d->diag_req && d->diag_in) {
        /* the diagnosis of a timeout (diagnose()) reads these */
        for (p = 0; p < 2 * d->size + d->nb; p++)
            d->diag_req[p] = MPI_REQUEST_NULL;
        for (p = 0; p < d->size; p++) {
            d->diag_in[2 * p] = -1;
            if (p != d->rank)
                MPI_Irecv(&d->diag_in[2 * p], 2, MPI_LONG, p, DIAG_TAG, d->diag,
                          &d->diag_req[p]);
        }
    }
    all = calloc((size_t)d->size, sizeof *all);
    for (i = 0; i < m->info->ntensors; i++)
        if (m->tensors[i].is_buffer) {
            d->nbuffers++;
            d->buffer_bytes += storage_bytes(&m->tensors[i]);
        }
    d->stage = malloc(d->buffer_bytes + 1);
    /* every rank takes part in every collective below, failed or not, so
       that they fail alike instead of hanging */
    bad = rc == -2 ? 2 : (rc != 0 || !d->diag_in || !d->diag_req || !all || !d->stage);
    if (bad == 1)
        nn_set_error("nn_dist_attach: out of memory");
    summarize(m, cap, first, d->broadcast_buffers, &mine);
    if (bad)
        mine.hash = 0; /* never matches a real one */
    if (all) {
        rc = MPI_Iallgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE,
                            d->comm, &req);
        if (rc != MPI_SUCCESS)
            fail_mpi(d, rc, "nn_dist_attach: the model check");
        else
            (void)wait_all(d, 1, &req, "nn_dist_attach: the model check");
    } else {
        d->failed = 1;
    }
    if (!d->failed && !bad)
        for (p = 0; p < d->size; p++) {
            const summary *a = &all[0], *b = &all[p];
            if (b->hash == a->hash)
                continue;
            d->failed = 1;
            if (b->hash == 0 || a->hash == 0)
                nn_set_error("nn_dist_attach: rank %d failed to set up (out of memory, or a "
                             "parameter too large for MPI): nobody starts",
                             b->hash == 0 ? p : 0);
            else
                nn_set_error("nn_dist_attach: rank %d's model is not rank 0's: rank 0 has "
                             "'%s' (%lld parameters, %lld tensors, %lld floats, buckets of "
                             "%lld/%lld bytes), rank %d '%s' (%lld parameters, %lld tensors, "
                             "%lld floats, buckets of %lld/%lld bytes)%s; every rank must run "
                             "the code nngen generated from the same spec, with the same "
                             "bucket options", p, a->name, (long long)a->nparams,
                             (long long)a->ntensors, (long long)a->floats,
                             (long long)a->first, (long long)a->bucket, p, b->name,
                             (long long)b->nparams, (long long)b->ntensors,
                             (long long)b->floats, (long long)b->first, (long long)b->bucket,
                             a->nparams == b->nparams && a->ntensors == b->ntensors &&
                                     a->floats == b->floats && a->bucket == b->bucket &&
                                     a->first == b->first && !strcmp(a->name, b->name)
                                 ? " (the same counts: names, shapes or layout differ)"
                                 : "");
            break;
        }
    else if (!d->failed)
        d->failed = 1;
    free(all);
    /* rank 0's parameters and buffers everywhere, as DDP's constructor */
    if (!d->failed)
        (void)bcast_bytes(d, m->data, sizeof(float) * m->info->data_floats,
                          "nn_dist_attach: the broadcast of rank 0's parameters");
    if (d->failed) {
        nn_dist_detach(d);
        return NULL;
    }
    for (i = 0; i < d->nb; i++) {
        bucket *b = &d->b[i];
        b->persistent = 0;
#if HAVE_PERSISTENT
        if (env_double("NNGEN_MPI_PERSISTENT", 1) != 0 &&
            MPIX_Allreduce_init(MPI_IN_PLACE, b->buf, b->floats, MPI_FLOAT, MPI_SUM, d->comm,
                                MPI_INFO_NULL, &b->req) == MPI_SUCCESS)
            b->persistent = 1;
        else
            b->req = MPI_REQUEST_NULL;
#endif
    }
    d->hooks.pre_forward = hook_pre_forward;
    d->hooks.grad_ready = hook_grad_ready;
    d->hooks.pre_step = hook_pre_step;
    d->hooks.ctx = d;
    m->hooks = &d->hooks;
    return d;
}

void nn_dist_detach(nn_dist *d)
{
    int p, k;
    if (d == NULL)
        return;
    if (d->m && d->m->hooks == &d->hooks)
        d->m->hooks = NULL;
    if (!d->broken) {
        for (p = 0; d->diag_req && p < d->size; p++)
            if (d->diag_req[p] != MPI_REQUEST_NULL) {
                MPI_Cancel(&d->diag_req[p]);
                MPI_Wait(&d->diag_req[p], MPI_STATUS_IGNORE);
            }
        for (k = 0; d->b && k < d->nb; k++)
            if (d->b[k].persistent && d->b[k].req != MPI_REQUEST_NULL)
                MPI_Request_free(&d->b[k].req);
        MPI_Comm_free(&d->diag);
        MPI_Comm_free(&d->comm);
    }
    free_dist(d);
}

int nn_dist_rank(const nn_dist *d)
{
    return d ? d->rank : 0;
}

int nn_dist_size(const nn_dist *d)
{
    return d ? d->size : 1;
}

int nn_dist_failed(const nn_dist *d)
{
    return d ? d->failed : 0;
}

int nn_dist_allreduce_grads(nn_dist *d)
{
    int i;
    if (d == NULL) {
        nn_set_error("nn_dist_allreduce_grads: d is NULL");
        return -1;
    }
    if (dead(d, "nn_dist_allreduce_grads"))
        return -1;
    for (i = 0; i < d->m->info->nparams; i++)
        if (d->bucket_of[i] >= 0 && !d->ready[i])
            hook_grad_ready(&d->hooks, d->m, i);
    return finish_grads(d);
}

int nn_dist_sync_buffers(nn_dist *d)
{
    if (d == NULL) {
        nn_set_error("nn_dist_sync_buffers: d is NULL");
        return -1;
    }
    if (dead(d, "nn_dist_sync_buffers"))
        return -1;
    return sync_buffers(d);
}

int nn_dist_allreduce_sum(nn_dist *d, double *v, int n)
{
    MPI_Request req;
    int rc;
    if (d == NULL || (v == NULL && n > 0) || n < 0) {
        nn_set_error("nn_dist_allreduce_sum: %s", d == NULL ? "d is NULL" : "bad vector");
        return -1;
    }
    if (dead(d, "nn_dist_allreduce_sum"))
        return -1;
    if (n == 0)
        return 0;
    rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm, &req);
    if (rc != MPI_SUCCESS) {
        fail_mpi(d, rc, "nn_dist_allreduce_sum");
        return -1;
    }
    return wait_all(d, 1, &req, "nn_dist_allreduce_sum");
}

int nn_dist_exit(nn_dist *d, int status)
{
    int initialized = 0, finalized = 0, size = 1, failed = d ? d->failed : 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized) {
        nn_dist_detach(d);
        return status;
    }
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (failed || (status != 0 && size > 1)) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
    }
    nn_dist_detach(d);
    MPI_Finalize();
    return status;
}

void nn_dist_get_stats(const nn_dist *d, nn_dist_stats *s)
{
    memset(s, 0, sizeof *s);
    if (d == NULL)
        return;
    s->steps = d->steps;
    s->wait_seconds = d->wait;
    s->bytes_per_step = sizeof(float) * d->grad_floats;
    s->buckets = d->nb;
    s->buckets_early = d->early;
}

/* ---- DistributedSampler ------------------------------------------------------- */

int64_t nn_dist_num_samples(int64_t n, int replicas)
{
    if (n < 1 || replicas < 1)
        return 0;
    return (n + replicas - 1) / replicas;
}

int64_t nn_dist_sampler_indices(uint64_t seed, int64_t epoch, int64_t n, int replicas,
                                int rank, int64_t *out, int64_t *perm)
{
    int64_t count, i, *p = perm;
    if (n < 1 || replicas < 1 || rank < 0 || rank >= replicas || out == NULL) {
        nn_set_error("nn_dist_sampler_indices: %s",
                     n < 1 ? "n < 1: an empty data set"
                     : replicas < 1 ? "replicas < 1"
                     : out == NULL ? "out is NULL"
                                   : "rank outside [0, replicas)");
        return -1;
    }
    if (p == NULL && (p = malloc(sizeof *p * (size_t)n)) == NULL) {
        nn_set_error("nn_dist_sampler_indices: out of memory");
        return -1;
    }
    /* g.manual_seed(self.seed + self.epoch); randperm(len(dataset), generator=g) */
    nn_randperm(seed + (uint64_t)epoch, n, p);
    count = nn_dist_num_samples(n, replicas);
    /* indices += indices[:padding] (repeated as often as needed), then
       indices[rank:total_size:num_replicas]: position rank + i * replicas
       of the padded list is p[(rank + i * replicas) mod n] */
    for (i = 0; i < count; i++)
        out[i] = p[((int64_t)rank + i * (int64_t)replicas) % n];
    if (p != perm)
        free(p);
    return count;
}
