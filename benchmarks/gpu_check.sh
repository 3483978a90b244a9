#!/usr/bin/env bash
# GPU readiness check, one prepared run: installs what the device lacks, then prints one JSON line
# (benchmarks/gpu_check.py). Arguments go to gpu_check.py, e.g.:
#   bash benchmarks/gpu_check.sh                        # CUDA, native sizes, 4 epochs per model
#   bash benchmarks/gpu_check.sh --device cpu --max-steps 2 --size 32 --frames 4 --per-class 2
# Offline machines: put wheels in .whl/ (pip download -d .whl torch torchvision av ...) and carry it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in .venv/bin/python python3 python; do
    if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo '{"error": "no python found"}'; exit 1; }

missing=$("$PY" - <<'PYEOF'
import importlib.util
need = {"torch": "torch", "torchvision": "torchvision", "av": "av", "numpy": "numpy",
        "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "tqdm": "tqdm", "matplotlib": "matplotlib",
        "librosa": "librosa"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "gpu_check: installing $missing" >&2
  if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --find-links .whl $missing >&2
  else
    "$PY" -m pip install -q $missing >&2
  fi
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py "$@"
