"""Everything an evaluation keeps while it walks a split, image by image, in bounded memory.

Per image it adds the image's confusion matrix to the split's (and its clip's), keeps that small
matrix, appends one row of per-class IoU and Dice, adds the model's class probabilities of the
valid pixels to the score histograms (ROC/AUC; coarser ones per clip for the AUC's interval) and
their top-class confidence to the calibration bins (ECE), and offers the image to the best/worst
gallery. Nothing per pixel is kept: memory is the matrices, the histograms, the calibration bins,
one small row per image and the gallery's thumbnails.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.evaluate.bootstrap import AUC_BINS, Units, group_units
from models.evaluate.calibration import Calibration
from models.evaluate.gallery import Gallery
from models.evaluate.roc import DEFAULT_BINS, ScoreHistograms, coarse
from models.metrics import ConfusionMatrix, scores_from_matrix


@dataclass
class ImageRow:
    image: str
    clip: str
    frame: int
    valid_pixels: int
    pixel_accuracy: float
    iou: list[float]    # per class, NaN where the class is in neither map
    dice: list[float]
    only_predicted: list[int]  # per class: pixels predicted as a class the reference lacks in this image

    def mean(self, key: str) -> float:
        """Mean over the tissue classes (all but background) present in truth or answer; NaN if none."""
        values = np.asarray(getattr(self, key)[1:] if len(self.iou) > 1 else getattr(self, key), float)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


@dataclass
class Accumulator:
    classes: ClassTable
    with_scores: bool = True          # False: answers are label maps only, no probabilities -> no ROC/AUC, no ECE
    gallery_size: int = 6
    bins: int = DEFAULT_BINS
    temperature: float | None = None  # the temperature the model's export baked in (None: not scaled)
    confusion: ConfusionMatrix = field(init=False)
    histograms: ScoreHistograms | None = field(init=False)
    calibration: Calibration | None = field(init=False)
    clip_matrices: dict[str, np.ndarray] = field(init=False)
    clip_histograms: dict[str, np.ndarray] = field(init=False)  # AUC_BINS score bins per clip (bootstrap)
    image_matrices: list[np.ndarray] = field(init=False, default_factory=list)
    rows: list[ImageRow] = field(init=False, default_factory=list)
    gallery: Gallery = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.classes)
        self.confusion = ConfusionMatrix(n, self.classes.ignore_index)
        self.histograms = ScoreHistograms(n, self.bins) if self.with_scores else None
        self.calibration = Calibration(self.temperature) if self.with_scores else None
        self.clip_matrices = defaultdict(lambda: np.zeros((n, n), np.int64))
        self.clip_histograms = defaultdict(lambda: np.zeros((n, 2, min(AUC_BINS, self.bins)), np.int64))
        self.gallery = Gallery(self.classes, self.gallery_size)

    def add(self, name: str, clip: str, frame: int, truth: np.ndarray, answer: np.ndarray,
            scores: np.ndarray | None = None,
            image: Callable[[], np.ndarray] | None = None) -> ImageRow:
        """One image. truth/answer: HxW class ids (answer without ignore); scores: (C, n_valid)
        class probabilities of the valid truth pixels in row-major order (see frame_scores);
        image: returns the RGB picture, called only if the gallery keeps this image."""
        m = self.confusion.update(truth, answer)
        self.clip_matrices[clip] += m
        self.image_matrices.append(m)
        s = scores_from_matrix(m)
        total = int(m.sum())
        absent = m.sum(axis=1) == 0
        row = ImageRow(name, clip, frame, total, float(np.trace(m) / total) if total else float("nan"),
                       [float(v) for v in s["iou"]], [float(v) for v in s["dice"]],
                       [int(v) for v in np.where(absent, m.sum(axis=0), 0)])
        self.rows.append(row)
        if self.histograms is not None:
            if scores is None:
                raise ValueError("this evaluation scores probabilities: pass scores for every image")
            valid = truth[truth != self.classes.ignore_index]
            added = self.histograms.add(valid, scores)
            self.clip_histograms[clip] += coarse(added, self.clip_histograms[clip].shape[-1])
            self.calibration.add(valid, scores)
        if image is not None:
            parts = ", ".join(f"{c.name} {_pct(row.iou[c.id])}" for c in self.classes.foreground)
            self.gallery.offer(row.mean("iou"), clip, f"{name} (clip {clip})  IoU {_pct(row.mean('iou'))}: {parts}",
                               lambda: (image(), truth, answer))
        return row

    def units(self) -> Units:
        """The clips (or, without usable clip ids, the images) that the bootstrap resamples."""
        n = len(self.classes)
        matrices = np.stack(self.image_matrices) if self.image_matrices else np.zeros((0, n, n), np.int64)
        return group_units([r.clip for r in self.rows], matrices,
                           dict(self.clip_histograms) if self.histograms is not None else None)


def frame_scores(probs: np.ndarray, box: tuple[int, int, int, int], answer_ignored: np.ndarray,
                 valid: np.ndarray) -> np.ndarray:
    """The model's class probabilities at label resolution for the valid pixels of one image.

    probs: (C, h, w) softmax on the model's output grid over the crop box `box` = (x, y, w, h)
    of the frame; resized to the box bilinearly, exactly as the runtime does before its argmax,
    so that the ROC and the confusion matrix judge the same numbers.
    answer_ignored: HxW, true where the runtime declined to label (outside the crop box or
    outside the detected field-of-view circle); valid: HxW, true where the truth is not ignore.

    Pixels the model did not label are scored as it labeled them: background. Their probability
    is 1 for background and 0 for every other class, the same call the confusion matrix records
    (predicted ignore counts as background). With a circular field of view the truth is ignore
    there too, so these pixels are rare: a truth label outside the model's view.

    Returns (C, n_valid) float32, pixels in row-major order of the valid mask.
    """
    c = probs.shape[0]
    x, y, bw, bh = box
    hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
    if hwc.shape[:2] != (bh, bw):  # the very call postprocess.labels_at makes (bit-identical values)
        hwc = cv2.resize(hwc, (bw, bh), interpolation=cv2.INTER_LINEAR)
        if c == 1:
            hwc = hwc[..., None]
    scored = np.zeros(valid.shape, bool)
    scored[y:y + bh, x:x + bw] = True
    scored &= ~answer_ignored
    inside = scored[valid]                             # which valid pixels have a probability
    pick = (scored & valid)[y:y + bh, x:x + bw]        # the same pixels, on the box grid
    out = np.zeros((c, inside.size), np.float32)
    out[0] = 1.0
    for k in range(c):  # one class plane at a time, so that the histograms read contiguous rows
        # Row-major order over the frame restricted to the box is row-major order over the box.
        out[k, inside] = hwc[..., k][pick]
    return out


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}%"
