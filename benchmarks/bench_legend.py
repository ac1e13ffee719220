"""Label edits on VisiumHD bins (issue 14): what "Color spots" does after each edit, before and after
the label editor kept per-label counts, measured in the same run.

    cd /work/main && .venv/bin/python benchmarks/bench_legend.py [--bins 600000] [--labels 8] [--edit 500] [--repeats 15]

Builds a `LabelEditor` over --bins spot ids (no file, no recovery writes) holding --labels labels
plus unlabelled bins, then --repeats times: one `editor.assign` of --edit neighbouring bins (a
brush stroke), followed by what the colour widget does to notice the edit and rebuild the legend:

- before (the widget until this change, `BinsColoring.edited_labels` / `legend_entries`): the
  shown labels of every bin (`display_labels(editor.labels)`), `np.array_equal` against the
  previous ones, and the legend from the labels of every bin, with `legend_entries` as it was
  then (copied below as `_legend_entries_before`);
- values now: the same with today's `legend_entries(values)` (a `Counter` of the shown labels);
- after: the editor's `revision` against the previous one, and `legend_entries_from_counts`
  over `editor.label_counts()`.

Prints the medians (ms) and the ratios; checks that all three legends are equal. Not run in CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout


def _legend_entries_before(values, palette, order=None):
    """`coloring.legend_entries` before it was built from counts (git 4e05174), the baseline."""
    from napari_stimage import coloring as col
    from napari_stimage.core.labels import UNLABELLED, is_unlabelled, label_categories

    shown = col.display_labels(values)
    names, counts = np.unique(shown.astype(str), return_counts=True) if len(shown) else ([], [])
    count_of = dict(zip(names, (int(c) for c in counts), strict=True))
    present = label_categories(shown[shown != UNLABELLED])
    if order is not None:
        listed = [str(label) for label in dict.fromkeys(order) if not is_unlabelled(label) and label != UNLABELLED]
        known = set(listed)
        present = listed + [label for label in present if label not in known]
    if count_of.get(UNLABELLED):
        present.append(UNLABELLED)
    colors = palette.colors(present)
    return [col.LegendEntry(label, colors[label], count_of.get(label, 0), label == UNLABELLED) for label in present]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bins", type=int, default=600_000)
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--edit", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    import tempfile

    from napari_stimage import coloring as col
    from napari_stimage.curation.editor import LabelEditor

    rng = np.random.default_rng(0)
    names = [f"region {k}" for k in range(args.labels)]
    t0 = time.perf_counter()
    editor = LabelEditor([f"s_{k:07d}-1" for k in range(args.bins)], autosave=False)
    # tissue in bands of labels, a tenth of the bins unlabelled
    band = (np.arange(args.bins) * args.labels) // args.bins
    for k, name in enumerate(names):
        editor.assign(np.flatnonzero((band == k) & (rng.random(args.bins) > 0.1)), name)
    build = time.perf_counter() - t0
    palette = col.LabelPalette(Path(tempfile.mkdtemp()) / "label_colors.json")
    order = editor.categories()

    snapshot = col.display_labels(editor.labels)  # what the widget kept before
    revision = editor.revision
    edit_ms, before_ms, values_ms, after_ms = [], [], [], []
    for step in range(args.repeats):
        start = int(rng.integers(0, args.bins - args.edit))
        label = names[step % len(names)] if step % 4 else None  # every fourth stroke erases

        t = time.perf_counter()
        changed = editor.assign(np.arange(start, start + args.edit), label)
        edit_ms.append(1000 * (time.perf_counter() - t))

        t = time.perf_counter()  # before: the shown labels of every bin, compared, then the legend from them
        shown = col.display_labels(editor.labels)
        edited = not np.array_equal(snapshot, shown)
        before = _legend_entries_before(editor.labels, palette, order)
        before_ms.append(1000 * (time.perf_counter() - t))
        snapshot = shown

        t = time.perf_counter()  # the same with today's legend_entries(values)
        shown = col.display_labels(editor.labels)
        np.array_equal(snapshot, shown)
        from_values = col.legend_entries(editor.labels, palette, order)
        values_ms.append(1000 * (time.perf_counter() - t))

        t = time.perf_counter()  # after: the editor's revision and counts
        edited_now = not np.array_equal(revision, editor.revision)
        after = col.legend_entries_from_counts(editor.label_counts(), palette, order)
        after_ms.append(1000 * (time.perf_counter() - t))
        revision = editor.revision

        assert edited == edited_now == (changed > 0), (edited, edited_now, changed)
        assert before == from_values == after, "the legends differ"

    edit, old, now_values, new = (float(np.median(x)) for x in (edit_ms, before_ms, values_ms, after_ms))
    print(f"bench_legend: {args.bins:,} bins, {len(order)} labels + unlabelled, edits of {args.edit} bins, "
          f"{args.repeats} repeats (editor built in {build:.1f} s)")
    print(f"  edit (editor.assign, counts kept)        median {edit:8.2f} ms")
    print(f"  widget after an edit, before (baseline)  median {old:8.2f} ms")
    print(f"  widget after an edit, values path now    median {now_values:8.2f} ms")
    print(f"  widget after an edit, after (counts)     median {new:8.2f} ms")
    print(f"  ratio before / after: {old / new:,.0f}x   (edit + widget: {edit + old:.1f} ms -> {edit + new:.1f} ms, "
          f"{(edit + old) / (edit + new):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
