"""Predicted gene expression (STPath and models like it) placed on a slide's spots and judged
against the measured counts. Qt-free.

    >>> from napari_stimage import load_slide
    >>> from napari_stimage.io.predictions import load_predictions, compare
    >>> slide = load_slide("STimage-1K4M/Visium/coord/SLIDE_coord.csv")
    >>> pred = load_predictions(slide, "pred_SLIDE.h5ad", barcodes="SLIDE.h5")  # barcodes optional
    >>> pred.gene_values("ERBB2")        # per spot of the slide, NaN where nothing was predicted
    >>> result = compare(slide, pred)    # per gene: pearson_r, r2, l2_error, mean_measured
    >>> result.hest_results()            # HEST's results.json as a dict

A prediction `.h5ad` (formats.md section 3) carries no spot ids: `obs_names` are "0".."n-1" and
`obsm['coordinates']` is each axis rescaled to [0, 100] on its own. Rows are placed on spots by,
in this order: the embeddings `.h5` the prediction was made from (its `barcodes` dataset lists
the spot ids in row order); `obs_names` when they are spot ids; the slide's spot order, accepted
only when the rescaling recomputed from the slide's coordinates equals `obsm['coordinates']`.
Anything else raises `SlideError` saying what did not match: a prediction is never misplaced.

    napari-stimage predictions SLIDE PRED.h5ad [--barcodes EMB.h5] --out results.json|table.csv
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import SlideError

COORDINATE_RANGE = 100.0  # STPath rescales each axis to [0, 100]
# Largest difference, on that 0-100 scale, between obsm['coordinates'] and the rescaling
# recomputed from the slide: STPath works in float32 (~1e-5 here); neighbouring spots of even
# a VisiumHD slide are ~0.03 apart, so a wrong order cannot pass.
COORDINATE_TOLERANCE = 1e-3
METRICS = ("pearson_r", "r2", "l2_error")


def _show(items: Sequence[str], n: int = 3) -> str:
    head = ", ".join(str(s) for s in items[:n])
    return head + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class PredictionFile:
    """A prediction `.h5ad` as written: rows in the model's input order, not yet on any slide."""

    path: Path
    genes: np.ndarray  # unique gene names (object)
    values: np.ndarray  # (rows, genes) float32, log1p scale
    obs_names: np.ndarray  # object
    coordinates: np.ndarray | None  # (rows, 2) obsm['coordinates'] = (x, y) in [0, 100], or None

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]


def read_prediction_file(path: str | Path) -> PredictionFile:
    """Read a prediction `.h5ad` (dense or sparse `X`). Raises SlideError naming the file."""
    import anndata as ad

    from ..core.expression import make_unique

    path = Path(path)
    if not path.is_file():
        raise SlideError(path, "no such prediction file")
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # h5py, anndata and numpy all raise their own types for bad files
        raise SlideError(path, f"cannot read it as an AnnData .h5ad ({type(exc).__name__}: {exc})") from exc
    X = adata.X
    if X is None or len(X.shape) != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise SlideError(path, "the prediction file has no values in X (expected spots x genes)")
    values = X.toarray() if sp.issparse(X) else np.asarray(X)
    try:
        values = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SlideError(path, f"X is not numeric ({exc})") from exc
    coordinates = adata.obsm.get("coordinates")
    if coordinates is not None:
        coordinates = np.asarray(coordinates, dtype=np.float64)
        if coordinates.shape != (values.shape[0], 2):
            coordinates = None  # not STPath's layout: cannot verify the order from it
    return PredictionFile(
        path=path,
        genes=np.array(make_unique(adata.var_names.astype(str)), dtype=object),
        values=values,
        obs_names=np.asarray(adata.obs_names.astype(str), dtype=object),
        coordinates=coordinates,
    )


def read_barcodes(path: str | Path) -> np.ndarray:
    """The spot ids, in row order, of an embeddings `.h5` (STPath stores `barcodes` as bytes, (n, 1))."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SlideError(path, "no such barcodes file")
    try:
        with h5py.File(path, "r") as f:
            if "barcodes" not in f:
                raise SlideError(
                    path,
                    f"has no 'barcodes' dataset (it has: {', '.join(f.keys()) or 'nothing'}); "
                    "give the embeddings .h5 the prediction was made from (coords, embeddings, barcodes)",
                )
            raw = np.asarray(f["barcodes"][()])
    except OSError as exc:
        raise SlideError(path, f"cannot read it as HDF5 ({exc})") from exc
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise SlideError(path, f"'barcodes' has shape {raw.shape}, expected one id per row")
    return np.array([b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in raw], dtype=object)


def stpath_rescaled(xy: np.ndarray) -> np.ndarray:
    """STPath's `obsm['coordinates']` for these (x, y) points: each axis min-shifted and scaled to
    [0, 100] on its own (NaN on an axis without extent, as STPath's division gives)."""
    xy = np.asarray(xy, dtype=np.float64)
    lo = xy.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xy - lo) / (xy.max(axis=0) - lo) * COORDINATE_RANGE


