/* probe.c: meson checks that clang can link a libFuzzer target with the
   sanitizers (tests/fuzz/meson.build); never built into anything. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}
