#!/usr/bin/env bash
# Installs everything nngen needs on Debian 12 (run as root, or it uses sudo).
set -euo pipefail
# make and libgfortran-12-dev: tools/downstream-test.sh builds the Makefile
# example, and links OpenBLAS statically (its .pc lists -lgfortran).
# clang and libclang-rt-14-dev (libFuzzer and the sanitizers' runtimes, only
# a Recommends of clang's packages): the fuzz targets of tests/fuzz and their smoke tests.
# gcc-arm-none-eabi and libnewlib-arm-none-eabi (newlib, only a Recommends):
# the Cortex-M4 cross build of tests/deploy (cross/arm-none-eabi.txt).
# openmpi-bin and libopenmpi-dev: nngen-rt-mpi (-Dmpi), the suite 'mpi',
# fashion --dist; iproute2: the suite's test across two network namespaces.
pkgs=(meson ninja-build gcc pkg-config libyaml-dev libopenblas-dev check
      python3-torch python3-yaml python3-numpy graphviz
      make libgfortran-12-dev clang libclang-rt-14-dev
      gcc-arm-none-eabi libnewlib-arm-none-eabi
      zlib1g-dev dataset-fashion-mnist python3-matplotlib
      openmpi-bin libopenmpi-dev iproute2)
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
