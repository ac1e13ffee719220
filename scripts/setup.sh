#!/usr/bin/env bash
# Install the system libraries napari needs (Debian) and the package with its test extras into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="xvfb libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 \
libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-cursor0 libegl1"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null && ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -m venv .venv 2>/dev/null; then
  # Debian's system Python ships venv separately
  rm -rf .venv
  $SUDO apt-get install -y -qq python3-venv >/dev/null
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
# [spatialdata]: SpatialData .zarr in/out and the scanpy/napari-spatialdata checks (a fresh venv with both extras: 1 min 47 s, measured)
.venv/bin/python -m pip install -q -e ".[testing,spatialdata]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import napari_stimage, napari, PyQt6" # fail loudly if the install did not work
