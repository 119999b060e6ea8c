#!/usr/bin/python3
"""bench/mpi.py: the data-parallel train step over MPI (nngen-rt-mpi) on
this machine: time per step for W = 1 and 2 ranks, the share of the step
spent waiting on communication, bytes reduced per step.  bench/README.md
"Data parallel over MPI" has the numbers and the model.

usage: /usr/bin/python3 bench/mpi.py [--build DIR] [--only bd] [--steps N] [--check]

Networks: (b) the mid MLP 784-256-256-10 b64 and (d) LeNet b256 of
bench/run.py (the same specs).  Rows, per network:
  plain 1T   P_train_step alone, 1 thread (NNGEN_NUM_THREADS=1)
  plain 2T   the same on both cores (the one-process baseline)
  dist W=1   nn_dist_attach'ed, one rank, 1 thread: the hooks' own cost
             (copies into the bucket, the divide, a one-rank allreduce)
  dist W=2   two ranks of 1 thread on the two cores, each its own batch:
             twice the examples per step (default buckets: 1 MiB first)
  W=2 64K    the same with 64 KiB buckets (NNGEN_MPI_BUCKET_BYTES), so
             that the first buckets' allreduces overlap the rest of backward
and, per network, MPI_Allreduce of its gradient block alone on 2 ranks.
Needs a build with -Dmpi (build/runtime/libnngen-rt-mpi.a) and mpicc.
--check: a few steps, for a smoke test (< 30 s).
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_run():
    spec = importlib.util.spec_from_file_location("bench_run", os.path.join(HERE, "run.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def sh(cmd, env=None, timeout=900):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit("bench/mpi.py: command failed (%d): %s\n%s%s"
                         % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="bd")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--rounds", type=int, default=0,
                    help="measure each row this often, keep the fastest (default 3, 1 with --check)")
    ap.add_argument("--wait-idle", type=float, default=0,
                    help="before each measurement, wait up to S seconds for the others to "
                         "leave the CPUs idle (the machine is shared)")
    a = ap.parse_args()
    run = load_run()
    mpicc, mpirun = shutil.which("mpicc"), shutil.which("mpirun")
    lib_mpi = os.path.join(a.build, "runtime", "libnngen-rt-mpi.a")
    if not mpicc or not mpirun or not os.path.exists(lib_mpi):
        raise SystemExit("bench/mpi.py: needs mpicc, mpirun and %s (meson -Dmpi=enabled)"
                         % lib_mpi)
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_btl_vader_single_copy_mechanism": "none"})
    work = tempfile.mkdtemp(prefix="nngen-bench-mpi-")
    rows = []
    allreduce = []
    try:
        for net in run.NETS:
            if net["key"] not in a.only:
                continue
            net = dict(net)
            if a.check:
                net["dims"], net["batch"] = run.CHECK_DIMS[net["key"]]
            spec = os.path.join(work, net["name"] + ".yaml")
            with open(spec, "w") as f:
                f.write(run.spec_text(net))
            c = os.path.join(work, net["name"] + ".c")
            sh([os.path.join(a.build, "compiler", "nngen"), spec, "-o", c])
            exe = os.path.join(work, net["name"] + "_mpi")
            sh([mpicc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-I", os.path.join(ROOT, "include"), "-I", work,
                "-DNET=" + net["name"], '-DNET_HEADER="%s.h"' % net["name"]] +
               (["-DLOSS_CE"] if net["loss"] == "cross_entropy" else []) +
               [os.path.join(HERE, "mpi_driver.c"), c, lib_mpi,
                os.path.join(a.build, "runtime", "libnngen-rt.a"), "-lopenblas", "-lz", "-lm",
                "-lpthread", "-o", exe])
            steps = a.steps or (10 if a.check else (400 if net["key"] == "b" else 150))
            warm = 3 if a.check else 20
            for label, mode, w, threads, bucket in (("plain 1T", "plain", 1, 1, None),
                                                    ("plain 2T", "plain", 1, 2, None),
                                                    ("dist W=1", "dist", 1, 1, None),
                                                    ("dist W=2", "dist", 2, 1, None),
                                                    ("W=2 64K", "dist", 2, 1, 65536)):
                e = dict(env)
                e.update({"NNGEN_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)})
                if bucket:
                    e["NNGEN_MPI_BUCKET_BYTES"] = str(bucket)
                kv, load = None, None
                for _ in range(a.rounds or (1 if a.check else 3)):
                    if a.wait_idle:
                        run.wait_idle(a.wait_idle)
                    meter = run.LoadMeter().start()
                    out = sh([mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(w), exe,
                              mode, str(steps), str(warm)], e)
                    lo = meter.stop()
                    k2 = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
                    if kv is None or float(k2["step_median"]) < float(kv["step_median"]):
                        kv, load = k2, lo
                step = float(kv["step_median"])
                rows.append((net["title"], label, w, step, w * net["batch"] / step,
                             float(kv["wait"]) / float(kv["step_mean"]) if mode == "dist" else None,
                             int(kv["bytes"]) if mode == "dist" else None,
                             int(kv["buckets"]) if mode == "dist" else None,
                             float(kv["early"]) if mode == "dist" else None, load))
                print("%-34s %-9s  %8.3f ms/step  %9.0f examples/s%s" % (
                    rows[-1][0], label, step * 1e3, rows[-1][4],
                    "" if mode != "dist" else "  waiting %4.1f%%  %d bytes in %d bucket(s), "
                    "%.2f done during backward" % (100 * rows[-1][5], rows[-1][6], rows[-1][7],
                                                  rows[-1][8])) +
                      ("  (others used %.0f%% of the CPUs)" % (100 * load) if load is not None
                       else ""))
                sys.stdout.flush()
            e = dict(env)
            out = sh([mpirun, "--oversubscribe", "--bind-to", "none", "-np", "2", exe,
                      "allreduce", "20" if a.check else "200", "5" if a.check else "20"], e)
            kv = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
            t = float(kv["allreduce_median"])
            nbytes = int(kv["allreduce_bytes"])
            allreduce.append((net["title"], nbytes, t))
            print("%-34s MPI_Allreduce of %d bytes on 2 ranks: %.3f ms (%.2f GB/s by the ring "
                  "bound's 2(W-1)/W * bytes / t)" % (net["title"], nbytes, t * 1e3,
                                                      nbytes / t / 1e9))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| network | run | ranks | ms / step | examples / s | waiting on communication | "
          "gradient bytes / step | buckets done during backward | others' CPU use |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %d | %.3f | %.0f | %s | %s | %s | %s |" % (
            r[0], r[1], r[2], r[3] * 1e3, r[4], "-" if r[5] is None else "%.1f%%" % (100 * r[5]),
            "-" if r[6] is None else "%d (%d bucket%s)" % (r[6], r[7], "" if r[7] == 1 else "s"),
            "-" if r[8] is None else "%.2f" % r[8],
            "-" if r[9] is None else "%.0f%%" % (100 * r[9])))
    for title, nbytes, t in allreduce:
        print("%s: MPI_Allreduce of %d bytes (the gradient block) on 2 ranks alone: %.3f ms"
              % (title, nbytes, t * 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
