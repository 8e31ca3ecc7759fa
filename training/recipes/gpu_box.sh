#!/usr/bin/env bash
# One time-boxed GPU session that trains both shipped models and the Table 4 / Table 7 ablations
# side by side on one GPU, then evaluates the ablations and times PyTorch on CUDA.
#
#   BUDGET=570 OUT=/path bash training/recipes/gpu_box.sh
#
# BUDGET (seconds) is the whole session; the ISCN and MRN time boxes are cut from it (the
# learning rate anneals by the clock, see --max-minutes). What the session leaves lands in $OUT
# as at most 8 files: the base checkpoint split into 15 MiB parts (join them with
# `cat base.pt.part* > mrn_last.pt`) and rest.tgz (small checkpoint, logs, ablation reports,
# CUDA latency). The MiniLM package is too large to send to the GPU box, so the exported int8
# text graph of models/small stands in for it (DFIMAT_TEXT_ENCODER): the graph the plug-in runs.
# COUNT, BATCH, ABL_STEPS, ABL_MRN_STEPS, MRN_BOX and TAIL shrink it for a dry run on CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUDGET=${BUDGET:-570}
OUT=${OUT:?set OUT to the folder that comes back}
W=${WORK:-/tmp/box}
COUNT=${COUNT:-1600}; BATCH=${BATCH:-16}; ABL_STEPS=${ABL_STEPS:-400}; ABL_MRN_STEPS=${ABL_MRN_STEPS:-100}
MRN_BOX=${MRN_BOX:-1.4}   # minutes
TAIL=${TAIL:-95}          # seconds kept at the end for saving, the latency bench and packing
source training/recipes/clock.sh
export OMP_NUM_THREADS=2
mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# -- data: the shipped recipe's and the ablations' training sets, the ablations' test set
$py -m training.synth --out "$W/d512" --count "$COUNT" --seed 1 --size 512 512 --workers 6 > "$W/synth512.log" 2>&1 &
$py -m training.synth --out "$W/d384" --count "$COUNT" --seed 1 --size 384 384 --workers 5 > "$W/synth384.log" 2>&1 &
$py -m training.synth --out "$W/r384" --count "$COUNT" --seed 1 --size 384 384 --mode random --workers 4 > "$W/synthr.log" 2>&1 &
$py -m training.synth --out "$W/test384" --count 24 --seed 900 --size 384 384 --workers 1 > "$W/synthtest.log" 2>&1 &
wait
at "data ready"
ISCN_BOX=$($py -c "print(round(($(left) - $TAIL - 60 * $MRN_BOX - 15) / 60, 2))")
echo "ISCN box $ISCN_BOX min, MRN box $MRN_BOX min, $(left) s left"
common=(--inputs click scribble box text mix --max-rounds 3 --log-every 20 --save-every 200 --seed 0)

shipped() {  # variant data size: ISCN then MRN, each in its time box
  local v=$1 data=$2 size=$3
  $py -m training.train iscn --variant "$v" --config "training/configs/iscn_$v.yaml" --data "$data" --size "$size" \
    --batch-size "$BATCH" --steps 20000 --max-minutes "$ISCN_BOX" --workers 2 --sim-workers 2 "${common[@]}" --out "$W/$v" \
    > "$W/$v.iscn.log" 2>&1 &&
  $py -m training.train mrn --variant "$v" --config "training/configs/mrn_$v.yaml" --data "$data" --size "$size" \
    --batch-size "$BATCH" --steps 20000 --max-minutes "$MRN_BOX" --workers 2 --sim-workers 2 "${common[@]}" \
    --iscn "$W/$v/iscn_last.pt" --out "$W/$v" > "$W/$v.mrn.log" 2>&1
  at "$v done (rc $?)"
}
ablation() {  # name data extra-flags: the small ISCN for ABL_STEPS of the 2000-step schedule
  local name=$1 data=$2; shift 2
  timeout $(( $(left) - TAIL )) $py -m training.train iscn --variant small --config training/configs/iscn_small.yaml \
    --data "$data" --size 384 --batch-size 6 --steps 2000 --stop-at "$ABL_STEPS" --workers 2 "${common[@]}" "$@" \
    --out "$W/$name" > "$W/$name.log" 2>&1
}
shipped base "$W/d512" 512 &
shipped small "$W/d384" 384 &
( ablation ref "$W/d384" &&
  timeout $(( $(left) - TAIL )) $py -m training.train mrn --variant small --config training/configs/mrn_small.yaml \
    --data "$W/d384" --size 384 --batch-size 6 --steps "$ABL_MRN_STEPS" --workers 2 "${common[@]}" \
    --iscn "$W/ref/iscn_last.pt" --out "$W/ref" > "$W/ref.mrn.log" 2>&1 && touch "$W/ref.done"; at "ref done" ) &
( ablation coupled "$W/d384" --coupled && touch "$W/coupled.done"; at "coupled done" ) &
( ablation random "$W/r384" && touch "$W/random.done"; at "random done" ) &
# -- the ablations' reports, on the GPU from their torch checkpoints, as soon as all three are done
( until [ -f "$W/ref.done" ] && [ -f "$W/coupled.done" ] && [ -f "$W/random.done" ]; do
    [ "$(left)" -lt $(( TAIL + 30 )) ] && { echo "ablations not ready in time"; exit 0; }; sleep 5; done
  ev=(--data "$W/test384" --inputs click scribble box text mix --rounds 5 --limit 6 --noc-max 0)
  timeout $(( $(left) - 40 )) $py -m training.evaluate --models "decoupled=$W/ref/mrn_last.pt" \
    "coupled=$W/coupled/iscn_last.pt" "${ev[@]}" --out "$W/table4" > "$W/table4.log" 2>&1
  timeout $(( $(left) - 40 )) $py -m training.evaluate --models "scene prior=$W/ref/iscn_last.pt" \
    "random compositing=$W/random/iscn_last.pt" "${ev[@]}" --out "$W/table7" > "$W/table7.log" 2>&1
  at "ablation reports" ) &
wait
if $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  timeout 60 $py bench/model_size.py --device cuda --size 1024 --repeats 10 --json "$W/latency_torch_cuda.json" \
    > "$W/latency.log" 2>&1
  tail -n 14 "$W/latency.log"
fi
for f in "$W"/*.log; do echo "== $f"; tail -c 400 "$f" | tr '\r' '\n' | tail -n 3; done

# -- pack
[ -f "$W/base/mrn_last.pt" ] && split -b 15M -d "$W/base/mrn_last.pt" "$OUT/base.pt.part"
tar -czf "$OUT/rest.tgz" -C "$W" \
  $(cd "$W" && ls -d small/mrn_last.pt ./*/*.jsonl table4 table7 latency_torch_cuda.json ./*.log 2>/dev/null)
ls -la "$OUT"; at "finished"
