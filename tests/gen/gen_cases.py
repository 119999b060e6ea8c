#!/usr/bin/env python3
"""tests/gen: everything the gen suite derives from its table, cases.py.

usage: gen_cases.py [--table CASES.py] --list
       gen_cases.py [--table CASES.py] --spec NAME -o FILE
       gen_cases.py [--table CASES.py] --fd-header -o FILE
       gen_cases.py [--table CASES.py] --expect blas|loops

--list       the case names, one a line, in table order (meson, at configure
             time: one nngen custom_target each)
--spec NAME  write the spec of the generated case NAME (a hand-written one
             is tests/gen/specs/NAME.yaml: an error here)
--fd-header  write fd_cases.h for test_fd.c: the #includes, GNET() /
             GTRAIN_*() lines, the rop references and cases[] / tcases[]
--expect K   the comma-separated names whose generated code must (blas) /
             must not (loops) call nn_sgemm, for strict.py

The table (default: cases.py next to this script) is checked first, whatever
the command: a malformed row is an error (status 1) naming the row.  Output
files are rewritten only when their contents change.  The table's format and
how to add a case: the header of cases.py.
"""
import argparse
import os
import re
import runpy
import sys

try:
    import yaml
except ImportError:
    sys.exit('gen_cases.py: needs PyYAML (python3-yaml) to read the table\'s ops and '
             'the hand-written specs')

HERE = os.path.dirname(os.path.abspath(__file__))

# fdcheck.h's reference steps (typedef rop): layer name -> letter
REF_STEP = {'linear': 'L', 'relu': 'R', 'leaky_relu': 'K', 'sigmoid': 'S', 'tanh': 'T',
            'gelu': 'G', 'identity': 'I', 'flatten': 'I'}
KINKS = ('R', 'K')
LEAKY_DEFAULT = 0.01   # torch.nn.LeakyReLU's negative_slope (and nngen's)
SPEC_SEED = 3          # the `seed:` of every generated spec
IDENT = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


class TableError(Exception):
    pass


def layer_of(entry, where):
    """(layer name, argument or None) of one `model:` entry in flow YAML"""
    try:
        v = yaml.safe_load(entry)
    except yaml.YAMLError as e:
        raise TableError('%s: %r is not YAML: %s' % (where, entry, str(e).replace('\n', ' ')))
    if isinstance(v, str) and IDENT.match(v):
        return v, None
    if isinstance(v, dict) and len(v) == 1:
        (k, a), = v.items()
        if isinstance(k, str) and IDENT.match(k):
            return k, a
    raise TableError('%s: %r is not a layer (NAME or {NAME: ARGS})' % (where, entry))


def parse_ref(text, where):
    """'L:0 R K:0.2' -> [('L', '0'), ('R', None), ('K', 0.2)]"""
    steps = []
    for tok in text.split():
        k, _, a = tok.partition(':')
        if k == 'L' and a:
            steps.append(('L', a))
        elif k == 'K' and a:
            try:
                steps.append(('K', float(a)))
            except ValueError:
                raise TableError('%s: reference step %r: the slope is not a number' % (where, tok))
        elif k in 'RSTGI' and len(k) == 1 and not a:
            steps.append((k, None))
        else:
            raise TableError('%s: reference step %r is not L:P, K:A, R, S, T, G or I'
                             % (where, tok))
    if not steps or steps[-1][0] not in KINKS:
        raise TableError('%s: the reference %r must end with its last kink (R or K:A)'
                         % (where, text))
    return steps


def derive_ref(model, where):
    """the rop reference of a generated model: its steps up to the last kink"""
    steps, last = [], -1
    for i, entry in enumerate(model):
        name, arg = layer_of(entry, where)
        k = REF_STEP.get(name)
        if k == 'L':
            steps.append(('L', str(i)))
        elif k == 'K':
            a = arg.get('negative_slope', LEAKY_DEFAULT) if isinstance(arg, dict) else arg
            if a is None:
                a = LEAKY_DEFAULT
            if isinstance(a, bool) or not isinstance(a, (int, float)):
                raise TableError('%s: leaky_relu slope %r is not a number' % (where, a))
            steps.append(('K', float(a)))
        else:
            steps.append((k, name))  # k None: unknown to the reference
        if k in KINKS:
            last = len(steps) - 1
    return steps[:last + 1]


