#!/usr/bin/python3
"""Draws the nngen run against the torch run, per epoch: the mean training
loss and the test accuracy (matplotlib; Debian: python3-matplotlib).

usage: plot.py OUT.png LABEL:NNGEN_CSV:TORCH_CSV [LABEL:NNGEN_CSV:TORCH_CSV ...]
       plot.py --table LABEL:NNGEN_CSV:TORCH_CSV ...   (a Markdown table of the runs)
       plot.py --diverge LABEL:NNGEN_STEPS:TORCH_STEPS:TORCH1_STEPS ...
           (from --steps-csv files: the first step whose loss differs by more
           than 1e-4 and 1e-2, nngen against torch, and torch on 1 thread
           against torch on 2, over the steps all three have)

Each CSV is what `fashion --csv` or `torch_fashion.py --csv` writes
(epoch,loss,train_acc,test_acc,seconds).  One colour per network; nngen
solid with dots, torch dashed with crosses (the two lie on each other when
the runs are the same).
"""
import sys


def read(path):
    with open(path) as f:
        rows = [l.strip().split(',') for l in f if l.strip()]
    head, rows = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(head)}
    return ([int(r[col['epoch']]) for r in rows], [float(r[col['loss']]) for r in rows],
            [float(r[col['test_acc']]) for r in rows], [float(r[col['seconds']]) for r in rows])


def table(args):
    """Per network and side: the last epoch's loss and accuracies, the mean
    epoch time (training and test), and the speedup of nngen's epoch."""
    print('| network | run | loss | train acc | test acc | s / epoch | speedup |')
    print('|---|---|---|---|---|---|---|')
    for arg in args:
        label, c_csv, t_csv = arg.split(':')
        res = {}
        for who, path in (('nngen', c_csv), ('torch', t_csv)):
            with open(path) as f:
                rows = [l.strip().split(',') for l in f if l.strip()][1:]
            last = rows[-1]
            res[who] = (float(last[1]), float(last[2]), float(last[3]),
                        sum(float(r[4]) for r in rows) / len(rows))
        for who in ('nngen', 'torch'):
            loss, tr, te, sec = res[who]
            speed = '%.2fx' % (res['torch'][3] / sec) if who == 'nngen' else ''
            print('| %s | %s | %.4f | %.4f | %.4f | %.2f | %s |' % (
                label if who == 'nngen' else '', who, loss, tr, te, sec, speed))


def diverge(args):
    def steps(path):
        with open(path) as f:
            return [float(l.split(',')[1]) for l in f.read().split('\n')[1:] if l]

    def first(a, b, tol):
        return next((i + 1 for i in range(min(len(a), len(b))) if abs(a[i] - b[i]) > tol), None)

    print('| network | steps compared | nngen vs torch: first step off by > 1e-4 | > 1e-2 '
          '| torch 1 thread vs 2: > 1e-4 | > 1e-2 |')
    print('|---|---|---|---|---|---|')
    for arg in args:
        label, c, t, t1 = arg.split(':')
        c, t, t1 = steps(c), steps(t), steps(t1)
        n = min(len(c), len(t), len(t1))
        cells = [first(c[:n], t[:n], 1e-4), first(c[:n], t[:n], 1e-2),
                 first(t1[:n], t[:n], 1e-4), first(t1[:n], t[:n], 1e-2)]
        print('| %s | %d | %s |' % (label, n, ' | '.join('none' if x is None else str(x)
                                                          for x in cells)))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == '--diverge':
        diverge(sys.argv[2:])
        return
    if len(sys.argv) >= 3 and sys.argv[1] == '--table':
        table(sys.argv[2:])
        return
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out = sys.argv[1]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ['tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple']
    for k, arg in enumerate(sys.argv[2:]):
        label, c_csv, t_csv = arg.split(':')
        color = colors[k % len(colors)]
        for path, who, style, marker in ((c_csv, 'nngen', '-', 'o'), (t_csv, 'torch', '--', 'x')):
            ep, loss, acc, sec = read(path)
            name = '%s, %s' % (label, who)
            ax_loss.plot(ep, loss, style, color=color, marker=marker, markersize=5, label=name)
            ax_acc.plot(ep, acc, style, color=color, marker=marker, markersize=5, label=name)
    ax_loss.set_title('mean training loss')
    ax_acc.set_title('test accuracy')
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel('epoch')
        ax.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc='lower right')
    fig.suptitle('Fashion-MNIST: nngen (C) and PyTorch 1.13, the same runs')
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print('wrote %s' % out)


if __name__ == '__main__':
    main()
