# tests/gen/cases.py: THE table of the gen suite's networks, one row per case.
#
# Everything else is derived from it by gen_cases.py (run by meson):
#   - the spec NAME.yaml of every generated case (build dir, --spec NAME);
#   - the list of networks meson compiles with nngen (--list);
#   - fd_cases.h, #included by test_fd.c: the #includes, GNET()/GTRAIN_*()
#     lines, the `rop` kink references and the cases[] / tcases[] tables
#     (--fd-header);
#   - gen-strict's --expect-blas / --expect-loops lists (--expect blas|loops).
# Every case is a finite-difference check in gen-fd and is compiled by
# gen-strict (4 variants x 2 flag sets x gcc/clang).
#
# HOW TO ADD A CASE
#   One op in a context (the usual case, e.g. a new pointwise op `silu`,
#   torch semantics, no kink, once the compiler knows it): one `case(...)`
#   row per context, here alone, after a loop-size and after a BLAS-size
#   linear layer:
#       case('act_silu',    'silu', [2, 5], 3,  'alone', False, None),
#       case('fuse_s_silu', 'silu', [6],    4,  'loop',  False, 'loops'),
#       case('fuse_b_silu', 'silu', [64],   16, 'blas',  False, 'blas'),
#   and nothing else: no spec file, no edit of meson.build or test_fd.c (the
#   table is a configure input: the next ninja reconfigures by itself).
#   The columns of case(NAME, OP, INPUT, BATCH, CONTEXT, KINKS, EXPECT):
#     NAME     the case's name: a C identifier, unique; also the spec's
#              `name:`, so the prefix of every generated symbol.
#     OP       the op with its arguments, as one entry of a spec's `model:`
#              list in YAML flow style: 'relu', '{leaky_relu: 0.2}',
#              '{linear: {out: 4, bias: false}}', '{softmax: {dim: 0}}'.
#     INPUT    the spec's `input:` (the shape without the batch).
#     BATCH    the spec's `batch:`.
#     CONTEXT  where the op sits: a name from CONTEXTS below ('alone';
#              'loop': after a loop-size linear layer; 'blas': after a
#              BLAS-size one, rows * in * out >= 1024 multiply-adds, so that
#              nngen emits nn_sgemm), or a list of model entries with OP
#              where the op goes, e.g. [OP, '{linear: 5}'].
#     KINKS    True if the network has a relu / leaky_relu (an input on the
#              kink makes a difference quotient meaningless, see fdcheck.h):
#              gen-fd then gets a `rop` reference, derived from the model.
#              Must be True exactly when there is one.  The reference knows
#              linear, relu, leaky_relu, sigmoid, tanh, gelu, identity and
#              flatten; another op before the last kink is an error (a new
#              op with a kink needs a step in fdcheck.h's rop and in
#              gen_cases.py's REF_STEP first).
#     EXPECT   'blas': the generated code must call nn_sgemm; 'loops': it
#              must not (gen-strict); None: not checked.
#   An optional last column mode='eval' checks the network in eval mode
#   (batch_norm with its running statistics, dropout as the identity); the
#   default is training mode, a new instance's.
#   Anything that is not one op in a context (tied or frozen layers,
#   training specs, long chains) is a hand-written spec
#   tests/gen/specs/NAME.yaml (saying `name: NAME`) and a row
#       spec(NAME, KINKS, EXPECT)
#   where KINKS is None or the `rop` reference spelled out: space-separated
#   steps 'L:P' (linear with parameters P.weight / P.bias), 'R' (relu),
#   'K:A' (leaky_relu, slope A), 'S', 'T', 'G', 'I' (sigmoid, tanh, gelu,
#   identity / flatten), up to the last kink.  A spec with a `train:`
#   section is checked through P_train_step (tcases[]), the others through
#   P_backward (cases[]).  A file in specs/ without a row is an error.
#
#   gen-fd checks the cases in table order with the seed 100 + the case's
#   position among the plain networks (200 + position among the training
#   specs): a row inserted in the middle changes the random draws of the
#   cases after it (they pass for other draws too: checked with 17 seed
#   offsets when the table was made), appending keeps them.
#
#   An op the compiler does not know fails the build (nngen rejects the
#   generated spec: "unknown layer or block"); a malformed row fails the
#   configure (meson setup, or the reconfigure the next ninja runs) with
#   gen_cases.py's message naming the row.

