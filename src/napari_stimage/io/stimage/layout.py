"""Where a slide's files live in the STimage-1K4M layout.

    <root>/annotation/{slide}_anno.csv
    <root>/{ST,Visium,VisiumHD}/coord/{slide}_coord.csv
    <root>/{ST,Visium,VisiumHD}/gene_exp/{slide}_count.csv
    <root>/{ST,Visium,VisiumHD}/image/{slide}.png

Slide names contain `_`, `.`, `+` and typos, so a name is only ever the file name
with its known suffix stripped. A flat folder holding `{slide}_coord.csv` next to its
siblings (as in the dataset's `example/`) is accepted too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TECHNOLOGIES = ("ST", "Visium", "VisiumHD")
COORD_SUFFIX = "_coord.csv"
COUNT_SUFFIX = "_count.csv"
ANNO_SUFFIX = "_anno.csv"
IMAGE_SUFFIX = ".png"
COORD_HEADER = ("", "yaxis", "xaxis", "r")

# file kind -> (folder inside a technology folder, suffix)
_KIND_FOLDERS = {
    "coord": ("coord", COORD_SUFFIX),
    "count": ("gene_exp", COUNT_SUFFIX),
    "image": ("image", IMAGE_SUFFIX),
}


@dataclass(frozen=True)
class SlidePaths:
    """The files of one slide. Missing files are None; `coord` always exists."""

    name: str
    coord: Path
    count: Path | None = None
    image: Path | None = None
    annotation: Path | None = None
    tech: str | None = None
    root: Path | None = None
    unusable: tuple[str, ...] = ()  # files in the way that are no files (folders, broken links)

    @property
    def default_annotation_path(self) -> Path:
        """Where a new annotation file for this slide belongs."""
        if self.annotation is not None:
            return self.annotation
        if self.root is not None:
            return self.root / "annotation" / f"{self.name}{ANNO_SUFFIX}"
        return self.coord.parent / f"{self.name}{ANNO_SUFFIX}"


def _strip(name: str, suffix: str) -> str | None:
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _unusable(*paths: Path) -> tuple[str, ...]:
    """Why each of `paths` that exists but is no readable file cannot be used (a folder, a broken
    symlink): the slide opens without it, and says so."""
    out = []
    for path in paths:
        if path.is_symlink() and not path.exists():
            out.append(f"{path} is a broken symlink (to {os.readlink(path)}); ignored")
        elif path.exists() and not path.is_file():
            out.append(f"{path} is a folder, not a file; ignored")
    return tuple(out)


def _looks_like_coord_file(path: Path) -> bool:
    """True when the first line is the dataset's coord header (`,yaxis,xaxis,r`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline(4096)
    except OSError:
        return False
    cells = tuple(c.strip().strip('"') for c in first.strip().split(","))
    return len(cells) >= 4 and cells[1:4] == COORD_HEADER[1:] and cells[0] in ("", "V1")


def _from_tech_folder(tech_dir: Path, name: str) -> SlidePaths | None:
    coord = _existing(tech_dir / "coord" / f"{name}{COORD_SUFFIX}")
    if coord is None:
        return None
    root = tech_dir.parent
    count = tech_dir / "gene_exp" / f"{name}{COUNT_SUFFIX}"
    image = tech_dir / "image" / f"{name}{IMAGE_SUFFIX}"
    annotation = root / "annotation" / f"{name}{ANNO_SUFFIX}"
    return SlidePaths(
        name=name,
        coord=coord,
        count=_existing(count),
        image=_existing(image),
        annotation=_existing(annotation),
        tech=tech_dir.name if tech_dir.name in TECHNOLOGIES else None,
        root=root,
        unusable=_unusable(count, image, annotation),
    )


def _from_flat_folder(folder: Path, name: str) -> SlidePaths | None:
    coord = _existing(folder / f"{name}{COORD_SUFFIX}")
    if coord is None or not _looks_like_coord_file(coord):
        return None
    siblings = [folder / f"{name}{suffix}" for suffix in (COUNT_SUFFIX, IMAGE_SUFFIX, ANNO_SUFFIX)]
    return SlidePaths(
        name=name,
        coord=coord,
        count=_existing(siblings[0]),
        image=_existing(siblings[1]),
        annotation=_existing(siblings[2]),
        unusable=_unusable(*siblings),
    )


def resolve_slide(path: str | Path) -> SlidePaths | None:
    """Return the slide that `path` belongs to, or None when it is not a dataset file.

    Never raises: it is used by the napari reader to decide whether it owns a path.
    """
    try:
        path = Path(path).expanduser()
        if not path.is_file():
            return None
        fname, folder = path.name, path.parent

        if folder.name == "annotation":
            name = _strip(fname, ANNO_SUFFIX)
            if name is None:
                return None
            root = folder.parent
            for tech in TECHNOLOGIES:
                slide = _from_tech_folder(root / tech, name)
                if slide is not None:
                    return slide
            return _from_flat_folder(folder, name)

        for folder_name, suffix in _KIND_FOLDERS.values():
            name = _strip(fname, suffix)
            if name is not None and folder.name == folder_name:
                slide = _from_tech_folder(folder.parent, name)
                if slide is not None:
                    return slide

        for suffix in (COORD_SUFFIX, COUNT_SUFFIX, ANNO_SUFFIX, IMAGE_SUFFIX):
            name = _strip(fname, suffix)
            if name is not None:
                return _from_flat_folder(folder, name)
        return None
    except (OSError, ValueError):
        return None


def find_slides(root: str | Path) -> list[SlidePaths]:
    """Every slide under a dataset root, a technology folder or a flat folder, sorted by name."""
    root = Path(root)
    tech_dirs = [root] if (root / "coord").is_dir() else [root / t for t in TECHNOLOGIES]
    slides = []
    for tech_dir in tech_dirs:
        coord_dir = tech_dir / "coord"
        if not coord_dir.is_dir():
            continue
        for coord in sorted(coord_dir.glob(f"*{COORD_SUFFIX}")):
            slide = _from_tech_folder(tech_dir, coord.name[: -len(COORD_SUFFIX)])
            if slide is not None:
                slides.append(slide)
    if not slides and root.is_dir():
        for coord in sorted(root.glob(f"*{COORD_SUFFIX}")):
            slide = _from_flat_folder(root, coord.name[: -len(COORD_SUFFIX)])
            if slide is not None:
                slides.append(slide)
    return sorted(slides, key=lambda s: s.name)
