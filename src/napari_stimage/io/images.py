"""H&E images of a slide: format sniffed from the bytes, normalised to (H, W, 3) RGB.

Files are named `.png` but hold PNG, JPEG or TIFF. TIFFs open lazily through tifffile's
zarr store (one array per pyramid level). Small PNG/JPEG are decoded with PIL (its
decompression-bomb limit lifted, since real slides exceed it). Large PNG/JPEG (over
`PYRAMID_MIN_PIXELS`) are converted once into a tiled pyramidal TIFF in the cache
(`<cache>/images-v1/<sha1 of the source path>.tif` + `.json` holding the source's and the
pyramid's own fingerprints, `storage.file_fingerprint`),
streaming with libvips (pyvips) so memory stays small even past 2^31 pixels; without libvips
the fallback decodes with PIL and writes the pyramid with tifffile (needs the whole image in RAM).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import SlideError
from ..core.keys import path_key

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


def sniff_image_format(path: str | Path) -> str | None:
    """'png', 'jpeg', 'tiff' from the first bytes, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def normalise_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 3|4) or (3|4, H, W) -> (H, W) or (H, W, 3); alpha is dropped."""
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def _tiff_levels(path: Path) -> list:
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    try:
        store = tif.series[0].aszarr()
        group = zarr.open(store, mode="r")
        levels = [group] if isinstance(group, zarr.Array) else [group[k] for k in sorted(group.array_keys(), key=int)]
    except Exception:
        # Some HEST pyramids break tifffile's series parsing ("incompatible keyframe"):
        # read the pages one by one instead.
        levels = _page_levels(tif)
    return _normalised_levels(levels)


def tiff_page_levels(path: str | Path) -> list:
    """The pyramid of a TIFF whose levels are ordinary pages (pyvips' `tiffsave`, as HEST's WSIs),
    read page by page without tifffile's series parsing; each level lazy (tiles read on demand)."""
    import tifffile

    return _normalised_levels(_page_levels(tifffile.TiffFile(path)))


def _page_levels(tif) -> list:
    """Lazy arrays of the pages that form a pyramid: the first page, then each smaller page with
    the same samples (thumbnails, labels and masks in between are skipped)."""
    import zarr

    levels = []
    for page in tif.pages:
        shape = page.shape
        if levels:
            last = levels[-1].shape
            if len(shape) != len(last) or shape[2:] != last[2:] or not (shape[0] < last[0] and shape[1] < last[1]):
                continue
            if not page.is_tiled:
                continue
        levels.append(zarr.open(page.aszarr(), mode="r"))
    return levels


def _normalised_levels(levels: list) -> list:
    levels = [lvl for lvl in levels if lvl.ndim >= 2]
    if not levels:
        return levels
    if levels and levels[0].ndim == 3 and levels[0].shape[0] in (3, 4) and levels[0].shape[-1] not in (3, 4):
        levels = [normalise_rgb(np.asarray(lvl)) for lvl in levels]
    return _as_rgb8(levels)


def _as_rgb8(levels: list) -> list:
    """Levels as 8-bit RGB (or grey), lazily: alpha dropped, 12/16-bit and float scaled to 0..255.

    napari shows RGB of other dtypes against the dtype's full range (a 12-bit slide in uint16
    looks black); the range is taken from a strided sample of the smallest level.
    """
    first = levels[0]
    alpha = first.ndim == 3 and first.shape[-1] == 4
    dtype = np.dtype(first.dtype)
    if dtype == np.uint8 and not alpha:
        return levels
    import dask.array as da

    top = 255.0
    if dtype != np.uint8:
        small = levels[-1]
        step = max(1, int(np.sqrt(small.shape[0] * small.shape[1] / 1e6)))
        sample = np.nan_to_num(np.asarray(small[::step, ::step]), nan=0.0)
        high = float(sample.max()) if sample.size else 0.0
        if dtype.kind == "f":
            top = 1.0 if high <= 1.0 else 255.0
        elif high >= 256:
            top = 4095.0 if high < 4096 else float(np.iinfo(dtype).max) if dtype.kind in "ui" else 255.0
    out = []
    for level in levels:
        lazy = da.from_zarr(level) if not isinstance(level, np.ndarray) else da.from_array(level)
        if alpha:
            lazy = lazy[..., :3]
        if dtype != np.uint8:
            scaled = da.nan_to_num(lazy.astype(np.float32)) * np.float32(255.0 / top) + np.float32(0.5)
            lazy = da.clip(scaled, 0, 255).astype(np.uint8)
        out.append(lazy)
    return out


