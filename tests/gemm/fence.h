/* tests/gemm: memory whose ends fault (test_gemm.c, test_vec_kernels.c).
 * POSIX: mmap, mprotect, sysconf; the includer defines _GNU_SOURCE or
 * _POSIX_C_SOURCE as it needs and includes <fcntl.h>, <math.h>,
 * <sys/mman.h> and <unistd.h>. */
#ifndef NNGEN_TESTS_FENCE_H
#define NNGEN_TESTS_FENCE_H

/* count floats that end where an inaccessible region of at least
   fence_bytes begins, after an inaccessible page and NaN; mapped from
   /dev/zero (POSIX, no MAP_ANONYMOUS needed).  *base, *len: for fence_free. */
static float *fence_alloc(size_t count, size_t fence_bytes, void **base, size_t *len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (count * sizeof(float) + pg - 1) / pg * pg;
    size_t fence = (fence_bytes + pg - 1) / pg * pg;
    if (fence < pg)
        fence = pg;
    size_t total = pg + data + fence;
    int fd = open("/dev/zero", O_RDWR);
    if (fd < 0)
        return NULL;
    char *b = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (b == MAP_FAILED)
        return NULL;
    if (mprotect(b, pg, PROT_NONE) != 0 || mprotect(b + pg + data, fence, PROT_NONE) != 0) {
        munmap(b, total);
        return NULL;
    }
    float *x = (float *)(void *)(b + pg + data) - count;
    for (float *q = (float *)(void *)(b + pg); q < x; q++)
        *q = NAN;
    *base = b;
    *len = total;
    return x;
}

static void fence_free(void *base, size_t len)
{
    if (base)
        munmap(base, len);
}

#endif
