"""Where napari-stimage keeps derived files, and the expression cache stored there.

Set `NAPARI_STIMAGE_CACHE` to move the cache; the default is the user's cache directory.
Recovery files and preferences live in the user's data and config directories instead
(`NAPARI_STIMAGE_DATA`, `NAPARI_STIMAGE_CONFIG` move them).

Expression cache, format version 1
----------------------------------
One folder per count file: `<cache>/expression-v1/<sha1 of the absolute source path>/` holding

- `meta.json`: `{"format": "napari-stimage-expression", "version": 1, "source": ...,
  "fingerprint": {"version", "size", "mtime_ns", "inode", "ctime_ns", "sampled_sha256"}, "shape": [spots, genes], "nnz",
  "checksums": {file: crc32}}`. It is written last, so a folder without it is incomplete.
- `indptr.npy` (int64, genes + 1), `indices.npy` (int32 spot rows), `data.npy` (float32):
  the counts as a CSC matrix, one contiguous run per gene.
- `spot_ids.npy`, `gene_names.npy` (made unique), `raw_gene_names.npy` (as written): unicode arrays.
- `total_counts.npy`, `n_genes.npy` (per spot), `log1p_var.npy` (per gene): summaries computed
  while streaming, so opening a 600,000-bin slide never rescans the matrix.

A cache is used only when its version, the source's fingerprint (`storage.file_fingerprint`:
size, mtime, inode, ctime and a hash of blocks sampled across the whole file), every file's
presence and CRC32 (whatever the size) and the CSC invariants (dtypes, shapes, monotone
`indptr`, row indices within the spots) agree; otherwise it is rebuilt. Nothing read from a
cache reaches scipy's native code before these checks. A build writes a private temporary
folder and publishes it with one rename; a finished cache is never deleted under a reader.
Arrays are opened memory-mapped, so re-opening costs little whatever the slide's size.

Building streams the CSV in blocks (`expression.iter_count_blocks`): each block's non-zeros are
sorted by gene and spilled to disk, then merged gene range by gene range into the CSC files.
Peak memory is a few blocks plus one merge range, independent of the file size.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.errors import SlideError
from ..core.keys import path_key
from ..core.progress import ProgressCallback
from ..core.storage import (
    TEMP_MARK,
    file_fingerprint,
    remove_stale_temp_files,
    temp_dir_next_to,
)

CACHE_ENV = "NAPARI_STIMAGE_CACHE"
DATA_ENV = "NAPARI_STIMAGE_DATA"
CONFIG_ENV = "NAPARI_STIMAGE_CONFIG"
FORMAT_NAME = "napari-stimage-expression"
FORMAT_VERSION = 1
_MERGE_BUDGET_NNZ = 24 << 20  # non-zeros merged at once: ~200 MB of indices + data + positions

class CacheUnavailable(SlideError):
    """A folder napari-stimage keeps files in cannot be created or written (the message names it)."""


def _user_dir(env: str, kind: str) -> Path:
    configured = os.environ.get(env)
    if configured:
        path = Path(configured).expanduser()
    else:
        import platformdirs

        path = Path(getattr(platformdirs, f"user_{kind}_dir")("napari-stimage"))
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(20, "not a folder", str(path))
    except OSError as exc:
        raise CacheUnavailable(path, f"cannot use this {kind} folder ({exc.strerror or exc}); set {env} to another folder") from exc
    return path


def unusable_folder_note(exc: BaseException, what: str) -> str:
    """One line for a slide's notes: which folder failed, why, and what was done instead."""
    folder = getattr(exc, "filename", None) or getattr(exc, "path", None)
    reason = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or str(exc)
    return f"{what}: {folder} cannot be written ({reason})"


_cleaned_once = False


def remove_stale_temp_files_once() -> None:
    """At the first slide opened in a process: delete work folders and temporary files that
    killed processes left in the cache and recovery folders (`storage.remove_stale_temp_files`)."""
    global _cleaned_once
    if _cleaned_once:
        return
    _cleaned_once = True
    for folder in (cache_dir, lambda: data_dir() / "recovery"):
        try:
            remove_stale_temp_files(folder())
        except (OSError, CacheUnavailable):
            continue


