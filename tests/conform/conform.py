#!/usr/bin/python3
"""Conformance harness: nngen's generated C against PyTorch (the conformance contract, README "Tests").

usage: conform.py --nngen NNGEN --rt-lib LIBNNGEN-RT.a --include INCDIR
                  [--cc CC] [--workdir DIR] [--keep] [--steps 20] SPEC|DIR ...

For every spec (a directory means all of its **/*.yaml) it builds the torch
model with tests/torch/nnspec.py and checks, one output line per check:

  compile      nngen SPEC -o W/net.c, then cc driver.c + net.c with
               -std=c99 -Wall -Wextra -Wpedantic -Werror -O1
  determinism  a second nngen run (to another directory, same file name)
               gives byte-identical .c and .h
  params       `nngen --params SPEC` == nnspec's state_dict listing
  print        `nngen --print SPEC`  == print(model) + "\\n"
  info         `driver info`: batch, in/out sizes, parameter list and sizes
  init seed=S  S in 0, 1, 42, 1234: `driver init S` == torch parameters after
               torch.manual_seed(S) and construction.  Bit-identical when every
               initializer is uniform-family (default, zeros, ones, constant,
               uniform, xavier_uniform, kaiming_uniform, zero_abs_below over
               those); else (normal, xavier_normal, kaiming_normal,
               trunc_normal) the criterion below with TOL=1e-6.  Specs using
               mixture/custom: SKIP "init comparison not applicable".
  fwd/bwd      random parameters, x and dy (numpy, seeded from the spec path):
               `driver run` y, dx and every parameter gradient (shared ones
               included; frozen ones must be "none" as torch's None) vs torch,
               TOL=1e-5
  fwd/bwd --no-blas   the same with code from `nngen --no-blas` (whose object
               must not reference BLAS or the runtime's threads: no cblas_,
               nn_sgemm*, nn_linear_forward, nn_parallel, nn_conv2d_* or
               nn_sigmoid_* symbol)
  train        only for specs with train: 20 steps of P_train_step vs
               torch.optim with the same start values and data: every loss and
               the final parameters, TOL=1e-4; when they differ after a kink
               within rounding error (train_verdict, README "Kinks"), the
               steps before it
  rows=R       when the batch B > 1, fwd/bwd and train again on the first
               R = ceil(B / 2) rows through P_forward_n, P_backward_n and
               P_train_step_n, against torch run on those R rows alone (a
               last, partial batch); the _n forms must write nothing beyond
               their R rows

Specs with input_dtype: int32 (an embedding first; the driver is built with
-DNET_INPUT_INT32: x is const int32_t *): x holds valid indices in [0, num)
(the embedding's padding_idx at every 4th position from the 2nd when it has
one), P_backward gets dx == NULL, there is no dx to compare, and two more
checks run (badidx_checks):

  bad index: P_forward   an index one past the end in the first example, -1
               in the last: nn_error() set, NaN rows for those examples, the
               others as torch (eval mode for a mode-dependent spec)
  bad index: P_loss, P_train_step   (with train:) each returns NaN, sets
               nn_error() and changes nothing (state_dict tensors and grads
               bit for bit, the generator); the valid steps around them
               (optimizer state included) as torch's two steps

cross_entropy on an output of rank > 2 ([N, T, V]) takes N*T labels (the
driver is built with -DNET_TARGETS=T; torch: CrossEntropyLoss over
out.reshape(-1, V), SPEC 1.5); the rows=R forms take the first R*T.

Specs with batch_norm or dropout (also an rnn/lstm/gru with dropout between
stacked layers: mode-dependent layers; the driver is built with
-DNET_HAS_MODES) get random float buffers (running_mean, running_var)
in the start values too, and instead of the fwd/bwd and train checks above:

  fwd/bwd train seed=S   S in 0, 1, 42 (with dropout; else 0): `driver modes
               train S 3`: P_init(S), the start values, 3 forward/backward
               passes in a row (the generator continues) vs torch after
               torch.manual_seed(S), construction, the start values and
               model.train(): y.K, dx.K, the accumulated grads and every
               buffer (buf.NAME; num_batches_tracked as an integer), TOL=1e-5;
               and, with dropout, the elements that are exactly zero in y.K and
               dx.K must be the same (the dropout masks bit for bit), but for
               elements within 16 times torch's own rounding error of zero
               (a value that is 0 analytically: a tanh saturated in float32,
               a layer_norm over one element)
  fwd/bwd eval  the same in eval mode (P_set_training(net, 0), model.eval())
  ... rows=R    both on the first R rows (P_forward_n: batch statistics over R)
  ... --no-blas the same with `nngen --no-blas` code
  train 20 steps (training mode, seed 0), and on R rows: `driver trainm 0`
               vs torch from the same generator state: losses, parameters and
               buffers, TOL=1e-4

Comparison criterion for a tensor `got` against the torch reference `ref`
(elementwise, never loosened to make a test pass):

    |got - ref| <= TOL * max(|ref|, scale),   scale = max |ref| over the tensor

i.e. relative error per element, with elements much smaller than the
tensor's largest one judged relative to that largest one (summation order
differences scale with the magnitudes of the terms, not of the result).
A non-finite value in `got` where `ref` is finite fails; a tensor of exact
zeros must be matched exactly.  The per-step losses are compared as one
tensor.

Final line: "N passed, N failed" (", N skipped" if any); exit 1 if anything
failed.  If /usr/bin/python3 has no torch: one line saying so and exit 77
(meson: skipped), or exit 1 when NNGEN_REQUIRE_TORCH=1.
"""
import argparse
import copy
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

# what `nngen --no-blas` code must not call: BLAS, nor the runtime's
# products and threads (which need BLAS and pthreads)
NO_BLAS_FORBIDDEN = ('cblas_', 'nn_sgemm', 'nn_linear_forward', 'nn_parallel', 'nn_conv2d_',
                     'nn_sigmoid_')

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PY = '/usr/bin/python3'

try:
    import torch
    import numpy as np
except ImportError as _e:
    if (os.path.realpath(sys.executable) != os.path.realpath(TORCH_PY)
            and os.path.exists(TORCH_PY) and not os.environ.get('NNGEN_CONFORM_REEXEC')):
        os.environ['NNGEN_CONFORM_REEXEC'] = '1'
        os.execv(TORCH_PY, [TORCH_PY] + sys.argv)
    _req = os.environ.get('NNGEN_REQUIRE_TORCH') == '1'
    print('conform: %s: torch/numpy not importable by %s (%s); Debian: '
          'apt-get install python3-torch python3-numpy'
          % ('FAIL (NNGEN_REQUIRE_TORCH=1)' if _req else 'skipped', sys.executable, _e))
    sys.exit(1 if _req else 77)

sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
import nnspec  # noqa: E402
from harness import Result  # noqa: E402

SEEDS = [0, 1, 42, 1234]
CFLAGS = ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-O1']
TOL_INIT = 1e-6
TOL_FWD = 1e-5
TOL_TRAIN = 1e-4




class CheckError(Exception):
    pass


def run(cmd, cwd=None, timeout=300, env=None):
    e = dict(os.environ)
    e.setdefault('OPENBLAS_NUM_THREADS', '1')
    if env:
        e.update(env)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                           timeout=timeout, env=e)
    except subprocess.TimeoutExpired:
        raise CheckError('timed out after %ds: %s' % (timeout, ' '.join(cmd)))
    except OSError as ex:
        raise CheckError('cannot run %s: %s' % (cmd[0], ex))
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def must(cmd, what, **kw):
    rc, out, err = run(cmd, **kw)
    if rc != 0:
        lines = (err or out).strip().splitlines()
        errs = [l for l in lines if 'error' in l]
        head = '\n'.join((errs or lines)[:6])
        raise CheckError('%s failed (exit %d): %s\n%s' % (what, rc, ' '.join(cmd), head))
    return out


