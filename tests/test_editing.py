"""The label edit model: assign/undo/redo/save against an independent model of the expected file."""

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_stimage.curation.editor import LabelEditor, recovery_path_for
from napari_stimage.io.stimage.annotation import read_annotation
from napari_stimage.viewer.editors import editor_for_layer

SLIDE_IDS = [f"S_{c}-1" for c in "ABCDEFGH"]
# header ",V2"; a repeated id (A), an unknown spot (X), empty and NA labels; spots F..H not in the file
BASE_LINES = [",V2", "S_A-1,L1", "S_B-1,", "S_C-1,NA", 'S_D-1,"GG4, Cribriform"', "S_X-1,Exclude",
              "S_A-1,undetermined", "S_E-1,L2"]
BASE = ("\n".join(BASE_LINES) + "\n").encode()
FIRST = {"S_A-1": "L1", "S_B-1": None, "S_C-1": None, "S_D-1": "GG4, Cribriform", "S_E-1": "L2"}

label_text = st.text(
    alphabet=st.sampled_from(list("ab L1*,\"'é✓_-")), min_size=1, max_size=8
).filter(lambda s: s == s.strip() and s.strip() not in {"", "NA", "NaN", "nan", "N/A", "<NA>"})
labels = st.one_of(st.none(), st.sampled_from(["L1", "L2", "WM", "Benign*"]), label_text)
op = st.one_of(
    st.tuples(st.just("assign"), st.lists(st.integers(0, len(SLIDE_IDS) - 1), min_size=1, max_size=4), labels),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
    st.tuples(st.just("save")),
)


def expected_file(current: dict) -> bytes:
    """What the file must hold: unchanged rows verbatim, changed spots' rows rewritten, new spots appended."""
    out = [BASE_LINES[0]]
    for line in BASE_LINES[1:]:
        spot = line.split(",", 1)[0]
        if spot in current and current[spot] != FIRST.get(spot):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([spot, current[spot] or ""])
            out.append(buf.getvalue())
        else:
            out.append(line)
    for spot in SLIDE_IDS:
        if spot not in FIRST and current[spot] is not None:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([spot, current[spot]])
            out.append(buf.getvalue())
    return ("\n".join(out) + "\n").encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=50), max_undo=st.sampled_from([3, 100]))
def test_random_edits_undo_redo_save_reload(ops, max_undo):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "S_anno.csv"
        path.write_bytes(BASE)
        editor = LabelEditor(SLIDE_IDS, read_annotation(path), max_undo=max_undo)
        state = {s: FIRST.get(s) for s in SLIDE_IDS}
        undo, redo = [], []
        saved_state = dict(state)
        for step in ops:
            if step[0] == "assign":
                _, idx, label = step
                new = dict(state)
                for i in idx:
                    new[SLIDE_IDS[i]] = label
                changed = editor.assign(idx, label)
                assert changed == sum(new[s] != state[s] for s in SLIDE_IDS)
                if new != state:
                    undo.append(state)
                    undo[:] = undo[-max_undo:]
                    redo.clear()
                    state = new
            elif step[0] == "undo":
                assert editor.undo() == bool(undo)
                if undo:
                    redo.append(state)
                    state = undo.pop()
            elif step[0] == "redo":
                assert editor.redo() == bool(redo)
                if redo:
                    undo.append(state)
                    state = redo.pop()
            else:
                editor.save()
                saved_state = dict(state)
                assert not editor.dirty
                assert path.read_bytes() == expected_file(state)
            assert editor.labels.tolist() == [state[s] for s in SLIDE_IDS]
            if not editor.dirty:
                assert state == saved_state
        editor.save()
        assert path.read_bytes() == expected_file(state)
        reloaded = LabelEditor(SLIDE_IDS, read_annotation(path))
        assert reloaded.labels.tolist() == [state[s] for s in SLIDE_IDS]
        assert read_annotation(path).spot_ids[: len(BASE_LINES) - 1] == [line.split(",")[0] for line in BASE_LINES[1:]]


