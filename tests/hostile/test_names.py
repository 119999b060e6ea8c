#!/usr/bin/python3
"""The spec's `name:` against every identifier of generated code.

usage: test_names.py --nngen NNGEN --include DIR [--cc CC] SPEC...

The name becomes the type P and the prefix of every generated symbol, so it
must not collide with anything the generated file or its headers use.  This
collects every identifier in the generated .c and .h of the given specs
(compiled with and without --no-blas and --inference) that is not P itself
or P_-prefixed, plus the names from the issue that once broke the build;
then, for each, writes a spec with that name and checks:

  refused   nngen exits 1 with FILE:LINE:COL: error: name '...' cannot be
            used: ... (the message says why), and writes nothing; or
  accepted  nngen exits 0 and the generated C compiles with
            -std=c99 -Wall -Wextra -Wpedantic -Werror (every variant).

The names of the issue must be refused.  One line per name; exit 1 if any
check fails.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

MUST_REFUSE = ['int', 'float', 'restrict', 'inline', '_Bool', 'size_t', 'uint8_t', 'stdin',
               'memcpy', 'sqrtf', 'exp', 'nn_model', 'fwd', 'bwd', 'SCRATCH_FLOATS', 'class',
               'nn', 'NN_MAX_DIM', 'f0', 'opt3_part', 'main', 'errno', 'NULL']
IDENT = re.compile(r'\b[A-Za-z_][A-Za-z0-9_]*\b')
CFLAGS = ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-c']
VARIANTS = [[], ['--no-blas'], ['--inference']]


def strip_text(src):
    """C source without comments and string/char literals."""
    src = re.sub(r'/\*.*?\*/', ' ', src, flags=re.S)
    src = re.sub(r'"(\\.|[^"\\])*"', ' ', src)
    return re.sub(r"'(\\.|[^'\\])*'", ' ', src)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--include', required=True)
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('specs', nargs='+')
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix='names-')
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work):
    names = set(MUST_REFUSE)
    bodies = []
    for k, spec in enumerate(args.specs):
        text = open(spec).read()
        m = re.search(r'^name:\s*(\S+)', text, re.M)
        prefix = m.group(1) if m else os.path.splitext(os.path.basename(spec))[0]
        body = re.sub(r'^name:.*\n', '', text, flags=re.M)
        bodies.append(body)
        for v, flags in enumerate(VARIANTS):
            out = os.path.join(work, 'probe%d_%d.c' % (k, v))
            subprocess.run([args.nngen, spec, '-o', out] + flags, check=True)
            for f in (out, out[:-2] + '.h'):
                for w in IDENT.findall(strip_text(open(f).read())):
                    if w != prefix and not w.startswith(prefix + '_'):
                        names.add(w)
    names = sorted(names)
    print('%d identifiers from the generated code of %d specs' % (len(names), len(args.specs)))

    def check(i_name):
        i, name = i_name
        d = os.path.join(work, 'n%d' % i)
        os.makedirs(d)
        lines = []
        refused = accepted = 0
        for b, body in enumerate(bodies):
            spec = os.path.join(d, 's%d.yaml' % b)
            with open(spec, 'w') as f:
                f.write('name: "%s"\n%s' % (name, body))
            for v, flags in enumerate(VARIANTS):
                out = os.path.join(d, 'o%d_%d.c' % (b, v))
                r = subprocess.run([args.nngen, spec, '-o', out] + flags, capture_output=True,
                                   text=True)
                if r.returncode == 1:
                    first = r.stderr.splitlines()[0] if r.stderr else ''
                    if not re.match(r'^%s:\d+:\d+: error: name \'%s\' cannot be used: \S'
                                    % (re.escape(spec), re.escape(name)), first):
                        return ['FAIL %s: exit 1 without the expected message: %s'
                                % (name, first)], 1
                    if os.path.exists(out):
                        return ['FAIL %s: refused, but %s was written' % (name, out)], 1
                    refused += 1
                    continue
                if r.returncode != 0:
                    return ['FAIL %s: nngen exit %d: %s' % (name, r.returncode, r.stderr)], 1
                if name in MUST_REFUSE:
                    return ['FAIL %s: accepted, but it must be refused' % name], 1
                c = subprocess.run([args.cc] + CFLAGS + ['-I' + args.include, '-I' + d, out,
                                                         '-o', out[:-2] + '.o'],
                                   capture_output=True, text=True)
                if c.returncode != 0:
                    return ['FAIL %s: accepted, but %s %s does not compile:\n%s'
                            % (name, os.path.basename(args.specs[b]), ' '.join(flags),
                               c.stderr[:1500])], 1
                accepted += 1
        if refused and accepted:
            return ['FAIL %s: refused in some specs, accepted in others' % name], 1
        lines.append('PASS %s: %s' % (name, 'refused' if refused else 'accepted, compiles'))
        return lines, 0

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for lines, bad in pool.map(check, enumerate(names)):
            for l in lines:
                print(l)
            failed += bad
    print('%d names: %d passed, %d failed' % (len(names), len(names) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
