"""Where napari-stimage keeps derived files (expression caches, image pyramids, the sample).

Set `NAPARI_STIMAGE_CACHE` to move it; the default is the user's cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NAPARI_STIMAGE_CACHE"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        path = Path(configured).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("napari-stimage"))
    path.mkdir(parents=True, exist_ok=True)
    return path
