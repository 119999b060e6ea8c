#!/usr/bin/python3
"""nnspec: the PyTorch oracle for nngen specs (SPEC.md section 1).

Builds, from an nngen YAML spec, the torch.nn model that the spec describes,
exactly as a Python user would have written it by hand: shared modules first
(in declaration order), then the model, each module's own ``init:`` rules
right after its children are constructed, the top-level ``init:`` last.

Run it ONLY with /usr/bin/python3 (Debian's python3-torch 1.13).

Python API
----------
    b = build(path, seed=None, allow_unsupported_init=False)
    b.model          nn.Module
    b.spec           the parsed spec (dict)
    b.name           spec name (default: file stem)
    b.batch          batch size (default 1)
    b.input_shape    [batch, *input]        (full shape, batch first)
    b.output_shape   [batch, *out]          (full shape, batch first)
    b.input_dtype    'float32' (default) or 'int32' (top-level input_dtype:,
                     SPEC 1.2.4: the model then starts with an embedding and
                     takes int64/int32 index tensors)
    b.in_size        floats (or int32 indices) per example of input (P_IN_SIZE)
    b.out_size       floats per example of output  (P_OUT_SIZE)
    b.loss           nn.MSELoss / nn.CrossEntropyLoss instance, or None; for
                     cross_entropy on an output of rank > 2 ([N, T, V]) a
                     SeqCrossEntropyLoss: CrossEntropyLoss over
                     out.reshape(-1, V), target.reshape(-1) (SPEC 1.5)
    b.loss_name      'mse' / 'cross_entropy' / None
    b.targets        class labels per example for cross_entropy: the product
                     of the output's dimensions between batch and classes
                     (T of [N, T, V]; 1 for [N, C])
    b.classes        the output's last dimension (V, the classes)
    b.make_optimizer callable(params) -> torch.optim.Optimizer, or None
    b.init_families  set of initializer names used (after defaults), e.g.
                     {'default', 'normal'}; see init_exactness()
    b.unsupported    list of "where: initializer" strings that were skipped
                     (only when allow_unsupported_init=True)

Layers beyond torch.nn's own classes (same print as torch's): SeqRNN,
SeqLSTM, SeqGRU (nn.RNN/LSTM/GRU, batch_first, forward returns `output`
only), LastStep (x[:, -1]) and TiedLinear ({tied: PATH, transpose: true}).
A `weight: {tied: PATH}` layer is constructed as usual (its own weight
drawn) and its weight then replaced by the tensor at PATH, the PyTorch idiom
`decoder.weight = encoder.weight`; to find which layer holds PATH in
construction order, a spec with ties is constructed twice (the generator is
restored after the first construction).

If ``seed`` is None the spec's ``seed:`` is used when present; otherwise the
global torch generator is left as it is.  ``mixture`` and ``custom``
initializers have no torch equivalent: build() raises UnsupportedInit, or,
with allow_unsupported_init=True, leaves those parameters as they were and
lists them in b.unsupported (the random stream then differs from nngen's).

Command line
------------
    nnspec.py print SPEC        print(model)
    nnspec.py params SPEC       one line per state_dict key: "NAME [d0, d1]"
                                plus " (shared with FIRST)" for aliases
    nnspec.py dump SPEC SEED    initial parameters (named_parameters order)
                                in the dump format (see dumpfmt below)
    nnspec.py info SPEC         batch/in/out/param lines as `driver info`
Exit status: 0 ok, 1 spec error, 2 usage, 3 initializer not supported.

Dump format (shared with tests/conform/driver.c): for each tensor a line
"NAME NUMEL" followed by NUMEL lines, one float each, written as C99 "%a"
of the float widened to double (glibc style: 0x1.8p+1, 0x0p+0, -0x0p+0,
inf, -inf, nan).  A tensor that has no value (a grad that is None) is the
single line "NAME none".
"""

import difflib
import math
import os
import re
import struct
import sys
import warnings

import yaml

try:
    import torch
    from torch import nn
    from torch.nn import init as tinit
except ImportError:  # pragma: no cover - the caller decides what to do
    torch = None
    nn = None
    tinit = None


# --------------------------------------------------------------------------
# Errors

class NNSpecError(Exception):
    """Base class of everything nnspec raises on purpose."""


class SpecError(NNSpecError):
    """The spec is wrong (nngen must reject it too)."""


class UnsupportedInit(NNSpecError):
    """The spec uses an initializer with no torch equivalent (mixture, custom)."""


# --------------------------------------------------------------------------
# YAML: core-schema scalars (YAML 1.2: only true/false are booleans, "1e-8"
# is a float, no octal with a leading 0), anchors/aliases/merge keys rejected,
# exactly one document.

class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {}
_INT_RE = re.compile(r'^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$')
_FLOAT_RE = re.compile(
    r'^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?'
    r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$')
_Loader.add_implicit_resolver('tag:yaml.org,2002:null',
                              re.compile(r'^(?:~|null|Null|NULL|)$'),
                              ['~', 'n', 'N', ''])
_Loader.add_implicit_resolver('tag:yaml.org,2002:bool',
                              re.compile(r'^(?:true|True|TRUE|false|False|FALSE)$'),
                              list('tTfF'))
_Loader.add_implicit_resolver('tag:yaml.org,2002:int', _INT_RE,
                              list('-+0123456789'))
_Loader.add_implicit_resolver('tag:yaml.org,2002:float', _FLOAT_RE,
                              list('-+0123456789.'))


def _construct_int(loader, node):
    v = loader.construct_scalar(node)
    if v.startswith('0o'):
        return int(v[2:], 8)
    if v.startswith('0x'):
        return int(v[2:], 16)
    return int(v, 10)


def _construct_float(loader, node):
    v = loader.construct_scalar(node)
    low = v.lower()
    if low.endswith('.inf'):
        return -math.inf if low.startswith('-') else math.inf
    if low == '.nan':
        return math.nan
    return float(v)


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = {}
    for knode, vnode in node.value:
        k = loader.construct_object(knode, deep=True)
        try:
            hash(k)
        except TypeError:
            raise SpecError('line %d: a mapping key must be a scalar' % (knode.start_mark.line + 1))
        if k in out:
            raise SpecError('line %d: duplicate key %r' % (knode.start_mark.line + 1, k))
        out[k] = loader.construct_object(vnode, deep=True)
    return out


_Loader.add_constructor('tag:yaml.org,2002:map', _construct_map)
_Loader.add_constructor('tag:yaml.org,2002:int', _construct_int)
_Loader.add_constructor('tag:yaml.org,2002:float', _construct_float)


def load_spec_text(text, where='<spec>'):
    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, yaml.AliasEvent):
            raise SpecError('%s: YAML aliases are not allowed (use ref: to share '
                            'a module, a block to copy one)' % where)
        if getattr(ev, 'anchor', None) is not None:
            raise SpecError('%s: YAML anchors are not allowed (use ref: to share '
                            'a module, a block to copy one)' % where)
        if isinstance(ev, yaml.ScalarEvent) and ev.value == '<<' and ev.style is None:
            raise SpecError('%s: YAML merge keys are not allowed' % where)
    docs = list(yaml.load_all(text, Loader=_Loader))
    if len(docs) != 1:
        raise SpecError('%s: expected exactly one YAML document, got %d' % (where, len(docs)))
    spec = docs[0]
    if not isinstance(spec, dict):
        raise SpecError('%s: the spec must be a mapping' % where)
    return spec


# --------------------------------------------------------------------------
# Small value helpers

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v, what, minimum=None):
    if not _is_int(v):
        raise SpecError('%s: expected an integer, got %r' % (what, v))
    if minimum is not None and v < minimum:
        raise SpecError('%s: must be >= %d, got %d' % (what, minimum, v))
    return v


def _num(v, what):
    if not _is_num(v):
        raise SpecError('%s: expected a number, got %r' % (what, v))
    return float(v)


def _bool(v, what):
    if not isinstance(v, bool):
        raise SpecError('%s: expected true or false, got %r' % (what, v))
    return v


_IDENT_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


# --------------------------------------------------------------------------
# Layers (SPEC 1.2)

class _LayerDef(object):
    def __init__(self, cls, main=None, args=None, required=()):
        self.cls = cls            # attribute name in torch.nn (resolved lazily)
        self.main = main          # name of the main argument
        self.args = args or {}    # name -> default
        self.required = required


_RNN_ARGS = {'hidden': None, 'layers': 1, 'bias': True, 'bidirectional': False, 'dropout': 0}

