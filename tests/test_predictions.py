"""Predictions (STPath's .h5ad) placed on a slide, judged against its counts, rendered and written."""

import json

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from conftest import ABSENT, GOOD, RANDOM  # the genes of write_stpath_outputs
from napari_stimage import SlideError
from napari_stimage.cli import main
from napari_stimage.io.predictions import (
    compare,
    comparison_table,
    load_predictions,
    stpath_rescaled,
)
from napari_stimage.render import (
    PANEL_WIDTH,
    TITLE_HEIGHT,
    render_prediction_comparison,
    render_scale,
)


def expected_metrics(slide, predictions, gene):
    """scipy / plain numpy over the spots with both a prediction and counts."""
    measured = np.log1p(slide.gene_values(gene))
    predicted = predictions.gene_values(gene)
    both = np.isfinite(measured) & np.isfinite(predicted)
    m, p = measured[both], predicted[both]
    r = pearsonr(m, p).statistic
    l2 = np.mean((p - m) ** 2)
    r2 = 1 - np.sum((m - p) ** 2) / np.sum((m - m.mean()) ** 2)
    return r, r2, l2, m.mean(), int(both.sum())


def test_stpath_prediction_in_spot_order_matches_scipy(slide, tmp_path, stpath_outputs):
    prediction, _ = stpath_outputs(slide, tmp_path)
    pred = load_predictions(slide, prediction)
    assert pred.matched_by == "by the slide's spot order"
    result = compare(slide, pred)
    assert list(result.table.index) == [GOOD, RANDOM]
    assert result.only_predicted == [ABSENT]
    assert len(result.only_measured) == slide.expression.n_genes - 2 and GOOD not in result.only_measured
    for gene in (GOOD, RANDOM):
        r, r2, l2, mean, n = expected_metrics(slide, pred, gene)
        row = result.table.loc[gene]
        assert row["pearson_r"] == pytest.approx(r, abs=1e-6)
        assert row["r2"] == pytest.approx(r2, rel=1e-6)
        assert row["l2_error"] == pytest.approx(l2, rel=1e-6)
        assert row["mean_measured"] == pytest.approx(mean, rel=1e-9)
        assert result.n_spots == n == slide.n_spots - 1  # one coord spot has no counts
    assert result.table.loc[GOOD, "pearson_r"] > 0.8
    assert abs(result.table.loc[RANDOM, "pearson_r"]) < 0.3


def test_pearson_stays_exact_for_a_small_spread_around_a_large_mean_and_sparse_x(slide, tmp_path, stpath_outputs):
    import scipy.sparse as sp

    prediction, _ = stpath_outputs(slide, tmp_path)
    adata = ad.read_h5ad(prediction)
    X = adata.X.copy()
    X[:, 1] = 8.0 + np.random.default_rng(2).normal(0, 1e-3, slide.n_spots)  # float32 near its resolution
    adata.X = sp.csr_matrix(X)  # another model may write sparse X
    adata.write_h5ad(prediction)
    pred = load_predictions(slide, prediction)
    result = compare(slide, pred)
    for gene in (GOOD, RANDOM):
        r, r2, l2, *_ = expected_metrics(slide, pred, gene)
        assert result.table.loc[gene, "pearson_r"] == pytest.approx(r, abs=1e-6)
        assert result.table.loc[gene, "l2_error"] == pytest.approx(l2, rel=1e-6)
        assert result.table.loc[gene, "r2"] == pytest.approx(r2, rel=1e-6, abs=1e-9)


def test_shuffled_rows_are_refused_without_barcodes_and_placed_with_them(slide, tmp_path, stpath_outputs):
    in_order, _ = stpath_outputs(slide, tmp_path, tag="ordered")
    shuffled_order = np.random.default_rng(7).permutation(slide.n_spots)
    shuffled, embeddings = stpath_outputs(slide, tmp_path, order=shuffled_order, tag="shuffled")

    with pytest.raises(SlideError, match=r"(?s)rows placed by the slide's spot order do not sit where.*--barcodes"):
        load_predictions(slide, shuffled)

    placed = load_predictions(slide, shuffled, barcodes=embeddings)
    assert placed.matched_by == "by the embeddings file's barcodes"
    reference = load_predictions(slide, in_order)
    for gene in (GOOD, RANDOM):
        np.testing.assert_allclose(placed.gene_values(gene), reference.gene_values(gene), rtol=0, atol=1e-6)
    a, b = compare(slide, placed).table, compare(slide, reference).table
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)


