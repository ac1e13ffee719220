"""Degraded environments: unusable cache or recovery folders, leftovers of killed processes,
corrupt recovery files. The slide still opens, labels still save, and the user is told once."""

import errno
import json
import os
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_stimage import load_slide
from napari_stimage.core import storage
from napari_stimage.core.errors import StorageWarning
from napari_stimage.curation.editor import LabelEditor, recovery_path_for
from napari_stimage.io import cache, images
from napari_stimage.io.count_csv import read_count_csv
from napari_stimage.io.stimage.annotation import read_annotation


def _break_cache(how, tmp_path, monkeypatch):
    """Make the cache folder unusable in one of the ways users meet; returns the folder to blame."""
    if how == "through a regular file":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
        return blocker / "cache"
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(folder))
    folder.mkdir()
    if how == "stray files where folders belong":
        (folder / f"expression-v{cache.FORMAT_VERSION}").write_text("stray")
        (folder / f"images-v{images.PYRAMID_FORMAT_VERSION}").write_text("stray")
        return folder / f"expression-v{cache.FORMAT_VERSION}"
    error = errno.EROFS if how == "read-only" else errno.ENOSPC

    def refuse(target, *args, **kwargs):
        raise OSError(error, os.strerror(error), str(target.parent))

    monkeypatch.setattr(cache, "temp_dir_next_to", refuse)
    monkeypatch.setattr(storage, "temp_name", refuse)  # the pyramid's temporary file
    return folder / f"expression-v{cache.FORMAT_VERSION}"


@pytest.mark.parametrize("how", ["through a regular file", "stray files where folders belong", "read-only", "full"])
def test_an_unusable_cache_folder_still_opens_the_slide_with_a_note(slide_paths, tmp_path, monkeypatch, how):
    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)  # the image goes through the pyramid too
    blamed = _break_cache(how, tmp_path, monkeypatch)
    slide = load_slide(slide_paths.coord, decode_image=True)
    direct = read_count_csv(slide_paths.count)
    assert (slide.expression.matrix != direct.matrix).nnz == 0
    assert slide.image_levels is not None and slide.report.image_error is None
    notes = slide.report.notes
    assert any(n.startswith("expression not cached, read into memory") and str(blamed) in n for n in notes), notes
    assert any(n.startswith("image pyramid not cached") for n in notes), notes
    assert "expression not cached" in slide.report.summary(slide.name)


