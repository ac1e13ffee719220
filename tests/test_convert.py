"""`napari-stimage convert ROOT`: builds every slide's caches, resumes, reports failures."""

import pytest

from napari_stimage.cli import main
from napari_stimage.convert import convert_tree, slide_is_converted
from napari_stimage.io import images
from napari_stimage.io.cache import is_cache_valid
from napari_stimage.io.registry import cache_plans
from napari_stimage.io.stimage.layout import find_slides
from napari_stimage.synthetic import write_synthetic_slide


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "STimage-1K4M"
    paths = write_synthetic_slide(root)
    # A second slide: same files under another name, with a broken count file.
    for kind, _folder, suffix in (("coord", "coord", "_coord.csv"), ("count", "gene_exp", "_count.csv"),
                                 ("image", "image", ".png")):
        src = getattr(paths, kind)
        dst = src.parent / f"Broken_Slide_Visium{suffix}"
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) - 30] if kind == "count" else data)
    return root


def test_convert_builds_skips_and_reports(tree, monkeypatch):
    monkeypatch.setattr(images, "PYRAMID_MIN_PIXELS", 1000)  # the sample image counts as large
    slides = find_slides(tree)
    assert len(slides) == 2
    results = convert_tree(tree, show_progress=False)
    by_name = {r.name: r for r in results}
    good = by_name["Human_Breast_Synthetic_11232026_Visium"]
    assert good.error is None and good.expression == "built" and good.image == "built"
    assert "line" in by_name["Broken_Slide_Visium"].error
    good_plan = next(plan for plan in cache_plans(tree) if plan.name == good.name)
    assert slide_is_converted(good_plan) and is_cache_valid(good_plan.count)
    # Resume: only the failed slide is tried again.
    again = convert_tree(tree, show_progress=False)
    assert [r.name for r in again] == ["Broken_Slide_Visium"]


def test_cli_convert_exit_code_and_cache_option(tree, tmp_path, capsys):
    code = main(["convert", str(tree), "--cache", str(tmp_path / "c")])
    assert code == 1  # the broken slide
    err = capsys.readouterr().err
    assert "Broken_Slide_Visium" in err and "1 failed" in err
    assert any((tmp_path / "c").rglob("meta.json"))


def test_convert_on_local_dask_cluster(tree):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        results = convert_tree(tree, scheduler=client, show_progress=False)
    assert sorted(r.name for r in results) == ["Broken_Slide_Visium", "Human_Breast_Synthetic_11232026_Visium"]
    assert sum(r.error is None for r in results) == 1
    good = next(s for s in find_slides(tree) if s.name.startswith("Human"))
    assert is_cache_valid(good.count)
