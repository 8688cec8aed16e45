#!/usr/bin/env bash
# Sets up .venv (idempotent), then runs the main job on the embedded default:
# writes the synthetic OmniShapes set and scores the oracle baseline on its test splits.
# (Training the tiny OmniSegNet on it joins this job once the model lands.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
DATA=data/omnishapes
if [[ ! -f "$DATA/OmniRef.json" ]]; then
  .venv/bin/python tools/dataset_converters/make_omnishapes.py "$DATA"
else
  echo "[quickstart] using the existing $DATA"
fi
echo "[quickstart] oracle baseline on the OmniShapes test splits (every figure must read 100)"
.venv/bin/python tools/analysis_tools/eval_oracle.py configs/omnishapes/oracle_omnishapes.py
