"""The one error type the core raises for bad input: it always names the file."""

from __future__ import annotations

from pathlib import Path


class SlideError(ValueError):
    """A dataset file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)