def cache_dir() -> Path:
    """Derived files that can be rebuilt from the dataset at any time (safe to delete)."""
    return _user_dir(CACHE_ENV, "cache")


def data_dir() -> Path:
    """Files a user must not lose: recovery of unsaved label edits. Not in the cache folder,
    which users and cleaning tools empty freely."""
    return _user_dir(DATA_ENV, "data")


def annotation_user_file(folder_name: str, annotation_path: str | Path) -> Path:
    """A file of the user data folder that belongs to one annotation file (keyed by its resolved
    path): its recovery, its label order, the colours its labels were shown in."""
    annotation_path = Path(annotation_path).resolve()
    folder = data_dir() / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{annotation_path.stem}-{path_key(annotation_path)[:16]}.json"


def config_dir() -> Path:
    """Preferences: label colours, recent genes."""
    return _user_dir(CONFIG_ENV, "config")


def fingerprint(path: str | Path) -> dict:
    """What identifies a source file's content cheaply (`storage.file_fingerprint`)."""
    return file_fingerprint(path)


def expression_cache_path(source: str | Path) -> Path:
    """The cache folder of a count file (it may not exist yet)."""
    return cache_dir() / f"expression-v{FORMAT_VERSION}" / path_key(source)


def _crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(16 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


_ARRAY_FILES = (
    "indptr.npy", "indices.npy", "data.npy", "spot_ids.npy", "gene_names.npy",
    "raw_gene_names.npy", "total_counts.npy", "n_genes.npy", "log1p_var.npy",
)


class CacheInvalid(Exception):
    """The cache folder is stale, incomplete or corrupt (the message says which)."""


def _read_meta_object(path: Path) -> dict:
    """A cache's meta.json as a dict, or `CacheInvalid` (unreadable, not JSON, not an object)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"no readable {path.name} ({exc})") from exc
    if not isinstance(meta, dict):
        raise CacheInvalid(f"{path.name} is not a JSON object")
    return meta


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_valid_meta(folder: Path, source: Path, check_fingerprint: bool = True) -> dict:
    meta = _read_meta_object(folder / "meta.json")
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise CacheInvalid("other format or version")
    shape, checksums = meta.get("shape"), meta.get("checksums")
    if not (
        isinstance(shape, list) and len(shape) == 2 and all(_is_count(v) for v in shape)
        and _is_count(meta.get("nnz")) and isinstance(checksums, dict)
        and set(checksums) == set(_ARRAY_FILES) and all(_is_count(v) for v in checksums.values())
    ):
        raise CacheInvalid("meta.json has missing or wrong-typed fields")
    if check_fingerprint and meta.get("fingerprint") != fingerprint(source):
        raise CacheInvalid("the source file changed")
    for name in _ARRAY_FILES:
        if not (folder / name).is_file():
            raise CacheInvalid(f"{name} is missing")
    # Every file, whatever its size: a flipped byte must never reach native code unseen.
    for name, crc in checksums.items():
        if _crc32_file(folder / name) != crc:
            raise CacheInvalid(f"{name} is corrupt (checksum)")
    return meta


def is_cache_valid(source: str | Path) -> bool:
    try:
        load_cached_expression(source)
    except (CacheInvalid, OSError, ValueError):
        return False
    return True


def load_cached_expression(source: str | Path, folder: Path | None = None):
    """The cached `Expression` of a count file (from its cache folder, or `folder`), or raise
    `CacheInvalid`."""
    import scipy.sparse as sp

    from ..core.expression import Expression

    source = Path(source)
    folder = expression_cache_path(source) if folder is None else folder
    meta = _read_valid_meta(folder, source)
    try:
        n_spots, n_genes = meta["shape"]
        nnz = meta["nnz"]

        def load(name, mmap=False):
            return np.load(folder / name, mmap_mode="r" if mmap else None, allow_pickle=False)

        indptr = load("indptr.npy")
        indices = load("indices.npy", mmap=True)
        data = load("data.npy", mmap=True)
        spot_ids = load("spot_ids.npy").astype(object)
        gene_names = load("gene_names.npy").astype(object)
        raw_gene_names = load("raw_gene_names.npy").astype(object)
        stats = {name: load(f"{name}.npy") for name in ("total_counts", "n_genes", "log1p_var")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheInvalid(f"unreadable array ({exc})") from exc
    _check_structure(indptr, indices, data, n_spots, n_genes, nnz)
    if len(spot_ids) != n_spots or len(gene_names) != n_genes or len(raw_gene_names) != n_genes or any(
        v.shape != ((n_genes,) if k == "log1p_var" else (n_spots,)) for k, v in stats.items()
    ):
        raise CacheInvalid("arrays do not fit together")
    matrix = sp.csc_matrix((n_spots, n_genes), dtype=np.float32)
    # Assign the memory-mapped arrays directly: the constructor would copy or scan them.
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    return Expression(
        spot_ids=spot_ids,
        gene_names=gene_names,
        raw_gene_names=raw_gene_names,
        matrix=matrix,
        source=source,
        stats=stats,
    )


def _check_structure(indptr, indices, data, n_spots: int, n_genes: int, nnz: int) -> None:
    """The CSC invariants scipy's native code relies on without checking (out-of-range indices
    read and write outside the arrays): dtypes, shapes, monotone pointers, index bounds."""
    if (
        indptr.dtype != np.int64 or indices.dtype != np.int32 or data.dtype != np.float32
        or indptr.shape != (n_genes + 1,) or indices.shape != (nnz,) or data.shape != (nnz,)
        or n_spots >= 2**31
    ):
        raise CacheInvalid("arrays have wrong types or shapes")
    if int(indptr[0]) != 0 or int(indptr[-1]) != nnz or np.any(indptr[1:] < indptr[:-1]):
        raise CacheInvalid("column pointers are not monotone from 0 to nnz")
    if nnz:
        low, high = _index_range(indices)
        if low < 0 or high >= n_spots:
            raise CacheInvalid("row indices out of range")


_RANGE_BLOCK = 4 << 20  # indices read at once by `_index_range`: 16 MB


def _index_range(indices: np.ndarray) -> tuple[int, int]:
    """Smallest and largest row index, read from the file a block at a time.

    `indices.min()` on the memory map would page the whole array in, and mapped pages count in
    the process's memory until they are unmapped: hundreds of MB on a 600k-bin slide of which
    a gene switch reads a few kB. Reading the file (not the map) leaves it in the OS page cache.
    """
    if not isinstance(indices, np.memmap) or indices.filename is None:
        return int(indices.min()), int(indices.max())
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    with open(indices.filename, "rb") as fh:
        fh.seek(indices.offset)
        while (block := np.fromfile(fh, dtype=indices.dtype, count=_RANGE_BLOCK)).size:
            low, high = min(low, int(block.min())), max(high, int(block.max()))
    return low, high


def _write_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, array, allow_pickle=False)


def build_expression_cache(
    source: str | Path,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    block_size: int = 16 << 20,
) -> Path:
    """Stream a count CSV into its cache folder (see the module doc); returns the folder.

    Raises `expression.Cancelled` when `cancel()` turns True (nothing is left behind),
    `SlideError` for a malformed file and `OSError`/`CacheUnavailable` when the cache folder
    cannot be written.
    """
    from .count_csv import iter_count_blocks

    source = Path(source)
    final = expression_cache_path(source)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = temp_dir_next_to(final)  # private: concurrent builders never share files
    total_bytes = max(source.stat().st_size, 1)
    source_print = fingerprint(source)

    def parse_progress(done, total):
        if progress is not None:
            progress(int(done * 0.95), total)

    try:
        raw_genes, blocks = iter_count_blocks(source, parse_progress, cancel, block_size)
        n_genes = len(raw_genes)
        spot_ids: list[str] = []
        block_counts: list[np.ndarray] = []  # per block: non-zeros per gene
        spill_offsets: list[int] = []
        gene_sum = np.zeros(n_genes, dtype=np.float64)
        gene_sumsq = np.zeros(n_genes, dtype=np.float64)
        totals, detected = [], []
        offset = 0
        try:
            with open(work / "spill_indices.bin", "wb") as spill_i, open(work / "spill_data.bin", "wb") as spill_d:
                for block in blocks:
                    n_rows = len(block.spot_ids)
                    spot_ids.extend(block.spot_ids)
                    local = block.rows - block.first_row
                    totals.append(np.bincount(local, weights=block.values, minlength=n_rows))
                    detected.append(np.bincount(local, minlength=n_rows).astype(np.int32))
                    logged = np.log1p(block.values.astype(np.float64))
                    gene_sum += np.bincount(block.cols, weights=logged, minlength=n_genes)
                    gene_sumsq += np.bincount(block.cols, weights=logged**2, minlength=n_genes)
                    order = np.argsort(block.cols, kind="stable")  # gene-major, rows ascending
                    block.rows.astype(np.int32)[order].tofile(spill_i)
                    block.values[order].tofile(spill_d)
                    counts = np.bincount(block.cols, minlength=n_genes)
                    block_counts.append(counts.astype(np.uint16 if n_rows < 65536 else np.int32))
                    spill_offsets.append(offset)
                    offset += len(order)
        except OSError as exc:
            raise SlideError(source, f"cannot read the count file ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise SlideError(source, f"the count file is not UTF-8 text ({exc})") from exc
        if not spot_ids:
            raise SlideError(source, "the count file has a header but no spots")
        if len(spot_ids) >= 2**31:
            raise SlideError(source, "more than 2^31 spots")
        n_spots = len(spot_ids)
        nnz = offset

        gene_nnz = np.zeros(n_genes, dtype=np.int64)
        for counts in block_counts:
            gene_nnz += counts
        indptr = np.zeros(n_genes + 1, dtype=np.int64)
        np.cumsum(gene_nnz, out=indptr[1:])
        _merge_spill(work, block_counts, spill_offsets, indptr, cancel)
        (work / "spill_indices.bin").unlink()
        (work / "spill_data.bin").unlink()

        mean = gene_sum / n_spots
        _finish_cache(work, final, source, source_print, indptr, nnz, spot_ids, raw_genes,
                      {"total_counts": np.concatenate(totals), "n_genes": np.concatenate(detected),
                       "log1p_var": gene_sumsq / n_spots - mean**2})
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if progress is not None:
        progress(total_bytes, total_bytes)
    return final


def _finish_cache(work: Path, final: Path, source: Path, source_print: dict, indptr: np.ndarray, nnz: int,
                  spot_ids, raw_genes, stats: dict) -> None:
    """Write the arrays besides indices/data (already in `work`), meta.json, and publish."""
    from ..core.expression import make_unique

    _write_npy(work / "indptr.npy", np.asarray(indptr, dtype=np.int64))
    _write_npy(work / "spot_ids.npy", np.array(spot_ids, dtype=str).reshape(-1))
    _write_npy(work / "gene_names.npy", np.array(make_unique(raw_genes), dtype=str).reshape(-1))
    _write_npy(work / "raw_gene_names.npy", np.array(raw_genes, dtype=str).reshape(-1))
    for name, values in stats.items():
        _write_npy(work / f"{name}.npy", values)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "source": str(source.resolve()),
        "fingerprint": source_print,
        "shape": [len(spot_ids), len(raw_genes)],
        "nnz": int(nnz),
        "checksums": {name: _crc32_file(work / name) for name in _ARRAY_FILES},
    }
    (work / "meta.json").write_text(json.dumps(meta, indent=1))
    if fingerprint(source) != source_print:
        raise SlideError(source, "the file changed while it was being read")
    _publish(work, final, source)


def store_expression_cache(source: str | Path, expression, source_print: dict) -> Path:
    """Cache an `Expression` read from another format (e.g. a HEST h5ad) under `source`'s key, in
    the count CSV cache's format; `source_print` is the source's fingerprint taken before reading."""
    source = Path(source)
    final = expression_cache_path(source)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = temp_dir_next_to(final)
    try:
        m = expression.matrix
        _write_npy(work / "indices.npy", np.asarray(m.indices, dtype=np.int32))
        _write_npy(work / "data.npy", np.asarray(m.data, dtype=np.float32))
        stats = {"total_counts": expression.total_counts(), "n_genes": expression.n_genes_detected().astype(np.int32),
                 "log1p_var": expression.log1p_variance()}
        _finish_cache(work, final, source, source_print, m.indptr, m.nnz, expression.spot_ids,
                      expression.raw_gene_names, stats)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def _publish(work: Path, final: Path, source: Path) -> None:
    """Make `work` the cache with one rename. A valid cache another process finished first is
    kept (it may be open); a stale or broken one is renamed aside before it is deleted, so a
    reader never sees a half-deleted folder."""
    try:
        load_cached_expression(source, final)
    except (CacheInvalid, OSError, ValueError):
        pass
    else:
        shutil.rmtree(work, ignore_errors=True)
        return
    if final.exists() or final.is_symlink():
        aside = final.with_name(f".{final.name}.old{os.getpid()}{TEMP_MARK}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, aside)  # a file or folder in the way, or a stale cache
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)
    try:
        os.rename(work, final)
    except OSError:  # another process published in between: keep theirs
        shutil.rmtree(work, ignore_errors=True)


def _merge_spill(work: Path, block_counts, spill_offsets, indptr: np.ndarray, cancel) -> None:
    """Gather the gene-sorted block spills into `indices.npy` / `data.npy`, gene range by range."""
    from ..core.progress import Cancelled

    n_genes = len(indptr) - 1
    nnz = int(indptr[-1])
    with open(work / "indices.npy", "wb") as out_i, open(work / "data.npy", "wb") as out_d, \
            open(work / "spill_indices.bin", "rb") as spill_i, open(work / "spill_data.bin", "rb") as spill_d:
        np.lib.format.write_array_header_1_0(out_i, {"descr": "<i4", "fortran_order": False, "shape": (nnz,)})
        np.lib.format.write_array_header_1_0(out_d, {"descr": "<f4", "fortran_order": False, "shape": (nnz,)})
        g0 = 0
        while g0 < n_genes:
            if cancel is not None and cancel():
                raise Cancelled(str(work))
            # The largest gene range whose non-zeros fit the budget (at least one gene).
            g1 = int(np.searchsorted(indptr, indptr[g0] + _MERGE_BUDGET_NNZ, side="right")) - 1
            g1 = min(max(g1, g0 + 1), n_genes)
            lo, hi = int(indptr[g0]), int(indptr[g1])
            out_idx = np.empty(hi - lo, dtype=np.int32)
            out_val = np.empty(hi - lo, dtype=np.float32)
            filled = indptr[g0:g1] - lo  # next free slot of each gene in this range
            for counts, spill_at in zip(block_counts, spill_offsets, strict=True):
                counts = counts[:].astype(np.int64)
                ptr = np.zeros(n_genes + 1, dtype=np.int64)
                np.cumsum(counts, out=ptr[1:])
                a, b = int(ptr[g0]), int(ptr[g1])
                if a == b:
                    continue
                spill_i.seek((spill_at + a) * 4)
                idx = np.fromfile(spill_i, dtype=np.int32, count=b - a)
                spill_d.seek((spill_at + a) * 4)
                val = np.fromfile(spill_d, dtype=np.float32, count=b - a)
                run = counts[g0:g1]
                dest = np.repeat(filled - (ptr[g0:g1] - a), run) + np.arange(b - a)
                out_idx[dest] = idx
                out_val[dest] = val
                filled = filled + run
            out_idx.tofile(out_i)
            out_val.tofile(out_d)
            g0 = g1


def load_expression_cached(
    source: str | Path,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    notes: list[str] | None = None,
):
    """The `Expression` of a count file through the cache: built on first use or when stale.

    When the cache folder cannot be used (read-only, full, a file in its way) the counts are
    read into memory instead and a line saying so is appended to `notes`.
    """
    from .count_csv import read_count_csv

    try:
        return load_cached_expression(source)
    except (CacheInvalid, OSError, ValueError):
        pass
    try:
        build_expression_cache(source, progress, cancel)
    except (OSError, CacheUnavailable) as exc:  # the cache side failed: the source was readable
        if notes is not None:
            notes.append(unusable_folder_note(exc, "expression not cached, read into memory"))
        return read_count_csv(source, progress, cancel)
    try:
        return load_cached_expression(source)
    except (CacheInvalid, OSError, ValueError) as exc:  # e.g. the source changed again in between
        raise SlideError(source, f"the expression cache could not be used ({exc})") from exc
