"""napari-stimage: open, color and curate STimage-1K4M spatial-transcriptomics slides."""

from .core.errors import SlideError
from .core.slide import Slide
from .io.registry import load_slide
from .io.stimage.layout import SlidePaths, find_slides, resolve_slide
from .viewer.layers import add_gene_features
from .viewer.metadata import slide_of

__version__ = "0.1.0"
__all__ = [
    "Slide",
    "SlideError",
    "SlidePaths",
    "add_gene_features",
    "find_slides",
    "load_slide",
    "resolve_slide",
    "slide_of",
]
