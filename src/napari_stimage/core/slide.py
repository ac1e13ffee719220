"""A slide as a plain Python object: spots, expression, annotation and image, joined on spot id.

This is the Qt-free core the reader, the widgets, `render` and scripts share. A slide knows where
it came from only through its `source` (`core.source.SlideSource`: name, technology, image, where
labels are saved); the readers in `io/` build slides, `io.registry.load_slide` picks the reader:

    >>> from napari_stimage import load_slide
    >>> slide = load_slide("STimage-1K4M/Visium/coord/SLIDE_coord.csv")
    >>> slide.gene_values("MT-CO1")        # one value per spot, NaN where the count file lacks it
    >>> adata = slide.to_anndata()          # obsm['spatial'] = (x, y), obs['label']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .errors import SlideError
from .expression import Expression, make_unique
from .labels import unlabelled_mask
from .progress import CancelCallback, ProgressCallback, progress_share
from .source import LabelTable, SlideSource

N_DEFAULT_GENES = 50
EXPORT_IMAGE_MAX_PX = 2000  # longest edge of the image an export carries (Visium's hires is 2000)
BASE_FEATURES = ("spot_id", "label", "total_counts", "n_genes")


@dataclass
class JoinReport:
    """What did not line up between the coord, count and annotation files of a slide."""

    coord_not_in_count: list[str] = field(default_factory=list)
    count_not_in_coord: list[str] = field(default_factory=list)
    repeated_coord_ids: list[str] = field(default_factory=list)
    repeated_count_ids: list[str] = field(default_factory=list)
    repeated_annotation_ids: list[str] = field(default_factory=list)
    annotation_not_in_coord: list[str] = field(default_factory=list)
    image_error: str | None = None  # the image could not be decoded: the spots open without it
    notes: list[str] = field(default_factory=list)  # e.g. a cache folder that could not be written

    def messages(self) -> list[str]:
        def show(ids):
            head = ", ".join(ids[:3])
            return head + (f", ... (+{len(ids) - 3} more)" if len(ids) > 3 else "")

        parts = [
            (self.coord_not_in_count, "spot(s) of the coord file have no expression (shown, values NaN)"),
            (self.count_not_in_coord, "spot(s) of the count file have no coordinates (not drawn)"),
            (self.repeated_coord_ids, "spot id(s) repeat in the coord file (all drawn)"),
            (self.repeated_count_ids, "spot id(s) repeat in the count file (first row used)"),
            (self.repeated_annotation_ids, "spot id(s) repeat in the annotation (first label shown, all rows kept for saving)"),
            (self.annotation_not_in_coord, "annotation row(s) name unknown spots (kept for saving)"),
        ]
        messages = [f"{len(ids)} {what}: {show(ids)}" for ids, what in parts if ids]
        if self.image_error:
            messages.insert(0, f"image not shown: {self.image_error}")
        return messages + self.notes

    def __bool__(self) -> bool:
        return bool(self.messages())

    def summary(self, slide_name: str) -> str:
        """A short first line (what a notification toast shows), then one line per problem."""
        messages = self.messages()
        return f"{slide_name}: {len(messages)} note(s) on opening\n" + "\n".join(f"- {m}" for m in messages)


@dataclass
class Slide:
    source: SlideSource
    spots: pd.DataFrame
    expression: Expression | None
    annotation: LabelTable | None  # the labels as the source stores them (for STimage: its annotation CSV)
    report: JoinReport
    expression_rows: np.ndarray  # per spot: its row in expression.matrix, or -1
    # per spot, categorical columns the source carries besides the curated label (an AnnData's
    # clusters, leiden, cell types): offered in the colour widget's label mode, kept on export
    categories: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def tech(self) -> str | None:
        return self.source.technology

    @property
    def paths(self):
        """The source's files when it has a file set (STimage-1K4M: `SlidePaths`), else None."""
        return getattr(self.source, "paths", None)

    @property
    def image_scale(self) -> float:
        """Full-resolution pixels per pixel of `image_levels[0]` (1 unless the source's image is a
        downscaled copy, as Visium's hires PNG is): the image layer is drawn at this scale."""
        return float(getattr(self.source, "image_scale", 1.0))

    @property
    def n_spots(self) -> int:
        return len(self.spots)

    @property
    def positions(self) -> np.ndarray:
        """(n, 2) napari (row, col) = (yaxis, xaxis) in full-resolution pixels."""
        return self.spots[["y", "x"]].to_numpy(np.float64)

    @property
    def diameters(self) -> np.ndarray:
        return 2.0 * self.spots["r"].to_numpy(np.float64)

    @cached_property
    def labels(self) -> np.ndarray:
        """Per spot the pathologist label (first row wins), NaN when unlabelled."""
        out = np.full(self.n_spots, np.nan, dtype=object)
        if self.annotation is not None:
            first = self.annotation.first_labels()
            for i, spot in enumerate(self.spots["spot_id"]):
                label = first.get(spot)
                if label is not None:
                    out[i] = label
        return out

    @cached_property
    def image_levels(self) -> list | None:
        """Pyramid levels of the H&E image (largest first), or None when the slide has none."""
        return self.load_image()

    def load_image(
        self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None
    ) -> list | None:
        """Decode the image now (building its cached pyramid the first time, with progress)."""
        if "image_levels" not in self.__dict__:
            levels = self.source.load_image(progress=progress, cancel=cancel, notes=self.report.notes)
            self.__dict__["image_levels"] = levels  # fills the cached_property
        return self.__dict__["image_levels"]

    def finish_reading(
        self, progress: ProgressCallback | None = None, decode_image: bool = False, cancel: CancelCallback | None = None
    ) -> Slide:
        """The last step every reader shares: with `decode_image`, decode the image now (the last
        fifth of `progress`); a damaged image is reported in `report.image_error` and the slide
        opens without it, because it should not hide the spots, expression and labels."""
        if decode_image:
            try:
                self.load_image(progress_share(progress, 0.8, 1.0), cancel)
            except SlideError as exc:
                self.report.image_error = str(exc)
                self.__dict__["image_levels"] = None
        if progress is not None:
            progress(1000, 1000)
        return self

    def _align(self, per_count_row: np.ndarray) -> np.ndarray:
        out = np.full(self.n_spots, np.nan, dtype=np.float64)
        have = self.expression_rows >= 0
        out[have] = per_count_row[self.expression_rows[have]]
        return out

    def gene_values(self, gene: str) -> np.ndarray:
        """Counts of `gene` per spot (float64), NaN for spots the count file lacks."""
        if self.expression is None:
            raise KeyError(f"slide {self.name} has no count file")
        return self._align(self.expression.gene_values(gene))

    @cached_property
    def total_counts(self) -> np.ndarray:
        if self.expression is None:
            return np.full(self.n_spots, np.nan)
        return self._align(self.expression.total_counts())

    @cached_property
    def n_genes_detected(self) -> np.ndarray:
        if self.expression is None:
            return np.full(self.n_spots, np.nan)
        return self._align(self.expression.n_genes_detected().astype(np.float64))

    @cached_property
    def default_genes(self) -> list[str]:
        """The slide's most variable genes, shown as point features on open."""
        if self.expression is None:
            return []
        return self.expression.top_variable_genes(N_DEFAULT_GENES)

    def features(self, genes: list[str] | None = None) -> pd.DataFrame:
        """The Points layer's feature table: id, label, totals and one column per gene."""
        genes = self.default_genes if genes is None else genes
        table = {
            "spot_id": self.spots["spot_id"].to_numpy(dtype=object),
            "label": self.labels.copy(),
            "total_counts": self.total_counts,
            "n_genes": self.n_genes_detected,
        }
        if self.categories is not None:
            for name in self.categories.columns:
                if name not in table:
                    table[name] = self.categories[name].to_numpy()
        for gene in genes:
            table[gene] = self.gene_values(gene)
        return pd.DataFrame(table)

    def to_anndata(self, labels=None, image_max_px: int = EXPORT_IMAGE_MAX_PX):
        """AnnData of the spots that have expression, in scanpy/squidpy conventions.

        `obsm['spatial']` is (x, y) in full-resolution pixels, `X` the counts as CSR with the unique
        gene names as `var_names` (the names as written in `var['gene_name_in_file']`), `obs['label']`
        the labels (`labels`, one per spot, e.g. a label editor's current ones; default: as read)
        and the source's other categorical columns. `uns['spatial'][name]` holds `images['hires']`,
        the slide's image downscaled to at most `image_max_px` on its longest edge (never the full
        WSI), and `scalefactors` (`spot_diameter_fullres`, `tissue_hires_scalef`), so
        `scanpy.pl.spatial(adata, library_id=name)` draws spots on tissue.
        """
        import anndata as ad

        if self.expression is None:
            raise ValueError(f"slide {self.name} has no count file")
        labels = self.labels if labels is None else np.asarray(labels, dtype=object)
        if len(labels) != self.n_spots:
            raise ValueError(f"{len(labels)} labels for the {self.n_spots} spots of {self.name}")
        keep = np.flatnonzero(self.expression_rows >= 0)
        spots = self.spots.iloc[keep]
        X = self.expression.matrix.tocsr()[self.expression_rows[keep]]
        kept_labels = labels[keep]
        columns = {"label": pd.Categorical(np.where(unlabelled_mask(kept_labels), None, kept_labels.astype(str)))}
        if self.categories is not None:
            for name in self.categories.columns:
                columns.setdefault(str(name), pd.Categorical(self.categories[name].to_numpy()[keep]))
        columns["total_counts"] = self.total_counts[keep]
        # a repeated spot id (STimage coord files have them) becomes id-1, id-2, ... as anndata would
        obs = pd.DataFrame(columns, index=pd.Index(make_unique(spots["spot_id"].astype(str)), name=None))
        var = pd.DataFrame(
            {"gene_name_in_file": np.asarray(self.expression.raw_gene_names).astype(str)},
            index=pd.Index(self.expression.gene_names.astype(str)),
        )
        adata = ad.AnnData(X=X, obs=obs, var=var)
        adata.obsm["spatial"] = spots[["x", "y"]].to_numpy(np.float64)
        library = {
            "scalefactors": {"spot_diameter_fullres": float(2 * spots["r"].median())},
            "metadata": {
                "tech": self.tech or "",
                "source": str(self.source.location),
                "normalised": bool(self.expression.normalised),
            },
        }
        image, scalef = self.downscaled_image(image_max_px)
        if image is not None:
            library["images"] = {"hires": image}
            library["scalefactors"]["tissue_hires_scalef"] = scalef
        adata.uns["spatial"] = {self.name: library}
        return adata

    def downscaled_image(self, max_px: int = EXPORT_IMAGE_MAX_PX) -> tuple[np.ndarray | None, float]:
        """The image as uint8 RGB at most `max_px` on its longest edge, and its pixels per
        full-resolution pixel. Reads the smallest pyramid level that is big enough, never level 0
        of a large slide. (None, 1.0) when the slide has no image."""
        levels = self.image_levels
        if not levels:
            return None, 1.0
        level = next((lv for lv in reversed(levels) if max(lv.shape[:2]) >= max_px), levels[0])
        step = max(1, int(np.ceil(max(level.shape[:2]) / max_px)))
        array = np.asarray(level[::step, ::step])
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        array = np.ascontiguousarray(array[..., :3]).astype(np.uint8)
        per_fullres = array.shape[1] / (levels[0].shape[1] * self.image_scale)
        return array, float(per_fullres)
