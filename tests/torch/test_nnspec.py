#!/usr/bin/python3
"""Self-test of nnspec.py (the PyTorch oracle).

Each spec here is checked against the PyTorch code a user would have written
by hand (most of it the seed chapter's), with the same seed: names, print()
and bit-identical initial parameters.  Also: the dump format, YAML handling
and the errors nnspec must raise.

Run: /usr/bin/python3 tests/torch/test_nnspec.py    (exit 77 if no torch)
"""
import ctypes
import io
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch
    from torch import nn
except ImportError:
    if os.environ.get('NNGEN_REQUIRE_TORCH') == '1':
        print('test_nnspec: torch is not importable by %s' % sys.executable)
        sys.exit(1)
    print('SKIP: torch is not importable by %s' % sys.executable)
    sys.exit(77)

import nnspec  # noqa: E402


def spec(text, name='net', seed=None, **kw):
    return nnspec.build_from_spec(nnspec.load_spec_text(text), name, seed, **kw)


def bits(t):
    return t.detach().contiguous().view(torch.int32)


MLP = """
nngen: 1
name: mlp
input: [4]
batch: 2
model:
  - {linear: 8}
  - relu
  - {linear: 1}
"""

RGNET = """
nngen: 1
name: rgnet
input: [4]
batch: 2
blocks:
  block1: [{linear: 8}, relu, {linear: 4}, relu]
  block2: {repeat: {times: 4, name: "block{i}", body: block1}}
model:
  - block2
  - {linear: 1}
"""

TIED = """
nngen: 1
name: tied
input: [4]
batch: 2
shared:
  shared: {linear: 8}
model:
  - {linear: 8}
  - relu
  - {ref: shared}
  - relu
  - {ref: shared}
  - relu
  - {linear: 1}
"""

RGNET_PRINT = """Sequential(
  (0): Sequential(
    (block0): Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): ReLU()
    )
    (block1): Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): ReLU()
    )
    (block2): Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): ReLU()
    )
    (block3): Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): ReLU()
    )
  )
  (1): Linear(in_features=4, out_features=1, bias=True)
)
"""


# ---- hand-written PyTorch equivalents (the seed chapter's code) ----------

def torch_mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def torch_rgnet():
    def block1():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

    def block2():
        net = nn.Sequential()
        for i in range(4):
            net.add_module(f'block{i}', block1())
        return net
    return nn.Sequential(block2(), nn.Linear(4, 1))


def torch_tied():
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared,
                         nn.ReLU(), nn.Linear(8, 1))


