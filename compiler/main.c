/* main.c: nngen's entry point; the command line and the pipeline are in
 * cli.c (nngen_main), where tests and fuzzers can reach them in process. */
#include "nngen.h"

int main(int argc, char **argv)
{
    return nngen_main(argc, argv);
}