LAYERS = {
    'linear': _LayerDef('Linear', 'out', {'out': None, 'in': None, 'bias': True,
                                          'weight': None}, ('out',)),
    'relu': _LayerDef('ReLU'),
    'sigmoid': _LayerDef('Sigmoid'),
    'tanh': _LayerDef('Tanh'),
    'identity': _LayerDef('Identity'),
    'leaky_relu': _LayerDef('LeakyReLU', 'negative_slope', {'negative_slope': 0.01}),
    'gelu': _LayerDef('GELU'),
    'silu': _LayerDef('SiLU'),
    'flatten': _LayerDef('Flatten'),
    'log_softmax': _LayerDef('LogSoftmax', 'dim', {'dim': 1}),
    'softmax': _LayerDef('Softmax', 'dim', {'dim': 1}),
    'batch_norm1d': _LayerDef('BatchNorm1d', 'eps', {'eps': 1e-5, 'momentum': 0.1,
                                                     'affine': True,
                                                     'track_running_stats': True,
                                                     'num_features': None}),
    'batch_norm2d': _LayerDef('BatchNorm2d', 'eps', {'eps': 1e-5, 'momentum': 0.1,
                                                     'affine': True,
                                                     'track_running_stats': True,
                                                     'num_features': None}),
    'layer_norm': _LayerDef('LayerNorm', 'shape', {'shape': None, 'eps': 1e-5,
                                                   'elementwise_affine': True}, ('shape',)),
    'dropout': _LayerDef('Dropout', 'p', {'p': 0.5}),
    'conv2d': _LayerDef('Conv2d', 'out', {'out': None, 'kernel': None, 'stride': 1,
                                          'padding': 0, 'dilation': 1, 'groups': 1,
                                          'bias': True, 'in': None}, ('out', 'kernel')),
    'max_pool2d': _LayerDef('MaxPool2d', 'kernel', {'kernel': None, 'stride': None,
                                                    'padding': 0, 'dilation': 1,
                                                    'ceil_mode': False}, ('kernel',)),
    'avg_pool2d': _LayerDef('AvgPool2d', 'kernel', {'kernel': None, 'stride': None,
                                                    'padding': 0, 'ceil_mode': False,
                                                    'count_include_pad': True}, ('kernel',)),
    'adaptive_avg_pool2d': _LayerDef('AdaptiveAvgPool2d', 'out', {'out': None}, ('out',)),
    # SPEC 1.2.4: sequences [N, T, F] (batch_first=True) and embeddings
    'rnn': _LayerDef('RNN', 'hidden', dict(_RNN_ARGS, nonlinearity='tanh'), ('hidden',)),
    'lstm': _LayerDef('LSTM', 'hidden', dict(_RNN_ARGS), ('hidden',)),
    'gru': _LayerDef('GRU', 'hidden', dict(_RNN_ARGS), ('hidden',)),
    'last_step': _LayerDef('LastStep'),
    'embedding': _LayerDef('Embedding', 'num', {'num': None, 'dim': None, 'padding_idx': None,
                                                'weight': None}, ('num', 'dim')),
}
RNN_LAYERS = ('rnn', 'lstm', 'gru')


def _pair_arg(v, what, minimum, words=()):
    """An int, a list [a, b] (becomes a tuple, as a Python user writes it) or a word."""
    if isinstance(v, str) and v in words:
        return v
    if isinstance(v, list):
        if len(v) != 2:
            raise SpecError('%s: takes an int or a pair [a, b]' % what)
        return (_int(v[0], what, minimum), _int(v[1], what, minimum))
    return _int(v, what, minimum)


def _two(v):
    return v if isinstance(v, tuple) else (v, v)


def _pool_out(size, k, pad, stride, dil, ceil):
    # torch's pooling_output_shape, written out
    num = size + 2 * pad - dil * (k - 1) - 1 + (stride - 1 if ceil else 0)
    o = num // stride + 1
    if ceil and (o - 1) * stride >= size + pad:
        o -= 1
    return o

# type names usable in an init rule's `layer:` filter: a tuple of classes
# (`type(m) in classes`, the seed's `type(m) == nn.Linear`).  A `linear`
# whose weight is tied transposed is a TiedLinear: still a `linear` of the
# spec, so `layer: linear` visits it (SPEC 1.2.5; there it only has a bias).
def _type_class(tname):
    if tname == 'sequential':
        return (nn.Sequential,)
    if tname == 'linear':
        return (nn.Linear, TiedLinear)
    if tname in LAYERS:
        return (_layer_class(tname),)
    raise SpecError('init rule: unknown layer type %r in layer: (one of %s)'
                    % (tname, ', '.join(sorted(list(LAYERS) + ['sequential']))))


META_KEYS = ('init', 'frozen')
STRUCT_KEYS = ('sequential', 'repeat', 'ref', 'residual')
TOP_KEYS = ('nngen', 'name', 'input', 'input_dtype', 'batch', 'seed', 'blocks', 'shared',
            'model', 'init', 'train')
INPUT_DTYPES = ('float32', 'int32')


def _layer_args(tname, value, where):
    """Resolve a layer's arguments from `value` (None, main arg, or mapping)."""
    d = LAYERS[tname]
    args = dict(d.args)
    if value is None or value == {}:
        pass
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in d.args:
                raise SpecError('%s: unknown argument %r of %s (known: %s)'
                                % (where, k, tname, ', '.join(d.args) or 'none'))
            args[k] = v
    else:
        if d.main is None:
            raise SpecError('%s: %s takes no arguments' % (where, tname))
        args[d.main] = value
    for r in d.required:
        if args.get(r) is None:
            raise SpecError('%s: %s needs %r' % (where, tname, r))
    # type checks
    if tname == 'linear':
        _int(args['out'], where + ': linear out', 1)
        if args['in'] is not None:
            _int(args['in'], where + ': linear in', 1)
        _bool(args['bias'], where + ': linear bias')
        args['weight'] = _tied_arg(tname, args['weight'], where)
    elif tname in RNN_LAYERS:
        _int(args['hidden'], where + ': %s hidden' % tname, 1)
        _int(args['layers'], where + ': %s layers' % tname, 1)
        _bool(args['bias'], where + ': %s bias' % tname)
        _bool(args['bidirectional'], where + ': %s bidirectional' % tname)
        if not 0 <= _num(args['dropout'], where + ': %s dropout' % tname) <= 1:
            raise SpecError('%s: %s dropout must be in [0, 1], got %r'
                            % (where, tname, args['dropout']))
        if tname == 'rnn' and args['nonlinearity'] not in ('tanh', 'relu'):
            raise SpecError("%s: rnn nonlinearity must be 'tanh' or 'relu', got %r"
                            % (where, args['nonlinearity']))
    elif tname == 'embedding':
        num = _int(args['num'], where + ': embedding num', 1)
        _int(args['dim'], where + ': embedding dim', 1)
        if args['padding_idx'] is not None:
            pi = _int(args['padding_idx'], where + ': embedding padding_idx')
            if not -num <= pi < num:     # torch's assertion; a negative one counts from the end
                raise SpecError('%s: embedding padding_idx must be in [-%d, %d), got %d'
                                % (where, num, num, pi))
        args['weight'] = _tied_arg(tname, args['weight'], where)
    elif tname == 'leaky_relu':
        # passed to torch as written: `1` prints negative_slope=1, `1.0` prints 1.0
        _num(args['negative_slope'], where + ': negative_slope')
    elif tname in ('softmax', 'log_softmax'):
        _int(args['dim'], where + ': dim')
    elif tname in ('batch_norm1d', 'batch_norm2d'):
        if _num(args['eps'], where + ': eps') <= 0:
            raise SpecError('%s: eps must be > 0' % where)
        if not 0 <= _num(args['momentum'], where + ': momentum') <= 1:
            raise SpecError('%s: momentum must be in [0, 1]' % where)
        _bool(args['affine'], where + ': affine')
        _bool(args['track_running_stats'], where + ': track_running_stats')
        if args['num_features'] is not None:
            _int(args['num_features'], where + ': num_features', 1)
    elif tname == 'layer_norm':
        sh = args['shape']
        sh = list(sh) if isinstance(sh, list) else [sh]
        if not sh:
            raise SpecError('%s: layer_norm shape: an empty list' % where)
        args['shape'] = [_int(v, where + ': layer_norm shape', 1) for v in sh]
        if _num(args['eps'], where + ': eps') <= 0:
            raise SpecError('%s: eps must be > 0' % where)
        _bool(args['elementwise_affine'], where + ': elementwise_affine')
    elif tname == 'dropout':
        if not 0 <= _num(args['p'], where + ': p') <= 1:
            raise SpecError('%s: dropout p must be in [0, 1]' % where)
    elif tname == 'conv2d':
        w = where + ': conv2d '
        _int(args['out'], w + 'out', 1)
        if args['in'] is not None:
            _int(args['in'], w + 'in', 1)
        args['kernel'] = _pair_arg(args['kernel'], w + 'kernel', 1)
        args['stride'] = _pair_arg(args['stride'], w + 'stride', 1)
        args['padding'] = _pair_arg(args['padding'], w + 'padding', 0, ('same', 'valid'))
        args['dilation'] = _pair_arg(args['dilation'], w + 'dilation', 1)
        _int(args['groups'], w + 'groups', 1)
        _bool(args['bias'], w + 'bias')
        if args['padding'] == 'same' and _two(args['stride']) != (1, 1):
            raise SpecError('%s: padding same needs stride 1' % where)
    elif tname in ('max_pool2d', 'avg_pool2d'):
        w = where + ': %s ' % tname
        args['kernel'] = _pair_arg(args['kernel'], w + 'kernel', 1)
        if args['stride'] is not None:
            args['stride'] = _pair_arg(args['stride'], w + 'stride', 1)
        args['padding'] = _pair_arg(args['padding'], w + 'padding', 0)
        if 'dilation' in args:
            args['dilation'] = _pair_arg(args['dilation'], w + 'dilation', 1)
        _bool(args['ceil_mode'], w + 'ceil_mode')
        if 'count_include_pad' in args:
            _bool(args['count_include_pad'], w + 'count_include_pad')
    elif tname == 'adaptive_avg_pool2d':
        args['out'] = _pair_arg(args['out'], where + ': adaptive_avg_pool2d out', 1)
    return args