def init_normal(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def init_constant(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


def xavier(m):
    if type(m) == nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 42)


def my_init(m):
    if type(m) == nn.Linear:
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


SEEDS = [0, 1, 42, 1234]


class Equivalence(unittest.TestCase):
    """spec text vs hand-written torch, same seed: identical everything."""

    def check(self, text, ref_fn, seeds=SEEDS, exact=True):
        for seed in seeds:
            b = spec(text, seed=seed)
            torch.manual_seed(seed)
            ref = ref_fn()
            self.assertEqual(str(b.model), str(ref))
            self.assertEqual(nnspec.params_text(b.model), nnspec.params_text(ref))
            self.assertEqual([n for n, _ in b.model.named_parameters()],
                             [n for n, _ in ref.named_parameters()])
            sd, rd = b.model.state_dict(), ref.state_dict()
            self.assertEqual(list(sd), list(rd))
            for k in sd:
                if exact:
                    self.assertTrue(torch.equal(bits(sd[k]), bits(rd[k])), (seed, k))
                else:
                    self.assertTrue(torch.allclose(sd[k], rd[k], rtol=1e-6, atol=0), (seed, k))
            # requires_grad must agree as well
            self.assertEqual([p.requires_grad for p in b.model.parameters()],
                             [p.requires_grad for p in ref.parameters()])
            # the next draw of the generator must agree too (same consumption)
            after_b = torch.rand(1)
            torch.manual_seed(seed)
            ref_fn()
            self.assertEqual(float(after_b), float(torch.rand(1)))
        return b

    def test_mlp(self):
        b = self.check(MLP, torch_mlp)
        self.assertEqual(b.name, 'mlp')
        self.assertEqual((b.batch, b.in_size, b.out_size), (2, 4, 1))
        self.assertEqual(b.input_shape, [2, 4])
        self.assertEqual(b.output_shape, [2, 1])
        self.assertEqual(nnspec.init_exactness(b), 'exact')

    def test_rgnet(self):
        b = self.check(RGNET, torch_rgnet)
        self.assertEqual(nnspec.print_text(b.model), RGNET_PRINT)

    def test_tied(self):
        b = self.check(TIED, torch_tied)
        self.assertIs(b.model[2], b.model[4])
        self.assertEqual(nnspec.params_text(b.model),
                         '0.weight [8, 4]\n0.bias [8]\n2.weight [8, 8]\n2.bias [8]\n'
                         '4.weight [8, 8] (shared with 2.weight)\n'
                         '4.bias [8] (shared with 2.bias)\n6.weight [1, 8]\n6.bias [1]\n')
        self.assertEqual([n for n, _ in b.model.named_parameters()],
                         ['0.weight', '0.bias', '2.weight', '2.bias', '6.weight', '6.bias'])

    def test_init_normal(self):
        b = self.check(MLP + """
init:
  - layer: linear
    weight: {normal: {mean: 0, std: 0.01}}
    bias: zeros
""", lambda: torch_mlp().apply(init_normal))
        self.assertEqual(nnspec.init_exactness(b), 'approx')
        # also the list form of normal
        self.check(MLP + """
init:
  - {layer: linear, weight: {normal: [0, 0.01]}, bias: zeros}
""", lambda: torch_mlp().apply(init_normal))

    def test_init_constant(self):
        self.check(MLP + """
init:
  - {layer: linear, weight: {constant: 1}, bias: zeros}
""", lambda: torch_mlp().apply(init_constant))

    def test_xavier_42(self):
        def ref():
            net = torch_mlp()
            net[0].apply(xavier)
            net[2].apply(init_42)
            return net
        self.check(MLP + """
init:
  - {at: "0", layer: linear, weight: xavier_uniform}
  - {at: "2", layer: linear, weight: {constant: 42}}
""", ref)
        # at: as a YAML integer is the same path
        self.check(MLP + """
init:
  - {at: 0, weight: xavier_uniform}
  - {at: 2, weight: {constant: 42}}
""", ref)

    def test_my_init(self):
        b = self.check(MLP + """
init:
  - layer: linear
    weight: {uniform: [-10, 10], zero_abs_below: 5}
""", lambda: torch_mlp().apply(my_init))
        w = b.model[0].weight.detach()
        self.assertTrue(bool(((w == 0) | (w.abs() >= 5)).all()))
        # negative small values become -0.0, as with torch's multiply
        self.assertTrue(any(math.copysign(1, v) < 0 for v in w.reshape(-1).tolist() if v == 0)
                        or not bool((w == 0).any()))

    def test_all_inits_in_order(self):
        # tied net: per-module init: rules, then top-level ones
        def ref():
            shared = nn.Linear(8, 8)
            nn.init.kaiming_normal_(shared.weight, a=0.1, mode='fan_out', nonlinearity='relu')
            nn.init.ones_(shared.bias)
            l0 = nn.Linear(4, 8)
            nn.init.trunc_normal_(l0.bias, mean=0.1, std=0.5, a=-0.3, b=0.4)
            nn.init.xavier_normal_(l0.weight, gain=2.0)
            l6 = nn.Linear(8, 1)
            net = nn.Sequential(l0, nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), l6)
            for m in [l6]:
                nn.init.kaiming_uniform_(m.weight)
                nn.init.uniform_(m.bias)

            def f(m):
                if type(m) == nn.Linear:
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            net.apply(f)
            return net
        self.check("""
nngen: 1
input: [4]
batch: 3
shared:
  shared:
    linear: 8
    init:
      - weight: {kaiming_normal: {a: 0.1, mode: fan_out, nonlinearity: relu}}
        bias: ones
model:
  - linear: {out: 8}
    init: [{bias: {trunc_normal: {mean: 0.1, std: 0.5, a: -0.3, b: 0.4}},
            weight: {xavier_normal: {gain: 2}}}]
  - relu
  - {ref: shared}
  - relu
  - {ref: shared}
  - relu
  - {linear: {out: 1, in: 8}, init: [{weight: kaiming_uniform, bias: uniform}]}
init:
  - {layer: linear, weight: default}
""", ref, exact=False)

    def test_default_rule_is_reset_parameters(self):
        def ref():
            net = torch_mlp()
            net[2].reset_parameters()
            net[0].reset_parameters()
            return net
        self.check(MLP + """
init:
  - {at: "2", weight: default, bias: default}
  - {at: "0", weight: default, bias: default}
""", ref)

    def test_apply_order_and_dedup(self):
        # a module used twice under the same parent is visited once by apply;
        # under two different parents it is visited twice.
        def ref():
            s = nn.Linear(3, 3)
            net = nn.Sequential(nn.Sequential(s, s), nn.Sequential(s), nn.Linear(3, 2))
            net.apply(lambda m: nn.init.uniform_(m.weight, -1, 1) if type(m) == nn.Linear else None)
            return net
        self.check("""
nngen: 1
input: [3]
shared: {s: {linear: 3}}
model:
  - [{ref: s}, {ref: s}]
  - [{ref: s}]
  - {linear: 2}
init:
  - {layer: linear, weight: {uniform: [-1, 1]}}
""", ref)

    def test_named_sequential_blocks_and_post_order(self):
        def ref():
            def enc():
                m = nn.Sequential()
                m.add_module('fc', nn.Linear(6, 5))
                m.add_module('act', nn.Tanh())
                nn.init.constant_(m.fc.bias, 0.5)
                return m
            a = enc()
            b = nn.Sequential(nn.Flatten(start_dim=1), nn.Linear(10, 4), nn.LeakyReLU(0.2),
                              nn.GELU(), nn.Sigmoid(), nn.Identity())
            nn.init.zeros_(b[1].weight)
            net = nn.Sequential()
            net.add_module('enc', a)
            net.add_module('head', b)
            net.add_module('out', nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1),
                                                nn.Softmax(dim=-1)))
            nn.init.ones_(net.out[0].weight)
            net.out.requires_grad_(False)
            return net
        b = self.check("""
nngen: 1
input: [2, 6]
batch: 2
blocks:
  enc:
    sequential: {fc: {linear: 5}, act: tanh}
    init: [{at: fc, bias: {constant: 0.5}}]
model:
  sequential:
    enc: {enc: null, frozen: false}
    head:
      sequential: [flatten, {linear: 4}, {leaky_relu: 0.2}, gelu, sigmoid, identity]
      init: [{weight: zeros}]
    out:
      sequential: [{linear: 3}, log_softmax, {softmax: {dim: -1}}]
      frozen: true
      init: [{layer: linear, weight: ones}]
""", ref)
        self.assertEqual(b.input_shape, [2, 2, 6])
        self.assertEqual(b.output_shape, [2, 3])
        self.assertEqual(b.in_size, 12)

    def test_frozen_ref(self):
        def ref():
            s = nn.Linear(4, 4)
            net = nn.Sequential(s, nn.ReLU(), s)
            s.requires_grad_(False)
            return net
        self.check("""
nngen: 1
input: [4]
shared: {s: {linear: 4}}
model: [{ref: s, frozen: true}, relu, {ref: s}]
""", ref)

    def test_single_layer_model_and_linear_on_last_dim(self):
        b = self.check("""
nngen: 1
input: [3, 5]
batch: 2
model: {linear: {out: 7, bias: false}}
""", lambda: nn.Linear(5, 7, bias=False))
        self.assertEqual(b.output_shape, [2, 3, 7])
        self.assertEqual(b.out_size, 21)

    def test_repeat_default_name_and_ref_body(self):
        def ref():
            s = nn.Linear(4, 4)
            return nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)),
                                 nn.Sequential(s, s, s))
        self.check("""
nngen: 1
input: [4]
shared: {s: {linear: 4}}
model:
  - {repeat: {times: 2, body: {linear: 4}}}
  - {repeat: {times: 3, body: {ref: s}}}
""", ref)

    def test_leaky_relu_value_as_written(self):
        self.check("nngen: 1\ninput: [3]\nmodel: [{leaky_relu: 1}, {leaky_relu: 1.0}, "
                   "{leaky_relu: {negative_slope: 1.0e-3}}, leaky_relu]\n",
                   lambda: nn.Sequential(nn.LeakyReLU(1), nn.LeakyReLU(1.0),
                                         nn.LeakyReLU(0.001), nn.LeakyReLU()))

    def test_input_int_and_empty_mapping_initializers(self):
        # docs/language.md: `input: 4` is `[4]`; `{zeros: {}}` is the bare
        # name's mapping form (the one that can carry zero_abs_below)
        b = spec("nngen: 1\ninput: 4\nmodel: [{linear: 3}]\n"
                 "init: [{weight: {ones: {}, zero_abs_below: 2}}]\n")
        self.assertEqual(b.input_shape, [1, 4])
        self.assertEqual(float(b.model[0].weight.abs().sum()), 0.0)

        def ref():
            m = nn.Sequential(nn.Linear(4, 3))
            with torch.no_grad():
                nn.init.zeros_(m[0].weight)
                nn.init.kaiming_uniform_(m[0].weight, a=math.sqrt(5))
            return m
        self.check("nngen: 1\ninput: 4\nmodel: [{linear: 3}]\n"
                   "init: [{weight: {zeros: {}}}, {weight: {default: {}}}]\n", ref)

    def test_seed_from_spec(self):
        b = spec(MLP + "seed: 7\n")
        torch.manual_seed(7)
        r = torch_mlp()
        self.assertTrue(torch.equal(bits(b.model[0].weight), bits(r[0].weight)))


