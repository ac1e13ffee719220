"""The one way a file path becomes a short, stable key (cache folders, recovery files)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def path_key(path: str | Path) -> str:
    """SHA-1 hex digest of the resolved path: the same file gets the same key from any working
    directory. The cache formats name their entries by it, so it must never change."""
    return hashlib.sha1(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()
