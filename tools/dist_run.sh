#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: tools/dist_run.sh SCRIPT GPUS [SCRIPT arguments]
# runs tools/SCRIPT in GPUS processes with torch.distributed.run and --launcher pytorch.
# Works without GPUs too: the processes then run on CPUs over gloo (omniris_mm.compat).
SCRIPT=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}
[[ -x "$ROOT/.venv/bin/python" && -z "${VIRTUAL_ENV:-}" ]] && PYTHON="$ROOT/.venv/bin/python"
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
  --nproc_per_node="$GPUS" --master_port="$PORT" "$ROOT/tools/$SCRIPT" "${@:3}" --launcher pytorch
