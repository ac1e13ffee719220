"""Runaway input: forged image headers, truncated images, absurd coordinates and counts, huge cells.
Each is refused before heavy work, with an error naming the file and what is wrong."""

import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_stimage.core.errors import SlideError
from napari_stimage.io import images
from napari_stimage.io.cache import cache_dir, load_expression_cached
from napari_stimage.io.count_csv import read_count_csv
from napari_stimage.io.loupe import read_loupe
from napari_stimage.io.stimage.reader import read_coords

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _forged_png(path, width, height):
    """A PNG whose header claims width x height but which holds (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 16)
    data += struct.pack(">I", 16) + idat[:20] + struct.pack(">I", zlib.crc32(idat[:20]))
    path.write_bytes(data)


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (2**31 - 1, 3), (50_000, 40_000)])
def test_a_forged_image_header_is_refused_before_decoding(tmp_path, width, height):
    path = tmp_path / "S.png"
    _forged_png(path, width, height)
    assert images.image_shape(path) == (height, width)
    start = time.perf_counter()
    with pytest.raises(SlideError, match=rf"{width} x {height} pixels") as err:
        images.read_image(path)
    assert time.perf_counter() - start < 2 and str(path) in str(err.value)
    assert not list(cache_dir().rglob("*.tif"))  # no pyramid was started


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "S.png"
    Image.fromarray(np.full((120, 90, 3), 200, np.uint8)).save(path)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "10000")
    with pytest.raises(SlideError, match=r"above the limit of 10,000 \(set NAPARI_STIMAGE_MAX_PIXELS"):
        images.read_image(path)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "20000")
    assert images.read_image(path)[0].shape == (120, 90, 3)


@pytest.mark.parametrize("backend", ["vips", "pil"])
def test_a_truncated_large_jpeg_is_an_error_not_a_grey_pyramid(tmp_path, monkeypatch, backend):
    from napari_stimage.convert import convert_slide
    from napari_stimage.io.stimage.layout import SlidePaths

    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)
    if backend == "pil":
        monkeypatch.setattr(images, "_pyramid_with_vips", lambda *a: (_ for _ in ()).throw(ImportError()))
    else:
        try:
            images._vips()
        except ImportError:
            pytest.skip("libvips not available")
    rng = np.random.default_rng(0)
    path = tmp_path / "S.png"
    Image.fromarray(rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(SlideError, match=str(path)):
        images.read_image(path)
    assert not images.pyramid_is_valid(path)
    result = convert_slide(SlidePaths(name="S", coord=tmp_path / "S_coord.csv", image=path))
    assert result.error is not None and result.image == "none"


def _coord_text(values):
    lines = [",yaxis,xaxis,r"] + [f"S_{i}-1,{y},{x},{r}" for i, (y, x, r) in enumerate(values)]
    return "\n".join(lines) + "\n"


bad_numbers = st.sampled_from(["inf", "-inf", "Infinity", "1e300", "1e18", "-1e18", "1e309", "-5", "-0.001"])


@settings(FAST, max_examples=80)
@given(n=st.integers(1, 30), data=st.data())
def test_absurd_coordinates_and_radii_are_refused_naming_column_and_row(tmp_path, n, data):
    rows = [[100.0 + i, 200.0 + i, 10.0] for i in range(n)]
    row = data.draw(st.integers(0, n - 1))
    column = data.draw(st.sampled_from([0, 1, 2]))
    bad = data.draw(bad_numbers)
    if column != 2 and bad in ("-5", "-0.001"):
        bad = "-2e7"  # negative positions are allowed (off the image), absurd ones are not
    rows[row][column] = bad
    path = tmp_path / "S_coord.csv"
    path.write_text(_coord_text(rows))
    name = ("yaxis", "xaxis", "r")[column]
    with pytest.raises(SlideError, match=rf"column {name}, line {row + 2} \(spot S_{row}-1\)") as err:
        read_coords(path)
    assert str(path) in str(err.value)


def test_sane_coordinates_still_load(tmp_path):
    path = tmp_path / "S_coord.csv"
    path.write_text(_coord_text([[0, 0, 0], [-50.5, 99999.0, 89.4], [1e6, 1e6, 1e6]]))
    assert len(read_coords(path)) == 3


def _count_text(values):
    header = "," + ",".join(f"G{j}" for j in range(len(values[0])))
    return header + "\n" + "".join(f"s{i}," + ",".join(row) + "\n" for i, row in enumerate(values)) + ""


@settings(FAST, max_examples=80)
@given(n=st.integers(1, 20), data=st.data())
def test_negative_infinite_or_huge_counts_are_refused_with_their_line(tmp_path, n, data):
    rows = [[str(int(v)) for v in np.arange(5) * (i % 3)] for i in range(n)]
    row, col = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, 4))
    rows[row][col] = data.draw(st.sampled_from(["-1", "-0.5", "inf", "-inf", "1e300", "1e12", "3.5e9", "-3"]))
    path = tmp_path / "S_count.csv"
    path.write_text(_count_text(rows))
    for read in (read_count_csv, load_expression_cached):
        with pytest.raises(SlideError, match=rf"line {row + 2}: count .* in gene column {col + 2} is") as err:
            read(path)
        assert str(path) in str(err.value)


def test_a_cell_beyond_the_csv_field_limit_names_the_file_and_line(tmp_path):
    loupe = tmp_path / "loupe.csv"
    loupe.write_text("Barcode,Cat\nAAAC-1,T\nAAAG-1,\"" + "x" * 200_000 + "\"\n")
    with pytest.raises(SlideError, match=r"loupe.csv: line \d+: cannot read the Loupe CSV \(field larger"):
        read_loupe(loupe, ["S_AAAC-1"], "S")
    counts = tmp_path / "S_count.csv"
    counts.write_text(',G0,"G1' + "y" * 200_000 + '"\ns0,1,2\n')
    with pytest.raises(SlideError, match=r"S_count.csv: line 1: cannot read the count file header \(field larger"):
        read_count_csv(counts)
