import shutil

import pytest

from napari_stimage.io.stimage.layout import find_slides, resolve_slide

WEIRD_NAMES = [
    "Mouse_Brain+Kidney_10X_02212023_Visium",
    "Human_Heart_Asp_12122019_ST_ST_Sample_4.5-5PCW_1",
    "Mouse_Brain_10X_03292024_VIsiumHD",
]


def _touch_slide(root, tech, name, anno=True):
    for sub, fname in (("coord", f"{name}_coord.csv"), ("gene_exp", f"{name}_count.csv"), ("image", f"{name}.png")):
        (root / tech / sub).mkdir(parents=True, exist_ok=True)
        (root / tech / sub / fname).write_text(",yaxis,xaxis,r\n")
    if anno:
        (root / "annotation").mkdir(exist_ok=True)
        (root / "annotation" / f"{name}_anno.csv").write_text(",V2\n")


@pytest.mark.parametrize("name", WEIRD_NAMES)
def test_every_file_of_a_slide_resolves_to_the_same_slide(tmp_path, name):
    _touch_slide(tmp_path, "Visium", name)
    files = [
        tmp_path / "Visium" / "image" / f"{name}.png",
        tmp_path / "Visium" / "coord" / f"{name}_coord.csv",
        tmp_path / "Visium" / "gene_exp" / f"{name}_count.csv",
        tmp_path / "annotation" / f"{name}_anno.csv",
    ]
    resolved = {resolve_slide(f) for f in files}
    assert len(resolved) == 1
    slide = resolved.pop()
    assert slide.name == name  # never split on '_' or '.'
    assert slide.tech == "Visium"
    assert slide.root == tmp_path
    assert slide.annotation == files[3]


def test_annotation_finds_its_technology_folder(tmp_path):
    _touch_slide(tmp_path, "ST", "A_slide")
    slide = resolve_slide(tmp_path / "annotation" / "A_slide_anno.csv")
    assert slide.tech == "ST" and slide.count.name == "A_slide_count.csv"


def test_missing_optional_files_are_none(tmp_path):
    _touch_slide(tmp_path, "Visium", "S1", anno=False)
    (tmp_path / "Visium" / "gene_exp" / "S1_count.csv").unlink()
    slide = resolve_slide(tmp_path / "Visium" / "image" / "S1.png")
    assert slide.count is None and slide.annotation is None
    assert slide.default_annotation_path == tmp_path / "annotation" / "S1_anno.csv"


@pytest.mark.parametrize("fname", ["photo.png", "table.csv", "x_count.csv", "x_anno.csv", "x.png"])
def test_plain_files_outside_the_layout_are_not_claimed(tmp_path, fname):
    (tmp_path / fname).write_text("a,b\n1,2\n")
    assert resolve_slide(tmp_path / fname) is None


def test_image_folder_png_without_coord_is_not_claimed(tmp_path):
    (tmp_path / "Visium" / "image").mkdir(parents=True)
    (tmp_path / "Visium" / "image" / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert resolve_slide(tmp_path / "Visium" / "image" / "holiday.png") is None


def test_flat_folder_needs_the_real_coord_header(tmp_path):
    (tmp_path / "S_coord.csv").write_text(",yaxis,xaxis,r\nS_1x1,1,2,3\n")
    (tmp_path / "T_coord.csv").write_text("a,b,c\n")
    assert resolve_slide(tmp_path / "S_coord.csv").name == "S"
    assert resolve_slide(tmp_path / "T_coord.csv") is None


def test_resolve_never_raises(tmp_path):
    assert resolve_slide(tmp_path / "does_not_exist_coord.csv") is None
    assert resolve_slide(tmp_path) is None
    assert resolve_slide("") is None


def test_find_slides_over_root_and_technology_folder(tmp_path):
    _touch_slide(tmp_path, "Visium", "B")
    _touch_slide(tmp_path, "ST", "A")
    _touch_slide(tmp_path, "VisiumHD", "C", anno=False)
    assert [s.name for s in find_slides(tmp_path)] == ["A", "B", "C"]
    assert [s.name for s in find_slides(tmp_path / "ST")] == ["A"]


def test_real_example_coord_file_is_claimed_flat(tmp_path, real_data):
    src = real_data / "Human_Breast_Andersson_10142021_ST_A1_coord.csv"
    shutil.copy(src, tmp_path / src.name)  # into tmp, not the repo
    slide = resolve_slide(tmp_path / src.name)
    assert slide.name == "Human_Breast_Andersson_10142021_ST_A1"
    assert slide.count is None
