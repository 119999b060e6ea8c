#!/usr/bin/python3
"""`nngen --emit pytorch` against the PyTorch oracle (tests/torch/nnspec.py).

usage: test_emitpy.py --nngen NNGEN [--rt-lib LIB --include DIR --driver DRIVER_C]
                      [--cc CC] [--extra-cflags FLAGS] [--keep] SPEC|DIR ...

For every spec (a directory means all of its **/*.yaml) it runs
`nngen --emit pytorch SPEC -o W/NAME.py`, imports the file and checks, one
line per check (PASS|FAIL|SKIP SPEC: CHECK[: why]):

  emit         nngen exits 0, silent, and leaves exactly the one output file
  determinism  a second run gives byte-identical output
  import       the file imports and build() runs
  names        state_dict keys and named_parameters names, in order, as the
               hand-built torch model from nnspec.build() and `nngen --params`
  sharing      the same module objects and tensors are shared: shared
               modules are one object used in several places, blocks fresh
               instances (identity pattern of named_modules(remove_duplicate=
               False) and of state_dict(keep_vars=True))
  print        print(net) == nnspec's print(model) == `nngen --print`
  frozen       requires_grad of every parameter as nnspec's
  constants    NAME, SEED, BATCH, INPUT_SHAPE, OUTPUT_SHAPE, LOSS, CUSTOM_INITS
  init seed=S  S in 0 and 42: `torch.manual_seed(S); build()` and build(S)
               equal nnspec.build(SPEC, S) bit for bit.  Specs with custom
               initializers: not applicable (SKIP), unless the test knows a
               Python function for the name and its declarative equivalent
               (my_init: uniform(-10, 10) then zero_abs_below 5), which then
               must give the same bits.  Specs with mixture: not applicable
               (nnspec has no mixture), see the next check.
  init vs C seed=S  build(S) against nngen's own C code (P_init through
               tests/conform/driver.c `init S`; custom initializers stand-ins
               in both languages): bit-identical, or 1e-6 relative (the
               conformance criterion) when a normal-family draw is involved.
  forward      with nnspec's parameters loaded: the output and every
               parameter gradient for a random input are bit-identical (and
               the input gradient; an input_dtype: int32 spec gets int64
               indices in [0, num) of its first embedding, its padding_idx
               at every 4th position, and has no input gradient)
  train        specs with train: loss_fn, make_optimizer (same defaults) and
               3 train_step()s: losses and parameters bit-identical with
               nnspec's loss and optimizer; cross_entropy on an output of
               rank > 2 ([N, T, V]) is SPEC 1.5's CrossEntropyLoss()(
               out.reshape(-1, V), target.reshape(-1)) with N*T labels

Specs that nnspec cannot build (names torch's add_module refuses, such as
'forward') are checked against `nngen --print` / `--params` only.
Final line "N passed, N failed[, N skipped]"; exit 1 if anything failed.
Without torch in /usr/bin/python3: one line and exit 77 (meson: skipped), or
exit 1 when NNGEN_REQUIRE_TORCH=1.
"""
import argparse
import copy
import importlib.util
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PY = '/usr/bin/python3'

try:
    import torch
except ImportError as _e:
    if (os.path.realpath(sys.executable) != os.path.realpath(TORCH_PY)
            and os.path.exists(TORCH_PY) and not os.environ.get('NNGEN_EMITPY_REEXEC')):
        os.environ['NNGEN_EMITPY_REEXEC'] = '1'
        os.execv(TORCH_PY, [TORCH_PY] + sys.argv)
    _req = os.environ.get('NNGEN_REQUIRE_TORCH') == '1'
    print('emitpy: %s: torch not importable by %s (%s); Debian: apt-get install python3-torch'
          % ('FAIL (NNGEN_REQUIRE_TORCH=1)' if _req else 'skipped', sys.executable, _e))
    sys.exit(1 if _req else 77)

sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
import nnspec  # noqa: E402
from harness import Result  # noqa: E402

SEEDS = [0, 42]
TRAIN_STEPS = 3
TOL_NORMAL = 1e-6


