#!/usr/bin/python3
"""Differential test: random networks (gen_specs.py) checked against PyTorch.

usage: run_diff.py --nngen NNGEN --rt-lib LIBNNGEN-RT.a --include INCDIR
                   [--count N] [--seed S] [--jobs J] [--keep-failures DIR]
                   [--steps 5] [--with-no-blas] [--cc CC] [--extra-cflags F]
                   [--blas-libs L] [--shrink-time SECONDS] [--no-shrink]
                   [--verbose]

Generates N specs from seed S (network i of seed S is always the same spec)
and runs each through `nngen --check`, then through the checks of
tests/conform/conform.py (its check_spec): params, print, compile,
determinism, info, init for two seeds (0 and one per network), fwd/bwd (the
input gradient and every parameter gradient), fwd/bwd on a partial batch,
and for specs with train: STEPS training steps, full and partial batch.
--with-no-blas adds conform's --no-blas compile and its fwd/bwd.

Output: one line per failing check, "FAIL s1/n42: CHECK: first line of the
message"; with --verbose, every check.  A failing network is shrunk
(greedily: children dropped, sequentials replaced by one child, blocks by
their bodies, refs by a copy of the shared module, repeats by their body,
init rules, frozen and train keys dropped, sizes reduced) as long as its
first failing check still fails, within --shrink-time seconds, and written
to --keep-failures DIR as s{S}_n{i}.yaml (the original as
s{S}_n{i}_orig.yaml).  --spec FILE checks (and shrinks) a given spec instead,
e.g. a kept one: the data and seeds are those of the network it came from.  Last line: "N networks, N checks passed, N failed".
Exit status 1 if a check failed.  Without torch: exit 77 (skipped), or 1
when NNGEN_REQUIRE_TORCH=1.
"""
import argparse
import copy
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PY = '/usr/bin/python3'

try:
    import torch  # noqa: F401
    import numpy  # noqa: F401
except ImportError as _e:
    if (os.path.realpath(sys.executable) != os.path.realpath(TORCH_PY)
            and os.path.exists(TORCH_PY) and not os.environ.get('NNGEN_CONFORM_REEXEC')):
        os.environ['NNGEN_CONFORM_REEXEC'] = '1'
        os.execv(TORCH_PY, [TORCH_PY] + sys.argv)
    _req = os.environ.get('NNGEN_REQUIRE_TORCH') == '1'
    print('diff: %s: torch/numpy not importable by %s (%s); Debian: '
          'apt-get install python3-torch python3-numpy'
          % ('FAIL (NNGEN_REQUIRE_TORCH=1)' if _req else 'skipped', sys.executable, _e))
    sys.exit(1 if _req else 77)

sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'conform'))
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
import gen_specs  # noqa: E402
import conform  # noqa: E402
import nnspec  # noqa: E402
from harness import Result  # noqa: E402


class Recorder(Result):
    """conform's Result, silent: keeps (check, ok, message) in order."""

    def __init__(self):
        Result.__init__(self)
        self.log = []

    def ok(self, spec, check, detail=''):
        self.passed += 1
        self.log.append((check, True, detail))

    def fail(self, spec, check, why):
        self.failed += 1
        self.log.append((check, False, str(why)))

    def skip(self, spec, check, why):
        self.skipped += 1
        self.log.append((check, None, why))


def check_kind(check):
    """a check's name without its numbers: 'init seed=N', 'fwd/bwd rows=N of N'"""
    return re.sub(r'[0-9]+', 'N', check)


def first_line(msg, limit=400):
    lines = str(msg).strip().splitlines() or ['']
    line = lines[0]
    if line.endswith(':') and len(lines) > 1:      # "differs from torch:\nline 3: ..."
        line += ' ' + lines[1].strip()
    return line if len(line) <= limit else line[:limit] + '...'