def test_barcodes_of_another_run_or_slide_are_refused(slide, tmp_path, stpath_outputs):
    shuffled, _ = stpath_outputs(slide, tmp_path, order=np.random.default_rng(3).permutation(slide.n_spots))
    _, other_run = stpath_outputs(slide, tmp_path, order=np.random.default_rng(4).permutation(slide.n_spots),
                                  tag="other")
    with pytest.raises(SlideError, match="do not sit where obsm.*the embeddings file given is not the one"):
        load_predictions(slide, shuffled, barcodes=other_run)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["barcodes"] = np.array([f"OTHER_{i}" for i in range(slide.n_spots)], dtype="S")[:, None]
    with pytest.raises(SlideError, match=f"{slide.n_spots} of {slide.n_spots} barcodes .* name no spot"):
        load_predictions(slide, shuffled, barcodes=foreign)


def test_rows_short_by_a_few_are_refused_and_placed_by_barcodes_with_nan_rows(slide, tmp_path, stpath_outputs):
    keep = np.arange(slide.n_spots - 3)
    short, embeddings = stpath_outputs(slide, tmp_path, order=keep)
    with pytest.raises(SlideError, match=rf"has {slide.n_spots - 3} rows but .* has {slide.n_spots} spots.*--barcodes"):
        load_predictions(slide, short)

    placed = load_predictions(slide, short, barcodes=embeddings)
    values = placed.gene_values(GOOD)
    assert np.isnan(values[-3:]).all() and np.isfinite(values[:-3]).all()
    r, *_ , n = expected_metrics(slide, placed, GOOD)
    result = compare(slide, placed)
    assert result.n_spots == n == slide.n_spots - 4
    assert result.table.loc[GOOD, "pearson_r"] == pytest.approx(r, abs=1e-6)


def test_obs_names_that_are_spot_ids_place_the_rows(slide, tmp_path, stpath_outputs):
    order = np.random.default_rng(5).permutation(slide.n_spots)
    prediction, _ = stpath_outputs(slide, tmp_path, order=order)
    adata = ad.read_h5ad(prediction)
    adata.obs_names = slide.spots["spot_id"].to_numpy()[order]
    del adata.obsm["coordinates"]  # nothing to verify against: the ids alone place the rows
    adata.write_h5ad(prediction)
    placed = load_predictions(slide, prediction)
    assert placed.matched_by == "by obs_names (spot ids)"
    measured = np.log1p(slide.gene_values(GOOD))
    both = np.isfinite(measured)
    assert np.corrcoef(measured[both], placed.gene_values(GOOD)[both])[0, 1] > 0.8

    adata.obs_names = [*adata.obs_names[:-2], "x1", "x2"]
    adata.write_h5ad(prediction)
    with pytest.raises(SlideError, match=rf"{slide.n_spots - 2} of {slide.n_spots} obs_names are spot ids"):
        load_predictions(slide, prediction)


def test_a_constant_prediction_has_no_r_and_is_left_out_of_the_mean(slide, tmp_path, stpath_outputs):
    prediction, _ = stpath_outputs(slide, tmp_path)
    adata = ad.read_h5ad(prediction)
    adata.X[:, 1] = 1.5  # RANDOM predicted flat: r undefined, as scipy says
    adata.write_h5ad(prediction)
    result = compare(slide, load_predictions(slide, prediction))
    assert np.isnan(result.table.loc[RANDOM, "pearson_r"])
    measured = np.log1p(slide.gene_values(RANDOM))
    m = measured[np.isfinite(measured)]
    assert result.table.loc[RANDOM, "l2_error"] == pytest.approx(np.mean((1.5 - m) ** 2), rel=1e-6)
    results = result.hest_results()
    assert results["pearson_corrs"][1] == {"name": RANDOM, "pearson_corr": None}
    assert results["pearson_mean"] == pytest.approx(result.table.loc[GOOD, "pearson_r"]) and results["pearson_std"] == 0
    assert results["n_genes_undefined_r"] == 1


def test_unreadable_prediction_file_names_the_file(slide, tmp_path):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    with pytest.raises(SlideError, match="bad.h5ad: cannot read it as an AnnData"):
        load_predictions(slide, bad)


def test_stpath_rescaling_is_per_axis():
    xy = np.array([[10.0, 5.0], [30.0, 7.0], [20.0, 6.0]])
    np.testing.assert_allclose(stpath_rescaled(xy), [[0, 0], [100, 100], [50, 50]])


