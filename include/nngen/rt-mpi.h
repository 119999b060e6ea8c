/* nngen-rt-mpi: data-parallel training over MPI, as PyTorch's
 * DistributedDataParallel does it (SPEC 1.9; docs/api.md "Data parallel
 * over MPI").  A separate library (pkg-config nngen-rt-mpi) on top of
 * nngen-rt; the generated code knows nothing of MPI: nn_dist_attach plugs
 * the model's train-step hooks (nn_model.hooks, <nngen/rt.h>).
 *
 *   MPI_Init(&argc, &argv);
 *   net = P_create(); P_init(net, seed);
 *   d = nn_dist_attach(P_model(net), MPI_COMM_WORLD, NULL);  // collective
 *   if (!d) { fprintf(stderr, "%s\n", nn_error()); return nn_dist_exit(NULL, 1); }
 *   for (epoch ...) {
 *       nn_dist_sampler_indices(seed, epoch, n, W, r, idx);   // this rank's examples
 *       for (each local batch of B) loss = P_train_step_n(net, rows, x, y);
 *       if (isnan(loss) && nn_dist_failed(d)) ... nn_dist_exit(d, 1);
 *   }
 *   return nn_dist_exit(d, 0);   // detaches, MPI_Finalize (MPI_Abort after a failure)
 */
#ifndef NNGEN_RT_MPI_H
#define NNGEN_RT_MPI_H

#include <mpi.h>
#include <nngen/rt.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nn_dist nn_dist;

typedef struct nn_dist_options {
    /* Bucket caps in bytes, as DDP's bucket_cap_mb (0: NNGEN_MPI_BUCKET_BYTES
       from the environment, else 25 MiB) and its first bucket (0: 1 MiB, or
       the cap when that is smaller).  A bucket closes once it holds at least
       its cap (one tensor larger than the cap is a bucket alone). */
    size_t bucket_bytes;
    size_t first_bucket_bytes;
    /* Seconds any wait on the other ranks may last before the rank gives up
       and names the ranks that do not answer; < 0: NNGEN_MPI_TIMEOUT from
       the environment, else 300; 0: wait forever. */
    double timeout;
    /* 1 (DDP's default): buffers (batch norm statistics) follow rank 0's,
       broadcast at the start of every train step; 0: each rank keeps its own. */
    int broadcast_buffers;
} nn_dist_options;

/* Defaults: {0, 0, -1, 1}. */
void nn_dist_default_options(nn_dist_options *o);

/* Collective over comm: checks that every rank has the same model (name,
   tensor names, shapes, dtypes, layout), broadcasts rank 0's parameters and
   buffers to the others (DDP's constructor), lays the trainable parameters
   out in buckets (reverse parameter order) and sets m->hooks, so that
   P_train_step averages the gradients over the ranks before its optimizer
   step.  NULL on failure (every rank fails alike; nn_error() says why:
   another rank's model differs, out of memory, a rank does not answer).
   MPI must be initialized; comm is duplicated (the caller's stays free). */
nn_dist *nn_dist_attach(nn_model *m, MPI_Comm comm, const nn_dist_options *opt);
/* Removes the hooks and frees everything (local, not collective).  Detach
   (or nn_dist_exit) before destroying the instance: it reads m->hooks. */
void nn_dist_detach(nn_dist *d);

int nn_dist_rank(const nn_dist *d);
int nn_dist_size(const nn_dist *d);
/* 1 after a failure (a timeout, an MPI error): every later collective
   fails at once; nn_error() said why when it happened. */
int nn_dist_failed(const nn_dist *d);

/* Blocking collectives, for training loops written out by hand (P_forward,
   P_backward, an optimizer of the caller's): nn_dist_allreduce_grads
   averages every trainable parameter's gradient over the ranks (the same
   buckets and sums as the train step); nn_dist_sync_buffers copies rank
   0's buffers to every rank; nn_dist_allreduce_sum sums n doubles over the
   ranks in place (a loss, a count).  0, or -1 with nn_error(). */
int nn_dist_allreduce_grads(nn_dist *d);
int nn_dist_sync_buffers(nn_dist *d);
int nn_dist_allreduce_sum(nn_dist *d, double *v, int n);

/* Ends the process's MPI part: detaches d (may be NULL), then MPI_Finalize,
   or, after a failure (d failed, or status != 0 with more than one rank),
   MPI_Abort (a finalize would wait for ranks that are gone).  Returns
   status, for `return nn_dist_exit(d, status);` from main. */
int nn_dist_exit(nn_dist *d, int status);

/* DistributedSampler(dataset of n, num_replicas, rank, shuffle=True,
   seed, drop_last=False) after set_epoch(epoch): randperm(n) from a
   generator seeded with seed + epoch, padded by repeating its start up to a
   multiple of replicas, the indices rank, rank + replicas, ...; writes
   nn_dist_num_samples(n, replicas) = ceil(n / replicas) indices into out
   and returns that count; -1 (nn_error()) for n < 1, replicas < 1, rank
   outside [0, replicas), out NULL.  perm: n int64_t of scratch (NULL: it
   is allocated and freed here). */
int64_t nn_dist_num_samples(int64_t n, int replicas);
int64_t nn_dist_sampler_indices(uint64_t seed, int64_t epoch, int64_t n, int replicas,
                                int rank, int64_t *out, int64_t *perm);

/* What the train steps cost in communication, since attach. */
typedef struct nn_dist_stats {
    long steps;                /* train steps whose gradients were averaged */
    double wait_seconds;       /* time inside the waits for other ranks (pre_step,
                                  pre_forward's buffer broadcast) */
    size_t bytes_per_step;     /* gradient bytes each rank contributes to a step */
    int buckets;
    long buckets_early;        /* bucket allreduces that completed while backward was
                                  still running (overlapped), summed over the steps */
} nn_dist_stats;
void nn_dist_get_stats(const nn_dist *d, nn_dist_stats *s);

#ifdef __cplusplus
}
#endif
#endif
