#!/usr/bin/python3
"""Every file of the smallest runtime compiles under plain ISO C99 with all
warnings as errors, without POSIX (meson suite 'deploy').

usage: strict_c99.py SOURCE_ROOT CC [CC ARGS...]

Compiles (-fsyntax-only) each runtime source of the build without BLAS and
threads (runtime/meson.build's rt_minimal_sources) with
    CC -std=c99 -Wall -Wextra -Wpedantic -Werror -DNN_THREADS=0 -DNN_HAVE_CBLAS=0
and no feature-test macro (the project's -D_POSIX_C_SOURCE is not given):
what a C99 compiler for a microcontroller sees.  safetensors_file.c twice:
with its POSIX part on this Unix (it defines _POSIX_C_SOURCE itself) and
with -DNN_POSIX=0 (ISO C only).  The threaded pool (pool_threads.c) is POSIX
by nature and compiles with -D_POSIX_C_SOURCE=200809L; gemm_cblas.c needs
<cblas.h> and is compiled when the header is there.  Exit 1 on any
diagnostic.
"""
import os
import subprocess
import sys

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"]
MINIMAL = ["error.c", "model.c", "print.c", "rng.c", "init.c", "safetensors.c",
           "safetensors_file.c", "gemm.c", "conv.c", "act.c", "gemm_portable.c",
           "pool_serial.c"]


def main():
    root, cc = sys.argv[1], sys.argv[2:]
    rt = os.path.join(root, "runtime")
    inc = ["-I", os.path.join(root, "include")]
    cases = [(f, ["-DNN_THREADS=0", "-DNN_HAVE_CBLAS=0"]) for f in MINIMAL]
    cases.append(("safetensors_file.c", ["-DNN_POSIX=0"]))
    cases.append(("pool_threads.c", ["-D_POSIX_C_SOURCE=200809L"]))
    cases.append(("gemm_cblas.c", ["-D_POSIX_C_SOURCE=200809L"]))
    bad = 0
    for f, defs in cases:
        cmd = cc + STRICT + defs + inc + [os.path.join(rt, f)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if f == "gemm_cblas.c" and p.returncode != 0 and "cblas.h" in p.stdout and \
                "No such file" in p.stdout:
            print("SKIP runtime/%s: no <cblas.h> here" % f)
            continue
        ok = p.returncode == 0 and not p.stdout.strip()
        print("%s runtime/%s %s" % ("PASS" if ok else "FAIL", f, " ".join(defs)))
        if not ok:
            print("  " + " ".join(cmd) + "\n" + p.stdout)
            bad += 1
    print("%d of %d compilations clean" % (len(cases) - bad, len(cases)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
