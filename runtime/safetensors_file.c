/* nngen-rt: nn_load and nn_save, the file versions of nn_load_mem and
 * nn_save_to (safetensors.c): the same checks and the same messages, with
 * the path as their prefix.
 *
 * nn_load reads the whole file into one transient buffer (after a look at
 * its first 4 KiB: a header length that rules the file out stops there)
 * and hands it to the memory loader; the model is touched only when all of
 * it is valid.
 *
 * nn_save writes to PATH.tmp-PID-N (PID: the process id where there is
 * one) in the same directory and rename()s it over PATH, so a failure never
 * leaves a partial or clobbered file: the model is checked first (nothing
 * is created for a model that cannot be saved), and on any error the
 * temporary is removed.
 *
 * Portable ISO C (fopen, fread, fwrite, rename, remove), with one clearly
 * separated POSIX part (NN_POSIX, on by default on Unix-like systems; the
 * build may set it to 0) that adds what ISO C cannot say:
 *   - the temporary is created with O_EXCL (never an existing file) and
 *     fsync()ed before the rename, so that the new content is on disk
 *     before it replaces the old;
 *   - nn_load refuses what is not a regular file (a directory, a FIFO).
 * Without it the temporary is created with fopen("wb") after checking that
 * no file of that name can be opened (not atomic), nothing is synced
 * beyond fflush, and rename() must replace an existing target, as it does
 * on POSIX systems and newlib's (on a system whose rename() refuses to,
 * nn_save fails and the old file stays).
 */
#ifndef NN_POSIX
#if defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#define NN_POSIX 1
#else
#define NN_POSIX 0
#endif
#endif
#if NN_POSIX && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "safetensors_internal.h"

/* ------------------------------------------------------------------ */
/* The POSIX part                                                      */

#if NN_POSIX
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static long process_id(void)
{
    return (long)getpid();
}

/* A new file for writing; NULL (errno set, EEXIST if it exists) if not. */
static FILE *create_new(const char *name)
{
    FILE *f;
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666), err;
    if (fd < 0)
        return NULL;
    f = fdopen(fd, "wb");
    if (f == NULL) {
        err = errno;
        close(fd);
        remove(name);
        errno = err;
    }
    return f;
}

/* After fflush: the data on the device. */
static int sync_file(FILE *f)
{
    return fsync(fileno(f));
}

/* 0 if f is a regular file (*size: its size, a hint for the reading); -1
   with the message set if not. */
static int check_regular(FILE *f, const char *path, size_t *size)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        nn_set_error("%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        nn_set_error("%s: not a regular file", path);
        return -1;
    }
    *size = st.st_size > 0 && (unsigned long long)st.st_size < (size_t)-1 ? (size_t)st.st_size : 0;
    return 0;
}

#else /* ISO C only */

static long process_id(void)
{
    return 0;
}

static FILE *create_new(const char *name)
{
    FILE *f = fopen(name, "rb");
    if (f != NULL) {
        fclose(f);
        errno = EEXIST;
        return NULL;
    }
    return fopen(name, "wb");
}

static int sync_file(FILE *f)
{
    (void)f;
    return 0;
}

static int check_regular(FILE *f, const char *path, size_t *size)
{
    (void)f;
    (void)path;
    *size = 0;
    return 0;
}

#endif

/* ------------------------------------------------------------------ */
/* nn_load                                                             */

/* errno's text after a failed stdio call; C does not promise that errno
   is set, so "end of file" or "I/O error" when it is not. */
static const char *io_error(FILE *f, int err)
{
    if (!ferror(f))
        return "end of file";
    return err ? strerror(err) : "I/O error";
}

int nn_load(nn_model *m, const char *path)
{
    FILE *f;
    unsigned char *buf = NULL, *nb;
    size_t len = 0, cap = ST_HEAD, got, hint = 0, next;
    int rc = -1;

    f = fopen(path, "rb");
    if (f == NULL) {
        nn_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (check_regular(f, path, &hint) != 0)
        goto out;
    buf = (unsigned char *)malloc(cap);
    if (buf == NULL) {
        nn_set_error("%s: out of memory", path);
        goto out;
    }
    /* the first ST_HEAD bytes (enough to tell a torch.save file by its
       first member's name), then the rest in doubling pieces */
    for (;;) {
        errno = 0;
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) {
            if (ferror(f)) {
                nn_set_error("%s: read error: %s", path, io_error(f, errno));
                goto out;
            }
            break;  /* end of file */
        }
        if (cap == ST_HEAD && nn__st_reject_start(buf, len, path))
            goto out;
        if (cap > ((size_t)-1) / 2) {
            nn_set_error("%s: too large to read into memory", path);
            goto out;
        }
        /* the size the system reported and one byte more (to see the end
           in the same read), else twice as much */
        next = hint >= cap ? hint + 1 : cap < 65536 ? 65536 : cap * 2;
        nb = (unsigned char *)realloc(buf, next);
        if (nb == NULL) {
            nn_set_error("%s: out of memory (%llu bytes read)", path, (unsigned long long)len);
            goto out;
        }
        buf = nb;
        cap = next;
    }
    rc = nn__st_load(m, buf, len, path);
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* nn_save                                                             */

typedef struct file_out {
    FILE *f;
    int err;                 /* errno of the failed write, 0 if none */
} file_out;

static int file_write(void *ctx, const void *p, size_t n)
{
    file_out *o = (file_out *)ctx;
    errno = 0;
    if (fwrite(p, 1, n, o->f) == n)
        return 0;
    o->err = errno;
    return -1;
}

int nn_save(const nn_model *m, const char *path)
{
    static unsigned long counter;
    size_t plen = strlen(path);
    char *tmp;
    file_out o = {NULL, 0};
    int i, err = 0;

    /* the model first: no file for a model that cannot be saved */
    if (nn__st_save(m, NULL, NULL, path, NULL) != 0)
        return -1;
    tmp = (char *)malloc(plen + 64);
    if (tmp == NULL) {
        nn_set_error("%s: out of memory", path);
        return -1;
    }
    for (i = 0; i < 1000; i++) {
        sprintf(tmp, "%s.tmp-%ld-%lu", path, process_id(), counter++);
        errno = 0;
        o.f = create_new(tmp);
        if (o.f != NULL || errno != EEXIST)
            break;
    }
    if (o.f == NULL) {
        nn_set_error("%s: cannot create %s: %s", path, tmp,
                     errno ? strerror(errno) : "cannot open for writing");
        free(tmp);
        return -1;
    }
    if (nn__st_save(m, file_write, &o, path, NULL) != 0) {
        if (o.err == 0 && !ferror(o.f)) {   /* not a write error: keep its message */
            fclose(o.f);
            remove(tmp);
            free(tmp);
            return -1;
        }
        err = o.err;
        goto fail;
    }
    errno = 0;
    if (fflush(o.f) != 0 || sync_file(o.f) != 0) {
        err = errno;
        goto fail;
    }
    errno = 0;
    if (fclose(o.f) != 0) {
        o.f = NULL;
        err = errno;
        goto fail;
    }
    o.f = NULL;
    errno = 0;
    if (rename(tmp, path) != 0) {
        err = errno;
        remove(tmp);
        nn_set_error("%s: cannot replace it with %s: %s", path, tmp,
                     err ? strerror(err) : "rename failed");
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;

fail:
    if (o.f != NULL)
        fclose(o.f);
    remove(tmp);
    nn_set_error("%s: write error: %s", path, err ? strerror(err) : "short write");
    free(tmp);
    return -1;
}
