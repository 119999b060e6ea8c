#!/usr/bin/python3
"""A small deterministic fuzzer for nngen's parser and checker.

Two generators, alternating:
  - byte mutations of the bad corpus and the example specs (syntax, UTF-8,
    anchors, tags, numbers at the edges, pieces of other specs);
  - random specs from a grammar of the spec language (nested sequentials,
    repeats, blocks, shared refs, init rules, train), mostly well formed so
    that the checker, the init planner and the emitter get exercised.
Every input is run through `--check`, `--print` and compile mode.  A run
fails on a crash (signal), an exit status other than 0/1, a timeout, an
'internal error' or sanitizer report, or an exit status 1 whose first
stderr line is not `FILE:LINE:COL: error: ...`.  Failing inputs are kept
in a temporary directory that is printed.

The layers come from the compiler itself, `NNGEN --list-layers` (one line
per layer: NAME<TAB>TorchClass<TAB>MAIN<TAB>ARGS, ARGS space-separated
`arg:type=default` or `arg:type`, types int, num, bool, pair (pair|same|valid
with words)): those without
arguments are written bare (`relu`), those whose main argument is a number
`{NAME: VALUE}`; linear, softmax and log_softmax have their own rules below.
An nngen without --list-layers is an error.

Usage: fuzz_specs.py NNGEN [ITERATIONS [SEED]]    (defaults: 200, 1)
"""
import glob
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 60
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

TOKENS = [b'[', b']', b'{', b'}', b':', b'- ', b'\n', b'  ', b'\t', b'&a ', b'*a', b'!!str ',
          b'---\n', b'"', b"'", b'#', b'linear', b'relu', b'ref', b'repeat', b'sequential',
          b'init', b'frozen', b'shared', b'blocks', b'{i}', b'0', b'-1',
          b'99999999999999999999', b'2147483647', b'1e308', b'nan', b'.inf', b'0x10', b'null',
          b'~', b'true', b'at', b'layer', b'weight', b'bias', b'mixture', b'p', b'uniform',
          b'normal', b'custom', b'train', b'loss', b'optimizer', b'sgd', b'adam', b'times',
          b'body', b'name', b'in', b'out', b'dim', b'softmax', b'flatten', b'\x00', b'\xff',
          b'\xc3\xa9', b'\xe9', b'%YAML 1.1\n', b'? ']
# pair: also pair|WORD|WORD (conv2d's padding); word: one of word|A|B (rnn's
# nonlinearity); tied: {tied: PATH[, transpose: BOOL]} (SPEC 1.2.5)
ARG_TYPES = ('int', 'num', 'bool', 'pair', 'shape', 'word', 'tied')


def list_layers(nngen):
    """the compiler's layers from `nngen --list-layers`, in its order:
    [(name, torch class, main argument or None, {arg: (type, default or None)})]"""
    cmd = [nngen, '--list-layers']
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        sys.exit('fuzz_specs.py: cannot run `%s`: %s' % (' '.join(cmd), e))
    if r.returncode != 0:
        sys.exit('fuzz_specs.py: `%s` failed (exit status %d): %s\n'
                 'fuzz_specs.py takes its layer list from that option (one line per layer, '
                 'NAME<TAB>TorchClass<TAB>MAIN<TAB>ARGS): this nngen does not have it'
                 % (' '.join(cmd), r.returncode,
                    r.stderr.decode('utf-8', 'replace').strip() or '(no message)'))
    layers = []
    for n, line in enumerate(r.stdout.decode('utf-8', 'replace').splitlines(), 1):
        f = line.split('\t')
        if len(f) == 3:
            f.append('')  # no ARGS, trailing tab left off
        ok = len(f) == 4 and re.match(r'^[a-z_][a-z0-9_]*$', f[0]) and f[1] and f[2]
        args = {}
        for a in f[3].split() if ok else []:
            m = re.match(r'^([a-z_][a-z0-9_]*):([a-z]+)((?:\|[a-z_]+)*)(?:=(\S+))?$', a)
            if (not m or m.group(2) not in ARG_TYPES or m.group(1) in args
                    or (m.group(3) and m.group(2) not in ('pair', 'word'))):
                ok = False
                break
            args[m.group(1)] = (m.group(2), m.group(4))
        main = None if not ok or f[2] == '-' else f[2]
        if not ok or (main is not None and main not in args):
            sys.exit('fuzz_specs.py: `%s`, line %d: %r is not NAME<TAB>TorchClass<TAB>MAIN'
                     '<TAB>ARGS (MAIN one of ARGS or -, ARGS arg:type[=default] with type %s)'
                     % (' '.join(cmd), n, line, ', '.join(ARG_TYPES)))
        layers.append((f[0], f[1], main, args))
    if not any(not args for _, _, _, args in layers):
        sys.exit('fuzz_specs.py: `%s` lists no layer without arguments' % ' '.join(cmd))
    return layers


