"""The one error type the core raises for bad input: it always names the file."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SlideError(ValueError):
    """A dataset file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class StorageWarning(UserWarning):
    """Something could not be stored (a recovery file, ...); the data shown and saved is still right."""


@contextmanager
def reading(path: str | Path, what: str, reader=None) -> Iterator[None]:
    """Turn any parser error raised inside the block (csv's field-size limit, pandas, decoding,
    OS errors) into a `SlideError` naming the file, and the line when `reader` (a csv reader)
    knows it."""
    try:
        yield
    except SlideError:
        raise
    except (OSError, ValueError, OverflowError, csv.Error) as exc:
        where = f"line {reader.line_num}: " if getattr(reader, "line_num", 0) else ""
        raise SlideError(path, f"{where}cannot read the {what} ({exc})") from exc
