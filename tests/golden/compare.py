#!/usr/bin/python3
"""Golden test: the C that nngen generates now computes the same numbers as
the C it generated before the op-registry redesign (tests/golden/).

usage: compare.py --nngen NNGEN --rt-lib LIBNNGEN-RT.a --include INCDIR
                  --driver tests/conform/driver.c --golden pre-registry.tar.xz
                  [--cc CC] [--extra-cflags FLAGS] [--blas-libs FLAGS]
                  [--jobs 2] [--steps 5] [--only SUBSTR] [--mutate OLD NEW]
                  [--workdir DIR] [--keep] SPEC|DIR ...

The tarball holds, for every specs/<dir>/<stem>.yaml, the files
<dir>_<stem>.c/.h (`nngen SPEC`) and <dir>_<stem>_nb.c/.h (`nngen --no-blas
SPEC`).  For each spec and variant (default, --no-blas) this script builds
the golden files and freshly generated ones (same file names, separate
directories) with the conformance driver, runs both on the same inputs and
requires byte-identical stdout (floats are printed with %a):

  generate     nngen SPEC [--no-blas] -o NEW/<dir>_<stem>[_nb].c
  compile golden / compile new
               cc -std=c99 -O1 driver.c net.c [custom stubs] librt.a
               -lopenblas -lm -lpthread; a golden file that no longer compiles
               against the current include/nngen/rt.h is a FAIL (ABI change)
  interface    NET name, train and target type read from both headers agree
  info         `driver info`
  init seed=S  S in 0, 1, 42
  run          `driver run PARAMS X DY`: parameters (names and sizes from the
               golden `driver info`; weights uniform with variance 2/fan_in,
               fan_in from the golden .c's tensor table; 1-d ones in
               [-0.25, 0.5]),
               x and dy in [-1, 1], all from random.Random seeded by
               "<dir>/<stem>.yaml"
  train N steps   specs with train only: `driver train PARAMS X TARGET N`

Both executables run with OPENBLAS_NUM_THREADS=1, NNGEN_NUM_THREADS=2 and
NNGEN_GEMM=nngen.
A run that exits non-zero or whose stderr has a sanitizer report is a FAIL.

--mutate OLD NEW replaces the first occurrence of OLD in every newly
generated .c (a debug aid to check that a change is detected; with --only it
can be aimed at one spec).  Output: one line `PASS|FAIL SPEC VARIANT: CHECK`
per check (failures followed by an indented explanation or diff excerpt),
then "N passed, N failed"; exit status 1 if anything failed.
"""
import argparse
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor

SEEDS = [0, 1, 42]
CFLAGS = ['-std=c99', '-O1']
VARIANTS = [('default', '', []), ('--no-blas', '_nb', ['--no-blas'])]
# NNGEN_GEMM=nngen: one kernel for every product on both sides (the default
# chooses per product class by timing, per process, and the kernels' sums
# differ in the last bits)
RUN_ENV = {'OPENBLAS_NUM_THREADS': '1', 'NNGEN_NUM_THREADS': '2', 'NNGEN_GEMM': 'nngen'}
SANITIZER_MARKS = ('runtime error:', 'Sanitizer', 'AddressSanitizer', 'LeakSanitizer')
MEMBER_RE = re.compile(r'^[A-Za-z0-9_]+\.[ch]$')


class CheckError(Exception):
    pass


def run(cmd, cwd=None, timeout=300):
    env = dict(os.environ)
    env.update(RUN_ENV)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CheckError('timed out after %ds: %s' % (timeout, ' '.join(cmd)))
    except OSError as ex:
        raise CheckError('cannot run %s: %s' % (cmd[0], ex))
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def must(cmd, what, cwd=None, timeout=300):
    rc, out, err = run(cmd, cwd=cwd, timeout=timeout)
    if rc != 0:
        lines = (err or out).strip().splitlines()
        errs = [l for l in lines if 'error' in l]
        head = '\n'.join((errs or lines)[:8])
        raise CheckError('%s failed (exit %d): %s\n%s' % (what, rc, ' '.join(cmd), head))
    return out


# --------------------------------------------------------------------------
# inputs in the driver's dump format

