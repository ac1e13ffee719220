"""Write a small synthetic slide in the real STimage-1K4M on-disk layout, quirks included.

    python -m napari_stimage.synthetic OUT_DIR      # or: napari-stimage make-sample OUT_DIR

The slide carries every trap of the real files that a reader must survive:
- the image is JPEG bytes behind a `.png` name;
- counts are whole numbers written as floats (`0.0`, `3.0`), about 90% zeros;
- a gene name repeats (`MALAT1` twice) next to a real gene already called `MALAT1-1`;
- one spot of the coord file is missing from the count file, and one count row has no coordinates;
- the annotation repeats a spot id with a different label, has empty and `NA` labels,
  a label containing a comma, and a row for a spot that is not on the slide;
- one spot has zero counts.
Tissue regions give each label its own marker gene, so colours have something to show.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from .io.stimage.layout import SlidePaths, resolve_slide

SAMPLE_NAME = "Human_Breast_Synthetic_11232026_Visium"
# region label -> (marker gene, H&E-ish RGB of the tissue there)
REGIONS = {
    "invasive cancer": ("ERBB2", (150, 60, 140)),
    "immune infiltrate, dense": ("PTPRC", (90, 50, 150)),
    "connective tissue": ("COL1A1", (230, 150, 190)),
    "adipose tissue": ("ADIPOQ", (245, 225, 235)),
}
_BACKGROUND = (242, 240, 244)
_MARKERS = [marker for marker, _ in REGIONS.values()]
_OTHER_GENES = ["GAPDH", "ACTB", "MALAT1", "MALAT1-1", "KRT19", "EPCAM", "CD3E", "MS4A1", "VIM", "MT-CO1"]


def _barcodes(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("ACGT"))
    codes: dict[str, None] = {}  # insertion-ordered, so the same seed gives the same files
    while len(codes) < n:
        codes["".join(rng.choice(letters, 16)) + "-1"] = None
    return list(codes)


def region_of(y: np.ndarray, x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Region index (into REGIONS) of each point, or -1 outside the tissue; concentric tissue."""
    cy, cx = height / 2, width / 2
    d = np.hypot((y - cy) / (0.45 * height), (x - cx) / (0.45 * width))
    region = np.full(np.shape(y), -1, dtype=np.int64)
    region[d < 1.0] = 3
    region[d < 0.75] = 2
    region[d < 0.5] = 1
    region[d < 0.3] = 0
    return region


def _image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    region = region_of(yy, xx, height, width)
    palette = np.array([c for _, c in REGIONS.values()] + [_BACKGROUND], dtype=np.float32)
    img = palette[region]  # -1 indexes the background, last
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _spot_grid(height: int, width: int, pitch: float) -> np.ndarray:
    """Visium-like hexagonal grid of (y, x) centres covering the tissue bounding box."""
    rows = np.arange(pitch, height - pitch / 2, pitch * np.sqrt(3) / 2)
    pts = []
    for i, y in enumerate(rows):
        offset = pitch / 2 if i % 2 else 0.0
        for x in np.arange(pitch + offset, width - pitch / 2, pitch):
            pts.append((y, x))
    return np.array(pts)


