#!/usr/bin/env python3
"""tests/gen: the generated code of every spec compiles without a warning.

For every SPEC.yaml given or under the given directories: nngen SPEC.yaml -o NAME.c,
also with --inference and, when the output calls nn_sgemm, with --no-blas
(both ways), then each C compiler (the build's, and clang if installed)
compiles NAME.c with

    -std=c99 -Wall -Wextra -Wpedantic -Werror                (docs/api.md)
    -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -Wshadow -Wconversion


--expect-blas / --expect-loops NAME,...: the generated file of that spec
does / does not call nn_sgemm (the rows*in*out >= 1024 rule); the gen
suite takes both lists from its table (gen_cases.py --expect).

usage: strict.py --nngen NNGEN --cc CC [--cc-arg ARG ...] --include DIR
                 [--blas-include DIR] [--expect-blas N,..] [--expect-loops N,..]
                 SPEC.yaml|SPECDIR...
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

# the default output, and the other kinds of output nngen can produce
VARIANTS = [[], ["--no-blas"], ["--inference"], ["--inference", "--no-blas"]]

# Flags left off for some variants (none now: the --inference -Wshadow
# warnings this once listed are fixed in the compiler).
KNOWN = {}

FLAG_SETS = [
    ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"],
    ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wshadow",
     "-Wconversion"],
]


# what the generated code calls for large layers (never with --no-blas):
# matrix products, and conv2d and sigmoid, which the runtime runs on them
RUNTIME_CALLS = ("nn_sgemm(", "nn_linear_forward(", "nn_conv2d_forward(", "nn_conv2d_backward(",
                 "nn_sigmoid_forward(", "nn_sigmoid_backward(", "nn_parallel_rows(", "nn_parallel(")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nngen", required=True)
    ap.add_argument("--cc", required=True, help="the C compiler (first word)")
    ap.add_argument("--cc-arg", action="append", default=[], help="more words of it")
    ap.add_argument("--include", required=True)
    ap.add_argument("--blas-include", default="")
    ap.add_argument("--expect-blas", default="")
    ap.add_argument("--expect-loops", default="")
    ap.add_argument("specdirs", nargs="+", help="spec files and directories of specs")
    a = ap.parse_args()

    compilers = [[a.cc] + a.cc_arg]
    clang = shutil.which("clang")
    cc_name = os.path.basename(a.cc)
    if clang and "clang" not in cc_name:
        compilers.append([clang])
    elif not clang:
        print("note: clang is not installed; only", " ".join(compilers[0]))

    specs = []
    for d in a.specdirs:
        if os.path.isfile(d):
            specs.append(d)
            continue
        if not os.path.isdir(d):
            print("no such spec or directory: %s" % d, file=sys.stderr)
            return 1
        for root, _, files in os.walk(d):
            specs += [os.path.join(root, f) for f in sorted(files) if f.endswith(".yaml")]
    specs.sort()
    if not specs:
        print("no specs found", file=sys.stderr)
        return 1

    failures = []
    incs = ["-I" + a.include] + (["-I" + a.blas_include] if a.blas_include else [])
    with tempfile.TemporaryDirectory(prefix="nngen-strict-") as tmp:
        units = []  # (label, path of .c)
        blas_of = {}
        for i, spec in enumerate(specs):
            stem = os.path.splitext(os.path.basename(spec))[0]
            for j, extra in enumerate(VARIANTS):
                if j and not blas_of.get(stem) and "--no-blas" in extra:
                    continue  # the same code as without --no-blas
                out = os.path.join(tmp, "%d-%d" % (i, j), stem + ".c")
                os.makedirs(os.path.dirname(out))
                r = subprocess.run([a.nngen, spec, "-o", out] + extra,
                                   capture_output=True, text=True)
                label = " ".join([spec] + extra)
                if r.returncode != 0:
                    failures.append("%s: nngen failed (%d):\n%s" % (label, r.returncode,
                                                                     r.stderr))
                    break
                with open(out) as f:
                    text = f.read()
                    uses_blas = any(c in text for c in RUNTIME_CALLS)
                if not extra:
                    blas_of[stem] = uses_blas
                elif "--no-blas" in extra and uses_blas:
                    failures.append("%s: the output calls the runtime's products" % label)
                units.append((label, out))

        for name in filter(None, (a.expect_blas + "," + a.expect_loops).split(",")):
            if name not in blas_of:
                failures.append("%s: named by --expect-blas/--expect-loops, but no spec of that name compiled" % name)
        for name in filter(None, a.expect_blas.split(",")):
            if not blas_of.get(name, True):
                failures.append("%s: expected nn_sgemm, got loops" % name)
        for name in filter(None, a.expect_loops.split(",")):
            if blas_of.get(name, False):
                failures.append("%s: expected loops, got nn_sgemm" % name)

        jobs = []  # (label, command, known issue: report only)
        for label, path in units:
            known = [f for k, fl in KNOWN.items() if k in label.split() for f in fl]
            for cc in compilers:
                for flags in FLAG_SETS:
                    cmd = cc + [f for f in flags if f not in known] + incs
                    jobs.append((label, cmd + ["-c", path, "-o", path + ".%d.o" % len(jobs)],
                                 False))
                if known:
                    jobs.append((label, cc + ["-std=c99", "-fsyntax-only"] + known + incs +
                                 [path], True))

        def run(job):
            label, cmd, known = job
            r = subprocess.run(cmd, capture_output=True, text=True)
            return label, cmd, known, r

        known_hits = {}
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
            for label, cmd, known, r in ex.map(run, jobs):
                if known:
                    if r.stderr.strip():
                        known_hits[label] = r.stderr
                elif r.returncode != 0 or r.stderr.strip():
                    failures.append("%s: %s\n%s" % (label, " ".join(cmd), r.stderr))

    print("%d specs, %d generated files, %d compilations with %s" % (
        len(specs), len(units), len(jobs), ", ".join(c[0] for c in compilers)))
    if known_hits:
        first = sorted(known_hits)[0]
        print("note: known issue, reported: %s in %d of the %s outputs, e.g. %s:\n%s" % (
            " ".join(f for fl in KNOWN.values() for f in fl), len(known_hits),
            "/".join(KNOWN), first, "\n".join(known_hits[first].splitlines()[:4])))
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