class Train(unittest.TestCase):
    def test_sgd(self):
        b = spec(MLP + """
train:
  loss: mse
  optimizer: {sgd: {lr: 0.03, momentum: 0.9, nesterov: true}}
""")
        self.assertEqual(b.loss_name, 'mse')
        self.assertIsInstance(b.loss, nn.MSELoss)
        opt = b.make_optimizer(b.model.parameters())
        self.assertIsInstance(opt, torch.optim.SGD)
        g = opt.param_groups[0]
        self.assertEqual((g['lr'], g['momentum'], g['nesterov'], g['dampening'],
                          g['weight_decay']), (0.03, 0.9, True, 0.0, 0.0))

    def test_adam(self):
        b = spec(MLP + """
train:
  loss: cross_entropy
  optimizer:
    adam: {lr: 0.01, betas: [0.8, 0.99], eps: 1e-7, weight_decay: 0.1, amsgrad: true}
""")
        self.assertIsInstance(b.loss, nn.CrossEntropyLoss)
        opt = b.make_optimizer(b.model.parameters())
        g = opt.param_groups[0]
        self.assertEqual((g['lr'], g['betas'], g['eps'], g['weight_decay'], g['amsgrad']),
                         (0.01, (0.8, 0.99), 1e-7, 0.1, True))

    def test_bad(self):
        for t in ("train: {loss: l1, optimizer: {sgd: {lr: 1}}}",
                  "train: {loss: mse, optimizer: {sgd: {}}}",
                  "train: {loss: mse, optimizer: {rmsprop: {lr: 1}}}",
                  "train: {loss: mse, optimizer: {sgd: {lr: 1, beta: 2}}}"):
            with self.assertRaises(nnspec.SpecError, msg=t):
                spec(MLP + t + "\n")


