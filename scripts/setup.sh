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
  # the GE2E speaker encoder's weights ship inside this wheel (mono calls); its other
  # dependencies (webrtcvad, a typing backport) are not used, so --no-deps as well
  $PIP install -c constraints.txt --no-deps "resemblyzer==0.1.4"
  echo "$stamp" > "$VENV/.setup-stamp"
fi

# 5. A headless browser for tests/test_browser.py: Debian's chromium (driven by the playwright
#    package from .[dev]; `playwright install` cannot download its own builds here) and CJK
#    fonts for the screenshots. Optional: without it that one test skips and says why, so a
#    failed install only warns. Needs root and apt-get; skipped once both are present.
if ! command -v chromium >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null || true)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and fonts-noto-cjk for the browser test (about a minute)"
    if ! (export DEBIAN_FRONTEND=noninteractive
          apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            chromium fonts-noto-cjk) > "$VENV/browser-install.log" 2>&1; then
      echo "setup: warning: chromium not installed (see $VENV/browser-install.log);" \
           "tests/test_browser.py will be skipped"
    fi
  else
    echo "setup: no chromium (as root: apt-get install chromium fonts-noto-cjk);" \
         "tests/test_browser.py will be skipped"
  fi
fi

echo "setup: preparing Whisper weights in models/"
"$VENV/bin/callreview" models prepare
