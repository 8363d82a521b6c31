#!/usr/bin/env bash
# The quality runs behind benchmarks/RESULTS.md (about 4 h on 2 CPU cores). Each run is a folder under runs/quality;
# re-running skips finished runs, so an interrupted plan resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
Q="python benchmarks/bench_quality.py --cetp-epochs 15 --epochs 20"
# 1. the main table: xresnet1d101, six methods, PTB-XL test folds 10, 9, 8 (TAC-ECG's protocol: validation fold k-1)
$Q --encoders xresnet1d101 --folds 10 9 8
# 2. label efficiency and what CETP buys (random / supervised frozen encoders), folds 10 and 9
$Q --encoders xresnet1d101 --folds 10 9 --methods lrc linear full scratch --fractions 0.05 0.1 0.25 1 --ablations
# 3. the six encoders, fold 10, LRC against full fine-tuning
$Q --encoders xresnet1d101 resnet1d18 inception1d fcn lstm transformer --folds 10 --methods lrc full
# 4. cpsc2018 and cinc2017: stratified 5-fold CV on the bundled build's CETP encoder (never saw their records)
for task in cpsc2018 cinc2017; do
  $Q --task $task --cv 5 --folds 0 1 2 3 4 --base runs/bundled/xresnet1d101-cetp/cetp --methods lrc linear full scratch
done
