#!/usr/bin/env bash
# The ResNet measurements that need an accelerator, in one call:
#   1. `hffjax bench --speed` (MLP/CNN rows, then ResNet-18 at 32 and 224 pixels, bf16, batch 512,
#      8 fused steps per sync: images/s, HFF/BP step for block, stage and two-group learners, MFU,
#      HFF and FF inference time and images/s at 10/100/1000 classes, at both sizes);
#   2. configs/fashion_mnist_resnet.py trained to its end, seeds 0 and 1, and its backprop twin
#      (seed 0), with 8 fused steps per call and the training split kept on the device.
#
# On a machine without network access, first (where pip and the registries work, repository root):
#   bash benchmarks/resnet_accelerator.sh prepare   # wheels into .whl/, Fashion-MNIST into .data/
# then, on the accelerator host, from the repository root (with .whl and .data beside it):
#   OUT=DIR bash benchmarks/resnet_accelerator.sh
# It writes DIR/speed.json, DIR/speed.md, DIR/resnet_<run>.jsonl (each run's metrics.jsonl) and
# prints a table of the trainings last. EXTRA adds overrides to every training; BENCH_ARGS to the bench.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  grep -qx '/.data/' .git/info/exclude 2>/dev/null || echo /.data/ >> .git/info/exclude
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
  done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl ml_collections grain array-record tensorboardX portpicker
  mkdir -p .data/fashion-mnist
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .data/fashion-mnist/
  echo "ready: carry .whl and .data"
  exit 0
fi

OUT=${OUT:-/tmp/hffjax-accelerator}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d .data/fashion-mnist ] && export HFFJAX_DATA_DIR="$PWD/.data/fashion-mnist"
RUNS=${RUNS:-/tmp/hffjax-runs}

# shellcheck disable=SC2086  # BENCH_ARGS and EXTRA are word lists
python3 -m hffjax bench --speed --out "$OUT/speed.json" --markdown "$OUT/speed.md" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/speed.log"
for run in "hff_s0 fashion_mnist_resnet 0" "hff_s1 fashion_mnist_resnet 1" "bp_s0 fashion_mnist_resnet_bp 0"; do
  read -r name config seed <<<"$run"
  # shellcheck disable=SC2086
  python3 -m hffjax train --config "$config" --workdir "$RUNS/$name" --config.seed="$seed" \
    --config.steps_per_call=8 --config.data_on_device=True ${EXTRA:-} 2>&1 | tail -n 12
  cp "$RUNS/$name/metrics.jsonl" "$OUT/resnet_$name.jsonl"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
print("| run | epochs | test (last learner) | every learner | validation | s/epoch |")
print("|---|---|---|---|---|---|")
for name in ("hff_s0", "hff_s1", "bp_s0"):
  recs = [json.loads(l) for l in open(f"{sys.argv[1]}/resnet_{name}.jsonl")]
  r = recs[-1]
  secs = [x["epoch_seconds"] for x in recs if "epoch_seconds" in x][1:] or [recs[-1]["interval_seconds"]]
  learners = " / ".join(f"{100 * a:.2f}" for a in r["layer_accuracy"])
  val = f"{100 * r['validation_accuracy']:.2f}%" if "validation_accuracy" in r else "n/a"
  print(f"| {name} | {r['epoch']} | {100 * r['test_accuracy']:.2f}% | {learners} | {val} | {statistics.median(secs):.1f} |")
PY
