import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_stimage import coloring as col
from napari_stimage.core.labels import UNLABELLED, label_categories


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
    assert rgba[0, 3] == 0 and np.allclose(rgba[4], col.NO_DATA_COLOR)  # zero hidden, no data veiled
    grey = col.gene_colors(values, col.GeneColoring(("G",), contrast_limits=(1.0, 3.0), non_expressing="grey"))
    assert np.allclose(grey[0], col.NON_EXPRESSING_GREY)
    assert np.allclose(grey[4], col.NO_DATA_COLOR)


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


def _hsv(color):
    import colorsys

    r, g, b = (int(color[k:k + 2], 16) / 255 for k in (1, 3, 5))
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    return h * 360, s, v


# Machado, Oliveira & Fernandes (2009) at full severity, applied to linear RGB
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])
PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]])
# H&E as it looks under the spots: light and dense eosin, the mix of a Visium slide, haematoxylin
HE_COLORS = ("#f2b8d2", "#d77fb0", "#9a7996", "#5b3f8c")


def _seen(color, deficiency=None):
    """sRGB (0-1) of a hex colour as seen with normal vision or the given dichromacy."""
    rgb = np.array([int(color[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    if deficiency is None:
        return rgb
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    out = np.clip(linear @ deficiency.T, 0, 1)
    return np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055)


def _distance(a, b, colour_blind=True):
    """CIEDE2000 between two colours: the smallest of normal vision, deuteranopia, protanopia."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    visions = (None, DEUTERANOPIA, PROTANOPIA) if colour_blind else (None,)
    return min(float(deltaE_ciede2000(rgb2lab(_seen(a, v)[None, None])[0, 0], rgb2lab(_seen(b, v)[None, None])[0, 0]))
               for v in visions)


def _smallest_gap(colors, colour_blind=True):
    return min(_distance(a, b, colour_blind) for a, b in itertools.combinations(colors, 2))


NEUTRALS = (col.UNLABELLED_COLOR, col.BUILTIN_LABEL_COLORS["undetermined"], col.BUILTIN_LABEL_COLORS["Exclude"])


KNOWN_VOCABULARIES = {
    "brain": ["L1", "L2", "L3", "L4", "L5", "L6", "WM"],
    "tls": ["TLS", "NO_TLS", "T_agg"],
    "breast": ["invasive cancer", "cancer in situ", "immune infiltrate", "breast glands", "connective tissue",
               "adipose tissue"],
    "prostate": ["GG1", "GG2", "GG4", "GG4 Cribriform", "PIN", "Benign", "Benign*", "Transition_State",
                 "Chronic inflammation"],
}


def test_label_colours_stay_apart_for_colour_blind_eyes_and_on_he():
    palette = list(col.LABEL_PALETTE)
    # before: 1.8 (#ffd600 / #aeea00 for deuteranopes), 6.1 in normal vision, 8.6 from eosin
    assert _smallest_gap(palette[:8]) >= 9.5
    assert _smallest_gap(palette, colour_blind=False) >= 13
    assert min(_distance(c, ref) for c in palette for ref in HE_COLORS + NEUTRALS) >= 12
    assert _smallest_gap(NEUTRALS) >= 25  # unlabelled, undetermined and Exclude: before 8.8
    for label, color in col.BUILTIN_LABEL_COLORS.items():
        assert min(_distance(color, ref) for ref in HE_COLORS) >= 9, (label, color)
    for old in ("#604e97", "#e68fac", "#875692", "#bdbdbd"):
        assert min(_distance(old, ref) for ref in HE_COLORS) < 9  # pinks, purples, light grey: lost on H&E


def test_known_vocabularies_have_distinct_builtin_colours(tmp_path):
    palette = col.LabelPalette(tmp_path / "none.json")
    for name, labels in KNOWN_VOCABULARIES.items():
        colors = palette.colors(labels)
        assert colors == {label: col.BUILTIN_LABEL_COLORS[label] for label in labels}, name
        assert len(set(colors.values())) == len(labels), name
    # within each vocabulary, with the neutrals, colour-blind eyes still tell them apart
    # (before: 1.8 for L1/L2 and GG1/Benign*; GG4 Cribriform was a darker GG4 red)
    for name, labels in KNOWN_VOCABULARIES.items():
        assert _smallest_gap([col.BUILTIN_LABEL_COLORS[label] for label in labels] + list(NEUTRALS)) >= 9, name
    # neutral greys for the "not a tissue class" labels, distinct from unlabelled
    greys = palette.colors(["undetermined", "Exclude", UNLABELLED])
    assert all(_hsv(c)[1] < 0.05 for c in greys.values()) and len(set(greys.values())) == 3
    # cortical layers run in order: hue moves one way from L1 to L6
    hues = [_hsv(col.BUILTIN_LABEL_COLORS[f"L{k}"])[0] for k in range(1, 7)]
    assert hues == sorted(hues)
    # the yellows of the prostate set are gone: one yellow-ish colour at most
    prostate = [_hsv(c)[0] for c in palette.colors(KNOWN_VOCABULARIES["prostate"]).values() if _hsv(c)[1] > 0.05]
    assert sum(40 <= h <= 65 for h in prostate) <= 1


def test_a_label_has_the_same_colour_whatever_else_is_on_the_slide(tmp_path):
    palette = col.LabelPalette(tmp_path / "none.json")
    everything = [label for labels in KNOWN_VOCABULARIES.values() for label in labels]
    together = palette.colors(everything + ["stroma", "necrosis", "tumour bed"])
    for label in everything:
        assert palette.colors([label])[label] == together[label] == col.BUILTIN_LABEL_COLORS[label]
    # a label outside the vocabularies keeps its hashed colour unless another label of the same
    # slide already holds that colour; then it takes the next free one (the documented exception)
    free = [f"region {k}" for k in range(40)]
    for label in free:
        alone = palette.colors([label])[label]
        assert alone == col.LABEL_PALETTE[col.hashed_palette_index(label)] == palette.default_color(label)
    a = next(lab for lab in free if palette.default_color(lab) == "#ffd600")
    clash = palette.colors(["TLS", a])  # TLS is built-in yellow: the other label moves, TLS never
    assert clash["TLS"] == "#ffd600" and clash[a] != "#ffd600"
    b, c = [lab for lab in free if palette.default_color(lab) == palette.default_color(free[0])][:2]
    # of two labels that share a hashed colour, the one earlier in curation order keeps it: a
    # label created later (appended to the order) never takes an existing label's colour
    pair = palette.colors([b, c])
    assert pair[b] == palette.default_color(b) and pair[c] != pair[b]
    pair = palette.colors([c, b])
    assert pair[c] == palette.default_color(c) and pair[b] != pair[c]


def test_colour_preferences_live_in_the_config_folder(monkeypatch, tmp_path):
    import json

    from napari_stimage.io.cache import cache_dir, config_dir

    col.LabelPalette().set_color("TLS", "#123456")
    col.remember_recent_gene("ERBB2")
    assert json.loads((config_dir() / col.LABEL_COLORS_FILE).read_text()) == {"TLS": "#123456"}
    assert json.loads((config_dir() / col.RECENT_GENES_FILE).read_text()) == ["ERBB2"]
    assert not (cache_dir() / col.LABEL_COLORS_FILE).exists()
    assert not (cache_dir() / col.RECENT_GENES_FILE).exists()
    # emptying the cache folder loses nothing
    import shutil

    shutil.rmtree(cache_dir())
    assert col.LabelPalette().colors(["TLS"])["TLS"] == "#123456"
    assert col.load_recent_genes() == ["ERBB2"]
    assert col.LabelPalette(user_colors=False).colors(["TLS"])["TLS"] == col.BUILTIN_LABEL_COLORS["TLS"]


def test_preferences_an_older_version_left_in_the_cache_folder_are_read(tmp_path):
    import json

    from napari_stimage.io.cache import cache_dir, config_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    (cache_dir() / col.LABEL_COLORS_FILE).write_text(json.dumps({"TLS": "#abcdef"}))
    (cache_dir() / col.RECENT_GENES_FILE).write_text(json.dumps(["PTPRC"]))
    palette = col.LabelPalette()
    assert palette.colors(["TLS"])["TLS"] == "#abcdef"
    assert col.remember_recent_gene("ERBB2") == ["ERBB2", "PTPRC"]
    palette.set_color("WM", "#000001")
    assert json.loads((config_dir() / col.LABEL_COLORS_FILE).read_text()) == {"TLS": "#abcdef", "WM": "#000001"}
    assert json.loads((config_dir() / col.RECENT_GENES_FILE).read_text()) == ["ERBB2", "PTPRC"]


def test_legend_entries_in_a_given_order(tmp_path):
    palette = col.LabelPalette(tmp_path / "p.json")
    values = ["b", "a", None, "c", "a"]
    natural = col.legend_entries(values, palette)
    assert [e.label for e in natural] == ["a", "b", "c", UNLABELLED]
    ordered = col.legend_entries(values, palette, order=["c", "gone", "a"])
    assert [e.label for e in ordered] == ["c", "gone", "a", "b", UNLABELLED]
    assert [e.count for e in ordered] == [1, 0, 2, 1, 1]
    rgba = col.label_colors(values, palette, hidden_labels=["a"], order=["c", "gone", "a"])
    colors = {e.label: e.color for e in ordered}
    assert col.rgba_to_hex(rgba[0]) == colors["b"] and rgba[0, 3] == 1
    assert rgba[1, 3] == 0 and rgba[4, 3] == 0  # hidden: transparent
    assert np.array_equal(col.hide_spots(np.ones((2, 4)), np.array([True, False]))[:, 3], [1, 0])


label_value = st.one_of(
    st.none(), st.just(float("nan")), st.just(""), st.just(UNLABELLED), st.integers(0, 3),
    st.sampled_from(["L1", "L2", "L10", "a", "B", "TLS", "nan", " "]),
    st.text(max_size=3),  # NUL included: labels are counted as written
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(label_value, max_size=30),
       order=st.one_of(st.none(), st.lists(st.one_of(label_value, st.just("gone")), max_size=5)))
def test_legend_entries_from_counts_equal_legend_entries_from_values(values, order):
    """Counts keyed by raw labels (None, NaN, "" and UNLABELLED all unlabelled, zero counts
    left out) give the entries of the labels themselves."""
    from collections import Counter

    palette = col.LabelPalette(user_colors=False)
    counts = Counter(values)  # raw keys: None, NaN, "", UNLABELLED, 0 and "0" ...
    counts["never held"] = 0
    from_values = col.legend_entries(values, palette, order)
    assert col.legend_entries_from_counts(counts, palette, order) == from_values
    assert sum(e.count for e in from_values) == len(values)


def test_gene_suggestions_for_a_misspelt_name():
    search = col.GeneSearch(["ERBB2", "MALAT1", "PTPRC"])
    assert search.suggestions("ERBX2") == ["ERBB2"]
    assert search.suggestions("mala") == ["MALAT1"]
    assert search.suggestions("zzz") == []


@pytest.mark.parametrize("mode", col.NON_EXPRESSING_MODES)
def test_no_data_looks_different_from_zero_in_every_mode_and_colormap(mode):
    """Composited as the canvas does (layer opacity 0.9) over H&E pink, purple and background."""
    from napari_stimage._qt.color_widget import GENE_COLORMAPS

    he = np.array([[0.91, 0.62, 0.78], [0.45, 0.33, 0.62], [0.96, 0.95, 0.96]])
    values = np.array([0.0, np.nan, 1.0, 5.0])
    for colormap in GENE_COLORMAPS:
        rgba = col.gene_colors(values, col.GeneColoring(("G",), colormap=colormap, non_expressing=mode))
        zero, missing = rgba[0], rgba[1]
        for under in he[:2]:  # spots lie on tissue
            def seen(c, under=under):
                alpha = c[3] * 0.9
                return c[:3] * alpha + under * (1 - alpha)
            gap = np.abs(seen(zero) - seen(missing)).max()
            assert gap >= 0.2, (mode, colormap, under, gap)