# ---------------------------------------------------------------------------------------------
# Placing rows on spots


def _occurrence_index(ids: Sequence[str]) -> pd.MultiIndex:
    """(id, k) for the k-th occurrence of each id: repeated ids pair up in order."""
    s = pd.Series(np.asarray(ids, dtype=object))
    return pd.MultiIndex.from_arrays([s.to_numpy(), s.groupby(s, sort=False).cumcount().to_numpy()])


def _spots_of_ids(slide, ids: Sequence[str]) -> np.ndarray:
    """Per id, the slide spot it names (or -1). Ids may also be the barcode without the
    `{slide}_` prefix STimage-1K4M puts on spot ids."""
    spots = _occurrence_index(slide.spots["spot_id"].astype(str))
    best = np.full(len(ids), -1, dtype=np.int64)
    for candidate in (list(ids), [f"{slide.name}_{i}" for i in ids]):
        found = spots.get_indexer(_occurrence_index(candidate))
        if (found >= 0).sum() > (best >= 0).sum():
            best = found
    return best


def _verify_coordinates(pred: PredictionFile, slide, row_spots: np.ndarray, how: str, barcodes_given: bool) -> None:
    """Refuse when obsm['coordinates'] disagrees with the rescaled coordinates of the spots
    the rows were placed on (the rows would be misplaced)."""
    if pred.coordinates is None:
        return
    expected = stpath_rescaled(slide.spots[["x", "y"]].to_numpy(np.float64)[row_spots])
    diff = np.abs(expected - pred.coordinates)
    diff[np.isnan(expected) & np.isnan(pred.coordinates)] = 0.0  # an axis without extent, on both sides
    diff = np.nan_to_num(diff, nan=np.inf).max(axis=1)
    bad = np.flatnonzero(diff > COORDINATE_TOLERANCE)
    if len(bad):
        first = int(bad[0])
        raise SlideError(
            pred.path,
            f"rows placed {how} do not sit where obsm['coordinates'] says: {len(bad)} of {pred.n_rows} rows "
            f"differ from the [0, 100] rescaling of the slide's (x, y) by more than {COORDINATE_TOLERANCE} "
            f"(first: row {first}, spot {slide.spots['spot_id'].iloc[row_spots[first]]}, off by {diff[first]:.3g}). "
            f"The prediction was not made from {slide.name}'s spots in this order: "
            + ("the embeddings file given is not the one it was made from" if barcodes_given
               else "give the embeddings .h5 it was made from (--barcodes)"),
        )


