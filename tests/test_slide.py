import numpy as np
import pandas as pd
import pytest

from napari_stimage import SlideError, load_slide
from napari_stimage.core.expression import make_unique


def test_spots_joined_on_id_not_row_order(slide, slide_paths):
    counts = pd.read_csv(slide_paths.count, index_col=0)
    coords = pd.read_csv(slide_paths.coord, index_col=0)
    assert slide.n_spots == len(coords)
    # the coord and count files list spots in different orders; values must follow the id
    some = [s for s in coords.index if s in counts.index][:25]
    idx = [int(np.flatnonzero(slide.spots["spot_id"] == s)[0]) for s in some]
    assert np.allclose(slide.gene_values("ERBB2")[idx], counts.loc[some, "ERBB2"].to_numpy())
    np.testing.assert_allclose(slide.positions[idx], coords.loc[some, ["yaxis", "xaxis"]].to_numpy())


def test_spot_missing_from_count_file_is_kept_with_nan(slide):
    missing = slide.report.coord_not_in_count
    assert len(missing) == 1
    i = int(np.flatnonzero(slide.spots["spot_id"] == missing[0])[0])
    assert np.isnan(slide.gene_values("ERBB2")[i])
    assert np.isnan(slide.total_counts[i])


def test_report_lists_every_mismatch(slide):
    r = slide.report
    assert len(r.count_not_in_coord) == 1
    assert len(r.repeated_annotation_ids) == 1
    assert r.annotation_not_in_coord == [f"{slide.name}_NOTASPOT-1"]
    text = r.summary(slide.name)
    assert "no expression" in text and "kept for saving" in text


def test_repeated_gene_names_made_unique_without_collision(slide, slide_paths):
    header = slide_paths.count.read_text().splitlines()[0].split(",")[1:]
    assert header.count("MALAT1") == 2 and "MALAT1-1" in header
    names = list(slide.expression.gene_names)
    assert len(set(names)) == len(names)
    assert names[-1] == "MALAT1-2"  # MALAT1-1 is a real gene already


def test_make_unique_matches_anndata_when_no_collision():
    import anndata as ad

    names = ["A", "B", "A", "A", "C", "B"]
    adata = ad.AnnData(np.zeros((1, len(names))))
    adata.var_names = names
    adata.var_names_make_unique()
    assert make_unique(names) == list(adata.var_names)


def test_labels_first_row_wins_and_missing_is_nan(slide, slide_paths):
    anno = pd.read_csv(slide_paths.annotation, dtype=str, keep_default_na=False)
    repeated = slide.report.repeated_annotation_ids[0]
    rows = anno[anno.iloc[:, 0] == repeated].iloc[:, 1].tolist()
    assert len(rows) == 2 and rows[0] != rows[1]
    i = int(np.flatnonzero(slide.spots["spot_id"] == repeated)[0])
    assert slide.labels[i] == rows[0]
    assert "immune infiltrate, dense" in set(slide.labels)
    na_ids = anno[anno.iloc[:, 1].isin(["", "NA"])].iloc[:, 0]
    na_idx = np.flatnonzero(slide.spots["spot_id"].isin(na_ids))
    assert len(na_idx) > 0 and all(pd.isna(slide.labels[j]) for j in na_idx)


def test_features_table(slide):
    f = slide.features()
    assert list(f.columns[:4]) == ["spot_id", "label", "total_counts", "n_genes"]
    assert len(f.columns) == 4 + len(slide.default_genes)
    assert {"ERBB2", "PTPRC", "COL1A1", "ADIPOQ"} <= set(slide.default_genes)  # the spatially variable ones
    zero = np.flatnonzero(f["total_counts"] == 0)
    assert len(zero) == 1 and f["n_genes"][zero[0]] == 0


def test_image_is_decoded_from_jpeg_bytes_behind_png_name(slide):
    assert slide.paths.image.read_bytes()[:3] == b"\xff\xd8\xff"
    (img,) = slide.image_levels
    assert img.shape == (1000, 1000, 3) and img.dtype == np.uint8


def test_to_anndata(slide):
    adata = slide.to_anndata()
    assert adata.n_obs == slide.n_spots - 1  # the spot without expression is left out
    assert adata.obsm["spatial"].shape == (adata.n_obs, 2)
    first = adata.obs_names[0]
    i = int(np.flatnonzero(slide.spots["spot_id"] == first)[0])
    np.testing.assert_allclose(adata.obsm["spatial"][0], slide.spots.loc[i, ["x", "y"]].to_numpy(float))
    assert "label" in adata.obs and adata.obs["label"].isna().any()
    col = list(adata.var_names).index("ERBB2")
    assert adata.X[0, col] == slide.gene_values("ERBB2")[i]


# --- bad input: every error names the file and the problem ---------------------------------

def test_coord_without_r(slide_paths):
    slide_paths.coord.write_text(",yaxis,xaxis\nA,1,2\n")
    with pytest.raises(SlideError, match=r"_coord\.csv.*lacks column\(s\) r"):
        load_slide(slide_paths.coord)


def test_truncated_count_csv(slide_paths):
    data = slide_paths.count.read_bytes()
    slide_paths.count.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError, match=r"_count\.csv"):
        load_slide(slide_paths.coord)


def test_unreadable_image(slide_paths):
    slide_paths.image.write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    slide = load_slide(slide_paths.coord)  # spots still load; the image fails when asked
    with pytest.raises(SlideError, match=r"\.png.*JPEG"):
        _ = slide.image_levels


def test_not_an_image(slide_paths):
    slide_paths.image.write_text("hello")
    with pytest.raises(SlideError, match=r"\.png.*not a PNG, JPEG or TIFF"):
        _ = load_slide(slide_paths.coord).image_levels


def test_count_sharing_no_spot_with_coord(slide_paths):
    lines = slide_paths.count.read_text().splitlines()
    lines = [lines[0]] + [f"OTHER_{k}" + line[line.index(","):] for k, line in enumerate(lines[1:])]
    slide_paths.count.write_text("\n".join(lines) + "\n")
    with pytest.raises(SlideError, match=r"_count\.csv: none of its"):
        load_slide(slide_paths.coord)


def test_path_that_is_no_slide(tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(SlideError, match="not a file of an STimage-1K4M slide"):
        load_slide(tmp_path / "x.csv")


def test_progress_covers_expression_and_image(slide_paths):
    seen = []
    slide = load_slide(slide_paths.image, progress=lambda done, total: seen.append(done / total), decode_image=True)
    assert "image_levels" in slide.__dict__  # decoded during the load, not later on the GUI thread
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0 < f <= 0.8 for f in seen)  # the count file's share


def test_synthetic_slide_is_reproducible(tmp_path):
    import subprocess
    import sys

    # separate processes: Python's per-process string hashing must not leak into the files
    for out in ("a", "b"):
        subprocess.run([sys.executable, "-m", "napari_stimage.synthetic", str(tmp_path / out)], check=True,
                       capture_output=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