class Gen:
    def __init__(self, rnd, layers):
        self.rnd = rnd
        self.clean = True
        # written bare: the layers without arguments
        self.plain = [name for name, _, _, args in layers if not args]
        # written {NAME: number}: the layers whose main argument is a num
        self.num_main = [name for name, _, main, args in layers
                         if main is not None and args[main][0] == 'num']

    def one_of(self, names):
        # no draw for a single name: with one such layer (leaky_relu) a seeded
        # run makes the inputs it made from the hand list this replaced
        return names[0] if len(names) == 1 else self.rnd.choice(names)

    def pick(self, good, bad=()):
        return self.rnd.choice(list(good) + ([] if self.clean else list(bad)))

    def module(self, d, blocks, shared):
        r = self.rnd.random()
        if d > 4 or r < 0.3:
            c = self.rnd.random()
            if c < 0.3:
                return '{linear: %s}' % self.pick(
                    ['1', '2', '4', '8', '{out: 3, in: 4}', '{out: 3, in: 8}',
                     '{out: 2, bias: false}'],
                    ['0', '-1', '2.5', 'x', '"8"', '99999999999999999999', '[8]', '{}'])
            if c < 0.5:
                return self.rnd.choice(self.plain)
            if c < 0.6:
                return '{%s: %s}' % (self.rnd.choice(['softmax', 'log_softmax']),
                                     self.pick(['1', '-1', '{dim: 1}'], ['0', '2', '-3']))
            if c < 0.65 and self.num_main:
                return '{%s: %s}' % (self.one_of(self.num_main),
                                     self.pick(['0.1', '1'], ['x', '.inf']))
            if c < 0.8 and blocks:
                return self.rnd.choice(blocks)
            if c < 0.95 and shared:
                return '{ref: %s}' % self.pick(shared, ['nope'])
            return self.pick(self.plain + ['[]'], ['lienar', 'sequential'])
        if r < 0.6:
            return '[' + ', '.join(self.module(d + 1, blocks, shared)
                                   for _ in range(self.rnd.randint(0, 4))) + ']'
        if r < 0.75:
            keys = self.rnd.sample(['a', 'b', 'c', 'd', '0'] + ([] if self.clean else ['x.y']),
                                   self.rnd.randint(1, 3))
            return '{sequential: {' + ', '.join(
                '%s: %s' % (k, self.module(d + 1, blocks, shared)) for k in keys) + '}}'
        if r < 0.9:
            return '{repeat: {times: %s, %sbody: %s}}' % (
                self.pick(['1', '2', '3', '20'], ['0', '100001']),
                self.pick(['', 'name: "b{i}", '], ['name: b, ', 'name: "{j}", ']),
                self.module(d + 1, blocks, shared))
        return '{sequential: [%s], init: %s%s}' % (self.module(d + 1, blocks, shared),
                                                  self.rules(),
                                                  self.pick(['', ', frozen: true'],
                                                            [', frozen: 3']))

    def init(self):
        return self.pick(
            ['zeros', 'ones', 'default', 'xavier_uniform', 'kaiming_normal', '{normal: [0, 0.1]}',
             '{uniform: [-1, 1]}', '{constant: 3}', '{trunc_normal: {std: 2}}',
             '{mixture: [{p: 0.5, constant: 0}, {p: 0.5, normal: [0, 1]}]}',
             '{custom: f%d}' % self.rnd.randint(0, 3), '{kaiming_uniform: {a: 1, mode: fan_out}}',
             '{uniform: [0, 1], zero_abs_below: 0.5}'],
            ['{uniform: [1, -1]}', '{normal: {std: -1}}', 'bogus',
             '{mixture: [{p: 0.7, constant: 0}]}', '{zero_abs_below: 1}'])

    def rules(self):
        out = []
        for _ in range(self.rnd.randint(0, 3)):
            kv = []
            if self.rnd.random() < 0.4:
                kv.append('at: "%s"' % self.pick(['0', '0.0', ''], ['1', '2', 'a', 'b.0']))
            if self.rnd.random() < 0.4:
                kv.append('layer: %s' % self.pick(['linear'], ['relu', 'lineer']))
            for p in self.rnd.sample(['weight', 'bias'], self.rnd.randint(1 if self.clean else 0, 2)):
                kv.append('%s: %s' % (p, self.init()))
            out.append('{' + ', '.join(kv) + '}')
        return '[' + ', '.join(out) + ']'

    def spec(self):
        self.clean = self.rnd.random() < 0.85
        nb, ns = self.rnd.randint(0, 3), self.rnd.randint(0, 2)
        blocks = ['b%d' % i for i in range(nb)]
        shared = ['s%d' % i for i in range(ns)]
        t = 'nngen: 1\ninput: %s\nbatch: %s\n' % (
            self.pick(['[4]', '[2, 3]', '[1, 2, 3]', '4'], ['[0]', '[]', '[1, 2, 3, 4]']),
            self.pick(['1', '2', '3'], ['0', 'true']))
        if nb:
            t += 'blocks:\n' + ''.join(
                '  %s: %s\n' % (b, self.module(1, blocks[i + 1:] if self.clean else blocks, shared))
                for i, b in enumerate(blocks))
        if ns:
            t += 'shared:\n' + ''.join('  %s: %s\n' % (s, self.module(2, [], shared[:i]))
                                       for i, s in enumerate(shared))
        t += 'model: [%s%s]\n' % (self.module(0, blocks, shared),
                                  ''.join(', {ref: %s}' % x for x in shared))
        if self.rnd.random() < 0.5:
            t += 'init: %s\n' % self.rules()
        if self.rnd.random() < 0.3:
            t += 'train: {loss: %s, optimizer: %s}\n' % (
                self.rnd.choice(['mse', 'cross_entropy']),
                self.pick(['{sgd: {lr: 0.1}}', '{adam: {}}',
                           '{sgd: {lr: 0.1, momentum: 0.9, nesterov: true}}'],
                          ['{sgd: {lr: 0.1, nesterov: true}}', '{adam: {betas: [1, 2]}}']))
        return t.encode()