def read_image(path: str | Path, progress=None, cancel=None, notes: list[str] | None = None) -> list:
    """The image as a list of pyramid levels, largest first (a single level for small images).

    Large PNG/JPEG go through the cached pyramid (built on first use, with `progress(done,
    total)`; `cancel()` aborts the build). When the cache folder cannot be written the image
    is decoded into memory instead and a line saying so is appended to `notes`.
    """
    path = Path(path)
    kind = sniff_image_format(path)
    if kind is None:
        raise SlideError(path, "not a PNG, JPEG or TIFF image (unrecognised file signature)")
    shape = check_declared_size(path)
    try:
        if kind in ("png", "jpeg") and shape is not None and shape[0] * shape[1] >= PYRAMID_MIN_PIXELS:
            from .cache import CacheUnavailable, unusable_folder_note

            try:
                return _tiff_levels(ensure_pyramid(path, progress=progress, cancel=cancel))
            except (OSError, CacheUnavailable) as exc:  # the cache side: decode in memory below
                if notes is not None:
                    notes.append(unusable_folder_note(exc, "image pyramid not cached, decoded into memory"))
        if kind == "tiff":
            levels = _tiff_levels(path)
            if not levels:
                raise SlideError(path, "the TIFF holds no image")
            return levels
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # real slides are far beyond PIL's bomb limit
        with Image.open(path) as im:
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            array = np.asarray(im)
        return [normalise_rgb(array)]
    except SlideError:
        raise
    except Exception as exc:  # PIL/tifffile raise many types for damaged files
        from ..core.progress import Cancelled

        if isinstance(exc, Cancelled):
            raise
        raise SlideError(path, f"cannot decode the {kind.upper()} image ({exc})") from exc


MAX_PIXELS_ENV = "NAPARI_STIMAGE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 20_000_000_000  # 2e10: twice the largest slides' 100,000 x 100,000
MAX_COMPRESSION_RATIO = 4000  # raw RGB bytes per file byte; deflate tops out near 1,032


