#!/usr/bin/env bash
# Builds the downstream examples (examples/downstream/) the way someone else's
# project would:
#   1. `meson install` nngen into a temporary prefix and check the installed
#      tree (binary, static and shared library with its soname, header,
#      nngen-rt.pc, man page);
#   2. with PATH, PKG_CONFIG_PATH and LD_LIBRARY_PATH pointing into that
#      prefix only, build and run the Makefile example (shared, and static
#      with `pkg-config --static`) and the meson example (shared, and
#      -Dprefer_static=true), checking that rt.h came from the prefix and
#      never from this repository;
#   3. with MPI: tests/mpi/dist_check.c built from pkg-config nngen-rt-mpi
#      alone, run on 2 ranks;
#   4. build the meson example again with nngen as a meson subproject (a
#      wrap file with [provide], the repository linked as subprojects/nngen).
# Everything happens in a temporary directory, removed at the end (set
# NNGEN_KEEP_TMP=1 to keep it).  Needs meson, ninja, pkg-config, make, cc,
# readelf, and static libopenblas/libgfortran: tools/install-deps.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
tmp=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/nngen-downstream.XXXXXX")" && pwd -P)
cleanup() {
    if [ "${NNGEN_KEEP_TMP:-0}" = 1 ]; then echo "downstream-test: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

step() { printf '\n=== downstream: %s\n' "$*"; }
fail() { echo "downstream-test: FAIL: $*" >&2; exit 1; }
# run LOG CMD...: run quietly, show the log if it fails.
run() {
    local log=$tmp/logs/$1; shift
    mkdir -p "$tmp/logs"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        fail "$* (log above)"
    fi
}
case "$tmp" in "$repo"/*) fail "the temporary directory $tmp is inside the repository" ;; esac

strict_cflags='-O2 -std=c99 -Wall -Wextra -Wpedantic -Werror'

# ---------------------------------------------------------------- install
prefix=$tmp/prefix
step "meson install into $prefix"
run setup.log meson setup "$tmp/build" "$repo" --prefix "$prefix" -Dtests=false
run ninja.log ninja -C "$tmp/build"
run install.log meson install -C "$tmp/build"
(cd "$prefix" && find . -mindepth 1 | sort | sed 's|^\./|  |')

pc=$(find "$prefix" -name nngen-rt.pc)
[ -n "$pc" ] || fail "nngen-rt.pc was not installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
for f in bin/nngen include/nngen/rt.h share/man/man1/nngen.1 share/nngen/python/nngen_safetensors.py; do
    [ -f "$prefix/$f" ] || fail "$f was not installed"
done
[ -x "$prefix/bin/nngen" ] || fail "bin/nngen is not executable"
for f in libnngen-rt.a libnngen-rt.so libnngen-rt.so.0; do
    [ -e "$libdir/$f" ] || fail "${libdir#"$prefix"/}/$f was not installed"
done
grep -q 'SONAME.*\[libnngen-rt\.so\.0\]' <<<"$(readelf -d "$libdir/libnngen-rt.so")" ||
    fail "libnngen-rt.so has no soname libnngen-rt.so.0"

# The man page is the --help text: every option of --help is in it.
help=$("$prefix/bin/nngen" --help)
for opt in $(printf '%s\n' "$help" | grep -o -- '--*[a-z][a-z-]*' | sort -u); do
    grep -qF -- "$(printf '%s' "$opt" | sed 's/-/\\-/g')" "$prefix/share/man/man1/nngen.1" ||
        fail "nngen.1 does not mention $opt from nngen --help"
done
if command -v groff >/dev/null; then
    warnings=$(groff -man -ww -z "$prefix/share/man/man1/nngen.1" 2>&1)
    [ -z "$warnings" ] || fail "groff warns about nngen.1: $warnings"
fi

# -------------------------------------------- use the installed tree only
export PATH="$prefix/bin:$PATH"
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$libdir"
unset CPATH C_INCLUDE_PATH LIBRARY_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

step "pkg-config"
[ "$(command -v nngen)" = "$prefix/bin/nngen" ] || fail "nngen on PATH is $(command -v nngen)"
[ "$(pkg-config --variable=prefix nngen-rt)" = "$prefix" ] ||
    fail "pkg-config finds another nngen-rt: $(pkg-config --variable=prefix nngen-rt)"
pkg-config --exists --print-errors nngen-rt
echo "  pkg-config --cflags --libs nngen-rt:          $(pkg-config --cflags --libs nngen-rt)"
echo "  pkg-config --static --cflags --libs nngen-rt: $(pkg-config --static --cflags --libs nngen-rt)"
case "$(pkg-config --cflags --libs --static nngen-rt)" in
    *"$repo"*) fail "pkg-config points into the repository" ;;
esac
case " $(pkg-config --libs nngen-rt) " in
    *" -lnngen-rt "*" -lopenblas "*) ;;
    *) fail "pkg-config --libs nngen-rt lacks -lnngen-rt or -lopenblas" ;;
esac

# check_header_origin FILE...: the header came from the prefix, nothing from the repo.
check_header_origin() {
    grep -qF "$prefix/include/nngen/rt.h" "$@" || fail "rt.h did not come from $prefix/include"
    if grep -lF "$repo" "$@"; then fail "the files above used something from $repo"; fi
}

# ------------------------------------------------------------------ make
step "make check (shared libnngen-rt)"
cp -R "$repo/examples/downstream/make" "$tmp/make"
make -C "$tmp/make" check CFLAGS="$strict_cflags" CPPFLAGS=-MD
check_header_origin "$tmp/make"/*.d
grep -q 'NEEDED.*libnngen-rt\.so\.0' <<<"$(readelf -d "$tmp/make/reg")" || fail "reg does not use libnngen-rt.so.0"

step "make check-static (pkg-config --static, cc -static)"
if [ "$(cc -print-file-name=libgfortran.a)" = libgfortran.a ]; then
    fail "no static libgfortran for linking OpenBLAS statically: install libgfortran-12-dev (tools/install-deps.sh)"
fi
env -u LD_LIBRARY_PATH make -C "$tmp/make" check-static CFLAGS="$strict_cflags" CPPFLAGS=-MD
if grep -q NEEDED <<<"$(readelf -d "$tmp/make/reg-static")"; then fail "reg-static is not static"; fi
make -C "$tmp/make" clean >/dev/null
[ "$(cd "$tmp/make" && ls | sort | tr '\n' ' ')" = "Makefile main.c main.d net.d net.yaml " ] ||
    fail "make clean left: $(ls "$tmp/make")"

# ----------------------------------------------------------------- meson
cp -R "$repo/examples/downstream/meson" "$tmp/meson"

step "meson test (dependency('nngen-rt') from pkg-config)"
run meson-setup.log meson setup "$tmp/meson-build" "$tmp/meson" -Dwerror=true
ninja -C "$tmp/meson-build"
meson test -C "$tmp/meson-build" --print-errorlogs
ninja -C "$tmp/meson-build" -t deps >"$tmp/meson-build/deps.txt"
check_header_origin "$tmp/meson-build/deps.txt" "$tmp/meson-build/build.ninja"
grep -q 'NEEDED.*libnngen-rt\.so\.0' <<<"$(readelf -d "$tmp/meson-build/classifier")" ||
    fail "classifier does not use libnngen-rt.so.0"

step "meson test -Dprefer_static=true"
run meson-static-setup.log meson setup "$tmp/meson-static" "$tmp/meson" -Dwerror=true -Dprefer_static=true
ninja -C "$tmp/meson-static"
env -u LD_LIBRARY_PATH meson test -C "$tmp/meson-static" --print-errorlogs
if grep -E 'NEEDED.*(nngen-rt|openblas)' <<<"$(readelf -d "$tmp/meson-static/classifier")"; then
    fail "classifier built with prefer_static links the libraries above dynamically"
fi

# ------------------------------------------------------------------ MPI
# With MPI (nngen-rt-mpi installed, -Dmpi found it): a data-parallel program
# built from pkg-config nngen-rt-mpi alone, run on 2 ranks.
if [ -f "$pcdir/nngen-rt-mpi.pc" ] && command -v mpirun >/dev/null; then
    step "pkg-config nngen-rt-mpi: tests/mpi/dist_check.c on 2 ranks"
    for f in include/nngen/rt-mpi.h; do
        [ -f "$prefix/$f" ] || fail "$f was not installed"
    done
    [ -e "$libdir/libnngen-rt-mpi.so.0" ] || fail "libnngen-rt-mpi.so.0 was not installed"
    echo "  pkg-config --cflags --libs nngen-rt-mpi: $(pkg-config --cflags --libs nngen-rt-mpi)"
    mkdir -p "$tmp/mpi"
    run mpi-nngen.log nngen "$repo/tests/mpi/mlp.yaml" -o "$tmp/mpi/dmlp.c"
    # shellcheck disable=SC2046,SC2086
    run mpi-cc.log cc $strict_cflags -D_POSIX_C_SOURCE=200809L -I"$tmp/mpi" -DNET=dmlp \
        '-DNET_H="dmlp.h"' -DCE=1 "$repo/tests/mpi/dist_check.c" "$tmp/mpi/dmlp.c" \
        $(pkg-config --cflags --libs nngen-rt-mpi) -o "$tmp/mpi/dist_check"
    run mpi-run.log env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun --oversubscribe -np 2 "$tmp/mpi/dist_check" --out "$tmp/mpi"
    grep -q ': ok;' "$tmp/logs/mpi-run.log" || fail "dist_check on 2 ranks did not pass"
    grep -m1 '^dist_check' "$tmp/logs/mpi-run.log" | sed 's/^/  /'
fi

# ------------------------------------------------------------ subproject
step "meson test with nngen as a subproject (wrap with [provide])"
export PATH=${PATH#"$prefix/bin:"}
export PKG_CONFIG_PATH=${PKG_CONFIG_PATH#"$pcdir"}
PKG_CONFIG_PATH=${PKG_CONFIG_PATH#:}
unset LD_LIBRARY_PATH
cp -R "$repo/examples/downstream/meson" "$tmp/sub"
mkdir "$tmp/sub/subprojects"
ln -s "$repo" "$tmp/sub/subprojects/nngen"
cat >"$tmp/sub/subprojects/nngen.wrap" <<'EOF'
[wrap-git]
url = https://example.invalid/nngen.git
revision = head

[provide]
dependency_names = nngen-rt
program_names = nngen
EOF
# forcefallback: use the subproject even if an nngen is installed somewhere.
run sub-setup.log meson setup "$tmp/sub-build" "$tmp/sub" --wrap-mode=forcefallback \
    -Dnngen:tests=false -Dwerror=true -Dnngen:werror=false
grep -q 'Program nngen found: YES (overridden)' "$tmp/logs/sub-setup.log" ||
    fail "find_program('nngen') did not come from the subproject"
grep -q 'Dependency nngen-rt found: YES .*(overridden)' "$tmp/logs/sub-setup.log" ||
    fail "dependency('nngen-rt') did not come from the subproject"
run sub-ninja.log ninja -C "$tmp/sub-build"
meson test -C "$tmp/sub-build" --print-errorlogs --suite nngen-downstream-meson
grep -q 'subprojects/nngen/include/nngen/rt\.h' <<<"$(ninja -C "$tmp/sub-build" -t deps)" ||
    fail "the subproject build did not use the subproject's rt.h"

step "all downstream checks passed"