def text_diff(got, want, limit=6):
    g, w = got.splitlines(), want.splitlines()
    lines = []
    for i in range(max(len(g), len(w))):
        a = g[i] if i < len(g) else '<missing>'
        b = w[i] if i < len(w) else '<missing>'
        if a != b:
            lines.append('line %d: got %r, want %r' % (i + 1, a, b))
            if len(lines) >= limit:
                break
    if not lines and got != want:
        lines.append('differs in trailing newline/whitespace: got %r..., want %r...'
                     % (got[-20:], want[-20:]))
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# tensor comparison

def f32bits(v):
    return struct.unpack('<I', struct.pack('<f', v))[0]


NOISE_K = 16


def compare(name, got, ref, tol, noise=0.0):
    """None if got matches ref (lists of floats), else a message.

    noise: torch's own float32 rounding error in this tensor (max over its
    elements of |torch float32 - torch float64|); an element may also be off
    by NOISE_K times that, which only matters for tensors whose exact value
    is (close to) zero by cancellation, where the relative criterion would
    judge pure rounding noise."""
    if ref is None or got is None:
        if ref is None and got is None:
            return None
        return '%s: got %s, torch has %s' % (name, 'none' if got is None else 'a tensor',
                                            'None' if ref is None else 'a tensor')
    if len(got) != len(ref):
        return '%s: %d values, torch has %d' % (name, len(got), len(ref))
    if tol == 0:
        for i, (a, b) in enumerate(zip(got, ref)):
            if f32bits(a) != f32bits(b) and not (a != a and b != b):
                return '%s[%d]: got %s, torch %s (bit-identical required; %d elements)' % (
                    name, i, nnspec.format_float(a), nnspec.format_float(b), len(ref))
        return None
    finite = [abs(b) for b in ref if math.isfinite(b)]
    scale = max(finite) if finite else 0.0
    worst, wi = -1.0, -1
    for i, (a, b) in enumerate(zip(got, ref)):
        if not math.isfinite(b):
            if not (a == b or (a != a and b != b)):
                return '%s[%d]: got %r, torch %r' % (name, i, a, b)
            continue
        if not math.isfinite(a):
            return '%s[%d]: got %r, torch %r' % (name, i, a, b)
        bound = max(tol * max(abs(b), scale), NOISE_K * noise)
        err = abs(a - b)
        if err > bound:
            ratio = err / bound if bound > 0 else math.inf
            if ratio > worst:
                worst, wi = ratio, i
    if wi >= 0:
        a, b = got[wi], ref[wi]
        return ('%s[%d]: got %.9g, torch %.9g, |diff| %.3g > max(%g*max(|ref|, scale=%.3g), '
                '%d*noise=%.3g) (%.3gx the bound; %d elements)'
                % (name, wi, a, b, abs(a - b), tol, scale, NOISE_K, noise, worst, len(ref)))
    return None


def noise_of(ref32, ref64):
    """{name: max |ref32 - ref64|} for two reference dumps."""
    out = {}
    for (n, a), (_, b) in zip(ref32, ref64):
        if a is not None and b is not None:
            d = [abs(x - y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
            out[n] = max(d) if d else 0.0
    return out


JITTER = 2.0 ** -23


def jittered(model, arrays, rs):
    """A copy of model and of the float arrays, at the rounding level: every
    value, and every layer's input at each call, times a random factor within
    1 +- 2^-23 (one float32 ulp; ties and frozen flags kept).  torch float32
    on it against float64 on the original shows how much an equally valid
    float32 computation may differ (a cancellation that torch's order of
    operations makes exact by chance, a tanh saturating one ulp earlier)."""
    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(rs.randint(0, 2 ** 31 - 1)))

    def jitter(t):
        if not t.is_floating_point():
            return t
        u = torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1
        return t * (1 + JITTER * u).to(t.dtype)

    with torch.no_grad():
        for p in m.parameters():
            p.copy_(jitter(p))
    for mod in m.modules():
        if not list(mod.children()):
            mod.register_forward_pre_hook(lambda _m, inp: tuple(jitter(t) for t in inp))
    out = [a * (1 + JITTER * rs.uniform(-1, 1, size=a.shape)).astype(a.dtype)
           if a.dtype.kind == 'f' else a for a in arrays]
    return m, out


def max_noise(noise, more):
    for n, v in more.items():
        noise[n] = max(noise.get(n, 0.0), v)
    return noise


def compare_dumps(got, ref, tol, noise=None):
    """got, ref: lists of (name, values|None).  Returns list of messages."""
    gn, rn = [n for n, _ in got], [n for n, _ in ref]
    if gn != rn:
        return ['tensor names differ: got %s, want %s' % (gn, rn)]
    msgs = []
    for (n, a), (_, b) in zip(got, ref):
        m = compare(n, a, b, tol, (noise or {}).get(n, 0.0))
        if m:
            msgs.append(m)
    return msgs


def tensor_list(t):
    return t.detach().to(torch.float32).reshape(-1).tolist()


def write(path, tensors):
    with open(path, 'w') as f:
        nnspec.write_dump(f, tensors)


# --------------------------------------------------------------------------
# torch references (on a deep copy: ties and frozen flags are kept)

def input_of(x, dtype, grad=False):
    """x (a numpy array or a tensor) as the model's input: integer indices
    (input_dtype: int32) as int64 indices, without a gradient; floats in
    dtype, requiring grad when `grad`."""
    t = torch.from_numpy(x.copy()) if isinstance(x, np.ndarray) else x
    if not t.is_floating_point():
        return t.to(torch.int64)
    t = t.to(dtype)
    return t.requires_grad_(True) if grad else t


def first_embedding(model):
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            return mod
    return None


def draw_x(rng, built):
    """The input: standard normal floats, or (input_dtype: int32) valid
    indices in [0, num) of the first layer's embedding, its padding_idx at
    every 4th position from the 2nd when it has one."""
    if built.input_dtype != 'int32':
        return rng.standard_normal(size=tuple(built.input_shape)).astype(np.float32)
    emb = first_embedding(built.model)
    x = rng.randint(0, emb.num_embeddings, size=tuple(built.input_shape)).astype(np.int32)
    if emb.padding_idx is not None:
        x.reshape(-1)[1::4] = emb.padding_idx
    return x


def draw_target(rs, built):
    """(dump values, tensor) of a training target: for cross_entropy
    built.targets class labels per example in [0, built.classes) (an
    [N, T, V] output has N*T), for mse floats of the output's shape."""
    if built.loss_name == 'cross_entropy':
        lab = rs.randint(0, built.classes, size=built.batch * built.targets)
        return [float(v) for v in lab], torch.from_numpy(lab.astype(np.int64))
    tv = rs.standard_normal(size=tuple(built.output_shape)).astype(np.float32)
    return tv.reshape(-1).tolist(), torch.from_numpy(tv)


def target_rows(built, target, rows):
    """The targets of the first `rows` examples (all of them when 0)."""
    if not rows:
        return target
    return target[:rows * built.targets] if built.loss_name == 'cross_entropy' else target[:rows]


def has_nan(ref):
    return any(v is not None and any(math.isnan(f) for f in v) for _, v in ref)


def torch_fwdbwd(model, x_np, dy_np, dtype):
    """y, dx and every gradient from torch.  torch 1.13's float32 CPU
    backward is not always deterministic: for tests/diff s1/n291 (residuals,
    layer norms, a GRU and an LSTM) it gives NaN in x.grad at varying places
    in about one run in four, never in float64.  A float32 reference with a
    NaN where float64 has none is computed again (up to 5 times); one that
    keeps its NaN is used as it is (and nngen must match it)."""
    ref = _torch_fwdbwd(model, x_np, dy_np, dtype)
    if dtype != torch.float32 or not has_nan(ref):
        return ref
    if has_nan(_torch_fwdbwd(model, x_np, dy_np, torch.float64)):
        return ref
    for _ in range(5):
        again = _torch_fwdbwd(model, x_np, dy_np, dtype)
        if not has_nan(again):
            return again
    return ref


def _torch_fwdbwd(model, x_np, dy_np, dtype):
    m = copy.deepcopy(model).to(dtype)
    x = input_of(x_np, dtype, True)
    m.zero_grad(set_to_none=True)
    y = m(x)
    y.backward(torch.from_numpy(dy_np.copy()).to(dtype))
    ref = [('y', tensor_list(y))]
    if x.is_floating_point():   # no input gradient for indices
        ref.append(('dx', tensor_list(x.grad)))
    ref += [('grad.' + n, None if p.grad is None else tensor_list(p.grad))
            for n, p in m.named_parameters()]
    return ref


ADAM_SATURATES = ("torch's own float64 loss falls below 1e-3 of its first value under adam: "
                  "its updates (about lr, whatever the gradient's size) then follow "
                  "gradients made mostly of rounding errors")


def adam_saturates(built, losses64):
    """whether an adam run's float64 losses fall below 1e-3 of the first one
    (a saturating cross-entropy: the gradient is then about the loss, and
    float32's absolute rounding error in it, about 1e-7, becomes a large
    relative error, which adam's m / (sqrt(v) + eps) turns into updates of
    about lr)"""
    if not losses64 or built.make_optimizer is None:
        return False
    opt = built.make_optimizer([torch.zeros(1, requires_grad=True)])
    if not isinstance(opt, torch.optim.Adam):
        return False
    return min(abs(v) for v in losses64) < 1e-3 * abs(losses64[0])


# --------------------------------------------------------------------------
# kinks: a training run whose branch decisions sit within rounding error
#
# relu and leaky_relu switch their derivative at 0, max_pool2d its argmax
# where the two largest values of a window meet.  When torch's float64 run
# puts a layer input closer to such a point than NOISE_K times the rounding
# error float32 makes in that input (|z32 - z64| over the tensor), which
# branch a float32 computation takes is decided by rounding: nngen and torch
# float32 may take different ones, both correct, and the runs part from that
# step on by a finite amount (an update of about lr under adam).  The
# training checks then compare the steps before it, and say so.

KINK_K = NOISE_K
KINK_LAYERS = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.MaxPool2d)


