/* cnames.c: names the spec's `name:` must not take.  The name is a C
 * identifier that becomes the type `P` and the prefix of every generated
 * symbol (P_create, P_BATCH, ...), so it must not be a C or C++ keyword, a
 * name that the generated file's headers declare (<stdint.h>, <stdio.h>,
 * <stddef.h> through <nngen/rt.h>; <math.h>, <stdlib.h>, <string.h>), one
 * of the runtime's (nn, nn_*, NN_*), or a name the generated file uses for
 * its own statics, macros and locals.  tests/bad/test_names.py checks every
 * identifier of generated code against this. */
#include <string.h>

#include "nngen.h"

static const char *const keywords[] = {
    /* C99, C11, C23 */
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic",
    "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local", "alignas", "alignof", "bool", "constexpr", "false", "nullptr",
    "static_assert", "thread_local", "true", "typeof", "typeof_unqual", "_BitInt",
    "_Decimal32", "_Decimal64", "_Decimal128",
    /* C++ (the header has extern "C" for C++ users) */
    "and", "and_eq", "asm", "bitand", "bitor", "catch", "char8_t", "char16_t", "char32_t",
    "class", "compl", "concept", "consteval", "constinit", "const_cast", "co_await",
    "co_return", "co_yield", "decltype", "delete", "dynamic_cast", "explicit", "export",
    "friend", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "operator", "or",
    "or_eq", "private", "protected", "public", "reinterpret_cast", "requires", "static_cast",
    "template", "this", "throw", "try", "typeid", "typename", "using", "virtual", "wchar_t",
    "xor", "xor_eq",
};

static const char *const library[] = {
    /* <stddef.h>, <stdint.h> (types ending in _t are refused as a class) */
    "NULL", "offsetof", "max_align_t",
    /* <stdio.h> */
    "FILE", "EOF", "BUFSIZ", "FILENAME_MAX", "FOPEN_MAX", "L_tmpnam", "TMP_MAX", "SEEK_SET",
    "SEEK_CUR", "SEEK_END", "stdin", "stdout", "stderr", "remove", "rename", "tmpfile",
    "tmpnam", "fclose", "fflush", "fopen", "freopen", "setbuf", "setvbuf", "fprintf", "fscanf",
    "printf", "scanf", "snprintf", "sprintf", "sscanf", "vfprintf", "vfscanf", "vprintf",
    "vscanf", "vsnprintf", "vsprintf", "vsscanf", "fgetc", "fgets", "fputc", "fputs", "getc",
    "getchar", "gets", "putc", "putchar", "puts", "ungetc", "fread", "fwrite", "fgetpos",
    "fseek", "fsetpos", "ftell", "rewind", "clearerr", "feof", "ferror", "perror", "fdopen",
    "fileno", "getline", "getdelim", "dprintf", "popen", "pclose",
    /* <stdlib.h> */
    "EXIT_SUCCESS", "EXIT_FAILURE", "RAND_MAX", "MB_CUR_MAX", "atof", "atoi", "atol", "atoll",
    "strtod", "strtof", "strtold", "strtol", "strtoll", "strtoul", "strtoull", "rand", "srand",
    "aligned_alloc", "calloc", "free", "malloc", "realloc", "abort", "atexit", "at_quick_exit",
    "exit", "_Exit", "quick_exit", "getenv", "system", "bsearch", "qsort", "abs", "labs",
    "llabs", "div", "ldiv", "lldiv", "mblen", "mbtowc", "wctomb", "mbstowcs", "wcstombs",
    "posix_memalign", "setenv", "unsetenv", "mkstemp", "realpath",
    /* <string.h> */
    "memcpy", "memmove", "strcpy", "strncpy", "strcat", "strncat", "memcmp", "strcmp",
    "strcoll", "strncmp", "strxfrm", "memchr", "strchr", "strcspn", "strpbrk", "strrchr",
    "strspn", "strstr", "strtok", "memset", "strerror", "strlen", "strdup", "strndup",
    "strnlen", "strtok_r", "strerror_r", "stpcpy", "memccpy",
    /* <math.h> macros (the functions below, with their f and l forms) */
    "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "INFINITY", "NAN", "FP_INFINITE", "FP_NAN",
    "FP_NORMAL", "FP_SUBNORMAL", "FP_ZERO", "FP_FAST_FMA", "FP_FAST_FMAF", "FP_FAST_FMAL",
    "FP_ILOGB0", "FP_ILOGBNAN", "MATH_ERRNO", "MATH_ERREXCEPT", "math_errhandling",
    "fpclassify", "isfinite", "isinf", "isnan", "isnormal", "signbit", "isgreater",
    "isgreaterequal", "isless", "islessequal", "islessgreater", "isunordered", "M_PI", "M_E",
    "signgam",
    /* what else a C file commonly sees */
    "errno", "assert", "main",
};

