#!/usr/bin/env bash
# Set everything up, check the code (ruff, the layer contracts), then run the whole test suite
# headless (pytest-xvfb starts a virtual X server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports  # contracts in pyproject.toml: core <- io <- curation | coloring <- viewer <- _qt
.venv/bin/python -m pytest -p no:cacheprovider "$@"
