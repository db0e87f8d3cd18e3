"""95 % intervals for the figures of a split, by resampling its clips (a percentile bootstrap).

Frames of one clip look alike and are labeled alike, so the independent unit of a test split is
the clip, not the image or the pixel: 40 clips are 40 observations however many frames they hold.
Each resample draws as many clips as the split has, with replacement, sums their confusion
matrices (for the AUC their score histograms) and computes the figures exactly as for the split;
the interval is the 2.5th to 97.5th percentile over the resamples. It says how far a figure could
move on another draw of clips like these. The point estimate (all pixels pooled) is not touched.

All resamples at once: a (resamples, units) matrix of draw counts times the (units, C*C) stack of
matrices; 2000 resamples over 40 clips and 7 classes take milliseconds.

Without usable clips (no clip ids, every clip a single image, a single clip) the units are the
images and the note says so. A resample in which a class is absent (from truth and prediction)
has no figure for it and is left out of that figure's percentiles.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.evaluate.roc import auc_from_count_stack
from models.metrics import scores_from_matrix

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95
SMALL_SPLIT = 30      # fewer units than this: the report calls the split small
AUC_BINS = 256        # score bins kept per clip for the AUC's interval (the split's AUC uses all 4096)
_CHUNK_VALUES = 4_000_000  # resampled histogram values held at once (32 MB)


@dataclass(frozen=True)
class Units:
    """What is resampled: one summed confusion matrix (and score histogram) per unit."""
    kind: str                        # "clip" or "image"
    matrices: np.ndarray             # (n, C, C) pixel counts, truth rows
    histograms: np.ndarray | None    # (n, C, 2, bins) negatives/positives per score bin; None: no AUC interval
    note: str = ""                   # why the units are images, when they are
    single_clip: bool = False        # images of one clip: not independent, the split is small whatever its size


def group_units(clips: Sequence[str], matrices: np.ndarray,
                clip_histograms: dict[str, np.ndarray] | None = None) -> Units:
    """Per-image matrices (n_images, C, C) and the images' clip ids -> the units to resample.

    clip_histograms: score histograms per clip id (None without probabilities). Images with an
    empty clip id share one, so with such images the AUC has no interval."""
    clips = list(clips)
    matrices = np.asarray(matrices, np.int64)
    distinct = list(dict.fromkeys(clips))

    def hist(ids: list[str]) -> np.ndarray | None:
        return np.stack([clip_histograms[c] for c in ids]) if clip_histograms else None

    missing = sum(1 for c in clips if not c)
    if missing:
        note = "the dataset has no clip ids" if missing == len(clips) else \
            f"{missing} of {len(clips)} images have no clip id"
        return Units("image", matrices, None, note)
    if len(distinct) == len(clips):
        return Units("image", matrices, hist(clips), "every clip holds a single image")
    if len(distinct) == 1:
        return Units("image", matrices, None, f"the split is a single clip ({distinct[0]}); its frames are not "
                                              f"independent, so the interval is too narrow", single_clip=True)
    position = {c: i for i, c in enumerate(distinct)}
    grouped = np.zeros((len(distinct), *matrices.shape[1:]), np.int64)
    np.add.at(grouped, [position[c] for c in clips], matrices)
    return Units("clip", grouped, hist(distinct))


def draws(units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, units) float: how often each unit is drawn when `units` are drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(units, np.full(units, 1.0 / units), size=resamples).astype(np.float64)


def resampled_scores(weights: np.ndarray, matrices: np.ndarray) -> dict[str, np.ndarray]:
    """The figures of every resample: accuracy ... dice -> (B, C), and pixel_accuracy -> (B,)."""
    n, c = matrices.shape[0], matrices.shape[-1]
    pooled = (weights @ matrices.reshape(n, c * c).astype(np.float64)).reshape(-1, c, c)
    out = scores_from_matrix(pooled)
    total = pooled.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["pixel_accuracy"] = np.where(total > 0, np.trace(pooled, axis1=1, axis2=2) / total, np.nan)
    return out


def resampled_auc(weights: np.ndarray, histograms: np.ndarray) -> np.ndarray:
    """(B, C) AUC of every resample from per-unit histograms (n, C, 2, bins), a block of resamples at a time."""
    n, c, _, bins = histograms.shape
    flat = histograms.reshape(n, -1).astype(np.float64)
    step = max(1, _CHUNK_VALUES // flat.shape[1])
    parts = []
    for start in range(0, len(weights), step):
        h = (weights[start:start + step] @ flat).reshape(-1, c, 2, bins)
        parts.append(auc_from_count_stack(h[:, :, 1], h[:, :, 0]))
    return np.concatenate(parts)


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """(B, ...) resampled values -> (..., 2) lower and upper percentile; NaN resamples left out, NaN if all are."""
    tail = 50 * (1 - confidence)
    samples = np.asarray(samples, np.float64)
    with _quiet():
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return np.stack([lo, hi], axis=-1)


def intervals(units: Units, groups: dict[str, Sequence[int]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
              auc: np.ndarray | None = None) -> dict | None:
    """Percentile intervals of every figure, or None with fewer than two units (or no resamples).

    groups: mean name -> the class indices it averages (resampled like the point estimate: NaN
    classes skipped). auc: the split's AUC per class (4096 bins); the resampled AUCs come from
    the units' coarser histograms and are shifted by the split's fine-minus-coarse difference,
    so that binning moves the interval no more than it moves the point.
    Returns {"per_class": {key: (C, 2)}, "means": {group: {key: (2,)}}, "pixel_accuracy": (2,)}."""
    n = len(units.matrices)
    if resamples < 1 or n < 2:
        return None
    weights = draws(n, resamples, seed)
    samples = resampled_scores(weights, units.matrices)
    if units.histograms is not None and auc is not None:
        pooled = units.histograms.sum(axis=0)
        shift = np.asarray(auc, np.float64) - auc_from_count_stack(pooled[:, 1], pooled[:, 0])
        samples["auc"] = np.clip(resampled_auc(weights, units.histograms) + shift, 0.0, 1.0)
    pixel = samples.pop("pixel_accuracy")
    means = {}
    for name, cols in groups.items():
        with _quiet():
            means[name] = {k: percentile_interval(np.nanmean(v[:, list(cols)], axis=1)) for k, v in samples.items()}
    return {"per_class": {k: percentile_interval(v) for k, v in samples.items()}, "means": means,
            "pixel_accuracy": percentile_interval(pixel)}


@contextmanager
def _quiet():
    """All-NaN slices are expected here (a class absent from a resample): no RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