OP = 'OP'  # where a context puts the case's op

CONTEXTS = {
    'alone': [OP],
    # batch 4, input [6]: 4*6*7 = 168 and 4*7*5 = 140 multiply-adds (loops);
    # relu, sigmoid, tanh and leaky_relu with a positive slope run in the
    # first linear layer's epilogue, the others after it
    'loop': ['{linear: 7}', OP, '{linear: 5}'],
    # batch 16, input [64]: 16*64*32 = 32768 and 16*32*4 = 2048 (nn_sgemm; a
    # fused activation runs as a loop after it)
    'blas': ['{linear: 32}', OP, '{linear: 4}'],
}


def case(name, op, shape, batch, context, kinks, expect, mode='train'):
    """a generated spec: OP in CONTEXT (see the header); mode 'eval': the
    network is checked after P_set_training(net, 0) (GNET_EVAL)"""
    return dict(kind='gen', name=name, op=op, shape=shape, batch=batch,
                context=context, kinks=kinks, expect=expect, mode=mode)


def spec(name, kinks, expect):
    """the hand-written spec tests/gen/specs/NAME.yaml (see the header)"""
    return dict(kind='spec', name=name, kinks=kinks, expect=expect)


NOBIAS4 = '{linear: {out: 4, bias: false}}'
NOBIAS32 = '{linear: {out: 32, bias: false}}'

