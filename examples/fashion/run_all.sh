#!/usr/bin/env bash
# The full runs of examples/fashion (README.md): for each network, 10 epochs
# on all of Fashion-MNIST with nngen and then with PyTorch (one after the
# other, under nice), then one more epoch of PyTorch on 1 thread (to show how
# far torch agrees with itself), the curves (docs/fashion.png) and the tables.
#
#   examples/fashion/run_all.sh [BUILD [OUT]]     (defaults: build, /tmp/nngen-fashion)
#
# Environment: NETS (default "lenet lenet_bn mlp"), EPOCHS (10), SEED (0),
# PNG (docs/fashion.png).  About 10 minutes on the idle 2-core machine;
# the timings mean something only on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${2:-/tmp/nngen-fashion}
nets=${NETS:-lenet lenet_bn mlp}
epochs=${EPOCHS:-10}
seed=${SEED:-0}
png=${PNG:-docs/fashion.png}
mkdir -p "$out"
ninja -C "$build" examples/fashion/fashion compiler/nngen >/dev/null
torch=(/usr/bin/python3 examples/fashion/torch_fashion.py --nngen "$build/compiler/nngen")
plots=() diverge=()
for net in $nets; do
  for who in nngen torch; do
    if [ $who = nngen ]; then cmd=("$build/examples/fashion/fashion"); else cmd=("${torch[@]}"); fi
    echo "== $net, $who: ${cmd[*]} --net $net --epochs $epochs --seed $seed"
    nice "${cmd[@]}" --net "$net" --epochs "$epochs" --seed "$seed" --quiet \
      --csv "$out/$net-$who.csv" --steps-csv "$out/$net-$who.steps.csv" | tee "$out/$net-$who.log"
  done
  echo "== $net, torch on 1 thread, 1 epoch"
  OMP_NUM_THREADS=1 nice "${torch[@]}" --net "$net" --epochs 1 --seed "$seed" --quiet \
    --steps-csv "$out/$net-torch1.steps.csv" > "$out/$net-torch1.log"
  plots+=("$net:$out/$net-nngen.csv:$out/$net-torch.csv")
  diverge+=("$net:$out/$net-nngen.steps.csv:$out/$net-torch.steps.csv:$out/$net-torch1.steps.csv")
done
/usr/bin/python3 examples/fashion/plot.py "$png" "${plots[@]}"
{
  /usr/bin/python3 examples/fashion/plot.py --table "${plots[@]}"
  echo
  /usr/bin/python3 examples/fashion/plot.py --diverge "${diverge[@]}"
} | tee "$out/table.md"
