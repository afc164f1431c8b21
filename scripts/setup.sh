#!/usr/bin/env bash
# Set up callreview in .venv at the repo root and prepare the Whisper weights in models/.
# Idempotent: a second run with unchanged dependency files takes a few seconds.
#
# Order matters on this stack (see README "Installing"):
#  1. torch pinned first: an unpinned torch requirement pulls the newest CUDA build (GBs).
#  2. the project with constraints.txt (Prefect 3.8.8 needs fastapi==0.150.0, sqlalchemy<2.1).
#  3. openai-whisper last, with --no-deps: its Linux metadata pulls triton (~1 GB), used only by
#     CUDA word-timestamp kernels; its real runtime dependencies are in pyproject.toml. Installed
#     last, no later pip call re-checks it, so pip prints no conflict for the missing triton.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/pip --disable-pip-version-check -q"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.setup-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing dependencies (first time: about 2 minutes)"
  $PIP install --upgrade "pip>=24"
  $PIP install -c constraints.txt "torch==2.13.0"
  $PIP install -c constraints.txt --no-warn-conflicts -e ".[dev,bench]"
  $PIP install -c constraints.txt --no-deps "openai-whisper==20250625"
  echo "$stamp" > "$VENV/.setup-stamp"
fi

echo "setup: preparing Whisper weights in models/"
"$VENV/bin/callreview" models prepare