CASES = [
    #    name                 op                          input     batch  context  kinks  expect
    # linear: {2-D, 3-D input} x {bias, no bias} x {loops, nn_sgemm}
    case('lin_s2',            '{linear: 4}',              [5],      3,     'alone', False, 'loops'),
    case('lin_s2_nb',         NOBIAS4,                    [5],      3,     'alone', False, 'loops'),
    case('lin_s3',            '{linear: 4}',              [3, 5],   2,     'alone', False, 'loops'),
    case('lin_s3_nb',         NOBIAS4,                    [3, 5],   2,     'alone', False, 'loops'),
    case('lin_b2',            '{linear: 32}',             [64],     16,    'alone', False, 'blas'),
    case('lin_b2_nb',         NOBIAS32,                   [64],     16,    'alone', False, 'blas'),
    case('lin_b3',            '{linear: 32}',             [5, 64],  4,     'alone', False, 'blas'),
    case('lin_b3_nb',         NOBIAS32,                   [5, 64],  4,     'alone', False, 'blas'),
    # each activation alone (op 0: its backward writes dx directly); identity
    # is a view (the output aliases the input); gelu is the erf form;
    # leaky_relu: slope > 0, < 0, 0 (relu through the leaky path), default
    case('act_relu',          'relu',                     [2, 5],   3,     'alone', True,  None),
    case('act_leaky_pos',     '{leaky_relu: 0.2}',        [2, 5],   3,     'alone', True,  None),
    case('act_leaky_neg',     '{leaky_relu: -0.5}',       [2, 5],   3,     'alone', True,  None),
    case('act_leaky_zero',    '{leaky_relu: 0}',          [2, 5],   3,     'alone', True,  None),
    case('act_leaky_def',     'leaky_relu',               [2, 5],   3,     'alone', True,  None),
    case('act_sigmoid',       'sigmoid',                  [2, 5],   3,     'alone', False, None),
    case('act_tanh',          'tanh',                     [2, 5],   3,     'alone', False, None),
    case('act_gelu',          'gelu',                     [2, 5],   3,     'alone', False, None),
    case('act_identity',      'identity',                 [2, 5],   3,     'alone', False, None),
    # flatten: [2, 3, 4] -> [2, 12] alone; first, then linear (dx is a copy of
    # the linear layer's input gradient); between two linear layers:
    # [2, 3, 4] -> [2, 3, 5] -> [2, 15] -> [2, 3]
    case('act_flatten',       'flatten',                  [3, 4],   2,     'alone', False, None),
    case('flat_first',        'flatten',                  [3, 4],   2,
         [OP, '{linear: 5}'], False, None),
    case('flat_mid',          'flatten',                  [3, 4],   2,
         ['{linear: 5}', OP, '{linear: 3}'], False, None),
    # each activation between two linear layers (fused or not), loops ...
    case('fuse_s_relu',       'relu',                     [6],      4,     'loop',  True,  'loops'),
    case('fuse_s_leaky_pos',  '{leaky_relu: 0.2}',        [6],      4,     'loop',  True,  'loops'),
    case('fuse_s_leaky_neg',  '{leaky_relu: -0.5}',       [6],      4,     'loop',  True,  'loops'),
    case('fuse_s_leaky_zero', '{leaky_relu: 0}',          [6],      4,     'loop',  True,  'loops'),
    case('fuse_s_sigmoid',    'sigmoid',                  [6],      4,     'loop',  False, 'loops'),
    case('fuse_s_tanh',       'tanh',                     [6],      4,     'loop',  False, 'loops'),
    case('fuse_s_gelu',       'gelu',                     [6],      4,     'loop',  False, 'loops'),
    case('fuse_s_identity',   'identity',                 [6],      4,     'loop',  False, 'loops'),
    # ... and nn_sgemm
    case('fuse_b_relu',       'relu',                     [64],     16,    'blas',  True,  'blas'),
    case('fuse_b_leaky_pos',  '{leaky_relu: 0.2}',        [64],     16,    'blas',  True,  'blas'),
    case('fuse_b_leaky_neg',  '{leaky_relu: -0.5}',       [64],     16,    'blas',  True,  'blas'),
    case('fuse_b_leaky_zero', '{leaky_relu: 0}',          [64],     16,    'blas',  True,  'blas'),
    case('fuse_b_sigmoid',    'sigmoid',                  [64],     16,    'blas',  False, 'blas'),
    case('fuse_b_tanh',       'tanh',                     [64],     16,    'blas',  False, 'blas'),
    case('fuse_b_gelu',       'gelu',                     [64],     16,    'blas',  False, 'blas'),
    case('fuse_b_identity',   'identity',                 [64],     16,    'blas',  False, 'blas'),
    # every activation in one deep chain, loops and nn_sgemm (hand-written)
    spec('chain_s', 'L:0 R L:2 K:0.2 L:4 S L:6 T L:8 K:-0.5 L:10 K:0.0', 'loops'),
    spec('chain_b', 'L:0 R L:2 K:0.2 L:4 S L:6 T L:8 K:-0.5 L:10 K:0.0', 'blas'),
    # softmax / log_softmax over dim 1, -1 (3-D), 1 of 3-D (strided: inner
    # size 5), 0 (across the batch); then after a linear layer (the
    # classifier head)
    case('sm_d1',             '{softmax: 1}',             [6],      3,     'alone', False, None),
    case('sm_dm1',            '{softmax: {dim: -1}}',     [4, 5],   3,     'alone', False, None),
    case('sm_d1_3d',          '{softmax: 1}',             [4, 5],   3,     'alone', False, None),
    case('sm_d0',             '{softmax: {dim: 0}}',      [6],      4,     'alone', False, None),
    case('sm_lin',            '{softmax: 1}',             [5],      3,
         ['{linear: 6}', OP], False, None),
    case('lsm_d1',            '{log_softmax: 1}',         [6],      3,     'alone', False, None),
    case('lsm_dm1',           '{log_softmax: {dim: -1}}', [4, 5],   3,     'alone', False, None),
    case('lsm_d1_3d',         '{log_softmax: 1}',         [4, 5],   3,     'alone', False, None),
    case('lsm_d0',            '{log_softmax: {dim: 0}}',  [6],      4,     'alone', False, None),
    case('lsm_lin',           '{log_softmax: 1}',         [5],      3,
         ['{linear: 6}', OP], False, None),
    # a shared layer used twice: loops with relu; nn_sgemm (beta = 1 on the
    # second use), 3-D input
    spec('tied', 'L:0 R L:2 R L:4 R', 'loops'),
    spec('tied_b', None, 'blas'),
    # frozen blocks: grads stay NULL, dx flows through them
    spec('frozen', 'L:0.0 R', None),
    spec('frozen_mid', 'L:0 T L:2.0 K:0.1', None),
    spec('frozen_shared', None, None),
    # training specs (checked through P_train_step): losses, optimizers,
    # tied / frozen layers in a step
    spec('loss_mse', None, None),
    spec('loss_ce', 'L:0 R', 'loops'),
    spec('loss_ce_adam', None, None),
    spec('train_b', 'L:0 R', 'blas'),
    spec('train_tied_b', None, 'blas'),
    spec('train_frozen', 'L:0.0 R', None),
    # residuals (both forms, nested, on the input), loops and nn_sgemm
    spec('residual', None, 'loops'),
    spec('residual_b', None, 'blas'),
    # silu (ops/silu.c): alone, after a loop linear, after an nn_sgemm linear
    case('act_silu',          'silu',                     [2, 5],   3,     'alone', False, None),
    case('fuse_s_silu',       'silu',                     [6],      4,     'loop',  False, 'loops'),
    case('fuse_b_silu',       'silu',                     [64],     16,    'blas',  False, 'blas'),
    # batch norm (ops/batch_norm.c): training mode (the batch statistics,
    # backward through them), eval mode (the running statistics: an affine
    # map), [N, C], [N, C, L] and [N, C, H, W], without affine / running stats
    case('bn1d_train',        'batch_norm1d',             [5],      4,     'loop',  False, None),
    case('bn1d_l_train',      'batch_norm1d',             [3, 4],   3,     'alone', False, None),
    case('bn1d_noaff',        '{batch_norm1d: {affine: false}}', [5], 4,   'loop',  False, None),
    case('bn1d_nostats',      '{batch_norm1d: {track_running_stats: false}}', [5], 4, 'loop',
         False, None),
    case('bn2d_train',        'batch_norm2d',             [2, 3, 3], 2,    'alone', False, None),
    case('bn1d_eval',         'batch_norm1d',             [5],      4,     'loop',  False, None,
         'eval'),
    case('bn2d_eval',         'batch_norm2d',             [2, 3, 3], 2,    'alone', False, None,
         'eval'),
    case('bn1d_nostats_eval', '{batch_norm1d: {track_running_stats: false}}', [5], 4, 'loop',
         False, None, 'eval'),
    # layer norm: one and two trailing dimensions, without affine, blas-sized
    case('ln_1',              '{layer_norm: 6}',          [6],      3,     'alone', False, None),
    case('ln_2',              '{layer_norm: [3, 4]}',     [2, 3, 4], 2,    'alone', False, None),
    case('ln_last',           '{layer_norm: 4}',          [3, 4],   2,     'alone', False, None),
    case('ln_noaff',          '{layer_norm: {shape: 7, elementwise_affine: false}}', [6], 4,
         'loop', False, None),
    case('ln_b',              '{layer_norm: 32}',         [64],     16,    'blas',  False, 'blas'),
    # dropout: FD is meaningless with a new mask per forward, so eval mode
    # (the identity) and the deterministic p = 0 and p = 1 in training mode;
    # that training-mode backward applies the forward's mask is conform's
    # check (dx and y equal torch's, zeros included)
    case('drop_eval',         'dropout',                  [6],      4,     'loop',  False, None,
         'eval'),
    case('drop_p0',           '{dropout: 0}',             [6],      4,     'loop',  False, None),
    case('drop_p1',           '{dropout: 1.0}',           [6],      4,     'loop',  False, None),
    # dropout alone: FD in eval mode here; gen-api's dropout_mask checks its
    # training mode (dx = dy * the forward's mask, scaled by 2)
    case('drop_alone',        'dropout',                  [2, 5],   3,     'alone', False, None,
         'eval'),
    # conv2d (ops/conv2d.c, loops): plain; strided, padded, dilated,
    # grouped; 'same' (uneven) without bias; first in a small LeNet-like
    # chain (parameter gradients through pooling and a classifier)
    case('conv_s',            '{conv2d: {out: 3, kernel: 3}}', [2, 5, 5], 2, 'alone', False, 'loops'),
    case('conv_args',         '{conv2d: {out: 4, kernel: [3, 2], stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2}}',
         [2, 6, 6], 2, 'alone', False, 'loops'),
    case('conv_same_nb',      '{conv2d: {out: 2, kernel: [2, 3], padding: same, bias: false}}',
         [3, 4, 5], 2, 'alone', False, 'loops'),
    case('conv_ctx',          '{conv2d: {out: 3, kernel: 3, padding: 1}}', [2, 6, 6], 2,
         [OP, 'sigmoid', '{avg_pool2d: 2}', 'flatten', '{linear: 3}'], False, 'loops'),
    # pooling (ops/pool.c).  Max pooling's difference quotient is wrong for
    # an input within the step of another in its window (a tie): these
    # rows' inputs (seeded, see above) stay away from ties
    case('maxp',              '{max_pool2d: 2}',          [2, 4, 4], 2,    'alone', False, None),
    case('maxp_args',         '{max_pool2d: {kernel: 3, stride: 2, padding: 1, dilation: [1, 2], ceil_mode: true}}',
         [1, 5, 6], 2, 'alone', False, None),
    case('maxp_ctx',          '{max_pool2d: {kernel: 2, stride: 1}}', [1, 4, 4], 2,
         ['{conv2d: {out: 2, kernel: 2}}', OP, 'flatten', '{linear: 3}'], False, None),
    case('avgp',              '{avg_pool2d: 2}',          [2, 4, 5], 2,    'alone', False, None),
    case('avgp_args',         '{avg_pool2d: {kernel: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false}}',
         [2, 5, 6], 2, 'alone', False, None),
    case('avgp_pad',          '{avg_pool2d: {kernel: [2, 3], stride: 1, padding: [1, 1]}}',
         [1, 3, 4], 2, 'alone', False, None),
    case('adapt',             '{adaptive_avg_pool2d: [2, 3]}', [2, 5, 4], 2, 'alone', False, None),
    case('adapt_ctx',         '{adaptive_avg_pool2d: 1}', [2, 5, 5], 2,
         ['{conv2d: {out: 3, kernel: 3, padding: 1}}', 'tanh', OP, 'flatten', '{linear: 2}'],
         False, None),
    # conv2d through nn_sgemm (im2col, per example and group): 8 x 64 x 36
    # and, grouped, 8 x 72 x 12 multiply-adds per product; then in context
    # (with avg_pool2d: a max_pool2d there, after a perturbed first-layer
    # weight that moves every value, met a near-tie for this seed)
    case('conv_b',            '{conv2d: {out: 8, kernel: 3, padding: 1}}', [4, 8, 8], 2,
         'alone', False, 'blas'),
    case('conv_b_grp',        '{conv2d: {out: 16, kernel: [3, 2], stride: [1, 2], padding: [1, 0], groups: 2, bias: false}}',
         [4, 12, 12], 2, 'alone', False, 'blas'),
    case('conv_b_ctx',        '{conv2d: {out: 8, kernel: 3, padding: same, dilation: 2}}', [3, 8, 8], 2,
         ['{conv2d: {out: 3, kernel: 1}}', OP, 'sigmoid', '{avg_pool2d: 2}', 'flatten', '{linear: 3}'],
         False, 'blas'),
    # a batch norm that one row gives one value per channel (refused; at the
    # end of the table: a row's index seeds its input, and the max pooling
    # cases' inputs must stay away from ties)
    spec('bn_one', None, None),
    spec('bn_one_nostats', None, None),
    # recurrent layers (SPEC 1.2.4): short sequences, through the runtime's
    # loops and, from 1024 multiply-adds per step, nn_sgemm
    case('rnn_tanh',          '{rnn: {hidden: 3, layers: 2, bidirectional: true}}', [3, 2], 2,
         'alone', False, None),
    case('rnn_relu',          '{rnn: {hidden: 4, nonlinearity: relu, bias: false}}', [4, 3], 2,
         'alone', False, None),
    case('lstm_2',            '{lstm: {hidden: 3, layers: 2}}', [4, 2], 2, 'alone', False, None),
    case('lstm_bi',           '{lstm: {hidden: 3, bidirectional: true, bias: false}}', [3, 3], 2,
         'alone', False, None),
    case('gru_bi',            '{gru: {hidden: 3, layers: 2, bidirectional: true}}', [3, 2], 2,
         'alone', False, None),
    # (the runtime makes the products: the generated code names no nn_sgemm)
    case('lstm_b',            '{lstm: 16}', [3, 5], 2, 'alone', False, None),
    case('gru_last',          '{gru: 4}', [4, 3], 2, [OP, 'last_step', '{linear: 2}'], False,
         None),
    case('rnn_eval',          '{lstm: {hidden: 3, layers: 2, dropout: 0.5}}', [3, 2], 2,
         'alone', False, None, mode='eval'),
    # tied weights (SPEC 1.2.5)
    spec('tied_tr', None, None),
    spec('tied_lm', None, None),
]
