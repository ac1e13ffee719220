from dataclasses import replace

import numpy as np
import pytest

from napari_stimage import coloring as col
from napari_stimage.labels import UNLABELLED, label_categories


def test_transforms_match_scanpy_definitions():
    counts = np.array([0.0, 1.0, 9.0, np.nan])
    totals = np.array([10.0, 100.0, 0.0, 5.0])
    assert np.array_equal(col.transform_values(counts, "raw"), counts, equal_nan=True)
    assert np.allclose(col.transform_values(counts, "log1p")[:3], np.log1p(counts[:3]))
    cp10k = col.transform_values(counts, "log1p_cp10k", totals)
    assert cp10k[0] == 0.0
    assert cp10k[1] == pytest.approx(np.log1p(1.0 / 100.0 * 1e4))
    assert cp10k[2] == 0.0  # zero library size: no division by zero
    assert np.isnan(cp10k[3])
    with pytest.raises(ValueError):
        col.transform_values(counts, "sqrt")


def test_library_size_normalisation_uses_slide_totals(slide):
    values = col.GeneColoring(("ERBB2",), transform="log1p_cp10k").values(slide)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.log1p(slide.gene_values("ERBB2") / slide.total_counts * 1e4)
    ok = np.isfinite(expected)
    assert np.allclose(values[ok], expected[ok])


def test_autoscale_uses_percentiles_of_expressing_spots_only():
    values = np.concatenate([np.zeros(1000), np.arange(1, 101, dtype=float), [np.nan]])
    lo, hi = col.autoscale_limits(values)
    assert lo == pytest.approx(np.percentile(np.arange(1, 101), 1))
    assert hi == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert col.autoscale_limits(np.zeros(5)) == (0.0, 1.0)
    lo, hi = col.autoscale_limits(np.array([0.0, 3.0, 3.0]))
    assert hi > lo


def test_gene_colors_follow_napari_colormap_and_hide_non_expressing():
    from napari.utils.colormaps import ensure_colormap

    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan])
    coloring = col.GeneColoring(("G",), colormap="magma", contrast_limits=(1.0, 3.0))
    rgba = col.gene_colors(values, coloring)
    cmap = ensure_colormap("magma")
    assert np.allclose(rgba[1], cmap.map(np.array([0.0]))[0], atol=1e-6)
    assert np.allclose(rgba[3], cmap.map(np.array([1.0]))[0], atol=1e-6)
    assert np.allclose(rgba[2], cmap.map(np.array([0.5]))[0], atol=1e-6)
    assert rgba[0, 3] == 0 and rgba[4, 3] == 0
    grey = col.gene_colors(values, col.GeneColoring(("G",), contrast_limits=(1.0, 3.0), non_expressing="grey"))
    assert np.allclose(grey[0], col.NON_EXPRESSING_GREY)
    assert np.allclose(grey[4], col.NON_EXPRESSING_GREY)


def test_gene_set_score_is_mean_of_transformed_values(slide):
    score = col.GeneColoring(("ERBB2", "PTPRC")).values(slide)
    expected = (np.log1p(slide.gene_values("ERBB2")) + np.log1p(slide.gene_values("PTPRC"))) / 2
    assert np.allclose(score, expected, equal_nan=True)
    assert col.parse_gene_list(" ERBB2, ptprc;CD3E  ERBB2 ") == ["ERBB2", "ptprc", "CD3E"]
    assert "mean of ERBB2, PTPRC" in col.GeneColoring(("ERBB2", "PTPRC")).title


def test_gene_search_prefix_then_substring_case_insensitive():
    names = ["CD3E", "CD3EAP", "ACD3", "CD4", "MALAT1", "cd3"]
    counts = {"CD3E": np.array([0.0, 9.0, 2.0, np.nan, 1.0, 3.0, 0.0, 4.0])}
    search = col.GeneSearch(names, values_of=lambda g: counts[g])
    hits = search.search("cd3")
    assert hits[0] == "cd3"  # exact first
    assert hits[1:3] == ["CD3E", "CD3EAP"]  # then prefixes, shorter first
    assert hits[3] == "ACD3"  # then substrings
    assert "CD4" not in hits
    assert search.resolve("malat") == "MALAT1"
    assert search.candidate("cd3e") == col.GeneCandidate("CD3E", 5, 9.0)
    assert search.search("zzz") == []
    assert search.is_gene("Cd4") and not search.is_gene("CD")
    both = col.GeneSearch(["Actb", "ACTB"])  # names that differ only in case stay distinct
    assert both.search("ACTB")[0] == "ACTB" and both.search("actb")[0] == "Actb"
    assert both.candidate("ACTB").name == "ACTB"


