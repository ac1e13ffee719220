"""H&E images of a slide: format sniffed from the bytes, normalised to (H, W, 3) RGB.

Files are named `.png` but hold PNG, JPEG or TIFF. TIFFs open lazily through tifffile's
zarr store (one array per pyramid level); PNG/JPEG are decoded with PIL with its
decompression-bomb limit lifted, since real slides exceed it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SlideError

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
        if isinstance(group, zarr.Array):
            levels = [group]
        else:
            levels = [group[k] for k in sorted(group.array_keys(), key=int)]
    except Exception:
        # Some HEST pyramids break tifffile's series parsing ("incompatible keyframe"):
        # read the pages one by one instead.
        levels = [page.asarray() for page in tif.pages if page.is_tiled or page.index == 0]
    levels = [lvl for lvl in levels if lvl.ndim >= 2]
    if levels and levels[0].ndim == 3 and levels[0].shape[0] in (3, 4) and levels[0].shape[-1] not in (3, 4):
        levels = [normalise_rgb(np.asarray(lvl)) for lvl in levels]
    return levels


def read_image(path: str | Path) -> list:
    """The image as a list of pyramid levels, largest first (a single level for small images)."""
    path = Path(path)
    kind = sniff_image_format(path)
    if kind is None:
        raise SlideError(path, "not a PNG, JPEG or TIFF image (unrecognised file signature)")
    try:
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
