/* nngen benchmark driver: times one generated network (train step, forward,
 * and each phase of a train step), or OpenBLAS's sgemm peak.
 *
 * Built by bench/run.py once per network and flag set:
 *   cc -std=c99 FLAGS -I include -I WORK -DNET=P -DNET_HEADER='"P.h"' [-DLOSS_CE]
 *      bench/driver.c WORK/P.c build/runtime/libnngen-rt.a -lopenblas -lm -lpthread
 * Without -DNET it is the peak-only driver (still linked with libnngen-rt.a,
 * for nn_sgemm).
 *
 * Usage:
 *   driver peak [SCALE [WHICH]]  sgemm GFLOP/s for a few shapes (SCALE=1 full,
 *                                 smaller for --check), of cblas_sgemm (OpenBLAS,
 *                                 OPENBLAS_NUM_THREADS threads) and of the
 *                                 runtime's nn_sgemm (NNGEN_NUM_THREADS threads),
 *                                 same shapes and data; WHICH = both (default),
 *                                 cblas or nn (run.py runs each in its own
 *                                 process: the other library's idle threads
 *                                 may still spin for a while after a call).
 *                                 nn also prints nn_sgemm_relerr_MxNxK: how far
 *                                 nn_sgemm's product is from one cblas_sgemm's,
 *                                 nn_sgemm_kernel_MxNxK: the kernel it ran,
 *                                 and the kernel choice (print_gemm_classes).
 *   driver bench MIN_S BATCHES [POOL]  time train step, forward, phases; one line
 *                                 "key median best" per result, seconds; then
 *                                 the runtime's kernel choice per product class
 *   driver loop MODE SECONDS     only MODE (train|forward|backward) in a loop,
 *                                 for perf record / valgrind
 * Every timing: warm-up, then BATCHES batches of n calls each (n chosen so a
 * batch lasts >= MIN_S / BATCHES), median of the per-call time of each batch.
 * The inputs cycle over a pool of POOL different random batches (random
 * targets; POOL is the 3rd bench argument, default 8) so that the network
 * does not memorize its data: the loss and the gradients stay O(1) instead
 * of collapsing towards tiny and denormal values over millions of steps.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include <nngen/rt.h>

#ifdef NET
#include NET_HEADER
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define N_(x) CAT(NET, x)
#ifdef LOSS_CE
typedef int32_t target_t;
#else
typedef float target_t;
#endif
#endif

/* OpenBLAS extensions (declared in its cblas.h, repeated for other headers) */
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);

static long POOL = 8;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rndf(void) /* roughly N(0,1): sum of 4 uniforms, rescaled */
{
    float s = 0.0f;
    for (int i = 0; i < 4; i++) s += (float)(rnd32() & 0xFFFFFF) / 16777216.0f;
    return (s - 2.0f) * 1.7320508f;
}

static long rss_bytes(void) /* current resident set, /proc/self/statm */
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * 4096L;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- generic timing: fn(i) is one call; returns median seconds per call ---- */
typedef void (*step_fn)(long i);

static double time_it(step_fn fn, double min_s, int batches, double *best)
{
    double t0, t, per[64], total = 0.0;
    long n = 1, i = 0;
    if (batches > 64) batches = 64;
    if (batches < 1) batches = 1;
    /* warm-up: at least 2 calls and ~5% of the budget; also calibrates n */
    t0 = now();
    do {
        fn(i++);
        t = now() - t0;
    } while (i < 2 || t < 0.05 * min_s);
    {
        double one = t / (double)i, want = min_s / batches;
        n = (long)(want / (one > 1e-9 ? one : 1e-9));
        if (n < 1) n = 1;
    }
    for (int b = 0; b < batches; b++) {
        t0 = now();
        for (long k = 0; k < n; k++) fn(i++);
        t = now() - t0;
        per[b] = t / (double)n;
        total += t;
    }
    (void)total;
    qsort(per, (size_t)batches, sizeof per[0], cmp_double);
    if (best) *best = per[0];
    printf("# %d batches x %ld calls\n", batches, n);
    return batches % 2 ? per[batches / 2] : 0.5 * (per[batches / 2 - 1] + per[batches / 2]);
}

/* ---- sgemm peak: cblas_sgemm and nn_sgemm, C = A B (row-major, no
   transposes, beta 0), same shapes and inputs ---- */
