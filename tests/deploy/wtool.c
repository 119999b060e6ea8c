/* The C side of torch_roundtrip.py, for one generated network (built with
 * -DNET_H='"net.h"' -DNET=name):
 *
 *   wtool IN.safetensors OUT.safetensors X.bin Y.bin
 *       loads IN into a new instance (P_init with another seed first, so
 *       that every value must come from the file) with nn_load, and the same
 *       bytes into a second instance with nn_load_mem (both must succeed and
 *       agree bit for bit); in eval mode, runs P_forward on X.bin (P_BATCH *
 *       P_IN_SIZE little-endian floats) and writes Y.bin; saves with nn_save
 *       to OUT and checks that nn_save_mem gives the same bytes.
 *   wtool --load FILE
 *       nn_load of FILE: exit 0, or 2 with nn_error() on standard output.
 *
 * Exit status 1 on any other failure, with the reason on standard error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include NET_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define P(s) CAT(NET, s)

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long len;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (p = malloc((size_t)len + 1)) == NULL ||
        fread(p, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "wtool: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void die(const char *what)
{
    fprintf(stderr, "wtool: %s: %s\n", what, nn_error());
    exit(1);
}

int main(int argc, char **argv)
{
    static float x[P(_BATCH) * P(_IN_SIZE)], y[P(_BATCH) * P(_OUT_SIZE)];
    P() *a, *b;
    nn_model *ma, *mb;
    unsigned char *in, *out, *mem;
    size_t nin, nout, nmem = 0;
    int i;
    FILE *f;

    if (argc == 3 && strcmp(argv[1], "--load") == 0) {
        a = P(_create)();
        if (a == NULL)
            return 1;
        int rc = nn_load(P(_model)(a), argv[2]) != 0 ? 2 : 0;
        if (rc)
            printf("%s\n", nn_error());
        P(_destroy)(a);
        return rc;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: wtool IN.safetensors OUT.safetensors X.bin Y.bin\n"
                        "       wtool --load FILE\n");
        return 1;
    }
    a = P(_create)();
    b = P(_create)();
    if (a == NULL || b == NULL)
        return 1;
    ma = P(_model)(a);
    mb = P(_model)(b);
    P(_init)(a, 12345);
    P(_init)(b, 54321);
    if (nn_load(ma, argv[1]) != 0)
        die("nn_load");
    in = slurp(argv[1], &nin);
    if (nn_load_mem(mb, in, nin) != 0)
        die("nn_load_mem");
    for (i = 0; i < ma->info->ntensors; i++) {
        const nn_tensor *t = &ma->tensors[i];
        size_t bytes = (size_t)t->numel * (t->dtype == NN_I64 ? 8 : 4);
        if (memcmp(t->data, mb->tensors[i].data, bytes) != 0) {
            fprintf(stderr, "wtool: nn_load and nn_load_mem differ in %s\n", t->name);
            return 1;
        }
    }

    f = fopen(argv[3], "rb");
    if (f == NULL || fread(x, sizeof x, 1, f) != 1) {
        fprintf(stderr, "wtool: cannot read %s\n", argv[3]);
        return 1;
    }
    fclose(f);
    P(_set_training)(a, 0);
    P(_forward)(a, x, y);
    f = fopen(argv[4], "wb");
    if (f == NULL || fwrite(y, sizeof y, 1, f) != 1 || fclose(f) != 0) {
        fprintf(stderr, "wtool: cannot write %s\n", argv[4]);
        return 1;
    }

    if (nn_save(ma, argv[2]) != 0)
        die("nn_save");
    out = slurp(argv[2], &nout);
    if (nn_save_mem(ma, NULL, 0, &nmem) != 0)
        die("nn_save_mem (size)");
    mem = malloc(nmem ? nmem : 1);
    if (mem == NULL || nn_save_mem(ma, mem, nmem, NULL) != 0)
        die("nn_save_mem");
    if (nmem != nout || memcmp(mem, out, nout) != 0) {
        fprintf(stderr, "wtool: nn_save_mem and nn_save wrote different bytes\n");
        return 1;
    }
    printf("loaded %s (%zu bytes, %d tensors), forward of %d examples, saved %s\n", argv[1],
           nin, ma->info->ntensors, P(_BATCH), argv[2]);
    free(in);
    free(out);
    free(mem);
    P(_destroy)(a);
    P(_destroy)(b);
    return 0;
}
