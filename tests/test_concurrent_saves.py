"""Two curators (real processes) saving one annotation file: no acknowledged edit is ever lost."""

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_stimage.core.storage import file_lock, lock_path
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.io.stimage.annotation import (
    AnnotationChangedOnDisk,
    AnnotationDeletedOnDisk,
    backup_path,
    read_annotation,
    write_annotation,
)

SPOTS = [f"S_{i:03d}-1" for i in range(40)]
BASE = (",V2\n" + "".join(f"{s},L{i % 3}\n" for i, s in enumerate(SPOTS))).encode()


def _curator(path: str, who: int, start_at: float, load_delay: float, save_delay: float, results) -> None:
    """Load, wait, relabel spot `who` as `mine-{who}`, wait, save; report what happened."""
    time.sleep(max(start_at - time.time(), 0) + load_delay)
    editor = LabelEditor(SPOTS, read_annotation(path), autosave=False)
    editor.assign([who], f"mine-{who}")
    time.sleep(save_delay)
    try:
        editor.save()
        results.put((who, "saved"))
    except AnnotationChangedOnDisk:
        results.put((who, "refused"))
    except Exception as exc:  # noqa: BLE001 -- any other outcome fails the test with its text
        results.put((who, f"error {exc!r}"))


def _run_curators(path: Path, schedule) -> dict[int, str]:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start_at = time.time() + 0.3  # every process forked before anyone starts
    procs = [
        ctx.Process(target=_curator, args=(str(path), who, start_at, load, save, results))
        for who, (load, save) in enumerate(schedule)
    ]
    for proc in procs:
        proc.start()
    outcome = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    return outcome


schedules = st.lists(
    st.tuples(st.sampled_from([0.0, 0.0, 0.001, 0.01, 0.05]), st.sampled_from([0.0, 0.0, 0.002, 0.02, 0.08])),
    min_size=2,
    max_size=4,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules)
def test_concurrent_saves_never_lose_an_acknowledged_edit(tmp_path, schedule):
    folder = Path(tmp_path) / f"run{time.monotonic_ns()}"
    folder.mkdir()
    path = folder / "S_anno.csv"
    path.write_bytes(BASE)
    outcome = _run_curators(path, schedule)
    assert all(result in ("saved", "refused") for result in outcome.values()), outcome
    assert "saved" in outcome.values()  # somebody always gets through
    final = read_annotation(path).first_labels()
    for who, result in outcome.items():
        # told "saved" => the edit is in the file; told "refused" => the file never had it
        assert (final[SPOTS[who]] == f"mine-{who}") == (result == "saved"), (outcome, schedule)
    assert not lock_path(path).exists()
    assert sorted(p.name for p in folder.iterdir()) == ["S_anno.csv", "S_anno.csv.bak", "S_anno.csv.orig"]


def test_simultaneous_saves_one_wins_the_other_is_told_why(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    outcome = _run_curators(path, [(0.0, 0.0), (0.0, 0.0)])
    assert sorted(outcome.values()) == ["refused", "saved"]


def test_a_save_waits_for_the_lock_and_then_sees_the_other_save(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    table = read_annotation(path)
    with file_lock(path):  # another curator is in the middle of saving ...
        path.write_bytes(BASE.replace(b"S_005-1,L2", b"S_005-1,theirs"))
    with pytest.raises(AnnotationChangedOnDisk, match="changed on disk.*not overwritten"):
        write_annotation(table.with_labels({SPOTS[0]: "mine"}), path, expected=table.fingerprint)
    assert b"theirs" in path.read_bytes() and b"mine" not in path.read_bytes()


def test_a_lock_left_by_a_killed_process_is_broken(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    import socket

    lock_path(path).write_text(f'{{"pid": {proc.pid}, "host": "{socket.gethostname()}", "time": 0}}')
    table = read_annotation(path)
    write_annotation(table.with_labels({SPOTS[0]: "mine"}), path, expected=table.fingerprint)
    assert b"S_000-1,mine" in path.read_bytes() and not lock_path(path).exists()


def test_a_lock_held_by_a_live_process_makes_the_save_fail_naming_it(tmp_path, monkeypatch):
    from napari_stimage.core import storage

    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    lock_path(path).write_text(f'{{"pid": {os.getpid()}, "host": "elsewhere", "time": 0}}')
    monkeypatch.setattr(storage, "LOCK_TIMEOUT_SECONDS", 0.2)
    table = read_annotation(path)
    with pytest.raises(storage.FileLocked, match="process .* on elsewhere"):
        write_annotation(table.with_labels({SPOTS[0]: "mine"}), path, expected=table.fingerprint, )
    assert path.read_bytes() == BASE


def test_a_symlinked_annotation_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "dataset" / "annotation"
    real.mkdir(parents=True)
    (real / "S_anno.csv").write_bytes(BASE)
    link = tmp_path / "S_anno.csv"
    link.symlink_to(real / "S_anno.csv")
    editor = LabelEditor(SPOTS, read_annotation(link), autosave=False)
    editor.assign([1], "edited")
    editor.save()
    assert link.is_symlink() and os.readlink(link) == str(real / "S_anno.csv")
    assert b"S_001-1,edited\n" in (real / "S_anno.csv").read_bytes()
    assert backup_path(real / "S_anno.csv").read_bytes() == BASE  # the backup sits next to the real file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S_anno.csv", "dataset"]


def test_an_annotation_deleted_since_loading_is_not_recreated_silently(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    editor = LabelEditor(SPOTS, read_annotation(path), autosave=False)
    editor.assign([2], "edited")
    path.unlink()
    with pytest.raises(AnnotationDeletedOnDisk, match="deleted on disk"):
        editor.save()
    assert not path.exists() and editor.dirty
    editor.save(force=True)  # the user said "re-create"
    assert b"S_002-1,edited\n" in path.read_bytes()
