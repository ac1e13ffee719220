"""How long steps report progress and learn they should stop (one definition for the package)."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]  # (done, total), in any unit (bytes, tiles, ...)
CancelCallback = Callable[[], bool]  # polled between blocks; True stops the step


class Cancelled(Exception):
    """Raised inside a long step when the caller's `cancel()` returned True."""


def progress_share(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """Report a step's progress as the [start, end] share of one overall 0..1000 bar."""
    if progress is None:
        return None
    return lambda done, total: progress(int(1000 * (start + (end - start) * done / max(total, 1))), 1000)