class KinkWatch(object):
    """The inputs of every call of a kink layer of a model, in call order,
    since the last take()."""

    def __init__(self, model):
        self.calls = []
        self.handles = [mod.register_forward_pre_hook(self.hook(name))
                        for name, mod in model.named_modules() if isinstance(mod, KINK_LAYERS)]

    def hook(self, name):
        def h(mod, inp):
            self.calls.append((name, mod, inp[0].detach().clone()))
        return h

    def take(self):
        calls, self.calls = self.calls, []
        return calls

    def close(self):
        for h in self.handles:
            h.remove()


def _two(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def window_gaps(mod, z):
    """max_pool2d `mod` on z ([N, C, H, W] or [C, H, W]): for every window,
    its largest value minus its second largest (float64), windows with one
    finite value left out"""
    k, d, p = _two(mod.kernel_size), _two(mod.dilation), _two(mod.padding)
    s = _two(mod.stride if mod.stride else mod.kernel_size)
    z = z.double().reshape((-1, 1) + tuple(z.shape[-2:]))
    extra = [s[i] - 1 if mod.ceil_mode else 0 for i in range(2)]
    z = torch.nn.functional.pad(z, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]),
                                value=float('-inf'))
    u = torch.nn.functional.unfold(z, k, dilation=d, stride=s)
    if u.shape[1] < 2:
        return torch.zeros(0, dtype=torch.float64)
    top = u.topk(2, dim=1).values
    gap = (top[:, 0] - top[:, 1]).reshape(-1)
    return gap[torch.isfinite(gap)]


def first_kink(calls32, calls64):
    """None, or a description of the first kink-layer call whose float64
    input is within NOISE_K float32 rounding errors of a branch point.
    Values that are exactly at the point in both runs (a relu of a relu's
    zeros, a window of zeros) are the same decision in every float format
    and do not count."""
    for (name, mod, z32), (_, _, z64) in zip(calls32, calls64):
        z32 = z32.double()
        if isinstance(mod, torch.nn.MaxPool2d):
            g32, g64 = window_gaps(mod, z32), window_gaps(mod, z64)
            what = 'max_pool2d window with its two largest values'
        else:
            g32, g64 = z32.reshape(-1), z64.reshape(-1)
            what = 'input'
        if g32.shape != g64.shape or not g64.numel():
            continue
        d = (g32 - g64).abs()
        noise = torch.clamp(d, min=float(d.square().mean().sqrt()))
        near = (g64.abs() < KINK_K * noise) & ~((g32 == 0) & (g64 == 0))
        if bool(near.any()):
            i = int(torch.nonzero(near)[0])
            return ('%s %s %.3g apart from its kink in float64, within %d times float32\'s '
                    'rounding error %.3g there' % (name or 'the model', what, float(g64[i]),
                                                    KINK_K, float(noise[i])))
    return None


class TrainRun(object):
    """One torch training run, step by step (model, input and target in its
    dtype); with rng the global generator is saved and restored around each
    step, so two runs can interleave (dropout draws)."""

    def __init__(self, built, m, x, target, rng=False):
        self.built, self.m, self.x, self.t = built, m, x, target
        self.opt = built.make_optimizer(m.parameters())
        self.losses = []
        self.rng = torch.get_rng_state() if rng else None

    def step(self):
        if self.rng is not None:
            torch.set_rng_state(self.rng)
        self.opt.zero_grad()
        loss = self.built.loss(self.m(self.x), self.t)
        loss.backward()
        self.opt.step()
        self.losses.append(float(loss))
        if self.rng is not None:
            self.rng = torch.get_rng_state()


def kink_step(r32, r64, steps):
    """Run r32 and r64 side by side for `steps` steps; (k, why): k the first
    step whose forward pass meets a kink within rounding error (first_kink),
    or None."""
    w32, w64 = KinkWatch(r32.m), KinkWatch(r64.m)
    try:
        for k in range(steps):
            r32.step()
            r64.step()
            why = first_kink(w32.take(), w64.take())
            if why:
                return k, why
        return None, None
    finally:
        w32.close()
        w64.close()


KINK_AT_0 = ("the first step meets a kink within rounding error (%s): which branch float32 "
             "takes is rounding's choice")


def kink_note(k, steps, why):
    return ('the first %d of %d steps match; step %d meets a kink within rounding error '
            '(%s)' % (k, steps, k, why))

def train_verdict(res, label, check, steps, attempt, kink, ok_text):
    """Record a training check: attempt(n) compares n steps against torch
    (None when it recorded a skip itself, else (messages, torch's losses));
    kink() finds the first step meeting a kink within rounding error
    (kink_step).  All steps are compared; when they differ and a kink
    precedes the difference, the steps before the kink must match (the later
    ones follow a branch that rounding chose) and the check says
    so; with the kink in the first step it is skipped, with its reason."""
    r = attempt(steps)
    if r is None:
        return
    msgs, losses = r
    if not msgs:
        res.ok(label, check, ok_text % losses[-1])
        return
    k, why = kink()
    if k is None:
        res.fail(label, check, '\n'.join(msgs[:5]))
        return
    first = msgs[0].split('\n')[0]
    if k == 0:
        res.skip(label, check, (KINK_AT_0 % why) + '; all %d steps: %s' % (steps, first))
        return
    r = attempt(k)
    if r is None:
        return
    msgs_k, losses_k = r
    note = kink_note(k, steps, why) + '; all %d steps: %s' % (steps, first)
    if msgs_k:
        res.fail(label, check, '\n'.join(msgs_k[:5]) + '\n    (' + note + ')')
    else:
        res.ok(label, check, (ok_text % losses_k[-1]) + '; ' + note)