class Errors(unittest.TestCase):
    def bad(self, text, exc=nnspec.SpecError):
        with self.assertRaises(exc, msg=text):
            spec(text)

    def test_errors(self):
        self.bad(MLP + "bogus: 1\n")
        self.bad(MLP.replace('nngen: 1', 'nngen: 2'))
        self.bad(MLP.replace('relu', 'relu6'))
        self.bad(MLP.replace('{linear: 8}', '{linear: 0}'))
        self.bad(MLP.replace('{linear: 8}', '{linear: "8"}'))
        self.bad(MLP.replace('{linear: 8}', '{linear: {out: 8, in: 5}}'))
        self.bad(MLP.replace('{linear: 8}', '{linear: {out: 8, biass: true}}'))
        self.bad(MLP + "init: [{weight: zeros, at: '7'}]\n")
        self.bad(MLP + "init: [{layer: relu, weight: zeros}]\n")     # matches nothing
        self.bad(MLP + "init: [{gamma: zeros}]\n")                   # matches nothing
        self.bad(MLP + "init: [{weight: {uniform: [1, 0]}}]\n")
        self.bad(MLP + "init: [{weight: {normal: {std: -1}}}]\n")
        self.bad(MLP + "init: [{weight: fancy}]\n")
        self.bad(MLP + "init: [{weight: {uniform: [0, 1], normal: [0, 1]}}]\n")
        self.bad(RGNET.replace('block1: [', 'block1: [block2, '))    # cycle
        self.bad(TIED.replace('  - {linear: 8}\n  - relu\n  - {ref: shared}',
                              '  - {linear: 8}\n  - relu\n  - {ref: shared}\n  - {linear: 3}'))
        self.bad(TIED.replace('{ref: shared}', '{ref: sharde}'))
        self.bad(TIED.replace('shared:\n  shared:', 'shared:\n  linear:'))
        self.bad(MLP.replace('model:', 'shared: {s: {linear: 8}}\nmodel:'))  # never used
        self.bad("nngen: 1\ninput: [4]\nmodel: [{sequential: {a: relu, a: tanh}}]\n")
        self.bad("nngen: 1\ninput: [4]\nmodel: [{repeat: {times: 2, name: x, body: relu}}]\n")
        self.bad("nngen: 1\ninput: [4]\nmodel: [{linear: 3, relu: null}]\n")
        self.bad("nngen: 1\ninput: [4]\nmodel: [{softmax: 2}]\n")

    def test_yaml(self):
        with self.assertRaises(nnspec.SpecError):
            nnspec.load_spec_text("a: &x 1\nb: *x\n")
        with self.assertRaises(nnspec.SpecError):
            nnspec.load_spec_text("a: {<<: {b: 1}}\n")
        with self.assertRaises(nnspec.SpecError):
            nnspec.load_spec_text("a: 1\n---\na: 2\n")
        d = nnspec.load_spec_text("a: 1e-8\nb: on\nc: 010\nd: 0x10\ne: true\nf: 1.5\ng: .inf\n"
                                  "h: ~\n")
        self.assertEqual(d, {'a': 1e-8, 'b': 'on', 'c': 10, 'd': 16, 'e': True, 'f': 1.5,
                             'g': math.inf, 'h': None})

    def test_unsupported(self):
        mix = MLP + """
init:
  - weight: {mixture: [{p: 0.25, uniform: [5, 10]}, {p: 0.5, constant: 0},
                       {p: 0.25, uniform: [-10, -5]}]}
"""
        self.bad(mix, nnspec.UnsupportedInit)
        self.bad(MLP + "init: [{weight: {custom: my_init}}]\n", nnspec.UnsupportedInit)
        b = spec(mix, allow_unsupported_init=True, seed=0)
        self.assertEqual(nnspec.init_exactness(b), 'unsupported')
        self.assertEqual(len(b.unsupported), 2)
        torch.manual_seed(0)
        r = torch_mlp()
        self.assertTrue(torch.equal(b.model[0].weight, r[0].weight))


