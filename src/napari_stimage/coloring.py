"""How spots get their colours: by a gene (or gene-set score) or by a categorical label.

Qt-free. The colour dock widget and `napari-stimage render` both call these functions, so the
same slide, gene and settings give the same colours on screen and in a rendered PNG.

    >>> from napari_stimage.coloring import GeneColoring, gene_colors
    >>> coloring = GeneColoring(genes=("ERBB2",), transform="log1p", colormap="magma")
    >>> values = coloring.values(slide)               # transformed value per spot
    >>> rgba = gene_colors(values, coloring)          # (n_spots, 4) float32, what the layer shows
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .core.labels import (  # display_labels, visible_mask: part of this module's API too
    UNLABELLED,
    display_labels,
    is_unlabelled,
    label_categories,
    visible_mask,
)

# ---------------------------------------------------------------------------------------------
# Value transforms

TRANSFORMS = {
    "raw": "raw counts",
    "log1p": "log1p",
    "log1p_cp10k": "log1p(counts per 10k)",
}
DEFAULT_TRANSFORM = "log1p"
LIBRARY_SIZE_TARGET = 1e4  # scanpy's normalize_total(target_sum=1e4)


def default_transform(slide) -> str:
    """"raw" for a slide whose expression is already normalised (log1p again would distort it),
    else `DEFAULT_TRANSFORM`. The reader's first colours and the colour widget both start here."""
    expression = getattr(slide, "expression", None)
    return "raw" if expression is not None and expression.normalised else DEFAULT_TRANSFORM


