"""The layering of docs/architecture.md holds: below viewer/ the package needs neither napari nor Qt."""

import subprocess
import sys
import textwrap
from pathlib import Path

import napari_stimage

BLOCKED = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "magicgui", "app_model", "vispy")

SCRIPT = """
import importlib, importlib.abc, pkgutil, sys

BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: the Qt-free core must not import it")
        return None

sys.meta_path.insert(0, Block())

import napari_stimage
from napari_stimage import load_slide
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.synthetic import write_synthetic_slide

imported = []
for package in ("core", "io", "curation"):
    root = importlib.import_module(f"napari_stimage.{{package}}")
    for info in pkgutil.walk_packages(root.__path__, prefix=root.__name__ + "."):
        imported.append(importlib.import_module(info.name).__name__)
import napari_stimage.coloring as col

paths = write_synthetic_slide(sys.argv[1])
slide = load_slide(paths.coord, decode_image=True)
gene = slide.default_genes[0]
assert slide.gene_values(gene).shape == (slide.n_spots,)
assert slide.image_levels and slide.features().shape[0] == slide.n_spots
labelled = col.label_colors(slide.labels, col.LabelPalette(user_colors=False))
editor = LabelEditor.from_slide(slide, autosave=False)
editor.assign([0, 1], "TLS")
editor.save()
assert load_slide(paths.coord).labels[0] == "TLS"
leaked = sorted({{m.split(".")[0] for m in sys.modules}} & BLOCKED)
assert not leaked, leaked
print("OK", len(imported), "modules", slide.n_spots, "spots", labelled.shape)
"""


def test_everything_below_viewer_imports_and_reads_a_slide_without_napari_or_qt(tmp_path):
    script = textwrap.dedent(SCRIPT.format(blocked=set(BLOCKED)))
    env = {"PYTHONPATH": str(Path(napari_stimage.__file__).parents[1]), "NAPARI_STIMAGE_CACHE": str(tmp_path / "cache"),
           "NAPARI_STIMAGE_DATA": str(tmp_path / "data"), "NAPARI_STIMAGE_CONFIG": str(tmp_path / "config"),
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "STimage-1K4M")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK ")
    assert int(run.stdout.split()[1]) >= 15  # every module of core/, io/ and curation/ was imported


def test_the_block_would_catch_a_napari_import(tmp_path):
    """The check above can fail: the same script stops at a module that needs napari."""
    script = textwrap.dedent(SCRIPT.format(blocked=set(BLOCKED)))
    script = script.replace("import napari_stimage.coloring as col\n", "import napari_stimage.viewer.bins as col\ncol.is_bin_labels_layer(None)\n")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(napari_stimage.__file__).parents[1])}, timeout=120)
    assert run.returncode != 0 and "napari is blocked" in run.stderr
