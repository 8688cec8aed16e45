#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py arguments]
# Works without GPUs too: the processes then train on CPUs over gloo (omniris_mm.compat).
exec bash "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" "${@:3}"