def test_gene_search_is_fast_on_99000_names():
    import time

    names = [f"GENE{i:05d}" for i in range(99_000)] + ["ERBB2"]
    search = col.GeneSearch(names)
    start = time.perf_counter()
    hits = search.search("erb")
    elapsed = time.perf_counter() - start
    assert hits == ["ERBB2"]
    assert elapsed < 0.5  # generous: typing must feel instant, ~10 ms on a laptop


def test_label_palette_is_stable_and_distinct(tmp_path):
    labels = ["L1", "L2", "L3", "L4", "L5", "L6", "WM"]
    a = col.LabelPalette(tmp_path / "a.json").colors(labels)
    b = col.LabelPalette(tmp_path / "b.json").colors(list(reversed(labels)))
    assert a == b  # same label, same colour, whatever the order or session
    assert len(set(a.values())) == len(labels)
    # a label's colour does not depend on the other labels of the slide (no hash collision here)
    single = col.LabelPalette(tmp_path / "c.json").colors(["WM"])
    if col.LABEL_PALETTE[col.hashed_palette_index("WM")] == a["WM"]:
        assert single["WM"] == a["WM"]
    assert col.LabelPalette(tmp_path / "d.json").colors([UNLABELLED])[UNLABELLED] == col.UNLABELLED_COLOR


def test_label_colour_override_persists(tmp_path):
    path = tmp_path / "colors.json"
    palette = col.LabelPalette(path)
    palette.set_color("TLS", "#123456")
    assert col.LabelPalette(path).colors(["TLS", "NO_TLS"])["TLS"] == "#123456"
    col.LabelPalette(path).reset_color("TLS")
    assert col.LabelPalette(path).colors(["TLS"])["TLS"] != "#123456"


def test_legend_entries_order_counts_and_unlabelled(slide, tmp_path):
    palette = col.LabelPalette(tmp_path / "p.json")
    entries = col.legend_entries(slide.labels, palette)
    names = [e.label for e in entries]
    assert names[:-1] == label_categories(slide.labels)
    assert names[-1] == UNLABELLED and entries[-1].unlabelled
    assert sum(e.count for e in entries) == slide.n_spots
    rgba = col.label_colors(slide.labels, palette)
    first = entries[0]
    idx = int(np.flatnonzero(col.display_labels(slide.labels) == first.label)[0])
    assert col.rgba_to_hex(rgba[idx]) == first.color
    mask = col.visible_mask(slide.labels, [UNLABELLED])
    assert mask.sum() == slide.n_spots - entries[-1].count


def test_recent_genes_are_kept_newest_first_and_bounded(tmp_path):
    path = tmp_path / "recent.json"
    assert col.load_recent_genes(path) == []
    for gene in ["A", "B", "A", "C"]:
        col.remember_recent_gene(gene, path)
    assert col.load_recent_genes(path) == ["C", "A", "B"]
    for k in range(20):
        col.remember_recent_gene(f"G{k}", path)
    assert len(col.load_recent_genes(path)) == col.N_RECENT_GENES
    path.write_text("{not json")
    assert col.load_recent_genes(path) == []


@pytest.mark.parametrize("non_expressing", col.NON_EXPRESSING_MODES)
def test_cached_gene_values_give_the_same_colours_as_gene_colors(non_expressing):
    rng = np.random.default_rng(1)
    values = np.log1p(rng.poisson(0.7, 500).astype(float))
    values[::37] = np.nan
    cached = col.GeneValues.of(values)
    assert np.array_equal(cached.expressing, col.expressing_mask(values))
    assert cached.autoscale == col.autoscale_limits(values)
    assert cached.autoscale == col.autoscale_limits(values, expressing=cached.expressing)
    assert cached.top == pytest.approx(np.nanmax(values))
    coloring = col.GeneColoring(("G",), colormap="plasma", non_expressing=non_expressing)
    assert np.array_equal(cached.colors(coloring), col.gene_colors(values, coloring.with_limits(values)))
    fixed = replace(coloring, contrast_limits=(0.2, 1.1))
    assert np.array_equal(cached.colors(fixed), col.gene_colors(values, fixed))
    with pytest.raises(ValueError):  # cached arrays are shared between switches: never edited
        cached.values[0] = 1.0
    values[1] = 99.0  # nor tied to the caller's array
    assert cached.values[1] != 99.0
    assert col.GeneValues.of(np.full(3, np.nan)).top == 1.0
