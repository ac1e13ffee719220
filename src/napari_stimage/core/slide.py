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

from .expression import Expression
from .progress import CancelCallback, ProgressCallback
from .source import LabelTable, SlideSource

N_DEFAULT_GENES = 50
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
        for gene in genes:
            table[gene] = self.gene_values(gene)
        return pd.DataFrame(table)

    def to_anndata(self):
        """AnnData of the spots present in both coord and count files.

        `obsm['spatial']` is (x, y) in full-resolution pixels (scanpy's convention),
        `obs['label']` the pathologist label, `uns['spatial'][name]['scalefactors']` the spot size.
        """
        import anndata as ad

        if self.expression is None:
            raise ValueError(f"slide {self.name} has no count file")
        keep = np.flatnonzero(self.expression_rows >= 0)
        spots = self.spots.iloc[keep]
        X = self.expression.matrix.tocsr()[self.expression_rows[keep]]
        obs = pd.DataFrame(
            {"label": pd.Categorical(self.labels[keep]), "total_counts": self.total_counts[keep]},
            index=pd.Index(spots["spot_id"].astype(str), name=None),
        )
        var = pd.DataFrame(
            {"gene_name_in_file": self.expression.raw_gene_names},
            index=pd.Index(self.expression.gene_names.astype(str)),
        )
        adata = ad.AnnData(X=X, obs=obs, var=var)
        adata.obs_names_make_unique()
        adata.obsm["spatial"] = spots[["x", "y"]].to_numpy(np.float64)
        adata.uns["spatial"] = {
            self.name: {
                "scalefactors": {"spot_diameter_fullres": float(2 * spots["r"].median())},
                "metadata": {"tech": self.tech or "", "source": str(self.source.location)},
            }
        }
        return adata
