/* dumpcat: unit-test helper for the conformance driver's dump parser.
 *
 *   dumpcat FILE                 parse FILE, print it again in canonical form
 *   dumpcat FILE NAME NUMEL      the single-tensor loader used for x/dy/target
 *
 * Exit 0 when the input is well-formed, 1 with PATH:LINE: MESSAGE otherwise.
 */
#include "dump.h"

static void put(const char *name, const float *v, size_t n)
{
    size_t i;
    printf("%s %lu\n", name, (unsigned long)n);
    for (i = 0; i < n; i++)
        printf("%a\n", (double)v[i]);
}

int main(int argc, char **argv)
{
    size_t i;
    cf_prog = "dumpcat";
    if (argc == 2) {
        cf_dump d;
        cf_dump_load(&d, argv[1]);
        for (i = 0; i < d.n; i++) {
            if (d.e[i].none)
                printf("%s none\n", d.e[i].name);
            else
                put(d.e[i].name, d.e[i].vals, d.e[i].numel);
        }
        cf_dump_free(&d);
    } else if (argc == 4) {
        char *ep;
        unsigned long n = strtoul(argv[3], &ep, 10);
        float *v;
        if (*ep || !*argv[3])
            cf_die("bad count %s%s", argv[3], "");
        v = cf_load_single(argv[1], argv[2], (size_t)n);
        put(argv[2], v, (size_t)n);
        free(v);
    } else {
        fprintf(stderr, "usage: dumpcat FILE [NAME NUMEL]\n");
        return 2;
    }
    if (fflush(stdout) != 0)
        return 1;
    return 0;
}
