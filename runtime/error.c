/* nngen-rt: last-error text.
 *
 * nn_set_error() formats into one static buffer and nn_error() returns it.
 * The buffer is process-wide, so this is NOT thread-safe: when several
 * threads call runtime functions that can fail (nn_save, nn_load), they must
 * serialize those calls or the message of one may be overwritten by another.
 * Messages longer than the buffer are truncated (never overflowed).
 */
#include <stdarg.h>
#include <stdio.h>

#include <nngen/rt.h>

#define NN_ERROR_CAP 1024

static char nn_error_buf[NN_ERROR_CAP];

const char *nn_error(void)
{
    return nn_error_buf;
}

void nn_set_error(const char *fmt, ...)
{
    va_list ap;
    if (fmt == NULL) {
        nn_error_buf[0] = '\0';
        return;
    }
    va_start(ap, fmt);
    if (vsnprintf(nn_error_buf, sizeof nn_error_buf, fmt, ap) < 0)
        nn_error_buf[0] = '\0';
    va_end(ap);
}
