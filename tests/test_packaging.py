"""The npe2 manifest lives at the repository top level and ships inside the built package."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_top_level_manifest(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("napari_stimage-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("napari_stimage/napari.yaml")
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        assert "napari_stimage:napari.yaml" in archive.read(entry_points).decode()
    assert shipped == (ROOT / "napari.yaml").read_bytes()


def test_version_has_one_home():
    import re

    import napari_stimage

    declared = re.search(r'(?m)^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert napari_stimage.__version__ == declared
