"""Loupe Browser category CSV: barcodes without the slide prefix, labels surviving both ways."""

import pytest

from napari_stimage.core.errors import SlideError
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.io.loupe import export_loupe, import_loupe, read_loupe

SLIDE = "GSE175540_GSM5924030"
IDS = [f"{SLIDE}_AAAC{k}-1" for k in range(5)]


def test_export_strips_prefix_and_skips_unlabelled(tmp_path):
    editor = LabelEditor(IDS, annotation_path=tmp_path / "a.csv", slide_name=SLIDE)
    editor.assign([0, 3], 'GG4, "Cribriform"')
    editor.assign([1], "Lésion*")
    out = tmp_path / "loupe.csv"
    assert export_loupe(editor, out, category="Pathology") == 3
    assert out.read_text(encoding="utf-8") == (
        'Barcode,Pathology\nAAAC0-1,"GG4, ""Cribriform"""\nAAAC1-1,Lésion*\nAAAC3-1,"GG4, ""Cribriform"""\n'
    )


def test_round_trip_through_loupe(tmp_path):
    source = LabelEditor(IDS, annotation_path=tmp_path / "a.csv", slide_name=SLIDE)
    source.assign([0, 2], "Cluster 1")
    source.assign([4], "a,b")
    export_loupe(source, tmp_path / "l.csv")
    target = LabelEditor(IDS, annotation_path=tmp_path / "b.csv", slide_name=SLIDE)
    result = import_loupe(tmp_path / "l.csv", target)
    assert target.labels.tolist() == source.labels.tolist()
    assert result.unmatched == []
    target.undo()  # the whole import is one undo step
    assert target.labels.tolist() == [None] * len(IDS) and not target.can_undo


def test_import_reports_unknown_barcodes_and_accepts_full_ids(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text(f"Barcode,Graph-based\nAAAC1-1,Cluster 2\nTTTT-1,Cluster 9\n{IDS[2]},Cluster 3\nAAAC4-1,\n")
    result = read_loupe(path, IDS, SLIDE)
    assert result.category == "Graph-based"
    assert result.labels == {IDS[1]: "Cluster 2", IDS[2]: "Cluster 3"}
    assert result.unmatched == ["TTTT-1"] and result.empty == ["AAAC4-1"]


def test_not_a_loupe_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(",V2\nA,B\n")
    with pytest.raises(SlideError, match="x.csv.*Barcode"):
        read_loupe(path, IDS, SLIDE)


def test_real_visium_barcodes_round_trip(real_data, tmp_path):
    """Real Space Ranger barcodes (`AAAC...-1`) as STimage Visium spot ids `{slide}_{barcode}`."""
    positions = real_data / "scanpy_visium_1.0.0" / "spatial" / "tissue_positions_list.csv"
    barcodes = [line.split(",")[0] for line in positions.read_text().splitlines()[:300]]
    slide = "Human_Breast_10X_06092021_Visium"
    ids = [f"{slide}_{b}" for b in barcodes]
    editor = LabelEditor(ids, annotation_path=tmp_path / f"{slide}_anno.csv", slide_name=slide)
    editor.assign(range(0, 300, 2), "Cluster 1")
    out = tmp_path / "loupe.csv"
    export_loupe(editor, out, category="Graph-based")
    lines = out.read_text().splitlines()
    assert lines[0] == "Barcode,Graph-based" and lines[1] == f"{barcodes[0]},Cluster 1"
    fresh = LabelEditor(ids, annotation_path=tmp_path / "other.csv", slide_name=slide)
    result = import_loupe(out, fresh)
    assert fresh.labels.tolist() == editor.labels.tolist() and not result.unmatched


def test_import_skips_empty_cells_instead_of_clearing_labels(tmp_path):
    editor = LabelEditor(IDS, annotation_path=tmp_path / "a.csv", slide_name=SLIDE)
    editor.assign([0, 1], "kept")
    path = tmp_path / "l.csv"
    path.write_text("Barcode,Pathology\nAAAC0-1,\nAAAC1-1,NA\nAAAC2-1,Tumor\nAAAC3-1,Stroma\n")
    result = import_loupe(path, editor)
    assert result.empty == ["AAAC0-1", "AAAC1-1"]
    assert editor.labels.tolist() == ["kept", "kept", "Tumor", "Stroma", None]
    editor.undo()  # one step takes back the whole import
    assert editor.labels.tolist() == ["kept", "kept", None, None, None]


def test_export_to_a_folder_that_cannot_be_written_names_the_chosen_file(tmp_path):
    editor = LabelEditor(IDS, annotation_path=tmp_path / "a.csv", slide_name=SLIDE)
    editor.assign([0], "TLS")
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where the user expected a folder")
    chosen = not_a_folder / "loupe.csv"
    with pytest.raises(SlideError) as caught:
        export_loupe(editor, chosen)
    message = str(caught.value)
    assert message.startswith(f"{chosen}: cannot write the Loupe CSV")
    assert ".tmp" not in message and message.count(str(tmp_path)) == 1
