#!/usr/bin/env bash
# Sets up .venv (idempotent), then runs the main job on the embedded default:
#   1. writes the synthetic OmniShapes set (data/omnishapes) and checks its files with the oracle;
#   2. trains the tiny OmniSegNet on it on the CPU, every prompt kind in one model: text, visual (mask, box,
#      scribble; 1 to 3 exemplars) and omni samples, prompts on the target itself (clicks, box, scribble) and
#      negative exemplars;
#   3. evaluates it on every test split (text, visual, omni), prints the OmniRIS table and writes
#      one picture per test sample;
#   4. beside step 3, scores the new prompt kinds: clicks (mIoU@1, NoC@85/90), boxes on the target, 5-shot
#      exemplars and negative exemplars.
# Usage: bash tools/quickstart.sh [WORK_DIR]   (default work_dirs/quickstart)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash .dev_scripts/setup_env.sh
PY=.venv/bin/python
WORK=${1:-work_dirs/quickstart}
CONFIG=configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py
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

echo "[quickstart] evaluating every test split and drawing the predictions;" \
  "scoring the prompts on the target, 5 exemplars and negative exemplars beside it"
KINDS=(configs/omnishapes/{interactive,target_box,kshot,negative}_omnishapes.py)
# The scores in one process for the four (tools/test.py tests several configs in turn: the imports
# and the set-up once), side by side with the test, one thread each: the picture drawing keeps one
# core busy on its own. 70.5-72.5 s -> 53.9-54.1 s, every figure and picture the same to the byte.
OMP_NUM_THREADS=1 $PY tools/test.py "${KINDS[@]}" "$CKPT" --work-dir "$WORK/test_kinds" \
  > "$WORK/test_kinds.log" 2>&1 &
KINDS_PID=$!
trap 'kill "$KINDS_PID" 2>/dev/null || true' EXIT  # a failed test stops the scores too
OMP_NUM_THREADS=1 run_logged "$WORK/test.log" "$TABLE" \
  $PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/test" --show-dir pictures
set +e
wait "$KINDS_PID"
status=$?
set -e
trap - EXIT
if ((status != 0)); then
  echo "[quickstart] failed (exit $status): tools/test.py ${KINDS[*]}; the end of $WORK/test_kinds.log:" >&2
  tail -n 40 "$WORK/test_kinds.log" >&2
  exit "$status"
fi
grep -E "^(mIoU@1|NoC@(85|90)) |^skipped: " "$WORK/test_kinds.log" || true
$PY - "$WORK" "$start" <<'PYEOF'
import glob, json, os, sys, time
def metrics(name):
    run = sorted(glob.glob(os.path.join(sys.argv[1], name, '*', '*.json')))[-1]
    return run, json.load(open(run))
run, m = metrics('test')
pictures = os.path.join(os.path.dirname(run), 'pictures')
print(f'[quickstart] gIoU: text {m["text/gIoU"]:.1f}, visual {m["visual/gIoU"]:.1f}, '
      f'omni {m["omni/gIoU"]:.1f}, all {m["gIoU"]:.1f}; N-acc {m["N-acc"]:.1f}')
print(f'[quickstart] instances: count-acc {m["count-acc"]:.1f}, mask-AP {m["mask-AP"]:.1f}, '
      f'outside the union {m["outside"]:.1f} %')
clicks, box, kshot, neg = (
    metrics(f'test_kinds/{k}_omnishapes')[1] for k in ('interactive', 'target_box', 'kshot', 'negative'))
print(f'[quickstart] clicks on the target: mIoU@1 {clicks["mIoU@1"]:.1f}, NoC@85 {clicks["NoC@85"]:.2f}, '
      f'NoC@90 {clicks["NoC@90"]:.2f}; a box on the target: mIoU {box["gIoU"]:.1f}')
print(f'[quickstart] 5 exemplars: visual gIoU {kshot["gIoU"]:.1f} (1 exemplar: {m["visual/gIoU"]:.1f}); '
      f'with a negative exemplar: gIoU {neg["gIoU"]:.1f}, {neg["excluded"]:.1f} % of the excluded kind answered')
print(f'[quickstart] {len(os.listdir(pictures))} pictures in {pictures}')
print(f'[quickstart] data, training and testing took {(time.time() - float(sys.argv[2])) / 60:.1f} min')
PYEOF