static float *gm_a, *gm_b, *gm_c;
static int gm_m, gm_n, gm_k;
static void gemm_call(long i)
{
    (void)i;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, gm_m, gm_n, gm_k, 1.0f,
                gm_a, gm_k, gm_b, gm_n, 0.0f, gm_c, gm_n);
}
static void nn_gemm_call(long i)
{
    (void)i;
    nn_sgemm(0, 0, gm_m, gm_n, gm_k, gm_a, gm_k, gm_b, gm_n, 0, gm_c, gm_n);
}

/* The runtime's kernel choice: its mode, the kernels of the convolutions
   and activations (nn_conv_impl), then one line per product class
   the process used ("gemm_class_I OP TA TB M N K TM TN TK KERNEL
   S_NNGEN S_CBLAS THREADS": the first call's shape, the shape timed, the
   kernel kept, each kernel's best time per call in seconds, 0 when not
   timed) */
static void print_gemm_classes(void)
{
    static const char *const ops[] = {"sgemm", "linear", "relu_mask"};
    nn_gemm_class cls[256];
    int n = nn_gemm_classes(cls, 256);
    printf("nn_gemm_mode %s\n", nn_gemm_mode());
    printf("nn_conv_impl %s\n", nn_conv_impl());
    printf("nn_gemm_measurements %ld\n", nn_gemm_measurements());
    for (int i = 0; i < n && i < 256; i++) {
        const nn_gemm_class *c = &cls[i];
        printf("gemm_class_%d %s %d %d %d %d %d %d %d %d %s %.6g %.6g %d\n", i,
               c->op >= 0 && c->op < 3 ? ops[c->op] : "?", c->trans_a, c->trans_b, c->m, c->n,
               c->k, c->tm, c->tn, c->tk, nn_gemm_kernel_name(c->kernel),
               c->seconds[NN_GEMM_NNGEN], c->seconds[NN_GEMM_CBLAS], c->threads);
    }
}

static void peak(double scale, int do_cblas, int do_nn)
{
    /* M, N, K */
    static const int shapes[][3] = {{1024, 1024, 1024}, {4096, 4096, 256}, {256, 4096, 4096}, {2048, 2048, 2048}};
    double best_cblas = 0.0, best_nn = 0.0;
    printf("openblas_config %s\n", openblas_get_config());
    printf("openblas_core %s\n", openblas_get_corename());
    printf("openblas_threads %d\n", openblas_get_num_threads());
    printf("nn_sgemm_impl %s\n", nn_sgemm_impl());
    printf("nn_threads %d\n", nn_num_threads());
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        double med, best, gf, min_s = scale >= 1.0 ? 0.4 : 0.02;
        gm_m = (int)(shapes[s][0] * scale);
        gm_n = (int)(shapes[s][1] * scale);
        gm_k = (int)(shapes[s][2] * scale);
        if (gm_m < 8) gm_m = 8;
        if (gm_n < 8) gm_n = 8;
        if (gm_k < 8) gm_k = 8;
        gm_a = malloc(sizeof(float) * (size_t)gm_m * gm_k);
        gm_b = malloc(sizeof(float) * (size_t)gm_k * gm_n);
        gm_c = malloc(sizeof(float) * (size_t)gm_m * gm_n);
        if (!gm_a || !gm_b || !gm_c) { fprintf(stderr, "out of memory\n"); exit(1); }
        for (size_t j = 0; j < (size_t)gm_m * gm_k; j++) gm_a[j] = rndf();
        for (size_t j = 0; j < (size_t)gm_k * gm_n; j++) gm_b[j] = rndf();
        if (do_cblas) {
            med = time_it(gemm_call, min_s, 5, &best);
            gf = 2.0 * gm_m * gm_n * gm_k / best * 1e-9;
            printf("cblas_sgemm_%dx%dx%d %.6g %.6g %.3f\n", gm_m, gm_n, gm_k, med, best, gf);
            if (gf > best_cblas) best_cblas = gf;
        }
        if (do_nn) {
            /* the timed nn_sgemm must compute the same product as one
               (untimed) cblas_sgemm: largest difference relative to the
               largest |element| of cblas's product */
            double dmax = 0.0, cmax = 0.0;
            float *ref = malloc(sizeof(float) * (size_t)gm_m * gm_n);
            if (!ref) { fprintf(stderr, "out of memory\n"); exit(1); }
            med = time_it(nn_gemm_call, min_s, 5, &best);
            gf = 2.0 * gm_m * gm_n * gm_k / best * 1e-9;
            printf("nn_sgemm_%dx%dx%d %.6g %.6g %.3f\n", gm_m, gm_n, gm_k, med, best, gf);
            printf("nn_sgemm_kernel_%dx%dx%d %s\n", gm_m, gm_n, gm_k,
                   nn_gemm_kernel_name(nn_gemm_last_kernel()));
            if (gf > best_nn) best_nn = gf;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, gm_m, gm_n, gm_k, 1.0f,
                        gm_a, gm_k, gm_b, gm_n, 0.0f, ref, gm_n);
            for (size_t j = 0; j < (size_t)gm_m * gm_n; j++) {
                double d = (double)gm_c[j] - (double)ref[j], r = ref[j] < 0 ? -ref[j] : ref[j];
                if (d < 0) d = -d;
                if (!(d <= dmax)) dmax = d; /* also catches NaN */
                if (r > cmax) cmax = r;
            }
            printf("nn_sgemm_relerr_%dx%dx%d %.3g\n", gm_m, gm_n, gm_k, cmax > 0 ? dmax / cmax : dmax);
            free(ref);
        }
        free(gm_a); free(gm_b); free(gm_c);
    }
    if (do_cblas) printf("peak_gflops_cblas %.3f\n", best_cblas);
    if (do_nn) {
        printf("peak_gflops_nn %.3f\n", best_nn);
        print_gemm_classes();
    }
}

