#!/usr/bin/env bash
# Installs everything nngen needs on Debian 12 (run as root, or it uses sudo).
set -euo pipefail
pkgs=(meson ninja-build gcc pkg-config libyaml-dev libopenblas-dev check
      python3-torch python3-yaml python3-numpy graphviz)
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
