/* data_tool: the runtime's data functions on the command line, for
 * test_data_torch.py (which runs the same in PyTorch 1.13).
 *
 *   data_tool order SEED N EPOCHS EVAL
 *       nn_rng seeded with SEED (torch.manual_seed), then per epoch the
 *       order of DataLoader(range(N), shuffle=True) (nn_epoch_order), one
 *       line of N indices; with EVAL 1, after each epoch one nn_loader_seed
 *       (iterating an unshuffled DataLoader); after the last epoch a line
 *       "next U64": nn_rng_u64 of what is left, to show where the stream is.
 *   data_tool randperm SEED N
 *       nn_randperm(SEED, N), one line.
 *   data_tool idx IMAGES LABELS LIMIT
 *       nn_dataset_load: "count C file_count F ndim D shape S0 S1 .. size Z",
 *       then each image as the hex bits of its floats, one line each, then
 *       the labels on one line; on failure "error: MESSAGE" and exit 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

static void print_order(const int64_t *p, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++)
        printf(i ? " %" PRId64 : "%" PRId64, p[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "order") == 0) {
        uint64_t seed = strtoull(argv[2], NULL, 0);
        int64_t n = strtoll(argv[3], NULL, 0);
        int epochs = atoi(argv[4]), eval = atoi(argv[5]), e;
        int64_t *p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
        nn_rng r;
        if (p == NULL)
            return 2;
        nn_rng_seed(&r, seed);
        for (e = 0; e < epochs; e++) {
            if (nn_epoch_order(&r, n, p) != 0) {
                printf("error: %s\n", nn_error());
                free(p);
                return 1;
            }
            print_order(p, n);
            if (eval)
                (void)nn_loader_seed(&r);
        }
        printf("next %" PRIu64 "\n", nn_rng_u64(&r));
        free(p);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "randperm") == 0) {
        int64_t n = strtoll(argv[3], NULL, 0);
        int64_t *p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
        if (p == NULL)
            return 2;
        nn_randperm(strtoull(argv[2], NULL, 0), n, p);
        print_order(p, n);
        free(p);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "idx") == 0) {
        nn_dataset d;
        int64_t i, j;
        int k;
        if (nn_dataset_load(&d, argv[2], argv[3], strtoll(argv[4], NULL, 0)) != 0) {
            printf("error: %s\n", nn_error());
            return 1;
        }
        printf("count %" PRId64 " file_count %" PRId64 " ndim %d shape", d.count, d.file_count,
               d.ndim);
        for (k = 0; k < d.ndim; k++)
            printf(" %" PRId64, d.shape[k]);
        printf(" size %" PRId64 "\n", d.size);
        for (i = 0; i < d.count; i++) {
            for (j = 0; j < d.size; j++) {
                uint32_t bits;
                memcpy(&bits, &d.images[i * d.size + j], 4);
                printf(j ? " %08" PRIx32 : "%08" PRIx32, bits);
            }
            printf("\n");
        }
        for (i = 0; i < d.count; i++)
            printf(i ? " %" PRId32 : "%" PRId32, d.labels[i]);
        printf("\n");
        nn_dataset_free(&d);
        return 0;
    }
    fprintf(stderr, "usage: data_tool order SEED N EPOCHS EVAL | randperm SEED N | "
                    "idx IMAGES LABELS LIMIT\n");
    return 2;
}
