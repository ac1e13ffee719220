"""A whole dataset as one table of slides: the meta table joined with what is on disk.

STimage-1K4M ships `meta/meta_all_gene02122025.csv` (comma-separated, every field quoted,
abstracts spanning lines; older copies are tab-separated). HEST-1k ships a metadata CSV with one
row per sample and `metadata/{id}.json` files. Either way the catalogue is one DataFrame with the
same core columns, so filtering, the browser widget and `napari-stimage slides` share one code path:

    slide, dataset, tech, species, tissue, cancer, spots, genes, annotated, on_disk, missing,
    title, abstract, keywords, pmid, (HEST only: organ, oncotree_code)

Slides listed in a meta table but absent on disk are kept (on_disk False, `missing` says what);
slides on disk but absent from the table are added with what the disk tells.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SlideError
from .stimage.layout import ANNO_SUFFIX, COORD_SUFFIX, COUNT_SUFFIX, IMAGE_SUFFIX, TECHNOLOGIES

COLUMNS = [
    "slide", "dataset", "tech", "species", "tissue", "cancer", "spots", "genes", "annotated",
    "on_disk", "missing", "title", "abstract", "keywords", "pmid", "organ", "oncotree_code",
]
STIMAGE = "STimage-1K4M"
HEST = "HEST-1k"

# Newest first: the dataset renamed its meta table when it added columns.
STIMAGE_META_NAMES = ("meta_all_gene02122025.csv", "meta_all_gene.csv", "meta_all.csv")

# The meta table's tissue vocabulary is not merged: one name per group, as a curator would say it.
TISSUE_SYNONYMS = {
    "lymphnode": "lymph node",
    "lymph nodes": "lymph node",
    "colorectal": "colon",
    "largeintestine": "colon",
    "large intestine": "colon",
}
# HEST names species by their Latin names, STimage-1K4M by common ones: one vocabulary for filters.
SPECIES_SYNONYMS = {"homo sapiens": "human", "mus musculus": "mouse"}
_SPECIES_PREFIX = re.compile(r"^(human|mouse)\s+")
_PART_SPLIT = re.compile(r"\s*(?:\+|&|\band\b)\s*")


def canonical_tissue(name: str) -> str:
    name = " ".join(str(name).lower().split())
    return TISSUE_SYNONYMS.get(name, name)


def tissue_parts(tissue: str) -> frozenset[str]:
    """The canonical tissues a meta-table value names: `brain+kidney` is brain and kidney,
    `mouse colon and human skin` is colon and skin, `lymphnode` is lymph node."""
    parts = (_SPECIES_PREFIX.sub("", p) for p in _PART_SPLIT.split(str(tissue).lower()) if p.strip())
    return frozenset(canonical_tissue(p) for p in parts)


def species_parts(species: str) -> frozenset[str]:
    """`human & mouse` is both human and mouse."""
    parts = (" ".join(p.split()) for p in _PART_SPLIT.split(str(species).lower()) if p.strip())
    return frozenset(SPECIES_SYNONYMS.get(p, p) for p in parts)


def _read_table(path: Path) -> pd.DataFrame:
    """A quoted CSV or a tab-separated copy: the header line tells which."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
        sep = "\t" if header.count("\t") > header.count(",") else ","
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise SlideError(path, f"cannot read the meta table: {exc}") from exc
    table.columns = [c.strip() for c in table.columns]
    return table


