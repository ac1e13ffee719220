"""Image format sniffing, RGB normalisation, lazy TIFF and the cached pyramid of big PNG/JPEG."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_stimage.core.errors import SlideError
from napari_stimage.io import images
from napari_stimage.io.images import image_shape, normalise_rgb, read_image, sniff_image_format


def he_like(h=300, w=420):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(200 + 40 * np.sin(x / 23)), (120 + 60 * np.cos(y / 31)), (190 + 0 * x)], -1).astype(np.uint8)


@pytest.fixture
def rgb():
    return he_like()


def test_sniff_by_bytes_not_extension(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png", format="JPEG")
    Image.fromarray(rgb).save(tmp_path / "b.png", format="PNG")
    tifffile.imwrite(tmp_path / "c.png", rgb)
    (tmp_path / "d.png").write_bytes(b"not an image at all")
    assert sniff_image_format(tmp_path / "a.png") == "jpeg"
    assert sniff_image_format(tmp_path / "b.png") == "png"
    assert sniff_image_format(tmp_path / "c.png") == "tiff"
    assert sniff_image_format(tmp_path / "d.png") is None
    with pytest.raises(SlideError, match="d.png"):
        read_image(tmp_path / "d.png")
    level = read_image(tmp_path / "a.png")[0]
    assert level.shape == rgb.shape and np.abs(level.astype(int) - rgb).mean() < 4


def test_normalise_rgba_channel_first_grayscale(rgb):
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    np.testing.assert_array_equal(normalise_rgb(rgba), rgb)
    np.testing.assert_array_equal(normalise_rgb(np.moveaxis(rgb, -1, 0)), rgb)
    gray = rgb[..., 0]
    assert normalise_rgb(gray).shape == gray.shape
    assert normalise_rgb(gray[..., None]).shape == gray.shape


def test_rgba_png_and_channel_first_tiff(tmp_path, rgb):
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png")[0], rgb)
    tifffile.imwrite(tmp_path / "cf.png", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "cf.png")[0]), rgb)


def test_tiff_pyramid_opens_lazily(tmp_path, rgb):
    path = tmp_path / "pyr.png"
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, tile=(128, 128), subifds=1, photometric="rgb")
        tif.write(rgb[::2, ::2], tile=(128, 128), subfiletype=1, photometric="rgb")
    levels = read_image(path)
    assert len(levels) == 2 and not isinstance(levels[0], np.ndarray)  # zarr arrays, read on demand
    np.testing.assert_array_equal(levels[0][10:20, 30:40], rgb[10:20, 30:40])
    assert image_shape(path) == rgb.shape[:2]


@pytest.mark.parametrize("backend", ["vips", "pil"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_large_png_jpeg_become_cached_pyramid(tmp_path, monkeypatch, backend, fmt):
    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)
    monkeypatch.setattr(images, "PYRAMID_TILE", 64)
    if backend == "pil":
        def no_vips(*args):
            raise ImportError("no libvips in this test")

        monkeypatch.setattr(images, "_pyramid_with_vips", no_vips)
    else:
        pytest.importorskip("pyvips")
        try:
            images._vips()
        except ImportError:
            pytest.skip("libvips not available")
    src = he_like(300, 420)
    path = tmp_path / "big.png"
    Image.fromarray(src).save(path, format=fmt, quality=95)
    seen = []
    levels = read_image(path, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert images.pyramid_is_valid(path)
    assert len(levels) >= 3
    assert levels[0].shape == src.shape
    assert np.abs(np.asarray(levels[0][:]).astype(int) - src).mean() < 4  # JPEG-compressed tiles
    half = np.asarray(levels[1][:]).astype(int)
    assert abs(half.shape[0] - 150) <= 1 and abs(half.shape[1] - 210) <= 1
    assert np.abs(half - src[: 2 * half.shape[0]:2, : 2 * half.shape[1]:2]).mean() < 8
    # Second open: no rebuild.
    monkeypatch.setattr(images, "_pyramid_with_vips", lambda *a: pytest.fail("rebuilt"))
    monkeypatch.setattr(images, "_pyramid_with_pil", lambda *a: pytest.fail("rebuilt"))
    assert len(read_image(path)) == len(levels)


def test_pyramid_rebuilt_when_source_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)
    path = tmp_path / "big.png"
    Image.fromarray(he_like()).save(path)
    read_image(path)
    assert images.pyramid_is_valid(path)
    Image.fromarray(255 - he_like()).save(path)
    assert not images.pyramid_is_valid(path)
    level = np.asarray(read_image(path)[0][:])
    assert np.abs(level.astype(int) - (255 - he_like())).mean() < 4


def test_pyramid_build_cancel(tmp_path, monkeypatch):
    from napari_stimage.core.progress import Cancelled

    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 10_000)
    monkeypatch.setattr(images, "_pyramid_with_vips", lambda *a: (_ for _ in ()).throw(ImportError()))
    monkeypatch.setattr(images, "PYRAMID_TILE", 32)
    path = tmp_path / "big.png"
    Image.fromarray(he_like()).save(path)
    with pytest.raises(Cancelled):
        read_image(path, cancel=lambda: True)
    assert not images.pyramid_is_valid(path)
    assert not list(images.pyramid_cache_path(path).parent.glob("*.tif"))
