from pathlib import Path

import pytest

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, data and config folders: no test sees another's files,
    and none touches the user's own."""
    for env in ("NAPARI_STIMAGE_CACHE", "NAPARI_STIMAGE_DATA", "NAPARI_STIMAGE_CONFIG"):
        monkeypatch.setenv(env, str(tmp_path_factory.mktemp(env.rsplit("_", 1)[-1].lower())))


@pytest.fixture
def slide_paths(tmp_path):
    """A synthetic slide in the real dataset layout, carrying the quirks of formats.md."""
    from napari_stimage.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path / "STimage-1K4M")


@pytest.fixture
def slide(slide_paths):
    from napari_stimage import load_slide

    return load_slide(slide_paths.coord)


@pytest.fixture
def real_data():
    """The real files in ../shared/data/real; tests using them skip when it is absent."""
    if not SHARED_REAL.is_dir():
        pytest.skip("../shared/data/real is not available")
    return SHARED_REAL


@pytest.fixture
def hd_paths(tmp_path, monkeypatch):
    """A VisiumHD-like slide on disk: ~3,700 bins on a square lattice, dense for the test."""
    from napari_stimage.curation import bins
    from napari_stimage.synthetic import write_synthetic_slide

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    return write_synthetic_slide(tmp_path / "STimage-1K4M", name="Mouse_Brain_Synthetic_VisiumHD", tech="VisiumHD", pitch=16.0,
                                 n_genes=20, layout="square")


@pytest.fixture
def slide_in_viewer(make_napari_viewer, slide):
    """A viewer holding the sample slide (image and spots): (viewer, spots layer)."""
    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = make_napari_viewer()
    return viewer, add_slide_to_viewer(viewer, slide)[-1]


@pytest.fixture
def slide_in_shown_viewer(make_napari_viewer, slide):
    """The same in a shown viewer, for screenshots and canvas input: (viewer, spots layer)."""
    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = make_napari_viewer(show=True)
    return viewer, add_slide_to_viewer(viewer, slide)[-1]
