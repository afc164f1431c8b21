#!/usr/bin/env bash
# Regenerate constraints.txt from the current .venv (after adding or upgrading a dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions the project is tested with (pip freeze of a working .venv)."
  echo "# scripts/setup.sh installs with these as constraints; regenerate with scripts/lock.sh."
  echo "torch==2.13.0"
  .venv/bin/pip freeze --exclude-editable | grep -v -i -E "^(callreview|torch)=" | sed 's/+cpu//'
} > constraints.txt
