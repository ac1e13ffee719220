"""The smaller hardening cases: TIFF alpha and bit depths, annotation encodings and NUL bytes,
unclosed quotes in Loupe CSVs, CR-only count files, folders and broken links in place of files."""

import numpy as np
import pytest
import tifffile

from napari_stimage import load_slide
from napari_stimage.core.errors import SlideError
from napari_stimage.io.count_csv import read_count_csv
from napari_stimage.io.images import read_image
from napari_stimage.io.loupe import read_loupe
from napari_stimage.io.stimage.annotation import (
    parse_annotation,
    read_annotation,
    write_annotation,
)


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["rgba uint8", "12-bit uint16", "16-bit uint16", "float32 0..1", "float32 0..255"])
def test_tiffs_of_any_depth_or_with_alpha_open_as_8_bit_rgb(tmp_path, rgb, kind):
    arr = {
        "rgba uint8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
        "12-bit uint16": rgb.astype(np.uint16) * 16,
        "16-bit uint16": rgb.astype(np.uint16) * 257,
        "float32 0..1": rgb.astype(np.float32) / 255,
        "float32 0..255": rgb.astype(np.float32),
    }[kind]
    path = tmp_path / "S.png"  # named .png, holding a TIFF, as in the dataset
    tifffile.imwrite(path, arr, photometric="rgb", extrasamples=[2] if arr.shape[-1] == 4 else None)
    level = np.asarray(read_image(path)[0])
    assert level.shape == rgb.shape and level.dtype == np.uint8
    assert np.abs(level.astype(int) - rgb).max() <= 1


def test_a_utf16_annotation_is_refused_naming_the_encoding(tmp_path):
    path = tmp_path / "S_anno.csv"
    path.write_bytes(",V2\nS_1-1,tumour\n".encode("utf-16"))
    with pytest.raises(SlideError, match=r"S_anno.csv: the annotation file is UTF-16 encoded; save it as UTF-8"):
        read_annotation(path)


def test_nul_bytes_are_refused_with_their_line():
    with pytest.raises(SlideError, match="line 3 contains a NUL byte"):
        parse_annotation(b",V2\nS_1-1,A\nS_2-1,B\x00C\nS_3-1,D\n", path="S_anno.csv")


def test_one_stray_byte_keeps_the_file_utf8_and_round_trips(tmp_path):
    path = tmp_path / "S_anno.csv"
    original = ",V2\nS_1-1,tumeur bénigne\n".encode() + b"S_2-1,bad\xff byte\nS_3-1,\n"
    path.write_bytes(original)
    table = read_annotation(path)
    assert table.style.encoding == "utf-8" and table.labels[0] == "tumeur bénigne"  # no mojibake
    write_annotation(table.with_labels({"S_3-1": "stroma réactif"}), path, expected=table.fingerprint)
    assert path.read_bytes() == original.replace(b"S_3-1,\n", "S_3-1,stroma réactif\n".encode())


def test_an_all_latin1_file_stays_latin1(tmp_path):
    table = parse_annotation(",V2\nS_1-1,bénigne\n".encode("latin-1"))
    assert table.style.encoding == "latin-1" and table.labels == ["bénigne"]


def test_an_unclosed_quote_in_a_loupe_csv_is_an_error_not_a_swallowed_file(tmp_path):
    path = tmp_path / "loupe.csv"
    path.write_text('Barcode,Cat\nAAAC-1,"Tumour\nAAAG-1,Stroma\nAAAT-1,Stroma\n')
    with pytest.raises(SlideError, match=r"loupe.csv: line \d+: cannot read the Loupe CSV \(unexpected end of data"):
        read_loupe(path, ["S_AAAC-1", "S_AAAG-1"], "S")


def test_cr_only_count_files_read_like_lf_ones(tmp_path):
    lf = ",G0,G1,G2\ns0,1,0,2\ns1,0,3,0\ns2,4,0,0\n"
    path = tmp_path / "S_count.csv"
    path.write_text(lf)
    expected = read_count_csv(path).matrix.toarray()
    path.write_bytes(lf.replace("\n", "\r").encode())
    got = read_count_csv(path)
    assert list(got.spot_ids) == ["s0", "s1", "s2"]
    np.testing.assert_array_equal(got.matrix.toarray(), expected)
    small = read_count_csv(path, block_size=7)  # a CR-only file read in many small blocks
    np.testing.assert_array_equal(small.matrix.toarray(), expected)


@pytest.mark.parametrize("kind", ["count", "image", "annotation"])
@pytest.mark.parametrize("what", ["folder", "broken symlink"])
def test_a_folder_or_broken_link_in_place_of_a_file_is_reported(slide_paths, kind, what):
    path = getattr(slide_paths, kind)
    path.unlink()
    if what == "folder":
        path.mkdir()
    else:
        path.symlink_to(path.parent / "gone.csv")
    slide = load_slide(slide_paths.coord)
    assert getattr(slide.paths, kind) is None
    note = "is a folder, not a file" if what == "folder" else "is a broken symlink"
    assert any(str(path) in n and note in n for n in slide.report.notes), slide.report.notes
    assert note in slide.report.summary(slide.name)