static const char *const math_functions[] = {
    "acos", "asin", "atan", "atan2", "cos", "sin", "tan", "acosh", "asinh", "atanh", "cosh",
    "sinh", "tanh", "exp", "exp2", "expm1", "frexp", "ilogb", "ldexp", "log", "log10", "log1p",
    "log2", "logb", "modf", "scalbn", "scalbln", "cbrt", "fabs", "hypot", "pow", "sqrt", "erf",
    "erfc", "lgamma", "tgamma", "ceil", "floor", "nearbyint", "rint", "lrint", "llrint",
    "round", "lround", "llround", "trunc", "fmod", "remainder", "remquo", "copysign", "nan",
    "nextafter", "nexttoward", "fdim", "fmax", "fmin", "fma", "j0", "j1", "jn", "y0", "y1",
    "yn", "gamma", "drem", "finite", "significand",
};

/* Names the generated .c declares at file scope besides its P_ names: its
   static functions and macros.  (Its locals and parameters cannot collide:
   function bodies name the type as `struct P`.) */
static const char *const generated[] = {
    "fwd", "bwd", "loss_fn", "forward_rows", "loss_rows", "step_rows", "HEADER_BYTES",
    "DATA_FLOATS", "GRAD_FLOATS", "ACT_FLOATS", "SCRATCH_FLOATS", "PING", "OPT_FLOATS",
    "DY_FLOATS", "VGRAD_FLOATS", "PASS",
};

static int in_list(const char *s, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, v[i]))
            return 1;
    return 0;
}

#define IN(s, v) in_list(s, v, sizeof v / sizeof v[0])

/* name is f<digits>, b<digits>, opt<digits> or opt<digits>_part: the
   generated file's kernels */
static int kernel_name(const char *s)
{
    const char *d = !strncmp(s, "opt", 3) ? s + 3 : (*s == 'f' || *s == 'b') ? s + 1 : NULL;
    if (!d || !*d)
        return 0;
    while (*d >= '0' && *d <= '9')
        d++;
    return !*d || (s[0] == 'o' && !strcmp(d, "_part") && d > s + 3);
}

const char *reserved_name_reason(const char *s)
{
    size_t len = strlen(s);
    if (IN(s, keywords))
        return "it is a C or C++ keyword";
    if (IN(s, library))
        return "the C library declares it (a header the generated file includes)";
    for (size_t i = 0; i < sizeof math_functions / sizeof math_functions[0]; i++) {
        size_t m = strlen(math_functions[i]);
        if (!strncmp(s, math_functions[i], m) &&
            (!s[m] || ((s[m] == 'f' || s[m] == 'l') && !s[m + 1])))
            return "<math.h> declares it (the generated file includes it)";
    }
    if (len > 2 && !strcmp(s + len - 2, "_t"))
        return "names ending in _t are the C library's and POSIX's types";
    if (s[0] == '_')
        return "names starting with '_' are reserved to the C implementation";
    if (!strcmp(s, "nn") || !strncmp(s, "nn_", 3) || !strncmp(s, "NN_", 3) ||
        !strcmp(s, "NNGEN") || !strncmp(s, "NNGEN_", 6))
        return "nn, nn_*, NN_* and NNGEN_* are the runtime's (nngen/rt.h)";
    if (IN(s, generated) || kernel_name(s))
        return "the generated file uses this name for its own functions, macros or variables";
    return NULL;
}