def test_undo_keeps_at_least_100_steps(tmp_path):
    editor = LabelEditor(SLIDE_IDS, annotation_path=tmp_path / "S_anno.csv")
    for k in range(150):
        editor.assign([k % len(SLIDE_IDS)], f"L{k}")
    for _ in range(150):
        editor.undo()
    assert editor.labels.tolist() == [None] * len(SLIDE_IDS)
    assert editor.dirty is False  # back at the loaded state, which was still reachable


def test_labels_that_read_back_as_missing_are_refused(tmp_path):
    editor = LabelEditor(SLIDE_IDS, annotation_path=tmp_path / "S_anno.csv")
    with pytest.raises(ValueError, match="unlabelled"):
        editor.assign([0], "NA")
    assert editor.assign([0], float("nan")) == 0  # NaN means clear: nothing to clear


def test_repeated_coord_ids_share_one_label(tmp_path):
    editor = LabelEditor(["S_A-1", "S_B-1", "S_A-1"], annotation_path=tmp_path / "S_anno.csv")
    assert editor.assign([2], "L3") == 2
    assert editor.labels.tolist() == ["L3", None, "L3"]
    editor.save()
    assert (tmp_path / "S_anno.csv").read_bytes() == b",label\nS_A-1,L3\nS_B-1,\n"  # a new file: each id once