def error_kind(stderr):
    """nngen's first error message, without the place and the values"""
    line = first_line(stderr)
    line = re.sub(r'^.*?: error: ', '', line)
    line = re.sub(r"'[^']*'", "'Q'", line)
    return re.sub(r'[0-9]+', 'N', line)


# --------------------------------------------------------------------------
# checking one spec

class Runner(object):
    def __init__(self, args):
        self.args = args
        self.layers = gen_specs.list_layers(args.nngen)
        self.kept = 0      # failing networks minimized (per worker process)

    def conform_args(self, workdir):
        a = argparse.Namespace()
        for k in ('nngen', 'rt_lib', 'include', 'cc', 'extra_cflags', 'blas_libs', 'steps'):
            setattr(a, k, getattr(self.args, k))
        a.workdir = workdir
        a.keep = False
        return a

    def nngen_check(self, path):
        r = subprocess.run([self.args.nngen, '--check', path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        return r.returncode, r.stderr.decode('utf-8', 'replace')

    def oracle(self, path):
        """None if nnspec builds the spec, else the reason"""
        try:
            nnspec.build(path, seed=0)
            return None
        except Exception as e:  # noqa - any failure of the oracle is a result
            return '%s: %s' % (type(e).__name__, e)

    def check(self, path, label, seeds):
        """[(check, ok, message)] of one spec file"""
        rc, err = self.nngen_check(path)
        if rc != 0:
            why = self.oracle(path)
            return [('check', False, 'nngen --check rejects the spec (%s): %s'
                     % ('the oracle rejects it too: ' + why if why else
                        'the oracle accepts it', first_line(err)))]
        log = [('check', True, '')]
        why = self.oracle(path)
        if why:
            return log + [('torch model', False, 'the oracle cannot build it: ' + why)]
        rec = Recorder()
        work = tempfile.mkdtemp(prefix='diff-', dir=self.args.workdir)
        try:
            spec = nnspec.load_spec_text(open(path).read(), path)
            if gen_specs.has_ws_names(spec):
                # names with whitespace: params and print here, the rest on a
                # copy without them (the driver's dump format cannot carry them)
                log += self.names_checks(path, ' (names with whitespace)')
                path = os.path.join(work, os.path.basename(path))
                with open(path, 'w') as f:
                    f.write(gen_specs.to_yaml(gen_specs.without_ws_names(spec)))
            conform.check_spec(self.conform_args(work), path, label, rec, seeds=seeds,
                               no_blas=self.args.with_no_blas,
                               noise_samples=self.args.noise_samples, skip_diverging=True)
        except Exception as e:  # noqa - a crash of the harness is a failure too
            rec.fail(label, 'harness', 'check_spec raised %s: %s' % (type(e).__name__, e))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return log + rec.log

    def names_checks(self, path, suffix):
        """conform's params and print checks, by themselves"""
        built = nnspec.build(path, seed=0, allow_unsupported_init=True)
        out = []
        for check, flag, want in (('params', '--params', nnspec.params_text(built.model)),
                                  ('print', '--print', nnspec.print_text(built.model))):
            r = subprocess.run([self.args.nngen, flag, path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            got = r.stdout.decode('utf-8', 'replace')
            if r.returncode != 0:
                out.append((check + suffix, False, 'nngen %s failed (exit %d): %s' % (
                    flag, r.returncode, first_line(r.stderr.decode('utf-8', 'replace')))))
            elif got != want:
                out.append((check + suffix, False,
                            'differs from torch:\n' + conform.text_diff(got, want)))
            else:
                out.append((check + suffix, True, ''))
        return out

    # ---- shrinking
    def fails_same(self, spec, kind, label, seeds, errkind):
        """whether spec (written in the plain style) fails the check `kind`
        (check_kind) in the same way: nngen's error message for `check`, not
        by a "not run" for the others"""
        d = tempfile.mkdtemp(prefix='shrink-', dir=self.args.workdir)
        try:
            path = os.path.join(d, 'net.yaml')
            with open(path, 'w') as f:
                f.write(gen_specs.to_yaml(spec))
            for check, ok, msg in self.check(path, label, seeds):
                if ok is False and check_kind(check) == kind:
                    if kind == 'check':
                        return error_kind(msg) == errkind
                    return not str(msg).startswith('not run')
            return False
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def shrink(self, spec, kind, label, seeds, errkind):
        """(smallest spec found that still fails `kind`, steps taken, complete)"""
        deadline = time.time() + self.args.shrink_time
        seen = {json.dumps(spec)}
        cur, steps = spec, 0
        progress = True
        while progress:
            progress = False
            for cand in candidates(cur):
                key = json.dumps(cand)
                if key in seen:
                    continue
                seen.add(key)
                if time.time() > deadline:
                    return cur, steps, False
                if self.fails_same(cand, kind, label, seeds, errkind):
                    cur, steps, progress = cand, steps + 1, True
                    break
        return cur, steps, True

    # ---- one network of the batch
    def network(self, i):
        a = self.args
        if a.spec:    # a given spec file (the i-th of --spec)
            path = a.spec[i]
            text = open(path).read()
            spec = nnspec.load_spec_text(text, path)
            fname = os.path.basename(path)
            label = stem = os.path.splitext(fname)[0]
            head = 'run_diff.py --spec %s' % path
            # a spec this script wrote: the same label (which seeds the data) and seeds
            m = re.match(r'^# run_diff\.py --seed ([0-9]+)[^:]*: network ([0-9]+)', text)
            if m:
                label = 's%s/n%s' % m.groups()
                i = int(m.group(2))
        else:
            rng = gen_specs.net_rng(a.seed, i)
            name = 'n%d' % i
            label = 's%d/n%d' % (a.seed, i)
            spec = gen_specs.generate(rng, self.layers, name, known_bugs=a.known_bugs)
            head = 'run_diff.py --seed %d%s: network %d' % (
                a.seed, ' --known-bugs' if a.known_bugs else '', i)
            text = gen_specs.to_yaml(spec, rng, head)
            fname = name + '.yaml'     # the name when the spec has no name:
            stem = 's%d_n%d' % (a.seed, i)   # file names that are C identifiers
        seeds = [0, 1000 + i]
        d = tempfile.mkdtemp(prefix='net-', dir=a.workdir)
        try:
            path = os.path.join(d, fname)
            with open(path, 'w') as f:
                f.write(text)
            log = self.check(path, label, seeds)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        out = {'i': i, 'label': label, 'log': log, 'kept': None}
        fails = [(c, m) for c, ok, m in log if ok is False]
        if fails and a.keep_failures and self.kept < a.max_kept:
            self.kept += 1
            os.makedirs(a.keep_failures, exist_ok=True)
            base = os.path.join(a.keep_failures, stem)
            with open(base + '_orig.yaml', 'w') as f:
                f.write(text)
            check, msg = fails[0]
            kind = check_kind(check)
            errkind = error_kind(msg) if kind == 'check' else None
            small, steps, done = spec, 0, True
            if not a.no_shrink:
                # the plain-style text must fail too, else keep the original
                if self.fails_same(spec, kind, label, seeds, errkind):
                    small, steps, done = self.shrink(spec, kind, label, seeds, errkind)
                else:
                    steps, done = None, False
            comment = ['%s, minimized (%s): the check "%s" fails' % (
                head, 'not shrunk: the plain-style text does not fail' if steps is None
                else '%d steps%s' % (steps, '' if done else ', out of time'), check)]
            comment += ['  ' + l for l in str(msg).strip().splitlines()[:6]]
            if len(fails) > 1:
                comment.append('also failing: ' + ', '.join(c for c, _ in fails[1:]))
            with open(base + '.yaml', 'w') as f:
                f.write(gen_specs.to_yaml(small, None, '\n'.join(comment)))
            out['kept'] = base + '.yaml'
        return out


# --------------------------------------------------------------------------
# shrinking: candidate specs, each a little smaller than spec

def module_paths(spec):
    """paths (lists of keys) of every module expression of spec, the model's
    first, outermost first"""
    out = []

    def rec(e, p):
        out.append(p)
        if isinstance(e, list):
            for i, x in enumerate(e):
                rec(x, p + [i])
        elif isinstance(e, dict):
            if isinstance(e.get('sequential'), list):
                for i, x in enumerate(e['sequential']):
                    rec(x, p + ['sequential', i])
            elif isinstance(e.get('sequential'), dict):
                for k, x in e['sequential'].items():
                    rec(x, p + ['sequential', k])
            elif isinstance(e.get('repeat'), dict) and 'body' in e['repeat']:
                rec(e['repeat']['body'], p + ['repeat', 'body'])
            elif isinstance(e.get('residual'), list):
                for i, x in enumerate(e['residual']):
                    rec(x, p + ['residual', i])
            elif isinstance(e.get('residual'), dict):
                for k, x in e['residual'].items():
                    rec(x, p + ['residual', k])
    rec(spec['model'], ['model'])
    for sect in ('shared', 'blocks'):
        for k, x in (spec.get(sect) or {}).items():
            rec(x, [sect, k])
    return out


def get(spec, p):
    for k in p:
        spec = spec[k]
    return spec


def put(spec, p, v):
    """a copy of spec with the value at p replaced by v"""
    s = copy.deepcopy(spec)
    get(s, p[:-1])[p[-1]] = v
    return s


def drop(spec, p):
    s = copy.deepcopy(spec)
    c = get(s, p[:-1])
    del c[p[-1]]
    return s


def used_names(spec):
    """block and shared names the model uses, directly or through others"""
    blocks = spec.get('blocks') or {}
    shared = spec.get('shared') or {}
    used, todo = set(), [spec['model']]
    while todo:
        e = todo.pop()
        if isinstance(e, str):
            if e in blocks and e not in used:
                used.add(e)
                todo.append(blocks[e])
        elif isinstance(e, list):
            todo += e
        elif isinstance(e, dict):
            for k, x in e.items():
                if k == 'ref' and isinstance(x, str):
                    if x in shared and x not in used:
                        used.add(x)
                        todo.append(shared[x])
                elif k in blocks and k not in used:
                    used.add(k)
                    todo.append(blocks[k])
                elif k in ('sequential', 'repeat', 'body', 'residual'):
                    todo.append(x if not isinstance(x, dict) or k not in ('sequential',
                                                                        'residual')
                                else list(x.values()))
    return used


def tidy(spec):
    """without shared modules the model no longer uses (an error) and empty
    blocks: / shared: sections"""
    used = used_names(spec)
    s = spec
    if any(k not in used for k in (spec.get('shared') or {})):
        s = copy.deepcopy(spec)
        s['shared'] = {k: v for k, v in s['shared'].items() if k in used}
    for sect in ('shared', 'blocks'):
        if sect in s and not s[sect]:
            s = copy.deepcopy(s) if s is spec else s
            del s[sect]
    return s


def with_meta(expr, meta):
    """expr with the meta keys of the module it replaces, if it can carry them"""
    if not meta:
        return expr
    if isinstance(expr, list):
        m = {'sequential': expr}
    elif isinstance(expr, str):
        m = {expr: {}}
    elif isinstance(expr, dict):
        if 'ref' in expr or any(k in expr for k in meta):
            return None
        m = dict(expr)
    else:
        return None
    m.update(meta)
    return m


def smaller_ints(v):
    return sorted({x for x in (1, v // 2, v - 1) if 1 <= x < v}) if isinstance(v, int) \
        and not isinstance(v, bool) else []


def candidates(spec):
    """specs a step smaller than spec, the bigger steps first (they may be
    invalid: the caller checks)"""
    blocks = spec.get('blocks') or {}
    shared = spec.get('shared') or {}
    # whole sections
    for k in ('init', 'train', 'seed'):
        if k in spec:
            yield drop(spec, [k])
    paths = module_paths(spec)
    # meta keys of modules
    for p in paths:
        e = get(spec, p)
        if isinstance(e, dict):
            for k in ('init', 'frozen'):
                if k in e:
                    yield tidy(drop(spec, p + [k]))
    # children dropped, sequentials replaced by one of their children
    for p in paths:
        e = get(spec, p)
        kids = e if isinstance(e, list) else e.get('sequential') \
            if isinstance(e, dict) else None
        meta = {k: e[k] for k in ('init', 'frozen') if isinstance(e, dict) and k in e}
        if isinstance(kids, list):
            base = p if isinstance(e, list) else p + ['sequential']
            for i in range(len(kids)):
                yield tidy(drop(spec, base + [i]))
            for i in range(len(kids)):
                r = with_meta(kids[i], meta)
                if r is not None:
                    yield tidy(put(spec, p, r))
        elif isinstance(kids, dict):
            for k in list(kids):
                yield tidy(drop(spec, p + ['sequential', k]))
            for k in list(kids):
                r = with_meta(kids[k], meta)
                if r is not None:
                    yield tidy(put(spec, p, r))
            # named -> list
            yield tidy(put(spec, p + ['sequential'], list(kids.values())))
    # residuals: by their body (a sequential), a branch, or an identity shortcut
    for p in paths:
        e = get(spec, p)
        if not isinstance(e, dict) or 'residual' not in e:
            continue
        meta = {k: e[k] for k in ('init', 'frozen') if k in e}
        v = e['residual']
        if isinstance(v, list):
            for i in range(len(v)):
                yield tidy(drop(spec, p + ['residual', i]))
            r = with_meta(copy.deepcopy(v), meta)
            if r is not None:
                yield tidy(put(spec, p, r))
        elif isinstance(v, dict):
            for k in ('body', 'shortcut'):
                if k in v:
                    r = with_meta(copy.deepcopy(v[k]), meta)
                    if r is not None:
                        yield tidy(put(spec, p, r))
            if v.get('shortcut') != []:
                yield tidy(put(spec, p + ['residual', 'shortcut'], []))
            if 'body' in v:
                yield tidy(put(spec, p, dict(e, residual=[copy.deepcopy(v['body'])])))
    # indirections: blocks by their bodies, refs by a copy, repeats by their body
    for p in paths:
        e = get(spec, p)
        if isinstance(e, str) and e in blocks:
            yield tidy(put(spec, p, copy.deepcopy(blocks[e])))
        elif isinstance(e, dict):
            meta = {k: e[k] for k in ('init', 'frozen') if k in e}
            tk = [k for k in e if k not in ('init', 'frozen')]
            if len(tk) != 1:
                continue
            tk = tk[0]
            if tk in blocks:
                r = with_meta(copy.deepcopy(blocks[tk]), meta)
                if r is not None:
                    yield tidy(put(spec, p, r))
                if not meta:
                    yield tidy(put(spec, p, tk))
            elif tk == 'ref' and e['ref'] in shared:
                yield tidy(put(spec, p, copy.deepcopy(shared[e['ref']])))
            elif tk == 'repeat' and isinstance(e['repeat'], dict):
                rep = e['repeat']
                if 'body' in rep:
                    r = with_meta(copy.deepcopy(rep['body']), meta)
                    if r is not None:
                        yield tidy(put(spec, p, r))
                if isinstance(rep.get('times'), int) and rep['times'] > 1:
                    for t in smaller_ints(rep['times']):
                        yield put(spec, p + ['repeat', 'times'], t)
                if 'name' in rep:
                    yield drop(spec, p + ['repeat', 'name'])
    # unused blocks
    used = used_names(spec)
    for k in blocks:
        if k not in used:
            yield tidy(drop(spec, ['blocks', k]))
    # init rules: fewer rules, fewer keys, simpler initializers
    rule_lists = ([['init']] if isinstance(spec.get('init'), list) else []) + \
        [p + ['init'] for p in paths
         if isinstance(get(spec, p), dict) and isinstance(get(spec, p).get('init'), list)]
    for rl in rule_lists:
        rules = get(spec, rl)
        for j in range(len(rules)):
            if len(rules) > 1:
                yield drop(spec, rl + [j])
        for j, rule in enumerate(rules):
            if not isinstance(rule, dict):
                continue
            for k in list(rule):
                if len(rule) > 1 and k not in ('at', 'layer') and \
                        sum(1 for x in rule if x not in ('at', 'layer')) > 1:
                    yield drop(spec, rl + [j, k])
                elif k in ('at', 'layer'):
                    yield drop(spec, rl + [j, k])
            for k, v in rule.items():
                if k in ('at', 'layer'):
                    continue
                if isinstance(v, dict) and 'zero_abs_below' in v:
                    yield drop(spec, rl + [j, k, 'zero_abs_below'])
                if isinstance(v, dict):
                    base = [x for x in v if x != 'zero_abs_below']
                    if base and v[base[0]] not in (None, {}) and \
                            base[0] not in ('constant',):
                        yield put(spec, rl + [j, k, base[0]], {})
                for simple in ('zeros', 'default'):
                    if v != simple:
                        yield put(spec, rl + [j, k], simple)
    # layers: smaller, fewer arguments
    for p in paths:
        e = get(spec, p)
        if not isinstance(e, dict):
            continue
        for t, v in e.items():
            if t in ('init', 'frozen', 'sequential', 'repeat', 'ref', 'residual') or \
                    t in blocks:
                continue
            if isinstance(v, dict):
                for k in list(v):
                    if k != 'out':
                        yield drop(spec, p + [t, k])
                if 'out' in v and len(v) == 1:
                    yield put(spec, p + [t], v['out'])
                for k, x in v.items():     # out, kernel, stride, ...: smaller
                    for y in smaller_ints(x):
                        yield put(spec, p + [t, k], y)
                    if isinstance(x, list) and len(x) == 2 and x[0] == x[1]:
                        yield put(spec, p + [t, k], x[0])
            elif t == 'linear':
                for x in smaller_ints(v):
                    yield put(spec, p + [t], x)
            elif v is not None and v != {}:
                yield put(spec, p, t) if len(e) == 1 else put(spec, p + [t], {})
    # input and batch
    inp = spec.get('input')
    if isinstance(inp, int):
        inp = [inp]
    if isinstance(inp, list):
        for j in range(len(inp)):
            if len(inp) > 1:
                yield put(spec, ['input'], inp[:j] + inp[j + 1:])
            for x in smaller_ints(inp[j]):
                yield put(spec, ['input'], inp[:j] + [x] + inp[j + 1:])
    for x in smaller_ints(spec.get('batch', 1)):
        yield put(spec, ['batch'], x)
    # the optimizer's arguments
    opt = (spec.get('train') or {}).get('optimizer')
    if isinstance(opt, dict) and len(opt) == 1:
        oname, oargs = list(opt.items())[0]
        if isinstance(oargs, dict):
            for k in oargs:
                if k != 'lr' or oname == 'adam':
                    yield drop(spec, ['train', 'optimizer', oname, k])
        if oname == 'adam':
            yield put(spec, ['train', 'optimizer'], {'sgd': {'lr': 0.1}})
    # named children: plain names
    for p in paths:
        e = get(spec, p)
        if isinstance(e, dict) and isinstance(e.get('sequential'), dict):
            kids = e['sequential']
            plain = {'c%d' % j: v for j, v in enumerate(kids.values())}
            if list(kids) != list(plain):
                yield put(spec, p + ['sequential'], plain)


# --------------------------------------------------------------------------

_RUNNER = None


def _work(i):
    return _RUNNER.network(i)


def main():
    global _RUNNER
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--rt-lib', required=True, help='the runtime static library')
    ap.add_argument('--include', required=True, help='directory holding nngen/rt.h')
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('--extra-cflags', default='',
                    help='added to every compile and link (e.g. sanitizer flags)')
    ap.add_argument('--blas-libs', default='-lopenblas')
    ap.add_argument('--count', type=int, default=100)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--first', type=int, default=0, help='index of the first network')
    ap.add_argument('--jobs', type=int, default=1)
    ap.add_argument('--steps', type=int, default=5, help='training steps (default 5)')
    ap.add_argument('--with-no-blas', action='store_true',
                    help='also compile with --no-blas and compare its fwd/bwd')
    ap.add_argument('--noise-samples', type=int, default=3,
                    help="points near the compared one where torch's own float32 error "
                         "is measured too (conform.check_spec; default 3)")
    ap.add_argument('--known-bugs', action='store_true',
                    help='also generate the constructs of gen_specs.KNOWN_BUGS')
    ap.add_argument('--keep-failures', default=None, metavar='DIR')
    ap.add_argument('--no-shrink', action='store_true')
    ap.add_argument('--max-kept', type=int, default=1000000, metavar='N',
                    help='keep (and shrink) at most N failing networks per job')
    ap.add_argument('--shrink-time', type=float, default=600,
                    help='seconds spent shrinking one failing network (default 600)')
    ap.add_argument('--spec', action='append', default=[], metavar='FILE',
                    help='check this spec file instead of generated ones (repeatable; '
                         'e.g. a kept failure)')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--verbose', '-v', action='store_true', help='print every check')
    ap.add_argument('--progress', type=int, default=0, metavar='N',
                    help='a progress line every N networks')
    args = ap.parse_args()
    for k in ('nngen', 'rt_lib', 'include'):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    if args.keep_failures:
        args.keep_failures = os.path.abspath(args.keep_failures)
    args.blas_libs = args.blas_libs.split()
    args.extra_cflags = args.extra_cflags.split()
    torch.set_num_threads(1)
    # torch's note on padding='same' with an even kernel (a padded copy)
    warnings.filterwarnings('ignore', message="Using padding='same'")
    os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

    _RUNNER = Runner(args)
    t0 = time.time()
    passed = failed = nets = bad_nets = 0
    idx = range(len(args.spec)) if args.spec else range(args.first, args.first + args.count)
    if args.jobs > 1:
        pool = multiprocessing.get_context('fork').Pool(args.jobs)
        results = pool.imap(_work, idx)
    else:
        pool = None
        results = map(_work, idx)
    try:
        for r in results:
            nets += 1
            any_fail = False
            for check, ok, msg in r['log']:
                if ok:
                    passed += 1
                    if args.verbose:
                        print('PASS %s: %s' % (r['label'], check))
                elif ok is None:
                    if args.verbose:
                        print('SKIP %s: %s: %s' % (r['label'], check, first_line(msg)))
                else:
                    failed += 1
                    any_fail = True
                    print('FAIL %s: %s: %s' % (r['label'], check, first_line(msg)))
            if r['kept']:
                print('     minimized spec: %s' % r['kept'])
            bad_nets += any_fail
            if args.progress and nets % args.progress == 0:
                print('... %d networks, %d checks passed, %d failed (%.0f s)'
                      % (nets, passed, failed, time.time() - t0))
            sys.stdout.flush()
    finally:
        if pool:
            pool.terminate()
    print('%d networks, %d checks passed, %d failed (%d failing networks; %.0f s)'
          % (nets, passed, failed, bad_nets, time.time() - t0))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
