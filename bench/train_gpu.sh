#!/usr/bin/env bash
# One campaign chunk on a lent GPU machine (issue "A model for any microscope"): resume the run
# carried in runs/gpu-carry (last.pt, train_state.pt, metrics.csv), train for at most
# ${GPU_MINUTES:-9} minutes on CUDA with ${SIM_WORKERS:-12} simulation workers, and put the
# checkpoint back under $OUT. The project is not installed there: it runs from this source tree
# (bench/run_from_source.py); mrcfile, which the GPU image lacks, travels as a wheel in .whl/
# (`python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl mrcfile`).
#
# Here, before the device call (CPU, seconds):
#   bash bench/train_gpu.sh prepare          # copies runs/campaign's resumable files to runs/gpu-carry
# On the device (the `run` tool, carry ["runs/gpu-carry", ".whl"]):
#   bash bench/train_gpu.sh run
# Back here: copy the returned files into runs/campaign, then `cosnet-index campaign eval`.
# Checked on CPU at toy size: GPU_MINUTES=0.1 DEVICE=cpu SIM_WORKERS=1 OUT=/tmp/o bash bench/train_gpu.sh run
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
carry=runs/gpu-carry
if [ "$mode" = prepare ]; then
    src=${2:-runs/campaign}
    mkdir -p "$carry"
    cp "$src/last.pt" "$src/train_state.pt" "$src/metrics.csv" "$carry/"
    du -sh "$carry"
    exit 0
fi
: "${OUT:?set OUT to the folder whose files come back}"
py=$(command -v python3 || command -v python)
if [ -d .whl ]; then
    "$py" -m pip install -q --no-index --find-links .whl/ .whl/*.whl 2>&1 | tail -2 || true
fi
"$py" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
set +e
"$py" bench/run_from_source.py "$PWD" campaign run "$carry" --minutes "${GPU_MINUTES:-9}" \
    --device "${DEVICE:-cuda}" --sim-workers "${SIM_WORKERS:-12}" --no-eval --no-progress \
    2>&1 | tee "$OUT/gpu_chunk.log"
rc=${PIPESTATUS[0]}
set -e
cp "$carry/last.pt" "$carry/train_state.pt" "$carry/metrics.csv" "$OUT/" 2>/dev/null || true
exit "$rc"
