"""Synthetic data in the real STimage-1K4M shapes, for the benchmarks (not shipped, not tested in CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def count_table_lines(n_spots: int, n_genes: int, zero_fraction: float = 0.9, seed: int = 0, first_row: int = 0):
    """Yield the text lines of a dense float-count CSV (header first), ~`zero_fraction` zeros."""
    rng = np.random.default_rng(seed)
    cells = np.array(["0.0"] + [f"{v}.0" for v in range(1, 1000)], dtype=object)
    if first_row == 0:
        yield "," + ",".join(f"GENE{j}" for j in range(n_genes)) + "\n"
    for i in range(first_row, first_row + n_spots):
        nonzero = rng.random(n_genes) > zero_fraction
        counts = np.zeros(n_genes, dtype=np.int64)
        counts[nonzero] = np.minimum(rng.geometric(0.3, nonzero.sum()), 999)
        yield f"SPOT_{i:07d}-1," + ",".join(cells[counts]) + "\n"


def write_count_csv(path: Path, n_spots: int, n_genes: int, zero_fraction: float = 0.9, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for line in count_table_lines(n_spots, n_genes, zero_fraction, seed):
            fh.write(line)
    return path
