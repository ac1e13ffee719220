"""The note a slide opens with: one warning toast listing what did not line up in its files."""

from __future__ import annotations

from ..core.slide import Slide


def show_opening_report(slide: Slide) -> None:
    """Show `slide.report` as a napari warning (its first line is the toast); nothing when all is well."""
    if slide.report:
        from napari.utils import notifications

        notifications.show_warning(slide.report.summary(slide.name))
