#!/usr/bin/python3
"""nngen vs PyTorch eager on CPU, in one run.

    /usr/bin/python3 bench/run.py [--check] [--build DIR] [--keep DIR] [--threads N]
                                  [--torch-coretype NAME[,NAME...]]

Compiles each benchmark network with DIR/compiler/nngen, links it with
bench/driver.c and DIR/runtime/libnngen-rt.a, times P_train_step and
P_forward, times the same network in PyTorch eager (one fresh Python
subprocess per network and configuration), measures the sgemm peak of
OpenBLAS (cblas_sgemm) and of the runtime (nn_sgemm), and prints a table.
See bench/README.md.

--check   tiny sizes and few repetitions (< 30 s): proves the benchmark
          still builds and runs end to end; exit 0 on success.
--keep D  keep specs, generated C, binaries and raw outputs in D (for perf).
--threads N  OPENBLAS_NUM_THREADS, NNGEN_NUM_THREADS (C driver) and torch
          threads (default: all cores).
--torch-coretype NAME,...  also time torch (and cblas_sgemm's peak) with
          OPENBLAS_CORETYPE=NAME (e.g. SkylakeX; "auto": unset, OpenBLAS
          detects the CPU); the speedup uses the fastest torch configuration.
Targets are reported as met / not met; unmet targets do not fail the run.
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POOL_BYTES = 16 << 20  # inputs + targets cycled through, per network


def pool_size(net):
    """Distinct random batches the benchmark cycles through (both sides):
    ~16 MiB of data, at least 8 and at most 1024 batches, so that a network
    cannot memorize them during the run (loss and gradients stay O(1))."""
    per = 4 * net["batch"] * (net["dims"][0] + (1 if net["loss"] == "cross_entropy" else net["dims"][-1]))
    return max(8, min(1024, POOL_BYTES // per))
BEST = 1  # timings are [median, best] per call

# ---------------------------------------------------------------- networks
# dims: feature sizes from input to output, ReLU between linears.
NETS = [
    dict(key="a", name="bench_a", title="(a) 4-8-1 b2 mse sgd",
         dims=[4, 8, 1], batch=2, loss="mse", lr=0.03, momentum=0.0,
         targets={"train": 300.0}),
    dict(key="b", name="bench_b", title="(b) 784-256-256-10 b64 ce sgd-m",
         dims=[784, 256, 256, 10], batch=64, loss="cross_entropy", lr=0.01,
         momentum=0.9, targets={"train": 4.0, "forward": 1.2}),
    dict(key="c", name="bench_c", title="(c) 1024-4096-4096-1024 b256 mse sgd",
         dims=[1024, 4096, 4096, 1024], batch=256, loss="mse", lr=0.01,
         momentum=0.0, targets={"train": 1.6}),
    # LeNet (d2l 6.6, specs/d2l/lenet.yaml): conv2d / avg_pool2d / sigmoid,
    # input [1, 28, 28]; dims are the input and output sizes (pools, flops)
    dict(key="d", name="bench_d", title="(d) LeNet b256 ce sgd", arch="lenet",
         dims=[784, 10], batch=256, loss="cross_entropy", lr=0.1, momentum=0.0,
         targets={"train": 3.0, "forward": 2.0}),
    # the small ResNet (specs/lang/resnet_small.yaml's layers at CIFAR's
    # size: input [3, 32, 32], 16 and 32 channels), batch norm in training
    # mode for the train step; the forward is timed in eval mode
    # (P_set_training(net, 0), model.eval()), as a deployed model runs
    dict(key="e", name="bench_e", title="(e) ResNet-s b128 ce sgd-m", arch="resnet",
         dims=[3072, 10], batch=128, loss="cross_entropy", lr=0.05, momentum=0.9,
         eval_forward=True, targets={"train": 2.0, "forward": 2.0}),
    # the character-level LSTM language model (specs/seq/char_lstm_lm.yaml's
    # layers at the size): embedding 96 x 256 -> 2-layer LSTM 256 ->
    # linear 96 tied to the embedding, cross_entropy over all N*T positions;
    # dims: the input (T indices) and the classes (V)
    dict(key="f", name="bench_f", title="(f) LSTM-LM b32 T64 h256 ce sgd", arch="lstm_lm",
         dims=[64, 96], batch=32, loss="cross_entropy", lr=0.5, momentum=0.0,
         targets={"train": 2.0}),
    # a GRU sequence classifier: [T 32, F 64] -> GRU 128 -> last step -> 10
    dict(key="g", name="bench_g", title="(g) GRU-cls b64 T32 h128 ce sgd", arch="gru_cls",
         dims=[2048, 10], batch=64, loss="cross_entropy", lr=0.1, momentum=0.0,
         targets={}),
]
# --check: same structure, tiny sizes
CHECK_DIMS = {"a": ([4, 8, 1], 2), "b": ([32, 16, 16, 4], 4),
              "c": ([64, 128, 128, 64], 8), "d": ([784, 10], 4), "e": ([3072, 10], 4),
              "f": ([64, 96], 2), "g": ([2048, 10], 4)}

# timing budget per measurement (seconds, batches) for full runs
BUDGET = {"a": (0.6, 7), "b": (0.6, 7), "c": (2.0, 3), "d": (2.0, 3), "e": (2.0, 3),
          "f": (2.0, 3), "g": (2.0, 3)}
CHECK_BUDGET = (0.02, 3)

FLAGSETS = [("-O2", ["-O2"]), ("-O3 -march=native", ["-O3", "-march=native"])]


# LeNet's layers after the input, as spec lines and as torch modules
LENET_SPEC = ["{conv2d: {out: 6, kernel: 5, padding: 2}}", "sigmoid",
              "{avg_pool2d: {kernel: 2, stride: 2}}", "{conv2d: {out: 16, kernel: 5}}",
              "sigmoid", "{avg_pool2d: {kernel: 2, stride: 2}}", "flatten", "{linear: 120}",
              "sigmoid", "{linear: 84}", "sigmoid", "{linear: 10}"]


def lenet_torch(nn):
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


# the small ResNet's layers after the input (stem, a residual block, a
# downsampling residual block with a 1x1 shortcut, pooling, classifier)
RESNET_SPEC = [
    "{conv2d: {out: 16, kernel: 3, padding: 1, bias: false}}", "batch_norm2d", "relu",
    "residual: [{conv2d: {out: 16, kernel: 3, padding: 1, bias: false}}, batch_norm2d, relu,"
    " {conv2d: {out: 16, kernel: 3, padding: 1, bias: false}}, batch_norm2d]",
    "relu",
    "residual: {body: [{conv2d: {out: 32, kernel: 3, stride: 2, padding: 1, bias: false}},"
    " batch_norm2d, relu, {conv2d: {out: 32, kernel: 3, padding: 1, bias: false}}, batch_norm2d],"
    " shortcut: [{conv2d: {out: 32, kernel: 1, stride: 2, bias: false}}, batch_norm2d]}",
    "relu", "{adaptive_avg_pool2d: 1}", "flatten", "{linear: 10}"]


def resnet_torch(nn):
    class Residual(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    class Residual2(nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    def conv(i, o, k=3, s=1):
        return nn.Conv2d(i, o, k, stride=s, padding=k // 2, bias=False)
    return nn.Sequential(
        conv(3, 16), nn.BatchNorm2d(16), nn.ReLU(),
        Residual(conv(16, 16), nn.BatchNorm2d(16), nn.ReLU(), conv(16, 16), nn.BatchNorm2d(16)),
        nn.ReLU(),
        Residual2(nn.Sequential(conv(16, 32, s=2), nn.BatchNorm2d(32), nn.ReLU(), conv(32, 32),
                                nn.BatchNorm2d(32)),
                  nn.Sequential(conv(16, 32, k=1, s=2), nn.BatchNorm2d(32))),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


# the sequence networks: the LSTM language model (int32 input: T = 64
# character indices of a vocabulary of 96) and the GRU classifier
LSTM_LM_SPEC = ["embed: {embedding: {num: 96, dim: 256}}",
                "seq: {lstm: {hidden: 256, layers: 2}}",
                "out: {linear: {out: 96, weight: {tied: embed.weight}}}"]
GRU_SPEC = ["{gru: 128}", "last_step", "{linear: 10}"]


def lstm_lm_torch(nn):
    class LSTM(nn.LSTM):
        def forward(self, x):
            return super().forward(x)[0]
    embed, out = nn.Embedding(96, 256), nn.Linear(256, 96)
    lstm = LSTM(256, 256, num_layers=2, batch_first=True)
    out.weight = embed.weight

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.seq, self.out = embed, lstm, out

        def forward(self, x):  # [N, T, V] as [N * T, V] for the loss
            y = self.out(self.seq(self.embed(x)))
            return y.reshape(-1, y.shape[-1])
    return LM()


def gru_torch(nn):
    class GRU(nn.GRU):
        def forward(self, x):
            return super().forward(x)[0][:, -1]
    return nn.Sequential(GRU(64, 128, batch_first=True), nn.Linear(128, 10))


ARCH = {"lenet": ("[1, 28, 28]", LENET_SPEC, (1, 28, 28)),
        "resnet": ("[3, 32, 32]", RESNET_SPEC, (3, 32, 32)),
        "lstm_lm": ("[64]\ninput_dtype: int32", LSTM_LM_SPEC, (64,)),
        "gru_cls": ("[32, 64]", GRU_SPEC, (32, 64))}
SEQ_ARCH = ("lstm_lm",)  # named children (a mapping), not a list


def spec_text(net):
    if net.get("arch"):
        inp, layers, _ = ARCH[net["arch"]]
        lines = ["# generated by bench/run.py", "nngen: 1", "name: %s" % net["name"],
                 "input: %s" % inp, "batch: %d" % net["batch"], "seed: 0", "model:"]
        lines += [("  " if net["arch"] in SEQ_ARCH else "  - ") + l for l in layers]
        opt = ("{lr: %g, momentum: %g}" % (net["lr"], net["momentum"]) if net["momentum"]
               else "{lr: %g}" % net["lr"])
        lines += ["train:", "  loss: %s" % net["loss"], "  optimizer:", "    sgd: " + opt]
        return "\n".join(lines) + "\n"
    lines = [
        "# generated by bench/run.py",
        "nngen: 1",
        "name: %s" % net["name"],
        "input: [%d]" % net["dims"][0],
        "batch: %d" % net["batch"],
        "seed: 0",
        "model:",
    ]
    d = net["dims"]
    for i in range(1, len(d)):
        lines.append("  - {linear: %d}" % d[i])
        if i != len(d) - 1:
            lines.append("  - relu")
    lines += ["train:", "  loss: %s" % net["loss"], "  optimizer:"]
    if net["momentum"]:
        lines.append("    sgd: {lr: %g, momentum: %g}" % (net["lr"], net["momentum"]))
    else:
        lines.append("    sgd: {lr: %g}" % net["lr"])
    return "\n".join(lines) + "\n"


INF = "-O2 --inference"


def merge_best(store, key, new):
    """Keep, per timing, the round with the best (smallest) time; anything
    else (memory, pool, losses) from the first round, except the kernel
    choice (gemm_class_*), which comes from the round whose train step (or
    forward, without one) was the fastest: each round is a process of its
    own, which chooses anew."""
    old = store.get(key)
    if old is None:
        store[key] = new
        return
    main = "train" if "train" in new else "forward"
    if (isinstance(new.get(main), list) and isinstance(old.get(main), list)
            and new[main][BEST] < old[main][BEST]):
        for k in [k for k in old if k.startswith("gemm_class_")]:
            del old[k]
        for k, v in new.items():
            if k.startswith("gemm_class_") or k in ("nn_gemm_mode", "nn_conv_impl",
                                                    "nn_gemm_measurements"):
                old[k] = v
    for k, v in new.items():
        if (isinstance(v, list) and len(v) == 2 and k in old and isinstance(old[k], list)
                and (k in ("train", "forward") or k.startswith("phase_"))):
            if v[BEST] < old[k][BEST]:
                old[k] = v


def flops(net):
    """2*M*N*K per matmul. forward: 1 per linear; backward: dW for every
    linear and dX for every linear but the first."""
    b, d = net["batch"], net["dims"]
    if net.get("arch") == "lstm_lm":
        # per position: two LSTM layers 2 * 4H * (in + H) multiply-adds and
        # the output layer H * V; backward: dW and dX of both LSTM layers
        # (not dX of the first, whose input is an embedding) and the linear
        T, H, V = d[0], 256, 96
        lstm = 2 * 4 * H * (H + H)
        fwd = 2.0 * b * T * (lstm + H * V)
        return {"forward": fwd, "train": fwd + fwd + 2.0 * b * T * (lstm / 2 + H * V)}
    if net.get("arch") == "gru_cls":
        T, F, H = 32, 64, 128
        fwd = 2.0 * b * (T * 3 * H * (F + H) + H * 10)
        return {"forward": fwd, "train": fwd + fwd + 2.0 * b * T * 3 * H * H}
    if net.get("arch") == "resnet":
        # multiply-adds per example: the stem 16*1024*27, four 3x3 convs
        # (16->16 twice at 32x32, 16->32 stride 2 and 32->32 at 16x16), the
        # 1x1 shortcut 32*256*16, the linear 32*10 (norms, pools, sums and
        # activations not counted); backward: dW of every layer, dX of all
        # but the first
        first = 16 * 1024 * 27
        rest = 2 * 16 * 1024 * 144 + 32 * 256 * 144 + 32 * 256 * 288 + 32 * 256 * 16 + 32 * 10
        fwd = 2.0 * b * (first + rest)
        return {"forward": fwd, "train": fwd + fwd + 2.0 * b * rest}
    if net.get("arch") == "lenet":
        # multiply-adds per example: conv1 6*28*28*25, conv2 16*10*10*150,
        # linear 400*120 + 120*84 + 84*10 (pools and activations not counted);
        # backward: dW of every layer, dX of all but the first
        first = 6 * 28 * 28 * 25
        rest = 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
        fwd = 2.0 * b * (first + rest)
        return {"forward": fwd, "train": fwd + fwd + 2.0 * b * rest}
    per = [2.0 * b * d[i] * d[i + 1] for i in range(len(d) - 1)]
    fwd = sum(per)
    bwd = sum(per) + sum(per[1:])
    return {"forward": fwd, "train": fwd + bwd}


# ---------------------------------------------------------------- helpers
def run(cmd, env=None, timeout=900):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=env, timeout=timeout)
    except OSError as e:
        raise RuntimeError("cannot run %s: %s" % (cmd[0], e))
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        vals = []
        for v in parts[1:]:
            try:
                vals.append(float(v))
            except ValueError:
                vals = " ".join(parts[1:])
                break
        out[parts[0]] = vals
    return out


def gemm_classes(out):
    """The driver's gemm_class_I lines (print_gemm_classes in driver.c), in
    order: dicts op, ta, tb, m, n, k, tm, tn, tk, kernel, t_nngen, t_cblas,
    threads."""
    rows = []
    for key in sorted((k for k in out if k.startswith("gemm_class_")),
                      key=lambda k: int(k.rsplit("_", 1)[1])):
        f = out[key].split() if isinstance(out[key], str) else []
        if len(f) != 13:
            continue
        rows.append(dict(op=f[0], ta=int(f[1]), tb=int(f[2]), m=int(f[3]), n=int(f[4]),
                         k=int(f[5]), tm=int(f[6]), tn=int(f[7]), tk=int(f[8]), kernel=f[9],
                         t_nngen=float(f[10]), t_cblas=float(f[11]), threads=int(f[12])))
    return rows


def kernel_summary(out):
    """'nngen 5, cblas 2': how many product classes ran on each kernel."""
    counts = {}
    for c in gemm_classes(out):
        counts[c["kernel"]] = counts.get(c["kernel"], 0) + 1
    return ", ".join("%s %d" % (k, counts[k]) for k in sorted(counts)) or "-"


def class_name(c):
    """linear 64x256x784 / sgemm TN 256x784x64 / relu_mask 64x256x256"""
    if c["op"] == "sgemm":
        return "sgemm %s%s" % ("T" if c["ta"] else "N", "T" if c["tb"] else "N")
    return c["op"]


def fmt_time(s):
    if s is None:
        return "-"
    if abs(s) < 1e-6:  # the unit by magnitude: "rest" can be negative under load
        return "%.1f ns" % (s * 1e9)
    if abs(s) < 1e-3:
        return "%.2f us" % (s * 1e6)
    if abs(s) < 1.0:
        return "%.2f ms" % (s * 1e3)
    return "%.3f s" % s


def fmt_bytes(n):
    if n is None:
        return "-"
    neg = n < 0
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            s = ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
            return ("-" if neg else "") + s
        n /= 1024.0


def cpu_times():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle, sum(v[:8]))


class LoadMeter:
    """Share of the machine's CPU used by processes other than this benchmark
    (and its waited-for children) between start() and stop()."""

    def start(self):
        self.t, self.cpu, self.ours = time.time(), cpu_times(), self._ours()
        return self

    @staticmethod
    def _ours():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime + sum(os.times()[:2])

    def stop(self):
        cpu, wall = cpu_times(), time.time() - self.t
        if not cpu or not self.cpu or wall < 0.5:
            return None  # too short for 10 ms ticks to say anything
        busy = (cpu[0] - self.cpu[0]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, busy - (self._ours() - self.ours)) / (wall * os.cpu_count())


def wait_idle(limit, quiet=0.10):
    """Wait (at most limit seconds) until other processes use < quiet of the
    machine over one second. Returns the seconds waited, or None on timeout."""
    t0 = time.time()
    while True:
        m = LoadMeter().start()
        time.sleep(1.0)
        f = m.stop()
        if f is None or f < quiet:
            return time.time() - t0
        if time.time() - t0 > limit:
            return None


def machine_info(threads):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split()
                    flags = " ".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return model, flags, cores


# ---------------------------------------------------------------- torch side
def openblas_core_in_process():
    """The OpenBLAS kernel set (openblas_get_corename) of the libopenblas this
    process has loaded (torch's), or "?": shows whether OPENBLAS_CORETYPE
    took effect."""
    try:
        import ctypes
        with open("/proc/self/maps") as f:
            libs = sorted({l.split()[-1] for l in f if "libopenblas" in l and "/" in l})
        if not libs:
            return "?"
        lib = ctypes.CDLL(libs[0])  # already loaded: the same instance
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError, ValueError):
        return "?"


def torch_worker(cfg):
    """Runs in a fresh /usr/bin/python3 subprocess: memory first, then timing."""
    import torch
    from torch import nn

    def statm_rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    d, b, POOL = cfg["dims"], cfg["batch"], cfg["pool"]
    shape = (b,) + ARCH[cfg["arch"]][2] if cfg.get("arch") else (b, d[0])
    if cfg.get("arch") == "lstm_lm":
        xs = [torch.randint(0, 96, shape) for _ in range(POOL)]
    else:
        xs = [torch.randn(*shape) for _ in range(POOL)]
    if cfg.get("arch") == "lstm_lm":  # a label per position
        ts = [torch.randint(0, d[-1], (b * d[0],)) for _ in range(POOL)]
    elif cfg["loss"] == "cross_entropy":
        ts = [torch.randint(0, d[-1], (b,)) for _ in range(POOL)]
    else:
        ts = [torch.randn(b, d[-1]) for _ in range(POOL)]

    rss0 = statm_rss()
    layers = []
    for i in range(1, len(d)):
        layers.append(nn.Linear(d[i - 1], d[i]))
        if i != len(d) - 1:
            layers.append(nn.ReLU())
    model = ({"lenet": lenet_torch, "resnet": resnet_torch, "lstm_lm": lstm_lm_torch,
              "gru_cls": gru_torch}[cfg["arch"]](nn) if cfg.get("arch")
             else nn.Sequential(*layers))
    lossf = nn.CrossEntropyLoss() if cfg["loss"] == "cross_entropy" else nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    peak = rss0
    for k in range(3):
        opt.zero_grad()
        loss = lossf(model(xs[k]), ts[k])
        peak = max(peak, statm_rss())
        loss.backward()
        peak = max(peak, statm_rss())
        opt.step()
        peak = max(peak, statm_rss())
    rss1 = statm_rss()

    counter = [0]

    def train():
        i = counter[0] % POOL
        counter[0] += 1
        opt.zero_grad()
        loss = lossf(model(xs[i]), ts[i])
        loss.backward()
        opt.step()
        return loss

    def forward():
        i = counter[0] % POOL
        counter[0] += 1
        with torch.no_grad():
            return model(xs[i])

    def time_it(fn, min_s, batches):
        # same scheme as driver.c: warm-up (>= 2 calls, ~5% of budget),
        # calibrate n, `batches` batches of n calls, median per call
        t0 = time.perf_counter()
        i = 0
        while True:
            fn()
            i += 1
            t = time.perf_counter() - t0
            if i >= 2 and t >= 0.05 * min_s:
                break
        n = max(1, int((min_s / batches) / max(t / i, 1e-9)))
        per = []
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            per.append((time.perf_counter() - t0) / n)
        per.sort()
        m = len(per)
        med = per[m // 2] if m % 2 else 0.5 * (per[m // 2 - 1] + per[m // 2])
        return med, per[0]

    min_s, batches = cfg["budget"]
    tr = time_it(train, min_s, batches)
    if cfg.get("eval_forward"):
        model.eval()
    fw = time_it(forward, min_s, batches)
    return {
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "openblas_core": openblas_core_in_process(),
        "rss_delta": rss1 - rss0,
        "rss_peak_delta": peak - rss0,
        "param_bytes": sum(p.numel() * 4 for p in model.parameters()),
        "train": tr,
        "forward": fw,
    }


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fast smoke run (< 30 s)")
    ap.add_argument("--build", default="build", help="meson build dir (default: build)")
    ap.add_argument("--keep", metavar="DIR", help="keep the work files in DIR")
    ap.add_argument("--threads", type=int, default=0,
                    help="OpenBLAS / nn_sgemm (NNGEN_NUM_THREADS) / torch threads (default: all cores)")
    ap.add_argument("--torch-coretype", default="", metavar="NAME[,NAME...]",
                    help="also time torch with OPENBLAS_CORETYPE=NAME (e.g. SkylakeX; 'auto': "
                    "unset, OpenBLAS detects the CPU), and cblas_sgemm's peak likewise; the "
                    "speedup uses the fastest torch configuration (default: none, only the "
                    "environment as is)")
    ap.add_argument("--only", default="", help="subset of networks, e.g. ab")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each measurement wait up to S s for other processes "
                    "to leave the CPUs idle (default 0: do not wait)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="measure everything N times, alternating nngen and torch, and keep "
                    "the best (default 2; 1 with --check)")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_worker:
        json.dump(torch_worker(json.loads(args.torch_worker)), sys.stdout)
        return 0

    t_start = time.time()
    meter_all = LoadMeter().start()
    waits = []

    def settle():
        if args.wait_idle > 0:
            w = wait_idle(args.wait_idle)
            waits.append(w)
    build = args.build if os.path.isabs(args.build) else os.path.join(os.getcwd(), args.build)
    if not os.path.isdir(build) and os.path.isdir(os.path.join(ROOT, args.build)):
        build = os.path.join(ROOT, args.build)
    nngen = os.path.join(build, "compiler", "nngen")
    rtlib = os.path.join(build, "runtime", "libnngen-rt.a")
    for f in (nngen, rtlib):
        if not os.path.exists(f):
            print("bench: missing %s (build first: ninja -C %s)" % (f, args.build), file=sys.stderr)
            return 1
    cc = os.environ.get("CC", "cc")
    include = os.path.join(ROOT, "include")

    model, cpuflags, cores = machine_info(0)
    threads = args.threads or cores
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    env["NNGEN_NUM_THREADS"] = str(threads)
    # torch configurations: OPENBLAS_CORETYPE (None: the environment as is)
    coretypes = []
    for ct in args.torch_coretype.split(","):
        ct = ct.strip()
        if ct and ct not in coretypes:
            coretypes.append(ct)

    def with_coretype(e, ct):
        e = dict(e)
        if ct == "auto":
            e.pop("OPENBLAS_CORETYPE", None)
        elif ct is not None:
            e["OPENBLAS_CORETYPE"] = ct
        return e

    if args.keep:
        work = os.path.abspath(args.keep)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="nngen-bench-")

    help_text = subprocess.run([nngen, "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True).stdout
    has_inference = "--inference" in help_text
    cc_version = run([cc, "--version"]).splitlines()[0]
    nngen_version = subprocess.run([nngen, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True).stdout.strip().splitlines()[:1] or ["?"]
    flagsets = FLAGSETS[:1] if args.check else FLAGSETS
    rounds = args.rounds or (1 if args.check else 2)
    # --check: one thread count only (each torch process costs ~1 s to import)
    torch_threads = [threads] + ([1] if threads != 1 and not args.check else [])
    torch_cfgs = [(ct, th) for ct in [None] + coretypes for th in torch_threads]

    nets = []
    for n in NETS:
        if args.only and n["key"] not in args.only:
            continue
        n = dict(n)
        if args.check:
            n["dims"], n["batch"] = CHECK_DIMS[n["key"]]
            n["title"] = n["title"].split(")")[0] + ") check %s b%d" % (
                "-".join(map(str, n["dims"])), n["batch"])
        nets.append(n)

    try:
        # ---- sgemm peaks (and OpenBLAS identity), plain driver without a net:
        # cblas_sgemm and nn_sgemm each in its own process (the other library's
        # idle threads may spin for a while after a call), with `threads` and
        # with 1 thread; cblas_sgemm also with each --torch-coretype.  Measured
        # in every round (below), keeping each shape's best.
        peak_bin = os.path.join(work, "peak")
        run([cc, "-std=c99", "-O2", "-I", include, "-o", peak_bin, os.path.join(HERE, "driver.c"),
             rtlib, "-lopenblas", "-lm", "-lpthread"])
        peak_scale = "0.125" if args.check else "1"
        peak_threads = [threads] + ([1] if threads != 1 and not args.check else [])
        # dicts: lib "cblas"/"nn", coretype (None: environment), th, out (parse_kv)
        # nn_sgemm twice: NNGEN_GEMM=nngen (nngen's own kernel where the CPU
        # has it) and auto (what the runtime chooses per class by timing)
        peaks = [dict(lib=lib, coretype=ct, mode=mode, th=th, out=None)
                 for lib, ct, mode in [("cblas", None, None), ("nn", None, "nngen"),
                                       ("nn", None, "auto")]
                 + [("cblas", ct, None) for ct in coretypes]
                 for th in peak_threads]

        def measure_peaks(rnd):
            for p in peaks:
                penv = with_coretype(env, p["coretype"])
                penv["OPENBLAS_NUM_THREADS"] = penv["NNGEN_NUM_THREADS"] = str(p["th"])
                if p["mode"]:
                    penv["NNGEN_GEMM"] = p["mode"]
                settle()
                out = run([peak_bin, "peak", peak_scale, p["lib"]], env=penv)
                if args.keep:
                    with open(os.path.join(work, "peak_%s_%s_%dT.round%d.out" % (
                            p["lib"] + ("_" + p["mode"] if p["mode"] else ""),
                            p["coretype"] or "env", p["th"], rnd)), "w") as f:
                        f.write(out)
                new = parse_kv(out)
                if p["out"] is None:
                    p["out"] = new
                    continue
                for k, v in new.items():  # best GFLOP/s per shape, worst error
                    if re.match(r"(cblas|nn)_sgemm_\d+x\d+x\d+$", k) and v[2] > p["out"][k][2]:
                        p["out"][k] = v
                        kk = k.replace("nn_sgemm_", "nn_sgemm_kernel_")
                        if kk in new:  # the kernel that round's process chose
                            p["out"][kk] = new[kk]
                    elif k.startswith("peak_gflops_"):
                        p["out"][k] = [max(v[0], p["out"][k][0])]
                    elif k.startswith("nn_sgemm_relerr_") and not v[0] <= p["out"][k][0]:
                        p["out"][k] = v



        def peak_label(p):
            if p["lib"] == "nn":
                impl = p["out"].get("nn_sgemm_impl", "?")
                if p["mode"] == "auto":
                    return "nn_sgemm[auto]"
                # nngen's own kernel: [nngen avx512] / [nngen avx2]; where
                # there is none, NNGEN_GEMM=nngen falls back: [nngen: cblas]
                if impl in ("avx512", "avx2"):
                    return "nn_sgemm[nngen %s]" % impl
                return "nn_sgemm[nngen: %s]" % impl
            core = p["out"].get("openblas_core", "?")
            if p["coretype"] is None or p["coretype"] == core:
                return "cblas[%s]" % core
            return "cblas[%s -> %s]" % ("auto" if p["coretype"] == "auto" else
                                        "OPENBLAS_CORETYPE=" + p["coretype"], core)

        def peak_gf(p):
            return p["out"]["peak_gflops_" + p["lib"]][0]

        # ---- build everything first
        results = []
        for n in nets:
            r = {"net": n, "nngen": {}, "flops": flops(n), "load": [], "exe": {},
                 "torch_by_cfg": {}, "budget": CHECK_BUDGET if args.check else BUDGET[n["key"]]}
            spec = os.path.join(work, n["name"] + ".yaml")
            with open(spec, "w") as f:
                f.write(spec_text(n))
            csrc = os.path.join(work, n["name"] + ".c")
            run([nngen, spec, "-o", csrc])
            variants = [(label, flags, csrc, n["name"] + ".h", []) for label, flags in flagsets]
            if has_inference:
                # forward-only variant: its P_BYTES, and its forward timed (-O2)
                try:
                    isrc = os.path.join(work, n["name"] + "_inf.c")
                    run([nngen, spec, "-o", isrc, "--inference"])
                    variants.append((INF, ["-O2"], isrc, n["name"] + "_inf.h", ["-DFORWARD_ONLY"]))
                except RuntimeError as e:
                    r["inference_error"] = str(e).splitlines()[0]
                    print("bench: nngen --inference failed for %s: %s" % (n["name"], r["inference_error"]),
                          file=sys.stderr)
            for label, flags, src, hdr, defs in variants:
                exe = os.path.join(work, "%s_%s" % (n["name"], re.sub(r"[^A-Za-z0-9]+", "", label)))
                cmd = [cc, "-std=c99"] + flags + defs + [
                    "-I", include, "-I", work, "-DNET=" + n["name"], "-DNET_HEADER=\"%s\"" % hdr]
                if n["loss"] == "cross_entropy":
                    cmd.append("-DLOSS_CE")
                if n.get("arch") == "lstm_lm":
                    cmd += ["-DINPUT_INT32=96", "-DCE_CLASSES=96"]
                if n.get("eval_forward"):
                    cmd.append("-DEVAL_FORWARD")
                cmd += ["-o", exe, os.path.join(HERE, "driver.c"), src, rtlib, "-lopenblas", "-lm",
                        "-lpthread"]
                run(cmd)
                r["exe"][label] = exe
            results.append(r)

        # ---- measure: rounds alternate sgemm peaks, nngen and torch; each
        # number is the best of the rounds
        for rnd in range(rounds):
            measure_peaks(rnd)
            for r in results:
                n, budget = r["net"], r["budget"]
                for label, exe in r["exe"].items():
                    settle()
                    meter = LoadMeter().start()
                    out = run([exe, "bench", str(budget[0]), str(budget[1]), str(pool_size(n))], env=env)
                    r["load"].append((rnd, meter.stop()))
                    with open("%s.round%d.out" % (exe, rnd), "w") as f:
                        f.write(out)
                    merge_best(r["nngen"], label, parse_kv(out))
                for ct, th in torch_cfgs:
                    cfg = dict(dims=n["dims"], batch=n["batch"], loss=n["loss"], lr=n["lr"],
                               arch=n.get("arch"), eval_forward=bool(n.get("eval_forward")),
                               momentum=n["momentum"], threads=th, budget=budget, pool=pool_size(n))
                    tenv = with_coretype(env, ct)
                    tenv["OPENBLAS_NUM_THREADS"] = tenv["OMP_NUM_THREADS"] = str(th)
                    settle()
                    meter = LoadMeter().start()
                    tout = run([sys.executable, os.path.abspath(__file__), "--torch-worker",
                                json.dumps(cfg)], env=tenv)
                    r["load"].append((rnd, meter.stop()))
                    merge_best(r["torch_by_cfg"], (ct, th), json.loads(tout))
        pk = peaks[0]["out"]  # OpenBLAS identity as the environment has it
        pkn = [p for p in peaks if p["lib"] == "nn" and p["mode"] == "nngen"][0]["out"]
        nn_impl = pkn.get("nn_sgemm_impl", "?")
        best_peak = max(peaks, key=peak_gf)
        peak_gf_best = peak_gf(best_peak)
        relerr = max((v[0] for p in peaks for k, v in p["out"].items()
                      if k.startswith("nn_sgemm_relerr_")), default=float("nan"))
        for r in results:
            if INF in r["nngen"]:
                r["inference"] = r["nngen"].pop(INF)
            for res in r["nngen"].values():
                # what the train step spends beyond P_loss and P_backward: the
                # optimizer step (static in the generated file), plus zeroing
                # the gradients if the step does that
                res["phase_rest"] = [0.0, res["train"][BEST] - sum(
                    res[k][BEST] for k in ("phase_forward_loss", "phase_backward"))]
            # memory from the all-cores process in the environment as is;
            # time: the fastest configuration
            r["torch"] = dict(r["torch_by_cfg"][(None, threads)])
            r["torch_fastest"] = {}
            for mode in ("train", "forward"):
                c = min(torch_cfgs, key=lambda c: r["torch_by_cfg"][c][mode][BEST])
                r["torch_fastest"][mode] = c
                r["torch"][mode] = r["torch_by_cfg"][c][mode]
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------ report
    foreign = meter_all.stop()
    wall = time.time() - t_start
    P = print

    def cfg_name(c):
        """Column name of a torch configuration (coretype, threads)."""
        return "%s %dT" % ("torch" if c[0] is None else c[0], c[1])

    P("nngen benchmark%s: generated C vs PyTorch eager, CPU" % (" (--check: tiny sizes)" if args.check else ""))
    P("machine : %s, %d cores (%s), Linux %s" % (model, cores, cpuflags, platform.release()))
    own = ("OPENBLAS_NUM_THREADS", "NNGEN_NUM_THREADS", "OMP_NUM_THREADS")
    inherited = ["%s=%s" % (k, v) for k, v in sorted(os.environ.items())
                 if k.startswith(("OPENBLAS_", "NNGEN_", "GOTO_")) and k not in own]
    P("OpenBLAS: %s; core %s; OPENBLAS_NUM_THREADS=%d and NNGEN_NUM_THREADS=%d set by bench for the "
      "C driver%s" % (
          pk.get("openblas_config", "?"), pk.get("openblas_core", "?"), threads, threads,
          "; %s from the environment" % " ".join(inherited) if inherited else ""))
    nn_th = int(pkn["nn_threads"][0]) if "nn_threads" in pkn else -1
    modes = sorted({res.get("nn_gemm_mode", "?") for r in results for res in
                    list(r["nngen"].values()) + ([r["inference"]] if "inference" in r else [])})
    P("nngen-rt: nn_sgemm_impl() = %s, nn_num_threads() = %d%s; the generated code multiplies with nn_sgemm"
      % (nn_impl, nn_th, "" if nn_th == threads else " (NOT the %d asked for)" % threads))
    P("          kernel choice for the networks: nn_gemm_mode() = %s (NNGEN_GEMM=%s): %s"
      % ("/".join(modes), os.environ.get("NNGEN_GEMM", "(unset)"),
         "per product class the faster of nngen's kernel and cblas_sgemm, timed at first use "
         "in each process (kernels column; per class below)" if modes == ["auto"] else
         "one kernel for every product"))
    convs = sorted({res.get("nn_conv_impl", "?") for r in results for res in
                    list(r["nngen"].values()) + ([r["inference"]] if "inference" in r else [])})
    P("          conv2d, sigmoid and tanh: nn_conv_impl() = %s (%s)"
      % ("/".join(convs), "im2col and nn_sgemm, libm's expf/tanhf" if convs == ["im2col"] else
         "nngen's implicit GEMMs and vector activations for that instruction set"))
    tv = results[0]["torch"].get("torch_version", "?") if results else "?"
    P("torch   : %s (its matmuls also go to this OpenBLAS); timed with set_num_threads(%s) "
      "(OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = same), one fresh process each"
      % (tv, " and ".join(str(t) for t in torch_threads)))
    if coretypes:
        descr = []
        for ct in [None] + coretypes:
            got = sorted({r["torch_by_cfg"][c].get("openblas_core", "?")
                          for r in results for c in torch_cfgs if c[0] == ct})
            what = ("the environment as is" if ct is None else
                    "OPENBLAS_CORETYPE unset" if ct == "auto" else "OPENBLAS_CORETYPE=" + ct)
            descr.append("'%s NT' = %s (torch's OpenBLAS core: %s)" % (
                "torch" if ct is None else ct, what, "/".join(got)))
        P("          columns: " + "; ".join(descr))
    P("C       : %s; %s from %s; --inference: %s" % (
        cc_version, nngen_version[0], build,
        "yes" if has_inference else "not supported (absent from nngen --help)"))
    # sgemm peaks: one line per library (and OpenBLAS core); the per-shape
    # numbers of the `threads` run, the best of the 1-thread run
    groups = []
    for p in peaks:
        key = (p["lib"], p["coretype"], p["mode"])
        if key not in [g[0] for g in groups]:
            groups.append((key, [q for q in peaks if (q["lib"], q["coretype"], q["mode"]) == key]))
    labels = {key: peak_label(ps[0]) for key, ps in groups}
    lw = max(len(v) for v in labels.values())

    def shape_cell(q, k, v):
        cell = "%s %.0f" % (k.split("_", 2)[2], v[2])
        if q["mode"] == "auto":  # which kernel nn_sgemm chose for that class
            cell += " " + str(q["out"].get(k.replace("nn_sgemm_", "nn_sgemm_kernel_"), "?"))
        return cell
    for gi, (key, ps) in enumerate(groups):
        parts = []
        for q in ps:
            if q["th"] == threads:
                parts.append("%d thread%s: %s" % (q["th"], "s" if q["th"] != 1 else "", ", ".join(
                    shape_cell(q, k, v) for k, v in q["out"].items()
                    if re.match(r"(cblas|nn)_sgemm_\d+x\d+x\d+$", k))))
            else:
                parts.append("%d thread%s %.1f" % (q["th"], "s" if q["th"] != 1 else "", peak_gf(q)))
        best = max(peak_gf(q) for q in ps)
        P("%s%-*s %6.1f GFLOP/s %3.0f%% of the fastest (%s)" % (
            "sgemm peak: " if gi == 0 else " " * 12, lw, labels[key], best,
            100.0 * best / peak_gf_best, "; ".join(parts)))
    P("            [MxNxK GFLOP/s, best batch; nn_sgemm[auto]: and the kernel it chose]; nn_sgemm's "
      "products differ from cblas_sgemm's by at most %.1g (relative to the largest element); %%peak "
      "below is of the fastest: %s, %.1f GFLOP/s"
      % (relerr, labels[(best_peak["lib"], best_peak["coretype"], best_peak["mode"])],
         peak_gf_best))
    def quietest(r):
        """The foreign load of the quietest round: per round the most that
        other processes used during one of the network's measurements."""
        per = {}
        for rnd, x in r["load"]:
            if x is not None:
                per[rnd] = max(per.get(rnd, 0.0), x)
        return min(per.values()) if per else None

    noisy = [r["net"]["title"][:3] for r in results
             if quietest(r) is not None and quietest(r) > 0.10]
    if foreign is not None:
        P("other load: %.0f%% of the machine was used by processes outside this benchmark during the run%s"
          % (100 * foreign, "; in every round, rows of %s were measured while other processes used > 10%% "
             "-- NOISY, rerun on an idle machine (--wait-idle 600 helps)" % " ".join(noisy)
             if noisy else ""))
    if waits:
        P("waited for idle CPUs before each measurement: %.0f s in all%s" % (
            sum(w for w in waits if w is not None),
            ", %d waits timed out" % sum(w is None for w in waits) if None in waits else ""))
    P("")

    # torch columns: one per configuration, the fastest per row marked *
    cw = {c: max(11, len(cfg_name(c)) + 1) for c in torch_cfgs}
    mark = len(torch_cfgs) > 1
    thcols = "".join("%*s " % (cw[c], cfg_name(c)) for c in torch_cfgs)
    blank = " " * sum(cw[c] + 1 for c in torch_cfgs)
    hdr = "%-38s %-7s %-18s %11s %s%9s %-14s %8s %6s %5s  %s" % (
        "network", "mode", "nngen flags", "nngen", thcols, "speedup", "target", "GFLOP/s", "%peak",
        "load", "kernels")
    P(hdr)
    P("-" * len(hdr))
    for r in results:
        n = r["net"]
        for mode in ("train", "forward"):
            tt = r["torch"][mode][BEST]
            for i, (label, _) in enumerate(flagsets):
                t = r["nngen"][label][mode][BEST]
                speed = tt / t if t > 0 else float("nan")
                gf = r["flops"][mode] / t * 1e-9 if t > 0 else float("nan")
                tgt = n["targets"].get(mode)
                tstr = ""
                if tgt is not None and i == 0:
                    tstr = ">=%gx %s" % (tgt, "met" if speed >= tgt else "NOT met")
                tcells = "".join(
                    "%*s%s" % (cw[c], fmt_time(r["torch_by_cfg"][c][mode][BEST]),
                               "*" if mark and c == r["torch_fastest"][mode] else " ")
                    if i == 0 else " " * (cw[c] + 1) for c in torch_cfgs)
                ld = ""
                if mode == "train" and i == 0:
                    q = quietest(r)
                    ld = "%4.0f%%" % (100 * q) if q is not None else "?"
                ks = kernel_summary(r["nngen"][label]) if mode == "train" else ""
                P("%-38s %-7s %-18s %11s %s%8.2fx %-14s %8.2f %5.1f%% %5s  %s" % (
                    n["title"] if (mode == "train" and i == 0) else "", mode if i == 0 else "",
                    label, fmt_time(t), tcells, speed, tstr, gf, 100.0 * gf / peak_gf_best, ld,
                    ks))
            if mode == "forward" and "inference" in r:
                t = r["inference"]["forward"][BEST]
                speed = tt / t
                gf = r["flops"][mode] / t * 1e-9
                P("%-38s %-7s %-18s %11s %s%8.2fx %-14s %8.2f %5.1f%% %5s  %s" % (
                    "", "", "-O2 --inference", fmt_time(t), blank,
                    speed, "", gf, 100.0 * gf / peak_gf_best, "",
                    kernel_summary(r["inference"])))
        P("")

    P("memory")
    mh = "%-38s %10s %11s %11s %16s %12s %11s" % (
        "network", "P_BYTES", "nngen dRSS", "torch dRSS", "torch peak dRSS",
        "inference", "params")
    P(mh)
    P("-" * len(mh))
    for r in results:
        res = r["nngen"][flagsets[0][0]]
        inf = int(r["inference"]["bytes"][0]) if "inference" in r else None
        P("%-38s %10s %11s %11s %16s %12s %11s" % (
            r["net"]["title"], fmt_bytes(int(res["bytes"][0])), fmt_bytes(int(res["rss_delta"][0])),
            fmt_bytes(r["torch"]["rss_delta"]), fmt_bytes(r["torch"]["rss_peak_delta"]),
            fmt_bytes(inf) if has_inference and inf is not None else
            ("error" if has_inference else "n/a"), fmt_bytes(r["torch"]["param_bytes"])))
    P("")

    P("nngen train step by phase (%s; each public function timed alone in its own loop; "
      "rest = train - P_loss - P_backward)" % flagsets[0][0])
    ph = "%-38s %12s %14s %14s %14s   %-12s" % (
        "network", "P_train_step", "P_loss", "P_backward", "rest (opt)", "P_zero_grad")
    P(ph)
    P("-" * len(ph))
    for r in results:
        res = r["nngen"][flagsets[0][0]]
        tr = res["train"][BEST]

        def cell(k):
            v = res[k][BEST]
            return "%s %3.0f%%" % (fmt_time(v), 100.0 * v / tr) if tr > 0 else fmt_time(v)
        P("%-38s %12s %14s %14s %14s   %-12s" % (
            r["net"]["title"], fmt_time(tr), cell("phase_forward_loss"),
            cell("phase_backward"), cell("phase_rest"), fmt_time(res["phase_zero_grad"][BEST])))
    P("")

    P("nn_sgemm's kernel per product class (%s train-step process, the fastest round's; M x N x K "
      "of the class's first call, [timed part] when larger than 2^25 multiply-adds; best time "
      "per call of each kernel at the choice)" % flagsets[0][0])
    ch = "%-38s %-16s %-18s %-8s %12s %12s  %s" % (
        "network", "product", "M x N x K", "kernel", "nngen", "cblas", "threads")
    P(ch)
    P("-" * len(ch))
    for r in results:
        cls = gemm_classes(r["nngen"][flagsets[0][0]])
        if not cls:
            P("%-38s %s" % (r["net"]["title"], "(no classes recorded: one kernel, %s)" %
                            r["nngen"][flagsets[0][0]].get("nn_gemm_mode", "?")))
        for i, c in enumerate(cls):
            shape = "%dx%dx%d" % (c["m"], c["n"], c["k"])
            if (c["tm"], c["tn"], c["tk"]) != (c["m"], c["n"], c["k"]) and c["tm"] > 0:
                shape += " [%dx%dx%d]" % (c["tm"], c["tn"], c["tk"])
            P("%-38s %-16s %-18s %-8s %12s %12s  %d" % (
                r["net"]["title"] if i == 0 else "", class_name(c), shape, c["kernel"],
                fmt_time(c["t_nngen"]) if c["t_nngen"] > 0 else "-",
                fmt_time(c["t_cblas"]) if c["t_cblas"] > 0 else "-", c["threads"]))
    P("")
    P("Times are per call: the best of %s batches of calls (each batch >= budget/batches s, "
      "after a warm-up) over %d round(s); speedup = %s / nngen; targets judged on %s." % (
          "3" if args.check else "3-7", rounds,
          "fastest torch configuration (marked *)" if mark else "torch", flagsets[0][0]))
    if mark:
        P("fastest torch configuration: %s." % "; ".join(
            "%s train %s, forward %s" % (r["net"]["title"][:3], cfg_name(r["torch_fastest"]["train"]),
                                         cfg_name(r["torch_fastest"]["forward"])) for r in results))
    P("GFLOP/s counts 2*M*N*K per matmul: forward 1 per linear, backward dW per linear + dX for all "
      "but the first; %%peak = of the fastest sgemm this machine has, as measured above: %s, %.1f GFLOP/s."
      % (labels[(best_peak["lib"], best_peak["coretype"], best_peak["mode"])], peak_gf_best))
    P("kernels: the product classes (nn_gemm_classes) the row's process ran on each kernel "
      "(the train row: the whole process, train step and forward).")
    P("load: the most other processes used of the machine during one of the network's measurements, "
      "in its quietest round.")
    P("dRSS: growth of resident memory (/proc/self/statm) from before creating the model to after 3 "
      "train steps; torch peak dRSS: max statm sampled after forward+loss, backward and step.")
    P("elapsed: %.0f s" % wall)

    # sanity for --check (and full runs): every number present and finite
    ok = True
    if not relerr <= 1e-4:
        print("bench: nn_sgemm's product differs from cblas_sgemm's by %g (relative)" % relerr,
              file=sys.stderr)
        ok = False
    for p in peaks:
        if not peak_gf(p) > 0:
            print("bench: bad sgemm peak %s %d threads" % (peak_label(p), p["th"]), file=sys.stderr)
            ok = False
    for r in results:
        for label, _ in flagsets:
            res = r["nngen"][label]
            for k in ("train", "forward", "bytes", "final_loss"):
                v = res.get(k)
                if not v or not math.isfinite(v[0]) or (k != "final_loss" and v[0] <= 0):
                    print("bench: bad nngen result %s %s %s" % (r["net"]["title"], label, k),
                          file=sys.stderr)
                    ok = False
        if has_inference and not ("inference" in r and r["inference"]["forward"][BEST] > 0):
            print("bench: no --inference result for %s" % r["net"]["title"], file=sys.stderr)
            ok = False
        for k in ("train", "forward"):
            if not r["torch"][k][BEST] > 0:
                print("bench: bad torch result %s %s" % (r["net"]["title"], k), file=sys.stderr)
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