def transform_values(values: np.ndarray, transform: str, total_counts: np.ndarray | None = None) -> np.ndarray:
    """Counts -> displayed values. NaN (spot missing from the count file) stays NaN.

    `log1p_cp10k` is scanpy's `normalize_total(target_sum=1e4)` + `log1p`; spots with zero
    total counts get 0 rather than a division by zero.
    """
    values = np.asarray(values, dtype=np.float64)
    if transform == "raw":
        return values.copy()
    if transform == "log1p":
        return np.log1p(values)
    if transform == "log1p_cp10k":
        if total_counts is None:
            raise ValueError("log1p_cp10k needs the total counts per spot")
        totals = np.asarray(total_counts, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(totals > 0, values / totals * LIBRARY_SIZE_TARGET, 0.0)
        scaled[np.isnan(values)] = np.nan
        return np.log1p(scaled)
    raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")


def parse_gene_list(text: str) -> list[str]:
    """'ERBB2, PTPRC CD3E' -> ['ERBB2', 'PTPRC', 'CD3E'] (commas, semicolons or spaces; order kept)."""
    return list(dict.fromkeys(tok for tok in re.split(r"[\s,;]+", text.strip()) if tok))


# ---------------------------------------------------------------------------------------------
# Gene colouring

NON_EXPRESSING_MODES = ("transparent", "grey", "colormap")
NON_EXPRESSING_GREY = np.array([0.55, 0.55, 0.55, 1.0], dtype=np.float32)
# Spots the count file lacks have no value, which is not a zero: in every non-expressing mode they
# are near-white discs (near-black on colormaps that start light, such as fire), unlike a
# transparent, grey or colormap-low-end zero; tests/test_coloring.py checks the difference over
# H&E pink and purple for every colormap of the widget
NO_DATA_COLOR = np.array([1.0, 1.0, 1.0, 0.8], dtype=np.float32)
NO_DATA_COLOR_ON_LIGHT = np.array([0.08, 0.08, 0.08, 0.8], dtype=np.float32)


def no_data_color(colormap) -> np.ndarray:
    """The RGBA of spots without a value, for a colormap: never its low end's look-alike."""
    low = map_to_colormap(np.zeros(1), colormap, (0.0, 1.0))[0]
    return NO_DATA_COLOR_ON_LIGHT if low[:3].mean() > 0.5 else NO_DATA_COLOR
DEFAULT_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class GeneColoring:
    """Everything that decides the colours in gene mode. One gene, or several = a gene-set score."""

    genes: tuple[str, ...]
    transform: str = DEFAULT_TRANSFORM
    colormap: str = "viridis"
    contrast_limits: tuple[float, float] | None = None  # None: autoscale to expressing spots
    non_expressing: str = "transparent"

    def values(self, slide) -> np.ndarray:
        """Transformed value per spot: one gene, or the mean over the genes of a gene set."""
        if not self.genes:
            raise ValueError("no gene given")
        totals = slide.total_counts if self.transform == "log1p_cp10k" else None
        per_gene = [transform_values(slide.gene_values(g), self.transform, totals) for g in self.genes]
        return per_gene[0] if len(per_gene) == 1 else np.mean(per_gene, axis=0)

    def resolved_limits(self, values: np.ndarray) -> tuple[float, float]:
        return self.contrast_limits if self.contrast_limits is not None else autoscale_limits(values)

    def with_limits(self, values: np.ndarray) -> GeneColoring:
        """A copy with the contrast limits fixed (autoscaled now if they were None)."""
        return replace(self, contrast_limits=self.resolved_limits(values))

    @property
    def title(self) -> str:
        """Colorbar title: gene (or gene-set score) and the transform, e.g. 'ERBB2 · log1p'."""
        what = self.genes[0] if len(self.genes) == 1 else f"mean of {', '.join(self.genes)}"
        return f"{what} · {TRANSFORMS.get(self.transform, self.transform)}"


def expressing_mask(values: np.ndarray) -> np.ndarray:
    """Spots with a finite value above zero (all transforms keep 0 counts at 0)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def autoscale_limits(values: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                     expressing: np.ndarray | None = None) -> tuple[float, float]:
    """Contrast limits at the given percentiles of the expressing spots (default 1st-99th).

    With nothing expressed, (0, 1); a flat distribution still gets a non-empty range.
    `expressing` is `expressing_mask(values)` when the caller already has it.
    """
    values = np.asarray(values, dtype=np.float64)
    expressed = values[expressing if expressing is not None else expressing_mask(values)]
    if expressed.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(expressed, percentiles))
    if hi <= lo:
        top = float(expressed.max())
        hi = top if top > lo else lo + 1.0
    return (lo, hi)


def side_by_side_limits(values: Sequence[np.ndarray], shared: bool = True) -> list[tuple[float, float]]:
    """Contrast limits of slides shown side by side: one range over all their values (`shared`,
    so one value has one colour in every tile and one colorbar reads for all), or each its own."""
    if shared:
        limits = autoscale_limits(np.concatenate([np.asarray(v, dtype=np.float64) for v in values]))
        return [limits] * len(values)
    return [autoscale_limits(np.asarray(v, dtype=np.float64)) for v in values]


@dataclass(frozen=True, eq=False)
class GeneValues:
    """A coloring's per-spot values plus what colouring them needs, computed once.

    The colour widget keeps these per gene, so switching back to a gene (or changing only the
    colormap, range or non-expressing mode) does not redo the transform, mask and percentiles.
    """

    values: np.ndarray  # float64, read-only
    expressing: np.ndarray  # expressing_mask(values)
    autoscale: tuple[float, float]  # autoscale_limits(values)
    top: float  # largest finite value (1.0 when there is none): the end of a range slider

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.expressing.nbytes

    @classmethod
    def of(cls, values: np.ndarray) -> GeneValues:
        values = np.array(values, dtype=np.float64)  # a private copy, frozen below
        values.flags.writeable = False
        expressing = expressing_mask(values)
        expressing.flags.writeable = False
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size else 1.0
        return cls(values, expressing, autoscale_limits(values, expressing=expressing), top)

    def colors(self, coloring: GeneColoring) -> np.ndarray:
        """`gene_colors(values, coloring)`, with the limits autoscaled from the cache when None."""
        if coloring.contrast_limits is None:
            coloring = replace(coloring, contrast_limits=self.autoscale)
        return gene_colors(self.values, coloring, self.expressing)


class GeneValuesCache:
    """`GeneValues` by key (e.g. genes and transform), least recently used dropped first once their
    arrays together pass `max_bytes`: a 600k-bin slide costs ~5 MB per gene (the default keeps its
    last 6 genes, and hundreds of a 5,000-spot slide's). The newest entry is always kept.
    """

    def __init__(self, max_bytes: int = 32 << 20):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self._entries: OrderedDict = OrderedDict()
        self.nbytes = 0

    def get(self, key, compute: Callable[[], GeneValues]) -> GeneValues:
        """The cached entry of `key`, else `compute()` stored under it."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        entry = compute()
        self._entries[key] = entry
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self.nbytes -= dropped.nbytes
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries


@dataclass(frozen=True)
class ImageColoring:
    """What a napari Image layer needs to show a gene on a raster (one value per bin).

    `values` is float32, NaN where nothing is drawn: bins without counts, bins not expressing
    in "transparent" mode (and, for a raster, pixels without a bin). `colormap` is a napari
    colormap name, or a `napari.utils.colormaps.Colormap` whose bottom is grey in "grey" mode.
    """

    values: np.ndarray
    contrast_limits: tuple[float, float]
    colormap: object


def image_coloring(values: GeneValues, coloring: GeneColoring) -> ImageColoring:
    """Per-bin display values for an Image layer, coloured as `gene_colors` colours spots.

    Differences a single-channel image imposes, by mode: bins the count file lacks are
    transparent (not `no_data_color`); "grey" shows non-expressing bins in the grey of spots by
    putting them below the range of a colormap whose first step is grey, so the expressing
    bins keep their colours but never fall in that first 1/256 of the range.
    """
    if coloring.non_expressing not in NON_EXPRESSING_MODES:
        raise ValueError(f"non_expressing must be one of {NON_EXPRESSING_MODES}")
    lo, hi = coloring.contrast_limits if coloring.contrast_limits is not None else values.autoscale
    shown = values.values.astype(np.float32)
    silent = ~values.expressing & np.isfinite(shown)
    colormap: object = coloring.colormap
    if coloring.non_expressing == "transparent":
        shown[silent] = np.nan
    elif coloring.non_expressing == "grey":
        from napari.utils.colormaps import Colormap, ensure_colormap  # Qt-free

        step = (hi - lo) / 255 if hi > lo else 1.0 / 255
        np.maximum(shown, lo + step, out=shown, where=values.expressing)
        shown[silent] = lo
        ramp = np.asarray(ensure_colormap(coloring.colormap).map(np.linspace(0.0, 1.0, 255)), np.float32)
        # "zero" interpolation: colour k on [k/256, (k+1)/256), so only the first step is grey
        colormap = Colormap(np.vstack([NON_EXPRESSING_GREY, ramp]), controls=np.linspace(0.0, 1.0, 257),
                            name=f"{coloring.colormap} non-expressing grey", interpolation="zero")
    return ImageColoring(shown, (float(lo), float(hi)), colormap)


def map_to_colormap(values: np.ndarray, colormap, contrast_limits: tuple[float, float]) -> np.ndarray:
    """napari's colormap applied to values scaled by the contrast limits: (n, 4) float32 RGBA."""
    from napari.utils.colormaps import ensure_colormap  # Qt-free

    cmap = ensure_colormap(colormap)
    lo, hi = contrast_limits
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((np.nan_to_num(np.asarray(values, np.float64), nan=lo) - lo) / span, 0.0, 1.0)
    return np.asarray(cmap.map(scaled), dtype=np.float32)


def gene_colors(values: np.ndarray, coloring: GeneColoring, expressing: np.ndarray | None = None) -> np.ndarray:
    """Per-spot RGBA for gene mode: colormap for expressing spots, `non_expressing` for the rest,
    and `no_data_color` for spots without a value (missing from the count file), whatever the mode.

    `expressing` is `expressing_mask(values)` when the caller already has it (same colours).
    """
    if coloring.non_expressing not in NON_EXPRESSING_MODES:
        raise ValueError(f"non_expressing must be one of {NON_EXPRESSING_MODES}")
    rgba = map_to_colormap(values, coloring.colormap, coloring.resolved_limits(values))
    silent = ~(expressing if expressing is not None else expressing_mask(values))
    if coloring.non_expressing == "transparent":
        rgba[silent] = 0.0
    elif coloring.non_expressing == "grey":
        rgba[silent] = NON_EXPRESSING_GREY
    # "colormap": zeros keep the bottom colour
    missing = np.isnan(np.asarray(values, np.float64))
    if missing.any():
        rgba[missing] = no_data_color(coloring.colormap)
    return rgba


RESIDUAL_COLORMAP = "RdBu_r"  # diverging: blue under-, red over-prediction, white at 0


@dataclass(frozen=True, eq=False)
class ComparisonColors:
    """A gene measured (log1p), predicted, and their residual (predicted - measured), with the
    colorings that show them: ONE range for measured and predicted, the residual's symmetric
    around 0 on a diverging colormap. The compare view and `render --compare` both use it."""

    measured: np.ndarray
    predicted: np.ndarray
    residual: np.ndarray
    measured_coloring: GeneColoring
    predicted_coloring: GeneColoring
    residual_coloring: GeneColoring

    @classmethod
    def of(cls, gene: str, measured: np.ndarray, predicted: np.ndarray, colormap: str = "viridis",
           contrast_limits: tuple[float, float] | None = None,
           residual_colormap: str = RESIDUAL_COLORMAP) -> ComparisonColors:
        """`contrast_limits` None: autoscaled over both sides; the residual's half-range is the
        99th percentile of |residual| (1 when it is all 0). Every finite value is coloured
        (zeros and negative residuals are values); NaN (no value on a side) gets no-data."""
        measured = np.asarray(measured, dtype=np.float64)
        predicted = np.asarray(predicted, dtype=np.float64)
        residual = predicted - measured
        limits = contrast_limits or autoscale_limits(np.concatenate([measured, predicted]))
        spread = np.abs(residual[np.isfinite(residual)])
        half = float(np.percentile(spread, 99)) if spread.size else 0.0
        half = half if half > 0 else 1.0
        shared = GeneColoring((gene,), "log1p", colormap, tuple(limits), "colormap")
        return cls(measured, predicted, residual, shared, shared,
                   GeneColoring((gene,), "raw", residual_colormap, (-half, half), "colormap"))

    def colors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-spot RGBA of measured, predicted and residual. A spot without a value on either
        side has no residual: dark, never the diverging map's white, which means 0."""
        residual = gene_colors(self.residual, self.residual_coloring)
        residual[np.isnan(self.residual)] = NO_DATA_COLOR_ON_LIGHT
        return (gene_colors(self.measured, self.measured_coloring),
                gene_colors(self.predicted, self.predicted_coloring),
                residual)


def colormap_ramp(colormap, n: int = 256) -> np.ndarray:
    """(n, 4) RGBA from the bottom to the top of a colormap, for drawing a colorbar."""
    return map_to_colormap(np.linspace(0.0, 1.0, n), colormap, (0.0, 1.0))


def colorbar_ticks(contrast_limits: tuple[float, float], n: int = 5) -> list[float]:
    lo, hi = contrast_limits
    return [float(v) for v in np.linspace(lo, hi, n)]


def format_tick(value: float) -> str:
    return f"{value:.3g}"


# ---------------------------------------------------------------------------------------------
# Gene search

@dataclass(frozen=True)
class GeneCandidate:
    name: str
    n_expressing: int
    maximum: float


class GeneSearch:
    """Case-insensitive gene lookup as you type: exact match, then prefix, then substring.

    Built once per slide (the lower-cased names are computed once); one search over 99,000
    names is a single pass of `str.startswith`/`in`, a few milliseconds.
    `values_of(name)` gives a gene's per-spot counts, for the candidate's spot count and maximum.
    """

    def __init__(self, gene_names: Sequence[str], values_of: Callable[[str], np.ndarray] | None = None):
        self.names = [str(g) for g in gene_names]
        self._lower = [g.lower() for g in self.names]
        self._values_of = values_of
        self._exact = {g: i for i, g in enumerate(self.names)}
        self._position: dict[str, int] = {}
        for i, g in enumerate(self._lower):
            self._position.setdefault(g, i)  # first wins, like Expression.gene_index

    def is_gene(self, text: str) -> bool:
        """True when `text` names a gene exactly (case-insensitive)."""
        return text in self._exact or text.strip().lower() in self._position

    @classmethod
    def for_slide(cls, slide) -> GeneSearch:
        """Counts are taken over the slide's spots (count rows without coordinates left out)."""
        return cls(slide.expression.gene_names, slide.gene_values)

    def search(self, query: str, limit: int = 50) -> list[str]:
        q = query.strip().lower()
        if not q:
            return []
        exact_i = self._exact.get(query.strip(), self._position.get(q))
        exact = [self.names[exact_i]] if exact_i is not None else []
        prefix, inner = [], []
        for i, (name, low) in enumerate(zip(self.names, self._lower, strict=True)):
            if i == exact_i:
                continue
            if low.startswith(q):
                prefix.append(name)
            elif q in low:
                inner.append(name)
        # shorter names first within a group: typing "CD3" should offer CD3E before CD3EAP
        prefix.sort(key=lambda g: (len(g), g.lower()))
        inner.sort(key=lambda g: (len(g), g.lower()))
        return (exact + prefix + inner)[:limit]

    def suggestions(self, text: str, n: int = 5) -> list[str]:
        """Genes to offer for a name the slide lacks: candidates as typed, else close spellings."""
        hits = self.search(text, limit=n)
        if hits:
            return hits
        import difflib

        close = difflib.get_close_matches(text.strip().lower(), list(self._position), n=n, cutoff=0.6)
        return [self.names[self._position[low]] for low in close]

    def resolve(self, text: str) -> str | None:
        """The gene a typed text means: the exact (case-insensitive) name, else the best candidate."""
        hits = self.search(text, limit=1)
        return hits[0] if hits else None

    def candidate(self, name: str) -> GeneCandidate:
        i = self._exact[name] if name in self._exact else self._position[name.lower()]
        if self._values_of is None:
            return GeneCandidate(self.names[i], -1, float("nan"))
        values = np.asarray(self._values_of(self.names[i]), dtype=np.float64)
        finite = values[np.isfinite(values)]
        return GeneCandidate(self.names[i], int((finite > 0).sum()), float(finite.max()) if finite.size else 0.0)


RECENT_GENES_FILE = "recent_genes.json"
N_RECENT_GENES = 10


def load_recent_genes(path: str | Path | None = None) -> list[str]:
    """Gene entries (one gene or a comma-separated gene set) used last, newest first."""
    path = Path(path) if path is not None else _existing_preferences(RECENT_GENES_FILE)
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(g) for g in loaded][:N_RECENT_GENES] if isinstance(loaded, list) else []


def remember_recent_gene(entry: str, path: str | Path | None = None) -> list[str]:
    """Put `entry` first in the recent list (kept across sessions); returns the new list."""
    recent = [entry] + [g for g in load_recent_genes(path) if g != entry]
    path = Path(path) if path is not None else _config_file(RECENT_GENES_FILE)
    recent = recent[:N_RECENT_GENES]
    with contextlib.suppress(OSError):  # a read-only config folder must not stop colouring
        _write_json(path, recent)
    return recent


def _config_file(name: str) -> Path:
    """Preferences live in the config folder: users empty the cache folder freely."""
    from .io.cache import config_dir

    return config_dir() / name


def _existing_preferences(name: str) -> Path:
    """The preferences file to read: the config folder's, else one an older version left in
    the cache folder (it moves to the config folder on the next save)."""
    from .io.cache import CacheUnavailable, cache_dir

    path = _config_file(name)
    if path.exists():
        return path
    try:
        legacy = cache_dir() / name
    except CacheUnavailable:  # no usable cache folder, so no legacy file in it either
        return path
    return legacy if legacy.exists() else path


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from .core.storage import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))  # two windows never see half a file


