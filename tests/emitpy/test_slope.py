#!/usr/bin/python3
"""leaky_relu's negative_slope, one text everywhere (issue: --print once said
12345678901234567890 where --emit pytorch wrote 12345678901234567168).

usage: test_slope.py --nngen NNGEN

For each slope as written in a spec (integers of any size and sign, leading
zeros, floats), four texts of the LeakyReLU must be equal:
  print     `nngen --print SPEC`
  table     the module table in nngen's generated C (the extra_repr string
            nn_print_model prints)
  emitpy    print(build()) of the `nngen --emit pytorch` module
  torch     print() of the torch model tests/torch/nnspec.py builds by hand
and the torch text must be what torch prints for nn.LeakyReLU(v) with v
the YAML value as Python reads it (int or float).
"""
import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import torch  # noqa: F401
    from torch import nn
except ImportError as e:
    if os.environ.get('NNGEN_REQUIRE_TORCH') == '1':
        print('slope: torch not importable (%s) and NNGEN_REQUIRE_TORCH=1' % e)
        sys.exit(1)
    print('slope: torch not importable (%s): skipped' % e)
    sys.exit(77)
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
import nnspec  # noqa: E402
from harness import Result  # noqa: E402

SLOPES = ['12345678901234567890', '-12345678901234567890', '98765432109876543210987654321',
          '007', '-0', '0', '+3', '1', '-5', '0.01', '0.1', '1.0', '-0.0', '1e-3', '2.5e10',
          '1e38', '-3.4028234663852886e38', '0.30000000000000004', '123456789.123456789', '-1.5e-7']

LINE = re.compile(r'LeakyReLU\([^)]*\)')


def leaky_line(text, where):
    m = LINE.search(text)
    if not m:
        raise ValueError('%s: no LeakyReLU(...) in %r' % (where, text[:300]))
    return m.group(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nngen', required=True)
    args = ap.parse_args()
    res = Result()
    work = tempfile.mkdtemp(prefix='slope-')
    for k, slope in enumerate(SLOPES):
        label = 'negative_slope: %s' % slope
        spec = os.path.join(work, 's%d.yaml' % k)
        with open(spec, 'w') as f:
            f.write('nngen: 1\nname: s%d\ninput: [3]\nmodel:\n  - {leaky_relu: %s}\n' % (k, slope))
        texts = {}
        try:
            texts['print'] = leaky_line(subprocess.run(
                [args.nngen, '--print', spec], check=True, capture_output=True,
                text=True).stdout, 'nngen --print')
            out_c = os.path.join(work, 's%d.c' % k)
            subprocess.run([args.nngen, spec, '-o', out_c], check=True, capture_output=True)
            c = open(out_c).read()
            m = re.search(r'"LeakyReLU", "([^"]*)"', c)
            if not m:
                raise ValueError('no LeakyReLU entry in the generated module table')
            texts['table'] = 'LeakyReLU(%s)' % m.group(1)
            out_py = os.path.join(work, 's%d.py' % k)
            subprocess.run([args.nngen, '--emit', 'pytorch', spec, '-o', out_py], check=True,
                           capture_output=True)
            sp = importlib.util.spec_from_file_location('s%d' % k, out_py)
            mod = importlib.util.module_from_spec(sp)
            sp.loader.exec_module(mod)
            texts['emitpy'] = leaky_line(str(mod.build(0)), 'emit pytorch')
            texts['torch'] = leaky_line(nnspec.print_text(nnspec.build(spec, seed=0).model),
                                        'nnspec')
            # the value as YAML 1.1 / Python reads it
            v = int(slope) if re.fullmatch(r'[-+]?[0-9]+', slope) else float(slope)
            texts['nn.LeakyReLU'] = str(nn.LeakyReLU(negative_slope=v))
        except (subprocess.CalledProcessError, ValueError, nnspec.NNSpecError) as e:
            res.fail(label, 'texts', getattr(e, 'stderr', None) or str(e))
            continue
        ref = texts['nn.LeakyReLU']
        bad = ['%s: %s' % (w, t) for w, t in texts.items() if t != ref]
        if bad:
            res.fail(label, 'same text', 'expected %s; got %s' % (ref, '; '.join(bad)))
        else:
            res.ok(label, 'same text', ref)
    return res.summary()


if __name__ == '__main__':
    sys.exit(main())