#ifdef NET
static N_() *net;
/* INPUT_INT32=V: the input is indices in [0, V) (an embedding first) */
#ifdef INPUT_INT32
typedef int32_t input_t;
#else
typedef float input_t;
#endif
static input_t *xs;
static float *ys, *dys;
static target_t *ts;
static volatile float sink;

#define XS(i) (xs + (size_t)((i) % POOL) * N_(_BATCH) * N_(_IN_SIZE))
#define TS(i) (ts + (size_t)((i) % POOL) * N_(_BATCH) * TGT_PER_EX)
/* cross_entropy: CE_CLASSES classes (default the output size), so
   N_OUT_SIZE / CE_CLASSES labels per example ([N, T, V] outputs) */
#ifndef CE_CLASSES
#define CE_CLASSES N_(_OUT_SIZE)
#endif
#ifdef LOSS_CE
#define TGT_PER_EX (N_(_OUT_SIZE) / CE_CLASSES)
#else
#define TGT_PER_EX N_(_OUT_SIZE)
#endif

static void do_forward(long i) { N_(_forward)(net, XS(i), ys); }
#ifndef FORWARD_ONLY
static void do_train(long i) { sink = N_(_train_step)(net, XS(i), TS(i)); }
static void do_loss(long i) { sink = N_(_loss)(net, XS(i), TS(i)); }
static void do_backward(long i) { (void)i; N_(_backward)(net, dys, NULL); }
static void do_zero(long i) { (void)i; N_(_zero_grad)(net); }
#else
#define do_train NULL
#define do_backward NULL
#endif

static void report(const char *key, double med, double best)
{
    printf("%s %.9g %.9g\n", key, med, best);
    fflush(stdout);
}

static void setup(void)
{
    size_t nx = (size_t)POOL * N_(_BATCH) * N_(_IN_SIZE);
    size_t nt = (size_t)POOL * N_(_BATCH) * TGT_PER_EX;
    size_t ny = (size_t)N_(_BATCH) * N_(_OUT_SIZE);
    xs = malloc(sizeof *xs * nx);
    ts = malloc(sizeof *ts * nt);
    ys = malloc(sizeof *ys * ny);
    dys = malloc(sizeof *dys * ny);
    if (!xs || !ts || !ys || !dys) { fprintf(stderr, "out of memory\n"); exit(1); }
#ifdef INPUT_INT32
    for (size_t j = 0; j < nx; j++) xs[j] = (int32_t)(rnd32() % INPUT_INT32);
#else
    for (size_t j = 0; j < nx; j++) xs[j] = rndf();
#endif
#ifdef LOSS_CE
    for (size_t j = 0; j < nt; j++) ts[j] = (int32_t)(rnd32() % CE_CLASSES);
#else
    for (size_t j = 0; j < nt; j++) ts[j] = rndf();
#endif
    for (size_t j = 0; j < ny; j++) dys[j] = rndf() / (float)ny;
}