# ---------------------------------------------------------------------------------------------
# Label colouring

# Colours chosen to stand out on H&E and to stay apart for colour-blind eyes (CIEDE2000, the
# smallest over normal vision and simulated deuteranopia and protanopia): the first eight at least
# 9.5 apart, every colour at least 12 from H&E pink and purple and from the neutrals below, all
# twelve at least 13 apart in normal vision. tests/test_coloring.py measures it.
LABEL_PALETTE = (
    # olive (3rd) and brown (12th) replaced a violet lost on purple tissue and a blue that napari's
    # own selection highlight (#0099ff) hid; the slots stay, so no other label's hashed colour moved
    "#40c4ff", "#76ff03", "#aaaa66", "#d55e00", "#009e73", "#fff59d", "#bf360c", "#e69f00",
    "#ff5252", "#00c853", "#ffd600", "#663300",
)
UNLABELLED_COLOR = "#ffffff"

# The label vocabularies of STimage-1K4M (docs/formats.md) get fixed, hand-picked colours: within
# each vocabulary, with the neutrals, at least 9 CIEDE2000 apart for colour-blind eyes too, and
# ordered where the labels are (cortical layers, Gleason grades).
BUILTIN_LABEL_COLORS = {
    # brain cortical layers, superficial to deep: yellow -> green -> blue, white matter vermilion
    **{f"{prefix}{k}": color for prefix in ("L", "Layer") for k, color in zip(
        range(1, 7), ("#ffd600", "#00c853", "#009e73", "#1de9b6", "#40c4ff", "#2962ff"), strict=True)},
    "WM": "#d55e00",
    # tertiary lymphoid structures
    "TLS": "#ffd600", "T_agg": "#d55e00", "NO_TLS": "#40c4ff",
    # breast
    "invasive cancer": "#d55e00", "cancer in situ": "#ff9100", "immune infiltrate": "#ffd600",
    "breast glands": "#40c4ff", "connective tissue": "#009e73", "adipose tissue": "#2962ff",
    # prostate: Gleason grades yellow -> vermilion -> rust -> brown, benign greens, the rest blues
    "GG1": "#ffd600", "GG2": "#d55e00", "GG4": "#bf360c", "GG4 Cribriform": "#795548",
    "PIN": "#1de9b6", "Benign": "#00c853", "Benign*": "#009e73", "Transition_State": "#2962ff",
    "Chronic inflammation": "#40c4ff",
    # not a tissue class: neutrals far apart in lightness (unlabelled spots are white)
    "undetermined": "#616161", "Exclude": "#000000",
}
LABEL_COLORS_FILE = "label_colors.json"


