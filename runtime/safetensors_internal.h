/* nngen-rt internal: the safetensors core (safetensors.c, ISO C) as the
 * file versions (safetensors_file.c) call it.  Messages are prefixed with
 * label ("PATH" for the files). */
#ifndef NNGEN_SAFETENSORS_INTERNAL_H
#define NNGEN_SAFETENSORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <nngen/rt.h>

/* nn_load_mem with a label: 0, or -1 with the model untouched. */
int nn__st_load(nn_model *m, const unsigned char *buf, size_t len, const char *label);
/* Given the first n >= ST_HEAD bytes of a file: 1 (and nn_error() set,
   with the message nn__st_load gives for the whole file) when the header
   length alone already rules the file out (absurd, or a torch.save file),
   so that the rest need not be read; else 0. */
#define ST_HEAD 4096
int nn__st_reject_start(const unsigned char *head, size_t n, const char *label);
/* nn_save_to with a label; fn NULL: only check the model and compute the
   size.  *total (if not NULL) gets the file's size in bytes. */
int nn__st_save(const nn_model *m, nn_write_fn fn, void *ctx, const char *label,
                uint64_t *total);

#endif
