#!/usr/bin/env bash
# Set everything up, then run the whole test suite headless (pytest-xvfb starts a virtual X server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -p no:cacheprovider "$@"
