#!/usr/bin/env bash
# Sets up .venv (idempotent), then runs the main job on the embedded default:
#   1. writes the synthetic OmniShapes set (data/omnishapes) and checks its files with the oracle;
#   2. trains the tiny OmniSegNet on it on the CPU (text, visual and omni samples, mask/box/scribble prompts);
#   3. evaluates it on every test split (text, visual, omni), prints the OmniRIS table and writes
#      one picture per test sample.
# Usage: bash tools/quickstart.sh [WORK_DIR]   (default work_dirs/quickstart)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY=.venv/bin/python
WORK=${1:-work_dirs/quickstart}
CONFIG=configs/omnishapes/omnisegnet_tiny_2k_omnishapes.py
DATA=data/omnishapes
start=$(date +%s)
mkdir -p "$WORK"
TABLE='OmniRIS results|^group |^(all|1v1|1vN|Nv1|NvN|no-target|text|visual|omni)(/[a-z]+)? +[0-9]|^skipped: '

# run_logged LOG PATTERN CMD...: the whole output goes to LOG, the lines matching PATTERN to the screen;
# on failure, the end of LOG is shown.
run_logged() {
  local log=$1 pattern=$2
  shift 2
  set +e
  "$@" 2>&1 | tee "$log" | { grep --line-buffered -E "$pattern" || true; } \
    | sed -u -E 's/ - mmengine - INFO - / /; s/  (loss_[a-z_]+: [0-9.]+ *)+$//'
  local status=${PIPESTATUS[0]}
  set -e
  if ((status != 0)); then
    echo "[quickstart] failed (exit $status): $*; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit "$status"
  fi
}
if [[ ! -f "$DATA/OmniRef.json" ]]; then
  $PY tools/dataset_converters/make_omnishapes.py "$DATA"
else
  echo "[quickstart] using the existing $DATA"
fi
echo "[quickstart] oracle on the OmniShapes test splits (every figure must read 100)"
run_logged "$WORK/oracle.log" "$TABLE" \
  $PY tools/analysis_tools/eval_oracle.py configs/omnishapes/oracle_omnishapes.py

echo "[quickstart] training $CONFIG on the CPU (progress every 50 iterations) -> $WORK"
run_logged "$WORK/train.log" "Iter\(train\)|Saving checkpoint" $PY tools/train.py "$CONFIG" --work-dir "$WORK"
CKPT="$WORK/iter_2000.pth"
[[ -f "$CKPT" ]] || { echo "[quickstart] training did not write $CKPT" >&2; exit 1; }

echo "[quickstart] evaluating every test split and drawing the predictions"
run_logged "$WORK/test.log" "$TABLE" \
  $PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test" --show-dir pictures
$PY - "$WORK/test" "$start" <<'PYEOF'
import glob, json, os, sys, time
run = sorted(glob.glob(os.path.join(sys.argv[1], '*', '*.json')))[-1]
metrics = json.load(open(run))
pictures = os.path.join(os.path.dirname(run), 'pictures')
print(f'[quickstart] gIoU: text {metrics["text/gIoU"]:.1f}, visual {metrics["visual/gIoU"]:.1f}, '
      f'omni {metrics["omni/gIoU"]:.1f}, all {metrics["gIoU"]:.1f}; N-acc {metrics["N-acc"]:.1f}')
print(f'[quickstart] {len(os.listdir(pictures))} pictures in {pictures}')
print(f'[quickstart] data, training and testing took {(time.time() - float(sys.argv[2])) / 60:.1f} min')
PYEOF
