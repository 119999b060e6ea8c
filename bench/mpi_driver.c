/* bench/mpi_driver.c: the time of a data-parallel train step (bench/mpi.py).
 *
 * Built by bench/mpi.py once per network:
 *   mpicc -std=c99 -O2 -I include -I WORK -DNET=P -DNET_HEADER='"P.h"' [-DLOSS_CE]
 *      bench/mpi_driver.c WORK/P.c build/runtime/libnngen-rt-mpi.a
 *      build/runtime/libnngen-rt.a -lopenblas -lz -lm -lpthread
 *
 *   mpirun -np W mpi_driver MODE STEPS WARMUP
 *     MODE plain: P_train_step_n without MPI hooks (W must be 1);
 *          dist:  nn_dist_attach'ed (gradients averaged over the W ranks).
 *   mpirun -np W mpi_driver allreduce REPS WARMUP
 *     MPI_Allreduce of the model's gradient block alone ("allreduce_median S"),
 *     after a barrier each time.
 * Each rank trains on its own random batches (a pool of 8, cycled).  Prints,
 * from rank 0: "step_median S", "step_mean S" (wall time per step after the
 * warm-up steps), "wait S" (rank 0's time inside nn-rt-mpi's waits per
 * step: the part of the step spent waiting for the other ranks and the
 * allreduce to finish after backward), "bytes N" (gradient bytes a rank
 * contributes per step), "buckets N", "early X" (buckets a step whose
 * allreduce finished while backward was still running: the overlap).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nngen/rt-mpi.h>

#include NET_HEADER
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define N_(x) CAT(NET, x)
#ifdef LOSS_CE
typedef int32_t target_t;
#define TPER 1
#else
typedef float target_t;
#define TPER N_(_OUT_SIZE)
#endif
#define POOL 8

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rank, world, dist, steps, warm, i, k;
    uint64_t s = 99;
    N_() *net;
    nn_dist *d = NULL;
    float *x;
    target_t *t;
    double *times, t0, sum = 0, wait0 = 0;
    long early0 = 0;
    nn_dist_stats st;
    size_t nx = (size_t)N_(_BATCH) * N_(_IN_SIZE), nt = (size_t)N_(_BATCH) * TPER;
    if (argc == 4 && !strcmp(argv[1], "allreduce")) {
        /* the collective alone: MPI_Allreduce of the gradient's bytes */
        int n = (int)(N_(_model)(N_(_create)())->info->grad_floats), reps = atoi(argv[2]);
        float *g = calloc((size_t)n + 1, sizeof *g);
        double *ts = malloc(sizeof *ts * (size_t)(reps + 1));
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        for (k = 0; k < atoi(argv[3]) + reps; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = now();
            MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (k >= atoi(argv[3]))
                ts[k - atoi(argv[3])] = now() - t0;
        }
        qsort(ts, (size_t)reps, sizeof *ts, cmp);
        if (rank == 0)
            printf("allreduce_median %.9g\nallreduce_bytes %zu\n", ts[reps / 2],
                   sizeof(float) * (size_t)n);
        MPI_Finalize();
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: mpi_driver plain|dist STEPS WARMUP | allreduce REPS WARMUP\n");
        return 2;
    }
    dist = !strcmp(argv[1], "dist");
    steps = atoi(argv[2]);
    warm = atoi(argv[3]);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    net = N_(_create)();
    N_(_init)(net, 0);
    if (dist) {
        d = nn_dist_attach(N_(_model)(net), MPI_COMM_WORLD, NULL);
        if (!d) {
            fprintf(stderr, "mpi_driver: %s\n", nn_error());
            return nn_dist_exit(NULL, 1);
        }
    }
    x = malloc(sizeof *x * nx * POOL);
    t = malloc(sizeof *t * nt * POOL);
    times = malloc(sizeof *times * (size_t)(steps + 1));
    for (i = 0; i < (int)(nx * POOL); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull + (uint64_t)rank;
        x[i] = (float)((double)(s >> 40) / (double)(1u << 24));
    }
    for (i = 0; i < (int)(nt * POOL); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
#ifdef LOSS_CE
        t[i] = (int32_t)((s >> 33) % (uint64_t)N_(_OUT_SIZE));
#else
        t[i] = (float)((double)(s >> 40) / (double)(1u << 24));
#endif
    }
    for (k = 0; k < warm + steps; k++) {
        float loss;
        if (k == warm) {
            MPI_Barrier(MPI_COMM_WORLD);
            nn_dist_get_stats(d, &st);
            wait0 = st.wait_seconds;
            early0 = st.buckets_early;
        }
        t0 = now();
        loss = N_(_train_step)(net, x + (size_t)(k % POOL) * nx, t + (size_t)(k % POOL) * nt);
        if (loss != loss) {
            fprintf(stderr, "mpi_driver: rank %d: %s\n", rank, nn_error());
            return nn_dist_exit(d, 1);
        }
        if (k >= warm) {
            times[k - warm] = now() - t0;
            sum += times[k - warm];
        }
    }
    nn_dist_get_stats(d, &st);
    qsort(times, (size_t)steps, sizeof *times, cmp);
    if (rank == 0)
        printf("step_median %.9g\nstep_mean %.9g\nwait %.9g\nbytes %zu\nbuckets %d\n"
               "early %.9g\n", times[steps / 2], sum / steps, (st.wait_seconds - wait0) / steps,
               st.bytes_per_step, st.buckets, (double)(st.buckets_early - early0) / steps);
    free(x);
    free(t);
    free(times);
    if (d)
        return nn_dist_exit(d, 0);
    MPI_Finalize();
    return 0;
}