def load(table):
    """the checked rows of the table, in order"""
    try:
        t = runpy.run_path(table)
    except Exception as e:  # the table is Python: report where it broke
        raise TableError('%s: %s: %s' % (table, type(e).__name__, e))
    rows, contexts, op_mark = t.get('CASES'), t.get('CONTEXTS', {}), t.get('OP', 'OP')
    if not isinstance(rows, list) or not rows:
        raise TableError('%s: no CASES list' % table)
    specdir = os.path.join(os.path.dirname(os.path.abspath(table)), 'specs')
    seen, out = set(), []
    for n, r in enumerate(rows):
        if not isinstance(r, dict) or r.get('kind') not in ('gen', 'spec'):
            raise TableError('%s: CASES[%d] is not a case(...) or spec(...) row' % (table, n))
        name = r['name']
        where = '%s: row %r' % (os.path.basename(table), name)
        if not isinstance(name, str) or not IDENT.match(name):
            raise TableError('%s: the name is not a C identifier' % where)
        if name in seen:
            raise TableError('%s: a second row with this name' % where)
        seen.add(name)
        if r['expect'] not in ('blas', 'loops', None):
            raise TableError("%s: expect %r is not 'blas', 'loops' or None" % (where, r['expect']))
        path = os.path.join(specdir, name + '.yaml')
        if r['kind'] == 'spec':
            if not os.path.isfile(path):
                raise TableError('%s: no hand-written spec %s' % (where, path))
            try:
                with open(path) as f:
                    doc = yaml.safe_load(f)
            except (OSError, yaml.YAMLError) as e:
                raise TableError('%s: cannot read %s: %s' % (where, path, e))
            if not isinstance(doc, dict) or doc.get('name') != name:
                raise TableError('%s: %s must say `name: %s`' % (where, path, name))
            train = doc.get('train')
            loss = train.get('loss') if isinstance(train, dict) else None
            if train is not None and loss not in ('mse', 'cross_entropy'):
                raise TableError('%s: %s: train.loss %r is neither mse nor cross_entropy'
                                 % (where, path, loss))
            kinks = r['kinks']
            if kinks is not None and not isinstance(kinks, str):
                raise TableError('%s: kinks must be None or a reference like \'L:0 R\'' % where)
            out.append(dict(r, path=path, loss=loss,
                            ref=parse_ref(kinks, where) if kinks else None))
            continue
        if os.path.exists(path):
            raise TableError('%s: a generated case, but %s exists too (use spec(...) or '
                             'remove the file)' % (where, path))
        shape, batch, ctx = r['shape'], r['batch'], r['context']
        if (not isinstance(shape, list) or not shape or
                not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
            raise TableError('%s: the input %r is not a list of positive integers' % (where, shape))
        if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
            raise TableError('%s: the batch %r is not a positive integer' % (where, batch))
        if isinstance(ctx, str):
            if ctx not in contexts:
                raise TableError('%s: unknown context %r (CONTEXTS: %s)'
                                 % (where, ctx, ', '.join(contexts)))
            ctx = contexts[ctx]
        if not isinstance(ctx, list) or ctx.count(op_mark) != 1:
            raise TableError('%s: the context must be a CONTEXTS name or a list with OP once'
                             % where)
        if not isinstance(r['op'], str):
            raise TableError('%s: the op must be a string (a model entry)' % where)
        model = [r['op'] if e == op_mark else e for e in ctx]
        for e in model:
            if not isinstance(e, str):
                raise TableError('%s: context entry %r is not a string' % (where, e))
            layer_of(e, where)
        if r.get('mode', 'train') not in ('train', 'eval'):
            raise TableError("%s: mode %r is not 'train' or 'eval'" % (where, r.get('mode')))
        ref = derive_ref(model, where)
        if not isinstance(r['kinks'], bool):
            raise TableError('%s: kinks must be True or False' % where)
        if r['kinks'] and not ref:
            raise TableError('%s: kinks is True but the model has no relu / leaky_relu' % where)
        if not r['kinks'] and ref:
            raise TableError('%s: the model has a relu / leaky_relu: kinks must be True '
                             '(gen-fd needs the reference, see fdcheck.h)' % where)
        unknown = [s[1] for s in ref if s[0] is None]
        if unknown:
            raise TableError('%s: %s before a kink: fdcheck.h\'s reference (rop) does not know '
                             'it' % (where, unknown[0]))
        out.append(dict(r, model=model, ref=ref or None, loss=None))
    names = {r['name'] for r in out}
    if os.path.isdir(specdir):
        for f in sorted(os.listdir(specdir)):
            if f.endswith('.yaml') and f[:-5] not in names:
                raise TableError('%s: %s has no spec(...) row in %s'
                                 % (os.path.basename(table), os.path.join(specdir, f), table))
    return out


def spec_text(r):
    return ''.join([
        '# tests/gen: case %s, generated by gen_cases.py from its row in cases.py\n' % r['name'],
        'nngen: 1\n',
        'name: %s\n' % r['name'],
        'input: [%s]\n' % ', '.join(str(d) for d in r['shape']),
        'batch: %d\n' % r['batch'],
        'seed: %d\n' % SPEC_SEED,
        'model:\n',
    ] + ['  - %s\n' % e for e in r['model']])


def c_rop(steps):
    """the initializers of a rop array, terminator included"""
    def one(k, a):
        if k == 'L':
            return "{'L', \"%s\", 0}" % a
        if k == 'K':
            return "{'K', NULL, %r}" % a  # repr: the same double back
        return "{'%s', NULL, 0}" % k
    return [one(k, a) for k, a in steps] + ['{0, NULL, 0}']


def wrap(head, items, tail, width=100):
    """head item, item, ... tail on lines of at most width characters"""
    lines, cur = [], head
    for i, it in enumerate(items):
        piece = it + (',' if i + 1 < len(items) else tail)
        if len(cur) + 1 + len(piece) > width and cur.strip():
            lines.append(cur.rstrip())
            cur = ' ' * len(head) + piece
        else:
            cur += ('' if cur == head else ' ') + piece
    return lines + [cur]


def fd_header(rows):
    for train in (False, True):  # C99 has no empty array
        if not any((r['loss'] is not None) == train for r in rows):
            raise TableError('no %s in the table: %s would be empty'
                             % (('training spec', 'tcases[]') if train
                                else ('plain network', 'cases[]')))
    L = ['/* Generated by tests/gen/gen_cases.py from tests/gen/cases.py: do not edit.',
         ' * The gen-fd cases: every network of the table, in table order. */', '']
    L += ['#include "%s.h"' % r['name'] for r in rows]
    L.append('')
    for r in rows:
        if r['loss'] is None:
            L.append('%s(%s);' % ('GNET_EVAL' if r.get('mode') == 'eval' else 'GNET',
                                  r['name']))
        else:
            L.append('GTRAIN_%s(%s);' % ('CE' if r['loss'] == 'cross_entropy' else 'MSE',
                                          r['name']))
    L += ['', '/* references of the relu / leaky_relu inputs (fdcheck.h), up to the last one */']
    for r in rows:
        if r['ref']:
            L += wrap('static const rop ref_%s[] = {' % r['name'], c_rop(r['ref']), '};')

    def entry(r, what):
        return '    {&%s_%s, %s},' % (r['name'], what, 'ref_' + r['name'] if r['ref'] else 'NULL')
    L += ['', '/* checked through P_backward (seed 100 + index) */',
          'static const fdcase cases[] = {']
    L += [entry(r, 'gnet') for r in rows if r['loss'] is None]
    L += ['};', '#define NCASES ((int)(sizeof cases / sizeof cases[0]))', '',
          '/* training specs, checked through P_train_step (seed 200 + index) */',
          'static const traincase tcases[] = {']
    L += [entry(r, 'gtrain') for r in rows if r['loss'] is not None]
    L += ['};', '#define NTCASES ((int)(sizeof tcases / sizeof tcases[0]))', '']
    return '\n'.join(L)


def write(path, text):
    """write text to path unless it already holds exactly that (keeps the
    mtime, so ninja's restat skips what depends on it)"""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description='the gen suite from its table (cases.py)')
    ap.add_argument('--table', default=os.path.join(HERE, 'cases.py'))
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--list', action='store_true')
    g.add_argument('--spec', metavar='NAME')
    g.add_argument('--fd-header', action='store_true')
    g.add_argument('--expect', choices=['blas', 'loops'])
    ap.add_argument('-o', dest='out')
    a = ap.parse_args()
    if (a.spec or a.fd_header) and not a.out:
        ap.error('--spec and --fd-header need -o FILE')
    try:
        rows = load(a.table)
    except TableError as e:
        sys.exit('gen_cases.py: error: %s' % e)
    if a.list:
        print('\n'.join(r['name'] for r in rows))
    elif a.expect:
        print(','.join(r['name'] for r in rows if r['expect'] == a.expect))
    elif a.fd_header:
        try:
            write(a.out, fd_header(rows))
        except TableError as e:
            sys.exit('gen_cases.py: error: %s' % e)
    else:
        r = next((r for r in rows if r['name'] == a.spec), None)
        if r is None:
            sys.exit('gen_cases.py: error: no case %r in %s' % (a.spec, a.table))
        if r['kind'] != 'gen':
            sys.exit('gen_cases.py: error: %s is hand-written: %s' % (a.spec, r['path']))
        write(a.out, spec_text(r))
    return 0


if __name__ == '__main__':
    sys.exit(main())
