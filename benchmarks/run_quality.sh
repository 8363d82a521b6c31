#!/usr/bin/env bash
# The quality runs behind benchmarks/RESULTS.md: two streams of single-threaded runs side by side on a 2-core machine
# (about 2.5 h). Each run is a folder under runs/quality; re-running skips finished runs, so an interrupted plan
# resumes, and re-running a bench_quality.py line only re-renders its tables.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
Q="python benchmarks/bench_quality.py --cetp-epochs 15 --epochs 20 --threads 1"
W=runs/quality/ptbxl-super/xresnet1d101
wait_for() { while [ ! -f "$1" ]; do sleep 30; done; }
stream_a() {
  # the main table: xresnet1d101, six methods, PTB-XL test folds 10, 9, 8 (TAC-ECG's protocol: validation fold k-1)
  $Q --encoders xresnet1d101 --folds 10 9 8
  # cpsc2018: stratified 5-fold CV on the bundled build's CETP encoder (it never saw CPSC2018 records)
  $Q --task cpsc2018 --cv 5 --folds 0 1 2 3 4 --base runs/bundled/xresnet1d101-cetp/cetp --methods lrc full scratch
}
stream_b() {
  # the six encoders, fold 10, LRC against full fine-tuning (xresnet1d101's runs come from stream A)
  $Q --encoders resnet1d18 inception1d fcn lstm transformer --folds 10 --methods lrc full
  # label efficiency on folds 10 and 9 (their CETP encoders come from stream A), then what CETP buys
  wait_for $W/fold10/cetp/cetp_metrics.json; wait_for $W/fold9/cetp/cetp_metrics.json
  $Q --encoders xresnet1d101 --folds 10 9 --methods lrc linear full scratch --fractions 0.05 0.1 0.25 1
  $Q --encoders xresnet1d101 --folds 10 9 --methods lrc scratch --fractions 0.1 1 --ablations
}
stream_a > runs/quality-a.log 2>&1 &
stream_b > runs/quality-b.log 2>&1 &
wait
# the combined tables
$Q --encoders xresnet1d101 resnet1d18 inception1d fcn lstm transformer --folds 10 --methods lrc full