def f32(v):
    return struct.unpack('<f', struct.pack('<f', v))[0]


def dump_tensor(name, vals):
    return '%s %d\n' % (name, len(vals)) + ''.join(float.hex(v) + '\n' for v in vals)


def uniform(rng, n, lo=-1.0, hi=1.0):
    return [f32(rng.uniform(lo, hi)) for _ in range(n)]


def golden_shapes(c_path):
    """{tensor name: dims} from the tensor table of a golden .c (the golden
    files never change, so reading their text is safe)."""
    with open(c_path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    shapes = {}
    for name, ndim, dims in re.findall(r'^\s*\{"([^"]+)", (\d+), \{([\d, ]+)\}', text, re.M):
        shapes[name] = [int(d) for d in dims.split(',')][:int(ndim)]
    return shapes


def param_range(dims, numel):
    """weights: uniform with variance 2/fan_in (He), so that activations and
    the losses of the train check stay of order 1 through ReLU stacks; 1-d
    tensors (biases): [-0.25, 0.5], mostly positive to keep ReLUs alive"""
    if dims and len(dims) >= 2:
        fan_in = 1
        for d in dims[1:]:
            fan_in *= d
        if dims[0] * fan_in == numel and fan_in > 0:
            b = (6.0 / fan_in) ** 0.5
            return -b, b
    return -0.25, 0.5


def parse_info(text):
    """`driver info` -> (batch, in, out, [(param, numel)])"""
    batch = n_in = n_out = None
    params = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == 'batch':
            batch = int(f[1])
        elif len(f) == 2 and f[0] == 'in':
            n_in = int(f[1])
        elif len(f) == 2 and f[0] == 'out':
            n_out = int(f[1])
        elif len(f) == 3 and f[0] == 'param':
            params.append((f[1], int(f[2])))
        else:
            raise CheckError('unexpected line in driver info: %r' % line)
    if batch is None or n_in is None or n_out is None:
        raise CheckError('driver info lacks batch/in/out')
    return batch, n_in, n_out, params


# --------------------------------------------------------------------------
# what the generated header says

def header_facts(h_path, name_hint):
    """(NET name, has train, int targets, custom initializers) from a header."""
    with open(h_path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    names = re.findall(r'^#define\s+([A-Za-z_]\w*)_BATCH\b', text, re.M)
    if not names:
        raise CheckError('%s: no #define <name>_BATCH' % os.path.basename(h_path))
    name = name_hint if name_hint in names else names[0]
    m = re.search(r'\b%s_train_step\s*\(([^)]*)\)' % re.escape(name), text)
    has_train = m is not None
    int_target = bool(m and re.search(r'\bint32_t\s*\*\s*target\b', m.group(1)))
    customs = set(re.findall(r'^\s*void\s+([A-Za-z_]\w*)\s*\(\s*nn_tensor\s*\*\s*\w*\s*,'
                             r'\s*nn_rng\s*\*\s*\w*\s*\)\s*;', text, re.M))
    return name, has_train, int_target, customs


def spec_facts(path):
    """name: and custom initializer names from the spec text (no YAML module)."""
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    m = re.search(r'^name:\s*["\']?([A-Za-z_]\w*)', text, re.M)
    name = m.group(1) if m else os.path.splitext(os.path.basename(path))[0]
    customs = set(re.findall(r'\bcustom:\s*["\']?([A-Za-z_]\w*)', text))
    return name, customs


# --------------------------------------------------------------------------
# one spec and variant

def text_diff(got, want, limit=6, dump=True):
    g, w = got.splitlines(), want.splitlines()
    lines = []
    ndiff = 0
    header = None
    for i in range(max(len(g), len(w))):
        b = w[i] if i < len(w) else '<missing>'
        a = g[i] if i < len(g) else '<missing>'
        if dump and (re.match(r'^\S+ (\d+|none)$', b) or b.startswith('loss ')):
            header = b
        if a != b:
            ndiff += 1
            if len(lines) < limit:
                where = '' if header is None or header == b else ' (in %s)' % header
                lines.append('line %d%s: new %r, golden %r' % (i + 1, where, a, b))
    if ndiff > limit:
        lines.append('... %d differing lines in all (%d golden, %d new)' % (ndiff, len(w), len(g)))
    if not lines and got != want:
        lines.append('differs in trailing newline/whitespace')
    return '\n'.join(lines)


class Job(object):
    def __init__(self, args, spec, rel, base, variant, suffix, flags, golden_dir):
        self.args = args
        self.spec = spec
        self.rel = rel
        self.base = base + suffix
        self.variant = variant
        self.flags = flags
        self.golden_dir = golden_dir
        self.label = '%s %s' % (rel, variant)
        self.lines = []
        self.passed = self.failed = 0
        self.identical_source = None
        self.mutated = False

    def ok(self, check):
        self.lines.append('PASS %s: %s' % (self.label, check))
        self.passed += 1

    def fail(self, check, why):
        self.lines.append('FAIL %s: %s' % (self.label, check))
        for l in str(why).rstrip().splitlines():
            self.lines.append('    ' + l)
        self.failed += 1

    def note(self, text):
        self.lines.append('NOTE %s: %s' % (self.label, text))

    def build(self, d, facts, customs, what):
        name, has_train, int_target = facts
        defs = ['-DNET_H="%s.h"' % self.base, '-DNET=%s' % name]
        if has_train:
            defs.append('-DNET_HAS_TRAIN')
            if int_target:
                defs.append('-DNET_TARGET_INT')
        srcs = [self.args.driver, os.path.join(d, self.base + '.c')]
        if customs:
            stub = os.path.join(d, 'custom_stubs.c')
            with open(stub, 'w') as f:
                f.write('/* stand-ins for the spec\'s custom initializers */\n'
                        '#include <nngen/rt.h>\n')
                for n in sorted(customs):
                    f.write('void %s(nn_tensor *param, nn_rng *rng);\n'
                            'void %s(nn_tensor *param, nn_rng *rng)\n'
                            '{\n    nn_init_uniform(param, rng, -0.5f, 0.5f);\n}\n' % (n, n))
            srcs.append(stub)
        exe = os.path.join(d, 'driver')
        cmd = ([self.args.cc] + CFLAGS + self.args.extra_cflags
               + ['-I' + d, '-I' + self.args.include] + defs + srcs
               + ['-o', exe, self.args.rt_lib] + self.args.blas_libs + ['-lm', '-lpthread'])
        must(cmd, what, timeout=300)
        return exe

    def drive(self, exe, args):
        rc, out, err = run([exe] + args, timeout=300)
        why = None
        if rc != 0:
            why = 'exit status %d' % rc
        elif any(m in err for m in SANITIZER_MARKS):
            why = 'sanitizer report'
        if why:
            head = '\n'.join(err.strip().splitlines()[:8])
            raise CheckError('%s: %s %s\n%s' % (why, os.path.basename(os.path.dirname(exe)),
                                                ' '.join(args), head))
        return out

    def compare(self, check, exes, args, dump=True):
        try:
            want = self.drive(exes[0], args)
            got = self.drive(exes[1], args)
        except CheckError as e:
            self.fail(check, e)
            return None
        if got == want:
            self.ok(check)
        else:
            self.fail(check, 'output differs from the golden code\'s:\n'
                      + text_diff(got, want, dump=dump))
        return want

    def work(self, root):
        args = self.args
        d = os.path.join(root, self.base)
        old, new, data = (os.path.join(d, s) for s in ('golden', 'new', 'data'))
        for x in (old, new, data):
            os.makedirs(x)
        for ext in ('.c', '.h'):
            src = os.path.join(self.golden_dir, self.base + ext)
            if not os.path.isfile(src):
                # a spec written after the snapshot: there is no "before" to compare
                # with (the snapshot must not be regenerated: it is the old compiler's)
                self.lines.append('SKIP %s: not in the snapshot (a spec added after it)'
                                  % self.label)
                return
            shutil.copy(src, old)

        try:
            must([args.nngen, self.spec, '-o', os.path.join(new, self.base + '.c')] + self.flags,
                 'nngen')
            for ext in ('.c', '.h'):
                if not os.path.isfile(os.path.join(new, self.base + ext)):
                    raise CheckError('nngen did not write %s' % (self.base + ext))
        except CheckError as e:
            self.fail('generate', e)
            return
        self.ok('generate')
        same = True
        for ext in ('.c', '.h'):
            with open(os.path.join(old, self.base + ext), 'rb') as f1, \
                    open(os.path.join(new, self.base + ext), 'rb') as f2:
                same = same and f1.read() == f2.read()
        self.identical_source = same
        if args.mutate:
            a, b = args.mutate
            c = os.path.join(new, self.base + '.c')
            with open(c) as f:
                text = f.read()
            if a in text:
                with open(c, 'w') as f:
                    f.write(text.replace(a, b, 1))
                self.mutated = True
                self.note('--mutate: replaced %r by %r in the new .c' % (a, b))

        name_hint, spec_customs = spec_facts(self.spec)
        facts = {}
        exes = []
        for side, sd in (('golden', old), ('new', new)):
            try:
                name, has_train, int_target, h_customs = header_facts(
                    os.path.join(sd, self.base + '.h'), name_hint)
                facts[side] = (name, has_train, int_target)
                exes.append(self.build(sd, facts[side], spec_customs | h_customs,
                                       'cc (%s code)' % side))
                self.ok('compile ' + side)
            except CheckError as e:
                self.fail('compile ' + side, e)
        if len(exes) != 2:
            return
        if facts['golden'] != facts['new']:
            self.fail('interface', 'golden header: name %s, train %s, int target %s; new: '
                      'name %s, train %s, int target %s' % (facts['golden'] + facts['new']))
            return
        self.ok('interface')
        name, has_train, int_target = facts['golden']

        info = self.compare('info', exes, ['info'], dump=False)
        for s in SEEDS:
            self.compare('init seed=%d' % s, exes, ['init', str(s)])
        if info is None:
            return
        try:
            batch, n_in, n_out, params = parse_info(info)
        except CheckError as e:
            self.fail('run', e)
            return
        rng = random.Random('nngen-golden:' + self.rel)
        p_path, x_path, dy_path, t_path = (os.path.join(data, n) for n in
                                           ('params.dump', 'x.dump', 'dy.dump', 'target.dump'))
        shapes = golden_shapes(os.path.join(old, self.base + '.c'))
        with open(p_path, 'w') as f:
            for pname, numel in params:
                lo, hi = param_range(shapes.get(pname), numel)
                f.write(dump_tensor(pname, uniform(rng, numel, lo, hi)))
        with open(x_path, 'w') as f:
            f.write(dump_tensor('x', uniform(rng, batch * n_in)))
        with open(dy_path, 'w') as f:
            f.write(dump_tensor('dy', uniform(rng, batch * n_out)))
        self.compare('run', exes, ['run', p_path, x_path, dy_path])
        if has_train:
            if int_target:
                t = [float(rng.randrange(n_out)) for _ in range(batch)]
            else:
                t = uniform(rng, batch * n_out)
            with open(t_path, 'w') as f:
                f.write(dump_tensor('target', t))
            self.compare('train %d steps' % args.steps, exes,
                         ['train', p_path, x_path, t_path, str(args.steps)])

    def __call__(self, root):
        try:
            self.work(root)
        except Exception as e:  # a bug here must show as a failure, not a crash
            self.fail('harness', '%s: %s' % (type(e).__name__, e))
        return self


# --------------------------------------------------------------------------

def collect(paths):
    """[(spec path, "<dir>/<stem>.yaml", golden base name "<dir>_<stem>")] where
    <dir> is the directory holding the spec (specs/<dir>/<stem>.yaml)"""
    found = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.endswith('.yaml')]
        else:
            found.append(p)
    res = []
    for f in found:
        f = os.path.abspath(f)
        d = os.path.basename(os.path.dirname(f))
        stem = os.path.splitext(os.path.basename(f))[0]
        res.append((f, d + '/' + stem + '.yaml', d + '_' + stem))
    return sorted(res, key=lambda r: r[1])


def extract(tarball, dest):
    names = []
    with tarfile.open(tarball, 'r:*') as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            base = os.path.basename(m.name)
            if not MEMBER_RE.match(base):
                raise CheckError('unexpected member %r in %s' % (m.name, tarball))
            with tf.extractfile(m) as src, open(os.path.join(dest, base), 'wb') as dst:
                shutil.copyfileobj(src, dst)
            names.append(base)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--rt-lib', required=True, help='the runtime static library')
    ap.add_argument('--include', required=True, help='directory holding nngen/rt.h')
    ap.add_argument('--driver', required=True, help='tests/conform/driver.c (with dump.h)')
    ap.add_argument('--golden', help='tarball of the golden .c/.h files')
    ap.add_argument('--golden-no-blas', action='store_true',
                    help='instead of a tarball: the golden side of each spec is what this '
                         'nngen generates with --no-blas, against its default output (for '
                         'layers whose runtime code promises the loops\' bits)')
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('--extra-cflags', default='',
                    help='added to every compile and link (e.g. sanitizer flags)')
    ap.add_argument('--blas-libs', default='-lopenblas')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--only', action='append', default=[],
                    help='only specs whose relative path contains this (repeatable)')
    ap.add_argument('--mutate', nargs=2, default=None, metavar=('OLD', 'NEW'),
                    help='debug: replace the first OLD by NEW in every new .c')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('specs', nargs='+', help='spec files or directories (all **/*.yaml)')
    args = ap.parse_args()
    if (args.golden is None) == (not args.golden_no_blas):
        ap.error('give one of --golden TARBALL and --golden-no-blas')
    for a in ('nngen', 'rt_lib', 'include', 'driver', 'golden'):
        if getattr(args, a) is not None:
            setattr(args, a, os.path.abspath(getattr(args, a)))
    args.extra_cflags = args.extra_cflags.split()
    args.blas_libs = args.blas_libs.split()
    if args.mutate is not None and not args.mutate[0]:
        ap.error('--mutate: OLD must not be empty')

    root = tempfile.mkdtemp(prefix='golden-', dir=args.workdir)
    passed = failed = 0
    try:
        gdir = os.path.join(root, 'tarball')
        os.makedirs(gdir)
        specs = collect(args.specs)
        if args.only:
            specs = [s for s in specs if any(o in s[1] for o in args.only)]
        variants = VARIANTS
        try:
            if args.golden_no_blas:
                members = []
                variants = VARIANTS[:1]
                for spec, rel, base in specs:
                    must([args.nngen, '--no-blas', spec, '-o', os.path.join(gdir, base + '.c')],
                         'nngen --no-blas')
            else:
                members = extract(args.golden, gdir)
        except (CheckError, tarfile.TarError, OSError) as e:
            print('FAIL golden %s: %s' % ('--no-blas code' if args.golden_no_blas else 'tarball',
                                          e))
            print('0 passed, 1 failed')
            return 1
        jobs = [Job(args, spec, rel, base, v, suffix, flags, gdir)
                for spec, rel, base in specs for v, suffix, flags in variants]
        extra = []
        if not args.only and all(os.path.isdir(p) for p in args.specs) and members:
            wanted = set(j.base for j in jobs)
            extra = sorted(set(os.path.splitext(m)[0] for m in members) - wanted)
        if not jobs:
            print('FAIL specs: no spec found in %s' % ' '.join(args.specs))
            failed += 1
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for job in pool.map(lambda j: j(root), jobs):
                for l in job.lines:
                    print(l)
                sys.stdout.flush()
                passed += job.passed
                failed += job.failed
        for m in extra:
            print('FAIL golden tarball: %s.c/.h belong to no spec given (a spec was removed or '
                  'renamed? then regenerate the golden files)' % m)
            failed += 1
        if args.mutate and not any(j.mutated for j in jobs):
            print('NOTE --mutate: %r occurs in no generated .c' % args.mutate[0])
        same = [j for j in jobs if j.identical_source is not None]
        if same:
            print('(nngen output textually identical to the golden .c/.h: %d of %d spec variants)'
                  % (sum(1 for j in same if j.identical_source), len(same)))
    finally:
        if args.keep:
            print('work directory kept: %s' % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