def train_run(built, model, x, target, dtype):
    """A TrainRun on a copy of model in dtype (x and a float target too)."""
    return TrainRun(built, copy.deepcopy(model).to(dtype), input_of(x, dtype),
                    target.to(dtype) if target.is_floating_point() else target)


def torch_train(built, model, x, target, steps, dtype):
    r = train_run(built, model, x, target, dtype)
    for _ in range(steps):
        r.step()
    return r.losses, [(n, tensor_list(p)) for n, p in r.m.named_parameters()]


# --------------------------------------------------------------------------
# modes, buffers and the generator (specs with batch_norm or dropout)

MODAL = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)
MODE_SEEDS = [0, 1, 42]
MODE_CALLS = 3


def rnn_dropout(m):
    """a recurrent layer with dropout between its stacked layers (training
    mode only, SPEC 1.2.4; with one layer torch draws nothing)"""
    return isinstance(m, torch.nn.RNNBase) and m.dropout > 0 and m.num_layers > 1


def is_modal(model):
    return any(isinstance(m, MODAL) or rnn_dropout(m) for m in model.modules())


def has_dropout(model):
    return any((isinstance(m, torch.nn.Dropout) and m.p > 0) or rnn_dropout(m)
               for m in model.modules())


def load_state(model, start):
    """start: {state_dict key: list of floats} (parameters and float buffers)."""
    with torch.no_grad():
        for k, t in model.state_dict(keep_vars=True).items():
            if k in start:
                t.copy_(torch.tensor(start[k], dtype=t.dtype).reshape(t.shape))


def buffers_of(m):
    return [('buf.' + n, tensor_list(b)) for n, b in m.named_buffers()]


def torch_modes(path, seed, start, x_np, dy_np, train, calls, dtype, jitter_rs=None):
    """torch.manual_seed(seed) and construction (nnspec.build), the start
    values, train()/eval(), then `calls` forward/backward passes: what
    `driver modes` prints.  jitter_rs: on a jittered() copy (parameters, x,
    dy and every layer input; the generator's stream, hence the dropout
    masks, unchanged)."""
    m = nnspec.build(path, seed=seed).model
    load_state(m, start)
    if jitter_rs is not None:
        m, (x_np, dy_np) = jittered(m, [x_np, dy_np], jitter_rs)
    m = m.to(dtype)
    m.train(train)
    x = input_of(x_np, dtype, True)
    dy = torch.from_numpy(dy_np.copy()).to(dtype)
    ref = []
    for k in range(calls):
        y = m(x)
        y.backward(dy)
        ref.append(('y.%d' % k, tensor_list(y)))
        if x.is_floating_point():   # no input gradient for indices
            ref.append(('dx.%d' % k, tensor_list(x.grad)))
            x.grad = None
    ref += [('grad.' + n, None if p.grad is None else tensor_list(p.grad))
            for n, p in m.named_parameters()]
    return ref + buffers_of(m)


def zero_pattern(got, ref, noise=None):
    """The elements that are exactly zero in y.K and dx.K must be the same
    (dropout masks bit for bit: a dropped element is 0 on both sides), but
    for elements within NOISE_K times the tensor's noise of zero (the value
    is 0 analytically, and float32 rounding gives 0 on one side and not on
    the other: a saturated tanh, a layer_norm over one element)."""
    msgs = []
    for (n, a), (_, b) in zip(got, ref):
        if a is None or b is None or not (n.startswith('y.') or n.startswith('dx.')):
            continue
        lim = NOISE_K * (noise or {}).get(n, 0.0)
        bad = [i for i, (u, v) in enumerate(zip(a, b))
               if (u == 0) != (v == 0) and max(abs(u), abs(v)) > lim]
        if bad:
            msgs.append('%s: zeros differ from torch at %d of %d elements (first [%d]: got %r, '
                        'torch %r)' % (n, len(bad), len(a), bad[0], a[bad[0]], b[bad[0]]))
    return msgs


# --------------------------------------------------------------------------
# per-spec work

def custom_names(obj, acc):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'custom' and isinstance(v, str):
                acc.add(v)
            else:
                custom_names(v, acc)
    elif isinstance(obj, list):
        for v in obj:
            custom_names(v, acc)
    return acc


class Spec(object):
    def __init__(self, args, path, label, work):
        self.args = args
        self.path = path
        self.label = label
        self.work = work

    def nngen(self, *a):
        return [self.args.nngen] + list(a)

    def compile(self, sub, extra_nngen, built, check_no_blas=False, extra_defs=()):
        """nngen + cc into W/sub; returns (driver path, None) or, when only the
        training part of the driver does not compile, (driver built without
        NET_HAS_TRAIN, the error)."""
        d = os.path.join(self.work, sub)
        os.makedirs(d, exist_ok=True)
        out_c = os.path.join(d, 'net.c')
        must(self.nngen(self.path, '-o', out_c, *extra_nngen), 'nngen')
        for f in ('net.c', 'net.h'):
            if not os.path.isfile(os.path.join(d, f)):
                raise CheckError('nngen did not write %s' % f)
        defs = ['-DNET_H="net.h"', '-DNET=%s' % built.name, '-DNET_HAS_ROWS'] + list(extra_defs)
        if is_modal(built.model):
            defs.append('-DNET_HAS_MODES')
        if built.input_dtype == 'int32':
            defs.append('-DNET_INPUT_INT32')
        train_defs = []
        if built.loss_name and '--inference' not in extra_nngen:
            train_defs.append('-DNET_HAS_TRAIN')
            if built.loss_name == 'cross_entropy':
                train_defs += ['-DNET_TARGET_INT', '-DNET_TARGETS=%d' % built.targets]
        inc = ['-I' + d, '-I' + self.args.include]
        objs = []
        net_o = os.path.join(d, 'net.o')
        must([self.args.cc] + CFLAGS + self.args.extra_cflags + inc + ['-c', out_c, '-o', net_o], 'cc net.c')
        objs.append(net_o)
        if check_no_blas:
            rc, out, err = run(['nm', '-u', net_o])
            if rc == 0:
                bad = [l.split()[-1] for l in out.splitlines()
                       if any(sym in l for sym in NO_BLAS_FORBIDDEN)]
                if bad:
                    raise CheckError('--no-blas code references %s' % ', '.join(bad))
        drv_o = os.path.join(d, 'driver.o')
        drv_c = os.path.join(HERE, 'driver.c')
        train_err = None
        try:
            must([self.args.cc] + CFLAGS + self.args.extra_cflags + inc + defs + train_defs + ['-c', drv_c, '-o', drv_o],
                 'cc driver.c')
        except CheckError as e:
            if not train_defs:
                raise
            must([self.args.cc] + CFLAGS + self.args.extra_cflags + inc + defs + ['-c', drv_c, '-o', drv_o],
                 'cc driver.c')
            train_err = 'the training API does not compile: %s' % e
        objs.append(drv_o)
        names = sorted(custom_names(built.spec, set()))
        if names:
            stem = os.path.splitext(self.path)[0] + '.c'
            if os.path.isfile(stem):
                src = stem
            else:
                src = os.path.join(d, 'custom_stubs.c')
                with open(src, 'w') as f:
                    f.write('/* stand-ins for the spec\'s custom initializers */\n'
                            '#include <nngen/rt.h>\n')
                    for n in names:
                        f.write('void %s(nn_tensor *param, nn_rng *rng);\n'
                                'void %s(nn_tensor *param, nn_rng *rng)\n'
                                '{\n    nn_init_uniform(param, rng, -0.5f, 0.5f);\n}\n'
                                % (n, n))
            o = os.path.join(d, 'custom.o')
            must([self.args.cc] + CFLAGS + self.args.extra_cflags + inc + ['-c', src, '-o', o], 'cc custom')
            objs.append(o)
        exe = os.path.join(d, 'driver')
        must([self.args.cc] + self.args.extra_cflags + ['-o', exe] + objs + [self.args.rt_lib] + self.args.blas_libs
             + ['-lm'], 'link')
        return exe, train_err

    def driver(self, exe, *a):
        out = must([exe] + list(a), 'driver ' + (a[0] if a else ''))
        try:
            return out, nnspec.parse_dump(out) if a and a[0] in ('init', 'run', 'modes') else None
        except nnspec.DumpError as e:
            raise CheckError('driver output is not in dump format: %s' % e)