def _int_column(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("Int64")


def read_stimage_meta(path: str | Path) -> pd.DataFrame:
    """The STimage-1K4M meta table in catalogue columns (no disk state yet)."""
    path = Path(path)
    table = _read_table(path)
    if "slide" not in table.columns:
        raise SlideError(path, f"no 'slide' column (columns: {', '.join(table.columns[:12])})")

    def col(name: str) -> pd.Series:
        return table[name].str.strip() if name in table.columns else pd.Series("", index=table.index)

    return pd.DataFrame({
        "slide": col("slide"),
        "dataset": STIMAGE,
        "tech": col("tech"),
        "species": col("species"),
        "tissue": col("tissue"),
        "cancer": col("involve_cancer").str.lower().eq("true"),
        "spots": _int_column(col("spot_num")),
        "genes": _int_column(col("gene_num")),
        "title": col("title"),
        "abstract": col("abstract"),
        "keywords": col("keywords"),
        "pmid": col("pmid"),
        "organ": "",
        "oncotree_code": "",
    })


def _hest_frame(records: pd.DataFrame) -> pd.DataFrame:
    def col(name: str) -> pd.Series:
        if name not in records.columns:
            return pd.Series("", index=records.index)
        return records[name].fillna("").astype(str).str.strip().replace({"nan": "", "NaN": ""})

    organ = col("organ")
    oncotree = col("oncotree_code")
    disease = col("disease_state").str.lower()
    return pd.DataFrame({
        "slide": col("id"),
        "dataset": HEST,
        "tech": col("st_technology"),
        "species": col("species"),
        "tissue": organ.str.lower(),
        # HEST states the disease; an oncotree code alone also means a tumour sample
        "cancer": disease.str.contains("cancer|tumor|tumour", regex=True) | oncotree.ne(""),
        "spots": _int_column(col("spots_under_tissue")),
        "genes": _int_column(col("nb_genes")),
        "title": col("dataset_title"),
        "abstract": "",
        "keywords": "",
        "pmid": "",
        "organ": organ,
        "oncotree_code": oncotree,
    })


def read_hest_meta(path: str | Path) -> pd.DataFrame:
    """HEST-1k's sample table (one row per sample id) in catalogue columns."""
    path = Path(path)
    table = _read_table(path)
    if "id" not in table.columns:
        raise SlideError(path, "no 'id' column: not a HEST metadata table")
    return _hest_frame(table)


def read_hest_json_folder(folder: str | Path) -> pd.DataFrame:
    """`metadata/{id}.json` files (written by plain json.dump, so bare NaN tokens occur)."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SlideError(path, f"cannot read HEST sample metadata: {exc}") from exc
        if not isinstance(record, dict):
            raise SlideError(path, "HEST sample metadata is not a JSON object")
        record = {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        record.setdefault("id", path.stem)
        rows.append(record)
    return _hest_frame(pd.DataFrame(rows, columns=None if rows else ["id"]))


@dataclass(frozen=True)
class _DiskSlide:
    tech: str | None
    files: frozenset[str]  # which of coord, count, image, annotation exist


def _names_in(folder: Path, suffix: str) -> set[str]:
    """Slide names of the files ending in `suffix` in one folder, listed once (no per-slide stat)."""
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return set()
    return {n[: -len(suffix)] for n in names if n.endswith(suffix) and len(n) > len(suffix)}


def scan_stimage_tree(root: Path) -> dict[str, _DiskSlide]:
    annotated = _names_in(root / "annotation", ANNO_SUFFIX)
    found: dict[str, _DiskSlide] = {}
    for tech in TECHNOLOGIES:
        kinds = {
            "coord": _names_in(root / tech / "coord", COORD_SUFFIX),
            "count": _names_in(root / tech / "gene_exp", COUNT_SUFFIX),
            "image": _names_in(root / tech / "image", IMAGE_SUFFIX),
        }
        for name in set().union(*kinds.values()):
            files = {kind for kind, names in kinds.items() if name in names}
            if name in annotated:
                files.add("annotation")
            found[name] = _DiskSlide(tech, frozenset(files))
    for name in annotated - found.keys():
        found[name] = _DiskSlide(None, frozenset({"annotation"}))
    return found


def scan_hest_tree(root: Path) -> dict[str, _DiskSlide]:
    kinds = {
        "expression": _names_in(root / "st", ".h5ad"),
        "image": _names_in(root / "wsis", ".tif"),
        "metadata": _names_in(root / "metadata", ".json"),
    }
    return {
        name: _DiskSlide(None, frozenset(k for k, names in kinds.items() if name in names))
        for name in set().union(*kinds.values())
    }


# What a slide needs on disk to open, per dataset (anything less is listed as missing).
_REQUIRED = {STIMAGE: ("coord", "count", "image"), HEST: ("expression",)}


def _find_meta_table(root: Path) -> tuple[str, Path | None]:
    for name in STIMAGE_META_NAMES:
        for candidate in (root / "meta" / name, root / name):
            if candidate.is_file():
                return STIMAGE, candidate
    for candidate in sorted(root.glob("HEST_v*.csv")) + sorted(root.glob("*hest*metadata*.csv")):
        return HEST, candidate
    if (root / "st").is_dir() or (root / "metadata").is_dir():
        return HEST, None
    return STIMAGE, None


class Catalogue:
    """Every slide of a dataset root, with filters. `table` is a DataFrame in COLUMNS."""

    def __init__(self, table: pd.DataFrame, root: Path | None = None, meta_path: Path | None = None):
        self.table = table.reset_index(drop=True)
        self.root = root
        self.meta_path = meta_path
        # precomputed once so each filter is a few vectorised comparisons
        self._tissues = [tissue_parts(t) for t in self.table["tissue"]]
        self._species = [species_parts(s) for s in self.table["species"]]
        self._text = (
            self.table["slide"] + "\n" + self.table["title"] + "\n" + self.table["keywords"] + "\n"
            + self.table["abstract"]
        ).str.lower()

    def __len__(self) -> int:
        return len(self.table)

    def filter_mask(
        self,
        tech: str | Iterable[str] | None = None,
        species: str | None = None,
        tissue: str | None = None,
        cancer: bool | None = None,
        annotated: bool | None = None,
        on_disk: bool | None = None,
        search: str | None = None,
    ) -> np.ndarray:
        """Rows matching every given criterion (None = any). Text search needs every word."""
        mask = np.ones(len(self.table), dtype=bool)
        if tech:
            wanted = {tech.lower()} if isinstance(tech, str) else {t.lower() for t in tech}
            mask &= self.table["tech"].str.lower().isin(wanted).to_numpy()
        if species:
            want = species_parts(species)
            mask &= np.fromiter((want <= parts for parts in self._species), bool, len(mask))
        if tissue:
            want = tissue_parts(tissue)
            mask &= np.fromiter((want <= parts for parts in self._tissues), bool, len(mask))
        for column, wanted_flag in (("cancer", cancer), ("annotated", annotated), ("on_disk", on_disk)):
            if wanted_flag is not None:
                mask &= self.table[column].to_numpy(dtype=bool) == bool(wanted_flag)
        for word in (search or "").lower().split():
            mask &= self._text.str.contains(word, regex=False).to_numpy()
        return mask

    def filter(self, **criteria) -> pd.DataFrame:
        return self.table[self.filter_mask(**criteria)]

    def slide_path(self, slide: str) -> Path | None:
        """The file that opens `slide` (its coord CSV, or a HEST sample's h5ad), when on disk."""
        if self.root is None:
            return None
        row = self.table.loc[self.table["slide"] == slide]
        if row.empty or not bool(row["on_disk"].iloc[0]):
            return None
        if row["dataset"].iloc[0] == HEST:
            return self.root / "st" / f"{slide}.h5ad"
        return self.root / row["tech"].iloc[0] / "coord" / f"{slide}{COORD_SUFFIX}"

    def image_path(self, slide: str) -> Path | None:
        """The slide's H&E image file, when there is one on disk."""
        if self.root is None:
            return None
        row = self.table.loc[self.table["slide"] == slide]
        if row.empty:
            return None
        if row["dataset"].iloc[0] == HEST:
            path = self.root / "wsis" / f"{slide}.tif"
        else:
            path = self.root / (row["tech"].iloc[0] or "_") / "image" / f"{slide}{IMAGE_SUFFIX}"
        return path if path.is_file() else None

    def choices(self, column: str) -> list[str]:
        """Distinct values a filter can offer (tissues grouped by synonym and split into parts)."""
        if column == "tissue":
            return sorted(set().union(*self._tissues) - {""})
        if column == "species":
            return sorted(set().union(*self._species) - {""})
        return sorted(v for v in self.table[column].unique() if v)


RECENT_ROOTS_FILE = "recent_dataset_roots.json"
N_RECENT_ROOTS = 8


def load_recent_roots() -> list[str]:
    """Dataset roots browsed last, newest first (kept in the plugin's config folder)."""
    from .cache import config_dir

    try:
        loaded = json.loads((config_dir() / RECENT_ROOTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(r) for r in loaded][:N_RECENT_ROOTS] if isinstance(loaded, list) else []


def remember_recent_root(root: str | Path) -> list[str]:
    """Put `root` first in the recent roots; a read-only config folder only loses the memory."""
    from ..core.storage import atomic_write_text
    from .cache import config_dir

    root = str(Path(root).expanduser().resolve())
    recent = ([root] + [r for r in load_recent_roots() if r != root])[:N_RECENT_ROOTS]
    try:
        path = config_dir() / RECENT_ROOTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(recent, indent=1))
    except OSError:
        pass
    return recent


def _join_disk(meta: pd.DataFrame, disk: dict[str, _DiskSlide], dataset: str) -> pd.DataFrame:
    required = _REQUIRED[dataset]
    listed = set(meta["slide"])
    unlisted = sorted(disk.keys() - listed)
    if unlisted:
        extra = pd.DataFrame({"slide": unlisted, "dataset": dataset})
        extra["tech"] = [disk[n].tech or "" for n in unlisted]
        meta = pd.concat([meta, extra], ignore_index=True)
    for column in ("species", "tissue", "title", "abstract", "keywords", "pmid", "organ", "oncotree_code", "tech"):
        meta[column] = meta[column].fillna("")
    meta["cancer"] = meta["cancer"].astype("boolean").fillna(False).astype(bool)
    files = [disk.get(n, _DiskSlide(None, frozenset())).files for n in meta["slide"]]
    meta["annotated"] = ["annotation" in f for f in files]
    meta["missing"] = [", ".join(k for k in required if k not in f) for f in files]
    meta["on_disk"] = meta["missing"].eq("")
    meta["spots"] = meta["spots"].astype("Int64")
    meta["genes"] = meta["genes"].astype("Int64")
    return meta[COLUMNS]


def load_catalogue(root: str | Path, meta_table: str | Path | None = None) -> Catalogue:
    """The catalogue of a dataset root (STimage-1K4M or HEST-1k), from its meta table and disk.

    `root` may also be the meta table itself: then every slide is listed as not on disk unless the
    table sits in the dataset's `meta/` folder.
    """
    root = Path(root).expanduser()
    if root.is_file():
        meta_table, root = root, (root.parent.parent if root.parent.name == "meta" else root.parent)
    if not root.is_dir():
        raise SlideError(root, "no such dataset folder")
    dataset, found = _find_meta_table(root)
    meta_path = Path(meta_table) if meta_table is not None else found
    if meta_path is not None and dataset == STIMAGE:
        try:
            meta = read_stimage_meta(meta_path)
        except SlideError:
            meta = read_hest_meta(meta_path)  # a HEST table given by hand
            dataset = HEST
    elif meta_path is not None:
        meta = read_hest_meta(meta_path)
    elif dataset == HEST and (root / "metadata").is_dir():
        meta = read_hest_json_folder(root / "metadata")
    else:
        meta = _empty_meta(dataset)
    disk = scan_hest_tree(root) if dataset == HEST else scan_stimage_tree(root)
    return Catalogue(_join_disk(meta, disk, dataset), root=root, meta_path=meta_path)


def _empty_meta(dataset: str) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS if c not in ("annotated", "on_disk", "missing")})
    frame["dataset"] = dataset
    frame["cancer"] = frame["cancer"].astype(bool)
    return frame


def format_table(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A plain-text table for the terminal: one line per slide, long text cut."""
    columns = columns or ["slide", "tech", "species", "tissue", "cancer", "spots", "genes", "annotated", "on_disk"]
    shown = table[columns].astype(str)
    widths = {c: min(max([len(c), *shown[c].str.len()]), 60) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    for row in shown.itertuples(index=False):
        lines.append("  ".join(str(v)[: widths[c]].ljust(widths[c]) for c, v in zip(columns, row, strict=True)))
    return "\n".join(lines)
