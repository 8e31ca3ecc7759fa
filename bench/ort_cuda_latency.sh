#!/usr/bin/env bash
# ONNX Runtime latency of the shipped models on CUDA, on a GPU box whose onnxruntime is CPU-only.
#
# Here, once: bash ../shared/tools/ort-gpu-parts.sh   (onnxruntime-gpu 1.31.1 in 50 MiB parts, .ortgpu/pNN)
# Then one device call per part, back to back (the box keeps /tmp while it stays warm), each with
# `.ortgpu/pNN` in carry and models/ moved out of the checkout (a call carries 64 MiB in all):
#   mkdir -p /tmp/ort && cp .ortgpu/p*/part* /tmp/ort/
# and last, with models/small + models/text (and models/base in a further call) in the checkout:
#   bash bench/ort_cuda_latency.sh "$OUT"
# or, where earlier calls copied the models folders to the box's /tmp/models (each call's checkout
# is re-sent, so folders left out of it are gone there): MODELS=/tmp/models bash bench/ort_cuda_latency.sh "$OUT"
# It joins the parts, installs the wheel beside the box's packages (PYTHONPATH), points the
# loader at the CUDA 13 / cuDNN 9 libraries of PyTorch's nvidia packages, checks that a session
# really runs on CUDA and writes bench/latency.py's figures for every models folder present as
# $OUT/latency_<variant>_cuda.json (the CPU rows of the same run come with them).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/ort_cuda_latency.sh OUTDIR}
WHEEL=${WHEEL:-onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl}
SITE=${SITE:-/tmp/site}
MODELS=${MODELS:-models}
mkdir -p "$OUT"
py=python3
if ! PYTHONPATH="$SITE" $py -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  ls /tmp/ort/part* >/dev/null 2>&1 || { echo "no /tmp/ort/part*: carry the .ortgpu parts first (see the header)"; exit 2; }
  cat /tmp/ort/part* > "/tmp/ort/$WHEEL" &&
    $py -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "/tmp/ort/$WHEEL" ||
    { echo "could not install /tmp/ort/$WHEEL (a part missing?): $(ls -la /tmp/ort)"; exit 2; }
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
libs=$($py -c "
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.update(d for d in glob.glob(os.path.join(root, 'nvidia', '*', 'lib')) if os.path.isdir(d))
print(':'.join(sorted(dirs)))")
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MODELS="$MODELS" $py - <<'PY' || exit 3
import os
import onnxruntime as ort
from plugin.engine import MattingEngine
print("onnxruntime", ort.__version__, ort.get_available_providers())
eng = MattingEngine(os.environ["MODELS"] + "/small", device="cuda")
print("engine device:", eng.device)
assert eng.device == "cuda", "the engine did not start on CUDA"
PY
for d in "$MODELS/small" "$MODELS/base"; do
  [ -f "$d/manifest.json" ] || continue
  v=$(basename "$d")
  timeout 240 $py bench/latency.py --models "$d" --variant "$v" --no-sam --sizes 512,1024,2048 --repeats 5 \
    --json "$OUT/latency_${v}_cuda.json" 2>&1 | tail -n 12
done
ls -la "$OUT"
