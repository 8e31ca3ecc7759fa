#!/usr/bin/env bash
# Runs the `training.evaluate` calls listed in JOBS (one per line, shell-quoted arguments, the last
# one the report folder) two at a time, each logged to LOGDIR/<report folder name>.log, and stops
# at the first that fails. The one queue test_report.sh and ablations.sh score with.
#
#   bash training/recipes/eval_queue.sh JOBS LOGDIR
set -euo pipefail
jobs=$1 logs=$2
# shellcheck disable=SC2016
xargs -P 2 -d '\n' -I{} bash -c 'eval "set -- $1"; log=$0/$(basename "${*: -1}").log; python3 -m training.evaluate "$@" > "$log" 2>&1 || { echo "failed: $log" >&2; exit 255; }' "$logs" {} < "$jobs"
