#!/usr/bin/python3
"""Self-test of nnspec.py (the PyTorch oracle).

Each spec here is checked against the PyTorch code a user would have written
by hand (most of it the seed chapter's), with the same seed: names, print()
and bit-identical initial parameters.  Also: the dump format, YAML handling
and the errors nnspec must raise.

Run: /usr/bin/python3 tests/torch/test_nnspec.py    (exit 77 if no torch)
"""
import copy
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



# ---- sequences, embeddings and tied weights (SPEC 1.2.4, 1.2.5, issue 14) --

LM = """
nngen: 1
name: lm
input: [5]
input_dtype: int32
batch: 3
model:
  - {embedding: {num: 12, dim: 8}}
  - {lstm: {hidden: 8, layers: 2}}
  - {linear: {out: 12, weight: {tied: 0.weight}}}
train:
  loss: cross_entropy
  optimizer: {adam: {lr: 0.01}}
"""

AE = """
nngen: 1
name: ae
input: [64]
batch: 4
model:
  sequential:
    encoder: {linear: 16}
    act: relu
    decoder: {linear: {out: 64, weight: {tied: encoder.weight, transpose: true}}}
train:
  loss: mse
  optimizer: {sgd: {lr: 0.1}}
"""

AE_PRINT = """Sequential(
  (encoder): Linear(in_features=64, out_features=16, bias=True)
  (act): ReLU()
  (decoder): TiedLinear(in_features=16, out_features=64, bias=True, weight=encoder.weight.T)
)
"""


def seq_spec(model, inp='[5, 4]', extra=''):
    return 'nngen: 1\ninput: %s\nbatch: 3\n%smodel: %s\n' % (inp, extra, model)


class HandLastStep(nn.Module):
    """what a user writes for last_step"""

    def _get_name(self):
        return 'LastStep'

    def forward(self, x):
        return x[:, -1]


def torch_lm():
    emb = nn.Embedding(12, 8)
    lstm = nn.LSTM(8, 8, num_layers=2, batch_first=True)
    lin = nn.Linear(8, 12)
    lin.weight = emb.weight
    return nn.Sequential(emb, lstm, lin)


def torch_ae():
    # what TiedLinear stands for: the encoder, then the decoder's bias only
    enc = nn.Linear(64, 16)
    bias = torch.empty(64)
    nn.init.uniform_(bias, -1 / math.sqrt(16), 1 / math.sqrt(16))
    return enc, bias