def match_rows(slide, pred: PredictionFile, barcodes: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Per spot of the slide, its row of `pred` (-1 for none), and how the rows were matched.

    Raises SlideError saying what did not match and how to fix it.
    """
    n_rows, n_spots = pred.n_rows, slide.n_spots
    if barcodes is not None:
        how = "by the embeddings file's barcodes"
        if len(barcodes) != n_rows:
            raise SlideError(
                pred.path,
                f"has {n_rows} rows but the embeddings file has {len(barcodes)} barcodes: "
                "give the embeddings .h5 this prediction was made from",
            )
        row_spots = _spots_of_ids(slide, barcodes)
        missing = np.flatnonzero(row_spots < 0)
        if len(missing):
            raise SlideError(
                pred.path,
                f"{len(missing)} of {n_rows} barcodes of the embeddings file name no spot of {slide.name} "
                f"({_show([barcodes[i] for i in missing])}): the embeddings file belongs to another slide",
            )
    else:
        row_spots = _spots_of_ids(slide, pred.obs_names)
        n_named = int((row_spots >= 0).sum())
        if n_named == n_rows:
            how = "by obs_names (spot ids)"
        elif n_named > 0:
            unknown = [pred.obs_names[i] for i in np.flatnonzero(row_spots < 0)]
            raise SlideError(
                pred.path,
                f"{n_named} of {n_rows} obs_names are spot ids of {slide.name} but {len(unknown)} are not "
                f"({_show(unknown)}): give the embeddings .h5 the prediction was made from (--barcodes)",
            )
        else:
            how = "by the slide's spot order"
            if n_rows != n_spots:
                raise SlideError(
                    pred.path,
                    f"has {n_rows} rows but {slide.name} has {n_spots} spots, and its obs_names are not spot ids "
                    f"(e.g. {_show(list(pred.obs_names), 2)}): the rows cannot be placed. Give the embeddings "
                    ".h5 the prediction was made from (--barcodes)",
                )
            if pred.coordinates is None:
                raise SlideError(
                    pred.path,
                    "its obs_names are not spot ids and it has no obsm['coordinates'] to check the row order "
                    "against the slide: give the embeddings .h5 the prediction was made from (--barcodes)",
                )
            row_spots = np.arange(n_rows)
    _verify_coordinates(pred, slide, row_spots, how, barcodes is not None)
    spot_rows = np.full(n_spots, -1, dtype=np.int64)
    spot_rows[row_spots] = np.arange(n_rows)
    return spot_rows, how


# ---------------------------------------------------------------------------------------------
# Predictions on a slide


@dataclass
class Predictions:
    """One model's predictions placed on a slide's spots (a second expression source)."""

    source: Path
    genes: np.ndarray  # unique names (object)
    values: np.ndarray  # (rows, genes) float32 in the file's row order
    spot_rows: np.ndarray  # per slide spot: its row in `values`, or -1
    matched_by: str
    name: str = ""  # the model's name in tables; the file's stem by default
    _lookup: dict[str, int] = field(default_factory=dict, repr=False)
    _lookup_lower: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.name = self.name or self.source.stem
        self._lookup = {g: j for j, g in enumerate(self.genes)}
        for j, g in enumerate(self.genes):
            self._lookup_lower.setdefault(g.lower(), j)

    @property
    def n_placed(self) -> int:
        return int((self.spot_rows >= 0).sum())

    def gene_index(self, gene: str) -> int:
        """Column of `gene`: exact name first, then case-insensitive. KeyError if absent."""
        j = self._lookup.get(gene, self._lookup_lower.get(gene.lower()))
        if j is None:
            raise KeyError(f"gene {gene!r} is not predicted in {self.source.name}")
        return j

    def gene_values(self, gene: str) -> np.ndarray:
        """Predicted log1p expression of `gene` per slide spot (float64), NaN where none."""
        column = self.values[:, self.gene_index(gene)]
        out = np.full(len(self.spot_rows), np.nan)
        have = self.spot_rows >= 0
        out[have] = column[self.spot_rows[have]]
        return out

    def subset(self, genes: Sequence[str]) -> Predictions:
        """The same predictions for these genes only (KeyError for a gene not predicted)."""
        columns = [self.gene_index(g) for g in genes]
        return Predictions(self.source, self.genes[columns], self.values[:, columns], self.spot_rows,
                           self.matched_by, self.name)


def load_predictions(
    slide, path: str | Path, barcodes: str | Path | None = None, name: str | None = None
) -> Predictions:
    """Read a prediction `.h5ad` and place its rows on `slide`'s spots (see the module doc)."""
    pred = read_prediction_file(path)
    ids = read_barcodes(barcodes) if barcodes is not None else None
    spot_rows, how = match_rows(slide, pred, ids)
    return Predictions(pred.path, pred.genes, pred.values, spot_rows, how, name or "")


# ---------------------------------------------------------------------------------------------
# Judging predictions


@dataclass
class Comparison:
    """Per shared gene, how one model's prediction matches log1p(measured counts).

    `table` is indexed by gene (the prediction's names) with columns pearson_r (across spots with
    both a prediction and measured counts; NaN where either side is constant), r2 and l2_error
    (mean squared error), as HEST computes them, and mean_measured (mean log1p count).
    """

    model: str
    table: pd.DataFrame
    only_predicted: list[str]
    only_measured: list[str]
    n_spots: int
    matched_by: str

    @property
    def pearson(self) -> np.ndarray:
        """Pearson r of the genes where it is defined."""
        r = self.table["pearson_r"].to_numpy(np.float64)
        return r[np.isfinite(r)]

    def summary(self) -> str:
        r = self.pearson
        stats = f"mean Pearson r {r.mean():.4f} ± {r.std():.4f}" if r.size else "no gene with a defined Pearson r"
        undefined = len(self.table) - r.size
        return (
            f"{self.model}: {len(self.table)} genes compared over {self.n_spots} spots (rows matched "
            f"{self.matched_by}); {stats}"
            + (f"; r undefined for {undefined} constant gene(s)" if undefined else "")
            + f"; {len(self.only_predicted)} gene(s) only predicted"
            + (f" ({_show(self.only_predicted)})" if self.only_predicted else "")
            + f", {len(self.only_measured)} only measured"
        )

    def hest_results(self) -> dict:
        """HEST's benchmark `results.json`: per-gene Pearson r, their mean and std (numpy's,
        ddof 0), l2_errors and r2_scores, plus what was compared. Genes whose r is undefined
        (a constant side) get null and are left out of the mean and std."""

        def number(v):
            return float(v) if np.isfinite(v) else None

        r = self.pearson
        l2 = self.table["l2_error"].to_numpy(np.float64)
        r2 = self.table["r2"].to_numpy(np.float64)
        out = {
            "pearson_corrs": [
                {"name": str(g), "pearson_corr": number(v)} for g, v in self.table["pearson_r"].items()
            ],
            "pearson_mean": number(r.mean()) if r.size else None,
            "pearson_std": number(r.std()) if r.size else None,
            "l2_errors": [number(v) for v in l2],
            "r2_scores": [number(v) for v in r2],
        }
        for key, values in (("l2_error", l2), ("r2_score", r2)):
            finite = values[np.isfinite(values)]
            for q, p in (("q1", 25), ("q2", 50), ("q3", 75)):
                out[f"{key}_{q}"] = float(np.percentile(finite, p)) if finite.size else None
        out.update(
            model=self.model,
            n_spots=self.n_spots,
            n_genes_compared=len(self.table),
            n_genes_undefined_r=int(len(self.table) - r.size),
            rows_matched=self.matched_by,
            genes_only_predicted=list(self.only_predicted),
            genes_only_measured=list(self.only_measured),
        )
        return out


def _shared_genes(expression, predictions: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """(measured columns, predicted columns) of the genes on both sides: exact names first,
    then case-insensitive for the rest (each measured gene used once)."""
    exact = pd.Index(expression.gene_names).get_indexer(predictions.genes)  # names are unique
    used = {int(k): j for j, k in enumerate(exact) if k >= 0}
    by_lower: dict[str, int] = {}
    for k, gene in enumerate(expression.gene_names):
        by_lower.setdefault(gene.lower(), k)
    for j in np.flatnonzero(exact < 0):
        k = by_lower.get(predictions.genes[j].lower())
        if k is not None and k not in used:
            used[k] = int(j)
    pairs = sorted(used.items(), key=lambda kv: kv[1])  # in the prediction's gene order
    measured = np.array([k for k, _ in pairs], dtype=np.int64)
    predicted = np.array([j for _, j in pairs], dtype=np.int64)
    return measured, predicted


def _is_identity(index: np.ndarray, n: int) -> bool:
    return len(index) == n and bool((index == np.arange(n)).all())


def _column_sums(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the sum and the sum of squares over `rows` (unique), in float64.

    Over all rows when possible (numpy casts in small buffers: no float64 copy of the matrix),
    minus the few rows left out; a subset copy only when most rows are left out."""

    def sums(block):
        return block.sum(axis=0, dtype=np.float64), np.einsum("ij,ij->j", block, block, dtype=np.float64)

    left_out = np.setdiff1d(np.arange(values.shape[0]), rows)
    if len(left_out) > len(rows):
        return sums(values[rows])
    total, total_sq = sums(values)
    if len(left_out):
        out, out_sq = sums(values[left_out])
        total, total_sq = total - out, total_sq - out_sq
    return total, total_sq


def compare(slide, predictions: Predictions) -> Comparison:
    """Pearson r, R², L2 error and mean measured log1p per shared gene, vectorised.

    Over the spots with both a prediction and a row in the count file. Measured values are
    log1p(counts) taken from the sparse matrix (never densified); sums, sums of squares and of
    products (float64) give every metric in one pass over the predictions.
    """
    expression = slide.expression
    if expression is None:
        raise SlideError(slide.paths.coord, "the slide has no count file: nothing to compare predictions with")
    both = (slide.expression_rows >= 0) & (predictions.spot_rows >= 0)
    count_rows = slide.expression_rows[both]
    pred_rows = predictions.spot_rows[both]
    n = len(count_rows)
    if n < 2:
        raise SlideError(
            predictions.source, f"only {n} spot(s) have both a prediction and measured counts: nothing to compare"
        )
    meas_cols, pred_cols = _shared_genes(expression, predictions)

    # Measured: log1p of the non-zeros, CSR with rows in the order of the spot pairs, so that
    # the predictions under them are read row by row (a cache-friendly gather).
    matrix = expression.matrix
    if not _is_identity(meas_cols, matrix.shape[1]):
        matrix = matrix[:, meas_cols]
    measured = matrix.tocsr()
    if not _is_identity(count_rows, measured.shape[0]):
        measured = measured[count_rows]
    logged = np.log1p(measured.data, dtype=np.float64)
    P = predictions.values
    columns = measured.indices if _is_identity(pred_cols, P.shape[1]) else pred_cols[measured.indices]
    flat = np.repeat(pred_rows.astype(np.int64) * P.shape[1], np.diff(measured.indptr)) + columns
    products = logged * np.ascontiguousarray(P).ravel()[flat]

    def per_gene(weights):
        """Column sums of the measured pattern with other values: C-level, no Python loop."""
        return np.asarray(sp.csr_matrix((weights, measured.indices, measured.indptr), shape=measured.shape)
                          .sum(axis=0)).ravel()

    sum_m, sum_mm, sum_mp = per_gene(logged), per_gene(logged * logged), per_gene(products)
    sum_p, sum_pp = _column_sums(P, pred_rows)
    sum_p, sum_pp = sum_p[pred_cols], sum_pp[pred_cols]

    mean_m, mean_p = sum_m / n, sum_p / n
    var_m = np.maximum(sum_mm / n - mean_m**2, 0.0)
    var_p = np.maximum(sum_pp / n - mean_p**2, 0.0)
    cov = sum_mp / n - mean_m * mean_p
    # a side that does not vary leaves r undefined (scipy returns NaN for constant input)
    constant = (var_m <= 1e-12 * (1.0 + mean_m**2)) | (var_p <= 1e-12 * (1.0 + mean_p**2))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(cov / np.sqrt(var_m * var_p), -1.0, 1.0)
        sq_error = np.maximum(sum_mm - 2.0 * sum_mp + sum_pp, 0.0)  # sum of (predicted - measured)^2
        r2 = 1.0 - sq_error / (n * var_m)
    r[constant] = np.nan
    r2[var_m <= 1e-12 * (1.0 + mean_m**2)] = np.nan
    table = pd.DataFrame(
        {"pearson_r": r, "r2": r2, "l2_error": sq_error / n, "mean_measured": mean_m},
        index=pd.Index(predictions.genes[pred_cols].astype(str), name="gene"),
    )
    measured_used = np.zeros(expression.n_genes, dtype=bool)
    measured_used[meas_cols] = True
    predicted_used = np.zeros(len(predictions.genes), dtype=bool)
    predicted_used[pred_cols] = True
    return Comparison(
        model=predictions.name,
        table=table,
        only_predicted=[str(g) for g in predictions.genes[~predicted_used]],
        only_measured=[str(g) for g in expression.gene_names[~measured_used]],
        n_spots=n,
        matched_by=predictions.matched_by,
    )


def comparison_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """The full table: one row per gene compared by any model, `mean_measured`, then the
    metrics; with several models, a column set per model (`pearson_r [model]`, ...)."""
    if not comparisons:
        raise ValueError("no comparison given")
    if len(comparisons) == 1:
        return comparisons[0].table.copy()
    names = [c.model for c in comparisons]
    if len(set(names)) != len(names):
        names = [f"{name} ({k + 1})" for k, name in enumerate(names)]
    mean_measured = pd.concat([c.table["mean_measured"] for c in comparisons])
    mean_measured = mean_measured[~mean_measured.index.duplicated()]
    parts = [mean_measured.to_frame()]
    for name, c in zip(names, comparisons, strict=True):
        parts.append(c.table[list(METRICS)].rename(columns=lambda m, name=name: f"{m} [{name}]"))
    return pd.concat(parts, axis=1)


def write_results(path: str | Path, comparisons: Sequence[Comparison]) -> Path:
    """Write `results.json` (HEST's format, one model) or a `.csv` table (any number of models),
    atomically. Raises ValueError for another suffix or several models in a JSON file."""
    from ..core.storage import atomic_write_bytes

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        if len(comparisons) != 1:
            raise ValueError("results.json (HEST's format) holds one model: write a .csv table for several")
        data = json.dumps(comparisons[0].hest_results(), indent=2, allow_nan=False).encode()
    elif suffix == ".csv":
        data = comparison_table(comparisons).to_csv(float_format="%.6g").encode()
    else:
        raise ValueError(f"{path.name}: write results.json (HEST's format) or a .csv table")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
