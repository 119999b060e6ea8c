"""--inference: for every spec, the forward-only code must compute exactly
what the training code computes (same kernels, reused buffers), compile under
the strict flags, and need no more bytes.
A spec with input_dtype: int32 (SPEC 1.2.4) gets fwd.c built with
-DNET_INPUT_INT32 -DNET_NUM_EMBEDDINGS=N: the input is int32 indices in
[0, N), N the first embedding's num (from `nngen --print`); the spec's
input_dtype must agree with the header's P_forward (const int32_t *x or
const float *x), in both modes.  fwd.c fails (exit 2) on a forward that sets
nn_error() or writes a NaN.
usage: check_inference.py NNGEN RT_LIB INCLUDE_DIR SPECS_DIR [--extra-cflags F]"""
import glob
import os
import re
import subprocess
import sys
import tempfile

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O1"]


class SpecError(Exception):
    pass


def input_dtype(spec):
    """The spec's top-level input_dtype (float32 when absent)."""
    with open(spec) as f:
        text = f.read()
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(text)
        return (doc.get("input_dtype") if isinstance(doc, dict) else None) or "float32"
    m = re.search(r"^input_dtype:\s*([A-Za-z0-9_]+)", text, re.M)
    return m.group(1) if m else "float32"


def header_dtype(header, name):
    """'int32' or 'float32': what NAME_forward takes in the generated header."""
    m = re.search(r"\bvoid %s_forward\(%s \*net, const (int32_t|float) \*x, float \*y\);"
                  % (re.escape(name), re.escape(name)), header)
    if not m:
        raise SpecError("no %s_forward(%s *net, const T *x, float *y) in net.h" % (name, name))
    return "int32" if m.group(1) == "int32_t" else "float32"


def first_num_embeddings(nngen, spec):
    """num of the first embedding (the first layer of an input_dtype: int32
    spec), from `nngen --print`: Embedding(NUM, DIM...)."""
    out = subprocess.run([nngen, "--print", spec], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"\bEmbedding\((\d+), \d+", out)
    if not m:
        raise SpecError("input_dtype: int32, but nngen --print shows no Embedding(num, dim)")
    return int(m.group(1))


def main():
    nngen, rt, inc, specs = sys.argv[1:5]
    extra = sys.argv[6].split() if len(sys.argv) > 6 and sys.argv[5] == "--extra-cflags" else []
    here = os.path.dirname(os.path.abspath(__file__))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sorted(glob.glob(os.path.join(specs, "**", "*.yaml"), recursive=True)):
            rel = os.path.relpath(spec, specs)
            outs = {}
            try:
                dtype = input_dtype(spec)
                defs = []
                if dtype == "int32":
                    defs = ["-DNET_INPUT_INT32",
                            "-DNET_NUM_EMBEDDINGS=%d" % first_num_embeddings(nngen, spec)]
                for mode in ("train", "inference"):
                    d = os.path.join(tmp, rel.replace("/", "_") + "." + mode)
                    os.makedirs(d)
                    c = os.path.join(d, "net.c")
                    cmd = [nngen, spec, "-o", c] + (["--inference"] if mode == "inference" else [])
                    subprocess.run(cmd, check=True, capture_output=True, text=True)
                    name = None
                    with open(os.path.join(d, "net.h")) as f:
                        for line in f:
                            if line.startswith("#define ") and line.split()[1].endswith("_BATCH"):
                                name = line.split()[1][:-len("_BATCH")]
                    objs = []
                    srcs = [c, os.path.join(here, "fwd.c")]
                    stub = os.path.join(d, "stub.c")
                    with open(os.path.join(d, "net.h")) as f:
                        text = f.read()
                    header = text.splitlines()
                    hd = header_dtype(text, name)
                    if hd != dtype:
                        raise SpecError("%s: the spec's input_dtype is %s, but net.h's "
                                        "%s_forward takes %s" % (mode, dtype, name, hd))
                    # custom init functions named in the spec: a stub that draws uniform values
                    fns = [l.split("(")[0].split()[-1] for l in header
                           if l.startswith("void ") and "(nn_tensor *param, nn_rng *rng)" in l]
                    if fns:
                        with open(stub, "w") as f:
                            f.write('#include "net.h"\n')
                            for fn in fns:
                                f.write("void %s(nn_tensor *p, nn_rng *r) "
                                        "{ nn_init_uniform(p, r, -1.0f, 1.0f); }\n" % fn)
                        srcs.append(stub)
                    for src in srcs:
                        o = os.path.join(d, os.path.basename(src) + ".o")
                        subprocess.run(["cc"] + STRICT + extra + ["-I", inc, "-I", d,
                                        '-DNET_H="net.h"', "-DNET=" + name] + defs +
                                       ["-c", src, "-o", o],
                                       check=True, capture_output=True, text=True)
                        objs.append(o)
                    exe = os.path.join(d, "fwd")
                    subprocess.run(["cc"] + extra + ["-o", exe] + objs + [rt, "-lopenblas", "-lm"],
                                   check=True, capture_output=True, text=True)
                    outs[mode] = subprocess.run([exe, "7"], check=True, capture_output=True,
                                                text=True).stdout.splitlines()
            except subprocess.CalledProcessError as e:
                failed += 1
                print("FAIL %s: %s\n%s%s" % (rel, " ".join(e.cmd), e.stdout or "", e.stderr or ""))
                continue
            except SpecError as e:
                failed += 1
                print("FAIL %s: %s" % (rel, e))
                continue
            tb, ib = int(outs["train"][0].split()[1]), int(outs["inference"][0].split()[1])
            if outs["train"][1:] != outs["inference"][1:]:
                failed += 1
                print("FAIL %s: the forward outputs differ" % rel)
            elif ib > tb:
                failed += 1
                print("FAIL %s: --inference needs %d bytes, more than training's %d" % (rel, ib, tb))
            else:
                passed += 1
                print("PASS %s: identical outputs, %d bytes (training %d)%s"
                      % (rel, ib, tb, ", int32 indices in [0, %s)"
                         % defs[1].split("=")[1] if defs else ""))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
