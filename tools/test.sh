#!/usr/bin/env bash
# The whole test suite: a normal build, then everything again under
# AddressSanitizer + UndefinedBehaviorSanitizer (the conformance harness
# builds the generated code with the same sanitizers there).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || meson setup build
ninja -C build
meson test -C build --print-errorlogs --num-processes 2
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes 2
# Downstream use: install into a temporary prefix, build examples/downstream/
# (meson, make, meson subproject) against the installed tree only.
tools/downstream-test.sh