static void bench(double min_s, int batches)
{
    double med, best, t_train, t_loss, t_bwd, t_zero, b_train, b_loss, b_bwd, b_zero;
    long rss0, rss1;

    setup();
    /* memory: resident growth from before P_create to after 3 train steps */
    rss0 = rss_bytes();
    net = N_(_create)();
    if (!net) { fprintf(stderr, "create failed\n"); exit(1); }
    N_(_init)(net, 0);
#ifdef FORWARD_ONLY
    /* an inference build (nngen --inference): forward only */
#ifdef EVAL_FORWARD
    N_(_set_training)(net, 0);  /* the forward as a deployed model runs it */
#endif
    for (int k = 0; k < 3; k++) N_(_forward)(net, XS(k), ys);
    sink = ys[0];
    rss1 = rss_bytes();
    printf("pool %ld\n", POOL);
    printf("bytes %lu\n", (unsigned long)N_(_BYTES));
    printf("rss_delta %ld\n", rss1 - rss0);
    (void)med; (void)t_train; (void)t_loss; (void)t_bwd; (void)t_zero;
    (void)b_train; (void)b_loss; (void)b_bwd; (void)b_zero;
    med = time_it(do_forward, min_s, batches, &best);
    report("forward", med, best);
    printf("final_loss %.6g\n", (double)sink);
    print_gemm_classes();
    N_(_destroy)(net);
    return;
#else
    for (int k = 0; k < 3; k++) sink = N_(_train_step)(net, XS(k), TS(k));
    rss1 = rss_bytes();
    printf("pool %ld\n", POOL);
    printf("bytes %lu\n", (unsigned long)N_(_BYTES));
    printf("rss_delta %ld\n", rss1 - rss0);
    printf("loss_after_3 %.6g\n", (double)sink);

    t_train = time_it(do_train, min_s, batches, &b_train);
    report("train", t_train, b_train);
#ifdef EVAL_FORWARD
    N_(_set_training)(net, 0);  /* the forward as a deployed model runs it */
#endif
    med = time_it(do_forward, min_s, batches, &best);
    report("forward", med, best);
#ifdef EVAL_FORWARD
    N_(_set_training)(net, 1);
#endif
    /* phases of a train step, each on its own (same state, same data) */
    t_zero = time_it(do_zero, min_s / 4, batches, &b_zero);
    report("phase_zero_grad", t_zero, b_zero);
    t_loss = time_it(do_loss, min_s / 2, batches, &b_loss);
    report("phase_forward_loss", t_loss, b_loss);
    t_bwd = time_it(do_backward, min_s / 2, batches, &b_bwd);
    report("phase_backward", t_bwd, b_bwd);
    /* the optimizer step is static in the generated file: what remains */
    report("phase_opt_rest", t_train - t_zero - t_loss - t_bwd, b_train - b_zero - b_loss - b_bwd);
    printf("final_loss %.6g\n", (double)sink);
    print_gemm_classes();
    N_(_destroy)(net);
#endif
}
#endif

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "peak")) {
        const char *which = argc >= 4 ? argv[3] : "both";
        int c = !strcmp(which, "both") || !strcmp(which, "cblas");
        int n = !strcmp(which, "both") || !strcmp(which, "nn");
        if (!c && !n) { fprintf(stderr, "peak: WHICH is both, cblas or nn\n"); return 2; }
        peak(argc >= 3 ? atof(argv[2]) : 1.0, c, n);
        return 0;
    }
#ifdef NET
    if (argc >= 4 && !strcmp(argv[1], "loop")) {
        /* for profilers: only this call, in a loop, for SECONDS */
        double min_s = atof(argv[3]), t0;
        long calls = 0;
        step_fn fn = !strcmp(argv[2], "train") ? (step_fn)do_train
                   : !strcmp(argv[2], "forward") ? (step_fn)do_forward
                   : !strcmp(argv[2], "backward") ? (step_fn)do_backward : (step_fn)NULL;
        if (!fn) { fprintf(stderr, "loop: train | forward | backward\n"); return 2; }
        setup();
        net = N_(_create)();
        if (!net) { fprintf(stderr, "create failed\n"); return 1; }
        N_(_init)(net, 0);
        t0 = now();
        while (now() - t0 < min_s)
            for (int k = 0; k < 16; k++) fn(calls++);
        printf("%s %.9g per call, %ld calls\n", argv[2], (now() - t0) / (double)calls, calls);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "bench")) {
        if (argc >= 5 && atol(argv[4]) > 0) POOL = atol(argv[4]);
        bench(atof(argv[2]), atoi(argv[3]));
        return 0;
    }
#endif
    fprintf(stderr, "usage: %s peak [SCALE [both|cblas|nn]] | bench MIN_SECONDS BATCHES [POOL]"
#ifdef NET
            " | loop MODE SECONDS"
#endif
            "\n", argv[0]);
    return 2;
}
