"""H&E images of a slide: format sniffed from the bytes, normalised to (H, W, 3) RGB.

Files are named `.png` but hold PNG, JPEG or TIFF. TIFFs open lazily through tifffile's
zarr store (one array per pyramid level). Small PNG/JPEG are decoded with PIL (its
decompression-bomb limit lifted, since real slides exceed it). Large PNG/JPEG (over
`PYRAMID_MIN_PIXELS`) are converted once into a tiled pyramidal TIFF in the cache
(`<cache>/images-v1/<sha1 of the source path>.tif` + `.json` holding the source fingerprint),
streaming with libvips (pyvips) so memory stays small even past 2^31 pixels; without libvips
the fallback decodes with PIL and writes the pyramid with tifffile (needs the whole image in RAM).
"""

from __future__ import annotations

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
        levels = [page.asarray() for page in tif.pages if page.is_tiled or page.index == 0]
    levels = [lvl for lvl in levels if lvl.ndim >= 2]
    if levels and levels[0].ndim == 3 and levels[0].shape[0] in (3, 4) and levels[0].shape[-1] not in (3, 4):
        levels = [normalise_rgb(np.asarray(lvl)) for lvl in levels]
    return levels


def read_image(path: str | Path, progress=None, cancel=None) -> list:
    """The image as a list of pyramid levels, largest first (a single level for small images).

    Large PNG/JPEG go through the cached pyramid (built on first use, with `progress(done,
    total)`; `cancel()` aborts the build).
    """
    path = Path(path)
    kind = sniff_image_format(path)
    if kind is None:
        raise SlideError(path, "not a PNG, JPEG or TIFF image (unrecognised file signature)")
    try:
        if kind in ("png", "jpeg"):
            shape = image_shape(path)
            if shape is not None and shape[0] * shape[1] >= PYRAMID_MIN_PIXELS:
                pyramid = ensure_pyramid(path, progress=progress, cancel=cancel)
                return _tiff_levels(pyramid)
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
    """True when the cached pyramid exists, is complete and was made from this exact source."""
    import json

    from .cache import fingerprint

    tif = pyramid_cache_path(source)
    try:
        meta = json.loads(tif.with_suffix(".json").read_text())
        return (
            meta.get("version") == PYRAMID_FORMAT_VERSION
            and meta.get("fingerprint") == fingerprint(source)
            and tif.stat().st_size == meta.get("size")
        )
    except (OSError, ValueError):
        return False


def ensure_pyramid(source: str | Path, progress=None, cancel=None, force: bool = False) -> Path:
    """The cached pyramidal TIFF of a PNG/JPEG, built when missing or stale."""
    import json
    import os
    import uuid

    from .cache import fingerprint

    source = Path(source)
    out = pyramid_cache_path(source)
    if not force and pyramid_is_valid(source):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    before = fingerprint(source)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tif")
    try:
        try:
            _pyramid_with_vips(source, tmp, progress, cancel)
        except ImportError:
            _pyramid_with_pil(source, tmp, progress, cancel)
        if fingerprint(source) != before:
            raise SlideError(source, "the image changed while it was being converted")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    meta = {"version": PYRAMID_FORMAT_VERSION, "source": str(source.resolve()), "fingerprint": before,
            "size": out.stat().st_size}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
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
    image = pyvips.Image.new_from_file(str(source), access="sequential")
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
        raise SlideError(source, f"cannot convert the image to a pyramid ({exc})") from exc
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