def check_spec(args, path, label, res, seeds=SEEDS, no_blas=True, noise_samples=0,
               skip_diverging=False):
    """Every check of the module docstring on one spec, reported to res
    (a harness.Result) under label.  seeds: the init seeds; no_blas=False
    leaves out the --no-blas compile and its fwd/bwd (tests/diff does).
    noise_samples: torch's own rounding error ("noise") is also measured on
    that many jittered copies (jittered(): float32 with one-ulp random
    perturbations against float64 without), the largest error counting
    (tests/diff uses 3).  skip_diverging: a train check
    whose torch reference (float32 or float64) has a non-finite loss or
    parameter is skipped (inf against nan says nothing; tests/diff, whose
    random networks and learning rates sometimes diverge), and so is one
    whose adam run saturates (adam_saturates).  The modal checks
    (batch_norm, dropout) honour noise_samples, skip_diverging and no_blas
    too."""
    work = tempfile.mkdtemp(prefix='conform-', dir=args.workdir)
    sp = Spec(args, path, label, work)
    try:
        try:
            built = nnspec.build(path, seed=0, allow_unsupported_init=True)
        except nnspec.NNSpecError as e:
            res.fail(label, 'torch model', 'nnspec cannot build it: %s' % e)
            return
        except Exception as e:  # noqa - report, never crash the whole run
            res.fail(label, 'torch model', 'nnspec crashed: %r' % e)
            return

        # ---- names (no compile needed)
        for check, flag, want in (('params', '--params', nnspec.params_text(built.model)),
                                  ('print', '--print', nnspec.print_text(built.model))):
            try:
                out = must(sp.nngen(flag, path), 'nngen ' + flag)
                if out == want:
                    res.ok(label, check)
                else:
                    res.fail(label, check, 'differs from torch:\n' + text_diff(out, want))
            except CheckError as e:
                res.fail(label, check, str(e))

        # ---- compile + determinism
        exe = None
        train_err = 'not run: compile failed'
        try:
            exe, train_err = sp.compile('a', [], built)
            if train_err:
                res.fail(label, 'compile', train_err)
            else:
                res.ok(label, 'compile')
        except CheckError as e:
            res.fail(label, 'compile', str(e))
        try:
            if exe is None:
                raise CheckError('not run: compile failed')
            d2 = os.path.join(work, 'b')
            os.makedirs(d2)
            must(sp.nngen(path, '-o', os.path.join(d2, 'net.c')), 'nngen (second run)')
            diff = [f for f in ('net.c', 'net.h')
                    if open(os.path.join(work, 'a', f), 'rb').read()
                    != open(os.path.join(d2, f), 'rb').read()]
            if diff:
                res.fail(label, 'determinism', 'two runs differ in %s' % ', '.join(diff))
            else:
                res.ok(label, 'determinism')
        except CheckError as e:
            res.fail(label, 'determinism', str(e))

        # ---- info
        try:
            if exe is None:
                raise CheckError('not run: compile failed')
            out, _ = sp.driver(exe, 'info')
            want = 'batch %d\nin %d\nout %d\n' % (built.batch, built.in_size, built.out_size)
            want += ''.join('param %s %d\n' % (n, p.numel())
                            for n, p in built.model.named_parameters())
            if out == want:
                res.ok(label, 'info')
            else:
                res.fail(label, 'info', text_diff(out, want))
        except CheckError as e:
            res.fail(label, 'info', str(e))

        # ---- init
        exactness = nnspec.init_exactness(built)
        for seed in seeds:
            check = 'init seed=%d' % seed
            if exactness == 'unsupported':
                res.skip(label, check, 'init comparison not applicable (%s)'
                         % '; '.join(sorted(set(built.unsupported))))
                continue
            try:
                if exe is None:
                    raise CheckError('not run: compile failed')
                b = nnspec.build(path, seed=seed)
                ref = [(n, tensor_list(p)) for n, p in b.model.named_parameters()]
                _, got = sp.driver(exe, 'init', str(seed))
                tol = 0 if exactness == 'exact' else TOL_INIT
                msgs = compare_dumps(got, ref, tol)
                if msgs:
                    res.fail(label, check, '\n'.join(msgs[:5]))
                else:
                    res.ok(label, check, 'bit-identical' if tol == 0 else 'tol %g' % tol)
            except (CheckError, nnspec.NNSpecError) as e:
                res.fail(label, check, str(e))

        # ---- forward/backward (with BLAS, then --no-blas)
        rng = np.random.RandomState(zlib.crc32(label.encode()) & 0x7fffffff)
        model = built.model
        params = list(model.named_parameters())
        with torch.no_grad():
            for n, p in params:
                if p.dim() >= 2:
                    fan_in = p[0].numel()
                    bound = math.sqrt(6.0 / fan_in)
                    v = rng.uniform(-bound, bound, size=tuple(p.shape))
                else:
                    v = rng.uniform(-0.5, 0.5, size=tuple(p.shape))
                p.copy_(torch.from_numpy(v.astype(np.float32)))
        modal = is_modal(model)
        if modal:
            # buffers from the start too (float ones: running statistics), so
            # that eval mode and the running updates see values of their own
            with torch.no_grad():
                for n, b in model.named_buffers():
                    if b.is_floating_point():
                        lo = 0.5 if n.endswith('running_var') else -0.5
                        v = rng.uniform(lo, lo + 1.0, size=tuple(b.shape))
                        b.copy_(torch.from_numpy(v.astype(np.float32)))
        start = [(n, tensor_list(p)) for n, p in params]
        if modal:
            start += [(n, tensor_list(b)) for n, b in model.named_buffers()
                      if b.is_floating_point()]
        x_np = draw_x(rng, built)
        dy_np = rng.standard_normal(size=tuple(built.output_shape)).astype(np.float32)
        pfile = os.path.join(work, 'params.dump')
        xfile = os.path.join(work, 'x.dump')
        dyfile = os.path.join(work, 'dy.dump')
        write(pfile, start)
        write(xfile, [('x', x_np.reshape(-1).tolist())])
        write(dyfile, [('dy', dy_np.reshape(-1).tolist())])
        R = (built.batch + 1) // 2 if built.batch > 1 else 0
        nrs = np.random.RandomState((zlib.crc32(label.encode()) + 1) & 0x7fffffff)

        def sampled_fwdbwd(noise, x, dy):
            ref64 = None
            for _ in range(noise_samples):
                if ref64 is None:
                    ref64 = torch_fwdbwd(model, x, dy, torch.float64)
                m2, (x2, dy2) = jittered(model, [x, dy], nrs)
                max_noise(noise, noise_of(torch_fwdbwd(m2, x2, dy2, torch.float32), ref64))
            return noise

        exe_main = exe
        if modal:
            modal_checks(sp, built, path, label, res, exe, dict(start), x_np, dy_np, pfile,
                         xfile, dyfile, R, no_blas=no_blas, noise_samples=noise_samples,
                         nrs=nrs, skip_diverging=skip_diverging)
            exe = None  # the plain run and train checks are the modal ones here
            ref = noise = None
        else:
            ref = torch_fwdbwd(model, x_np, dy_np, torch.float32)
            noise = noise_of(ref, torch_fwdbwd(model, x_np, dy_np, torch.float64))
            sampled_fwdbwd(noise, x_np, dy_np)

        # a partial batch: the first R rows alone (P_forward_n, P_backward_n)
        if R and not modal:
            ref_n = torch_fwdbwd(model, x_np[:R], dy_np[:R], torch.float32)
            noise_n = noise_of(ref_n, torch_fwdbwd(model, x_np[:R], dy_np[:R], torch.float64))
            sampled_fwdbwd(noise_n, x_np[:R], dy_np[:R])

        def fwdbwd(check, exe_, rows=0):
            try:
                if exe_ is None:
                    raise CheckError('not run: compile failed')
                extra = ['rows=%d' % rows] if rows else []
                _, got = sp.driver(exe_, 'run', pfile, xfile, dyfile, *extra)
                msgs = compare_dumps(got, ref_n if rows else ref, TOL_FWD,
                                     noise_n if rows else noise)
                if msgs:
                    res.fail(label, check, '\n'.join(msgs[:5]))
                else:
                    res.ok(label, check)
            except CheckError as e:
                res.fail(label, check, str(e))

        if not modal:
            fwdbwd('fwd/bwd', exe)
            if R:
                fwdbwd('fwd/bwd rows=%d of %d' % (R, built.batch), exe, R)
        if not modal and no_blas:
            try:
                exe_nb, _ = sp.compile('noblas', ['--no-blas'], built, check_no_blas=True)
            except CheckError as e:
                exe_nb = None
                res.fail(label, 'compile --no-blas', str(e))
            fwdbwd('fwd/bwd --no-blas', exe_nb)

        # ---- indices out of range at run time (input_dtype: int32 only)
        if built.input_dtype == 'int32':
            badidx_checks(sp, built, path, label, res, exe_main, train_err, dict(start), x_np,
                          pfile, xfile, modal)

        # ---- train
        if built.loss_name and not modal:
            check = 'train %d steps' % args.steps
            try:
                if exe is None or train_err:
                    raise CheckError('not run: ' + ('the training API does not compile'
                                                    if train_err else 'compile failed'))
                tfile = os.path.join(work, 'target.dump')
                xt = torch.from_numpy(x_np.copy())
                tvals, target = draw_target(rng, built)
                write(tfile, [('target', tvals)])

                def train_check(check, rows):
                    xr = xt[:rows] if rows else xt
                    tr = target_rows(built, target, rows)

                    def attempt(steps):
                        """None (skipped), or (messages, torch's float32 losses)"""
                        losses, final = torch_train(built, model, xr, tr, steps, torch.float32)
                        losses64, final64 = torch_train(built, model, xr, tr, steps,
                                                        torch.float64)
                        if skip_diverging and not all(
                                math.isfinite(v) for v in losses + losses64 + [
                                    x for _, t in final + final64 for x in t]):
                            res.skip(label, check, "torch's own training diverges (a loss or "
                                     "parameter is not finite)")
                            return None
                        if skip_diverging and adam_saturates(built, losses64):
                            res.skip(label, check, ADAM_SATURATES)
                            return None
                        noise = noise_of(final, final64)
                        noise['loss'] = max(abs(a - b) for a, b in zip(losses, losses64))
                        for _ in range(noise_samples):
                            fl = [a.numpy() for a in (xr, tr)]
                            m2, (x2, t2) = jittered(model, fl, nrs)
                            x2, t2 = torch.from_numpy(x2), torch.from_numpy(t2)
                            l32, f32 = torch_train(built, m2, x2, t2, steps, torch.float32)
                            max_noise(noise, noise_of(f32, final64))
                            max_noise(noise, {'loss': max([abs(a - b)
                                                           for a, b in zip(l32, losses64)
                                                           if math.isfinite(a - b)] or [0.0])})
                        extra = ['rows=%d' % rows] if rows else []
                        out = must([exe, 'train', pfile, xfile, tfile, str(steps)] + extra,
                                   'driver train')
                        lines = out.splitlines(True)
                        got_losses = []
                        for k in range(steps):
                            parts = lines[k].split() if k < len(lines) else []
                            if len(parts) != 3 or parts[0] != 'loss' or parts[1] != str(k):
                                raise CheckError('expected "loss %d VALUE", got %r'
                                                 % (k, lines[k] if k < len(lines) else '<eof>'))
                            try:
                                got_losses.append(nnspec.parse_float(parts[2]))
                            except ValueError:
                                raise CheckError('bad loss value %r' % parts[2])
                        try:
                            got_params = nnspec.parse_dump(''.join(lines[steps:]))
                        except nnspec.DumpError as e:
                            raise CheckError('final parameters: %s' % e)
                        msgs = []
                        m = compare('loss', got_losses, losses, TOL_TRAIN, noise['loss'])
                        if m:
                            msgs.append(m)
                        msgs += compare_dumps(got_params, final, TOL_TRAIN, noise)
                        return msgs, losses

                    def kink():
                        return kink_step(train_run(built, model, xr, tr, torch.float32),
                                         train_run(built, model, xr, tr, torch.float64),
                                         args.steps)
                    train_verdict(res, label, check, args.steps, attempt, kink,
                                  '%s, final loss %%.6g' % built.loss_name)

                train_check(check, 0)
                if R:
                    check = 'train %d steps rows=%d of %d' % (args.steps, R, built.batch)
                    train_check(check, R)
            except CheckError as e:
                res.fail(label, check, str(e))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print('     (kept %s)' % work)


