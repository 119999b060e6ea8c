/* st_tool: nn_save / nn_load on a fixture, for test_safetensors_torch.py.
 *
 *   st_tool save FIXTURE OUT   reads the data block (data_floats words of
 *                              8 hex digits, IEEE-754 bits) from stdin and
 *                              saves it with nn_save
 *   st_tool load FIXTURE IN    nn_load into a fixture filled with a pattern;
 *                              prints "NAME BITS..." per tensor in table order
 * On failure: prints nn_error() to stdout and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

int main(int argc, char **argv)
{
    fx_model *fx;
    int rc = 0;
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
        size_t k;
        for (k = 0; k < fx->model.info->data_floats; k++) {
            unsigned long w;
            uint32_t w32;
            if (scanf("%8lx", &w) != 1) {
                fprintf(stderr, "st_tool: expected %zu values\n", fx->model.info->data_floats);
                return 2;
            }
            w32 = (uint32_t)w;
            memcpy(&fx->data[k], &w32, 4);
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
            int i;
            for (i = 0; i < fx->model.info->ntensors; i++) {
                const nn_tensor *t = &fx->model.tensors[i];
                int64_t j;
                printf("%s", t->name);
                for (j = 0; j < t->numel; j++) {
                    uint32_t w;
                    memcpy(&w, &t->data[j], 4);
                    printf(" %08lx", (unsigned long)w);
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
