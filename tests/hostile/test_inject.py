#!/usr/bin/python3
"""Spec text that reaches the generated C: escaped, never code.

usage: test_inject.py --nngen NNGEN --include DIR --rt-lib LIB [--cc CC]

Every place a string from the spec reaches nngen's output is tried with
text that would end or nest a comment, form a trigraph, break a string
literal or a line: child names (named children, repeat names), whose
paths go into comments and into the state_dict keys of the tables, and the
spec's file name (the banner of the .c and the .h).  Block, shared, custom
initializer and spec names must be identifiers: each of the texts there must
be refused (exit 1, FILE:LINE:COL, no file written).  For the others:

  compile   the .c compiles with -std=c99 -Wall -Wextra -Wpedantic -Werror
            (trigraphs and -Wcomment included), with and without --no-blas;
  nothing   no symbol `evil` in the object file, and the text of every
            line of the .c outside comments and string literals is the same
            as for a harmless name (so nothing was injected anywhere);
  keys      the compiled model's state_dict keys, read back through
            nn_state_key, are exactly the names written in the spec (byte
            for byte) followed by .weight / .bias.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
from harness import Result  # noqa: E402

EVIL = [
    'x */ int evil = 1; /* y',
    'a*/b',
    'a/*b',
    '??=',
    '??/',
    '??(x??)',
    'back\\slash\\',
    'new\nline',
    'tab\there',
    '"quoted"',
    'caf\u00e9 \u03b1\u03b2',
    '*/ evil(); /*',
    '\\\n#define evil 1',
    '%s%n',
    '*',
    '/',
]
CFLAGS = ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-Wtrigraphs', '-Wcomment']

DRIVER = r'''
#include <stdio.h>
#include "net.h"
int main(void)
{
    inj *net = inj_create();
    nn_model *m = inj_model(net);
    for (size_t i = 0; i < nn_state_count(m); i++) {
        const unsigned char *k = (const unsigned char *)nn_state_key(m, i);
        for (; *k; k++)
            printf("%02x", *k);
        printf("\n");
    }
    inj_destroy(net);
    return 0;
}
'''


def yaml_str(s):
    """s as a double-quoted YAML scalar."""
    out = '"'
    for ch in s:
        if ch == '"':
            out += '\\"'
        elif ch == '\\':
            out += '\\\\'
        elif ch == '\n':
            out += '\\n'
        elif ch == '\t':
            out += '\\t'
        else:
            out += ch
    return out + '"'


def code_only(src):
    """src with every comment replaced by /**/ and every string literal by "",
    scanning as C does (a /* inside a string is no comment, a " inside a
    comment no string)."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith('/*', i):
            j = src.find('*/', i + 2)
            if j < 0:
                return out and ''.join(out) + ' <unterminated comment>'
            out.append('/**/')
            i = j + 2
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            out.append('""')
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    return ''.join(out)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--include', required=True)
    ap.add_argument('--rt-lib', required=True)
    ap.add_argument('--cc', default=os.environ.get('CC', 'cc'))
    ap.add_argument('--extra-cflags', default='')
    args = ap.parse_args()
    extra = args.extra_cflags.split()
    res = Result()
    work = tempfile.mkdtemp(prefix='inject-')
    try:
        def build(label, spec_path, variant, names):
            d = tempfile.mkdtemp(dir=work)
            out = os.path.join(d, 'net.c')
            r = run([args.nngen, spec_path, '-o', out] + variant)
            if r.returncode != 0:
                res.fail(label, 'nngen', r.stderr.decode(errors='replace'))
                return None
            c = run([args.cc] + CFLAGS + extra + ['-I' + args.include, '-c', out, '-o',
                                                  os.path.join(d, 'net.o')])
            if c.returncode != 0:
                res.fail(label, 'compile', c.stderr.decode(errors='replace')[:2000])
                return None
            res.ok(label, 'compile')
            # the outputs get the mode of any new file (not mkstemp's 0600)
            mask = os.umask(0)
            os.umask(mask)
            modes = [os.stat(f).st_mode & 0o777 for f in (out, out[:-2] + '.h')]
            if modes != [0o666 & ~mask] * 2:
                res.fail(label, 'mode', 'out.c/.h modes %s, expected %o'
                         % ([oct(m) for m in modes], 0o666 & ~mask))
            nm = run(['nm', os.path.join(d, 'net.o')]).stdout.decode()
            if re.search(r'\bevil\b', nm):
                res.fail(label, 'nothing', 'a symbol evil in the object: %s' % nm)
            drv = os.path.join(d, 'drv.c')
            with open(drv, 'w') as f:
                f.write(DRIVER)
            exe = os.path.join(d, 'drv')
            c = run([args.cc, '-std=c99'] + extra + ['-I' + args.include, '-I' + d, drv, out,
                    args.rt_lib, '-lopenblas', '-lm', '-lpthread', '-o', exe])
            if c.returncode != 0:
                res.fail(label, 'keys', 'driver does not build: %s' % c.stderr.decode()[:1500])
                return None
            got = [bytes.fromhex(l).decode('utf-8', errors='surrogateescape')
                   for l in run([exe]).stdout.decode().split()]
            want = []
            for n in names:
                want += [n + '.weight', n + '.bias']
            if got != want:
                res.fail(label, 'keys', 'state_dict keys %r, expected %r' % (got, want))
            else:
                res.ok(label, 'keys', '%d keys' % len(got))
            return open(out).read()

        # the harmless twin: the same spec with plain names
        def spec_text(names, repeat_name):
            t = 'nngen: 1\nname: inj\ninput: [3]\nbatch: 2\nmodel:\n  sequential:\n'
            for n in names:
                t += '    %s: {linear: 2}\n' % yaml_str(n)
            t += '    %s: {repeat: {times: 2, name: %s, body: {linear: 2}}}\n' % (
                yaml_str(repeat_name), yaml_str(repeat_name + '{i}'))
            t += '    tail: {linear: 3}\n'
            t += 'train:\n  loss: mse\n  optimizer: {sgd: {lr: 0.1, momentum: 0.5}}\n'
            return t

        def key_names(names, repeat_name):
            ks = list(names)
            ks += ['%s.%s%d' % (repeat_name, repeat_name, i) for i in range(2)]
            return ks + ['tail']

        for k, evil in enumerate(EVIL):
            if '.' in evil:
                continue
            label = 'child name %r' % evil
            names = [evil, 'ok%d' % k]
            rep = 'r' + evil
            spec = os.path.join(work, 'c%d.yaml' % k)
            with open(spec, 'w') as f:
                f.write(spec_text(names, rep))
            plain = os.path.join(work, 'p%d.yaml' % k)
            with open(plain, 'w') as f:
                f.write(spec_text(['plain', 'ok%d' % k], 'rplain'))
            for variant in ([], ['--no-blas']):
                lab = label + (' ' + ' '.join(variant) if variant else '')
                src = build(lab, spec, variant, key_names(names, rep))
                ref = build(lab + ' (plain twin)', plain, variant,
                            key_names(['plain', 'ok%d' % k], 'rplain'))
                if src is not None and ref is not None:
                    if code_only(src) != code_only(ref):
                        res.fail(lab, 'nothing', 'the code outside comments and strings '
                                 'differs from the plain twin\'s')
                    else:
                        res.ok(lab, 'nothing')

        # names that must be identifiers: refused, located, nothing written
        ident_places = {
            'block name': lambda v: ('nngen: 1\ninput: [3]\nblocks:\n  %s: [relu]\n'
                                     'model: [relu]\n' % yaml_str(v)),
            'shared name': lambda v: ('nngen: 1\ninput: [3]\nshared:\n  %s: relu\n'
                                      'model: [relu]\n' % yaml_str(v)),
            'custom initializer': lambda v: ('nngen: 1\ninput: [3]\nmodel: [{linear: 2}]\n'
                                             'init:\n  - weight: {custom: %s}\n' % yaml_str(v)),
            'spec name': lambda v: ('nngen: 1\nname: %s\ninput: [3]\nmodel: [relu]\n'
                                    % yaml_str(v)),
        }
        for place, make in sorted(ident_places.items()):
            for k, evil in enumerate(EVIL):
                label = '%s %r' % (place, evil)
                d = os.path.join(work, 'i_%s_%d' % (place.replace(' ', '_'), k))
                os.makedirs(d)
                spec = os.path.join(d, 'spec.yaml')
                with open(spec, 'w') as f:
                    f.write(make(evil))
                out = os.path.join(d, 'out.c')
                r = run([args.nngen, spec, '-o', out])
                err = r.stderr.decode(errors='replace')
                first = err.splitlines()[0] if err else ''
                left = sorted(set(os.listdir(d)) - {'spec.yaml'})
                if r.returncode != 1 or not re.match(r'^%s:\d+:\d+: error: ' % re.escape(spec),
                                                     first):
                    res.fail(label, 'refused', 'exit %d: %s' % (r.returncode, first))
                elif left:
                    res.fail(label, 'refused', 'files left behind: %s' % left)
                else:
                    res.ok(label, 'refused')

        # the spec's file name, in the banners of the .c and the .h
        for k, evil in enumerate(EVIL):
            if '/' in evil or '\0' in evil:
                continue
            label = 'file name %r' % evil
            d = os.path.join(work, 'f%d' % k)
            os.makedirs(d)
            spec = os.path.join(d, evil + '.yaml')
            with open(spec, 'w') as f:
                f.write(spec_text(['a'], 'r'))
            src = build(label, spec, [], key_names(['a'], 'r'))
            if src is not None:
                first = src.split('\n', 1)[0]
                if '*/' in first[2:-2]:
                    res.fail(label, 'banner', first)
                else:
                    res.ok(label, 'banner')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
