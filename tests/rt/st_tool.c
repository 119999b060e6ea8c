/* st_tool: nn_save / nn_load on a fixture, for test_safetensors_torch.py.
 *
 *   st_tool save FIXTURE OUT   reads every tensor's values, in table order,
 *                              from stdin (words of hex digits: 8 for a
 *                              float32's IEEE-754 bits or an int32, 16 for
 *                              an int64's two's complement) and saves them
 *                              with nn_save
 *   st_tool load FIXTURE IN    nn_load into a fixture filled with a pattern;
 *                              prints "NAME WORDS..." per tensor in table
 *                              order, the words as save reads them
 * On failure: prints nn_error() to stdout and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

/* Bytes an element of t's storage. */
static size_t elem_size(const nn_tensor *t)
{
    return t->dtype == NN_I64 ? 8 : 4;
}

int main(int argc, char **argv)
{
    fx_model *fx;
    int rc = 0, i;
    if (argc != 4) {
        fprintf(stderr, "usage: st_tool save|load FIXTURE FILE\n");
        return 2;
    }
    fx = fx_new_named(argv[2]);
    if (fx == NULL) {
        fprintf(stderr, "st_tool: unknown fixture %s\n", argv[2]);
        return 2;
    }
    if (strcmp(argv[1], "save") == 0) {
        for (i = 0; i < fx->model.info->ntensors; i++) {
            nn_tensor *t = &fx->model.tensors[i];
            int64_t j;
            for (j = 0; j < t->numel; j++) {
                unsigned long long w;
                if (scanf("%16llx", &w) != 1) {
                    fprintf(stderr, "st_tool: expected the values of %s\n", t->name);
                    return 2;
                }
                if (elem_size(t) == 8) {
                    uint64_t w64 = (uint64_t)w;
                    memcpy((char *)t->data + 8 * j, &w64, 8);
                } else {
                    uint32_t w32 = (uint32_t)w;
                    memcpy((char *)t->data + 4 * j, &w32, 4);
                }
            }
        }
        if (nn_save(&fx->model, argv[3]) != 0) {
            printf("%s\n", nn_error());
            rc = 1;
        }
    } else if (strcmp(argv[1], "load") == 0) {
        fx_fill(fx, 4242);
        if (nn_load(&fx->model, argv[3]) != 0) {
            printf("%s\n", nn_error());
            rc = 1;
        } else {
            for (i = 0; i < fx->model.info->ntensors; i++) {
                const nn_tensor *t = &fx->model.tensors[i];
                int64_t j;
                printf("%s", t->name);
                for (j = 0; j < t->numel; j++) {
                    if (elem_size(t) == 8) {
                        uint64_t w;
                        memcpy(&w, (const char *)t->data + 8 * j, 8);
                        printf(" %016llx", (unsigned long long)w);
                    } else {
                        uint32_t w;
                        memcpy(&w, (const char *)t->data + 4 * j, 4);
                        printf(" %08lx", (unsigned long)w);
                    }
                }
                printf("\n");
            }
        }
    } else {
        fprintf(stderr, "st_tool: unknown command %s\n", argv[1]);
        rc = 2;
    }
    fx_free(fx);
    return rc;
}
