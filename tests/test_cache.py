"""The expression cache: same content as a direct parse, rebuilt when stale or corrupt."""

import json
import os

import numpy as np
import pytest

from napari_stimage.core.errors import SlideError
from napari_stimage.core.progress import Cancelled
from napari_stimage.io import cache
from napari_stimage.io.cache import (
    build_expression_cache,
    expression_cache_path,
    is_cache_valid,
    load_cached_expression,
    load_expression_cached,
)
from napari_stimage.io.count_csv import read_count_csv


def make_counts(tmp_path, n_spots=60, n_genes=25, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random((n_spots, n_genes)) < 0.85, 0, rng.integers(1, 50, (n_spots, n_genes)))
    names = [f"G{j}" for j in range(n_genes - 1)] + ["G0"]  # a repeated gene name
    lines = ["," + ",".join(names)]
    lines += [f"s{i}," + ",".join(f"{v}.0" for v in row) for i, row in enumerate(counts)]
    path = tmp_path / "slide_count.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, counts


def test_cache_matches_direct_parse_and_is_memory_mapped(tmp_path):
    path, counts = make_counts(tmp_path)
    cached = load_expression_cached(path)
    direct = read_count_csv(path)
    np.testing.assert_array_equal(cached.matrix.toarray(), counts)
    assert (cached.matrix != direct.matrix).nnz == 0
    assert list(cached.spot_ids) == list(direct.spot_ids)
    assert list(cached.gene_names) == list(direct.gene_names) and cached.gene_names[-1] == "G0-1"
    assert list(cached.raw_gene_names) == list(direct.raw_gene_names)
    assert isinstance(cached.matrix.data, np.memmap)
    np.testing.assert_allclose(cached.total_counts(), counts.sum(1))
    np.testing.assert_array_equal(cached.n_genes_detected(), (counts > 0).sum(1))
    assert cached.top_variable_genes(5) == read_count_csv(path).top_variable_genes(5)
    meta = json.loads((expression_cache_path(path) / "meta.json").read_text())
    assert meta["version"] == cache.FORMAT_VERSION and meta["shape"] == [60, 25]


def test_small_merge_budget_gives_same_matrix(tmp_path, monkeypatch):
    path, counts = make_counts(tmp_path, n_spots=200, n_genes=40)
    monkeypatch.setattr(cache, "_MERGE_BUDGET_NNZ", 7)  # many gene ranges, many blocks
    build_expression_cache(path, block_size=300)
    np.testing.assert_array_equal(load_cached_expression(path).matrix.toarray(), counts)


def test_second_open_uses_cache(tmp_path, monkeypatch):
    path, _ = make_counts(tmp_path)
    load_expression_cached(path)
    monkeypatch.setattr(cache, "build_expression_cache", lambda *a, **k: pytest.fail("rebuilt"))
    load_expression_cached(path)


def test_changed_source_invalidates(tmp_path):
    path, _ = make_counts(tmp_path)
    load_expression_cached(path)
    assert is_cache_valid(path)
    new_path, counts = make_counts(tmp_path, seed=5)  # same path, new content
    st = os.stat(new_path)
    os.utime(new_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not is_cache_valid(path)
    np.testing.assert_array_equal(load_expression_cached(path).matrix.toarray(), counts)
    assert is_cache_valid(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta", "delete", "version"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    path, counts = make_counts(tmp_path)
    load_expression_cached(path)
    folder = expression_cache_path(path)
    if damage == "truncate":
        data = (folder / "data.npy").read_bytes()
        (folder / "data.npy").write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray((folder / "indices.npy").read_bytes())
        data[-3] ^= 0xFF
        (folder / "indices.npy").write_bytes(bytes(data))
    elif damage == "meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "delete":
        (folder / "indptr.npy").unlink()
    else:
        meta = json.loads((folder / "meta.json").read_text())
        meta["version"] = 999
        (folder / "meta.json").write_text(json.dumps(meta))
    assert not is_cache_valid(path)
    np.testing.assert_array_equal(load_expression_cached(path).matrix.toarray(), counts)
    assert is_cache_valid(path)


def test_cancel_leaves_nothing_behind(tmp_path):
    path, _ = make_counts(tmp_path, n_spots=300)
    calls = []
    with pytest.raises(Cancelled):
        build_expression_cache(path, cancel=lambda: calls.append(1) or len(calls) > 2, block_size=400)
    parent = expression_cache_path(path).parent
    assert list(parent.iterdir()) == []
    assert not is_cache_valid(path)


def test_malformed_file_raises_and_leaves_nothing(tmp_path):
    path = tmp_path / "bad_count.csv"
    path.write_text(",A,B\ns1,1.0,0.0\ns2,1.0\n")
    with pytest.raises(SlideError, match="line 3"):
        load_expression_cached(path)
    assert list(expression_cache_path(path).parent.iterdir()) == []


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    path, _ = make_counts(tmp_path)
    load_expression_cached(path)
    assert expression_cache_path(path).is_relative_to(tmp_path / "elsewhere")
    assert (expression_cache_path(path) / "meta.json").is_file()
