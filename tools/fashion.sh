#!/usr/bin/env bash
# The second job: install the dependencies (the data set is Debian's
# dataset-fashion-mnist), build nngen, train D2L's LeNet on Fashion-MNIST in
# C (examples/fashion/fashion: 10 epochs, evaluated on the test set after
# each), then the same run in PyTorch (examples/fashion/torch_fashion.py):
# the same initial parameters, batches and numbers, and the time each took.
#
#   tools/fashion.sh [ARGS...]    ARGS go to both: --net lenet|lenet_bn|mlp,
#                                 --epochs N, --seed S, --limit N, ...
# NNGEN_SKIP_INSTALL=1: no apt-get; NNGEN_SKIP_TORCH=1: the C run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NNGEN_SKIP_INSTALL:-0}" != 1 ]; then tools/install-deps.sh; fi
[ -d build ] || meson setup build
ninja -C build
./build/examples/fashion/fashion "$@"
if [ "${NNGEN_SKIP_TORCH:-0}" != 1 ]; then
  echo
  /usr/bin/python3 examples/fashion/torch_fashion.py --nngen build/compiler/nngen "$@"
fi
