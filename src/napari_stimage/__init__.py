"""napari-stimage: open, color and curate STimage-1K4M spatial-transcriptomics slides."""

from importlib.metadata import PackageNotFoundError, version

from .core.errors import SlideError
from .core.slide import Slide
from .io.registry import load_slide
from .io.stimage.layout import SlidePaths, find_slides, resolve_slide
from .viewer.layers import add_gene_features
from .viewer.metadata import slide_of
from .viewer.predictions import add_predictions

try:
    __version__ = version("napari-stimage")  # pyproject.toml holds the one version number
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "unknown"
__all__ = [
    "Slide",
    "SlideError",
    "SlidePaths",
    "add_gene_features",
    "add_predictions",
    "find_slides",
    "load_slide",
    "resolve_slide",
    "slide_of",
]
