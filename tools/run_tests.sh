#!/usr/bin/env bash
# Sets up .venv (idempotent), then runs lint and the whole test suite.
# Usage: bash tools/run_tests.sh [extra pytest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
bash .dev_scripts/setup_env.sh --tests
echo "[tests] set-up took $(( $(date +%s) - start )) s"
echo "[tests] lint: ruff check and ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[tests] pytest"
.venv/bin/python -m pytest tests "$@"
echo "[tests] total $(( $(date +%s) - start )) s"