def _hex_to_rgba(color: str) -> np.ndarray:
    color = color.lstrip("#")
    rgb = [int(color[k:k + 2], 16) / 255 for k in (0, 2, 4)]
    alpha = int(color[6:8], 16) / 255 if len(color) == 8 else 1.0
    return np.array(rgb + [alpha], dtype=np.float32)


def rgba_to_hex(rgba) -> str:
    r, g, b = (int(round(float(c) * 255)) for c in list(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def hashed_palette_index(label: str) -> int:
    """Stable across sessions and machines (Python's own hash() is salted per process)."""
    digest = hashlib.sha1(label.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % len(LABEL_PALETTE)


LABEL_COLOR_MEMORY_FOLDER = "label_colors"  # in the user data folder: one file per annotation file


class LabelColorMemory:
    """The colours one annotation file's labels were shown in, kept between sessions: a label keeps
    its colour for as long as the file has it, whatever labels are created, merged or removed
    beside it (`LabelPalette.for_annotation`). Best effort, as the label order: a data folder that
    cannot be written only costs the memory, never a save. One object per file and process, so the
    spots, the bins and the legend of a slide read the same colours."""

    _open: dict[Path, LabelColorMemory] = {}

    def __init__(self, path: Path | None):
        self.path = path
        self.colors: dict[str, str] = {}
        if path is None:
            return
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet, or damaged: the colours are resolved again and written afresh
        if isinstance(loaded, dict):
            self.colors = {str(k): str(v).lower() for k, v in loaded.items() if _is_hex_color(v)}

    @classmethod
    def of(cls, annotation_path: str | Path) -> LabelColorMemory:
        key = Path(annotation_path).resolve()
        memory = cls._open.get(key)
        if memory is None:
            from .core.errors import SlideError
            from .io.cache import annotation_user_file

            try:
                path: Path | None = annotation_user_file(LABEL_COLOR_MEMORY_FOLDER, key)
            except (OSError, SlideError):
                path = None  # no usable data folder: remembered for this session only
            memory = cls._open[key] = cls(path)
        return memory

    def remember(self, colors: Mapping[str, str]) -> None:
        """Keep these label colours (written only when something changed)."""
        if all(self.colors.get(label) == color for label, color in colors.items()):
            return
        self.colors.update(colors)
        if self.path is not None:
            with contextlib.suppress(OSError):
                _write_json(self.path, self.colors)


def _is_hex_color(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value) is not None


class LabelPalette:
    """Label -> colour, the same on every slide and in every session.

    In order of precedence: a colour the user picked (kept in `label_colors.json` in the
    plugin's config folder; `user_colors=False` ignores them, for reproducible figures), the
    built-in colour of the dataset's known labels (`BUILTIN_LABEL_COLORS`), the colour an
    annotation file's label was shown in before (`for_annotation`), else the palette colour a
    hash of the label text picks. `colors()` documents the one case where a label's colour
    depends on the other labels of the slide.
    """

    def __init__(self, path: str | Path | None = None, *, user_colors: bool = True):
        self.path = Path(path) if path is not None else _config_file(LABEL_COLORS_FILE)
        self.overrides: dict[str, str] = {}
        self.memory: LabelColorMemory | None = None
        if not user_colors:
            return
        source = self.path if path is not None else _existing_preferences(LABEL_COLORS_FILE)
        try:
            loaded = json.loads(source.read_text())
            if isinstance(loaded, dict):
                self.overrides = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError):
            pass  # no file yet, or a damaged one: start from the default colours

    def for_annotation(self, annotation_path: str | Path | None) -> LabelPalette:
        """This palette (the user's colours shared) remembering the colours of one annotation
        file's labels (`LabelColorMemory`); itself when there is no file."""
        if annotation_path is None:
            return self
        view = copy.copy(self)
        view.memory = LabelColorMemory.of(annotation_path)
        return view

    def default_color(self, label: str) -> str:
        """The colour a label has without user overrides or collisions: built-in, else hashed."""
        if label == UNLABELLED:
            return UNLABELLED_COLOR
        return BUILTIN_LABEL_COLORS.get(label) or LABEL_PALETTE[hashed_palette_index(label)]

    def colors(self, labels: Iterable[str]) -> dict[str, str]:
        """Hex colour per label (UNLABELLED included when passed), `labels` in curation order
        (`curation.editor.label_order_of`: a new label comes last).

        A label's colour depends on the label alone (user colour, built-in colour, remembered
        colour or hashed palette colour) with one exception: when its hashed colour is already
        taken on this set of labels, by a fixed colour or by a label earlier in `labels`, it takes
        the next palette colour not taken. So a label created later never takes an existing
        label's colour, and with a memory (`for_annotation`) the colour it got is kept for good.
        """
        ordered = list(dict.fromkeys(labels))
        out: dict[str, str] = {}
        for label in ordered:
            if label in self.overrides:
                out[label] = self.overrides[label]
            elif label == UNLABELLED or label in BUILTIN_LABEL_COLORS:
                out[label] = self.default_color(label)
        used = set(out.values())
        remembered = self.memory.colors if self.memory is not None else {}
        for label in ordered:
            color = remembered.get(label)
            if label not in out and color is not None and color not in used:
                out[label] = color
                used.add(color)
        for label in ordered:
            if label in out:
                continue
            start = hashed_palette_index(label)
            for step in range(len(LABEL_PALETTE)):
                color = LABEL_PALETTE[(start + step) % len(LABEL_PALETTE)]
                if color not in used:
                    break
            else:
                color = LABEL_PALETTE[start]  # more labels than colours: repeats are unavoidable
            out[label] = color
            used.add(color)
        if self.memory is not None:
            fixed = set(self.overrides) | set(BUILTIN_LABEL_COLORS) | {UNLABELLED}
            self.memory.remember({label: color for label, color in out.items() if label not in fixed})
        return out

    def set_color(self, label: str, color: str) -> None:
        self.overrides[label] = color.lower()
        self._save()

    def reset_color(self, label: str) -> None:
        if self.overrides.pop(label, None) is not None:
            self._save()

    def _save(self) -> None:
        _write_json(self.path, self.overrides)


@dataclass(frozen=True)
class LegendEntry:
    label: str  # the label text, or UNLABELLED
    color: str  # hex
    count: int
    unlabelled: bool = False


def label_counts(values: Iterable) -> dict[str, int]:
    """Spots per label as shown (`display_labels`: UNLABELLED for unlabelled ones)."""
    from collections import Counter

    return dict(Counter(display_labels(values).tolist()))


def legend_entries(values: Iterable, palette: LabelPalette, order: Sequence[str] | None = None) -> list[LegendEntry]:
    """One entry per label of `values` (one per spot), unlabelled last (when any spot is unlabelled).

    `order` is the curation order (`editing.LabelEditor.categories()`, which hotkeys 1-9
    follow): its labels are listed first in that order, even those no spot holds any more,
    then any other label present. Without it, the natural order (`labels.label_categories`).
    `legend_entries_from_counts` gives the same entries from counts per label.
    """
    return legend_entries_from_counts(label_counts(values), palette, order)


def legend_entries_from_counts(counts: Mapping, palette: LabelPalette,
                               order: Sequence[str] | None = None) -> list[LegendEntry]:
    """`legend_entries` from spots per label instead of the labels of every spot: the same
    entries, order, colours and counts.

    `counts` maps a label to its number of spots; any unlabelled key (None, NaN, "" or
    UNLABELLED) counts as unlabelled, labels with no spots are left out unless `order` lists
    them. `curation.editor.LabelEditor.label_counts()` keeps such counts up to date per edit.
    """
    count_of: dict[str, int] = {}
    for label, n in counts.items():
        key = UNLABELLED if is_unlabelled(label) else str(label)
        count_of[key] = count_of.get(key, 0) + int(n)
    present = label_categories(label for label, n in count_of.items() if n > 0 and label != UNLABELLED)
    if order is not None:
        listed = [str(label) for label in dict.fromkeys(order) if not is_unlabelled(label) and label != UNLABELLED]
        known = set(listed)
        present = listed + [label for label in present if label not in known]
    if count_of.get(UNLABELLED):
        present.append(UNLABELLED)
    colors = palette.colors(present)
    return [LegendEntry(label, colors[label], count_of.get(label, 0), label == UNLABELLED) for label in present]


NOT_DRAWN = "transparent"  # a legend entry whose elements are not painted: the tissue shows through


def with_unlabelled_not_drawn(entries: Sequence[LegendEntry]) -> list[LegendEntry]:
    """Bins: an unlabelled bin is not painted (a raster's unlabelled code is its background), so
    the legend says so rather than show a white that is nowhere on the canvas or in a figure."""
    return [replace(e, color=NOT_DRAWN) if e.unlabelled else e for e in entries]


def label_colors(values: Iterable, palette: LabelPalette, hidden_labels: Iterable[str] = (),
                 order: Sequence[str] | None = None) -> np.ndarray:
    """Per-spot RGBA (float32) in label mode, the colours of `legend_entries(values, palette, order)`;
    spots of `hidden_labels` fully transparent."""
    shown = display_labels(values)
    colors = {e.label: _hex_to_rgba(e.color) for e in legend_entries(shown, palette, order) if e.color != NOT_DRAWN}
    out = np.zeros((len(shown), 4), dtype=np.float32)
    for label, rgba in colors.items():
        out[shown == label] = rgba
    return hide_spots(out, visible_mask(shown, hidden_labels))


def hide_spots(rgba: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """`rgba` with alpha 0 where not `visible`: how a spot is hidden, on the canvas and in a PNG.

    (napari 0.9 ignores `Points.shown` when every dimension is displayed, so transparency is
    what actually hides a spot.)
    """
    rgba = np.array(rgba, dtype=np.float32)
    rgba[~np.asarray(visible, dtype=bool), 3] = 0.0
    return rgba


def categorical_columns(features) -> list[str]:
    """Feature columns that hold categories (text or pandas categoricals), `label` first."""
    import pandas as pd

    columns = []
    for name in features.columns:
        column = features[name]
        if name == "spot_id":
            continue
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object or pd.api.types.is_string_dtype(column):
            columns.append(str(name))
    return sorted(columns, key=lambda c: c != "label")