def _tied_arg(tname, w, where):
    """`weight: {tied: PATH[, transpose: BOOL]}` -> (PATH, transpose) or None."""
    if w is None:
        return None
    if not isinstance(w, dict) or 'tied' not in w:
        raise SpecError('%s: %s weight: takes {tied: PATH} or {tied: PATH, transpose: true}, '
                        'got %r' % (where, tname, w))
    for k in w:
        if k not in ('tied', 'transpose'):
            raise SpecError('%s: unknown key %r in %s weight (tied, transpose)' % (where, k, tname))
    path = w['tied']
    if not isinstance(path, str) or not path:
        raise SpecError('%s: tied: takes a state_dict key such as encoder.weight, got %r'
                        % (where, path))
    transpose = _bool(w.get('transpose', False), where + ': transpose')
    if transpose and tname != 'linear':
        raise SpecError('%s: transpose: true is for a linear only (an %s ties its weight '
                        'as it is)' % (where, tname))
    return (path, transpose)


def _layer_shape(tname, args, shape, where):
    """Output shape of a layer for incoming full shape `shape`."""
    if tname in RNN_LAYERS or tname == 'last_step':
        if len(shape) != 3:
            raise SpecError('%s: %s needs a sequence [N, T, F], got %s' % (where, tname, shape))
        if tname == 'last_step':
            return [shape[0], shape[2]]
        return [shape[0], shape[1], args['hidden'] * (2 if args['bidirectional'] else 1)]
    if tname == 'embedding':
        return list(shape) + [args['dim']]
    if tname == 'linear':
        if len(shape) < 2:
            raise SpecError('%s: linear needs an input of rank >= 2, got %s' % (where, shape))
        if args['in'] is not None and args['in'] != shape[-1]:
            raise SpecError('%s: linear in=%d but the incoming shape is %s'
                            % (where, args['in'], shape))
        return shape[:-1] + [args['out']]
    if tname == 'flatten':
        if len(shape) < 2:
            raise SpecError('%s: flatten needs an input of rank >= 2' % where)
        n = 1
        for s in shape[1:]:
            n *= s
        return [shape[0], n]
    if tname in ('conv2d', 'max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d'):
        if len(shape) != 4:
            raise SpecError('%s: %s needs [N, C, H, W], got %s' % (where, tname, shape))
        n, c, h, w = shape
    if tname == 'conv2d':
        if args['in'] is not None and args['in'] != c:
            raise SpecError('%s: conv2d in=%d but the incoming shape is %s'
                            % (where, args['in'], shape))
        g = args['groups']
        if c % g or args['out'] % g:
            raise SpecError('%s: groups %d does not divide the channels' % (where, g))
        out = [n, args['out']]
        for size, k, s, d, i in zip((h, w), _two(args['kernel']), _two(args['stride']),
                                    _two(args['dilation']), (0, 1)):
            p = args['padding']
            total = d * (k - 1) if p == 'same' else 0 if p == 'valid' else 2 * _two(p)[i]
            eff = d * (k - 1) + 1
            if eff > size + total:
                raise SpecError('%s: kernel larger than the padded input' % where)
            out.append((size + total - eff) // s + 1)
        return out
    if tname in ('max_pool2d', 'avg_pool2d'):
        k2 = _two(args['kernel'])
        s2 = _two(args['stride']) if args['stride'] is not None else k2
        p2 = _two(args['padding'])
        d2 = _two(args.get('dilation', 1))
        out = [n, c]
        for size, k, s, p, d in zip((h, w), k2, s2, p2, d2):
            if 2 * p > k:
                raise SpecError('%s: pad should be at most half of kernel size' % where)
            o = _pool_out(size, k, p, s, d, args['ceil_mode'])
            if o < 1:
                raise SpecError('%s: output size is too small' % where)
            out.append(o)
        return out
    if tname == 'adaptive_avg_pool2d':
        return [n, c] + list(_two(args['out']))
    if tname in ('softmax', 'log_softmax'):
        dim = args['dim']
        if not -len(shape) <= dim < len(shape):
            raise SpecError('%s: dim %d out of range for shape %s' % (where, dim, shape))
        return list(shape)
    if tname == 'batch_norm1d' and len(shape) not in (2, 3):
        raise SpecError('%s: batch_norm1d needs [N, C] or [N, C, L], got %s' % (where, shape))
    if tname == 'batch_norm2d' and len(shape) != 4:
        raise SpecError('%s: batch_norm2d needs [N, C, H, W], got %s' % (where, shape))
    if tname in ('batch_norm1d', 'batch_norm2d') and args['num_features'] is not None \
            and args['num_features'] != shape[1]:
        raise SpecError('%s: num_features %d but the input is %s'
                        % (where, args['num_features'], shape))
    if tname == 'layer_norm':
        k = len(args['shape'])
        if k > len(shape) - 1 or list(shape[len(shape) - k:]) != args['shape']:
            raise SpecError('%s: layer_norm shape %s is not the trailing dimensions of %s'
                            % (where, args['shape'], shape))
    return list(shape)


def _layer_class(tname):
    """The class that _make_layer makes for a layer type."""
    mine = {'rnn': SeqRNN, 'lstm': SeqLSTM, 'gru': SeqGRU, 'last_step': LastStep}
    if tname in mine:
        return mine[tname]
    return getattr(nn, LAYERS[tname].cls)


def _make_layer(tname, args, shape):
    if tname == 'linear':
        return nn.Linear(shape[-1], args['out'], bias=args['bias'])
    if tname in RNN_LAYERS:
        kw = dict(num_layers=args['layers'], bias=args['bias'], batch_first=True,
                  dropout=args['dropout'], bidirectional=args['bidirectional'])
        if tname == 'rnn':
            kw['nonlinearity'] = args['nonlinearity']
        with warnings.catch_warnings():
            # torch warns about dropout with one layer (it has no effect) and
            # builds the layer all the same
            warnings.simplefilter('ignore')
            return _layer_class(tname)(shape[-1], args['hidden'], **kw)
    if tname == 'embedding':
        return nn.Embedding(args['num'], args['dim'], padding_idx=args['padding_idx'])
    if tname == 'leaky_relu':
        return nn.LeakyReLU(negative_slope=args['negative_slope'])
    if tname in ('softmax', 'log_softmax'):
        return getattr(nn, LAYERS[tname].cls)(dim=args['dim'])
    if tname == 'flatten':
        return nn.Flatten(start_dim=1)
    if tname in ('batch_norm1d', 'batch_norm2d'):
        return getattr(nn, LAYERS[tname].cls)(shape[1], eps=args['eps'],
                                              momentum=args['momentum'],
                                              affine=args['affine'],
                                              track_running_stats=args['track_running_stats'])
    if tname == 'layer_norm':
        return nn.LayerNorm(tuple(args['shape']), eps=args['eps'],
                            elementwise_affine=args['elementwise_affine'])
    if tname == 'dropout':
        return nn.Dropout(p=args['p'])
    if tname == 'conv2d':
        return nn.Conv2d(shape[1], args['out'], args['kernel'], stride=args['stride'],
                         padding=args['padding'], dilation=args['dilation'],
                         groups=args['groups'], bias=args['bias'])
    if tname == 'max_pool2d':
        return nn.MaxPool2d(args['kernel'], stride=args['stride'], padding=args['padding'],
                            dilation=args['dilation'], ceil_mode=args['ceil_mode'])
    if tname == 'avg_pool2d':
        return nn.AvgPool2d(args['kernel'], stride=args['stride'], padding=args['padding'],
                            ceil_mode=args['ceil_mode'],
                            count_include_pad=args['count_include_pad'])
    if tname == 'adaptive_avg_pool2d':
        return nn.AdaptiveAvgPool2d(args['out'])
    return _layer_class(tname)()


# --------------------------------------------------------------------------
# Module expressions (SPEC 1.1)

def _split_module(expr, ctx, where):
    """Return (kind, key, value, meta) for a module expression.

    kind is one of 'seq' (value: list or dict), 'layer', 'block', 'repeat', 'ref'.
    """
    if isinstance(expr, list):
        return 'seq', 'sequential', expr, {}
    if isinstance(expr, str):
        if expr in LAYERS:
            return 'layer', expr, None, {}
        if expr in ctx.blocks:
            return 'block', expr, None, {}
        if expr in STRUCT_KEYS:
            raise SpecError('%s: %s needs a value' % (where, expr))
        raise SpecError('%s: unknown layer or block %r' % (where, expr))
    if isinstance(expr, dict):
        types = [k for k in expr if k not in META_KEYS]
        if len(types) != 1:
            raise SpecError('%s: a module mapping needs exactly one type key, got %s'
                            % (where, types))
        key = types[0]
        meta = {k: expr[k] for k in expr if k in META_KEYS}
        if 'frozen' in meta:
            _bool(meta['frozen'], where + ': frozen')
        val = expr[key]
        if key == 'sequential':
            if val is None:  # `sequential:` with nothing: an empty nn.Sequential()
                val = []
            if not isinstance(val, (list, dict)):
                raise SpecError('%s: sequential expects a list or a mapping' % where)
            return 'seq', key, val, meta
        if key == 'repeat':
            return 'repeat', key, val, meta
        if key == 'residual':
            if isinstance(val, list):
                return 'res', key, val, meta
            if isinstance(val, dict) and sorted(val) == ['body', 'shortcut']:
                return 'res2', key, val, meta
            raise SpecError('%s: residual takes a list or {body:, shortcut:}' % where)
        if key == 'ref':
            if not isinstance(val, str) or val not in ctx.shared_defs:
                raise SpecError('%s: ref: %r is not declared under shared:' % (where, val))
            return 'ref', key, val, meta
        if key in LAYERS:
            return 'layer', key, val, meta
        if key in ctx.blocks:
            if val not in (None, {}):
                raise SpecError('%s: block %s takes no arguments' % (where, key))
            return 'block', key, None, meta
        raise SpecError('%s: unknown module type %r' % (where, key))
    raise SpecError('%s: expected a module (list, name or mapping), got %r' % (where, expr))


def _seq_items(val, where):
    """[(child_name, expr)] of a sequential value."""
    if isinstance(val, list):
        return [(str(i), e) for i, e in enumerate(val)]
    items = []
    for k, e in val.items():
        name = str(k) if not isinstance(k, bool) else None
        if name is None or name == '' or '.' in name:
            raise SpecError('%s: bad child name %r' % (where, k))
        items.append((name, e))
    return items


def _repeat_items(val, where):
    if not isinstance(val, dict):
        raise SpecError('%s: repeat expects a mapping {times, name, body}' % where)
    for k in val:
        if k not in ('times', 'name', 'body'):
            raise SpecError('%s: unknown key %r in repeat (times, name, body)' % (where, k))
    if 'times' not in val or 'body' not in val:
        raise SpecError('%s: repeat needs times and body' % where)
    times = _int(val['times'], where + ': repeat times', 1)
    tmpl = val.get('name', '{i}')
    if not isinstance(tmpl, str):
        raise SpecError('%s: repeat name must be a string' % where)
    names = [tmpl.replace('{i}', str(i)) for i in range(times)]
    if len(set(names)) != len(names):
        raise SpecError('%s: repeat name %r gives duplicate child names' % (where, tmpl))
    for n in names:
        if n == '' or '.' in n:
            raise SpecError('%s: bad child name %r' % (where, n))
    return [(n, val['body']) for n in names]


class _Ctx(object):
    def __init__(self, spec):
        self.blocks = spec.get('blocks') or {}
        self.shared_defs = spec.get('shared') or {}
        self.shared_in = {}        # name -> planned incoming shape
        self.shared_out = {}       # name -> output shape
        self.shared_inst = {}      # name -> module
        self.planning = set()      # shared names being planned (cycle check)
        self.block_stack = []
        self.strict_init = True
        self.unsupported = []
        self.families = set()
        self.input_int = spec.get('input_dtype', 'float32') == 'int32'
        self.has_ties = False      # some layer says weight: {tied: ...}
        self.leaves = []           # leaf layers in construction order
        self.path_of = {}          # id(leaf) -> its path (for messages)
        self.tie_info = None       # pass 2: state_dict key -> (leaf index, module, name)


class _IntShape(list):
    """The shape of the network's int32 input (input_dtype: int32) while no
    embedding has taken it."""


def _same_kind(shape, like):
    return _IntShape(shape) if isinstance(like, _IntShape) else list(shape)


def _plan(expr, shape, ctx, where):
    """Shape-only walk: returns output shape; records shared modules' input shapes."""
    kind, key, val, meta = _split_module(expr, ctx, where)
    if kind in ('res', 'res2') and isinstance(shape, _IntShape):
        raise SpecError('%s: a residual gets the int32 indices of input_dtype: int32; the first '
                        'layer must be an embedding' % where)
    if kind == 'res':
        out = shape
        for name, e in _seq_items(val, where):
            out = _plan(e, out, ctx, _join(where, name))
        if list(out) != list(shape):
            raise SpecError('%s: residual body gives %s for input %s' % (where, out, shape))
        return list(shape)
    if kind == 'res2':
        a = _plan(val['body'], shape, ctx, _join(where, 'body'))
        b = _plan(val['shortcut'], shape, ctx, _join(where, 'shortcut'))
        if list(a) != list(b):
            raise SpecError('%s: residual body gives %s, shortcut %s' % (where, a, b))
        return list(a)
    if kind == 'seq':
        items = _seq_items(val, where)
        seen = set()
        for name, e in items:
            if name in seen:
                raise SpecError('%s: duplicate child name %r' % (where, name))
            seen.add(name)
            shape = _plan(e, shape, ctx, _join(where, name))
        return shape
    if kind == 'repeat':
        for name, e in _repeat_items(val, where):
            shape = _plan(e, shape, ctx, _join(where, name))
        return shape
    if kind == 'layer':
        args = _layer_args(key, val, where)
        if key == 'embedding':
            if not ctx.input_int:
                raise SpecError('%s: embedding takes int32 indices: the spec needs '
                                'input_dtype: int32 (and the embedding as its first layer)' % where)
            if not isinstance(shape, _IntShape):
                raise SpecError('%s: embedding must be the first layer (it takes the int32 '
                                'input), but here it gets %s floats' % (where, shape))
        elif isinstance(shape, _IntShape):
            raise SpecError('%s: input_dtype: int32 needs an embedding as the first layer, '
                            'but %s gets the int32 indices' % (where, key))
        if args.get('weight') is not None:
            ctx.has_ties = True
        return _layer_shape(key, args, shape, where)
    if kind == 'block':
        if key in ctx.block_stack:
            raise SpecError('%s: block cycle: %s' % (where, ' -> '.join(ctx.block_stack + [key])))
        ctx.block_stack.append(key)
        try:
            return _plan(ctx.blocks[key], shape, ctx, where)
        finally:
            ctx.block_stack.pop()
    if kind == 'ref':
        if val in ctx.shared_in:
            if isinstance(ctx.shared_in[val], _IntShape) != isinstance(shape, _IntShape):
                raise SpecError('%s: shared module %s gets %s here but %s at its first use (an '
                                'embedding must be the first layer)'
                                % (where, val, 'int32 indices' if isinstance(shape, _IntShape)
                                   else 'floats', 'int32 indices'
                                   if isinstance(ctx.shared_in[val], _IntShape) else 'floats'))
            if ctx.shared_in[val] != shape:
                raise SpecError('%s: shared module %s is used with incoming shape %s '
                                'but was first used with %s'
                                % (where, val, shape, ctx.shared_in[val]))
            return _same_kind(ctx.shared_out[val], ctx.shared_out[val])
        if val in ctx.planning:
            raise SpecError('%s: shared module %s refers to itself' % (where, val))
        ctx.planning.add(val)
        ctx.shared_in[val] = _same_kind(shape, shape)
        saved = ctx.block_stack
        ctx.block_stack = []
        try:
            out = _plan(ctx.shared_defs[val], shape, ctx, 'shared.' + val)
        finally:
            ctx.block_stack = saved
        ctx.planning.discard(val)
        ctx.shared_out[val] = _same_kind(out, out)
        return out
    raise AssertionError(kind)


def _join(where, name):
    return name if where in ('', 'model') else where + '.' + name


class Residual(nn.Sequential):
    """x + seq(x), printed as a Sequential named Residual (SPEC 1.2.3)."""

    def forward(self, x):
        y = x
        for m in self:
            y = m(y)
        return x + y


class ResidualBS(nn.Module):
    """body(x) + shortcut(x), children body then shortcut, printed as Residual."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def _get_name(self):
        return 'Residual'

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class _OutputOnly(object):
    """Mixin for torch's recurrent layers (SPEC 1.2.4): forward returns
    `output` only ([N, T, hidden*dirs], batch_first), so that the layer fits
    in a Sequential; the class prints under torch's own name."""
    TORCH_NAME = None

    def _get_name(self):
        return self.TORCH_NAME

    def forward(self, x):
        return super().forward(x)[0]


class SeqRNN(_OutputOnly, nn.RNN):
    TORCH_NAME = 'RNN'


class SeqLSTM(_OutputOnly, nn.LSTM):
    TORCH_NAME = 'LSTM'


class SeqGRU(_OutputOnly, nn.GRU):
    TORCH_NAME = 'GRU'


class LastStep(nn.Module):
    """[N, T, F] -> [N, F]: the last time step (SPEC 1.2.4)."""

    def forward(self, x):
        return x[:, -1]


class TiedLinear(nn.Module):
    """A linear whose weight is another layer's weight transposed (SPEC
    1.2.5): y = x W^T^T + b = F.linear(x, W.t(), bias), W read from the owner
    at call time.  Holds only its bias, drawn U(+-1/sqrt(in_features)) as
    nn.Linear draws it.  The owner is kept outside the module tree (it is
    not a child); copy.deepcopy of the whole model keeps the tie."""

    def __init__(self, in_features, out_features, bias, owner, path):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.tied_path = path
        object.__setattr__(self, 'tied_owner', owner)  # not registered as a child
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            bound = 1 / math.sqrt(in_features)
            tinit.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter('bias', None)

    @property
    def tied_weight(self):
        return self.tied_owner.weight

    def forward(self, x):
        return nn.functional.linear(x, self.tied_weight.t(), self.bias)

    def extra_repr(self):
        return 'in_features=%d, out_features=%d, bias=%s, weight=%s.T' % (
            self.in_features, self.out_features, self.bias is not None, self.tied_path)


class SeqCrossEntropyLoss(nn.CrossEntropyLoss):
    """cross_entropy on an output of rank > 2 (SPEC 1.5): the classes are the
    last dimension, CrossEntropyLoss()(out.reshape(-1, V), target.reshape(-1))."""

    def forward(self, input, target):
        return super().forward(input.reshape(-1, input.shape[-1]), target.reshape(-1))


def _model_path(where):
    return '' if where == 'model' else where


def _tied_owner(path, index, ctx, where, want, transpose):
    """The layer whose weight `path` names, for the leaf layer number `index`
    (construction order) that ties to it, its shape checked against `want`
    (the tied layer's own [out, in] / [num, dim]; transposed: [in, out]).
    None in pass 1 (ctx.tie_info is None: nothing is resolved yet)."""
    if ctx.tie_info is None:
        return None
    ent = ctx.tie_info.get(path)
    if ent is None:
        near = difflib.get_close_matches(path, list(ctx.tie_info), n=1)
        raise SpecError('%s: tied: %r is not a state_dict key of the model%s'
                        % (where, path, " (did you mean %r?)" % near[0] if near else ''))
    tindex, tmod, pname = ent
    if pname != 'weight' or not isinstance(tmod, (nn.Linear, nn.Embedding)):
        raise SpecError('%s: tied: %r is not a weight (tied: names the weight of a linear or '
                        'an embedding, e.g. encoder.weight)' % (where, path))
    if tindex == index:
        raise SpecError('%s: tied: %r is this layer\'s own weight' % (where, path))
    if tindex > index:
        raise SpecError('%s: tied: %r belongs to a layer constructed after this one (the '
                        'tied-to layer must come earlier in construction order)' % (where, path))
    owner = ctx.leaves[tindex]
    have = tuple(owner.weight.shape)
    if transpose:
        if have != (want[0], want[1]):
            raise SpecError('%s: tied: %r is %s, transposed %s, but this linear needs '
                            '[out, in] = [%d, %d]' % (where, path, list(have),
                                                      list(have[::-1]), want[1], want[0]))
    elif have != tuple(want):
        raise SpecError('%s: tied: %r is %s, but this layer\'s weight is %s'
                        % (where, path, list(have), list(want)))
    return owner


def _tie_table(model, ctx):
    """state_dict key -> (leaf index, module, parameter or buffer name), for
    every alias (pass 1's model, ties not made)."""
    index = {id(m): i for i, m in enumerate(ctx.leaves)}
    table = {}
    for mpath, mod in model.named_modules(remove_duplicate=False):
        names = [n for n, _ in mod.named_parameters(recurse=False)]
        names += [n for n, _ in mod.named_buffers(recurse=False)]
        for n in names:
            table[(mpath + '.' + n) if mpath else n] = (index.get(id(mod)), mod, n)
    return table


def _construct(expr, shape, ctx, where):
    """Construct the module for expr at incoming `shape`; returns (module, out_shape)."""
    kind, key, val, meta = _split_module(expr, ctx, where)
    if kind == 'res':
        m = Residual()
        inner = shape
        for name, e in _seq_items(val, where):
            child, inner = _construct(e, inner, ctx, _join(where, name))
            m.add_module(name, child)
    elif kind == 'res2':
        body, out = _construct(val['body'], shape, ctx, _join(where, 'body'))
        short, _ = _construct(val['shortcut'], shape, ctx, _join(where, 'shortcut'))
        m = ResidualBS(body, short)
        shape = out
    elif kind == 'seq':
        m = nn.Sequential()
        for name, e in _seq_items(val, where):
            child, shape = _construct(e, shape, ctx, _join(where, name))
            m.add_module(name, child)
    elif kind == 'repeat':
        m = nn.Sequential()
        for name, e in _repeat_items(val, where):
            child, shape = _construct(e, shape, ctx, _join(where, name))
            m.add_module(name, child)
    elif kind == 'layer':
        args = _layer_args(key, val, where)
        out = _layer_shape(key, args, shape, where)
        tie = args.get('weight')
        index = len(ctx.leaves)
        if tie is not None and tie[1]:
            # {tied: PATH, transpose: true}: a TiedLinear, which draws its bias only
            owner = _tied_owner(tie[0], index, ctx, where, (shape[-1], args['out']), True)
            m = TiedLinear(shape[-1], args['out'], args['bias'], owner, tie[0])
        else:
            m = _make_layer(key, args, shape)
            if tie is not None:
                # constructed with its own weight (drawn, then discarded), as
                # after `decoder.weight = encoder.weight`
                owner = _tied_owner(tie[0], index, ctx, where, tuple(m.weight.shape), False)
                if owner is not None:
                    m.weight = owner.weight
        if tie is not None:
            m.nnspec_tied = tie[0]
        ctx.leaves.append(m)
        ctx.path_of[id(m)] = _model_path(where)
        if any(True for _ in m.parameters(recurse=False)):
            ctx.families.add('default')
        if key == 'embedding':
            ctx.families.add('normal')   # its default is normal_(weight)
        shape = out
    elif kind == 'block':
        m, shape = _construct(ctx.blocks[key], shape, ctx, where)
    elif kind == 'ref':
        if val not in ctx.shared_inst:
            raise SpecError('%s: ref: %s is used before it is constructed (a shared module '
                            'may only refer to shared modules declared before it)' % (where, val))
        if ctx.shared_in.get(val) != shape:
            raise SpecError('%s: shared module %s used with incoming shape %s, expected %s'
                            % (where, val, shape, ctx.shared_in.get(val)))
        m = ctx.shared_inst[val]
        shape = list(ctx.shared_out[val])
    else:
        raise AssertionError(kind)
    if 'init' in meta:
        apply_rules(m, meta['init'], ctx, where)
    if meta.get('frozen', False):
        m.requires_grad_(False)
    return m, shape


# --------------------------------------------------------------------------
# Initialization (SPEC 1.4)

INIT_NAMES = ('default', 'zeros', 'ones', 'constant', 'uniform', 'normal',
              'xavier_uniform', 'xavier_normal', 'kaiming_uniform', 'kaiming_normal',
              'trunc_normal', 'mixture', 'custom')
UNIFORM_FAMILY = frozenset(['default', 'zeros', 'ones', 'constant', 'uniform',
                            'xavier_uniform', 'kaiming_uniform'])
NORMAL_FAMILY = frozenset(['normal', 'xavier_normal', 'kaiming_normal', 'trunc_normal'])
UNSUPPORTED = frozenset(['mixture', 'custom'])


def _parse_init(v, where):
    """Return (name, args dict, zero_abs_below or None)."""
    zab = None
    if isinstance(v, str):
        name, arg = v, None
    elif isinstance(v, dict):
        keys = [k for k in v if k != 'zero_abs_below']
        if len(keys) != 1:
            raise SpecError('%s: an initializer mapping needs exactly one initializer key, '
                            'got %s' % (where, keys))
        name, arg = keys[0], v[keys[0]]
        if 'zero_abs_below' in v:
            zab = _num(v['zero_abs_below'], where + ': zero_abs_below')
    else:
        raise SpecError('%s: expected an initializer, got %r' % (where, v))
    if name not in INIT_NAMES:
        raise SpecError('%s: unknown initializer %r' % (where, name))

    def named(arg, defaults, positional=None, scalar=None):
        out = dict(defaults)
        if arg is None:
            return out
        if isinstance(arg, dict):
            for k, x in arg.items():
                if k not in defaults:
                    raise SpecError('%s: unknown argument %r of %s (known: %s)'
                                    % (where, k, name, ', '.join(defaults)))
                out[k] = x
            return out
        if isinstance(arg, list) and positional:
            if len(arg) != len(positional):
                raise SpecError('%s: %s expects [%s]' % (where, name, ', '.join(positional)))
            for k, x in zip(positional, arg):
                out[k] = x
            return out
        if scalar is not None and not isinstance(arg, (list, dict)):
            out[scalar] = arg
            return out
        raise SpecError('%s: bad arguments for %s: %r' % (where, name, arg))

    if name in ('default', 'zeros', 'ones'):
        # `{zeros: {}}` is the bare name's mapping form (for zero_abs_below)
        if arg is not None and arg != {}:
            raise SpecError('%s: %s takes no arguments' % (where, name))
        args = {}
    elif name == 'constant':
        if arg is None:
            raise SpecError('%s: constant needs a value' % where)
        args = {'val': _num(arg, where + ': constant')}
    elif name == 'uniform':
        args = named(arg, {'a': 0.0, 'b': 1.0}, ['a', 'b'])
        args = {k: _num(x, where + ': uniform ' + k) for k, x in args.items()}
        if args['a'] > args['b']:
            raise SpecError('%s: uniform needs a <= b' % where)
    elif name == 'normal':
        args = named(arg, {'mean': 0.0, 'std': 1.0}, ['mean', 'std'])
        args = {k: _num(x, where + ': normal ' + k) for k, x in args.items()}
        if args['std'] < 0:
            raise SpecError('%s: normal std must be >= 0' % where)
    elif name in ('xavier_uniform', 'xavier_normal'):
        args = named(arg, {'gain': 1.0}, None, 'gain')
        args = {'gain': _num(args['gain'], where + ': gain')}
    elif name in ('kaiming_uniform', 'kaiming_normal'):
        args = named(arg, {'a': 0, 'mode': 'fan_in', 'nonlinearity': 'leaky_relu'})
        args['a'] = _num(args['a'], where + ': a')
        if args['mode'] not in ('fan_in', 'fan_out'):
            raise SpecError('%s: mode must be fan_in or fan_out' % where)
        if args['nonlinearity'] not in ('linear', 'conv1d', 'conv2d', 'conv3d',
                                        'conv_transpose1d', 'conv_transpose2d',
                                        'conv_transpose3d', 'sigmoid', 'tanh', 'relu',
                                        'leaky_relu', 'selu'):
            raise SpecError('%s: unknown nonlinearity %r' % (where, args['nonlinearity']))
    elif name == 'trunc_normal':
        args = named(arg, {'mean': 0.0, 'std': 1.0, 'a': -2.0, 'b': 2.0},
                     ['mean', 'std', 'a', 'b'])
        args = {k: _num(x, where + ': trunc_normal ' + k) for k, x in args.items()}
        if args['std'] < 0:
            raise SpecError('%s: trunc_normal std must be >= 0' % where)
    else:  # mixture, custom: only minimal checks, torch cannot run them
        args = {'raw': arg}
    return name, args, zab


def _default_init(module, pname, p, where):
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        if pname == 'weight':
            tinit.kaiming_uniform_(p, a=math.sqrt(5))
            return
        if pname == 'bias':
            fan_in, _ = tinit._calculate_fan_in_and_fan_out(module.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            tinit.uniform_(p, -bound, bound)
            return
    if isinstance(module, TiedLinear) and pname == 'bias':
        bound = 1 / math.sqrt(module.in_features)
        tinit.uniform_(p, -bound, bound)
        return
    if isinstance(module, nn.RNNBase):
        # RNNBase.reset_parameters: every parameter U(+-1/sqrt(hidden))
        stdv = 1.0 / math.sqrt(module.hidden_size)
        tinit.uniform_(p, -stdv, stdv)
        return
    if isinstance(module, nn.Embedding) and pname == 'weight':
        # Embedding.reset_parameters: normal_, then the padding_idx row zeroed
        tinit.normal_(p)
        if module.padding_idx is not None:
            p[module.padding_idx].fill_(0)
        return
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        if pname == 'weight':
            tinit.ones_(p)
            return
        if pname == 'bias':
            tinit.zeros_(p)
            return
    raise SpecError('%s: no default initializer for %s.%s'
                    % (where, type(module).__name__, pname))


def init_param(module, pname, p, init_value, ctx, where):
    name, args, zab = _parse_init(init_value, where)
    ctx.families.add(name)
    if name in UNSUPPORTED:
        if ctx.strict_init:
            raise UnsupportedInit('%s: initializer %s has no torch equivalent' % (where, name))
        ctx.unsupported.append('%s: %s' % (where, name))
        return
    with torch.no_grad():
        if name == 'default':
            _default_init(module, pname, p, where)
        elif name == 'zeros':
            tinit.zeros_(p)
        elif name == 'ones':
            tinit.ones_(p)
        elif name == 'constant':
            tinit.constant_(p, args['val'])
        elif name == 'uniform':
            tinit.uniform_(p, args['a'], args['b'])
        elif name == 'normal':
            tinit.normal_(p, args['mean'], args['std'])
        elif name == 'xavier_uniform':
            tinit.xavier_uniform_(p, gain=args['gain'])
        elif name == 'xavier_normal':
            tinit.xavier_normal_(p, gain=args['gain'])
        elif name == 'kaiming_uniform':
            tinit.kaiming_uniform_(p, a=args['a'], mode=args['mode'],
                                   nonlinearity=args['nonlinearity'])
        elif name == 'kaiming_normal':
            tinit.kaiming_normal_(p, a=args['a'], mode=args['mode'],
                                  nonlinearity=args['nonlinearity'])
        elif name == 'trunc_normal':
            tinit.trunc_normal_(p, mean=args['mean'], std=args['std'],
                                a=args['a'], b=args['b'])
        else:
            raise AssertionError(name)
        if zab is not None:
            # the seed chapter's  w *= w.abs() >= t  (keeps -0.0 for small negatives)
            p.mul_(p.abs() >= zab)


def apply_rules(module, rules, ctx, where):
    """Apply a list of init rules to `module` (SPEC 1.4)."""
    if not isinstance(rules, list):
        raise SpecError('%s: init: expects a list of rules' % where)
    for ri, rule in enumerate(rules):
        rwhere = '%s: init[%d]' % (where or 'model', ri)
        if not isinstance(rule, dict):
            raise SpecError('%s: a rule must be a mapping' % rwhere)
        at = rule.get('at', None)
        lfilter = rule.get('layer', None)
        keys = [k for k in rule if k not in ('at', 'layer')]
        if not keys:
            raise SpecError('%s: the rule names no parameter' % rwhere)
        for k in keys:
            if not isinstance(k, str):
                raise SpecError('%s: bad parameter key %r' % (rwhere, k))
            _parse_init(rule[k], rwhere + '.' + k)  # validate before drawing anything
        cls = _type_class(lfilter) if lfilter is not None else None
        target = module
        if at is not None:
            at = str(at) if not isinstance(at, bool) else at
            if not isinstance(at, str):
                raise SpecError('%s: at: must be a path string' % rwhere)
            if at != '':
                try:
                    target = module.get_submodule(at)
                except AttributeError:
                    raise SpecError('%s: at: %r is not a module path under %s'
                                    % (rwhere, at, where or 'the model'))
        count = [0]

        def fn(m):
            if cls is not None and type(m) not in cls:
                return
            for k in keys:
                tied = getattr(m, 'nnspec_tied', None)
                if k == 'weight' and tied is not None:
                    raise SpecError('%s: this rule initializes the weight of %s, which is borrowed '
                                    'from %s ({tied: %s}): initialize it where it is declared'
                                    % (rwhere, ctx.path_of.get(id(m), '?'), tied, tied))
                p = m._parameters.get(k)
                if p is None:
                    continue
                init_param(m, k, p, rule[k], ctx, '%s (%s)' % (rwhere, k))
                count[0] += 1

        target.apply(fn)
        if count[0] == 0:
            raise SpecError('%s: the rule matches no parameter' % rwhere)


# --------------------------------------------------------------------------
# Training (SPEC 1.5)

def _train(spec_train):
    if not isinstance(spec_train, dict):
        raise SpecError('train: expects a mapping')
    for k in spec_train:
        if k not in ('loss', 'optimizer'):
            raise SpecError('train: unknown key %r (loss, optimizer)' % k)
    lname = spec_train.get('loss')
    if lname == 'mse':
        loss = nn.MSELoss()
    elif lname == 'cross_entropy':
        loss = nn.CrossEntropyLoss()
    else:
        raise SpecError('train: loss must be mse or cross_entropy, got %r' % lname)
    opt = spec_train.get('optimizer')
    if not isinstance(opt, dict) or len(opt) != 1:
        raise SpecError('train: optimizer must be {sgd: {...}} or {adam: {...}}')
    oname, oargs = list(opt.items())[0]
    oargs = oargs or {}
    if not isinstance(oargs, dict):
        raise SpecError('train: optimizer arguments must be a mapping')
    if oname == 'sgd':
        allowed = {'lr': None, 'momentum': 0.0, 'dampening': 0.0, 'nesterov': False,
                   'weight_decay': 0.0}
    elif oname == 'adam':
        allowed = {'lr': 0.001, 'betas': [0.9, 0.999], 'eps': 1e-8, 'weight_decay': 0.0,
                   'amsgrad': False}
    else:
        raise SpecError('train: unknown optimizer %r (sgd, adam)' % oname)
    a = dict(allowed)
    for k, v in oargs.items():
        if k not in allowed:
            raise SpecError('train: unknown %s argument %r (%s)'
                            % (oname, k, ', '.join(allowed)))
        a[k] = v
    if a['lr'] is None:
        raise SpecError('train: sgd needs lr')
    for k in ('lr', 'momentum', 'dampening', 'weight_decay', 'eps'):
        if k in a:
            a[k] = _num(a[k], 'train: ' + k)
    for k in ('nesterov', 'amsgrad'):
        if k in a:
            _bool(a[k], 'train: ' + k)
    if oname == 'sgd':
        def make(params):
            return torch.optim.SGD(params, lr=a['lr'], momentum=a['momentum'],
                                   dampening=a['dampening'], weight_decay=a['weight_decay'],
                                   nesterov=a['nesterov'])
    else:
        betas = a['betas']
        if not (isinstance(betas, list) and len(betas) == 2):
            raise SpecError('train: adam betas must be [b1, b2]')
        betas = (_num(betas[0], 'train: betas'), _num(betas[1], 'train: betas'))

        def make(params):
            return torch.optim.Adam(params, lr=a['lr'], betas=betas, eps=a['eps'],
                                    weight_decay=a['weight_decay'], amsgrad=a['amsgrad'])
    return lname, loss, make


# --------------------------------------------------------------------------
# build()

class Built(object):
    pass


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


def build(spec_path, seed=None, allow_unsupported_init=False):
    """Build the torch model described by the spec file at spec_path."""
    if torch is None:
        raise NNSpecError('torch is not importable by %s' % sys.executable)
    with open(spec_path, 'r') as f:
        text = f.read()
    spec = load_spec_text(text, spec_path)
    stem = os.path.splitext(os.path.basename(spec_path))[0]
    return build_from_spec(spec, stem, seed, allow_unsupported_init)


def _construct_all(spec, shared, in_shape, out_shape, ctx):
    """Construct: shared modules first, in declaration order, then the
    model, then the top-level init: rules."""
    for k in shared:
        m, out = _construct(shared[k], _same_kind(ctx.shared_in[k], ctx.shared_in[k]), ctx,
                            'shared.' + k)
        assert out == ctx.shared_out[k], (k, out, ctx.shared_out[k])
        ctx.shared_inst[k] = m
    model, out2 = _construct(spec['model'], _same_kind(in_shape, _IntShape() if ctx.input_int
                                                        else []), ctx, 'model')
    assert out2 == out_shape
    if 'init' in spec:
        apply_rules(model, spec['init'], ctx, '')
    return model


def build_from_spec(spec, default_name='net', seed=None, allow_unsupported_init=False):
    for k in spec:
        if k not in TOP_KEYS:
            raise SpecError('unknown top-level key %r' % (k,))
    if spec.get('nngen') != 1 or isinstance(spec.get('nngen'), bool):
        raise SpecError('nngen: 1 is required')
    name = spec.get('name', default_name)
    if not isinstance(name, str) or not _IDENT_RE.match(name):
        raise SpecError('name: must be a C identifier, got %r' % (name,))
    inp = spec.get('input')
    if _is_int(inp):  # `input: 4` is `[4]` (docs/language.md, top-level keys)
        inp = [inp]
    if not isinstance(inp, list) or not inp:
        raise SpecError('input: expects a list of sizes')
    inp = [_int(s, 'input', 1) for s in inp]
    input_dtype = spec.get('input_dtype', 'float32')
    if input_dtype not in INPUT_DTYPES:
        raise SpecError('input_dtype: must be float32 or int32, got %r' % (input_dtype,))
    batch = _int(spec.get('batch', 1), 'batch', 1)
    if 'seed' in spec:
        _int(spec['seed'], 'seed', 0)
    if 'model' not in spec:
        raise SpecError('model: is required')
    for sect in ('blocks', 'shared'):
        d = spec.get(sect)
        if d is None:
            continue
        if not isinstance(d, dict):
            raise SpecError('%s: expects a mapping' % sect)
        for k in d:
            if not isinstance(k, str) or not _IDENT_RE.match(k):
                raise SpecError('%s: %r is not an identifier' % (sect, k))
            if k in LAYERS or k in STRUCT_KEYS or k in META_KEYS:
                raise SpecError('%s: %r shadows a layer type or keyword' % (sect, k))
    blocks = spec.get('blocks') or {}
    shared = spec.get('shared') or {}
    for k in shared:
        if k in blocks:
            raise SpecError('shared: %r is also a block name' % k)

    ctx = _Ctx(spec)
    ctx.strict_init = not allow_unsupported_init
    in_shape = [batch] + inp
    # shapes first (incoming shape of each shared module = its first use);
    # the int32 input is tagged until an embedding takes it
    out_shape = _plan(spec['model'], _same_kind(in_shape, _IntShape() if ctx.input_int else []),
                      ctx, 'model')
    if isinstance(out_shape, _IntShape):
        raise SpecError('model: input_dtype: int32 needs an embedding as the first layer, but '
                        'the int32 indices reach the output')
    out_shape = list(out_shape)
    for k in shared:
        if k not in ctx.shared_in:
            raise SpecError('shared: %s is never used by the model, so its input shape '
                            'is unknown' % k)

    if seed is None and 'seed' in spec:
        seed = spec['seed']
    if ctx.has_ties:
        # tied weights (SPEC 1.2.5): a first construction, ties not made,
        # tells which layer (in construction order) holds each state_dict
        # key; the generator is put back as it was
        rng = torch.get_rng_state()
        ctx1 = _Ctx(spec)
        ctx1.strict_init = False
        ctx1.shared_in, ctx1.shared_out = ctx.shared_in, ctx.shared_out
        try:
            model1 = _construct_all(spec, shared, in_shape, out_shape, ctx1)
        finally:
            torch.set_rng_state(rng)
        ctx.tie_info = _tie_table(model1, ctx1)
    if seed is not None:
        torch.manual_seed(seed)
    model = _construct_all(spec, shared, in_shape, out_shape, ctx)

    b = Built()
    b.model = model
    b.spec = spec
    b.name = name
    b.batch = batch
    b.input_shape = in_shape
    b.output_shape = out_shape
    b.input_dtype = input_dtype
    b.in_size = _prod(in_shape[1:])       # floats, or int32 indices, per example
    b.out_size = _prod(out_shape[1:])
    b.seed = seed
    b.unsupported = ctx.unsupported
    b.init_families = set(ctx.families)
    if 'train' in spec:
        b.loss_name, b.loss, b.make_optimizer = _train(spec['train'])
    else:
        b.loss_name, b.loss, b.make_optimizer = None, None, None
    # cross_entropy: class labels per example (T of an [N, T, V] output) and V
    b.targets = _prod(out_shape[1:-1]) if len(out_shape) > 2 else 1
    b.classes = out_shape[-1]
    if b.loss_name == 'cross_entropy' and len(out_shape) > 2:
        b.loss = SeqCrossEntropyLoss()
    return b


def init_exactness(built):
    """'exact' if all initializers are uniform-family (bit-identical expected),
    'approx' if some are normal-family (1e-6 relative), 'unsupported' if the
    spec uses mixture or custom."""
    fam = built.init_families
    if fam & UNSUPPORTED:
        return 'unsupported'
    if fam & NORMAL_FAMILY:
        return 'approx'
    return 'exact'


# --------------------------------------------------------------------------
# Text outputs

def params_text(model):
    """`nngen --params` format: one line per state_dict key, "(shared with
    FIRST)" on an alias; the first line of a weight that a TiedLinear uses
    transposed (it is no key of the TiedLinear) ends in "(used transposed by
    PATH, ...)", the TiedLinear's module paths in state_dict order."""
    users = {}
    for mpath, mod in model.named_modules(remove_duplicate=False):
        if isinstance(mod, TiedLinear) and mod.tied_owner is not None:
            users.setdefault(id(mod.tied_weight), []).append(mpath or '(root)')
    lines = []
    first = {}
    for key, t in model.state_dict(keep_vars=True).items():
        shape = '[' + ', '.join(str(int(s)) for s in t.shape) + ']'
        line = '%s %s' % (key, shape)
        if id(t) in first:
            line += ' (shared with %s)' % first[id(t)]
        else:
            first[id(t)] = key
            if id(t) in users:
                line += ' (used transposed by %s)' % ', '.join(users[id(t)])
        lines.append(line + '\n')
    return ''.join(lines)


def print_text(model):
    return str(model) + '\n'


def format_float(x):
    """C99 printf("%a", (double)x) as glibc writes it."""
    x = float(x)
    if math.isnan(x):
        return '-nan' if math.copysign(1.0, x) < 0 else 'nan'
    if math.isinf(x):
        return '-inf' if x < 0 else 'inf'
    h = x.hex()                       # '-0x1.8000000000000p+1', '0x0.0p+0'
    sign = ''
    if h.startswith('-'):
        sign, h = '-', h[1:]
    mant, exp = h[2:].split('p')
    if '.' in mant:
        ip, fp = mant.split('.')
        fp = fp.rstrip('0')
    else:
        ip, fp = mant, ''
    if ip == '0' and not fp:
        exp = '+0'
    return '%s0x%s%s%sp%s' % (sign, ip, '.' if fp else '', fp, exp)


def parse_float(s):
    """One value as C strtof reads it (hex or decimal, inf, nan); ValueError
    if it is not one, or if a finite literal overflows float."""
    low = s.lower()
    body = low.lstrip('+-')
    if s != s.strip() or not s:
        raise ValueError(s)
    if body in ('nan', 'inf', 'infinity'):
        v = math.nan if body == 'nan' else math.inf
        return -v if low.startswith('-') else v
    if body.startswith('0x'):
        v = float.fromhex(low)
    elif re.match(r'^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[-+]?[0-9]+)?$', low):
        v = float(low)
    else:
        raise ValueError(s)
    try:
        v = struct.unpack('<f', struct.pack('<f', v))[0]   # rounded like strtof
    except OverflowError:
        v = math.inf
    if math.isinf(v):
        raise ValueError('%s overflows float' % s)
    return v


def f32_bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]


def write_dump(f, tensors):
    """tensors: iterable of (name, tensor or None or sequence of floats)."""
    for name, t in tensors:
        if t is None:
            f.write('%s none\n' % name)
            continue
        if torch is not None and isinstance(t, torch.Tensor):
            vals = t.detach().to(torch.float32).reshape(-1).tolist()
        else:
            vals = [float(v) for v in t]
        f.write('%s %d\n' % (name, len(vals)))
        f.write(''.join(format_float(v) + '\n' for v in vals))


def dump_text(tensors):
    import io
    buf = io.StringIO()
    write_dump(buf, tensors)
    return buf.getvalue()


class DumpError(Exception):
    pass


def parse_dump(text, where='<dump>'):
    """Parse dump text into an ordered list of (name, [floats] or None)."""
    out = []
    seen = set()
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    else:
        if lines:
            raise DumpError('%s: missing final newline' % where)
    i = 0
    while i < len(lines):
        hdr = lines[i].split(' ')
        if len(hdr) != 2 or not hdr[0]:
            raise DumpError('%s:%d: expected "NAME NUMEL", got %r' % (where, i + 1, lines[i]))
        name, n = hdr
        if name in seen:
            raise DumpError('%s:%d: duplicate tensor %s' % (where, i + 1, name))
        seen.add(name)
        i += 1
        if n == 'none':
            out.append((name, None))
            continue
        if not re.match(r'^(0|[1-9][0-9]*)$', n):
            raise DumpError('%s:%d: bad element count %r' % (where, i, n))
        n = int(n)
        if i + n > len(lines):
            raise DumpError('%s: tensor %s: expected %d values, file ends after %d'
                            % (where, name, n, len(lines) - i))
        vals = []
        for j in range(n):
            s = lines[i + j]
            try:
                if s != s.strip() or not s:
                    raise ValueError
                vals.append(parse_float(s))
            except ValueError:
                raise DumpError('%s:%d: bad float %r' % (where, i + j + 1, s))
        out.append((name, vals))
        i += n
    return out


def load_dump(path):
    with open(path) as f:
        return parse_dump(f.read(), path)


# --------------------------------------------------------------------------
# CLI

def _main(argv):
    usage = ('usage: nnspec.py print SPEC | params SPEC | info SPEC | dump SPEC SEED\n')
    if len(argv) < 3 or argv[1] not in ('print', 'params', 'dump', 'info'):
        sys.stderr.write(usage)
        return 2
    cmd, path = argv[1], argv[2]
    if (cmd == 'dump') != (len(argv) == 4) or len(argv) > 4:
        sys.stderr.write(usage)
        return 2
    try:
        if cmd == 'dump':
            if not re.match(r'^[0-9]+$', argv[3]) or int(argv[3]) >= 2 ** 64:
                sys.stderr.write('nnspec: bad seed %r (decimal, 0 .. 2^64-1)\n' % argv[3])
                return 2
            seed = int(argv[3])
            b = build(path, seed=seed)
            write_dump(sys.stdout, list(b.model.named_parameters()))
            return 0
        b = build(path, allow_unsupported_init=True)
        if cmd == 'print':
            sys.stdout.write(print_text(b.model))
        elif cmd == 'params':
            sys.stdout.write(params_text(b.model))
        else:
            sys.stdout.write('batch %d\nin %d\nout %d\n' % (b.batch, b.in_size, b.out_size))
            for n, p in b.model.named_parameters():
                sys.stdout.write('param %s %d\n' % (n, p.numel()))
        return 0
    except UnsupportedInit as e:
        sys.stderr.write('nnspec: init not applicable: %s\n' % e)
        return 3
    except SpecError as e:
        sys.stderr.write('nnspec: error: %s\n' % e)
        return 1
    except NNSpecError as e:
        sys.stderr.write('nnspec: %s\n' % e)
        return 1
    except (IOError, OSError) as e:
        sys.stderr.write('nnspec: %s\n' % e)
        return 1


if __name__ == '__main__':
    if torch is None and os.path.exists('/usr/bin/python3') and \
            os.path.realpath(sys.executable) != os.path.realpath('/usr/bin/python3') and \
            not os.environ.get('NNSPEC_REEXEC'):
        os.environ['NNSPEC_REEXEC'] = '1'     # the Debian python has torch
        os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
    sys.exit(_main(sys.argv))
