#!/usr/bin/env bash
# A second, shorter GPU session: go on training one shipped model from its checkpoint (--init:
# fresh optimizer, new synthetic images), ISCN then MRN, each in a time box cut from BUDGET.
#
#   BUDGET=220 INIT=.carry/base_fp16.pt VARIANT=base SIZE=512 OUT=/path bash training/recipes/gpu_continue.sh
#
# INIT: a training checkpoint, or one read back from the shipped folder beforehand on a machine
# with the MiniLM package (`python -m export.recover models/small --out .carry/small.pt`).
# Output as gpu_box.sh: the checkpoint in 15 MiB parts (<variant>.pt.partNN) and rest.tgz (logs).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUDGET=${BUDGET:-220}; INIT=${INIT:?checkpoint to start from}; VARIANT=${VARIANT:-base}; SIZE=${SIZE:-512}
OUT=${OUT:?set OUT to the folder that comes back}; W=${WORK:-/tmp/more}
COUNT=${COUNT:-1200}; SEED=${SEED:-2}; BATCH=${BATCH:-16}; LR=${LR:-0.0003}; MRN_BOX=${MRN_BOX:-0.6}; TAIL=${TAIL:-25}
INPUTS=${INPUTS:-click scribble box text mix}  # a type named twice is drawn twice as often
# Share of crops framed on one person and magnified as the engine frames them (--focus-prob):
# both shipped models have been trained on them since stops 28-29; 0 trains on scene crops only.
FOCUS=${FOCUS:-0.5}
source training/recipes/clock.sh
export OMP_NUM_THREADS=4
mkdir -p "$W" "$OUT"
$py -m training.synth --out "$W/data" --count "$COUNT" --seed "$SEED" --size "$SIZE" "$SIZE" --workers 14 > "$W/synth.log" 2>&1
at "data ready"
ISCN_BOX=$($py -c "print(round(($(left) - $TAIL - 60 * $MRN_BOX - 20) / 60, 2))")
echo "ISCN box $ISCN_BOX min, MRN box $MRN_BOX min"
common=(--variant "$VARIANT" --data "$W/data" --size "$SIZE" --batch-size "$BATCH" --steps 20000 --lr "$LR"
        --inputs $INPUTS --focus-prob "$FOCUS" --max-rounds 3 --workers 8 --sim-workers 4 --log-every 20 --save-every 200 --seed "$SEED"
        --init "$INIT" --out "$W/run")
$py -m training.train iscn --config "training/configs/iscn_$VARIANT.yaml" --max-minutes "$ISCN_BOX" "${common[@]}" \
  > "$W/iscn.log" 2>&1 && at "ISCN done" &&
$py -m training.train mrn --config "training/configs/mrn_$VARIANT.yaml" --max-minutes "$MRN_BOX" "${common[@]}" \
  --iscn "$W/run/iscn_last.pt" > "$W/mrn.log" 2>&1 && at "MRN done"
for f in "$W"/*.log; do echo "== $f"; tail -c 400 "$f" | tr '\r' '\n' | tail -n 2; done
[ -f "$W/run/mrn_last.pt" ] && split -b 15M -d "$W/run/mrn_last.pt" "$OUT/$VARIANT.pt.part"
tar -czf "$OUT/rest.tgz" -C "$W" $(cd "$W" && ls -d run/*.jsonl ./*.log 2>/dev/null)
ls -la "$OUT"; at "finished"
