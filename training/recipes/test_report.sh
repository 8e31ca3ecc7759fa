#!/usr/bin/env bash
# The held-out test sections of docs/results.md, from scratch: make the two synthetic test splits,
# score the shipped DFIMat-S, DFIMat and the classical baseline on them (two workers side by side,
# one thread each; the baseline cut into shares of images), merge each split's reports and write
# docs/results.md again.
#
#   bash training/recipes/test_report.sh              # about 110 minutes on a 2-core CPU
#   N384=2 N1024=1 WORK=/tmp/tr OUT=/tmp/tr/results bash training/recipes/test_report.sh   # a dry run
#
# The splits are seeds 900 (384 px) and 901 (1024 px); image k depends only on (seed, k), so a
# split of N images starts with the images of every smaller one (the 6- and 2-image splits used
# before stop 36 are their first images). Use it after shipping new models: the baseline does not
# change, but it is cheap to keep every row made by one run of one protocol. The classical
# baseline dominates the time (about 4 minutes per 384-px image, clicks given one at a time for
# NoC@90, and 5 per 1024-px image).
#
# WORK: where the splits and the per-method reports go (default data/test_report); OUT: where the
# merged main/ and large/ reports go (default docs/results); DOC: the results page to write
# (default docs/results.md; with OUT outside docs/results it is written to $OUT/results.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
N384=${N384:-30}; N1024=${N1024:-8}
WORK=${WORK:-data/test_report}
OUT=${OUT:-docs/results}
if [ "$OUT" = docs/results ]; then DOC=${DOC:-docs/results.md}; else DOC=${DOC:-$OUT/results.md}; fi
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
py=python3
mkdir -p "$WORK" "$OUT"

# --reuse: a rerun in the same WORK keeps splits already made with these settings
$py -m training.synth --out "$WORK/test384" --count "$N384" --seed 900 --size 384 384 --workers 2 --reuse --overwrite
$py -m training.synth --out "$WORK/test1024" --count "$N1024" --seed 901 --size 1024 1024 --workers 2 --reuse --overwrite

inputs=(--inputs click scribble box text mix --rounds 5)
main=(--data "$WORK/test384" "${inputs[@]}" --noc-max 10)
large=(--data "$WORK/test1024" "${inputs[@]}" --noc-max 0)
R=$WORK/reports
# The classical baseline takes most of the time: it is cut into shares of images (--images A:B),
# and two workers of one thread each take the runs longest first; the shares are joined after.
share() {  # N SHARES -> "0:a a:b ..." covering 0..N
  local n=$1 k=$2 i; for ((i = 0; i < k; i++)); do echo "$((n * i / k)):$((n * (i + 1) / k))"; done | awk -F: '$2 > $1'
}
jobs=$WORK/jobs.txt; : > "$jobs"
for r in $(share "$N384" 4); do echo "--baseline ${main[*]} --images $r --out $R/main_baseline_${r%%:*}" >> "$jobs"; done
echo "--models DFIMat=models/base ${main[*]} --out $R/main_base" >> "$jobs"
for r in $(share "$N1024" 2); do echo "--baseline ${large[*]} --images $r --out $R/large_baseline_${r%%:*}" >> "$jobs"; done
echo "--models DFIMat=models/base ${large[*]} --out $R/large_base" >> "$jobs"
echo "--models DFIMat-S=models/small ${main[*]} --out $R/main_small" >> "$jobs"
echo "--models DFIMat-S=models/small ${large[*]} --out $R/large_small" >> "$jobs"
rm -rf "$R"; mkdir -p "$R"
bash training/recipes/eval_queue.sh "$jobs" "$R"

joined() {  # PREFIX -> the one report of its shares (or the share itself when there is one)
  local parts=("$1"_*/); parts=("${parts[@]%/}")
  if [ ${#parts[@]} -eq 1 ]; then echo "${parts[0]}"; return; fi
  $py -m training.report --join "${parts[@]}" --out "$1" > /dev/null && echo "$1"
}
bl_main=$(joined "$R/main_baseline"); bl_large=$(joined "$R/large_baseline")
rm -rf "$OUT/main" "$OUT/large"
$py -m training.report --merge "$R/main_small" "$bl_main" "$R/main_base" --out "$OUT/main"
$py -m training.report --merge "$R/large_small" "$bl_large" "$R/large_base" --out "$OUT/large"

MAIN="$OUT/main" LARGE="$OUT/large" DOC="$DOC" bash training/recipes/results_page.sh
echo "wrote $OUT/main, $OUT/large and $DOC"
