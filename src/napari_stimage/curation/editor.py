"""The label edit model of one slide: current labels, undo/redo, dirty flag, autosave, views.

Qt-free. Everything that changes labels goes through `LabelEditor.assign`:

    >>> editor = editor_for_layer(spots_layer)        # viewer.editors: one editor per layer, shared
    >>> editor.assign([0, 5, 17], "L3")                # spot indices = rows of the Points layer
    >>> editor.assign(np.arange(600_000), None)        # None clears (unlabelled)
    >>> editor.assign(mask, "TLS")                     # or a boolean mask with one entry per spot
    >>> editor.undo(); editor.redo()
    >>> editor.label_counts()                          # {"L3": 3, None: 599_997}, kept per edit
    >>> editor.revision                                # bumped by every change of a label
    >>> editor.save()                                  # annotation format, atomic, changed-on-disk check

Spot indices are positions in the slide's spot table (= the Points layer's rows, = the order
of `slide.spots`). A spot id that repeats in the coord file names one spot of the annotation,
so assigning one of its points assigns all of them.

Views are callables `view(indices)` called after each change with the changed spot indices
(None = everything may have changed). `viewer.editors.bind_points_layer(editor, layer)` makes a
Points layer a view: its `features["label"]` is updated in place and `layer.events.features()`
is emitted, which the label legend and label colouring listen to.

Each edit also writes a recovery file (in `data_dir()/recovery`, keyed by the annotation
path); `find_recovery` / `apply_recovery` offer it when the slide is opened again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import SlideError, StorageWarning
from ..core.labels import is_unlabelled, label_categories
from ..core.selection import unique_indices
from ..core.storage import atomic_write_bytes, atomic_write_text
from ..io.cache import annotation_user_file
from ..io.stimage.annotation import (
    AnnotationTable,
    Fingerprint,
    parse_label,
    reads_as_missing,
    write_annotation,
)

DEFAULT_MAX_UNDO = 500
RECOVERY_VERSION = 1

View = Callable[[np.ndarray | None], None]


def normalise_label(label, known_labels: Collection[str] | None = None) -> str | None:
    """None/NaN/"" clear; anything else must be text that reads back as that label.

    With `known_labels` (the labels the slide already has), a label that is not one of them is
    new: its surrounding whitespace is stripped ("  Benign " -> "Benign"). Known labels, and every
    label when `known_labels` is None, keep their exact text, so labels read from a file round-trip.
    """
    if is_unlabelled(label):
        return None
    if not isinstance(label, str):
        label = str(label)
    if known_labels is not None and label not in known_labels:
        label = label.strip()
    if reads_as_missing(label):
        raise ValueError(f"the label {label!r} would be read back as 'unlabelled'; choose another name")
    return label


def near_duplicate(label: str, known_labels: Iterable[str]) -> tuple[str, str] | None:
    """A known label that `label` equals except for case or inner spacing: (that label, "case" |
    "spacing" | "case and spacing"); None when `label` is itself known or nothing is that close."""
    known_labels = list(known_labels)
    if label in known_labels:
        return None

    def squeeze(text: str) -> str:
        return " ".join(text.split())

    for existing in known_labels:
        if existing.casefold() == label.casefold():
            return existing, "case"
        if squeeze(existing) == squeeze(label):
            return existing, "spacing"
        if squeeze(existing).casefold() == squeeze(label).casefold():
            return existing, "case and spacing"
    return None


@dataclass(eq=False)  # steps are compared by identity (the saved marker)
class _Step:
    indices: np.ndarray  # spots whose label changed
    before: np.ndarray  # object array, their labels before
    after: np.ndarray  # object array, their labels after
    description: str


@dataclass
class Recovery:
    """Unsaved edits found on disk from an earlier session."""

    path: Path
    annotation_path: str
    slide: str
    saved_at: float
    labels: dict[str, str | None]  # spot id -> label, only spots that differ from the file

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"{len(self.labels)} unsaved label change(s) of {self.slide} from {when}"


def recovery_path_for(annotation_path: str | Path) -> Path:
    return annotation_user_file("recovery", annotation_path)


def label_order_path_for(annotation_path: str | Path) -> Path:
    """Where the hotkey order of an annotation file's labels is kept between sessions."""
    return annotation_user_file("label_order", annotation_path)


