# Sourced by the GPU recipes: the session clock that cuts time boxes from BUDGET, and the
# environment every step shares (no hub access; the shipped int8 MiniLM graph stands in for the
# MiniLM package, too large to send to the GPU box).
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
at() { echo "$1 after $(( $(date +%s) - START )) s"; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DFIMAT_TEXT_ENCODER=models/small
py=python3