# Custom initializers the test can stand in for: a Python function, and the
# declarative initializer that draws the same values (for the oracle).
def _my_init(w):
    torch.nn.init.uniform_(w, -10, 10)
    w *= w.abs() >= 5


def STUB_INIT(w):
    """Stands in for a custom initializer (C: nn_init_uniform(p, r, -0.5f, 0.5f))."""
    torch.nn.init.uniform_(w, -0.5, 0.5)


NORMAL_FAMILY = {'normal', 'xavier_normal', 'kaiming_normal', 'trunc_normal'}

# the driver as tests/conform builds it: its int32 / training entry points
# must match the generated header exactly (a wrong -D is a compile error)
DRIVER_CFLAGS = ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-O1']

CUSTOM_EQUIV = {
    'my_init': (_my_init, {'uniform': [-10, 10], 'zero_abs_below': 5}),
}




class CheckError(Exception):
    pass


def run(cmd, timeout=300):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckError('timed out: %s' % ' '.join(cmd))
    except OSError as e:
        raise CheckError('cannot run %s: %s' % (cmd[0], e))
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def must(cmd, what, quiet=False):
    """stdout of cmd; CheckError if it fails (or, quiet, writes to stderr)."""
    rc, out, err = run(cmd)
    if rc != 0 or (quiet and err):
        raise CheckError('%s failed (exit %d): %s\n%s' % (what, rc, ' '.join(cmd),
                                                          '\n'.join(err.splitlines()[:6])))
    return out


def f32bits(v):
    return struct.unpack('<I', struct.pack('<f', v))[0]


def bits_equal(name, a, b):
    """None if tensors a and b are bit-identical (shape and float bits)."""
    if a is None or b is None:
        if a is None and b is None:
            return None
        return '%s: got %s, want %s' % (name, 'None' if a is None else 'a tensor',
                                        'None' if b is None else 'a tensor')
    if tuple(a.shape) != tuple(b.shape):
        return '%s: shape %s, want %s' % (name, tuple(a.shape), tuple(b.shape))
    ai = a.detach().contiguous().view(torch.int32)
    bi = b.detach().contiguous().view(torch.int32)
    if torch.equal(ai, bi):
        return None
    idx = int((ai != bi).reshape(-1).nonzero()[0])
    return '%s[%d]: got %r, want %r (bit-identical required)' % (
        name, idx, a.reshape(-1)[idx].item(), b.reshape(-1)[idx].item())


def close(name, got, want, tol):
    """The conformance criterion: |got - want| <= tol * max(|want|, max |want|)."""
    if len(got) != len(want):
        return '%s: %d values, want %d' % (name, len(got), len(want))
    scale = max([abs(v) for v in want] or [0.0])
    for i, (a, b) in enumerate(zip(got, want)):
        if not (abs(a - b) <= tol * max(abs(b), scale)):
            return '%s[%d]: got %.9g, want %.9g (tol %g)' % (name, i, a, b, tol)
    return None


def identity_pattern(items):
    """[(name, index of the first item with the same object)] for an ordered
    list of (name, object): which entries are the same object."""
    first = {}
    out = []
    for i, (n, o) in enumerate(items):
        out.append((n, first.setdefault(id(o), i)))
    return out


