#!/usr/bin/env bash
# The main job: install the dependencies, build nngen, compile the chapter's
# specs (specs/d2l/) and run the demo that prints the chapter's results.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NNGEN_SKIP_INSTALL:-0}" != 1 ]; then tools/install-deps.sh; fi
[ -d build ] || meson setup build
ninja -C build
./build/examples/d2l/d2l_demo
