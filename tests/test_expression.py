"""The fast count parser against pandas on the quirks real and hand-written files carry."""

import numpy as np
import pandas as pd
import pytest

from napari_stimage.core.errors import SlideError
from napari_stimage.core.expression import make_unique
from napari_stimage.core.progress import Cancelled
from napari_stimage.io.count_csv import read_count_csv, read_count_header


def write(tmp_path, text: str, name="x_count.csv", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def assert_same_as_pandas(path):
    expr = read_count_csv(path)
    df = pd.read_csv(path, index_col=0)
    assert list(expr.spot_ids) == [str(s) for s in df.index]
    np.testing.assert_array_equal(expr.matrix.toarray(), df.to_numpy(np.float32))
    return expr


def dense_text(rng, n_spots, n_genes, fmt="{:.1f}"):
    counts = np.where(rng.random((n_spots, n_genes)) < 0.9, 0, rng.integers(1, 2000, (n_spots, n_genes)))
    lines = ["," + ",".join(f"G{j}" for j in range(n_genes))]
    for i in range(n_spots):
        lines.append(f"SPOT{i}_AC1x{i}-1," + ",".join(fmt.format(float(v)) for v in counts[i]))
    return "\n".join(lines) + "\n", counts


@pytest.mark.parametrize("block_size", [64, 1000, 1 << 20])
def test_fast_parser_matches_pandas_across_block_sizes(tmp_path, block_size):
    text, counts = dense_text(np.random.default_rng(0), 40, 57)
    path = write(tmp_path, text)
    expr = read_count_csv(path, block_size=block_size)
    np.testing.assert_array_equal(expr.matrix.toarray(), counts.astype(np.float32))
    assert_same_as_pandas(path)


def test_crlf_and_missing_final_newline(tmp_path):
    text, _ = dense_text(np.random.default_rng(1), 7, 9)
    path = write(tmp_path, text.rstrip("\n"), newline="\r\n")
    assert_same_as_pandas(path)


def test_ints_floats_scientific_and_decimals(tmp_path):
    text = ",A,B,C,D\ns1,0,3,1e2,0.0\ns2,2.5,0.00,-0.0,12.0\ns3,0e0,1.5E1,7,0\n"
    expr = assert_same_as_pandas(write(tmp_path, text))
    assert expr.matrix.nnz == 6  # explicit zeros are not stored


def test_repeated_and_quoted_gene_names(tmp_path):
    text = '"",MALAT1,"GENE,A",MALAT1,MALAT1-1\n"s1",1.0,0.0,2.0,0.0\ns2,0.0,0.0,0.0,4.0\n'
    expr = read_count_csv(write(tmp_path, text))
    assert list(expr.raw_gene_names) == ["MALAT1", "GENE,A", "MALAT1", "MALAT1-1"]
    assert list(expr.gene_names) == ["MALAT1", "GENE,A", "MALAT1-2", "MALAT1-1"]
    assert list(expr.spot_ids) == ["s1", "s2"]
    assert expr.gene_values("MALAT1-2").tolist() == [2.0, 0.0]


def test_quoted_ids_with_commas(tmp_path):
    text = ',A,B\n"id,1",1.0,0.0\n"id2",0.0,2.0\n'
    expr = read_count_csv(write(tmp_path, text))
    assert list(expr.spot_ids) == ["id,1", "id2"]
    np.testing.assert_array_equal(expr.matrix.toarray(), [[1, 0], [0, 2]])


def test_all_zero_spot_and_blank_trailing_lines(tmp_path):
    text = ",A,B\ns1,0.0,0.0\ns2,0.0,5.0\n\n"
    expr = read_count_csv(write(tmp_path, text))
    assert expr.n_spots == 2
    assert expr.total_counts().tolist() == [0.0, 5.0]
    assert expr.n_genes_detected().tolist() == [0, 1]


def test_truncated_file_names_file_and_line(tmp_path):
    text, _ = dense_text(np.random.default_rng(2), 5, 30)
    path = write(tmp_path, text[: len(text) - 40])
    with pytest.raises(SlideError) as info:
        read_count_csv(path)
    assert str(path) in str(info.value) and "line 6" in str(info.value)


@pytest.mark.parametrize("cell", ["", "abc", "nan"])
def test_empty_or_non_numeric_cell_is_an_error(tmp_path, cell):
    path = write(tmp_path, f",A,B\ns1,1.0,{cell}\n")
    with pytest.raises(SlideError, match="line 2"):
        read_count_csv(path)


def test_header_only_and_no_header(tmp_path):
    with pytest.raises(SlideError, match="no spots"):
        read_count_csv(write(tmp_path, ",A,B\n"))
    with pytest.raises(SlideError, match="header"):
        read_count_header(write(tmp_path, "", name="empty_count.csv"))


def test_cancel_and_progress(tmp_path):
    text, _ = dense_text(np.random.default_rng(3), 50, 40)
    path = write(tmp_path, text)
    seen = []
    read_count_csv(path, progress=lambda d, t: seen.append((d, t)), block_size=500)
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    calls = []
    with pytest.raises(Cancelled):
        read_count_csv(path, cancel=lambda: calls.append(1) or len(calls) > 2, block_size=500)


def test_stats_match_matrix(tmp_path):
    text, counts = dense_text(np.random.default_rng(4), 30, 20)
    expr = read_count_csv(write(tmp_path, text))
    np.testing.assert_allclose(expr.total_counts(), counts.sum(1))
    np.testing.assert_array_equal(expr.n_genes_detected(), (counts > 0).sum(1))
    np.testing.assert_allclose(expr.log1p_variance(), np.log1p(counts).var(0), rtol=1e-6, atol=1e-9)


def test_make_unique_skips_existing_names():
    assert make_unique(["A", "A", "A-1", "B", "A"]) == ["A", "A-2", "A-1", "B", "A-3"]


@pytest.mark.parametrize("fmt", ["{:.0f}", "{:.1f}"])
def test_fast_path_taken_for_float_and_int_files(tmp_path, fmt, monkeypatch):
    from napari_stimage.io import count_csv as expression

    text, counts = dense_text(np.random.default_rng(5), 30, 44, fmt=fmt)
    monkeypatch.setattr(expression, "_parse_lines_exact", lambda *a: pytest.fail("slow path used"))
    expr = read_count_csv(write(tmp_path, text))
    np.testing.assert_array_equal(expr.matrix.toarray(), counts.astype(np.float32))
