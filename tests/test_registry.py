"""Readers register in one place: a new format reaches load_slide, the npe2 reader and the editor."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import napari_stimage
from napari_stimage._reader import get_reader
from napari_stimage.core.errors import SlideError
from napari_stimage.core.slide import JoinReport, Slide
from napari_stimage.core.source import SaveTarget
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.io import registry


@dataclass(frozen=True)
class SpotsOnlySource:
    location: Path
    technology: str | None = None

    @property
    def name(self) -> str:
        return self.location.stem

    @property
    def save_target(self) -> SaveTarget:
        return SaveTarget(self.location.with_suffix(".labels.csv"))

    def load_image(self, progress=None, cancel=None, notes=None):
        return None


def _read_spots(path: Path, progress=None, decode_image=False, cancel=None) -> Slide:
    spots = pd.read_csv(path, dtype={"spot_id": str})
    return Slide(source=SpotsOnlySource(path), spots=spots, expression=None, annotation=None,
                 report=JoinReport(), expression_rows=np.full(len(spots), -1))


@pytest.fixture
def spots_reader(monkeypatch):
    reader = registry.SlideReader(
        name="spots-csv", kind="a spots table", missing="expected a .spots file", expected="*.spots",
        resolve=lambda p: Path(p) if str(p).endswith(".spots") and Path(p).is_file() else None,
        read=_read_spots, find=lambda root: sorted(Path(root).glob("*.spots")),
    )
    monkeypatch.setattr(registry, "_readers", dict(registry._readers))  # registered for this test only
    registry.register(reader)
    return reader


def test_a_registered_reader_opens_its_files_everywhere(tmp_path, spots_reader):
    path = tmp_path / "tiny.spots"
    path.write_text("spot_id,y,x,r\na,10,20,5\nb,30,40,5\n")
    slide = napari_stimage.load_slide(path)
    assert slide.name == "tiny" and slide.n_spots == 2 and slide.paths is None
    np.testing.assert_array_equal(slide.positions, [[10, 20], [30, 40]])
    layers = get_reader(str(path))(str(path))
    assert [kind for *_, kind in layers] == ["points"] and layers[0][1]["name"] == "tiny spots"
    assert LabelEditor.from_slide(slide, autosave=False).path == tmp_path / "tiny.labels.csv"
    assert registry.find_slides(tmp_path) == [path]


def test_no_reader_owns_a_path_error_names_every_format(tmp_path, spots_reader):
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    assert get_reader(str(stray)) is None
    with pytest.raises(SlideError, match=r"notes\.txt: not a file of an STimage-1K4M slide .* or not a file of a spots table"):
        napari_stimage.load_slide(stray)


def test_convert_prepares_what_each_reader_plans_and_nothing_for_others(tmp_path, spots_reader, monkeypatch):
    from napari_stimage.convert import convert_tree

    (tmp_path / "tiny.spots").write_text("spot_id,y,x,r\na,10,20,5\n")
    assert registry.cache_plans(tmp_path) == []  # a reader without a cache_plan hook: nothing to build
    counts = tmp_path / "tiny_count.csv"
    counts.write_text(",G1,G2\na,1,0\n")
    planned = registry.SlideReader(**{**vars(spots_reader), "name": "spots-with-counts",
                                      "cache_plan": lambda p: registry.CachePlan(p.stem, count=counts)})
    registry.register(planned)
    assert registry.cache_plans(tmp_path) == [registry.CachePlan("tiny", count=counts)]
    [result] = convert_tree(tmp_path, show_progress=False)
    assert (result.name, result.expression, result.error) == ("tiny", "built", None)