def mutate(rnd, seeds):
    d = bytearray(rnd.choice(seeds))
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randint(0, 4)
        pos = rnd.randint(0, len(d)) if d else 0
        if op == 0 and d:
            del d[pos:pos + rnd.randint(1, 8)]
        elif op == 1:
            d[pos:pos] = rnd.choice(TOKENS)
        elif op == 2 and d:
            d[pos:pos + 1] = bytes([rnd.randint(0, 255)])
        elif op == 3:
            o = rnd.choice(seeds)
            a = rnd.randint(0, len(o))
            d[pos:pos] = o[a:a + rnd.randint(1, 60)]
        elif op == 4 and d:
            a = rnd.randint(0, len(d))
            b = rnd.randint(a, min(len(d), a + 80))
            d[pos:pos] = d[a:b]
    return bytes(d)


def problem(argv, path):
    """(what is wrong or None, exit status)"""
    try:
        r = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return 'timeout after %d s' % TIMEOUT, None
    err = r.stderr.decode('utf-8', 'replace')
    if r.returncode < 0:
        return 'signal %d: %s' % (-r.returncode, err[-500:]), r.returncode
    if r.returncode not in (0, 1):
        return 'exit status %d: %s' % (r.returncode, err[-500:]), r.returncode
    if 'internal error' in err or 'Sanitizer' in err or 'runtime error:' in err:
        return 'report: ' + err[-1500:], r.returncode
    if r.returncode == 1 and not re.match(r'^%s:\d+:\d+: error: \S' % re.escape(path), err):
        return 'not FILE:LINE:COL: ' + (err.splitlines() or [''])[0], r.returncode
    return None, r.returncode


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: fuzz_specs.py NNGEN [ITERATIONS [SEED]]')
    nngen = os.path.abspath(sys.argv[1])
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    layers = list_layers(nngen)
    rnd = random.Random(seed)
    seeds = [open(f, 'rb').read() for f in sorted(glob.glob(os.path.join(HERE, '*.yaml')) +
                                                  glob.glob(os.path.join(ROOT, 'specs', '*', '*.yaml')))]
    gen = Gen(rnd, layers)
    keep = tempfile.mkdtemp(prefix='nngen-fuzz-')
    work = tempfile.mkdtemp(prefix='nngen-fuzz-run-')
    path = os.path.join(work, 'case.yaml')
    out = os.path.join(work, 'out', 'o.c')
    os.mkdir(os.path.dirname(out))
    failures = valid = 0
    for i in range(iters):
        data = gen.spec() if i % 2 else mutate(rnd, seeds)
        with open(path, 'wb') as f:
            f.write(data)
        for argv in ([nngen, '--check', path], [nngen, '--print', path],
                     [nngen, path, '-o', out]):
            p, rc = problem(argv, path)
            if argv[1] == '--check' and rc == 0:
                valid += 1
            if p:
                failures += 1
                kept = os.path.join(keep, '%d.yaml' % i)
                with open(kept, 'wb') as f:
                    f.write(data)
                print('FAIL %s (%s): %s' % (kept, argv[1], p))
                break
    shutil.rmtree(work)
    print('%d inputs (%d valid specs), %d failed%s' % (
        iters, valid, failures, '; kept in ' + keep if failures else ''))
    if not failures:
        os.rmdir(keep)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
