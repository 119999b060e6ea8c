/* Random numbers with torch.manual_seed parity.
 *
 * The generator is ATen's CPU generator (aten/src/ATen/CPUGeneratorImpl.cpp)
 * driving at::mt19937 (aten/src/ATen/core/MT19937RNGEngine.h), reimplemented
 * here from the published MT19937 algorithm (Matsumoto & Nishimura, 2002):
 *
 *   - torch.manual_seed(s) seeds with the 64-bit seed s, but only its low
 *     32 bits enter the state (state[0] = s & 0xffffffff); the full value is
 *     only remembered (torch.initial_seed()).  The seed also drops any
 *     cached Box-Muller sample.
 *   - random() is one tempered 32-bit word; random64() is two words, the
 *     FIRST one in the high half.
 *
 * The distributions mirror aten/src/ATen/core/DistributionsHelper.h and
 * TransformationHelper.h as compiled into the torch 1.13 CPU kernels.
 *
 * Meaning of the nn_rng fields (see rt.h): state[] is the mt19937 state,
 * `left` is the index of the next state word to temper and return
 * (624 means "the block is used up: twist before the next draw"; this is
 * ATen's next_ counter; ATen's left_ equals 625 - left once a block is in
 * use).  `seed` is the full 64-bit seed, as torch.initial_seed() returns.
 */
#include <math.h>

#include <nngen/rt.h>

enum { MT_N = 624, MT_M = 397 };
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void nn_rng_seed(nn_rng *r, uint64_t seed)
{
    int j;
    r->seed = seed;
    r->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (j = 1; j < MT_N; j++) {
        uint32_t prev = r->state[j - 1];
        r->state[j] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)j;
    }
    r->left = MT_N; /* twist on the first draw, as ATen's left_ = 1 does */
    r->has_next_double_normal = 0;
    r->next_double_normal = 0.0;
    r->has_next_float_normal = 0;
    r->next_float_normal = 0.0f;
}

/* mt19937 state transition for a whole block of 624 words (ATen's
 * next_state): word k becomes word k+M xor the twist of (k, k+1). */
static uint32_t mt_mix(uint32_t u, uint32_t v)
{
    uint32_t y = (u & MT_UPPER) | (v & MT_LOWER);
    return (y >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_twist(uint32_t *s)
{
    int k;
    for (k = 0; k < MT_N - MT_M; k++)
        s[k] = s[k + MT_M] ^ mt_mix(s[k], s[k + 1]);
    for (; k < MT_N - 1; k++)
        s[k] = s[k + MT_M - MT_N] ^ mt_mix(s[k], s[k + 1]);
    s[MT_N - 1] = s[MT_M - 1] ^ mt_mix(s[MT_N - 1], s[0]);
}

uint32_t nn_rng_u32(nn_rng *r)
{
    uint32_t y;
    if (r->left < 0 || r->left >= MT_N) {
        mt_twist(r->state);
        r->left = 0;
    }
    y = r->state[r->left++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* CPUGeneratorImpl::random64(): first draw is the high word. */
uint64_t nn_rng_u64(nn_rng *r)
{
    uint64_t hi = nn_rng_u32(r);
    uint64_t lo = nn_rng_u32(r);
    return (hi << 32) | lo;
}

/* at::uniform_real_distribution<float>(from, to) on the CPU generator:
 * one 32-bit draw, its low 24 bits (float's mantissa digits) scaled by 2^-24
 * (exact), then x * (to - from) + from in float.  The torch 1.13 CPU kernel
 * (DistributionKernels.cpp, built for the AVX2 capability with -mfma and
 * GCC's default -ffp-contract=fast for C++) evaluates that last step as ONE
 * fused multiply-add; fmaf reproduces it on any machine.  to - from is
 * rounded to float first, exactly as in the kernel. */
float nn_rng_uniform(nn_rng *r, float from, float to)
{
    uint32_t bits = nn_rng_u32(r) & 0xffffffu;
    float x = (float)bits * (1.0f / 16777216.0f);
    float range = to - from;
    return fmaf(x, range, from);
}

/* at::uniform_real_distribution<double>(0, 1): one 64-bit draw, low 53 bits
 * scaled by 2^-53 (exact). */
static double uniform_double01(nn_rng *r)
{
    uint64_t bits = nn_rng_u64(r) & ((UINT64_C(1) << 53) - 1);
    return (double)bits * (1.0 / 9007199254740992.0);
}

/* at::normal_distribution<double>(mean, std) on the CPU generator: the
 * scalar path of torch's normal_ (tensors with fewer than 16 elements or
 * non-contiguous ones).  Box-Muller on two 64-bit draws; the sine sample
 * is cached in the generator and returned (then cleared) by the next call,
 * whatever mean/std that call has. */
double nn_rng_normal(nn_rng *r, double mean, double std)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1, u2, radius, theta, z;
    if (r->has_next_double_normal) {
        r->has_next_double_normal = 0;
        return fma(r->next_double_normal, std, mean);
    }
    u1 = uniform_double01(r);
    u2 = uniform_double01(r);
    radius = sqrt(-2.0 * log(1.0 - u2));
    theta = two_pi * u1;
    r->next_double_normal = radius * sin(theta);
    r->has_next_double_normal = 1;
    z = radius * cos(theta);
    return fma(z, std, mean);
}

/* ------------------------------------------------------------------ */
/* The epoch order of DataLoader(shuffle=True) (SPEC 1.8; tests/data/) */

/* random_() on an int64 tensor: uniform_int_distribution<int64_t> of
   ATen, one random64() reduced mod (INT64_MAX + 1). */
uint64_t nn_loader_seed(nn_rng *r)
{
    return nn_rng_u64(r) & (((uint64_t)1 << 63) - 1);
}

/* torch.randperm(n, generator=g) on the CPU, torch 1.13
   (aten/src/ATen/native/TensorFactories.cpp, randperm_cpu): the identity,
   then for i < n - 1 one 32-bit random() % (n - i) and a swap. */
void nn_randperm(uint64_t seed, int64_t n, int64_t *perm)
{
    nn_rng g;
    int64_t i;
    if (n <= 0 || perm == NULL)
        return;
    nn_rng_seed(&g, seed);
    for (i = 0; i < n; i++)
        perm[i] = i;
    for (i = 0; i < n - 1; i++) {
        int64_t z = (int64_t)(nn_rng_u32(&g) % (uint64_t)(n - i));
        int64_t t = perm[i];
        perm[i] = perm[i + z];
        perm[i + z] = t;
    }
}

int nn_epoch_order(nn_rng *r, int64_t n, int64_t *order)
{
    uint64_t sampler_seed;
    if (r == NULL || order == NULL) {
        nn_set_error("nn_epoch_order: %s is NULL", r == NULL ? "the generator" : "order");
        return -1;
    }
    if (n < 1) {
        nn_set_error("nn_epoch_order: n = %lld: a shuffled DataLoader needs at least one example",
                     (long long)n);
        return -1;
    }
    (void)nn_loader_seed(r);          /* iter(loader): _base_seed */
    sampler_seed = nn_loader_seed(r); /* first batch: RandomSampler's seed */
    nn_randperm(sampler_seed, n, order);
    return 0;
}