def test_recovery_is_written_offered_and_discarded_on_save(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    editor = LabelEditor(SLIDE_IDS, read_annotation(path), slide_name="S")
    editor.assign([1, 6], "tumor, edge")
    assert recovery_path_for(path).exists()
    # a crash: the next session finds the edits
    again = LabelEditor(SLIDE_IDS, read_annotation(path), slide_name="S")
    recovery = again.find_recovery()
    assert recovery is not None and recovery.labels == {"S_B-1": "tumor, edge", "S_G-1": "tumor, edge"}
    assert "2 unsaved" in recovery.describe()
    again.apply_recovery(recovery)
    assert again.labels.tolist() == editor.labels.tolist() and again.dirty
    again.save()
    assert not recovery_path_for(path).exists()
    assert path.read_bytes() == expected_file({**{s: FIRST.get(s) for s in SLIDE_IDS}, "S_B-1": "tumor, edge", "S_G-1": "tumor, edge"})


def test_editor_updates_the_layer_features_and_emits(slide):
    from napari.layers import Points

    from napari_stimage.viewer.layers import spots_layer_data

    data, meta, _ = spots_layer_data(slide)
    layer = Points(data, **meta)
    editor = editor_for_layer(layer)
    seen = []
    layer.events.features.connect(lambda e: seen.append(layer.features["label"].copy()))
    editor.assign([0, 1, 2], "brand new")
    assert list(layer.features["label"][:3]) == ["brand new"] * 3 and len(seen) == 1
    editor.undo()
    expected = slide.labels[:3]
    got = layer.features["label"][:3].tolist()
    assert all((a == b) or (a != a and b != b) for a, b in zip(got, expected, strict=True))
    assert len(seen) == 2
    assert editor_for_layer(layer) is editor


def test_unedited_slide_saves_byte_identical(slide, tmp_path):
    editor = LabelEditor.from_slide(slide)
    original = slide.paths.annotation.read_bytes()
    editor.assign([0], "x")
    editor.undo()
    assert not editor.dirty
    editor.save(tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_bytes() == original


def test_changed_on_disk_is_refused_unless_forced(slide):
    from napari_stimage.io.stimage.annotation import AnnotationChangedOnDisk

    editor = LabelEditor.from_slide(slide)
    editor.assign([0], "mine")
    slide.paths.annotation.write_bytes(b",V2\nsomeone,else\n")
    with pytest.raises(AnnotationChangedOnDisk):
        editor.save()
    assert slide.paths.annotation.read_bytes() == b",V2\nsomeone,else\n" and editor.dirty
    editor.save(force=True)
    assert not editor.dirty


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    radius=st.floats(0.5, 40),
    path=st.lists(st.tuples(st.floats(-10, 210), st.floats(-10, 210)), min_size=1, max_size=6),
)
def test_brush_index_matches_brute_force(seed, radius, path):
    from napari_stimage.core.selection import SpotIndex, points_near_path

    positions = np.random.default_rng(seed).uniform(0, 200, (400, 2))
    brute = points_near_path(positions, np.array(path), radius)
    dist = np.min(
        [np.hypot(*(positions - p).T) for p in np.array(path)], axis=0
    )  # the path's vertices alone are always inside the brush
    assert set(np.flatnonzero(dist <= radius)) <= set(brute.tolist())
    assert SpotIndex(positions).near_path(np.array(path), radius).tolist() == brute.tolist()


def test_save_as_moves_the_recovery_with_the_file(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    editor = LabelEditor(SLIDE_IDS, read_annotation(path))
    editor.assign([7], "new")
    assert recovery_path_for(path).exists()
    other = tmp_path / "elsewhere.csv"
    editor.save(other)
    assert not recovery_path_for(path).exists() and not editor.dirty
    assert path.read_bytes() == BASE and other.read_bytes() == BASE + b"S_H-1,new\n"
    editor.assign([7], None)
    assert recovery_path_for(other).exists()


def test_assign_accepts_masks_sets_and_rejects_bad_indices(tmp_path):
    editor = LabelEditor(SLIDE_IDS, annotation_path=tmp_path / "S_anno.csv")
    mask = np.zeros(len(SLIDE_IDS), bool)
    mask[[1, 5]] = True
    assert editor.assign(mask, "m") == 2 and editor.indices_with_label("m").tolist() == [1, 5]
    assert editor.assign({0, 1}, "s") == 2
    with pytest.raises(IndexError):
        editor.assign([len(SLIDE_IDS)], "x")
    with pytest.raises(IndexError):
        editor.assign(np.ones(3, bool), "x")


def test_failed_save_keeps_file_edits_and_recovery(tmp_path, monkeypatch):
    from napari_stimage.core import storage as storage_mod
    from napari_stimage.core.errors import SlideError

    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    editor = LabelEditor(SLIDE_IDS, read_annotation(path))
    editor.assign([0, 7], "keep me")

    def disk_full(handle, data):
        handle.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_mod, "write_payload", disk_full)
    with pytest.raises(SlideError, match="No space left"):
        editor.save()
    assert path.read_bytes() == BASE and editor.dirty
    assert recovery_path_for(path).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    editor.save()
    assert not editor.dirty and b"S_H-1,keep me\n" in path.read_bytes()


def test_saved_labels_come_back_when_the_slide_is_reopened(slide):
    from napari_stimage import load_slide

    editor = LabelEditor.from_slide(slide)
    editor.assign([0, 1, 2], "Lésion, \"B\" *")
    editor.assign([3], None)
    editor.save()
    reopened = load_slide(slide.paths.coord)
    got = [None if isinstance(v, float) else v for v in reopened.labels.tolist()]
    assert got == editor.labels.tolist()
    assert reopened.report.repeated_annotation_ids == slide.report.repeated_annotation_ids
    assert reopened.report.annotation_not_in_coord == slide.report.annotation_not_in_coord


def test_recovery_lives_outside_the_cache_folder(tmp_path):
    import os

    from napari_stimage.io.cache import cache_dir, data_dir

    recovery = recovery_path_for(tmp_path / "S_anno.csv")
    assert recovery.parent.parent == data_dir()
    assert os.environ["NAPARI_STIMAGE_DATA"] != os.environ["NAPARI_STIMAGE_CACHE"]
    assert not recovery.is_relative_to(cache_dir())  # emptying the cache never loses unsaved edits


def test_categories_keep_their_order_when_labels_are_added(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(BASE)
    editor = LabelEditor(SLIDE_IDS, read_annotation(path))
    assert editor.categories() == ["GG4, Cribriform", "L1", "L2"]  # the file's labels, natural order
    editor.assign([5], "Benign")  # would sort first by name
    editor.assign([6], "A0")
    assert editor.categories() == ["GG4, Cribriform", "L1", "L2", "Benign", "A0"]
    editor.assign([0], "L10")  # the last L1 spot: "L1" stays listed, keys 1-9 keep their meaning
    editor.undo()
    editor.undo()
    assert editor.categories() == ["GG4, Cribriform", "L1", "L2", "Benign", "A0", "L10"]
    editor.redo()
    assert editor.categories() == ["GG4, Cribriform", "L1", "L2", "Benign", "A0", "L10"]
    assert LabelEditor(SLIDE_IDS, read_annotation(path)).categories() == ["GG4, Cribriform", "L1", "L2"]


def test_new_labels_are_trimmed_but_labels_of_the_file_are_kept_exactly(tmp_path):
    from napari_stimage.curation.editor import normalise_label

    path = tmp_path / "S_anno.csv"
    data = b",V2\nS_A-1, L1 \nS_B-1,L2\n"
    path.write_bytes(data)
    editor = LabelEditor(SLIDE_IDS, read_annotation(path))
    assert editor.categories() == [" L1 ", "L2"]
    assert editor.assign([2], "  Benign  ") == 1 and editor.label_of(2) == "Benign"
    assert editor.assign([3], " L1 ") == 1 and editor.label_of(3) == " L1 "  # an existing label, as is
    assert editor.categories() == [" L1 ", "L2", "Benign"]
    with pytest.raises(ValueError, match="unlabelled"):
        editor.assign([4], "   ")
    editor.undo()
    editor.undo()
    editor.save()
    assert path.read_bytes() == data  # the file's own labels round-trip
    assert normalise_label(" as read ") == " as read "  # without known labels: only checked
    assert normalise_label("  new ", known_labels={"old"}) == "new"


def test_near_duplicates_by_case_or_spacing():
    from napari_stimage.curation.editor import near_duplicate

    known = ["Benign", "immune infiltrate, dense"]
    assert near_duplicate("benign", known) == ("Benign", "case")
    assert near_duplicate("immune  infiltrate, dense", known) == ("immune infiltrate, dense", "spacing")
    assert near_duplicate("Immune infiltrate,  dense", known) == ("immune infiltrate, dense", "case and spacing")
    assert near_duplicate("Benign", known) is None and near_duplicate("Malignant", known) is None


def test_a_new_file_lists_every_spot_once_in_coord_order(tmp_path):
    ids = ["S_C-1", "S_A-1", "S_B-1", "S_A-1", 'S_"q"-1']
    target = tmp_path / "S_anno.csv"
    editor = LabelEditor(ids, annotation_path=target)
    assert editor.starts_new_file
    editor.assign([1], "L1, edge")
    editor.save()
    assert target.read_bytes() == b',label\nS_C-1,\nS_A-1,"L1, edge"\nS_B-1,\n"S_""q""-1",\n'
    assert [r.spot_id for r in read_annotation(target).data_rows] == ["S_C-1", "S_A-1", "S_B-1", 'S_"q"-1']
    editor.assign([2], "L2")
    editor.save()  # the second save rewrites the same rows, the new label in place
    assert target.read_bytes() == b',label\nS_C-1,\nS_A-1,"L1, edge"\nS_B-1,L2\n"S_""q""-1",\n'
    # an existing file keeps its rows: unlabelled spots add none, newly labelled ones are appended
    before = target.read_bytes()
    again = LabelEditor(ids + ["S_N-1", "S_M-1"], read_annotation(target))
    assert not again.starts_new_file
    again.assign([5], "L3")
    again.save()
    assert target.read_bytes().startswith(before)
    rows = read_annotation(target).data_rows
    assert [(r.spot_id, r.label) for r in rows[4:]] == [("S_N-1", "L3")]  # S_M-1 (unlabelled) adds no row


def test_assign_each_is_one_undo_step(tmp_path):
    editor = LabelEditor(["S_A-1", "S_B-1", "S_A-1", "S_C-1"], annotation_path=tmp_path / "S_anno.csv")
    assert editor.assign_each({0: "x", 1: " y ", 3: None}) == 3  # repeated id 0/2 both change
    assert editor.labels.tolist() == ["x", "y", "x", None]
    assert editor.undo() and editor.labels.tolist() == [None] * 4 and not editor.can_undo


REPEATED_IDS = ["S_A-1", "S_B-1", "S_A-1", "S_C-1", "S_D-1", "S_B-1", "S_E-1", "S_F-1"]  # A and B twice
few_labels = st.sampled_from([None, "L1", "L2", "WM", "brand new"])
count_op = st.one_of(
    st.tuples(st.just("assign"), st.lists(st.integers(0, len(REPEATED_IDS) - 1), min_size=1, max_size=4), few_labels),
    st.tuples(st.just("assign_each"), st.dictionaries(st.integers(0, len(REPEATED_IDS) - 1), few_labels, max_size=4)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
    st.tuples(st.just("save")),
    st.tuples(st.just("recover")),  # a crash: a new editor on the same file takes the recovery file
)


@settings(max_examples=120, deadline=None)
@given(ops=st.lists(count_op, max_size=40), max_undo=st.sampled_from([2, 100]))
def test_label_counts_and_revision_follow_every_change(ops, max_undo):
    """The counts kept per edit equal a full recount after any edits, undo, redo, saves and
    recoveries, repeated spot ids included; the revision moves exactly when a label changes; the
    legend from the counts is the legend from the labels."""
    from collections import Counter

    from napari_stimage import coloring as col

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "S_anno.csv"
        path.write_bytes(b",label\nS_A-1,L1\nS_B-1,\nS_C-1,L2\nS_A-1,WM\n")
        palette = col.LabelPalette(Path(folder) / "colors.json")
        editor = LabelEditor(REPEATED_IDS, read_annotation(path), max_undo=max_undo)
        assert editor.label_counts() == {"L1": 2, "L2": 1, None: 5}
        for step in ops:
            before, revision = editor.labels.tolist(), editor.revision
            if step[0] == "assign":
                editor.assign(step[1], step[2])
            elif step[0] == "assign_each":
                editor.assign_each(step[1])
            elif step[0] == "undo":
                editor.undo()
            elif step[0] == "redo":
                editor.redo()
            elif step[0] == "save":
                editor.save()
            else:
                again = LabelEditor(REPEATED_IDS, read_annotation(path), max_undo=max_undo)
                recovery = again.find_recovery()
                if recovery is not None:
                    again.apply_recovery(recovery)
                assert again.labels.tolist() == before
                editor, revision = again, None
            labels = editor.labels.tolist()
            assert labels[0] == labels[2] and labels[1] == labels[5]  # twins share their label
            assert editor.label_counts() == dict(Counter(labels))
            if revision is not None:
                assert (editor.revision != revision) == (labels != before)
            order = editor.categories()
            assert (col.legend_entries_from_counts(editor.label_counts(), palette, order)
                    == col.legend_entries(editor.labels, palette, order))


def test_label_counts_of_a_large_edit_and_its_undo(tmp_path):
    editor = LabelEditor([f"S_{k}" for k in range(10_000)], annotation_path=tmp_path / "S_anno.csv")
    assert editor.label_counts() == {None: 10_000} and editor.revision == 0
    editor.assign(np.arange(0, 10_000, 2), "even")
    editor.assign(np.arange(0, 10_000, 3), "three")
    expected = {"even": 3333, "three": 3334, None: 3333}
    assert editor.label_counts() == expected and editor.revision == 2
    editor.undo()
    assert editor.label_counts() == {"even": 5000, None: 5000} and editor.revision == 3
    editor.redo()
    assert editor.label_counts() == expected and editor.revision == 4
    editor.label_counts()["even"] = 0  # a copy: the editor's counts stay
    assert editor.label_counts() == expected


def test_an_undo_after_saving_survives_a_crash(tmp_path):
    """The file holds the saved edit; the undo after it is unsaved and must come back on recovery."""
    path = tmp_path / "S_anno.csv"
    path.write_bytes(b",label\nS_A-1,L1\nS_B-1,L2\n")
    editor = LabelEditor(["S_A-1", "S_B-1"], read_annotation(path))
    editor.assign([0], "tumour")
    editor.save()
    editor.undo()  # S_A-1 back to L1: unsaved, the file still says tumour
    assert editor.dirty and read_annotation(path).first_labels()["S_A-1"] == "tumour"
    again = LabelEditor(["S_A-1", "S_B-1"], read_annotation(path))  # the next session, after a crash
    recovery = again.find_recovery()
    assert recovery is not None and recovery.labels == {"S_A-1": "L1"}
    again.apply_recovery(recovery)
    assert again.labels.tolist() == ["L1", "L2"]
