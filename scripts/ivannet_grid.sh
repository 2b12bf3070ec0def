#!/usr/bin/env bash
# The IvanNet seed x precision experiment (docs/study.md), one queue of runs, resumable:
# a run whose folder holds a finished metrics.json is skipped, one with a config.yaml is resumed
# (`resume=`), any other is started. Each run also keeps one checkpoint per epoch
# (checkpoints/epochs/, every 375 steps: an epoch of either split) so the per-epoch diagnostics can be recomputed afterwards.
#
#   OMP_NUM_THREADS=1 scripts/ivannet_grid.sh DATA OUT 0:32-true:random 1:bf16-mixed:grouped:base ...
#
# DATA: the Fingers train/ folder; OUT: where the run folders go; each further argument is
# seed:precision:split[:dataset[:optimizer]], the dataset `augmented` (the default) or `base`, the
# optimizer a conf/optimizer/ name: `sgd` (the default, the study's) or `sgd_clipped` (the folder
# name then ends in -sgd_clipped).
#
# A run that fails does not stop the queue (the next run may still be good), but the script
# exits 1 when any run did, naming each, so a failed queue never reads as a finished one.
set -uo pipefail
data=$1 out=$2
shift 2
cd "$(dirname "$0")/.."
failed=()
for spec in "$@"; do
  IFS=: read -r seed precision split dataset optimizer <<<"$spec"
  dataset=${dataset:-augmented} optimizer=${optimizer:-sgd}
  dir="$out/ivannet-$dataset-$split-seed$seed-$precision"
  [[ $optimizer == sgd ]] || dir="$dir-$optimizer"
  if [[ -f $dir/metrics.json ]] && grep -q '"status": "done"' "$dir/metrics.json"; then
    echo "== $dir: done, skipped"
    continue
  fi
  if [[ -f $dir/config.yaml ]]; then
    echo "== $dir: resuming ($(date -u +%FT%TZ))"
    python train.py resume="$dir" trainer.enable_progress_bar=false
  else
    echo "== $dir: starting ($(date -u +%FT%TZ))"
    python train.py model=ivannet data="$dataset" optimizer="$optimizer" seed="$seed" trainer.precision="$precision" \
      data.split="$split" data.root="$data" trainer.enable_progress_bar=false \
      +callbacks.every_epoch._target_=lightning.pytorch.callbacks.ModelCheckpoint \
      "+callbacks.every_epoch.dirpath=$dir/checkpoints/epochs" \
      +callbacks.every_epoch.monitor=null +callbacks.every_epoch.save_top_k=-1 +callbacks.every_epoch.every_n_train_steps=375 \
      "+callbacks.every_epoch.filename='step{step}'" +callbacks.every_epoch.auto_insert_metric_name=false \
      hydra.run.dir="$dir"
  fi
  rc=$?
  echo "== $dir: exit $rc ($(date -u +%FT%TZ))"
  ((rc == 0)) || failed+=("$dir (exit $rc)")
done
if ((${#failed[@]})); then
  printf 'ivannet_grid: %d of %d runs failed:\n' "${#failed[@]}" "$#" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
