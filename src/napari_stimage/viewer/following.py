"""Which slide layer a dock widget works on: one rule for every widget, proxies or not.

napari hands a plugin's dock widget a `PublicOnlyProxy` of the viewer. Every layer read through
it (`viewer.layers[i]`, `selection.active`) comes back as a new wrapper, so `a is b` between two
reads of the same layer is False. Widgets therefore keep and compare the layer itself (`unwrap`,
through the proxy's public `__wrapped__`), never a wrapper.

Layers the plugin adds for its own drawing (the selection stroke) are marked `HELPER_KEY` in
their metadata: adding, removing or activating them never changes the followed layer, and a
widget changing layers itself does so inside `LayerFollower.quiet()`, so its own changes never
come back to it as if the user had chosen another layer.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

HELPER_KEY = "stimage_helper"


def unwrap(obj):
    """The napari object behind a `PublicOnlyProxy`; the object itself when it is not wrapped."""
    return getattr(obj, "__wrapped__", obj)


def is_helper_layer(layer) -> bool:
    """A layer the plugin made for its own drawing, not a layer of a slide."""
    return bool((getattr(layer, "metadata", None) or {}).get(HELPER_KEY))


def placed_like(layer) -> dict:
    """Layer keyword arguments that put a helper layer's data where `layer`'s data is (scale,
    translate, rotation, shear, affine, units): a shape drawn in `layer`'s data coordinates
    lines up with it, a tilted bin raster included."""
    return {
        "scale": layer.scale, "translate": layer.translate, "rotate": layer.rotate, "shear": layer.shear,
        "affine": layer.affine.affine_matrix, "units": layer.units,
    }


def raise_to_top(viewer, layer) -> None:
    """Put a helper layer above every other (a layer added since, such as a gene layer, would
    hide it); unfollowed changes are the caller's business (`LayerFollower.quiet`)."""
    layer = unwrap(layer)
    layers = viewer.layers
    index = next((i for i, other in enumerate(layers) if unwrap(other) is layer), None)
    if index is not None and index != len(layers) - 1:
        layers.move(index, len(layers))


def contains_layer(layers, layer) -> bool:
    """`layer` is one of `layers`, by identity of the unwrapped objects."""
    layer = unwrap(layer)
    return layer is not None and any(unwrap(other) is layer for other in layers)


class LayerFollower:
    """Follows the layer selected in the layer list among the layers `accepts` takes.

    `on_follow(layer)` is called with the unwrapped layer (or None) whenever the followed layer
    changes: the user selected another accepted layer, or the followed one was removed (then the
    active accepted layer, else the last one added, else None is followed). `on_layers_changed()`
    is called after slide layers were added or removed. Selecting a layer that is not accepted
    (the H&E image) keeps the choice.
    """

    def __init__(self, viewer, accepts: Callable[[object], bool], on_follow: Callable[[object], None],
                 on_layers_changed: Callable[[], None] | None = None):
        self.viewer = viewer
        self.layer = None
        self._accepts = accepts
        self._on_follow = on_follow
        self._on_layers_changed = on_layers_changed
        self._quiet = 0
        layers = viewer.layers
        layers.events.inserted.connect(self._on_inserted_or_removed)
        layers.events.removed.connect(self._on_inserted_or_removed)
        layers.selection.events.active.connect(self._on_active)

    def accepts(self, layer) -> bool:
        return layer is not None and not is_helper_layer(layer) and self._accepts(layer)

    def candidates(self) -> list:
        """The accepted layers, unwrapped, in layer-list order."""
        return [unwrap(layer) for layer in self.viewer.layers if self.accepts(layer)]

    def active(self):
        """The layer selected in the layer list, unwrapped (None when none is)."""
        return unwrap(self.viewer.layers.selection.active)

    def follow(self, layer) -> None:
        """Follow `layer` (the chooser's pick, or a rule below); no call when it is already followed."""
        layer = unwrap(layer)
        if layer is self.layer:
            return
        self.layer = layer
        self._on_follow(layer)

    def refresh(self) -> None:
        """Keep the followed layer while it is in the viewer; else the active one, else the last one."""
        candidates = self.candidates()
        if not contains_layer(candidates, self.layer):
            active = self.active()
            self.follow(active if contains_layer(candidates, active) else (candidates[-1] if candidates else None))
        if self._on_layers_changed is not None:
            self._on_layers_changed()

    @contextmanager
    def quiet(self):
        """The widget changes layers itself (adds its stroke layer, re-selects the followed
        layer): those changes are not the user's choice and are not followed."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _on_active(self, event=None) -> None:
        if self._quiet:
            return
        active = self.active()
        if self.accepts(active):
            self.follow(active)

    def _on_inserted_or_removed(self, event) -> None:
        if self._quiet or is_helper_layer(getattr(event, "value", None)):
            return
        self.refresh()
