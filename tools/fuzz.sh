#!/usr/bin/env bash
# Long fuzzing runs of the libFuzzer targets (tests/fuzz/README.md).
#
#   tools/fuzz.sh spec|load|load-mem|idx [SECONDS [JOBS]] [-- LIBFUZZER-FLAGS...]
#
# SECONDS: how long (default 3600).  JOBS: parallel fuzzing processes
# (libFuzzer -fork=JOBS, default 1; a crash, leak, contract violation,
# timeout or out-of-memory input is saved and the run goes on); JOBS=0 runs
# one plain process that stops at the first finding, as the smoke tests do.  Builds the target if needed, in $BUILD (default: build; a
# new one is set up with -Dfuzz=enabled).  The work corpus and the findings
# live outside the tree, in $WORK (default: ${TMPDIR:-/tmp}/nngen-fuzz/TARGET):
# corpus/ (seeded from tests/fuzz/corpus/TARGET, and tests/rt/bad_weights for
# load and load-mem, which also takes corpus/load; it grows from run to run), artifacts/ (crash-*, leak-*, timeout-*,
# oom-*), and one log per run.  At the end it prints the figures: executions,
# exec/s, coverage (cov:, ft:), corpus size, findings, and the CPU time the
# fuzzer got (under nice -n 19 on a busy machine, much less than SECONDS).
# Exit status 1 when the run saved a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() { echo "usage: tools/fuzz.sh spec|load|load-mem|idx [SECONDS [JOBS]] [-- LIBFUZZER-FLAGS...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
target=$1; shift
case $target in spec|load|load-mem|idx) ;; *) usage ;; esac
# the corpus directory and the dictionary of each target
corpus_dir=${target//-/_}
dict=$target
[ "$target" = load-mem ] && dict=load
seconds=3600 jobs=1
if [ $# -gt 0 ] && [ "$1" != -- ]; then seconds=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != -- ]; then jobs=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = -- ]; then shift; fi
case $seconds$jobs in *[!0-9]*) usage ;; esac

build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
work=${WORK:-${TMPDIR:-/tmp}/nngen-fuzz/$target}
bin=$build/tests/fuzz/fuzz-$target

if [ ! -d "$build" ]; then
  if ! meson setup "$build" -Dfuzz=enabled >"$build.setup.log" 2>&1; then
    cat "$build.setup.log" >&2
    exit 1
  fi
fi
if ! nice -n 19 ninja -C "$build" "tests/fuzz/fuzz-$target" >/dev/null; then
  echo "tools/fuzz.sh: cannot build $bin (is clang with libFuzzer installed? meson configure $build -Dfuzz=enabled)" >&2
  exit 1
fi

mkdir -p "$work/corpus" "$work/artifacts"
cp -n tests/fuzz/corpus/$corpus_dir/* "$work/corpus/"
if [ "$target" = load-mem ]; then
  for f in tests/fuzz/corpus/load/*; do
    cp -n "$f" "$work/corpus/load-$(basename "$f")"
  done
fi
if [ "$target" = load ] || [ "$target" = load-mem ]; then
  for f in tests/rt/bad_weights/*.safetensors; do
    cp -n "$f" "$work/corpus/bad_weights-$(basename "$f")"
  done
fi
log=$work/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log
touch "$work/.start"
nfiles() { find "$work/corpus" -type f | wc -l; }
kbytes() { du -sb "$work/corpus" | cut -f1; }
echo "fuzz-$target: $seconds s, jobs $jobs, corpus $work/corpus ($(nfiles) files), log $log"

mode=()
if [ "$jobs" -gt 0 ]; then
  mode=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi
start=$(date +%s)
set +e
nice -n 19 "$bin" "${mode[@]}" -max_total_time="$seconds" -max_len=4096 \
  -rss_limit_mb=2560 -timeout=30 -dict="$root/tests/fuzz/$dict.dict" \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@" "$work/corpus" >"$log" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
times >"$work/.times"   # the children's user and system time are its second line
cpu=$(tail -n 1 "$work/.times")

echo "exit status $rc after $elapsed s (CPU of the fuzzer processes: user, system: $cpu); the last statistics lines:"
grep -E '^#[0-9]+' "$log" | grep -vE 'NEW|REDUCE' | tail -n 3 || true
grep -E '^stat::|^Done ' "$log" || true
echo "corpus: $(nfiles) files, $(kbytes) bytes in $work/corpus"
# new files in artifacts/: findings (crash-, leak-, timeout-, oom-) and
# slow units (slow-unit-: the slowest input so far, not an error)
newfiles=$(find "$work/artifacts" -type f -newer "$work/.start" -printf '%f\n' | sort)
slow=$(printf '%s\n' "$newfiles" | grep '^slow-unit-' || true)
found=$(printf '%s\n' "$newfiles" | grep -v '^slow-unit-' | grep . || true)
if [ -n "$slow" ]; then
  echo "slow inputs (not errors; see -report_slow_units): $(printf '%s\n' "$slow" | wc -l) in $work/artifacts"
fi
if [ -n "$found" ]; then
  echo "FINDINGS: $(printf '%s\n' "$found" | wc -l) new file(s) in $work/artifacts:"
  printf '%s\n' "$found" | sed 's/^/  /'
  echo "reproduce: $bin FILE (a timeout or oom may be the machine's load: check that it reproduces)"
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "libFuzzer exited with $rc (see $log)"
  exit 1
fi
echo "findings: none"