def max_pixels() -> int:
    """The largest image (height x width) opened: `NAPARI_STIMAGE_MAX_PIXELS` or the default."""
    try:
        return int(float(os.environ.get(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def check_declared_size(path: str | Path) -> tuple[int, int] | None:
    """The image's (height, width) from its header, refused before anything is decoded when it
    exceeds `max_pixels()` or is more than the file's bytes could hold (a forged or cut header)."""
    path = Path(path)
    shape = image_shape(path)
    if shape is None:
        return None
    pixels = int(shape[0]) * int(shape[1])
    if pixels > max_pixels():
        raise SlideError(
            path, f"the image declares {shape[1]} x {shape[0]} pixels, above the limit of {max_pixels():,} "
            f"(set {MAX_PIXELS_ENV} to open larger images)",
        )
    size = path.stat().st_size
    if pixels * 3 > size * MAX_COMPRESSION_RATIO:
        raise SlideError(
            path, f"the image declares {shape[1]} x {shape[0]} pixels but the file has only {size:,} bytes: "
            "its header is damaged or the file is truncated",
        )
    return shape


def image_shape(path: str | Path) -> tuple[int, int] | None:
    """(height, width) without decoding the pixels, or None if unknown."""
    path = Path(path)
    kind = sniff_image_format(path)
    try:
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            return (shape[1], shape[2]) if shape[0] in (3, 4) and len(shape) == 3 and shape[-1] not in (3, 4) else shape[:2]
        if kind in ("png", "jpeg"):
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as im:
                return im.height, im.width
    except Exception:
        return None
    return None


PYRAMID_MIN_PIXELS = 6000 * 6000  # above this a PNG/JPEG is converted to a cached pyramid
PYRAMID_TILE = 512
PYRAMID_FORMAT_VERSION = 1


def pyramid_cache_path(source: str | Path) -> Path:
    from .cache import cache_dir

    return cache_dir() / f"images-v{PYRAMID_FORMAT_VERSION}" / f"{path_key(source)}.tif"


def pyramid_is_valid(source: str | Path) -> bool:
    """True when the cached pyramid exists, is the one its meta file describes (the pyramid's own
    fingerprint) and was made from this exact source (the source's fingerprint)."""
    from ..core.storage import file_fingerprint
    from .cache import CacheInvalid, _read_meta_object

    tif = pyramid_cache_path(source)
    try:
        meta = _read_meta_object(tif.with_suffix(".json"))
        return (
            meta.get("version") == PYRAMID_FORMAT_VERSION
            and meta.get("fingerprint") == file_fingerprint(source)
            and meta.get("pyramid_fingerprint") == file_fingerprint(tif)
        )
    except (CacheInvalid, OSError, ValueError):
        return False


def ensure_pyramid(source: str | Path, progress=None, cancel=None, force: bool = False) -> Path:
    """The cached pyramidal TIFF of a PNG/JPEG, built when missing or stale.

    Built into a private temporary file and renamed into place; when another process finished
    a valid pyramid meanwhile, theirs is kept.
    """
    import json

    from ..core.storage import atomic_write_text, file_fingerprint, temp_name

    source = Path(source)
    out = pyramid_cache_path(source)
    if not force and pyramid_is_valid(source):
        return out
    check_declared_size(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    before = file_fingerprint(source)
    tmp = temp_name(out)
    open(tmp, "xb").close()  # a read-only cache folder fails here, as an OSError naming it
    try:
        try:
            _pyramid_with_vips(source, tmp, progress, cancel)
        except ImportError:
            _pyramid_with_pil(source, tmp, progress, cancel)
        if file_fingerprint(source) != before:
            raise SlideError(source, "the image changed while it was being converted")
        if not force and pyramid_is_valid(source):
            tmp.unlink()
            return out
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    meta = {"version": PYRAMID_FORMAT_VERSION, "source": str(source.resolve()), "fingerprint": before,
            "pyramid_fingerprint": file_fingerprint(out)}
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=1))
    return out


def _vips():
    """pyvips with a working libvips, or ImportError (pyvips raises OSError without libvips)."""
    try:
        import pyvips
    except (ImportError, OSError) as exc:
        raise ImportError(f"libvips is not available ({exc})") from exc
    return pyvips


def _pyramid_with_vips(source: Path, out: Path, progress, cancel) -> None:
    from ..core.progress import Cancelled

    pyvips = _vips()
    # fail_on: a truncated or damaged file is an error, not a pyramid that ends in grey
    image = pyvips.Image.new_from_file(str(source), access="sequential", fail_on="truncated")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if image.bands == 1:
        image = image.colourspace("srgb") if image.interpretation != "b-w" else image
    if image.format != "uchar":
        image = image.cast("uchar")
    cancelled = []
    if progress is not None or cancel is not None:
        image.set_progress(True)

        def on_eval(img, state):
            if progress is not None:
                progress(int(state.percent), 100)
            if cancel is not None and cancel():
                cancelled.append(True)
                img.set_kill(True)

        image.signal_connect("eval", on_eval)
    try:
        image.tiffsave(
            str(out), tile=True, pyramid=True, subifd=True, compression="jpeg", Q=90,
            tile_width=PYRAMID_TILE, tile_height=PYRAMID_TILE, bigtiff=True,
        )
    except pyvips.Error as exc:
        if cancelled:
            raise Cancelled(str(source)) from exc
        raise SlideError(source, f"cannot convert the image to a pyramid in {out.parent} ({exc})") from exc
    if cancelled:
        raise Cancelled(str(source))
    if progress is not None:
        progress(100, 100)


def _downsample2(array: np.ndarray) -> np.ndarray:
    h, w = array.shape[0] // 2 * 2, array.shape[1] // 2 * 2
    a = array[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def _pyramid_with_pil(source: Path, out: Path, progress, cancel) -> None:
    """Fallback without libvips: decode whole with PIL, write levels as tiled SubIFDs."""
    import tifffile
    from PIL import Image

    from ..core.progress import Cancelled

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(source) as im:
        array = normalise_rgb(np.asarray(im.convert("RGB") if im.mode not in ("RGB", "L") else im))
    levels = [array]
    while max(levels[-1].shape[:2]) > PYRAMID_TILE:
        levels.append(_downsample2(levels[-1]))
    with tifffile.TiffWriter(out, bigtiff=True) as tif:
        options = {"tile": (PYRAMID_TILE, PYRAMID_TILE), "compression": "jpeg",
                   "photometric": "rgb" if array.ndim == 3 else "minisblack"}
        tif.write(levels[0], subifds=len(levels) - 1, **options)
        for i, level in enumerate(levels[1:], start=1):
            if cancel is not None and cancel():
                raise Cancelled(str(source))
            tif.write(level, subfiletype=1, **options)
            if progress is not None:
                progress(i, len(levels) - 1)
    if progress is not None and len(levels) == 1:
        progress(1, 1)


THUMBNAIL_MAX_SOURCE_PIXELS = 4000 * 4000  # above this, only a cached pyramid gives a quick thumbnail


def quick_thumbnail(source: str | Path, size: int = 256) -> np.ndarray | None:
    """An (h, w, 3) uint8 preview at most `size` pixels on its longest side, or None when none can
    be made quickly: the smallest level of the slide's cached pyramid, else the image itself when
    it is small (JPEG decodes straight at a reduced scale). A huge image is never decoded here."""
    from PIL import Image

    source = Path(source)
    if pyramid_is_valid(source):
        import tifffile

        with tifffile.TiffFile(pyramid_cache_path(source)) as tif:
            array = normalise_rgb(tif.series[0].levels[-1].asarray())
        image = Image.fromarray(np.ascontiguousarray(array).astype(np.uint8))
    else:
        shape = image_shape(source)
        kind = sniff_image_format(source)
        if shape is None or kind not in ("png", "jpeg") or shape[0] * shape[1] > THUMBNAIL_MAX_SOURCE_PIXELS:
            return None
        try:
            with Image.open(source) as opened:
                opened.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale
                image = opened.convert("RGB")
        except (OSError, ValueError):
            return None
    image.thumbnail((size, size))
    return np.asarray(image.convert("RGB"))