class DumpFormat(unittest.TestCase):
    VALUES = [0.0, -0.0, 1.0, -1.5, 0.1, 3.0e38, 1e-45, 1.17549435e-38, -2.5e-40,
              float('inf'), float('-inf'), 123456.789, -0.000123]

    def f32(self, v):
        return torch.tensor([v], dtype=torch.float32).item()

    def test_format_matches_libc(self):
        libc = ctypes.CDLL(None)
        buf = ctypes.create_string_buffer(64)
        for v in self.VALUES + [float('nan')]:
            v = self.f32(v)
            libc.snprintf(buf, 64, b'%a', ctypes.c_double(v))
            self.assertEqual(nnspec.format_float(v), buf.value.decode(), v)
        g = torch.Generator().manual_seed(3)
        for v in (torch.randn(2000, generator=g) * 10 ** torch.randint(-40, 38, (2000,),
                                                                        generator=g)).tolist():
            v = self.f32(v)
            libc.snprintf(buf, 64, b'%a', ctypes.c_double(v))
            self.assertEqual(nnspec.format_float(v), buf.value.decode(), v)

    def test_roundtrip(self):
        t = torch.tensor([self.f32(v) for v in self.VALUES], dtype=torch.float32)
        text = nnspec.dump_text([('a.weight', t), ('grad.x', None), ('b', [0.5, 2.0])])
        d = nnspec.parse_dump(text)
        self.assertEqual([n for n, _ in d], ['a.weight', 'grad.x', 'b'])
        self.assertIsNone(d[1][1])
        back = torch.tensor(d[0][1], dtype=torch.float32)
        self.assertTrue(torch.equal(bits(back), bits(t)))
        self.assertEqual(d[2][1], [0.5, 2.0])
        self.assertTrue(text.startswith('a.weight 13\n0x0p+0\n-0x0p+0\n0x1p+0\n-0x1.8p+0\n'))

    def test_malformed(self):
        for text in ['x 2\n0x1p+0\n',            # too few values
                     'x 1\n0x1p+0',              # no final newline
                     'x 1\n0x1p+0 \n',           # trailing space
                     'x 1\nhello\n',             # not a float
                     'x\n0x1p+0\n',              # no count
                     'x -1\n',                   # bad count
                     'x 1 2\n0x1p+0\n',          # extra field
                     'x 1\n0x1p+0\nx 1\n0x1p+0\n',  # duplicate
                     'x 1\n\n']:                 # empty value line
            with self.assertRaises(nnspec.DumpError, msg=repr(text)):
                nnspec.parse_dump(text)