def test_two_models_give_a_column_set_each(slide, tmp_path, stpath_outputs):
    first, _ = stpath_outputs(slide, tmp_path, seed=1, tag="modelA")
    second, _ = stpath_outputs(slide, tmp_path, seed=2, tag="modelB")
    results = [compare(slide, load_predictions(slide, p)) for p in (first, second)]
    table = comparison_table(results)
    assert list(table.columns) == ["mean_measured", "pearson_r [modelA]", "r2 [modelA]", "l2_error [modelA]",
                                   "pearson_r [modelB]", "r2 [modelB]", "l2_error [modelB]"]
    assert table.loc[GOOD, "pearson_r [modelB]"] == results[1].table.loc[GOOD, "pearson_r"]
    assert table.loc[GOOD, "pearson_r [modelA]"] != table.loc[GOOD, "pearson_r [modelB]"]


def test_cli_writes_hest_results_json_and_refuses_unmatched_rows(slide_paths, slide, tmp_path, capsys, stpath_outputs):
    order = np.random.default_rng(9).permutation(slide.n_spots)
    prediction, embeddings = stpath_outputs(slide, tmp_path, order=order)
    out = tmp_path / "out" / "results.json"

    assert main(["predictions", str(slide_paths.coord), str(prediction), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(prediction) in err and "--barcodes" in err and not out.exists()

    code = main(["predictions", str(slide_paths.coord), str(prediction), "--barcodes", str(embeddings), "--out", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    placed = load_predictions(slide, prediction, barcodes=embeddings)
    expected = {gene: expected_metrics(slide, placed, gene)[0] for gene in (GOOD, RANDOM)}
    assert [c["name"] for c in results["pearson_corrs"]] == [GOOD, RANDOM]
    for entry in results["pearson_corrs"]:
        assert entry["pearson_corr"] == pytest.approx(expected[entry["name"]], abs=1e-6)
    assert results["pearson_mean"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    assert results["pearson_std"] == pytest.approx(np.std(list(expected.values())), abs=1e-6)
    assert len(results["l2_errors"]) == len(results["r2_scores"]) == 2
    assert results["genes_only_predicted"] == [ABSENT] and results["n_genes_compared"] == 2
    assert "genes compared" in capsys.readouterr().out

    table = tmp_path / "table.csv"
    assert main(["predictions", str(slide_paths.coord), str(prediction), "--barcodes", str(embeddings),
                 "--out", str(table)]) == 0
    written = pd.read_csv(table, index_col="gene")
    assert list(written.columns) == ["pearson_r", "r2", "l2_error", "mean_measured"]
    assert written.loc[GOOD, "pearson_r"] == pytest.approx(expected[GOOD], abs=1e-5)

    assert main(["predictions", str(slide_paths.coord), str(prediction), "--out", str(tmp_path / "r.txt")]) == 2

    second, second_embeddings = stpath_outputs(slide, tmp_path, order=order[::-1], seed=5, tag="second")
    both = tmp_path / "both.csv"
    two = ["predictions", str(slide_paths.coord), str(prediction), str(second)]
    assert main([*two, "--barcodes", str(embeddings), "--out", str(both)]) == 1  # one file for both: wrong order
    assert main([*two, "--barcodes", str(embeddings), "--barcodes", str(second_embeddings),
                 "--out", str(both)]) == 0
    assert list(pd.read_csv(both, index_col="gene").columns) == [
        "mean_measured", "pearson_r [pred]", "r2 [pred]", "l2_error [pred]",
        "pearson_r [second]", "r2 [second]", "l2_error [second]"]
    assert main([*two, "--barcodes", str(embeddings), "--barcodes", str(second_embeddings),
                 "--out", str(tmp_path / "both.json")]) == 2


def _panel_pixel(image, slide, index, width, panel):
    s = render_scale(slide, width)
    y, x = slide.positions[index]
    return image[TITLE_HEIGHT + int((y + 0.5) * s), panel * (width + PANEL_WIDTH) + int((x + 0.5) * s)].astype(int)


def _rgb(colormap, fraction):
    from napari.utils.colormaps import ensure_colormap

    return (ensure_colormap(colormap).map(np.array([fraction]))[0][:3] * 255).round().astype(int)


def test_compare_render_shows_shared_range_and_centred_residual(slide, tmp_path, stpath_outputs):
    measured = np.log1p(slide.gene_values(GOOD))
    hot = int(np.nanargmax(measured))
    exact = int(np.flatnonzero(measured == 0)[0])
    over = int(np.flatnonzero((measured == 0) & (np.arange(slide.n_spots) != exact))[0])
    prediction, _ = stpath_outputs(slide, tmp_path)
    adata = ad.read_h5ad(prediction)
    column = np.where(np.isnan(measured), 0, measured) + np.random.default_rng(0).normal(0, 0.3, slide.n_spots)
    column[hot] = measured[hot]  # exact: same colour in both panels, white residual
    column[exact] = 0.0
    column[over] = 20.0  # the largest over-prediction: the red end of the residual bar
    adata.X[:, 0] = column.astype(np.float32)
    adata.write_h5ad(prediction)
    pred = load_predictions(slide, prediction)

    width = 400
    limits = (0.0, float(measured[hot]))
    image = render_prediction_comparison(slide, pred, GOOD, colormap="magma", contrast_limits=limits,
                                         opacity=1.0, width=width)
    assert image.shape[1] == 3 * (width + PANEL_WIDTH)
    top, bottom = _rgb("magma", 1.0), _rgb("magma", 0.0)
    # one shared range: the same value gives the same colour in the measured and predicted panels
    for panel in (0, 1):
        assert np.abs(_panel_pixel(image, slide, hot, width, panel) - top).max() <= 3
        assert np.abs(_panel_pixel(image, slide, exact, width, panel) - bottom).max() <= 3
    assert np.abs(_panel_pixel(image, slide, over, width, 1) - top).max() <= 3  # clipped at the top
    # residual: white at 0, red end for the largest over-prediction
    white = _rgb("RdBu_r", 0.5)
    assert white.min() > 230
    assert np.abs(_panel_pixel(image, slide, hot, width, 2) - white).max() <= 3
    assert np.abs(_panel_pixel(image, slide, exact, width, 2) - white).max() <= 3
    assert np.abs(_panel_pixel(image, slide, over, width, 2) - _rgb("RdBu_r", 1.0)).max() <= 3
    # each panel has its colorbar: the residual's runs from red (top) to blue (bottom)
    bar_x = 2 * (width + PANEL_WIDTH) + width + 28
    assert np.abs(image[TITLE_HEIGHT + 62, bar_x].astype(int) - _rgb("RdBu_r", 1.0)).max() <= 8
    assert np.abs(image[TITLE_HEIGHT + 62, width + 28].astype(int) - top).max() <= 8


def test_cli_render_compare(slide_paths, slide, tmp_path, capsys, stpath_outputs):
    from PIL import Image

    prediction, embeddings = stpath_outputs(slide, tmp_path, order=np.arange(slide.n_spots)[::-1])
    out = tmp_path / "fig.png"
    args = ["render", str(slide_paths.coord), "--predictions", str(prediction), "--gene", GOOD, "--compare",
            "--width", "300", "--out", str(out)]
    assert main(args) == 1 and "--barcodes" in capsys.readouterr().err
    assert main([*args, "--barcodes", str(embeddings)]) == 0
    assert Image.open(out).size == (3 * (300 + PANEL_WIDTH), TITLE_HEIGHT + 300)
    assert main([*args[:-2], "--barcodes", str(embeddings), "--gene", ABSENT, "--out", str(out)]) == 2
    assert "NOTONTHESLIDE" in capsys.readouterr().err
    assert main(["render", str(slide_paths.coord), "--predictions", str(prediction), "--gene", GOOD,
                 "--out", str(out)]) == 2


def test_comparison_colours_share_one_range_centre_the_residual_and_mark_missing_values():
    from napari_stimage import coloring as col

    measured = np.array([0.0, 1.0, 2.0, 3.0, np.nan, 1.5])
    predicted = np.array([0.0, 1.5, 2.0, 2.0, 1.0, np.nan])
    shown = col.ComparisonColors.of("G", measured, predicted, "magma")
    assert shown.measured_coloring.contrast_limits == shown.predicted_coloring.contrast_limits
    lo, hi = shown.residual_coloring.contrast_limits
    assert lo == -hi > -np.inf and shown.residual_coloring.colormap == col.RESIDUAL_COLORMAP
    m, p, r = shown.colors()
    np.testing.assert_array_equal(m[[0, 2]], p[[0, 2]])  # equal values, equal colours
    white = col.map_to_colormap(np.zeros(1), col.RESIDUAL_COLORMAP, (-1.0, 1.0))[0]
    np.testing.assert_allclose(r[[0, 2]], [white, white])  # residual 0: the mid colour
    assert r[3, 2] > r[3, 0] and r[1, 0] > r[1, 2]  # under-prediction blue, over-prediction red
    # no value on a side: no residual, drawn dark (never the white that means 0)
    np.testing.assert_array_equal(r[[4, 5]], [col.NO_DATA_COLOR_ON_LIGHT] * 2)
