#!/usr/bin/env bash
# The full runs of examples/fashion (README.md): for each network, 10 epochs
# on all of Fashion-MNIST with nngen and then with PyTorch (one after the
# other, under nice), then the curves (docs/fashion.png) and the table.
#
#   examples/fashion/run_all.sh [BUILD [OUT]]     (defaults: build, /tmp/nngen-fashion)
#
# Environment: NETS (default "lenet lenet_bn mlp"), EPOCHS (10), SEED (0),
# PNG (docs/fashion.png).  About 10 minutes on the 2-core machine.
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
plots=()
for net in $nets; do
  for who in nngen torch; do
    if [ $who = nngen ]; then
      cmd=("$build/examples/fashion/fashion")
    else
      cmd=(/usr/bin/python3 examples/fashion/torch_fashion.py --nngen "$build/compiler/nngen")
    fi
    echo "== $net, $who: ${cmd[*]} --net $net --epochs $epochs --seed $seed"
    nice "${cmd[@]}" --net "$net" --epochs "$epochs" --seed "$seed" --quiet \
      --csv "$out/$net-$who.csv" | tee "$out/$net-$who.log"
  done
  plots+=("$net:$out/$net-nngen.csv:$out/$net-torch.csv")
done
/usr/bin/python3 examples/fashion/plot.py "$png" "${plots[@]}"
/usr/bin/python3 examples/fashion/plot.py --table "${plots[@]}" | tee "$out/table.md"