class CLI(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, os.path.join(HERE, 'nnspec.py')] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, 'rgnet.yaml')
            with open(p, 'w') as f:
                f.write(RGNET)
            r = self.run_cli('print', p)
            self.assertEqual((r.returncode, r.stdout), (0, RGNET_PRINT))
            r = self.run_cli('params', p)
            self.assertEqual(r.returncode, 0)
            self.assertTrue(r.stdout.startswith('0.block0.0.weight [8, 4]\n0.block0.0.bias [8]\n'))
            r = self.run_cli('dump', p, '42')
            self.assertEqual(r.returncode, 0)
            d42 = nnspec.parse_dump(r.stdout)
            torch.manual_seed(42)
            ref = torch_rgnet()
            self.assertEqual([n for n, _ in d42], [n for n, _ in ref.named_parameters()])
            for (n, vals), (_, p_) in zip(d42, ref.named_parameters()):
                self.assertTrue(torch.equal(bits(torch.tensor(vals, dtype=torch.float32)),
                                            bits(p_.reshape(-1))), n)
            r = self.run_cli('info', p)
            self.assertEqual(r.stdout.splitlines()[:4],
                             ['batch 2', 'in 4', 'out 1', 'param 0.block0.0.weight 32'])
            self.assertEqual(self.run_cli('bogus', p).returncode, 2)
            with open(p, 'w') as f:
                f.write(MLP + "init: [{weight: {custom: f}}]\n")
            self.assertEqual(self.run_cli('dump', p, '1').returncode, 3)
            self.assertEqual(self.run_cli('print', p).returncode, 0)
            with open(p, 'w') as f:
                f.write(MLP + "oops: 1\n")
            r = self.run_cli('print', p)
            self.assertEqual(r.returncode, 1)
            self.assertIn('oops', r.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=1)