def modal_checks(sp, built, path, label, res, exe, start, x_np, dy_np, pfile, xfile, dyfile,
                 R, no_blas=True, noise_samples=0, nrs=None, skip_diverging=False):
    """Specs with batch_norm or dropout: `driver modes` in training mode
    (several seeds, several calls in a row: the generator continues; the
    running statistics and num_batches_tracked after them) and in eval mode,
    on the full batch and on R rows, with and without BLAS (no_blas=False:
    without the --no-blas ones); then 20 train steps (`driver trainm`) with
    the buffers at the end.  noise_samples, nrs, skip_diverging: as for
    check_spec (the rounding error also measured on noise_samples jittered
    copies drawn from the numpy RandomState nrs; a train check whose torch
    reference diverges skipped)."""
    drop = has_dropout(built.model)

    def one(check, exe_, train, seed, calls, rows=0, forward_only=False):
        try:
            if exe_ is None:
                raise CheckError('not run: compile failed')
            xr, dyr = (x_np[:rows], dy_np[:rows]) if rows else (x_np, dy_np)
            ref = torch_modes(path, seed, start, xr, dyr, train, calls, torch.float32)
            ref64 = torch_modes(path, seed, start, xr, dyr, train, calls, torch.float64)
            noise = noise_of(ref, ref64)
            for _ in range(noise_samples):
                max_noise(noise, noise_of(torch_modes(path, seed, start, xr, dyr, train, calls,
                                                      torch.float32, jitter_rs=nrs), ref64))
            if forward_only:  # an --inference build: outputs and buffers only
                ref = [(n, v) for n, v in ref if n.startswith('y.') or n.startswith('buf.')]
            extra = ['rows=%d' % rows] if rows else []
            _, got = sp.driver(exe_, 'modes', 'train' if train else 'eval', str(seed),
                               str(calls), pfile, xfile, dyfile, *extra)
            msgs = compare_dumps(got, ref, TOL_FWD, noise)
            if not msgs and drop:
                msgs = zero_pattern(got, ref, noise)
            if msgs:
                res.fail(label, check, '\n'.join(msgs[:5]))
            else:
                res.ok(label, check, '%d calls%s' % (calls, ', dropout zeros identical'
                                                    if drop and train else ''))
        except (CheckError, nnspec.NNSpecError) as e:
            res.fail(label, check, str(e))
        except Exception as e:  # noqa - torch refusing the input: this check fails
            res.fail(label, check, 'the torch reference raised %s: %s'
                     % (type(e).__name__, first_line_of(e)))

    for seed in MODE_SEEDS if drop else MODE_SEEDS[:1]:
        one('fwd/bwd train seed=%d' % seed, exe, True, seed, MODE_CALLS)
    one('fwd/bwd eval', exe, False, 0, 2)
    if R:
        one('fwd/bwd train rows=%d of %d' % (R, built.batch), exe, True, 0, MODE_CALLS, R)
        one('fwd/bwd eval rows=%d of %d' % (R, built.batch), exe, False, 0, 1, R)
    if no_blas:
        try:
            exe_nb, _ = sp.compile('noblas', ['--no-blas'], built, check_no_blas=True)
        except CheckError as e:
            exe_nb = None
            res.fail(label, 'compile --no-blas', str(e))
        one('fwd/bwd train --no-blas', exe_nb, True, 0, MODE_CALLS)
        one('fwd/bwd eval --no-blas', exe_nb, False, 0, 1)
    # --inference (batch norms folded into the layer before them in eval
    # mode, see compiler/emit.c emit_folded): the forward in both modes
    try:
        exe_inf, _ = sp.compile('inference', ['--inference'], built,
                                extra_defs=['-DNET_FORWARD_ONLY'])
    except CheckError as e:
        exe_inf = None
        res.fail(label, 'compile --inference', str(e))
    one('fwd eval --inference', exe_inf, False, 0, 2, forward_only=True)
    if R:
        one('fwd eval --inference rows=%d of %d' % (R, built.batch), exe_inf, False, 0, 1, R,
            forward_only=True)
    one('fwd train --inference', exe_inf, True, 0, MODE_CALLS, forward_only=True)

    if not built.loss_name:
        return
    steps = sp.args.steps
    tfile = os.path.join(sp.work, 'target.dump')
    trng = np.random.RandomState(zlib.crc32(('train ' + label).encode()) & 0x7fffffff)
    tvals, target = draw_target(trng, built)
    write(tfile, [('target', tvals)])
    xt = torch.from_numpy(x_np.copy())

    def trainm_setup(rows, dtype, seed=0, jitter=False):
        """(model, x, target) in dtype, the generator as after P_init(seed)"""
        m = nnspec.build(path, seed=seed).model
        load_state(m, start)
        x = xt[:rows] if rows else xt
        t = target_rows(built, target, rows)
        if jitter:
            m, (x, t2) = jittered(m, [x.numpy(), t.numpy()], nrs)
            x = torch.from_numpy(x)
            t = torch.from_numpy(t2) if t.is_floating_point() else t
        m = m.to(dtype)
        m.train(True)
        x = input_of(x, dtype)
        if t.is_floating_point():
            t = t.to(dtype)
        return m, x, t

    def torch_trainm(rows, dtype, n, seed=0, jitter=False):
        r = TrainRun(built, *trainm_setup(rows, dtype, seed, jitter))
        for _ in range(n):
            r.step()
        return r.losses, [(name, tensor_list(p)) for name, p in r.m.named_parameters()] + \
            buffers_of(r.m)

    def train_check(check, rows):
        def attempt(n):
            """None (skipped), or (messages, torch's float32 losses)"""
            losses, final = torch_trainm(rows, torch.float32, n)
            losses64, final64 = torch_trainm(rows, torch.float64, n)
            if skip_diverging and not all(
                    math.isfinite(v) for v in losses + losses64 + [
                        x for _, t in final + final64 for x in t]):
                res.skip(label, check, "torch's own training diverges (a loss, parameter "
                         "or buffer is not finite)")
                return None
            if skip_diverging and adam_saturates(built, losses64):
                res.skip(label, check, ADAM_SATURATES)
                return None
            noise = noise_of(final, final64)
            noise['loss'] = max(abs(a - b) for a, b in zip(losses, losses64))
            for _ in range(noise_samples):
                l32, f32 = torch_trainm(rows, torch.float32, n, jitter=True)
                max_noise(noise, noise_of(f32, final64))
                max_noise(noise, {'loss': max([abs(a - b) for a, b in zip(l32, losses64)
                                               if math.isfinite(a - b)] or [0.0])})
            extra = ['rows=%d' % rows] if rows else []
            out = must([exe, 'trainm', '0', pfile, xfile, tfile, str(n)] + extra,
                       'driver trainm')
            lines = out.splitlines(True)
            got_losses = []
            for k in range(n):
                parts = lines[k].split() if k < len(lines) else []
                if len(parts) != 3 or parts[0] != 'loss' or parts[1] != str(k):
                    raise CheckError('expected "loss %d VALUE", got %r'
                                     % (k, lines[k] if k < len(lines) else '<eof>'))
                got_losses.append(nnspec.parse_float(parts[2]))
            try:
                got = nnspec.parse_dump(''.join(lines[n:]))
            except nnspec.DumpError as e:
                raise CheckError('final parameters: %s' % e)
            msgs = []
            m = compare('loss', got_losses, losses, TOL_TRAIN, noise['loss'])
            if m:
                msgs.append(m)
            msgs += compare_dumps(got, final, TOL_TRAIN, noise)
            return msgs, losses

        def kink():
            r32 = TrainRun(built, *trainm_setup(rows, torch.float32), rng=True)
            r64 = TrainRun(built, *trainm_setup(rows, torch.float64), rng=True)
            return kink_step(r32, r64, steps)

        try:
            if exe is None:
                raise CheckError('not run: compile failed')
            train_verdict(res, label, check, steps, attempt, kink,
                          '%s, final loss %%.6g, buffers too' % built.loss_name)
        except (CheckError, ValueError) as e:
            res.fail(label, check, str(e))
        except Exception as e:  # noqa - torch refusing the input: this check fails
            res.fail(label, check, 'the torch reference raised %s: %s'
                     % (type(e).__name__, first_line_of(e)))

    train_check('train %d steps (training mode, seed 0)' % steps, 0)
    if R:
        train_check('train %d steps rows=%d of %d' % (steps, R, built.batch), R)