def load_label_order(annotation_path: str | Path | None) -> list[str]:
    """The label order saved with the annotation file's last save ([] when none or unreadable)."""
    if annotation_path is None:
        return []
    try:
        loaded = json.loads(label_order_path_for(annotation_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # SlideError too: an unusable data folder only costs the order
        return []
    return [str(label) for label in loaded] if isinstance(loaded, list) else []


def label_order_of(annotation_path: str | Path | None, labels: Iterable) -> list[str]:
    """The labels of a file in the order its curation shows them (legend, drop-down, keys 1-9,
    and which label keeps its colour when two would share one): the order kept at the file's
    last save, then the other labels in natural order (`labels.label_categories`)."""
    in_file = label_categories(labels)
    present = set(in_file)
    kept = [label for label in dict.fromkeys(load_label_order(annotation_path)) if label in present]
    listed = set(kept)
    return kept + [label for label in in_file if label not in listed]


def save_label_order(annotation_path: str | Path, order: list[str]) -> None:
    """Keep `order` for the next time the annotation file is opened (best effort: a read-only
    data folder only costs the order, never the save)."""
    with contextlib.suppress(OSError, SlideError):
        atomic_write_text(label_order_path_for(annotation_path), json.dumps(order))


class LabelEditor:
    """Per-spot labels of one slide with undo/redo, dirty tracking, saving and autosave."""

    def __init__(
        self,
        spot_ids: Iterable[str],
        table: AnnotationTable | None = None,
        annotation_path: str | Path | None = None,
        slide_name: str = "",
        max_undo: int = DEFAULT_MAX_UNDO,
        autosave: bool = True,
    ):
        self.spot_ids = np.asarray(list(spot_ids), dtype=object)
        self.table = table if table is not None else AnnotationTable.new(annotation_path)
        self.path = Path(annotation_path) if annotation_path is not None else self.table.path
        self.fingerprint: Fingerprint | None = self.table.fingerprint
        self.slide_name = slide_name
        self.max_undo = max(int(max_undo), 1)
        self.autosave = autosave

        # no file to keep the rows of: the first save writes one row per spot, as the dataset does
        self.starts_new_file = not self.table.rows and self.table.fingerprint is None
        first = self.table.first_labels()
        self._original = np.array([first.get(s) for s in self.spot_ids], dtype=object)
        self._labels = self._original.copy()
        self._on_disk = self._original  # the labels the file holds since its last save: recovery's base
        # spots per label (None = unlabelled), kept by `_set_labels`: the legend reads it per edit
        self._counts: Counter = Counter(self._labels.tolist())
        self.revision = 0  # bumped by every change of a label (`_set_labels`)
        # hotkeys 1-9 must not change meaning, mid-session or across a save and reopen: the file's
        # labels in the order kept at its last save, the others in natural order, then each new
        # label appended when first assigned
        self._category_order: list[str] = label_order_of(self.path, self._original)
        self._known_labels: set[str] = set(self._category_order)
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self._saved_top: _Step | None = None  # the undo-stack top when last saved (None = as loaded)
        self._saved_reachable = True
        self._views: list[View] = []
        self._same_id = self._repeated_id_groups()
        self.recovery_off: str | None = None  # why recovery files cannot be written, once it failed
        # labels hidden in the legend (UNLABELLED for unlabelled spots): their spots are protected
        self.hidden_labels: frozenset[str] = frozenset()

    @classmethod
    def from_slide(cls, slide, **kwargs) -> LabelEditor:
        path = slide.source.save_target.path
        return cls(
            slide.spots["spot_id"].astype(str).tolist(),
            table=slide.annotation,
            annotation_path=path,
            slide_name=slide.name,
            **kwargs,
        )

    def _repeated_id_groups(self) -> dict[int, np.ndarray] | None:
        ids = self.spot_ids
        if len(set(ids.tolist())) == len(ids):
            return None
        groups: dict[str, list[int]] = {}
        for i, spot in enumerate(ids.tolist()):
            groups.setdefault(spot, []).append(i)
        out = {}
        for members in groups.values():
            if len(members) > 1:
                arr = np.asarray(members)
                for i in members:
                    out[i] = arr
        return out

    # -- state ---------------------------------------------------------------------------------
    @property
    def labels(self) -> np.ndarray:
        """Per spot the current label (None = unlabelled). A copy."""
        return self._labels.copy()

    def labels_for_layer(self) -> np.ndarray:
        """Per spot the label as the Points layer's features hold it (NaN = unlabelled)."""
        out = self._labels.copy()
        out[np.equal(out, None)] = np.nan
        return out

    def labels_at(self, indices) -> np.ndarray:
        """The labels of the spots at `indices` (None = unlabelled). A copy."""
        return self._labels[indices]

    def label_of(self, index: int) -> str | None:
        return self._labels[index]

    def label_counts(self) -> dict[str | None, int]:
        """Spots per label held by at least one spot (None = unlabelled), without a pass over the
        spots: kept up to date by every edit, undo, redo and recovery. A copy."""
        return {label: n for label, n in self._counts.items() if n > 0}

    def categories(self) -> list[str]:
        """The slide's labels in a session-stable order: the source of the legend's, the label
        drop-down's and hotkeys 1-9's order.

        First the labels present when the editor was made, in the order saved with the file's
        last save (`load_label_order`; labels it does not list in natural order,
        `labels.label_categories`), then labels in the order they were first assigned in this
        session. The order never shifts while the editor lives; a label that no spot holds
        anymore (cleared, undone) stays listed until the slide is opened again.
        """
        return list(self._category_order)

    def _remember_label(self, label: str | None) -> None:
        if label is not None and label not in self._known_labels:
            self._known_labels.add(label)
            self._category_order.append(label)

    def indices_with_label(self, label: str | None) -> np.ndarray:
        label = normalise_label(label)
        return np.flatnonzero(np.equal(self._labels, label) if label is not None else np.equal(self._labels, None))

    def set_hidden_labels(self, labels: Iterable[str]) -> None:
        """The labels hidden in the legend (`labels.UNLABELLED` for unlabelled spots).

        What is hidden is protected: selection tools, Invert and "select label" leave those
        spots out (`split_hidden`), so assigning never relabels a spot the curator cannot see.
        The colour widget sets this; the curation widget reads it, through the slide's editor.
        """
        self.hidden_labels = frozenset(str(label) for label in labels)

    def split_hidden(self, spot_indices) -> tuple[np.ndarray, int]:
        """The spots of `spot_indices` whose label is not hidden (sorted, unique), and how many
        were left out because it is."""
        idx = unique_indices(spot_indices)
        if not self.hidden_labels or idx.size == 0:
            return idx, 0
        from ..core.labels import visible_mask

        visible = visible_mask(self._labels[idx], self.hidden_labels)
        return idx[visible], int(idx.size - visible.sum())

    @property
    def dirty(self) -> bool:
        top = self._undo[-1] if self._undo else None
        return not (self._saved_reachable and top is self._saved_top)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def changes(self) -> dict[str, str | None]:
        """Spot id -> label for every spot whose label differs from the loaded file."""
        return self._changes_since(self._original)

    def _changes_since(self, base: np.ndarray) -> dict[str, str | None]:
        """Spot id -> label for every spot whose label differs from `base` (the file as loaded,
        or as last saved for the recovery file)."""
        differ = np.flatnonzero(self._labels != base)
        return {self.spot_ids[i]: self._labels[i] for i in differ}

    # -- views ---------------------------------------------------------------------------------
    def add_view(self, view: View) -> None:
        self._views.append(view)

    def remove_view(self, view: View) -> None:
        if view in self._views:
            self._views.remove(view)

    def _notify(self, indices: np.ndarray | None) -> None:
        for view in list(self._views):
            view(indices)

    # -- editing -------------------------------------------------------------------------------
    def _expand(self, spot_indices) -> np.ndarray:
        raw = np.asarray(spot_indices if not isinstance(spot_indices, (set, frozenset)) else sorted(spot_indices))
        if raw.dtype == bool:  # a mask over all spots (e.g. from a raster of bins)
            if raw.shape != self._labels.shape:
                raise IndexError(f"a boolean mask must have one entry per spot ({len(self._labels)})")
            raw = np.flatnonzero(raw)
        idx = unique_indices(raw)
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self._labels)):
            raise IndexError(f"spot indices must be in 0..{len(self._labels) - 1}")
        if self._same_id is not None and idx.size:
            extra = [self._same_id[i] for i in idx.tolist() if i in self._same_id]
            if extra:
                idx = unique_indices(np.concatenate([idx, *extra]))
        return idx

    def assign(self, spot_indices, label: str | None, description: str | None = None) -> int:
        """Give the spots at `spot_indices` the label `label` (None clears). One undo step.

        A new label loses its surrounding whitespace (`normalise_label`). Returns how many spots
        changed (0: nothing happened, no undo step).
        """
        label = normalise_label(label, self._known_labels)
        idx = self._expand(spot_indices)
        if idx.size == 0:
            return 0
        after = np.empty(len(idx), dtype=object)
        after[:] = [label] * len(idx)
        def describe(n: int) -> str:
            return description or (f"label {n} spot(s) {label!r}" if label is not None else f"clear {n} spot(s)")

        return self._apply_step(idx, after, describe)

    def assign_each(self, labels_by_spot: Mapping[int, str | None], description: str | None = None) -> int:
        """Give each spot index its own label (None clears), all in one undo step.

        For imports that bring many labels at once. A spot id repeating in the coord file gets
        the label of its listed point. Returns how many spots changed.
        """
        normalised = {label: normalise_label(label, self._known_labels) for label in set(labels_by_spot.values())}
        wanted = {int(i): normalised[label] for i, label in labels_by_spot.items()}
        if not wanted:
            return 0
        self._expand(list(wanted))  # the same index checks as assign
        if self._same_id is not None:  # few spots repeat: spread their label to their twins
            for i in [i for i in wanted if i in self._same_id]:
                for twin in self._same_id[i].tolist():
                    wanted[twin] = wanted[i]
        idx = np.fromiter(wanted, np.int64, len(wanted))
        order = np.argsort(idx)
        after = np.empty(len(idx), dtype=object)
        after[:] = [wanted[i] for i in idx[order].tolist()]
        return self._apply_step(idx[order], after, lambda n: description or f"label {n} spot(s)")

    def _apply_step(self, idx: np.ndarray, after: np.ndarray, describe: Callable[[int], str]) -> int:
        """Record and apply one undo step setting `self._labels[idx] = after`, skipping no-ops."""
        before = self._labels[idx]
        changed = np.asarray(before != after, dtype=bool)
        idx, before, after = idx[changed], before[changed], after[changed]
        if idx.size == 0:
            return 0
        for label in dict.fromkeys(after.tolist()):
            self._remember_label(label)
        step = _Step(idx, before, after, describe(len(idx)))
        self._set_labels(idx, after)
        self._undo.append(step)
        self._redo.clear()
        if len(self._undo) > self.max_undo:
            dropped = self._undo.pop(0)
            if dropped is self._saved_top or self._saved_top is None:
                self._saved_reachable = False  # the saved state can no longer be reached by undo
        if self._saved_top is not None and self._saved_top not in self._undo:
            self._saved_reachable = False  # the saved state was on the redo stack just discarded
        self._changed(idx)
        return int(idx.size)

    def _set_labels(self, idx: np.ndarray, labels: np.ndarray) -> None:
        """`self._labels[idx] = labels`, the label counts and the revision kept in step: the one
        place labels change (`_apply_step` for edits and recovery, `_replay` for undo and redo).
        `idx` holds each spot once (steps are built from `_expand`, which makes them unique)."""
        counts = self._counts
        for label, n in Counter(self._labels[idx].tolist()).items():
            counts[label] -= n
        for label, n in Counter(labels.tolist()).items():
            counts[label] += n
        self._labels[idx] = labels
        self.revision += 1

    def _changed(self, indices: np.ndarray | None) -> None:
        self._write_recovery()
        self._notify(indices)

    def undo(self) -> bool:
        return self._replay(self._undo, self._redo, lambda step: step.before)

    def redo(self) -> bool:
        return self._replay(self._redo, self._undo, lambda step: step.after)

    def _replay(self, source: list, target: list, labels_of) -> bool:
        """Move the newest step from `source` to `target`, applying the labels it records."""
        if not source:
            return False
        step = source.pop()
        self._set_labels(step.indices, labels_of(step))
        target.append(step)
        self._changed(step.indices)
        return True

    @property
    def undo_description(self) -> str | None:
        return self._undo[-1].description if self._undo else None

    @property
    def redo_description(self) -> str | None:
        return self._redo[-1].description if self._redo else None

    # -- saving --------------------------------------------------------------------------------
    def _labels_to_write(self) -> tuple[dict[str, str | None], list[str]]:
        """Spot id -> label to put in the file, and the order of rows appended for spots it lacks.

        An existing file gets only the changed spots (unlabelled new spots add no row). A new
        file lists every spot once, in coord-file order, with an empty label cell for the
        unlabelled ones, like the dataset's files.
        """
        if self.starts_new_file:
            labels: dict[str, str | None] = {}
            for spot, label in zip(self.spot_ids.tolist(), self._labels.tolist(), strict=True):
                labels.setdefault(spot, label)
            return labels, list(labels)
        changes = self.changes()
        return changes, [s for s in self.spot_ids.tolist() if s in changes]

    def prepare_save(self, path: str | Path | None = None, force: bool = False) -> SaveJob:
        """Snapshot the edits on the GUI thread; `SaveJob.run()` may then run on a worker thread."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no annotation path to save to")
        same_file = self.path is not None and target.resolve() == self.path.resolve()
        top = self._undo[-1] if self._undo else None
        labels, order = self._labels_to_write()
        return SaveJob(
            table=self.table,
            changes=labels,
            append_order=order,
            append_unlabelled=self.starts_new_file,
            path=target,
            expected=self.fingerprint if same_file else None,
            check_changed=not force,
            undo_top=top,
            labels=self._labels.copy(),
        )

    def finish_save(self, job: SaveJob, fingerprint: Fingerprint) -> None:
        """Record a finished save: not dirty anymore (unless edited meanwhile), path follows save-as."""
        if self.path is not None and job.path.resolve() != self.path.resolve():
            self.discard_recovery()  # the edits now live in the saved file; recovery follows the new path
        self.path = job.path
        self.fingerprint = fingerprint
        save_label_order(self.path, self._category_order)
        self._saved_top = job.undo_top
        # what the file now holds: an undo after this save is an unsaved change that recovery must keep
        self._on_disk = job.labels
        self._saved_reachable = job.undo_top is None or job.undo_top in self._undo
        if not self.dirty:
            self.discard_recovery()
        else:
            self._write_recovery()

    def save(self, path: str | Path | None = None, force: bool = False) -> Path:
        """Write the labels in the annotation format. Raises `AnnotationChangedOnDisk` when the file
        changed since it was loaded (unless `force`); nothing is written then."""
        job = self.prepare_save(path, force)
        self.finish_save(job, job.run())
        return job.path

    # -- recovery ------------------------------------------------------------------------------
    @property
    def recovery_path(self) -> Path | None:
        if self.path is None or self.recovery_off is not None:
            return None
        try:
            return recovery_path_for(self.path)
        except (OSError, SlideError) as exc:
            self._turn_recovery_off(exc)
            return None

    def _turn_recovery_off(self, exc: BaseException) -> None:
        """The recovery folder cannot be written (read-only, full): editing goes on, the user is
        told once (napari shows warnings as notifications), saving is unaffected."""
        if self.recovery_off is None:
            self.recovery_off = str(exc)
            warnings.warn(
                StorageWarning(f"recovery of unsaved labels is off for {self.slide_name or self.path}: "
                               f"cannot write the recovery folder ({exc}); save often"),
                stacklevel=3,
            )

    def _write_recovery(self) -> None:
        if not self.autosave or self.recovery_path is None:
            return
        if not self.dirty:
            self.discard_recovery()
            return
        payload = {
            "version": RECOVERY_VERSION,
            "annotation_path": str(self.path),
            "slide": self.slide_name,
            "saved_at": time.time(),
            "labels": self._changes_since(self._on_disk),
        }
        try:
            atomic_write_bytes(self.recovery_path, json.dumps(payload, ensure_ascii=True).encode("ascii"))
        except OSError as exc:
            self._turn_recovery_off(exc)

    def discard_recovery(self) -> None:
        path = self.recovery_path
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # never fails a save that already wrote the annotation
                self._turn_recovery_off(exc)

    def find_recovery(self) -> Recovery | None:
        """Unsaved edits left by an earlier session for this annotation path, if any.

        An unreadable or malformed recovery file is renamed `*.corrupt-<time>.json` (kept for a
        human, never offered) and reported with a `StorageWarning`."""
        path = self.recovery_path
        if path is None or not path.exists():
            return None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            labels = {str(k): (None if v is None else str(v)) for k, v in payload["labels"].items()}
            return Recovery(path, str(payload["annotation_path"]), str(payload.get("slide", "")),
                            float(payload["saved_at"]), labels)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.json")
            try:
                os.replace(path, aside)
            except OSError:
                aside = path
            warnings.warn(
                StorageWarning(f"the recovery file of {self.path} is unreadable ({type(exc).__name__}: {exc}); "
                               f"set aside as {aside}"),
                stacklevel=2,
            )
            return None

    def apply_recovery(self, recovery: Recovery) -> int:
        """Re-apply recovered edits as undoable steps (one per label); returns spots changed.

        Spots of the recovery that are not on the slide are skipped.
        """
        position: dict[str, list[int]] = {}
        for i, spot in enumerate(self.spot_ids.tolist()):
            position.setdefault(spot, []).append(i)
        by_label: dict[str | None, list[int]] = {}
        for spot, label in recovery.labels.items():
            for i in position.get(spot, []):
                by_label.setdefault(parse_label(label) if label is not None else None, []).append(i)
        changed = 0
        for label, indices in by_label.items():
            changed += self.assign(indices, label, description=f"recover {len(indices)} spot(s)")
        return changed


@dataclass
class SaveJob:
    """A snapshot of the labels to write; `run()` is safe to call off the GUI thread."""

    table: AnnotationTable  # as loaded; never mutated, so run() can read it from another thread
    changes: dict[str, str | None]  # spot id -> label for the spots whose rows are (re)written
    append_order: list[str]
    path: Path
    expected: Fingerprint | None
    check_changed: bool
    undo_top: _Step | None
    labels: np.ndarray  # every spot's label as written, so the editor knows what the file holds
    append_unlabelled: bool = False  # a new file: unlabelled spots get a row too

    def run(self) -> Fingerprint:
        table = self.table.with_labels(
            self.changes, append_order=self.append_order, append_unlabelled=self.append_unlabelled
        )
        return write_annotation(table, self.path, expected=self.expected, check_changed=self.check_changed)