def _square_grid(height: int, width: int, pitch: float) -> np.ndarray:
    """VisiumHD-like square lattice of (y, x) bin centres covering the image."""
    yy, xx = np.mgrid[pitch:height - pitch / 2:pitch, pitch:width - pitch / 2:pitch]
    return np.c_[yy.ravel(), xx.ravel()]


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_synthetic_slide(
    root: str | Path,
    name: str = SAMPLE_NAME,
    tech: str = "Visium",
    size: int = 1000,
    pitch: float = 40.0,
    n_genes: int = 200,
    seed: int = 0,
    with_annotation: bool = True,
    label_column: str = "V2",
    layout: str = "hexagonal",
    angle: float = 0.0,
    missing_counts: int = 1,
) -> SlidePaths:
    """Write `<root>/{tech}/{coord,gene_exp,image}/` and `<root>/annotation/` for one slide.

    `layout="square"` puts the spots on a square lattice with touching bins, like VisiumHD's
    (e.g. `tech="VisiumHD", pitch=16` gives ~3,700 bins on the default 1000 px image).
    `angle` (degrees) tilts the lattice about the image centre, as a slide scanned slightly
    rotated; `missing_counts` spots of the coord file get no row in the count file.
    """
    if layout not in ("hexagonal", "square"):
        raise ValueError(f"layout must be 'hexagonal' or 'square', not {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    tech_dir = root / tech
    for sub in ("coord", "gene_exp", "image"):
        (tech_dir / sub).mkdir(parents=True, exist_ok=True)

    # Image: JPEG bytes behind the dataset's .png name.
    from PIL import Image

    Image.fromarray(_image(size, size, rng)).save(tech_dir / "image" / f"{name}.png", format="JPEG", quality=90)

    centres = _spot_grid(size, size, pitch) if layout == "hexagonal" else _square_grid(size, size, pitch)
    if angle:
        a = np.deg2rad(angle)
        centres = (centres - size / 2) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + size / 2
        centres = centres[np.all((centres >= pitch / 2) & (centres <= size - pitch / 2), axis=1)]
    centres += rng.normal(0, 0.3, centres.shape)  # real coordinates are not on an exact lattice
    n = len(centres)
    spot_ids = [f"{name}_{bc}" for bc in _barcodes(rng, n + 1)]
    r = pitch * 55 / 100 / 2 if layout == "hexagonal" else pitch / 2  # Visium: 55 µm spots on a 100 µm pitch
    order = rng.permutation(n)  # rows are not in spatial order
    coord_rows = [["", "yaxis", "xaxis", "r"]]
    coord_rows += [[spot_ids[i], f"{centres[i, 0]:.2f}", f"{centres[i, 1]:.2f}", repr(r)] for i in order]
    (tech_dir / "coord" / f"{name}_coord.csv").write_text(_csv_text(coord_rows))

    # Counts: dense float text, markers high in their region, sparse background.
    genes = _MARKERS + _OTHER_GENES + [f"GENE{k:04d}" for k in range(n_genes - len(_MARKERS) - len(_OTHER_GENES) - 1)]
    genes.append("MALAT1")  # repeated name; "MALAT1-1" already exists, so it must become MALAT1-2
    region = region_of(centres[:, 0], centres[:, 1], size, size)
    lam = np.full((n, len(genes)), 0.08)
    lam[:, len(_MARKERS):len(_MARKERS) + 3] = 1.5  # housekeeping genes
    for k in range(len(_MARKERS)):
        lam[region == k, k] = 12.0
        lam[region != k, k] = 0.05
    counts = rng.poisson(lam).astype(np.float64)
    counts[order[0]] = 0.0  # a spot with zero counts
    without_counts = set(order[1:1 + missing_counts].tolist())  # order[1] on: missing from the count file
    count_spots = [i for i in order if i not in without_counts]
    lines = ["," + ",".join(genes)]
    for i in count_spots:
        lines.append(spot_ids[i] + "," + ",".join(f"{v:.1f}" for v in counts[i]))
    lines.append(spot_ids[n] + "," + ",".join("1.0" for _ in genes))  # count row without coordinates
    (tech_dir / "gene_exp" / f"{name}_count.csv").write_text("\n".join(lines) + "\n")

    if with_annotation:
        (root / "annotation").mkdir(parents=True, exist_ok=True)
        labels = list(REGIONS)
        anno = [["", label_column]]
        for i in range(n):
            anno.append([spot_ids[i], labels[region[i]] if region[i] >= 0 else ""])
        anno[1 + 2][1] = "NA"  # R-style missing label
        tissue = [i for i in range(n) if region[i] >= 0]
        anno.append([spot_ids[tissue[0]], "undetermined"])  # repeated id: the first row wins
        anno.append([f"{name}_NOTASPOT-1", "Exclude"])  # a row for a spot that is not on the slide
        (root / "annotation" / f"{name}_anno.csv").write_text(_csv_text(anno))

    paths = resolve_slide(tech_dir / "coord" / f"{name}_coord.csv")
    assert paths is not None
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "stimage_sample")
    paths = write_synthetic_slide(out)
    print(f"wrote slide {paths.name} under {out}")
    print(f"open it with: napari-stimage open {paths.image}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