def badidx_checks(sp, built, path, label, res, exe, train_err, start, x_np, pfile, xfile,
                  modal):
    """SPEC 1.2.4, an index out of range or a negative one (input_dtype:
    int32): `driver badidx` with X and XBAD, X with one index set to num (one
    past the end) in the first example and one set to -1 in the last (both
    in the one example when the batch is 1).

      bad index: P_forward   (in eval mode for a mode-dependent spec) sets
                 nn_error(), writes NaN over the rows of the bad examples and
                 torch's output over the others (not compared, only checked
                 finite, when an eval-mode batch_norm uses batch statistics);
                 a mode-dependent spec also in training mode on an instance of
                 its own: nn_error(), the same NaN rows, the others finite
      bad index: P_loss, P_train_step   (specs with train:) a valid
                 P_train_step, then P_loss and P_train_step on XBAD: each
                 returns NaN, sets nn_error() and changes nothing (every
                 state_dict tensor and gradient bit for bit, the generator),
                 then a valid P_train_step: the two losses and the final
                 parameters (and buffers) against torch's two steps
                 (optimizer state untouched by the failed step), TOL_TRAIN"""
    fcheck, tcheck = 'bad index: P_forward', 'bad index: P_loss, P_train_step'
    has_train = bool(built.loss_name)
    try:
        if exe is None:
            raise CheckError('not run: compile failed')
        if has_train and train_err:
            raise CheckError('not run: the training API does not compile')
        emb = first_embedding(built.model)
        num, n = emb.num_embeddings, built.batch
        xb = x_np.copy().reshape(n, -1)
        xb[0, -1] = num
        xb[n - 1, 0] = -1
        bad_rows = sorted({0, n - 1})
        xbfile = os.path.join(sp.work, 'xbad.dump')
        write(xbfile, [('x', xb.reshape(-1).astype(np.float64).tolist())])
        argv = [exe, 'badidx', pfile, xfile, xbfile]
        if has_train:
            trng = np.random.RandomState(zlib.crc32(('badidx ' + label).encode()) & 0x7fffffff)
            tvals, target = draw_target(trng, built)
            tfile = os.path.join(sp.work, 'target_badidx.dump')
            write(tfile, [('target', tvals)])
            argv.append(tfile)
        out = must(argv, 'driver badidx')
        lines = out.splitlines(True)
        keys = ['forward_train_error'] if modal else []
        keys.append('forward_error')
        if has_train:
            keys += ['loss0', 'loss_bad', 'loss_error', 'loss_changed', 'step_bad', 'step_error',
                     'step_changed', 'loss1']
        got = {}
        for i, k in enumerate(keys):
            parts = lines[i].split() if i < len(lines) else []
            if len(parts) != 2 or parts[0] != k:
                raise CheckError('driver badidx: expected "%s VALUE", got %r'
                                 % (k, lines[i] if i < len(lines) else '<eof>'))
            got[k] = parts[1]
        try:
            dump = nnspec.parse_dump(''.join(lines[len(keys):]))
        except nnspec.DumpError as e:
            raise CheckError('driver badidx output: %s' % e)
        if not dump or dump[0][0] != 'y':
            raise CheckError('driver badidx: no y')
        y = dump[0][1]
        ytrain = None
        if modal:
            if len(dump) < 2 or dump[1][0] != 'y.train':
                raise CheckError('driver badidx: no y.train')
            ytrain = dump[1][1]
            dump = dump[1:]
    except CheckError as e:
        res.fail(label, fcheck, str(e))
        if has_train:
            res.fail(label, tcheck, str(e))
        return

    # ---- the forward
    def ref_model(dtype):
        if modal:
            m = nnspec.build(path, seed=0).model
            load_state(m, start)
            m.eval()
        else:
            m = copy.deepcopy(built.model)
        return m.to(dtype)

    msgs = []
    if got['forward_error'] != '1':
        msgs.append('nn_error() is not set after P_forward with a bad index%s'
                    % (' (eval mode)' if modal else ''))
    per = built.out_size
    rows = [y[r * per:(r + 1) * per] for r in range(n)]
    good = [r for r in range(n) if r not in bad_rows]
    for r in bad_rows:
        if not all(v != v for v in rows[r]):
            msgs.append('row %d (a bad index) is not all NaN: %s' % (
                r, ', '.join(nnspec.format_float(v) for v in rows[r][:4])))
    if modal:
        # training mode: the same NaN rows; the others finite (their values
        # depend on the draws, not compared)
        if got['forward_train_error'] != '1':
            msgs.append('nn_error() is not set after P_forward with a bad index in training '
                        'mode')
        for r in range(n):
            row = ytrain[r * per:(r + 1) * per]
            if r in bad_rows and not all(v != v for v in row):
                msgs.append('training mode: row %d (a bad index) is not all NaN' % r)
            if r not in bad_rows and not all(math.isfinite(v) for v in row):
                msgs.append('training mode: row %d (valid indices) is not finite' % r)
    batch_stats = any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
                      and not mod.track_running_stats for mod in built.model.modules())
    if good:
        with torch.no_grad():
            ref = tensor_list(ref_model(torch.float32)(input_of(x_np, torch.float32)))
            ref64 = tensor_list(ref_model(torch.float64)(input_of(x_np, torch.float64)))
        for r in good:
            g, w, w64 = rows[r], ref[r * per:(r + 1) * per], ref64[r * per:(r + 1) * per]
            if batch_stats:
                if not all(math.isfinite(v) for v in g):
                    msgs.append('row %d (valid indices) is not finite' % r)
                continue
            noise = max(abs(a - b) for a, b in zip(w, w64))
            m = compare('y row %d (valid indices)' % r, g, w, TOL_FWD, noise)
            if m:
                msgs.append(m)
    if msgs:
        res.fail(label, fcheck, '\n'.join(msgs[:5]))
    else:
        res.ok(label, fcheck, 'NaN rows %s, nn_error() set' % ', '.join(map(str, bad_rows)))
    if not has_train:
        return

    # ---- P_loss and P_train_step
    msgs = []
    for call, v, e, c in (('P_loss', 'loss_bad', 'loss_error', 'loss_changed'),
                          ('P_train_step', 'step_bad', 'step_error', 'step_changed')):
        try:
            val = nnspec.parse_float(got[v])
        except ValueError:
            val = 0.0
        if val == val:
            msgs.append('%s with a bad index returned %s, not NaN' % (call, got[v]))
        if got[e] != '1':
            msgs.append('nn_error() is not set after %s with a bad index' % call)
        if got[c] != '-':
            msgs.append('%s with a bad index changed %s' % (call, got[c]))

    def torch_two_steps(dtype):
        if modal:
            m = nnspec.build(path, seed=0).model
            load_state(m, start)
        else:
            m = copy.deepcopy(built.model)
        m = m.to(dtype)
        m.train(True)
        t = target.to(dtype) if target.is_floating_point() else target
        x = input_of(x_np, dtype)
        opt = built.make_optimizer(m.parameters())
        losses = []
        for _ in range(2):
            opt.zero_grad()
            loss = built.loss(m(x), t)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        final = [(nm, tensor_list(p)) for nm, p in m.named_parameters()]
        return losses, final + (buffers_of(m) if modal else [])

    try:
        losses, final = torch_two_steps(torch.float32)
        losses64, final64 = torch_two_steps(torch.float64)
        noise = noise_of(final, final64)
        got_losses = [nnspec.parse_float(got['loss0']), nnspec.parse_float(got['loss1'])]
        m = compare('loss', got_losses, losses, TOL_TRAIN,
                    max(abs(a - b) for a, b in zip(losses, losses64)))
        if m:
            msgs.append('valid steps around the failed ones: ' + m)
        msgs += ['after the failed step and one more: ' + x
                 for x in compare_dumps(dump[1:], final, TOL_TRAIN, noise)]
    except ValueError as e:
        msgs.append('bad loss value: %s' % e)
    if msgs:
        res.fail(label, tcheck, '\n'.join(msgs[:6]))
    else:
        res.ok(label, tcheck, 'NaN, nn_error() set, nothing changed; the next step as torch')


