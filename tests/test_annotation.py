"""Annotation files: lossless round trips, edits touching only what changed, atomic and guarded saves."""

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_stimage.core import storage as storage_mod
from napari_stimage.core.errors import SlideError
from napari_stimage.io.stimage.annotation import (
    AnnotationChangedOnDisk,
    AnnotationTable,
    backup_path,
    original_path,
    parse_annotation,
    parse_label,
    read_annotation,
    write_annotation,
)

# Every header variant and quirk of formats.md, plus file-level styles real tools write.
VARIANTS = {
    "pandas_empty_first_cell": b",V2\nS_A-1,L1\nS_B-1,\nS_C-1,WM\nS_A-1,undetermined\n",
    "r_v1_na": b"V1,V2\nS_A-1,L3\nS_B-1,NA\nS_C-1,Exclude\n",
    "tls_2_cat": b",TLS_2_cat\nS_A-1,TLS\nS_B-1,NO_TLS\nS_C-1,T_agg\n",
    "barcode_tls": b"Barcode,TLS\nS_A-1,TLS\nS_B-1,NO_TLS\n",
    "r_quote_all_crlf": b'"","V2"\r\n"S_A-1","invasive cancer"\r\n"S_B-1",NA\r\n"S_C-1","Benign*"\r\n',
    "comma_quote_nonascii": ',label\nS_A-1,"GG4, Cribriform"\nS_B-1,"say ""hi"""\nS_C-1,Lésion ✓\n'.encode(),
    "bom_no_trailing_newline": b"\xef\xbb\xbf,V2\nS_A-1,L1\nS_B-1,L2",
    "blank_lines_and_extra_column": b"V1,V2,score\nS_A-1,L1,0.5\n\nS_B-1,,0.1\n",
    "quoted_newline_in_label": b',V2\nS_A-1,"two\nlines"\nS_B-1,L2\n',
    "not_utf8_bytes": b",V2\nS_A-1,caf\xe9\nS_B-1,L1\n",
    "mixed_line_endings": b",V2\r\nS_A-1,L1\nS_B-1,L2\r\n",
    "unknown_spot_rows": b",V2\nS_A-1,L1\nOTHER_SLIDE_X-1,Exclude\nS_B-1,\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unedited_round_trip_is_byte_identical(name, tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(VARIANTS[name])
    table = read_annotation(path)
    out = tmp_path / "copy.csv"
    write_annotation(table, out)
    assert out.read_bytes() == VARIANTS[name]
    # setting spots to the label they have changes no byte (repeated ids excluded: their later
    # rows may hold another label, which a relabel of the spot overwrites on purpose)
    repeated = set(table.repeated_ids())
    same = table.with_labels({s: label for s, label in table.first_labels().items() if s not in repeated})
    assert same.to_bytes() == VARIANTS[name]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_edits_change_only_the_edited_rows(name):
    data = VARIANTS[name]
    table = parse_annotation(data)
    new_label = 'New, "odd" *é'
    edited = parse_annotation(table.with_labels({"S_A-1": new_label, "S_NEW-1": "WM"}).to_bytes())
    assert edited.header == table.header
    before = [(s, label) for s, label in zip(table.spot_ids, table.labels, strict=True)]
    after = [(s, label) for s, label in zip(edited.spot_ids, edited.labels, strict=True)]
    expected = [(s, new_label if s == "S_A-1" else label) for s, label in before] + [("S_NEW-1", "WM")]
    assert after == expected
    # untouched rows are byte-identical: compare the raw text of non-A rows
    raw_before = [r.raw for r in table.rows if r.spot_id != "S_A-1"]
    raw_after = [r.raw for r in edited.rows if r.spot_id not in ("S_A-1", "S_NEW-1")]
    assert raw_before == raw_after


def test_style_of_new_rows_follows_the_file():
    table = parse_annotation(VARIANTS["r_quote_all_crlf"])
    out = table.with_labels({"S_C-1": None, "S_N-1": "L1"}).to_bytes()
    assert out.endswith(b'"S_C-1",NA\r\n"S_N-1","L1"\r\n')
    table = parse_annotation(VARIANTS["bom_no_trailing_newline"])
    out = table.with_labels({"S_N-1": "a,b"}).to_bytes()
    assert out == b'\xef\xbb\xbf,V2\nS_A-1,L1\nS_B-1,L2\nS_N-1,"a,b"'
    extra = parse_annotation(VARIANTS["blank_lines_and_extra_column"]).with_labels({"S_N-1": "X"})
    assert extra.to_bytes().endswith(b"S_N-1,X,\n")


def test_relabel_updates_every_row_of_a_repeated_id():
    table = parse_annotation(VARIANTS["pandas_empty_first_cell"])
    assert table.repeated_ids() == ["S_A-1"] and table.first_labels()["S_A-1"] == "L1"
    out = table.with_labels({"S_A-1": "L2"}).to_bytes()
    assert out == b",V2\nS_A-1,L2\nS_B-1,\nS_C-1,WM\nS_A-1,L2\n"


def test_new_file_has_empty_first_cell_and_label_column(tmp_path):
    table = AnnotationTable.new(tmp_path / "annotation" / "S_anno.csv")
    write_annotation(table.with_labels({"S_A-1": "L1", "S_B-1": None}), table.path)
    assert table.path.read_bytes() == b",label\nS_A-1,L1\n"
    assert read_annotation(table.path).label_column == "label"


def test_synthetic_slide_annotation_round_trips(slide_paths, tmp_path):
    original = slide_paths.annotation.read_bytes()
    table = read_annotation(slide_paths.annotation)
    assert any(label is None for label in table.labels) and table.repeated_ids()
    assert any(label and "," in label for label in table.labels)
    assert table.to_bytes() == original


def test_bad_files_name_the_file(tmp_path):
    for content, problem in [(b"", "empty"), (b"only_one\nx\n", "label column"),
                             (b',V2\nS_A-1,"never closed\n', "never closed"), (b",V2\nS_A-1\n", "line 2")]:
        path = tmp_path / "bad_anno.csv"
        path.write_bytes(content)
        with pytest.raises(SlideError, match=problem) as info:
            read_annotation(path)
        assert "bad_anno.csv" in str(info.value)


def test_save_keeps_backup_and_refuses_a_file_changed_on_disk(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(VARIANTS["r_v1_na"])
    table = read_annotation(path)
    write_annotation(table.with_labels({"S_A-1": "L4"}), path, expected=table.fingerprint)
    assert backup_path(path).read_bytes() == VARIANTS["r_v1_na"]
    assert b"S_A-1,L4\n" in path.read_bytes()

    path.write_bytes(b"V1,V2\nS_A-1,changed by a colleague\n")
    with pytest.raises(AnnotationChangedOnDisk):
        write_annotation(table.with_labels({"S_B-1": "L5"}), path, expected=table.fingerprint)
    assert path.read_bytes() == b"V1,V2\nS_A-1,changed by a colleague\n"
    write_annotation(table.with_labels({"S_B-1": "L5"}), path, expected=table.fingerprint, check_changed=False)
    assert b"S_B-1,L5" in path.read_bytes()
    # .bak is the version just replaced; .orig stays the file as first found, whatever the saves
    assert backup_path(path).read_bytes() == b"V1,V2\nS_A-1,changed by a colleague\n"
    assert original_path(path).read_bytes() == VARIANTS["r_v1_na"]


def test_a_save_killed_midway_leaves_the_original_intact(tmp_path, monkeypatch):
    path = tmp_path / "S_anno.csv"
    big = b",V2\n" + b"".join(f"S_{i}-1,L{i % 7}\n".encode() for i in range(200_000))
    path.write_bytes(big)
    table = read_annotation(path)

    real_write = storage_mod.write_payload
    calls = []

    def dies_halfway(handle, data):
        calls.append(len(data))
        if len(calls) <= 2:  # the .orig and .bak copies of the old version come first: let them through
            return real_write(handle, data)
        handle.write(data[: len(data) // 2])
        raise KeyboardInterrupt("killed during the save")

    monkeypatch.setattr(storage_mod, "write_payload", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_annotation(table.with_labels({"S_5-1": "new"}), path, expected=table.fingerprint)
    assert len(calls) == 3 and path.read_bytes() == big
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S_anno.csv", "S_anno.csv.bak", "S_anno.csv.orig"]
    assert backup_path(path).read_bytes() == big


def test_real_annotation_shapes_round_trip(tmp_path):
    # The DLPFC layout as R writes it (V1 index column, quoted strings) and the pandas one.
    rows = [("AAACAAGTATCTCCCA-1", "L3"), ("AAACACCAATAACTGC-1", "WM"), ("AAACAGAGCGACTCCT-1", "NA")]
    r_style = '"V1","V2"\n' + "".join(f'"151673_{b}",{"NA" if label == "NA" else chr(34) + label + chr(34)}\n' for b, label in rows)
    path = tmp_path / "151673_anno.csv"
    path.write_text(r_style)
    table = read_annotation(path)
    assert table.label_column == "V2" and table.labels[2] is None
    assert table.to_bytes() == r_style.encode()


cell_text = st.text(alphabet=st.sampled_from(list('ab1 ,"*é\n✓')), max_size=6)  # a lone CR in a cell is not quoted by csv.writer when lines end in LF: ambiguous input


@settings(max_examples=200, deadline=None)
@given(
    header=st.sampled_from([["", "V2"], ["V1", "V2"], ["Barcode", "TLS"], ["", "TLS_2_cat"]]),
    rows=st.lists(st.tuples(cell_text.filter(lambda s: s != ""), cell_text), max_size=8),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    terminator=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    trailing=st.booleans(),
)
def test_any_csv_writer_output_round_trips(header, rows, quoting, terminator, bom, trailing):
    """Whatever quoting and line endings a CSV writer chose, an unedited save changes no byte,
    and the values read are the ones Python's csv module reads."""
    buf = io.StringIO()
    csv.writer(buf, quoting=quoting, lineterminator=terminator).writerows([header, *rows])
    text = buf.getvalue()
    if not trailing:
        text = text[: -len(terminator)]
    data = (("\ufeff" if bom else "") + text).encode()
    table = parse_annotation(data)
    assert table.to_bytes() == data
    expected = [r for r in csv.reader(io.StringIO(text, newline="")) if r != []]
    assert table.header == expected[0]
    assert table.spot_ids == [r[0] for r in expected[1:]]
    assert table.labels == [parse_label(r[1]) for r in expected[1:]]
    # and an edit re-reads as exactly that edit
    if rows:
        spot = rows[0][0]
        edited = parse_annotation(table.with_labels({spot: 'x, "y"\n'}).to_bytes())
        assert edited.first_labels()[spot] == 'x, "y"\n'
        assert [label for s, label in zip(edited.spot_ids, edited.labels, strict=True) if s != spot] == [
            label for s, label in zip(table.spot_ids, table.labels, strict=True) if s != spot
        ]


def test_latin1_file_gets_new_labels_in_latin1(tmp_path):
    path = tmp_path / "S_anno.csv"
    original = ",V2\nS_A-1,tumeur bénigne\nS_B-1,\n".encode("latin-1")
    path.write_bytes(original)
    table = read_annotation(path)
    assert table.first_labels()["S_A-1"] == "tumeur bénigne"  # read as text, not as broken bytes
    assert table.to_bytes() == original
    write_annotation(table.with_labels({"S_B-1": "stroma réactif"}), path, expected=table.fingerprint)
    assert path.read_bytes() == original.replace(b"S_B-1,\n", "S_B-1,stroma réactif\n".encode("latin-1"))
    with pytest.raises(SlideError, match=r"S_anno\.csv.*cannot be written in this file's encoding \(latin-1\)"):
        write_annotation(table.with_labels({"S_B-1": "腫瘍"}), path, check_changed=False)
    assert b"\xe9" in path.read_bytes()  # nothing half-written