def inits_of(obj, acc):
    """Names of the initializers used in a spec tree (custom names as 'custom:NAME')."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'custom' and isinstance(v, str):
                acc.add('custom:' + v)
                continue
            if k in nnspec.INIT_NAMES:
                acc.add(k)
            if isinstance(v, str) and v in nnspec.INIT_NAMES:
                acc.add(v)
            inits_of(v, acc)
    elif isinstance(obj, list):
        for v in obj:
            inits_of(v, acc)
    return acc


def replace_custom(obj):
    """A copy of the spec tree with each {custom: NAME} replaced by its
    declarative equivalent from CUSTOM_EQUIV."""
    if isinstance(obj, dict):
        if set(obj) == {'custom'} and obj['custom'] in CUSTOM_EQUIV:
            return copy.deepcopy(CUSTOM_EQUIV[obj['custom']][1])
        return {k: replace_custom(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [replace_custom(v) for v in obj]
    return obj


def params_text(net):
    """nnspec.params_text for the emitted network: nnspec marks the weight a
    TiedLinear reads ("(used transposed by PATH)") only for its own class;
    the emitted TiedLinear keeps (module, name) of that weight in _source."""
    users = {}
    for mpath, mod in net.named_modules(remove_duplicate=False):
        if type(mod).__name__ == 'TiedLinear':
            src = getattr(mod, '_source', None)
            if not src:
                raise CheckError('%s: an emitted TiedLinear without its _source (module, '
                                 'name)' % (mpath or '(root)'))
            users.setdefault(id(getattr(src[0], src[1])), []).append(mpath or '(root)')
    lines, first = [], {}
    for key, t in net.state_dict(keep_vars=True).items():
        line = '%s [%s]' % (key, ', '.join(str(int(v)) for v in t.shape))
        if id(t) in first:
            line += ' (shared with %s)' % first[id(t)]
        else:
            first[id(t)] = key
            if id(t) in users:
                line += ' (used transposed by %s)' % ', '.join(users[id(t)])
        lines.append(line + '\n')
    return ''.join(lines)


def load_module(path, tag):
    name = 'emitpy_%s_%d' % (tag, zlib.crc32(path.encode()))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Driver(object):
    """nngen's C code for a spec, built with tests/conform/driver.c."""

    def __init__(self, args, spec_path, name, customs, work, defs=()):
        d = os.path.join(work, 'c')
        os.makedirs(d, exist_ok=True)
        out_c = os.path.join(d, 'net.c')
        must([args.nngen, spec_path, '-o', out_c], 'nngen (C)')
        srcs = [args.driver, out_c]
        if customs:
            # the C counterparts of the test's Python stand-ins (STUB_INIT)
            stubs = os.path.join(d, 'custom.c')
            with open(stubs, 'w') as f:
                f.write('#include <nngen/rt.h>\n')
                for c in customs:
                    f.write('void %s(nn_tensor *p, nn_rng *r);\n'
                            'void %s(nn_tensor *p, nn_rng *r) { nn_init_uniform(p, r, -0.5f, '
                            '0.5f); }\n' % (c, c))
            srcs.append(stubs)
        exe = os.path.join(d, 'driver')
        must([args.cc] + DRIVER_CFLAGS + args.extra_cflags + ['-I' + d, '-I' + args.include,
              '-DNET_H="net.h"', '-DNET=%s' % name] + list(defs) + srcs +
             [args.rt_lib, '-lopenblas', '-lm', '-o', exe], 'cc driver.c net.c')
        self.exe = exe

    def init(self, seed):
        """[(name, [floats])] from `driver init SEED`: the dump format of
        tests/conform (NAME NUMEL, then one %a value per line), read here
        with the count split off the right, as a name may hold spaces."""
        lines = must([self.exe, 'init', str(seed)], 'driver init').splitlines()
        out, i = [], 0
        try:
            while i < len(lines):
                name, n = lines[i].rsplit(' ', 1)
                n = int(n)
                out.append((name, [nnspec.parse_float(v) for v in lines[i + 1:i + 1 + n]]))
                if len(out[-1][1]) != n:
                    raise ValueError('%s: %d values, want %d' % (name, len(out[-1][1]), n))
                i += 1 + n
        except ValueError as e:
            raise CheckError('driver init: line %d: %s' % (i + 1, e))
        return out


def driver_defs(spec, output_shape):
    """The -D flags tests/conform/driver.c needs for this spec (as
    tests/conform/conform.py passes them): -DNET_INPUT_INT32 for
    input_dtype: int32 (x is const int32_t *), -DNET_HAS_TRAIN with a train:
    section, and for cross_entropy -DNET_TARGET_INT -DNET_TARGETS=T, T the
    labels per example (the dimensions between batch and classes)."""
    defs = []
    if spec.get('input_dtype') == 'int32':
        defs.append('-DNET_INPUT_INT32')
    loss = (spec.get('train') or {}).get('loss')
    if loss:
        defs.append('-DNET_HAS_TRAIN')
        if loss == 'cross_entropy':
            t = 1
            for n in output_shape[1:-1]:
                t *= n
            defs += ['-DNET_TARGET_INT', '-DNET_TARGETS=%d' % t]
    return defs


