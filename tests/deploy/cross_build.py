#!/usr/bin/python3
"""The cross build for a Cortex-M4F (meson suite 'deploy').

usage: cross_build.py --nngen NNGEN --meson MESON --source-root SRC [--keep]

1. builds the runtime alone with meson and cross/arm-none-eabi.txt (no
   compiler, no tests, no BLAS, no threads, static, -ffreestanding -Werror,
   -Os) into a temporary directory: libnngen-rt.a;
2. for the chapter's MLP (specs/d2l/mlp.yaml) and LeNet (specs/d2l/lenet.yaml):
   generates `nngen SPEC --no-blas --inference`, compiles it with the cross
   file's flags and -std=c99 -Wall -Wextra -Wpedantic -Werror, and checks with
   arm-none-eabi-nm that the network object and the runtime library together
   need no symbol beyond what newlib's libc.a and libm.a and the compiler's
   libgcc.a (for this -mcpu/-mfpu multilib) define: each symbol is listed
   with the library that has it;
3. links tests/deploy/m4_app.c (the instance in a static buffer, init, one
   forward; and again with the weights out through nn_save_to and back
   through nn_load_mem) into an ELF with --specs=nano.specs
   --specs=nosys.specs --gc-sections, checks that it has no undefined symbol,
   and reports its sections (text, rodata, data, bss) and what they cost
   beyond an empty main() linked the same way;
4. the same networks with their weights compiled in (--weights, a file
   written here; bake.py's writer): place + forward, no init, the weights
   in .rodata (flash) and only the activations in RAM.

Exit status 0 when everything holds, 1 on any failure, 77 (meson: skipped)
when arm-none-eabi-gcc is not installed, unless NNGEN_REQUIRE_TORCH=1 is set
(CI), where a missing cross compiler is a failure: Debian's
gcc-arm-none-eabi and libnewlib-arm-none-eabi (tools/install-deps.sh).
"""
import argparse
import ast
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

NETS = [("mlp", "specs/d2l/mlp.yaml"), ("lenet", "specs/d2l/lenet.yaml")]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Os"]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def run(cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError("%s\nexited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout))
    return p.stdout


def cross_flags(path):
    """c_args and c_link_args of the cross file (one source for the flags)."""
    cp = configparser.ConfigParser()
    cp.read(path)
    opts = cp["built-in options"]
    return ast.literal_eval(opts["c_args"]), ast.literal_eval(opts["c_link_args"])


def nm_symbols(nm, files, defined):
    """Global symbols of the object files / archives: defined ones, or the
    undefined ones."""
    out = run([nm, "-g", "--defined-only" if defined else "--undefined-only"] + files)
    syms = set()
    for line in out.splitlines():
        f = line.split()
        if not f or line.endswith(":"):
            continue
        syms.add(f[-1])
    return syms


def sections(size_tool, elf):
    """{section: bytes} from size -A."""
    out = run([size_tool, "-A", elf])
    sec = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+\d+", line)
        if m:
            sec[m.group(1)] = int(m.group(2))
    return sec


