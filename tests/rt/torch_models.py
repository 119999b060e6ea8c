"""PyTorch twins of the C fixtures in fixtures.h, and helpers shared by the
runtime's Python tests.  Always run with /usr/bin/python3 (the interpreter
that has torch)."""

import os
import sys


def require_torch():
    """Import torch and numpy, or exit 77 (meson: skipped) with a one-line
    reason; exit 1 instead when NNGEN_REQUIRE_TORCH=1."""
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken installation
        reason = "torch/numpy not importable by %s: %s" % (sys.executable, e)
        if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
            print("FAIL: " + reason + " (NNGEN_REQUIRE_TORCH=1)")
            sys.exit(1)
        print("SKIP: " + reason)
        sys.exit(77)


def _classes():
    import torch
    from torch import nn

    class Scale(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n
            self.weight = nn.Parameter(torch.ones(n))
            self.register_buffer("running_mean", torch.zeros(n))

        def extra_repr(self):
            return "num_features=%d" % self.n

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)
            self.empty = nn.Sequential()

        def extra_repr(self):
            return "tag=1\nmode=fast"

    return Scale, Wrap


def build(name, seed=0):
    """The torch network matching fixture `name`, default-initialized after
    torch.manual_seed(seed)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if name == "mlp":
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    if name == "rgnet":
        def block1():
            return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

        def block2():
            net = nn.Sequential()
            for i in range(4):
                net.add_module(f"block{i}", block1())
            return net

        return nn.Sequential(block2(), nn.Linear(4, 1))
    if name == "tied":
        shared = nn.Linear(8, 8)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared,
                             nn.ReLU(), nn.Linear(8, 1))
    if name == "misc":
        Scale, Wrap = _classes()
        first = nn.Linear(3, 2)
        for p in first.parameters():
            p.requires_grad_(False)
        net = nn.Sequential(first, Scale(2), Wrap())
        with torch.no_grad():
            net[1].weight.uniform_(-2, 2)
            net[1].running_mean.uniform_(-1, 1)
        return net
    if name == "bn":
        net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2),
                            nn.BatchNorm1d(2))
        with torch.no_grad():
            # affine parameters off their defaults, and running statistics
            # (num_batches_tracked = 1 .. 4) from training-mode passes
            for bn in (net[1], net[4]):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
            net.train()
            for _ in range(seed % 4 + 1):
                net(torch.randn(8, 4) * 3 + 1)
        return net
    if name == "tiedbn":
        shared = nn.BatchNorm1d(3)
        net = nn.Sequential(nn.Linear(2, 3), shared, nn.ReLU(), shared)
        with torch.no_grad():
            shared.weight.uniform_(0.5, 1.5)
            shared.bias.uniform_(-0.5, 0.5)
            net.train()
            for _ in range(seed % 3 + 1):      # two updates a pass: 2, 4 or 6
                net(torch.randn(6, 2) * 2 - 1)
        return net
    if name == "empty":
        return nn.Sequential()
    raise KeyError(name)


FIXTURES = ["mlp", "rgnet", "tied", "misc", "bn", "tiedbn", "empty"]


def c_order(net):
    """(name, tensor) in the order of the C tensor table: named_parameters()
    (canonical names, shared tensors once), then named_buffers()."""
    return list(net.named_parameters()) + list(net.named_buffers())


def bits(t):
    """Space-separated bit patterns of a tensor's elements (row-major), as
    the C tools read and write them: IEEE-754 bits of a float32 tensor (8
    hex digits), two's complement of an int64 (16) or int32 tensor (8)."""
    import numpy as np
    import torch

    if t.dtype == torch.int64:
        a = t.detach().contiguous().numpy().astype(np.int64, copy=False)
        return " ".join("%016x" % int(b) for b in a.reshape(-1).view(np.uint64))
    if t.dtype == torch.int32:
        a = t.detach().contiguous().numpy().astype(np.int32, copy=False)
        return " ".join("%08x" % int(b) for b in a.reshape(-1).view(np.uint32))
    a = t.detach().contiguous().numpy().astype(np.float32, copy=False)
    return " ".join("%08x" % int(b) for b in a.reshape(-1).view(np.uint32))


def from_bits(words, shape):
    import numpy as np
    import torch

    a = np.array([int(w, 16) for w in words], dtype=np.uint32).view(np.float32)
    return torch.from_numpy(a.reshape(shape).copy())


def module_paths(net):
    """Every module path, aliases included (tied: "2" and "4")."""
    return [p for p, _ in net.named_modules(remove_duplicate=False)]
