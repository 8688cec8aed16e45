#!/usr/bin/env bash
# Creates or updates the project environment in .venv (idempotent; a second run only checks).
# Usage: bash .dev_scripts/setup_env.sh [--tests]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV="$ROOT/.venv"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
MMCV_VERSION=2.1.0
WITH_TESTS=0
[[ "${1:-}" == "--tests" ]] && WITH_TESTS=1

log() { printf '[setup] %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
CONSTRAINTS=(-c "$ROOT/requirements/constraints.txt")

# Stamps: what this venv was set up from. A run that asks for nothing new only checks.
stamp="$VENV/.omniris_stamp"
want="$(cat requirements/*.txt setup.py 2>/dev/null | sha1sum | cut -d' ' -f1) $TORCH_SPEC"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$have" == "$want tests" || ( "$have" == "$want" && $WITH_TESTS == 0 ) ]] \
    && "$VPY" -c "import mmcv._ext, omniris_mm" 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi
[[ "$have" == "$want tests" ]] && WITH_TESTS=1

log "base tools"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" "pip>=24" setuptools wheel ninja
log "installing $TORCH_SPEC"
read -ra TORCH_ARGS <<< "$TORCH_SPEC"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" "${TORCH_ARGS[@]}" numpy

# mmcv 2.1.0 ships only a source distribution. Without --no-build-isolation pip builds it against a
# fresh torch-less environment and silently skips the compiled ops, which mmdet.models needs.
if ! "$VPY" -c "import mmcv; assert mmcv.__version__ == '$MMCV_VERSION'; import mmcv._ext" 2>/dev/null; then
  log "building mmcv==$MMCV_VERSION with its ops (about 9 minutes on 2 cores; pip caches the wheel)"
  "${PIP[@]}" uninstall -y -q mmcv mmcv-full mmcv-lite 2>/dev/null || true
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA="${FORCE_CUDA:-0}" \
    "${PIP[@]}" install "${CONSTRAINTS[@]}" "mmcv==$MMCV_VERSION" --no-build-isolation
fi
if ! "$VPY" -c "import mmcv._ext; from mmcv.ops import MultiScaleDeformableAttention" ; then
  echo "[setup] ERROR: mmcv $MMCV_VERSION is installed without its compiled ops (mmcv._ext)." >&2
  echo "[setup] Remove a cached wheel with 'pip cache remove mmcv' and run this script again." >&2
  exit 1
fi

log "runtime requirements"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" -r requirements/runtime.txt
log "web demo and ONNX requirements (requirements/webui.txt, requirements/deploy.txt)"
"${PIP[@]}" install -q "${CONSTRAINTS[@]}" -r requirements/webui.txt -r requirements/deploy.txt
if [[ $WITH_TESTS == 1 ]]; then
  log "test requirements"
  "${PIP[@]}" install -q "${CONSTRAINTS[@]}" -r requirements/tests.txt
  # The web demo's browser test drives Debian's chromium; nothing downloads a browser at run time.
  if [[ ! -x /usr/bin/chromium ]]; then
    SUDO=()
    [[ $(id -u) != 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO=(sudo -n)
    if command -v apt-get >/dev/null 2>&1; then
      log "installing Debian's chromium and chromium-driver (apt) for the browser test"
      if ! { "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq \
          chromium chromium-driver >/dev/null; }; then
        echo "[setup] WARNING: could not install chromium with apt; the browser test will be skipped (failed under CI)." >&2
      fi
    else
      echo "[setup] WARNING: no apt-get: install chromium at /usr/bin/chromium for the browser test." >&2
    fi
  fi
fi
log "installing omniris_mm (editable)"
if ! "${PIP[@]}" install -q --no-deps --no-build-isolation -e . > "$VENV/.editable_install.log" 2>&1; then
  cat "$VENV/.editable_install.log" >&2
  exit 1
fi
"$VPY" -c "import mmcv._ext, mmdet.models, omniris_mm; print('[setup] ok: torch', __import__('torch').__version__, 'mmcv', __import__('mmcv').__version__, 'mmdet', __import__('mmdet').__version__, 'transformers', __import__('transformers').__version__)"
if [[ $WITH_TESTS == 1 ]]; then echo "$want tests" > "$stamp"; else echo "$want" > "$stamp"; fi
