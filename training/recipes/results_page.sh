#!/usr/bin/env bash
# Writes docs/results.md (or DOC) from the reports that exist: MAIN and LARGE (default
# docs/results/main and large), every docs/results/table4..7 ablation report, every latency file.
# Run by test_report.sh and ablations.sh, so the page is always put together the same way.
#
#   bash training/recipes/results_page.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
MAIN=${MAIN:-docs/results/main}; LARGE=${LARGE:-docs/results/large}; DOC=${DOC:-docs/results.md}
TABLES=${TABLES:-docs/results}
ablations=()
for t in "4:decoupled vs coupled training" "5:with vs without CRM" "6:MRN global / local / hybrid" \
         "7:scene-prior vs random compositing"; do
  [ -f "$TABLES/table${t%%:*}/report.json" ] && ablations+=(--ablation "Table ${t%%:*}: ${t#*:}=$TABLES/table${t%%:*}")
done
latency=()
for f in latency_cpu latency_base_cpu latency_small_cuda latency_base_cuda; do
  [ -f "docs/results/$f.json" ] && latency+=(--latency "docs/results/$f.json")
done
[ -f docs/results/latency_torch_cuda.json ] && latency+=(--torch-latency docs/results/latency_torch_cuda.json)
python3 -m training.results_doc --main "$MAIN" --large "$LARGE" "${ablations[@]}" "${latency[@]}" \
  --small DFIMat-S --base DFIMat --out "$DOC"
