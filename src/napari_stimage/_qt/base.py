"""The base of every napari-stimage dock widget: it follows the selected slide layer.

A subclass declares which layer kinds it works on (`layer_kinds`, kinds of
`viewer.targets.layer_kind`: "spots", "bins"), as napari-matplotlib's base widget declares the
layer types it accepts, builds its panels into `self.content` and implements `follow_layer`.
The follower (`viewer.following.LayerFollower`) calls it with the unwrapped layer, or None when
no accepted layer is left. The content scrolls when the dock is short.
"""

from __future__ import annotations

from qtpy.QtWidgets import QFrame, QVBoxLayout, QWidget

from ..viewer.following import LayerFollower
from ..viewer.targets import layer_kind
from .parts import ScrollArea


class SlideLayerWidget(QWidget):
    layer_kinds: tuple[str, ...] = ("spots",)
    min_visible_height = 560  # px of the dock kept visible when the window is short; the rest scrolls

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.layer = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = ScrollArea(self.min_visible_height)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.content = QWidget()
        self.scroll_area.setWidget(self.content)
        outer.addWidget(self.scroll_area)
        self.follower: LayerFollower | None = None

    def accepts_layer(self, layer) -> bool:
        return layer_kind(layer) in self.layer_kinds

    def start_following(self) -> None:
        """Call at the end of the subclass's __init__, once its panels exist."""
        self.follower = LayerFollower(self.viewer, self.accepts_layer, self.follow_layer, self.layers_changed)
        self.follower.refresh()

    def follow_layer(self, layer) -> None:
        """Work on `layer` (unwrapped), or on nothing when it is None."""
        raise NotImplementedError

    def layers_changed(self) -> None:
        """Slide layers were added or removed (e.g. to refresh a layer chooser)."""
