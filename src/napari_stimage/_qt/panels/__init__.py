"""The panels the dock widgets are built from, one class each; a panel keeps its `host` widget."""
