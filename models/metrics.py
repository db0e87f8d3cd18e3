"""Segmentation metrics from a confusion matrix, accumulated image by image.

Pixels labeled ignore (255) never count. Per class c (one-vs-rest over all valid pixels):
TP = M[c, c], FP = column sum - TP, FN = row sum - TP, TN = N - TP - FP - FN;
accuracy (TP+TN)/N, precision TP/(TP+FP), recall TP/(TP+FN), IoU TP/(TP+FP+FN),
Dice 2TP/(2TP+FP+FN). A class absent from both truth and prediction gets NaN (not 0 or 1),
and means skip NaNs.
"""
from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Rows: truth, columns: prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.n = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Add one image; returns that image's own matrix (for per-image figures)."""
        if truth.shape != pred.shape:
            raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
        valid = truth != self.ignore_index
        t = truth[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if t.size and (t.max() >= self.n or p.max() >= self.n):
            raise ValueError(f"class id out of range 0..{self.n - 1}")
        image = np.bincount(t * self.n + p, minlength=self.n * self.n).reshape(self.n, self.n)
        self.matrix += image
        return image

    def scores(self) -> dict[str, np.ndarray]:
        return scores_from_matrix(self.matrix)


def scores_from_matrix(m: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class scores of one (C, C) matrix -> (C,) arrays, or of a stack (..., C, C) -> (..., C)
    (the bootstrap scores thousands of resampled matrices in one call)."""
    m = np.asarray(m, np.float64)
    total = m.sum(axis=(-2, -1))[..., None]
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    fp = m.sum(axis=-2) - tp
    fn = m.sum(axis=-1) - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        present = (tp + fp + fn) > 0
        out = {
            "accuracy": np.where(total > 0, (tp + tn) / total, np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.where(present, 0.0, np.nan)),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.where(present, 0.0, np.nan)),
            "iou": np.where(present, tp / (tp + fp + fn), np.nan),
            "dice": np.where(present, 2 * tp / (2 * tp + fp + fn), np.nan),
        }
    return out


def mean_iou(m: np.ndarray, skip_background: bool = True) -> float:
    iou = scores_from_matrix(m)["iou"]
    values = iou[1:] if skip_background and len(iou) > 1 else iou
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def frame_mean_iou(truth: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255) -> float:
    """One image's mean IoU over the tissue classes (not background, as evaluate's figures) its
    reference or its prediction shows, over the reference's valid pixels; prediction pixels
    labelled ignore (outside the model's view) count as background. NaN when neither shows a tissue."""
    pred = np.where(pred == ignore_index, 0, pred)
    return mean_iou(ConfusionMatrix(num_classes, ignore_index).update(truth, pred))
