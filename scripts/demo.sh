#!/usr/bin/env bash
# Set everything up, then open napari on the bundled synthetic slide.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/napari-stimage demo
