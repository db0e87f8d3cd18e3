"""Label maps that are judged against a reference: found by image stem, read and checked.

Predictions (from `predict`) and readers' label maps are folders of `<image stem>.png` files of
class ids. A file that is missing, of another size than its reference, or holding an id outside
the class table stops the run with one line naming the file: a silently skipped image would
change every figure of the report.

An answer's ignore pixels (255: `predict` writes them outside the endoscope's field of view) are
scored as background: no tissue was claimed there. Reference ignore pixels never count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import read_label


def label_files(folder: str | Path, what: str = "label folder") -> dict[str, Path]:
    """stem -> path of every `*.png` in a folder (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EndoSpineError(f"{folder}: {what} not found")
    files = {p.stem: p for p in sorted(folder.glob("*.png")) if not p.name.startswith(".")}
    if not files:
        raise EndoSpineError(f"{folder}: no label PNGs (<image stem>.png) in this {what}")
    return files


def require_stems(files: dict[str, Path], stems: list[str], folder: str | Path, what: str) -> None:
    """Fail on the first image of `stems` that has no file, naming the file that was expected."""
    missing = [s for s in stems if s not in files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EndoSpineError(f"{Path(folder) / (missing[0] + '.png')}: missing {what} for image {missing[0]!r}{more}")


def check_ids(labels: np.ndarray, classes: ClassTable, path: str | Path) -> None:
    """Every id must be a class id or the ignore id."""
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    bad = [int(v) for v in present if v >= len(classes) and v != classes.ignore_index]
    if bad:
        raise EndoSpineError(f"{path}: label ids {bad[:5]} are not in the class table "
                             f"(0..{len(classes) - 1}, ignore {classes.ignore_index})")


def read_reference(path: str | Path, classes: ClassTable, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A reference (ground truth) label map, checked for ids and, if given, for its size (H, W)."""
    labels = read_label(path)
    if shape is not None and labels.shape != tuple(shape):
        raise EndoSpineError(f"{path}: label is {labels.shape[1]}x{labels.shape[0]}, its image {shape[1]}x{shape[0]}")
    check_ids(labels, classes, path)
    return labels


def read_answer(path: str | Path, classes: ClassTable, shape: tuple[int, int]) -> np.ndarray:
    """A prediction or reader label map of the reference's size; ignore becomes background (0)."""
    labels = read_label(path)
    if labels.shape != tuple(shape):
        raise EndoSpineError(f"{path}: size {labels.shape[1]}x{labels.shape[0]} differs from the reference's "
                             f"{shape[1]}x{shape[0]}")
    check_ids(labels, classes, path)
    return as_answer(labels, classes)


def as_answer(labels: np.ndarray, classes: ClassTable) -> np.ndarray:
    """Ignore pixels of an answer -> background (a new array only when there are any)."""
    ignore = labels == classes.ignore_index
    return np.where(ignore, 0, labels).astype(np.uint8) if ignore.any() else labels