class Sequences(unittest.TestCase):
    """rnn, lstm, gru, last_step, embedding against torch built by hand."""

    check = Equivalence.check

    def forward_equal(self, b, ref_forward, x):
        torch.manual_seed(5)
        got = b.model(x)
        torch.manual_seed(5)
        want = ref_forward(x)
        self.assertEqual(list(got.shape), b.output_shape)
        self.assertTrue(torch.equal(got, want))

    def test_lstm_two_layers(self):
        b = self.check(seq_spec('[{lstm: {hidden: 8, layers: 2}}]'),
                       lambda: nn.Sequential(nn.LSTM(4, 8, num_layers=2, batch_first=True)))
        self.assertEqual(str(b.model[0]), 'LSTM(4, 8, num_layers=2, batch_first=True)')
        self.assertIsInstance(b.model[0], nn.LSTM)
        self.assertEqual([n for n, _ in b.model.named_parameters()],
                         ['0.%s_%s_l%d' % (w, g, k) for k in (0, 1)
                          for w, g in (('weight', 'ih'), ('weight', 'hh'), ('bias', 'ih'),
                                       ('bias', 'hh'))])
        self.assertEqual(b.output_shape, [3, 5, 8])
        self.assertEqual(b.model[0].weight_ih_l0.shape, (32, 4))   # gates i, f, g, o
        self.assertEqual(b.model[0].weight_hh_l1.shape, (32, 8))
        bound = 1 / math.sqrt(8)
        for _, p in b.model.named_parameters():
            self.assertTrue(bool((p.abs() <= bound).all()))
        x = torch.randn(3, 5, 4)
        self.forward_equal(b, lambda x: nn.LSTM.forward(b.model[0], x)[0], x)

    def test_rnn_every_argument(self):
        text = seq_spec('[{rnn: {hidden: 6, layers: 3, bias: false, bidirectional: true, '
                        'dropout: 0.25, nonlinearity: relu}}]')

        def ref():
            return nn.Sequential(nn.RNN(4, 6, num_layers=3, nonlinearity='relu', bias=False,
                                        batch_first=True, dropout=0.25, bidirectional=True))
        b = self.check(text, ref)
        m = b.model[0]
        self.assertEqual(str(m), 'RNN(4, 6, num_layers=3, bias=False, batch_first=True, '
                                 'dropout=0.25, bidirectional=True)')
        self.assertEqual(m.nonlinearity, 'relu')
        self.assertEqual([n for n, _ in m.named_parameters()],
                         ['weight_ih_l0', 'weight_hh_l0', 'weight_ih_l0_reverse',
                          'weight_hh_l0_reverse', 'weight_ih_l1', 'weight_hh_l1',
                          'weight_ih_l1_reverse', 'weight_hh_l1_reverse', 'weight_ih_l2',
                          'weight_hh_l2', 'weight_ih_l2_reverse', 'weight_hh_l2_reverse'])
        self.assertEqual(m.weight_ih_l1.shape, (6, 12))     # takes both directions
        self.assertEqual(b.output_shape, [3, 5, 12])
        # training mode: dropout between layers, drawn from the global generator
        x = torch.randn(3, 5, 4)
        r = ref()
        r.load_state_dict(b.model.state_dict())
        self.forward_equal(b, lambda x: r[0](x)[0], x)
        b.model.eval()
        r.eval()
        self.forward_equal(b, lambda x: r[0](x)[0], x)
        # the default nonlinearity is tanh, and it is not printed (as torch)
        b2 = spec(seq_spec('[{rnn: 6}]'))
        self.assertEqual(b2.model[0].nonlinearity, 'tanh')
        self.assertEqual(str(b2.model[0]), 'RNN(4, 6, batch_first=True)')
        # torch stores dropout as a float: `dropout: 1` prints 1.0
        b3 = spec(seq_spec('[{gru: {hidden: 2, layers: 2, dropout: 1}}]'))
        self.assertEqual(str(b3.model[0]), 'GRU(4, 2, num_layers=2, batch_first=True, '
                                           'dropout=1.0)')

    def test_dropout_masks_are_time_major(self):
        # SPEC 1.2.4: between stacked layers, one draw per element of each
        # layer's output in [T, N, hidden*dirs] order (as this torch does)
        b = spec(seq_spec('[{lstm: {hidden: 3, layers: 2, dropout: 0.5}}]'), seed=3)
        x = torch.randn(3, 5, 4)
        state = torch.get_rng_state()
        b.model(x)
        after = torch.rand(4)
        torch.set_rng_state(state)
        torch.empty(5, 3, 3).bernoulli_(0.5)
        self.assertTrue(torch.equal(after, torch.rand(4)))
        # eval mode draws nothing
        b.model.eval()
        torch.set_rng_state(state)
        b.model(x)
        after = torch.rand(4)
        torch.set_rng_state(state)
        self.assertTrue(torch.equal(after, torch.rand(4)))

    def test_gru_bidirectional_classifier(self):
        def ref():
            return nn.Sequential(nn.GRU(4, 5, num_layers=2, batch_first=True,
                                        bidirectional=True), HandLastStep(), nn.Linear(10, 3))
        text = seq_spec('[{gru: {hidden: 5, layers: 2, bidirectional: true}}, last_step, '
                        '{linear: 3}]')
        b = self.check(text, ref)
        self.assertEqual(nnspec.print_text(b.model),
                         'Sequential(\n  (0): GRU(4, 5, num_layers=2, batch_first=True, '
                         'bidirectional=True)\n  (1): LastStep()\n'
                         '  (2): Linear(in_features=10, out_features=3, bias=True)\n)\n')
        self.assertEqual(b.model[0].weight_ih_l0_reverse.shape, (15, 4))   # gates r, z, n
        self.assertEqual(b.output_shape, [3, 3])
        self.assertIn('0.weight_ih_l0_reverse', b.model.state_dict())
        self.assertIn('0.bias_hh_l1_reverse', dict(b.model.named_parameters()))
        x = torch.randn(3, 5, 4)
        self.forward_equal(b, lambda x: b.model[2](nn.GRU.forward(b.model[0], x)[0][:, -1]), x)

    def test_embedding(self):
        text = seq_spec('[{embedding: {num: 10, dim: 4, padding_idx: 2}}, {linear: 3}]',
                        inp='[6]', extra='input_dtype: int32\n')
        b = self.check(text, lambda: nn.Sequential(nn.Embedding(10, 4, padding_idx=2),
                                                   nn.Linear(4, 3)), exact=False)
        self.assertEqual(b.input_dtype, 'int32')
        self.assertEqual((b.in_size, b.out_size), (6, 18))
        self.assertEqual(b.output_shape, [3, 6, 3])
        self.assertEqual(str(b.model[0]), 'Embedding(10, 4, padding_idx=2)')
        self.assertEqual(nnspec.init_exactness(b), 'approx')   # normal_ in its default
        self.assertTrue(bool((b.model[0].weight[2] == 0).all()))
        self.assertFalse(bool((b.model[0].weight[3] == 0).any()))
        # int32 indices are taken as they are; the padding row gets no gradient
        x = torch.tensor([[2, 0, 9, 2, 1, 1]] * 3, dtype=torch.int32)
        b.model(x).sum().backward()
        g = b.model[0].weight.grad
        self.assertTrue(bool((g[2] == 0).all()))
        self.assertTrue(bool((g[1] != 0).all()))
        # a negative padding_idx counts from the end, as torch
        b2 = spec(text.replace('padding_idx: 2', 'padding_idx: -1'))
        self.assertEqual(str(b2.model[0]), 'Embedding(10, 4, padding_idx=9)')
        self.assertEqual(spec(text).input_dtype, 'int32')
        self.assertEqual(spec(MLP).input_dtype, 'float32')
        self.assertEqual(spec(MLP + 'input_dtype: float32\n').input_dtype, 'float32')
        # the default rule redraws normal_ and zeroes the padding row again
        b3 = spec(text + 'init: [{layer: embedding, weight: default}]\n', seed=4)
        torch.manual_seed(4)
        r = nn.Sequential(nn.Embedding(10, 4, padding_idx=2), nn.Linear(4, 3))
        r[0].reset_parameters()
        self.assertTrue(torch.allclose(b3.model[0].weight, r[0].weight, rtol=1e-6, atol=0))
        self.assertTrue(bool((b3.model[0].weight[2] == 0).all()))

    def test_default_rule_on_rnn_parameters(self):
        text = seq_spec('[{lstm: 3}]') + 'init:\n  - {layer: lstm, weight_hh_l0: zeros}\n' \
            '  - {at: "0", bias_ih_l0: default, weight_hh_l0: default}\n'

        def ref():
            m = nn.Sequential(nn.LSTM(4, 3, batch_first=True))
            nn.init.zeros_(m[0].weight_hh_l0)
            for p in (m[0].bias_ih_l0, m[0].weight_hh_l0):
                nn.init.uniform_(p, -1 / math.sqrt(3), 1 / math.sqrt(3))
            return m
        self.check(text, ref)

    def test_language_model(self):
        b = self.check(LM, torch_lm, exact=False)
        m = b.model
        self.assertIs(m[2].weight, m[0].weight)
        self.assertEqual(nnspec.params_text(m).splitlines()[-2:],
                         ['2.weight [12, 8] (shared with 0.weight)', '2.bias [12]'])
        self.assertNotIn('2.weight', dict(m.named_parameters()))
        self.assertIn('2.weight', m.state_dict())
        self.assertEqual((b.input_dtype, b.in_size, b.out_size, b.targets, b.classes),
                         ('int32', 5, 60, 5, 12))
        self.assertEqual(b.output_shape, [3, 5, 12])
        self.assertIsInstance(b.loss, nn.CrossEntropyLoss)
        # the loss over [N, T, V] is CrossEntropyLoss over [N*T, V]
        x = torch.randint(0, 12, (3, 5))
        t = torch.randint(0, 12, (15,))
        out = m(x)
        loss = b.loss(out, t)
        want = nn.functional.cross_entropy(out.reshape(15, 12), t)
        self.assertEqual(float(loss), float(want))
        # one gradient for the tied weight: the sum over both uses
        loss.backward()
        u = torch_lm()
        u.load_state_dict(m.state_dict())
        u[2].weight = nn.Parameter(m[0].weight.detach().clone())
        b.loss(u[2](u[1](u[0](x))[0]), t).backward()
        self.assertTrue(torch.allclose(m[0].weight.grad, u[0].weight.grad + u[2].weight.grad,
                                       rtol=1e-5, atol=1e-7))

    def test_tied_autoencoder(self):
        for seed in SEEDS:
            b = spec(AE, seed=seed)
            torch.manual_seed(seed)
            enc, bias = torch_ae()
            m = b.model
            self.assertEqual(nnspec.print_text(m), AE_PRINT)
            self.assertEqual(nnspec.params_text(m), 'encoder.weight [16, 64] (used transposed '
                             'by decoder)\nencoder.bias [16]\ndecoder.bias [64]\n')
            self.assertEqual(list(m.state_dict()), ['encoder.weight', 'encoder.bias',
                                                    'decoder.bias'])
            self.assertEqual([n for n, _ in m.named_parameters()],
                             ['encoder.weight', 'encoder.bias', 'decoder.bias'])
            self.assertTrue(torch.equal(bits(m.encoder.weight), bits(enc.weight)))
            self.assertTrue(torch.equal(bits(m.encoder.bias), bits(enc.bias)))
            self.assertTrue(torch.equal(bits(m.decoder.bias), bits(bias)))
            after = torch.rand(1)
            torch.manual_seed(seed)
            torch_ae()
            self.assertEqual(float(after), float(torch.rand(1)))
        x = torch.randn(4, 64)
        want = nn.functional.linear(torch.relu(enc(x)), enc.weight.t(), bias)
        self.assertTrue(torch.equal(m(x), nn.functional.linear(
            torch.relu(m.encoder(x)), m.encoder.weight.t(), m.decoder.bias)))
        self.assertEqual(b.output_shape, [4, 64])
        self.assertEqual(list(want.shape), [4, 64])
        # the decoder reads the encoder's weight at call time
        y0 = m(x)
        with torch.no_grad():
            m.encoder.weight[0][0] += 1
        self.assertFalse(torch.equal(m(x), y0))
        # its gradient is the sum of both uses (against an untied copy)
        m.zero_grad()
        b.loss(m(x), x).backward()
        w = m.encoder.weight.detach().clone().requires_grad_(True)
        wt = m.encoder.weight.detach().t().clone().requires_grad_(True)   # [out, in]
        y = nn.functional.linear(torch.relu(nn.functional.linear(x, w, m.encoder.bias)), wt,
                                 m.decoder.bias)
        nn.functional.mse_loss(y, x).backward()
        self.assertTrue(torch.allclose(m.encoder.weight.grad, w.grad + wt.grad.t(), rtol=1e-5,
                                       atol=1e-8))
        # a deep copy (what the harnesses run) keeps the tie, also in float64
        c = copy.deepcopy(m).to(torch.float64)
        self.assertIs(c.decoder.tied_owner, c.encoder)
        self.assertEqual(c.decoder.tied_weight.dtype, torch.float64)
        self.assertTrue(torch.allclose(c(x.double()), m(x).double(), rtol=1e-5))
        # no bias: no parameter at all
        b2 = spec(AE.replace('out: 64,', 'out: 64, bias: false,'))
        self.assertEqual([n for n, _ in b2.model.decoder.named_parameters()], [])
        self.assertIn('bias=False, weight=encoder.weight.T', str(b2.model.decoder))

    def test_tied_two_linears_and_an_alias(self):
        def ref():
            s = nn.Linear(4, 4)
            l0 = nn.Linear(4, 4)
            l5 = nn.Linear(4, 4)
            l5.weight = s.weight
            l6 = nn.Linear(4, 4, bias=False)
            l6.weight = l0.weight
            return nn.Sequential(l0, nn.ReLU(), s, nn.Tanh(), s, l5, l6)
        b = self.check("""
nngen: 1
input: [4]
batch: 2
shared: {s: {linear: 4}}
model:
  - {linear: 4}
  - relu
  - {ref: s}
  - tanh
  - {ref: s}
  - {linear: {out: 4, weight: {tied: 4.weight}}}
  - {linear: {out: 4, bias: false, weight: {tied: 0.weight}}}
""", ref)
        m = b.model
        self.assertIs(m[5].weight, m[2].weight)
        self.assertIs(m[6].weight, m[0].weight)
        self.assertEqual([n for n, _ in m.named_parameters()],
                         ['0.weight', '0.bias', '2.weight', '2.bias', '5.bias'])
        self.assertIn('5.weight [4, 4] (shared with 2.weight)', nnspec.params_text(m))

    def test_tie_sees_the_owner_init_and_frozen(self):
        # the owner's init rules run before the tie (its own construction);
        # a top-level rule on the owner's weight reaches the tied layer too;
        # `layer: linear` visits a TiedLinear (its bias)
        text = AE + """init:
  - {at: encoder, weight: {constant: 0.5}}
  - {layer: linear, bias: {constant: 2}}
"""
        b = spec(text, seed=0)
        m = b.model
        self.assertTrue(bool((m.encoder.weight == 0.5).all()))
        self.assertTrue(bool((m.decoder.bias == 2).all()))
        b = spec(LM.replace('weight: {tied: 0.weight}}}', 'weight: {tied: 0.weight}}, '
                            'frozen: true}'))
        self.assertFalse(b.model[0].weight.requires_grad)   # frozen through the tie, as torch
        self.assertFalse(b.model[2].bias.requires_grad)
        self.assertTrue(b.model[1].weight_ih_l0.requires_grad)

    def test_cross_entropy_rank4(self):
        b = spec('nngen: 1\ninput: [2, 3, 4]\nbatch: 2\nmodel: [{linear: 5}]\n'
                 'train: {loss: cross_entropy, optimizer: {sgd: {lr: 0.1}}}\n')
        self.assertEqual((b.targets, b.classes), (6, 5))
        out = torch.randn(2, 2, 3, 5)
        t = torch.randint(0, 5, (12,))
        self.assertEqual(float(b.loss(out, t)),
                         float(nn.functional.cross_entropy(out.reshape(12, 5), t)))
        b = spec(MLP + 'train: {loss: cross_entropy, optimizer: {sgd: {lr: 0.1}}}\n')
        self.assertIs(type(b.loss), nn.CrossEntropyLoss)
        self.assertEqual((b.targets, b.classes), (1, 1))


    def test_params_show_a_transposed_tie(self):
        # shared modules are constructed first: a shared TiedLinear used twice,
        # tied to a shared linear declared before it, also used twice
        b = spec("""
nngen: 1
input: [4]
batch: 2
shared:
  enc: {linear: 3}
  dec: {linear: {out: 4, weight: {tied: 0.weight, transpose: true}}}
model:
  - {ref: enc}
  - relu
  - {ref: dec}
  - {ref: enc}
  - {ref: dec}
  - {linear: {out: 3, weight: {tied: 3.weight}}}
""")
        self.assertEqual(nnspec.params_text(b.model),
                         '0.weight [3, 4] (used transposed by 2, 4)\n0.bias [3]\n2.bias [4]\n'
                         '3.weight [3, 4] (shared with 0.weight)\n'
                         '3.bias [3] (shared with 0.bias)\n4.bias [4] (shared with 2.bias)\n'
                         '5.weight [3, 4] (shared with 0.weight)\n5.bias [3]\n')
        self.assertEqual(str(b.model[2]), 'TiedLinear(in_features=3, out_features=4, bias=True, '
                                          'weight=0.weight.T)')

    def test_every_spec_under_specs_seq_builds_and_runs(self):
        d = os.path.join(HERE, '..', '..', 'specs', 'seq')
        names = sorted(f for f in os.listdir(d) if f.endswith('.yaml'))
        self.assertGreaterEqual(len(names), 4)
        for f in names:
            b = nnspec.build(os.path.join(d, f), seed=0)
            if b.input_dtype == 'int32':
                emb = [m for m in b.model.modules() if isinstance(m, nn.Embedding)][0]
                x = torch.randint(0, emb.num_embeddings, tuple(b.input_shape))
            else:
                x = torch.randn(*b.input_shape)
            y = b.model(x)
            self.assertEqual(list(y.shape), b.output_shape, f)
            if b.loss_name == 'cross_entropy':
                t = torch.randint(0, b.classes, (b.batch * b.targets,))
                b.loss(y, t).backward()
            elif b.loss_name == 'mse':
                b.loss(y, torch.zeros_like(y)).backward()