def first_line_of(e):
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ''


def collect(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith('.yaml'):
                        found.append(os.path.join(root, f))
            out += [(f, os.path.relpath(f, p)) for f in sorted(found)]
        else:
            out.append((p, os.path.basename(p)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--rt-lib', required=True, help='the runtime static library')
    ap.add_argument('--include', required=True, help='directory holding nngen/rt.h')
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('--extra-cflags', default='', help='added to every compile and link (e.g. sanitizer flags)')
    ap.add_argument('--blas-libs', default='-lopenblas',
                    help='link flags for BLAS (default: -lopenblas)')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--keep', action='store_true', help='keep the work directories')
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('specs', nargs='+', help='spec files or directories (all **/*.yaml)')
    args = ap.parse_args()
    args.nngen = os.path.abspath(args.nngen)
    args.rt_lib = os.path.abspath(args.rt_lib)
    args.include = os.path.abspath(args.include)
    args.blas_libs = args.blas_libs.split()
    args.extra_cflags = args.extra_cflags.split()
    torch.set_num_threads(1)

    specs = collect(args.specs)
    res = Result()
    if not specs:
        res.fail('-', 'specs', 'no spec found in %s' % ' '.join(args.specs))
    for path, label in specs:
        check_spec(args, path, label, res)
    status = res.summary()
    sys.stdout.flush()
    return status


if __name__ == '__main__':
    sys.exit(main())
