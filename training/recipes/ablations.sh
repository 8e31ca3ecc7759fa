#!/usr/bin/env bash
# The four ablations of docs/results.md (the paper's Tables 4-7), from scratch on a 2-core CPU:
# make the training sets and the 384-px test split, train every arm (DFIMat-S's networks, small
# budget, one thread each, two at a time), score them with the same simulated users and engine as
# the main table, and write docs/results/table4..7 and docs/results.md.
#
#   bash training/recipes/ablations.sh          # about 110 minutes (stop 37: 83 training, 27 scoring)
#   STEPS=20 MRN_STEPS=10 COUNT=40 N384=2 WORK=/tmp/ab OUT=/tmp/ab/results bash training/recipes/ablations.sh
#
# Arms (all seed 0, batch 6 at 384 px, the same COUNT synthetic images within a table, a full
# cosine schedule of STEPS for ISCN and MRN_STEPS for MRN, half the crops framed on the target as
# the engine zooms in from round 2 on, as the shipped DFIMat-S was trained):
#   ref      ISCN with CRM on scene-prior images: "with CRM" (Table 5), "scene prior" (Table 7)
#   nocrm    ISCN never given the previous mask: "without CRM" (Table 5)
#   random   ISCN on randomly composited images: "random compositing" (Table 7)
#   coupled  ISCN and MRN end to end for STEPS: "coupled" (Table 4)
#   hybrid / global / local  MRN for MRN_STEPS on ref's frozen ISCN: Table 6; hybrid is also
#            "decoupled" in Table 4 (its ISCN and MRN trained one after the other)
# ISCN-only arms are scored on the coarse mask.
#
# WORK: data, checkpoints, logs (default data/ablations); OUT: where table4..7 go (default
# docs/results; docs/results.md is rewritten only then).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-800}; MRN_STEPS=${MRN_STEPS:-200}; COUNT=${COUNT:-1600}; N384=${N384:-30}
WORK=${WORK:-data/ablations}
OUT=${OUT:-docs/results}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
py=python3
mkdir -p "$WORK" "$OUT"
log() { echo "$(date +%T) $*"; }

synth() {  # NAME FLAGS: a data set made once (a rerun with the same settings reuses it)
  local name=$1; shift
  $py -m training.synth --out "$WORK/$name" --reuse --overwrite --workers 2 "$@" >> "$WORK/synth.log" 2>&1
}
synth scene --count "$COUNT" --seed 1 --size 384 384
synth random --count "$COUNT" --seed 1 --size 384 384 --mode random
synth test384 --count "$N384" --seed 900 --size 384 384
log "data ready"

common=(--variant small --size 384 --batch-size 6 --workers 0 --sim-workers 0 --inputs click scribble box text mix
        --max-rounds 3 --focus-prob 0.5 --log-every 20 --save-every 200 --seed 0)
iscn() {  # NAME DATA [FLAGS]: ISCN alone (or with --coupled, ISCN and MRN together)
  local name=$1 data=$2; shift 2
  $py -m training.train iscn --config training/configs/iscn_small.yaml --data "$WORK/$data" --steps "$STEPS" \
    "${common[@]}" "$@" --out "$WORK/$name" > "$WORK/$name.log" 2>&1
  log "$name done"
}
mrn() {  # NAME BRANCHES: MRN on ref's frozen ISCN
  $py -m training.train mrn --config training/configs/mrn_small.yaml --data "$WORK/scene" --steps "$MRN_STEPS" \
    "${common[@]}" --mrn-branches "$2" --iscn "$WORK/ref/iscn_last.pt" --out "$WORK/$1" > "$WORK/$1.log" 2>&1
  log "$1 done"
}
# Two lanes of about the same length: the coupled arm costs about 1.5 ISCN arms.
( iscn ref scene && iscn nocrm scene --no-crm && mrn hybrid hybrid && mrn global global && mrn local local ) &
lane_a=$!
( iscn coupled scene --coupled && iscn random random ) &
lane_b=$!
wait "$lane_a"; wait "$lane_b"

ev="--data $WORK/test384 --inputs click scribble box text mix --rounds 5 --noc-max 0"
jobs=$WORK/eval.txt  # one evaluation per line, shell-quoted; the last argument is its report folder (log: WORK)
{
  echo "--models hybrid=$WORK/hybrid/mrn_last.pt 'global only=$WORK/global/mrn_last.pt' 'local only=$WORK/local/mrn_last.pt' $ev --out $OUT/table6"
  echo "--models decoupled=$WORK/hybrid/mrn_last.pt coupled=$WORK/coupled/iscn_last.pt $ev --out $OUT/table4"
  echo "--models 'with CRM=$WORK/ref/iscn_last.pt' 'without CRM=$WORK/nocrm/iscn_last.pt' $ev --out $OUT/table5"
  echo "--models 'scene prior=$WORK/ref/iscn_last.pt' 'random compositing=$WORK/random/iscn_last.pt' $ev --out $OUT/table7"
} > "$jobs"
rm -rf "$OUT"/table4 "$OUT"/table5 "$OUT"/table6 "$OUT"/table7
bash training/recipes/eval_queue.sh "$jobs" "$WORK"
log "reports written"
if [ "$OUT" = docs/results ]; then bash training/recipes/results_page.sh; fi