def test_a_full_recovery_folder_turns_recovery_off_once_and_saves_still_work(tmp_path, monkeypatch):
    from napari_stimage.curation import editor as editing

    path = tmp_path / "S_anno.csv"
    path.write_bytes(b",V2\nS_1-1,A\nS_2-1,B\n")

    def disk_full(target, data, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(editing, "atomic_write_bytes", disk_full)
    editor = LabelEditor(["S_1-1", "S_2-1"], read_annotation(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        editor.assign([0], "X")
        editor.assign([1], "Y")
        editor.undo()
    assert [type(w.message) for w in caught] == [StorageWarning]  # told once
    assert "recovery of unsaved labels is off" in str(caught[0].message) and "No space left" in str(caught[0].message)
    assert editor.labels.tolist() == ["X", "B"]
    editor.save()
    assert not editor.dirty and path.read_bytes() == b",V2\nS_1-1,X\nS_2-1,B\n"


def test_a_recovery_folder_through_a_regular_file_does_not_stop_editing_or_saving(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(cache.DATA_ENV, str(blocker / "data"))
    path = tmp_path / "S_anno.csv"
    path.write_bytes(b",V2\nS_1-1,A\n")
    editor = LabelEditor(["S_1-1"], read_annotation(path))
    with pytest.warns(StorageWarning, match=str(blocker)):
        editor.assign([0], "Z")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told once: no second warning from saving
        editor.save()
    assert path.read_bytes() == b",V2\nS_1-1,Z\n" and not editor.dirty


def test_a_save_does_not_fail_when_the_recovery_file_cannot_be_removed(tmp_path, monkeypatch):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(b",V2\nS_1-1,A\n")
    editor = LabelEditor(["S_1-1"], read_annotation(path))
    editor.assign([0], "Z")
    assert editor.recovery_path.exists()

    recovery, real_unlink = editor.recovery_path, type(editor.recovery_path).unlink

    def read_only(self, missing_ok=False):
        if self == recovery:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(type(recovery), "unlink", read_only)
    with pytest.warns(StorageWarning, match="Read-only"):
        editor.save()
    assert path.read_bytes() == b",V2\nS_1-1,Z\n" and not editor.dirty


def test_leftovers_of_killed_processes_are_removed_at_the_next_start(slide_paths, monkeypatch):
    monkeypatch.setattr(cache, "_cleaned_once", False)
    anno = slide_paths.annotation.parent
    expr = cache.cache_dir() / "expression-v1"
    pyr = cache.cache_dir() / "images-v1"
    rec = cache.data_dir() / "recovery"
    for folder in (expr, pyr, rec):
        folder.mkdir(parents=True, exist_ok=True)
    sha = "a" * 40
    old = [
        anno / f".{slide_paths.annotation.name}.k3j2h1.tmp",  # mkstemp of earlier versions
        anno / f".{slide_paths.annotation.name}.123.abcdef12{storage.TEMP_MARK}",
        expr / f".{sha}.4242.0badf00d.tmp",  # a cache work folder
        expr / f".{sha}.4242.0badf00d{storage.TEMP_MARK}",
        pyr / f".{sha}.4242.0badf00d.tif",  # a GB-size pyramid being written
        rec / ".recovery.x1y2.tmp",
    ]
    fresh = anno / f".{slide_paths.annotation.name}.999.12345678{storage.TEMP_MARK}"  # a save in progress
    keep = [slide_paths.annotation, anno / ".hidden-notes.txt", fresh]
    for path in old:
        if path.suffix == ".tmp" and path.parent == expr:
            path.mkdir()
            (path / "indices.npy").write_bytes(b"x" * 1000)
        else:
            path.write_bytes(b"partial")
    (anno / ".hidden-notes.txt").write_text("mine")
    fresh.write_bytes(b"in progress")
    hours_ago = time.time() - 2 * 3600
    for path in old:
        os.utime(path, (hours_ago, hours_ago))
    os.utime(anno / ".hidden-notes.txt", (hours_ago, hours_ago))
    load_slide(slide_paths.coord)
    assert [p for p in old if p.exists()] == []
    assert all(p.exists() for p in keep)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.integers() | st.text(max_size=4),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                     ["version", "labels", "saved_at", "annotation_path", "slide"]), inner, max_size=5),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
))
def test_a_corrupt_recovery_file_is_reported_and_set_aside(tmp_path, content):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(b",V2\nS_1-1,A\n")
    editor = LabelEditor(["S_1-1"], read_annotation(path))
    recovery = recovery_path_for(path)
    for stray in recovery.parent.glob("*.corrupt-*"):
        stray.unlink()
    recovery.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = editor.find_recovery()
    if found is not None:  # a well-formed file after all: offered, nothing set aside
        assert isinstance(found.labels, dict) and not caught
        return
    assert not recovery.exists()
    aside = list(recovery.parent.glob(f"{recovery.stem}.corrupt-*.json"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert len(caught) == 1 and str(aside[0]) in str(caught[0].message)
    assert np.all(editor.labels == np.array(["A"], dtype=object))


@pytest.mark.timeout(60)
def test_viewer_open_with_an_unusable_cache_shows_the_slide_and_one_note(make_napari_viewer, slide_paths, tmp_path, monkeypatch):
    import napari.utils.notifications as notifications

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    viewer = make_napari_viewer()
    viewer.open(str(slide_paths.coord), plugin="napari-stimage")
    spots = viewer.layers[f"{slide_paths.name} spots"]
    assert len(spots.data) > 0 and "total_counts" in spots.features.columns
    assert len(shown) == 1 and "expression not cached, read into memory" in shown[0] and str(blocker) in shown[0]
