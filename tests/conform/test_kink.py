#!/usr/bin/python3
"""Unit test of the conformance harness's kink rule (README "Kinks"):
first_kink on relu, leaky_relu and max_pool2d inputs near and far from their
kinks, kink_step on a tiny training run, and train_verdict's decisions
(pass, fail, skip, the steps before a kink).  Needs torch (exit 77 without
it, as conform.py).

usage: test_kink.py
"""
import os
import sys

sys.argv = sys.argv[:1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conform  # noqa: E402  (re-executes under /usr/bin/python3, or exits 77)
import torch  # noqa: E402

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print('FAIL: ' + what)


def t64(v):
    return torch.tensor(v, dtype=torch.float64)


def call(mod, z32, z64):
    return [('1', mod, torch.tensor(z32, dtype=torch.float32))], [('1', mod, t64(z64))]


relu, leaky = torch.nn.ReLU(), torch.nn.LeakyReLU(0.1)
for mod in (relu, leaky):
    a, b = call(mod, [1.0, -2.0, -5e-8], [1.0, -2.0, 3e-8])
    why = conform.first_kink(a, b)
    check(why is not None and 'input 3e-08' in why,
          '%s input 3e-8 from 0, float32 -5e-8: a kink, got %r' % (mod, why))
    a, b = call(mod, [1.0, -2.0, 0.5], [1.0 + 2e-7, -2.0, 0.5 - 1e-7])
    check(conform.first_kink(a, b) is None, '%s inputs far from 0: no kink' % mod)
    a, b = call(mod, [0.0, 1.0], [0.0, 1.0 + 1e-7])
    check(conform.first_kink(a, b) is None, '%s input exactly 0 in both runs: no kink' % mod)
# the error is per element (at least the rms): a large error elsewhere does
# not make a value far from 0 a kink
a, b = call(relu, [1.0 + 1e-3, 0.5] + [1.0] * 8, [1.0, 0.5 + 1e-7] + [1.0] * 8)
check(conform.first_kink(a, b) is None, 'relu: an error of 1e-3 at one element only: no kink')

pool = torch.nn.MaxPool2d(2)
a, b = call(pool, [[[[1.0, 1.0], [-1.0, -2.0]]]], [[[[1.0, 1.0 + 1e-8], [-1.0, -2.0]]]])
check(conform.first_kink(a, b) is not None, 'max_pool2d two largest 1e-8 apart: a kink')
a, b = call(pool, [[[[1.0, 0.5], [-1.0, -2.0]]]], [[[[1.0 + 1e-7, 0.5], [-1.0, -2.0]]]])
check(conform.first_kink(a, b) is None, 'max_pool2d two largest 0.5 apart: no kink')
a, b = call(pool, [[[[0.0, 0.0], [0.0, 0.0]]]], [[[[0.0, 0.0], [0.0, 0.0]]]])
check(conform.first_kink(a, b) is None, 'max_pool2d window of zeros in both: no kink')
g = conform.window_gaps(torch.nn.MaxPool2d(2, stride=1, padding=1),
                        t64([[[[3.0, 1.0], [2.0, 0.0]]]]))
check(sorted(g.tolist()) == [1.0, 1.0, 1.0, 2.0, 2.0],
      'window_gaps with padding (corners have one finite value): got %s' % g.tolist())


class Built(object):
    """the two things TrainRun takes from nnspec's build"""
    loss = staticmethod(lambda y, t: ((y - t) ** 2).mean())

    @staticmethod
    def make_optimizer(params):
        return torch.optim.SGD(params, lr=0.1)


def tiny(dtype, x):
    m = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.ReLU())
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
    return conform.TrainRun(Built, m.to(dtype), x.to(dtype), torch.ones(1, 1, dtype=dtype))


x = torch.tensor([[0.1, 0.1 + 1e-9]], dtype=torch.float64)  # z = -1e-9: float32 rounds x
k, why = conform.kink_step(tiny(torch.float32, x), tiny(torch.float64, x), 5)
check(k == 0 and why, 'kink_step: relu input -1e-9 at step 0, got %r %r' % (k, why))
x = torch.tensor([[0.5, 0.1]], dtype=torch.float64)
k, why = conform.kink_step(tiny(torch.float32, x), tiny(torch.float64, x), 5)
check(k is None, 'kink_step: relu input 0.4: no kink, got %r %r' % (k, why))


class Res(object):
    def __init__(self):
        self.out = []

    def ok(self, label, check, detail=''):
        self.out.append(('ok', detail))

    def fail(self, label, check, detail=''):
        self.out.append(('fail', detail))

    def skip(self, label, check, detail=''):
        self.out.append(('skip', detail))


def verdict(full_ok, k, part_ok):
    """train_verdict with a fake comparison: (result, steps attempted)"""
    r, asked = Res(), []

    def attempt(n):
        asked.append(n)
        good = full_ok if n == 20 else part_ok
        return ([] if good else ['w[0]: got 1, torch 2']), [0.5] * n

    conform.train_verdict(r, 'l', 'c', 20, attempt, lambda: (k, 'why' if k is not None else None),
                          'loss %.3g')
    return r.out[0][0], asked, r.out[0][1]


check(verdict(True, 3, False)[:2] == ('ok', [20]), 'all steps match: pass, no kink search')
check(verdict(False, None, True)[:2] == ('fail', [20]), 'differ without a kink: fail')
check(verdict(False, 0, True)[:2] == ('skip', [20]), 'differ, kink at step 0: skip')
res, asked, detail = verdict(False, 3, True)
check(res == 'ok' and asked == [20, 3] and 'first 3 of 20' in detail and 'got 1' in detail,
      'differ, kink at step 3, first 3 match: pass saying so, got %r' % ((res, asked, detail),))
check(verdict(False, 3, False)[:2] == ('fail', [20, 3]), 'differ, kink at 3, first 3 differ: fail')

print('%d checks, %d failed' % (checks, failures))
sys.exit(1 if failures else 0)
