"""Color spots' display controls: which slide, spot style (filled / outline) and opacity."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from superqt import QLabeledDoubleSlider

from ...viewer.bins import bin_grid_of
from ...viewer.layer_colors import SPOT_STYLES


class DisplayPanel(QWidget):
    """The slide's name and one row of looks; `host` applies them to its layer."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slide_label = QLabel("Select a slide's spots layer")
        self.slide_label.setWordWrap(True)
        layout.addWidget(self.slide_label)
        looks = QHBoxLayout()  # one row: the dock stays short enough for two docks on a 1080-pixel screen
        self.style_combo = QComboBox()
        self.style_combo.addItems(SPOT_STYLES)
        self.style_combo.setToolTip("outline: coloured rings, so the tissue shows inside each spot")
        self.style_combo.currentTextChanged.connect(host.set_spot_style)
        looks.addWidget(QLabel("Spots"))
        looks.addWidget(self.style_combo)
        self.opacity_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0.0, 1.0)
        self.opacity_slider.setValue(0.9)
        self.opacity_slider.setToolTip("Opacity of the spots, or of the bins' gene or label layer on show: lower it to see the tissue")
        self.opacity_slider.valueChanged.connect(host.set_opacity)
        looks.addWidget(QLabel("Opacity"))
        looks.addWidget(self.opacity_slider, 1)
        layout.addLayout(looks)

    def show_layer(self, layer, spot_style: str | None = None) -> None:
        """The followed layer's slide and style (None: no layer)."""
        if layer is None:
            self.slide_label.setText("Select a slide's spots layer")
            return
        self.style_combo.setCurrentText(spot_style)
        self.style_combo.setEnabled(bin_grid_of(layer) is None)  # bins are the raster's squares: filled only

    def show_opacity(self, layer) -> None:
        """The opacity of `layer`, the one the slider acts on (`coloring.shown_layer()`)."""
        self.opacity_slider.setValue(float(layer.opacity))