class SequenceErrors(unittest.TestCase):
    """What nngen must reject too (tests/bad has one spec for each)."""

    def bad(self, text, fragment):
        with self.assertRaises(nnspec.SpecError, msg=text) as cm:
            spec(text)
        self.assertIn(fragment, str(cm.exception))

    def test_recurrent(self):
        self.bad(seq_spec('[{rnn: {hidden: 4, nonlinearity: sigmoid}}]'), 'nonlinearity')
        self.bad(seq_spec('[{lstm: {hidden: 4, nonlinearity: relu}}]'), "unknown argument")
        self.bad(seq_spec('[{gru: 0}]'), 'must be >= 1')
        self.bad(seq_spec('[{lstm: {hidden: 4, layers: 0}}]'), 'must be >= 1')
        self.bad(seq_spec('[{lstm: {hidden: 4, dropout: 1.5}}]'), 'dropout must be in [0, 1]')
        self.bad(seq_spec('[{rnn: {hidden: 4, dropout: -0.1}}]'), 'dropout must be in [0, 1]')
        self.bad(seq_spec('[{gru: {hidden: 4, bidirectional: 1}}]'), 'true or false')
        self.bad(seq_spec('[{lstm: {layers: 2}}]'), "needs 'hidden'")
        self.bad(seq_spec('[{rnn: 4}]', inp='[4]'), 'needs a sequence [N, T, F]')
        self.bad(seq_spec('[{rnn: 4}]', inp='[2, 3, 4]'), 'needs a sequence [N, T, F]')
        self.bad(seq_spec('[last_step]', inp='[4]'), 'needs a sequence [N, T, F]')
        self.bad(seq_spec('[{last_step: 1}]'), 'takes no arguments')

    def test_embedding_and_input_dtype(self):
        emb = '[{embedding: {num: 10, dim: 4}}, {linear: 3}]'
        i32 = 'input_dtype: int32\n'
        self.bad(seq_spec(emb, inp='[6]'), 'needs input_dtype: int32')
        self.bad(seq_spec('[{embedding: {num: 10, dim: 4}}, relu, {embedding: {num: 10, dim: 4}}]',
                          inp='[6]', extra=i32), 'must be the first layer')
        self.bad(seq_spec('[{linear: 4}, {embedding: {num: 10, dim: 4}}]', inp='[6]', extra=i32),
                 'needs an embedding as the first layer')
        self.bad(seq_spec('[{embedding: {num: 10, dim: 4}}, {embedding: {num: 10, dim: 4}}]',
                          inp='[6]', extra=i32), 'must be the first layer')
        self.bad(seq_spec('[{linear: 4}]', inp='[6]', extra=i32),
                 'needs an embedding as the first layer')
        self.bad(seq_spec('[]', inp='[6]', extra=i32), 'reach the output')
        self.bad(seq_spec('[{residual: [{embedding: {num: 10, dim: 1}}]}]', inp='[6]', extra=i32),
                 'residual')
        self.bad(seq_spec(emb, inp='[6]', extra='input_dtype: int64\n'), 'float32 or int32')
        self.bad(seq_spec('[{embedding: {num: 10}}]', inp='[6]', extra=i32), "needs 'dim'")
        self.bad(seq_spec('[{embedding: {num: 10, dim: 4, padding_idx: 10}}]', inp='[6]',
                          extra=i32), 'padding_idx must be in [-10, 10)')
        self.bad(seq_spec('[{embedding: {num: 10, dim: 4, padding_idx: -11}}]', inp='[6]',
                          extra=i32), 'padding_idx must be in [-10, 10)')
        # a shared embedding used a second time gets floats
        self.bad('nngen: 1\ninput: [6]\ninput_dtype: int32\nshared: {e: {embedding: '
                 '{num: 4, dim: 6}}}\nmodel: [{ref: e}, {ref: e}]\n', 'first use')

    def test_tied(self):
        self.bad(AE.replace('tied: encoder.weight', 'tied: encoder.wieght'),
                 "is not a state_dict key of the model (did you mean 'encoder.weight'?)")
        self.bad(AE.replace('tied: encoder.weight', 'tied: encoder.bias'), 'is not a weight')
        self.bad(AE.replace('tied: encoder.weight', 'tied: act'), 'not a state_dict key')
        self.bad(AE.replace('transpose: true', 'transpose: false'),
                 "is [16, 64], but this layer's weight is [64, 16]")
        self.bad(AE.replace('{linear: 16}', '{linear: 32}').replace('act: relu',
                                                                    'act: {linear: 16}'),
                 'is [32, 64], transposed [64, 32], but this linear needs [out, in] = [64, 16]')
        self.bad(AE.replace('transpose: true', 'transpose: yes'), 'true or false')
        self.bad(AE.replace('transpose: true', 'transpose: true, shape: 2'), 'unknown key')
        self.bad(AE.replace('{tied: encoder.weight, transpose: true}', 'encoder.weight'),
                 'takes {tied: PATH}')
        # later in construction order, and the layer's own weight
        self.bad("""
nngen: 1
input: [4]
model:
  - {linear: {out: 4, weight: {tied: 1.weight}}}
  - {linear: 4}
""", 'constructed after this one')
        self.bad('nngen: 1\ninput: [4]\nmodel: [{linear: {out: 4, weight: {tied: 0.weight}}}]\n',
                 "this layer's own weight")
        # inside shared: (constructed first), tied to a layer of the model
        self.bad("""
nngen: 1
input: [4]
shared: {s: {linear: {out: 4, weight: {tied: 0.weight}}}}
model: [{linear: 4}, {ref: s}]
""", 'constructed after this one')
        # embedding: no transpose; linear <-> embedding shapes
        self.bad(LM.replace('tied: 0.weight', 'tied: 0.weight, transpose: true'),
                 'is [12, 8], transposed [8, 12], but this linear needs [out, in] = [12, 8]')
        self.bad(LM.replace('- {embedding: {num: 12, dim: 8}}',
                            '- {embedding: {num: 12, dim: 8, weight: {tied: 0.weight, '
                            'transpose: true}}}'), 'for a linear only')
        self.bad(LM.replace('out: 12,', 'out: 11,'), "is [12, 8], but this layer's weight is "
                                                    "[11, 8]")
        # not a linear's or an embedding's weight
        self.bad(seq_spec('[{lstm: 4}, {linear: {out: 16, weight: {tied: 0.weight_ih_l0}}}]'),
                 'is not a weight')
        self.bad('nngen: 1\ninput: [4]\nbatch: 2\nmodel: [{layer_norm: 4}, {linear: {out: 4, '
                 'weight: {tied: 0.weight}}}]\n', 'is not a weight')
        # a transposed tie has no weight of its own to tie to
        self.bad(AE.replace('act: relu', 'act: relu\n    d2: {linear: {out: 64, weight: '
                            '{tied: decoder.weight}}}'), 'not a state_dict key')

    def test_init_rule_on_a_borrowed_weight(self):
        self.bad(AE.replace('weight: {tied: encoder.weight, transpose: true}}}',
                            'weight: {tied: encoder.weight, transpose: true}}, '
                            'init: [{weight: zeros}]}'), 'borrowed from encoder.weight')
        self.bad(LM.replace('weight: {tied: 0.weight}}}',
                            'weight: {tied: 0.weight}}, init: [{weight: xavier_uniform}]}'),
                 'initialize it where it is declared')
        self.bad(LM + 'init: [{weight: {normal: [0, 0.1]}}]\n', 'borrowed from 0.weight')
        self.bad(LM + 'init: [{layer: linear, weight: ones}]\n', 'borrowed from 0.weight')
        # the owner's own rules are fine, and rules that skip the borrower
        spec(LM + 'init: [{layer: embedding, weight: ones}, {layer: linear, bias: zeros}]\n')
        spec(LM + 'init: [{at: "0", weight: {uniform: [-1, 1]}}]\n')


    def test_bad_corpus_of_issue_14(self):
        # the bad specs of tests/bad for these layers: the oracle rejects
        # every one of them too
        d = os.path.join(HERE, '..', 'bad')
        names = ['embedding_float_input', 'embedding_no_dim', 'embedding_not_first',
                 'embedding_padding_idx_range', 'input_dtype_unknown', 'int32_without_embedding',
                 'last_step_rank2', 'lstm_nonlinearity', 'rnn_dropout_above_one',
                 'rnn_dropout_negative', 'rnn_hidden_zero', 'rnn_layers_zero', 'rnn_no_hidden',
                 'rnn_nonlinearity_unknown', 'rnn_rank2', 'rnn_rank4', 'tied_init_borrowed',
                 'tied_init_borrowed_top', 'tied_later', 'tied_missing', 'tied_not_mapping',
                 'tied_not_weight', 'tied_self', 'tied_shape', 'tied_transpose_embedding',
                 'tied_transpose_shape', 'tied_unknown_key']
        for f in (n + '.yaml' for n in names):
            with self.assertRaises(nnspec.SpecError, msg=f):
                nnspec.build(os.path.join(d, f))

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