def summarize(sec):
    """text (code), rodata, data, bss as the linker script of newlib's
    default places them: .text holds code; .rodata constants; .data
    initialized RAM (also in flash); .bss zeroed RAM."""
    text = sec.get(".text", 0) + sec.get(".init", 0) + sec.get(".fini", 0)
    rodata = sec.get(".rodata", 0) + sec.get(".ARM.exidx", 0) + sec.get(".eh_frame", 0)
    data = sec.get(".data", 0) + sec.get(".init_array", 0) + sec.get(".fini_array", 0)
    bss = sec.get(".bss", 0)
    return {"text": text, "rodata": rodata, "data": data, "bss": bss,
            "flash": text + rodata + data, "ram": data + bss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nngen", required=True)
    ap.add_argument("--meson", required=True)
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    src = os.path.abspath(args.source_root)
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
            print("FAIL: arm-none-eabi-gcc is not installed (NNGEN_REQUIRE_TORCH=1: the cross "
                  "build must run; apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
            return 1
        print("SKIP: arm-none-eabi-gcc is not installed (Debian: gcc-arm-none-eabi, "
              "libnewlib-arm-none-eabi; tools/install-deps.sh)")
        return 77
    tooldir = os.path.dirname(gcc)
    nm = os.path.join(tooldir, "arm-none-eabi-nm")
    size_tool = os.path.join(tooldir, "arm-none-eabi-size")
    cross = os.path.join(src, "cross", "arm-none-eabi.txt")
    c_args, link_args = cross_flags(cross)
    cpu = [a for a in c_args if a.startswith(("-mcpu", "-mthumb", "-mfloat", "-mfpu"))]
    print("cross compiler: %s" % run([gcc, "--version"]).splitlines()[0])
    print("flags (from %s): %s" % (os.path.relpath(cross, src), " ".join(c_args)))

    libc = run([gcc] + cpu + ["-print-file-name=libc.a"]).strip()
    if not os.path.isabs(libc):
        print("FAIL: %s has no newlib (libc.a) for %s: apt-get install "
              "libnewlib-arm-none-eabi" % (gcc, " ".join(cpu)))
        return 1
    tmp = tempfile.mkdtemp(prefix="nngen-cross-")
    try:
        # 1. the runtime through meson
        build = os.path.join(tmp, "build")
        run([args.meson, "setup", build, src, "--cross-file", cross])
        run(["ninja", "-C", build])
        lib = os.path.join(build, "runtime", "libnngen-rt.a")
        if not os.path.isfile(lib):
            fail("the cross build made no %s" % lib)
            return 1
        members = run([os.path.join(tooldir, "arm-none-eabi-ar"), "t", lib]).split()
        print("libnngen-rt.a: %d objects (%s)" % (len(members), " ".join(members)))
        for bad in ("gemm_cblas.c.o", "pool_threads.c.o", "gemm_avx512.c.o", "gemm_avx2.c.o"):
            if bad in members:
                fail("the minimal runtime contains %s" % bad)
        lsz = run([size_tool, "-t", lib]).splitlines()[-1].split()
        print("libnngen-rt.a sizes: text %s data %s bss %s (all of it; a program links only "
              "the functions it uses)" % (lsz[0], lsz[1], lsz[2]))

        libs = {}
        for name in ("libc.a", "libm.a"):
            libs[name] = run([gcc] + cpu + ["-print-file-name=" + name]).strip()
        libs["libgcc.a"] = run([gcc] + cpu + ["-print-libgcc-file-name"]).strip()
        provided = {name: nm_symbols(nm, [path], True) for name, path in libs.items()}
        print("libraries for %s: %s" % (" ".join(cpu), ", ".join(
            os.path.relpath(p, "/usr/lib") for p in libs.values())))
        rt_defined = nm_symbols(nm, [lib], True)

        # the baseline: an empty main linked the same way
        empty_c = os.path.join(tmp, "empty.c")
        with open(empty_c, "w") as f:
            f.write("int main(void)\n{\n    return 0;\n}\n")
        empty_elf = os.path.join(tmp, "empty.elf")
        run([gcc] + c_args + STRICT + [empty_c, "-o", empty_elf] + link_args)
        base = summarize(sections(size_tool, empty_elf))

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bake
        rows = []
        for net, spec, baked in [(n, s_, b) for n, s_ in NETS for b in (0, 1)]:
            d = os.path.join(tmp, net + ("-baked" if baked else ""))
            os.mkdir(d)
            c = os.path.join(d, "net.c")
            wopt = []
            if baked:
                w = os.path.join(d, "w.safetensors")
                bake.write_st(w, bake.weights(bake.params(args.nngen, os.path.join(src, spec))))
                wopt = ["--weights", w]
            run([args.nngen, os.path.join(src, spec), "--no-blas", "--inference", "-o", c] + wopt)
            hdr = open(os.path.join(d, "net.h")).read()
            prefix = re.search(r"#define (\w+)_BYTES (\d+)u", hdr)
            pname, pbytes = prefix.group(1), int(prefix.group(2))
            obj = os.path.join(d, "net.o")
            # 2. the network, strict, and what it and the runtime need
            run([gcc] + c_args + STRICT + ["-I", os.path.join(src, "include"), "-c", c,
                                           "-o", obj])
            need = nm_symbols(nm, [obj], False) - rt_defined
            need |= nm_symbols(nm, [lib], False) - rt_defined
            need -= nm_symbols(nm, [obj], True)
            by_lib = {name: sorted(s for s in need if s in provided[name]) for name in provided}
            unknown = sorted(s for s in need if not any(s in p for p in provided.values()))
            net_rt = sorted(nm_symbols(nm, [obj], False) & rt_defined)
            print("\n%s (%s, --no-blas --inference%s, %s_BYTES %d): the network calls %d "
                  "runtime functions: %s" % (net, spec, " --weights" if baked else "", pname,
                                            pbytes, len(net_rt), " ".join(net_rt)))
            for name in ("libc.a", "libm.a", "libgcc.a"):
                print("  from %s (%d): %s" % (name, len(by_lib[name]), " ".join(by_lib[name])))
            if unknown:
                fail("%s + libnngen-rt.a need symbols that libc, libm and libgcc do not "
                     "define: %s" % (net, " ".join(unknown)))
            else:
                print("  nothing else: PASS (arm-none-eabi-nm)")
            # 3. linked programs and their sizes
            for weights in ((0,) if baked else (0, 1)):
                app_o = os.path.join(d, "app%d.o" % weights)
                run([gcc] + c_args + STRICT + ["-I", os.path.join(src, "include"), "-I", d,
                                               '-DNET_H="net.h"', "-DNET=" + pname,
                                               "-DWITH_WEIGHTS=%d" % weights,
                                               "-DBAKED=%d" % baked, "-c",
                                               os.path.join(src, "tests", "deploy", "m4_app.c"),
                                               "-o", app_o])
                elf = os.path.join(d, "app%d.elf" % weights)
                run([gcc] + c_args + ["-o", elf, app_o, obj, lib] + link_args + ["-lm"])
                undef = nm_symbols(nm, [elf], False)
                undef = {s for s in undef if not s.startswith("__") or s in need}
                weak = set(l.split()[-1] for l in run([nm, elf]).splitlines()
                           if re.match(r"^\s+w ", l))
                if undef - weak:
                    fail("%s: undefined in the linked program: %s" % (elf, " ".join(
                        sorted(undef - weak))))
                s = summarize(sections(size_tool, elf))
                rows.append((net, 2 if baked else weights, s, pbytes))
        print("\nsizes in bytes (arm-none-eabi-size -A; newlib-nano and nosys stubs; "
              "an empty main() is text %d, rodata %d, data %d, bss %d):" % (
                  base["text"], base["rodata"], base["data"], base["bss"]))
        print("%-7s %-28s %8s %8s %6s %7s | %13s %11s" % (
            "net", "program", "text", "rodata", "data", "bss", "flash (+empty)",
            "RAM (+empty)"))
        for net, weights, s, pbytes in rows:
            what = ("place+forward, --weights" if weights == 2 else
                    "place+init+forward" + (" +save/load" if weights else ""))
            print("%-7s %-28s %8d %8d %6d %7d | %6d (+%5d) %5d (+%5d)" % (
                net, what, s["text"], s["rodata"], s["data"], s["bss"], s["flash"],
                s["flash"] - base["flash"], s["ram"], s["ram"] - base["ram"]))
        print("(RAM: data + bss, the instance's P_BYTES included, the save/load program's "
              "64 KiB file buffer too; not the stack or the heap that nn_load_mem's parser "
              "takes)")
    except RuntimeError as e:
        fail(str(e))
    finally:
        if args.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("\n%d failure(s)" % len(failures))
        return 1
    print("\nPASS: the runtime and the networks cross-compile for %s with -Werror, and need "
          "nothing beyond libc, libm and libgcc" % " ".join(cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
