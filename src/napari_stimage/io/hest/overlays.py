"""HEST's optional overlays: tissue contours and CellViT cells, read as `core.source.Overlay`.

- `tissue_seg/{id}_contours.geojson`: a FeatureCollection of Polygons (exterior ring, then holes);
  every ring becomes an outline.
- `cellvit_seg/{id}_cellvit_seg.geojson`: a JSON ARRAY of QuPath-style features, one MultiPolygon per
  class with `properties.classification.{name, color}`; each polygon becomes one point at its
  area-weighted centroid (numpy shoelace over all rings at once: 500,000 cells in seconds).
The `.pkl` masks HEST ships beside them are never read (unpickling runs code).
"""

from __future__ import annotations

import json
from itertools import chain
from pathlib import Path

import numpy as np

from ...core.errors import SlideError
from ...core.source import Overlay

CELL_DIAMETER_UM = 8.0  # drawn size of a cell's point when the pixel size is known
CELL_DIAMETER_PX = 16.0  # otherwise


def _load_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SlideError(path, f"the {what} is not readable JSON ({exc})") from exc


def _polygons(geometry: dict) -> list:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    return [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []


def read_contours(path: Path) -> Overlay:
    """Tissue contours: every ring (exteriors and holes) as an outline, in (row, col)."""
    data = _load_json(path, "tissue contours")
    features = data.get("features", []) if isinstance(data, dict) else data
    rings = [np.asarray(ring, dtype=np.float64)[:, ::-1]
             for feature in features for polygon in _polygons(feature.get("geometry") or {})
             for ring in polygon if len(ring) >= 3]
    return Overlay(name="tissue contours", kind="outlines", data=rings)


def ring_centroids(flat_xy: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Area-weighted centroids (x, y) of closed or open rings stored back to back in `flat_xy`;
    a ring of zero area falls back to its vertex mean."""
    if not len(lengths):
        return np.zeros((0, 2))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nxt = np.arange(len(flat_xy)) + 1
    ends = starts + lengths
    nxt[ends - 1] = starts  # each ring wraps to its first vertex
    x, y = flat_xy[:, 0], flat_xy[:, 1]
    x0, y0 = np.repeat(x[starts], lengths), np.repeat(y[starts], lengths)  # local origin: precision
    xa, ya, xb, yb = x - x0, y - y0, x[nxt] - x0, y[nxt] - y0
    cross = xa * yb - xb * ya
    area2 = np.add.reduceat(cross, starts)
    cx = np.add.reduceat((xa + xb) * cross, starts)
    cy = np.add.reduceat((ya + yb) * cross, starts)
    mean_x = np.add.reduceat(xa, starts) / lengths
    mean_y = np.add.reduceat(ya, starts) / lengths
    flat = np.abs(area2) < 1e-12
    safe = np.where(flat, 1.0, area2)
    out_x = np.where(flat, mean_x, cx / (3 * safe)) + x[starts]
    out_y = np.where(flat, mean_y, cy / (3 * safe)) + y[starts]
    return np.column_stack([out_x, out_y])


_SPACE = b" \t\r\n"
_RING_BREAK = {"Polygon": (b"]],[[", 3), "MultiPolygon": (b"]]],[[[", 4)}  # between parts, bracket depth


def _coordinate_values(raw: bytes) -> tuple[list[bytes], bytes]:
    """Every `"coordinates"` value (numbers and brackets only, so it ends at the next `}` or `"`),
    and the document with each replaced by `[]` (small: types and classes)."""
    key, values, rest, last = b'"coordinates"', [], [], 0
    at = raw.find(key)
    while at >= 0:
        start = raw.index(b"[", at + len(key))
        close = [i for i in (raw.find(b"}", start), raw.find(b'"', start)) if i >= 0]
        end = min(close) if close else len(raw)
        value = raw[start:end].rstrip(_SPACE + b",")
        values.append(value)
        rest += [raw[last:start], b"[]"]
        last = start + len(value)
        at = raw.find(key, last)
    return values, b"".join(rest) + raw[last:]


def _cells_fast(raw: bytes):
    """(centroids (x, y), per cell its feature index, the features without coordinates) straight
    from the bytes, with C-level splits (json.loads of a 500,000-cell file alone takes 10+ s).
    None when the file does not fit this reading (it is then parsed as plain JSON)."""
    values, rest = _coordinate_values(raw)
    features = json.loads(rest)
    features = features.get("features", []) if isinstance(features, dict) else features
    if not isinstance(features, list) or len(features) != len(values):
        return None
    exteriors, owner = [], []
    for k, (feature, value) in enumerate(zip(features, values, strict=True)):
        kind = ((feature or {}).get("geometry") or {}).get("type")
        if kind not in _RING_BREAK:
            return None
        brk, depth = _RING_BREAK[kind]
        value = value.translate(None, _SPACE)
        if value == b"[]":
            continue
        parts = value[depth:-depth].split(brk) if kind == "MultiPolygon" else [value[depth:-depth]]
        rings = [part.split(b"]],[[", 1)[0] for part in parts]  # the exterior ring of each polygon
        exteriors += rings
        owner += [k] * len(rings)
    if not exteriors:
        return np.zeros((0, 2)), np.zeros(0, np.int64), features
    lengths = np.fromiter((ring.count(b"],[") + 1 for ring in exteriors), np.int64, len(exteriors))
    text = b"],[".join(exteriors).translate(bytes.maketrans(b"[],", b"   "))
    numbers = np.fromstring(text, dtype=np.float64, sep=" ")
    if len(numbers) != 2 * int(lengths.sum()):
        return None
    usable = lengths >= 3
    flat = numbers.reshape(-1, 2)[np.repeat(usable, lengths)]
    return ring_centroids(flat, lengths[usable]), np.asarray(owner, dtype=np.int64)[usable], features


def _cells_plain(raw: bytes):
    """The same from plain JSON (slow on big files; for layouts the fast reading does not fit)."""
    features = json.loads(raw)
    features = features.get("features", []) if isinstance(features, dict) else features
    exteriors, owner = [], []
    for k, feature in enumerate(features):
        polygons = [p[0] for p in _polygons((feature or {}).get("geometry") or {}) if p and len(p[0]) >= 3]
        exteriors.extend(polygons)
        owner.extend([k] * len(polygons))
    if not exteriors:
        return np.zeros((0, 2)), np.zeros(0, np.int64), features
    lengths = np.fromiter(map(len, exteriors), dtype=np.int64, count=len(exteriors))
    flat = np.fromiter(chain.from_iterable(chain.from_iterable(exteriors)), dtype=np.float64,
                       count=2 * int(lengths.sum())).reshape(-1, 2)
    return ring_centroids(flat, lengths), np.asarray(owner, dtype=np.int64), features


def read_cells(path: Path, pixel_size_um: float | None = None) -> Overlay:
    """CellViT cells as one point per cell at its centroid, coloured by class."""
    try:
        raw = Path(path).read_bytes()
        parsed = _cells_fast(raw)
        centroids, owner, features = parsed if parsed is not None else _cells_plain(raw)
    except (OSError, ValueError) as exc:
        raise SlideError(path, f"the CellViT segmentation is not readable ({exc})") from exc
    if not isinstance(features, list):
        raise SlideError(path, "expected a JSON array of features (CellViT's GeoJSON)")
    names, colors = [], []
    for feature in features:
        classification = ((feature or {}).get("properties") or {}).get("classification") or {}
        names.append(str(classification.get("name", "unclassified")))
        color = classification.get("color") or [255, 255, 0]
        colors.append(np.asarray(color[:3], dtype=np.float64) / 255.0)
    size = CELL_DIAMETER_UM / pixel_size_um if pixel_size_um else CELL_DIAMETER_PX
    return Overlay(name="cells", kind="points", data=centroids[:, ::-1],
                   colors=np.asarray(colors).reshape(-1, 3)[owner] if len(owner) else np.zeros((0, 3)),
                   classes=np.asarray(names, dtype=object)[owner] if len(owner) else np.zeros(0, object),
                   size=size)


# CellViT's own class colours (its GeoJSON carries them; its parquet does not)
CELLVIT_COLORS = {"Neoplastic": (255, 0, 0), "Inflammatory": (34, 221, 77), "Connective": (35, 92, 236),
                  "Dead": (254, 255, 0), "Epithelial": (255, 159, 68)}
OTHER_CLASS_COLOR = (160, 160, 160)


def wkb_exterior_centroids(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (x, y) of the exterior ring of WKB Polygons (or a MultiPolygon's first polygon),
    stored back to back in `data` at `offsets` (n + 1), without a per-geometry Python loop.
    Returns (centroids, which geometries were read: little-endian 2-D Polygon/MultiPolygon)."""
    starts = offsets[:-1].astype(np.int64)
    if not len(starts):
        return np.zeros((0, 2)), np.zeros(0, bool)

    def uint32_at(at):
        b = data[at[:, None] + np.arange(4)].astype(np.uint32)
        return b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16 | b[:, 3] << 24

    ok = (offsets[1:] - starts >= 13) & (data[starts] == 1)
    kind = np.zeros(len(starts), np.uint32)
    kind[ok] = uint32_at(starts[ok] + 1)  # after the byte-order byte
    ring_at = np.where(kind == 6, starts + 14, starts + 5)  # a MultiPolygon: past its count and 1st header
    ok &= (kind == 3) | ((kind == 6) & (offsets[1:] - starts >= 22))
    ring_at, n_points = ring_at[ok], np.zeros(int(ok.sum()), np.int64)
    n_points[:] = uint32_at(ring_at + 4)  # after the ring count: the exterior ring's point count
    first = ring_at + 8
    fits = (n_points >= 3) & (first + 16 * n_points <= offsets[1:][ok])
    ok[np.flatnonzero(ok)[~fits]] = False
    first, n_points = first[fits], n_points[fits]
    gather = np.repeat(first - np.concatenate([[0], np.cumsum(16 * n_points)[:-1]]), 16 * n_points)
    gather += np.arange(len(gather))
    flat = data[gather].view("<f8").reshape(-1, 2)
    return ring_centroids(flat, n_points), ok


def read_cells_parquet(path: Path, pixel_size_um: float | None = None) -> Overlay:
    """CellViT's parquet (`geometry` WKB, `class`, `cell_id`): one point per cell, coloured by class."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SlideError(path, "reading CellViT parquet needs pyarrow (pip install pyarrow)") from exc
    try:
        table = pq.read_table(path, columns=["geometry", "class"])
    except Exception as exc:  # pyarrow raises its own types for damaged files and missing columns
        raise SlideError(path, f"not a CellViT parquet with geometry and class columns ({exc})") from exc
    geometry = table.column("geometry").combine_chunks()
    _, offsets, data = geometry.buffers()[:3]
    wide = "large" in str(geometry.type)
    offsets = np.frombuffer(offsets, np.int64 if wide else np.int32)[geometry.offset:geometry.offset + len(geometry) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    centroids, read = wkb_exterior_centroids(data, offsets)  # null geometries have no bytes: not read
    classes = np.asarray(table.column("class").cast("string").fill_null("unclassified").to_numpy(zero_copy_only=False),
                         dtype=str)[read]
    names, which = np.unique(classes, return_inverse=True)
    palette = np.array([CELLVIT_COLORS.get(str(n), OTHER_CLASS_COLOR) for n in names], float).reshape(-1, 3) / 255
    colors = palette[which]
    size = CELL_DIAMETER_UM / pixel_size_um if pixel_size_um else CELL_DIAMETER_PX
    return Overlay(name="cells", kind="points", data=centroids[:, ::-1], colors=colors,
                   classes=classes.astype(object), size=size)


def read_overlays(contours: Path | None, cells: Path | None, pixel_size_um: float | None,
                  notes: list[str] | None = None) -> list[Overlay]:
    """The overlays present; a damaged one is reported in `notes` and left out (never required)."""
    out = []
    def cells_of(p: Path) -> Overlay:
        return (read_cells_parquet if p.suffix == ".parquet" else read_cells)(p, pixel_size_um)

    for path, read in ((contours, read_contours), (cells, cells_of)):
        if path is None:
            continue
        try:
            out.append(read(path))
        except (SlideError, ValueError, TypeError, IndexError, AttributeError) as exc:
            if notes is not None:
                notes.append(f"{path.name} not shown: {exc}")
    return out
