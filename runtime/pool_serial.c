/* nngen-rt: the pool without threads (-Dthreads=disabled; pool_threads.c
 * otherwise): every share runs on the caller, nn_num_threads() is 1 and
 * nn_set_num_threads() changes nothing.  ISO C; where nngen's kernel is
 * built (x86-64, GCC or clang), an __atomic try-lock keeps two callers out
 * of its one packing buffer at once.  The once-per-process setup is a plain flag: in a
 * program with threads of its own, make the first call into the runtime's
 * products (nn_sgemm_impl() will do) before starting them.
 */
#include <nngen/rt.h>

#include "gemm_internal.h"

#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

static int set_up;
static int held;

void nn__setup(void)
{
    if (!set_up) {
        nn__gemm_setup();
        set_up = 1;
    }
}

void nn_set_num_threads(int n)
{
    (void)n;
    nn__setup();
}

int nn_num_threads(void)
{
    nn__setup();
    return 1;
}

int nn__pool_hold(int nt)
{
    (void)nt;
#if NN_HAVE_AVX512_KERNEL && defined(__GNUC__)
    if (__atomic_exchange_n(&held, 1, __ATOMIC_ACQUIRE))
        return 0;
#else
    if (held)
        return 0;
    held = 1;
#endif
    return 1;
}

void nn__pool_give(void)
{
#if NN_HAVE_AVX512_KERNEL && defined(__GNUC__)
    __atomic_store_n(&held, 0, __ATOMIC_RELEASE);
#else
    held = 0;
#endif
}

void nn__pool_run(nn_task_fn fn, void *ctx)
{
    fn(ctx, 0, 1);
}

void nn_parallel(void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    fn(ctx, 0, 1);
}
