"""Opening a slide the way `napari-stimage open` and `demo` do: parsing in a worker thread."""

import subprocess
import sys

import numpy as np

from napari_stimage._qt.loading import open_slide_in_viewer
from napari_stimage.cli import main


def test_open_in_worker_adds_layers(make_napari_viewer, qtbot, slide_paths):
    viewer = make_napari_viewer()
    worker = open_slide_in_viewer(viewer, slide_paths.count, dock_widgets=False)
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=5000)
    assert [layer.name for layer in viewer.layers] == [slide_paths.name, f"{slide_paths.name} spots"]
    assert np.allclose(viewer.layers[1].size, 2 * viewer.layers[1].metadata["stimage_slide"].spots["r"])


def test_open_in_worker_reports_bad_input_without_crashing(make_napari_viewer, qtbot, slide_paths, monkeypatch):
    import napari.utils.notifications as notifications

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    data = slide_paths.count.read_bytes()
    slide_paths.count.write_bytes(data[: len(data) // 3])
    viewer = make_napari_viewer()
    worker = open_slide_in_viewer(viewer, slide_paths.image, dock_widgets=False)
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert "_count.csv" in errors[0]
    assert len(viewer.layers) == 0


def test_cli_make_sample_and_reject_foreign_path(tmp_path, capsys):
    assert main(["make-sample", str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "annotation").is_dir()
    (tmp_path / "plain.png").write_bytes(b"x")
    assert main(["open", str(tmp_path / "plain.png")]) == 2
    assert "not a file of an STimage-1K4M slide" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "napari_stimage.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "open", "render", "make-sample"):
        assert command in out


def test_manifest_is_valid():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-stimage")
    manifest.validate_imports()
    assert manifest.contributions.readers and manifest.contributions.sample_data


def test_cli_messages_name_the_problem(tmp_path, slide_paths, capsys):
    assert main(["open", str(tmp_path / "missing_coord.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    out = str(tmp_path / "x.png")
    assert main(["render", str(slide_paths.image), "--gene", "erb", "--out", out]) == 2
    assert "did you mean ERBB2" in capsys.readouterr().err
    assert main(["render", str(slide_paths.image), "--gene", "ERBB2", "--colormap", "magmaa", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "unknown colormap 'magmaa'" in err and "magma" in err and len(err) < 200


def test_cancel_from_the_progress_bar_stops_the_load(make_napari_viewer, qtbot, slide_paths, monkeypatch):
    import threading

    import napari.utils.notifications as notifications

    import napari_stimage.io.stimage.reader as slide_module
    from napari_stimage.core.progress import Cancelled

    started = threading.Event()

    def slow_expression(path, progress=None, cancel=None, notes=None):
        started.set()
        while not cancel():  # a long parse that checks for cancellation between blocks
            progress(1, 100)
            threading.Event().wait(0.01)
        raise Cancelled(str(path))

    monkeypatch.setattr(slide_module, "load_expression", slow_expression)
    infos = []
    monkeypatch.setattr(notifications, "show_info", infos.append)
    viewer = make_napari_viewer()
    worker = open_slide_in_viewer(viewer, slide_paths.image, dock_widgets=False)
    assert started.wait(30)
    with qtbot.waitSignal(worker.finished, timeout=30000):  # generous: CI machines can be busy
        worker.progress_bar.cancel()  # what the activity panel's Cancel button does
    qtbot.waitUntil(lambda: bool(infos), timeout=5000)
    assert "cancelled" in infos[0] and len(viewer.layers) == 0


def test_cancelled_cache_build_leaves_nothing_behind(slide_paths):
    import pytest

    from napari_stimage import load_slide
    from napari_stimage.core.progress import Cancelled
    from napari_stimage.io.cache import cache_dir

    with pytest.raises(Cancelled):
        load_slide(slide_paths.coord, cancel=lambda: True)
    leftovers = [p for p in cache_dir().rglob("*") if p.is_file()]
    assert leftovers == []
    assert load_slide(slide_paths.coord).expression is not None  # and a later open works