def first_embedding(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            return m
    return None


def draw_input(model, shape, int32, gen):
    """A random input: standard normal floats, or (input_dtype: int32) int64
    indices in [0, num) of the model's first embedding, its padding_idx at
    every 4th position from the 2nd when it has one (its row gets no
    gradient: that must show)."""
    if not int32:
        return torch.randn(tuple(shape), generator=gen)
    emb = first_embedding(model)
    if emb is None:
        raise CheckError('input_dtype: int32, but the model has no embedding')
    x = torch.randint(0, emb.num_embeddings, tuple(shape), generator=gen, dtype=torch.int64)
    if emb.padding_idx is not None:
        x.view(-1)[1::4] = emb.padding_idx
    return x


def ce_loss(out, target):
    """cross_entropy as SPEC 1.5 defines it: over the last dimension, for an
    output of rank > 2 CrossEntropyLoss()(out.reshape(-1, V), target.reshape(-1))."""
    if out.dim() > 2:
        return torch.nn.CrossEntropyLoss()(out.reshape(-1, out.shape[-1]), target.reshape(-1))
    return torch.nn.CrossEntropyLoss()(out, target)


def check_init_vs_c(args, path, label, res, work, mod, spec, used, customs):
    """build(S) against nngen's C init (tests/conform/driver.c `init S`)."""
    driver = None
    normal = bool(used & NORMAL_FAMILY) or any(
        isinstance(c, dict) and 'normal' in c for c in _mixture_parts(spec))
    for seed in SEEDS:
        check = 'init vs C seed=%d' % seed
        if not args.rt_lib:
            res.skip(label, check, 'needs --rt-lib, --include and --driver')
            continue
        try:
            if driver is False:
                raise CheckError('not run: the C code did not build')
            if driver is None:
                driver = False
                driver = Driver(args, path, mod.NAME, customs, work,
                                driver_defs(spec, mod.OUTPUT_SHAPE))
            net = mod.build(seed, inits={c: STUB_INIT for c in customs})
            got = [(n, p.detach().reshape(-1).tolist()) for n, p in net.named_parameters()]
            want = driver.init(seed)
            msgs = []
            if [n for n, _ in got] != [n for n, _ in want]:
                msgs.append('names %s, C %s' % ([n for n, _ in got], [n for n, _ in want]))
            for (n, a), (_, b) in zip(got, want):
                if normal:
                    m = close(n, a, b, TOL_NORMAL)
                else:
                    m = None if [f32bits(v) for v in a] == [f32bits(v) for v in b] else \
                        '%s: not bit-identical to the C init' % n
                if m:
                    msgs.append(m)
            if msgs:
                res.fail(label, check, '\n'.join(msgs[:5]))
            else:
                res.ok(label, check, 'tol %g' % TOL_NORMAL if normal else 'bit-identical')
        except (CheckError, nnspec.NNSpecError) as e:
            res.fail(label, check, e)


def check_spec(args, path, label, res):
    work = tempfile.mkdtemp(prefix='emitpy-')
    try:
        _check_spec(args, path, label, res, work)
    finally:
        if args.keep:
            print('     (kept %s)' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _check_spec(args, path, label, res, work):
    stem = os.path.splitext(os.path.basename(path))[0]
    # ---- emit, determinism
    outs = []
    for sub in ('a', 'b'):
        d = os.path.join(work, sub)
        os.makedirs(d)
        out = os.path.join(d, stem + '.py')
        try:
            must([args.nngen, '--emit', 'pytorch', path, '-o', out], 'nngen --emit pytorch',
                 quiet=True)
            left = sorted(os.listdir(d))
            if left != [stem + '.py']:
                raise CheckError('the output directory holds %s' % left)
            outs.append(out)
        except CheckError as e:
            res.fail(label, 'emit' if sub == 'a' else 'determinism', e)
            if sub == 'a':
                return
    if len(outs) == 2:
        res.ok(label, 'emit')
        if open(outs[0], 'rb').read() == open(outs[1], 'rb').read():
            res.ok(label, 'determinism')
        else:
            res.fail(label, 'determinism', 'two runs differ')

    # ---- the oracle
    spec, ref, ref_err = None, None, None
    try:
        with open(path) as f:
            spec = nnspec.load_spec_text(f.read(), path)
        ref = nnspec.build(path, seed=0, allow_unsupported_init=True)
    except Exception as e:  # noqa: the oracle may not take every valid spec
        ref_err = '%s: %s' % (type(e).__name__, e)
    used = inits_of(spec, set()) if spec is not None else set()
    customs = sorted(u[7:] for u in used if u.startswith('custom:'))
    stub_inits = {n: STUB_INIT for n in customs}

    # ---- import
    try:
        mod = load_module(outs[0], stem)
        net = mod.build(0, inits=stub_inits)
        res.ok(label, 'import')
    except Exception as e:  # noqa
        res.fail(label, 'import', '%s: %s' % (type(e).__name__, e))
        return

    # ---- against nngen's own listings
    params_txt = must([args.nngen, '--params', path], 'nngen --params')
    print_txt = must([args.nngen, '--print', path], 'nngen --print')
    # NAME [shape], then " (shared with FIRST)" on an alias or " (used
    # transposed by PATH, ...)" on a weight a TiedLinear reads (SPEC 1.2.5)
    keys_nngen = []
    for line in params_txt.splitlines():
        m = re.match(r'^(.*) \[[0-9, ]*\]( \((shared with|used transposed by) .*\))?$', line)
        if not m:
            raise CheckError('nngen --params: cannot read the line %r' % line)
        keys_nngen.append(m.group(1))

    # ---- names
    keys = list(net.state_dict().keys())
    msgs = []
    if keys != keys_nngen:
        msgs.append('state_dict keys %s, nngen --params %s' % (keys, keys_nngen))
    if ref is not None:
        if keys != list(ref.model.state_dict().keys()):
            msgs.append('state_dict keys %s, torch %s' % (keys, list(ref.model.state_dict())))
        pn = [n for n, _ in net.named_parameters()]
        rn = [n for n, _ in ref.model.named_parameters()]
        if pn != rn:
            msgs.append('named_parameters %s, torch %s' % (pn, rn))
    got_params = params_text(net)
    if got_params != params_txt:
        msgs.append('params listing differs from nngen --params:\n%s--- nngen:\n%s'
                    % (got_params, params_txt))
    res.fail(label, 'names', '\n'.join(msgs)) if msgs else res.ok(label, 'names')

    # ---- print
    got = str(net) + '\n'
    msgs = []
    if got != print_txt:
        msgs.append('print(net) differs from nngen --print:\n%s\n--- nngen:\n%s'
                    % (got, print_txt))
    if ref is not None and got != nnspec.print_text(ref.model):
        msgs.append('print(net) differs from torch print(model)')
    res.fail(label, 'print', '\n'.join(msgs)) if msgs else res.ok(label, 'print')

    check_init_vs_c(args, path, label, res, work, mod, spec, used, customs)

    if ref is None:
        for check in ('sharing', 'frozen', 'init', 'forward'):
            res.skip(label, check, 'nnspec cannot build this spec (%s)' % ref_err)
        x = draw_input(net, mod.INPUT_SHAPE, spec is not None and
                       spec.get('input_dtype') == 'int32', torch.Generator().manual_seed(0))
        y = net(x)
        if tuple(y.shape) == tuple(mod.OUTPUT_SHAPE):
            res.ok(label, 'output shape')
        else:
            res.fail(label, 'output shape', '%s, OUTPUT_SHAPE %s' % (tuple(y.shape),
                                                                    mod.OUTPUT_SHAPE))
        return
    model = ref.model

    # ---- sharing
    msgs = []
    a = identity_pattern(list(net.named_modules(remove_duplicate=False)))
    b = identity_pattern(list(model.named_modules(remove_duplicate=False)))
    if a != b:
        msgs.append('module objects: %s, torch %s' % (a, b))
    a = identity_pattern(list(net.state_dict(keep_vars=True).items()))
    b = identity_pattern(list(model.state_dict(keep_vars=True).items()))
    if a != b:
        msgs.append('tensors: %s, torch %s' % (a, b))
    res.fail(label, 'sharing', '\n'.join(msgs)) if msgs else res.ok(label, 'sharing')

    # ---- frozen
    a = [(n, p.requires_grad) for n, p in net.named_parameters()]
    b = [(n, p.requires_grad) for n, p in model.named_parameters()]
    res.ok(label, 'frozen') if a == b else res.fail(label, 'frozen', '%s, torch %s' % (a, b))

    # ---- constants
    want = {'NAME': ref.name, 'BATCH': ref.batch, 'INPUT_SHAPE': tuple(ref.input_shape),
            'OUTPUT_SHAPE': tuple(ref.output_shape), 'SEED': spec.get('seed'),
            'LOSS': ref.loss_name, 'CUSTOM_INITS': tuple(customs)}
    gotc = {k: getattr(mod, k, '<missing>') for k in want}
    if isinstance(gotc['CUSTOM_INITS'], tuple):
        gotc['CUSTOM_INITS'] = tuple(sorted(gotc['CUSTOM_INITS']))
    res.ok(label, 'constants') if gotc == want else res.fail(
        label, 'constants', 'got %s, want %s' % (gotc, want))

    # ---- init: against the oracle (torch), then against nngen's C code
    for seed in SEEDS:
        check = 'init seed=%d' % seed
        try:
            if 'mixture' in used:
                res.skip(label, check, 'not applicable: mixture has no torch counterpart '
                         '(see "init vs C")')
                continue
            inits = None
            oracle = path
            if customs:
                missing = [c for c in customs if c not in CUSTOM_EQUIV]
                if missing:
                    res.skip(label, check, 'not applicable: custom initializer %s'
                             % ', '.join(missing))
                    continue
                inits = {c: CUSTOM_EQUIV[c][0] for c in customs}
                oracle = None
            if oracle:
                want = nnspec.build(path, seed=seed).model
            else:
                want = nnspec.build_from_spec(replace_custom(spec), stem, seed).model
            torch.manual_seed(seed)
            a = mod.build(inits=inits)
            b = mod.build(seed, inits=inits)
            msgs = []
            for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(),
                                              want.named_parameters()):
                for m in (bits_equal(n, p, r), bits_equal(n + ' (build(seed))', q, r)):
                    if m:
                        msgs.append(m)
            if msgs:
                res.fail(label, check, '\n'.join(msgs[:5]))
            else:
                res.ok(label, check, 'bit-identical' + (', Python %s' % ', '.join(customs)
                                                        if customs else ''))
        except (CheckError, nnspec.NNSpecError) as e:
            res.fail(label, check, e)

    # ---- forward (and backward) with the oracle's parameters
    try:
        net.load_state_dict(model.state_dict())
        g = torch.Generator().manual_seed(zlib.crc32(label.encode()))
        int32 = ref.input_dtype == 'int32'
        x = draw_input(model, ref.input_shape, int32, g)
        dy = torch.randn(tuple(ref.output_shape), generator=g)
        outs = []
        for m in (net, model):
            torch.manual_seed(7)  # dropout: both draw the same masks
            m.zero_grad(set_to_none=True)
            xx = x.clone() if int32 else x.clone().requires_grad_(True)  # indices: no grad
            y = m(xx)
            y.backward(dy)
            outs.append([('y', y), ('dx', xx.grad)] +
                        [('grad.' + n, p.grad) for n, p in m.named_parameters()])
        msgs = [e for e in (bits_equal(n, a, b) for (n, a), (_, b) in zip(*outs)) if e]
        res.fail(label, 'forward', '\n'.join(msgs[:5])) if msgs else res.ok(
            label, 'forward', 'int64 indices, no dx' if int32 else '')
    except Exception as e:  # noqa
        res.fail(label, 'forward', '%s: %s' % (type(e).__name__, e))

    # ---- train
    if ref.loss_name:
        try:
            msgs = []
            # an [N, T, V] output: nnspec's SeqCrossEntropyLoss is a
            # CrossEntropyLoss that reshapes, and so is the emitted file's class
            # of that name (its numbers are checked by the losses below)
            got_loss = mod.loss_fn()
            base = torch.nn.CrossEntropyLoss if isinstance(ref.loss, torch.nn.CrossEntropyLoss) \
                else type(ref.loss)
            if type(got_loss).__name__ != type(ref.loss).__name__ or not isinstance(got_loss, base):
                msgs.append('loss_fn() is %s, torch %s' % (mod.loss_fn(), ref.loss))
            pa = [torch.nn.Parameter(torch.zeros(1))]
            da = mod.make_optimizer(pa)
            db = ref.make_optimizer(pa)
            if type(da) is not type(db) or da.defaults != db.defaults:
                msgs.append('optimizer %s %s, torch %s %s' % (type(da).__name__, da.defaults,
                                                              type(db).__name__, db.defaults))
            g = torch.Generator().manual_seed(1)
            x = draw_input(model, ref.input_shape, ref.input_dtype == 'int32', g)
            if ref.loss_name == 'cross_entropy':
                # N*T labels in [0, V) (N for an [N, C] output), flat as the
                # C API's int32_t[N*T] (SPEC 1.5)
                target = torch.randint(0, ref.classes, (ref.batch * ref.targets,), generator=g)
            else:
                target = torch.randn(tuple(ref.output_shape), generator=g)
            na, nb = copy.deepcopy(model), copy.deepcopy(model)
            oa, ob = mod.make_optimizer(na.parameters()), ref.make_optimizer(nb.parameters())
            # one after the other from the same generator state (dropout masks)
            torch.manual_seed(7)
            las = [mod.train_step(na, oa, x, target) for k in range(TRAIN_STEPS)]
            torch.manual_seed(7)
            for k in range(TRAIN_STEPS):
                la = las[k]
                ob.zero_grad()
                out = nb(x)
                loss = ce_loss(out, target) if ref.loss_name == 'cross_entropy' else \
                    ref.loss(out, target)
                if ref.loss_name == 'cross_entropy' and \
                        f32bits(ref.loss(out, target).item()) != f32bits(loss.item()):
                    msgs.append('step %d: nnspec\'s loss %r, SPEC 1.5\'s %r'
                                % (k, ref.loss(out, target).item(), loss.item()))
                loss.backward()
                ob.step()
                if f32bits(la) != f32bits(loss.item()):
                    msgs.append('step %d: loss %r, torch %r' % (k, la, loss.item()))
            for (n, p), (_, q) in zip(na.named_parameters(), nb.named_parameters()):
                m = bits_equal(n, p, q)
                if m:
                    msgs.append('after %d steps: %s' % (TRAIN_STEPS, m))
            if msgs:
                res.fail(label, 'train', '\n'.join(msgs[:5]))
            else:
                res.ok(label, 'train', '%s, %s' % (ref.loss_name, type(da).__name__))
        except Exception as e:  # noqa
            res.fail(label, 'train', '%s: %s' % (type(e).__name__, e))


def _mixture_parts(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'mixture' and isinstance(v, list):
                for c in v:
                    yield c
            else:
                for c in _mixture_parts(v):
                    yield c
    elif isinstance(obj, list):
        for v in obj:
            for c in _mixture_parts(v):
                yield c


def collect(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.endswith('.yaml')]
            base = os.path.basename(os.path.normpath(p))
            out += [(f, os.path.join(base, os.path.relpath(f, p))) for f in sorted(found)]
        else:
            out.append((p, os.path.basename(p)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--rt-lib', help='the runtime static library (for mixture specs)')
    ap.add_argument('--include', help='directory holding nngen/rt.h')
    ap.add_argument('--driver', help='tests/conform/driver.c')
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('--extra-cflags', default='',
                    help='added to the C compile and link (e.g. sanitizer flags)')
    ap.add_argument('--keep', action='store_true')
    ap.add_argument('specs', nargs='+')
    args = ap.parse_args()
    args.nngen = os.path.abspath(args.nngen)
    args.extra_cflags = args.extra_cflags.split()
    torch.set_num_threads(1)
    res = Result()
    specs = collect(args.specs)
    if not specs:
        res.fail('-', 'specs', 'no spec found in %s' % ' '.join(args.specs))
    for path, label in specs:
        try:
            check_spec(args, path, label, res)
        except CheckError as e:
            res.fail(label, 'run', e)
    status = res.summary()
    sys.stdout.flush()
    return status


if __name__ == '__main__':
    sys.exit(main())
