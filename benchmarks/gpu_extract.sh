#!/usr/bin/env bash
# Stage 1 on a GPU (issue 29), one prepared run: the torch pipeline (decode, views, forward, write) against the
# bare model, ResNet-50 (random weights) at 224 px on CUB-sized synthetic pictures, bf16 autocast, channels_last.
# Needs torch, torchvision, numpy, h5py, pillow and tqdm (a GPU image's own torch will do), no TensorFlow.
# Run from the repository root:  bash benchmarks/gpu_extract.sh [extra bench_extract.py options]
# Not yet run: no GPU was lent to the session that wrote it (benchmarks/RESULTS.md says so).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "torchvision", "numpy", "h5py", "PIL", "tqdm") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing here: {', '.join(missing)}")
import torch, torchvision
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, cuda {torch.cuda.is_available()}")
PY
# 2,400 images (200 classes x 12; the train split's 1,200 measured) of 375-500 px, 9 inputs each; 32 images per batch
"$PY" benchmarks/bench_extract.py --backbone torchvision:resnet50 --device cuda --precision bf16,fp32 \
    --batch-size 288 --image-size 224 --min-side 375 --max-side 500 --classes 200 --no-patches "$@"
"$PY" benchmarks/bench_extract.py --backbone torchvision:resnet50 --device cuda --precision bf16 --spatial \
    --batch-size 288 --image-size 224 --min-side 375 --max-side 500 --classes 200 --no-patches "$@"
