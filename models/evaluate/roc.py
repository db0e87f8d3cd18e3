"""ROC curves and AUC per class from score histograms, with memory that does not grow with data.

An exact AUC sorts every (score, truth) pair: over a test split of hundreds of 1080p images that
is billions of pixels. Instead each class keeps two histograms of the model's probability for
that class, one over its positive pixels and one over its negatives, and the AUC is integrated
from them: a positive beats every negative in a lower bin and half of those in its own bin
(ties count half, as in scikit-learn's roc_auc_score). The only error comes from distinct scores
that share a bin.

Softmax probabilities pile up near 0 and 1, so bins uniform in p would put most pixels into the
two end bins. The bins are uniform in logit(p) = log(p / (1 - p)) over [-16, 16] (float32 cannot
resolve 1 - p below 6e-8, i.e. logit 16.6), which spreads both ends: with 4096 bins a bin spans
0.0078 in logit, 0.002 in p around 0.5 and a relative 0.8 % of p (or of 1 - p) at the ends.

A few thousand scores (one per frame: the trust gate's) need no histograms: `rank_auc` and
`score_roc` are exact.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BINS = 4096
LOGIT_RANGE = 16.0


class ScoreHistograms:
    """Per class, counts of negatives and positives per score bin: counts[c, 0|1, bin]."""

    def __init__(self, num_classes: int, bins: int = DEFAULT_BINS, logit_range: float = LOGIT_RANGE):
        if bins < 2:
            raise ValueError("need at least 2 bins")
        self.num_classes = num_classes
        self.bins = bins
        self.logit_range = float(logit_range)
        self.counts = np.zeros((num_classes, 2, bins), np.int64)

    def bin_index(self, p: np.ndarray) -> np.ndarray:
        """Probabilities in [0, 1] -> bin indices in 0..bins-1, monotone in p (int32; in place where it can)."""
        p = np.asarray(p, np.float32)
        z = np.subtract(np.float32(1), p)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(p, z, out=z)   # p = 1 -> inf
            np.log(z, out=z)         # p = 0 -> -inf; both clipped to the end bins
        scale = np.float32(self.bins / (2 * self.logit_range))
        z *= scale
        z += np.float32(self.bins / 2)
        np.clip(z, 0, self.bins - 1, out=z)
        return z.astype(np.int32)  # truncation is floor here: z >= 0

    def add(self, truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """truth: (n,) class ids of valid pixels; scores: (C, n) probability of each class per pixel.
        Returns these pixels' own counts (C, 2, bins), which the split's counts now include."""
        truth = np.asarray(truth).ravel()
        if scores.shape != (self.num_classes, truth.size):
            raise ValueError(f"scores {scores.shape} do not match {self.num_classes} classes x {truth.size} pixels")
        added = np.zeros_like(self.counts)
        for c in range(self.num_classes):
            key = self.bin_index(scores[c])
            key[truth == c] += self.bins
            added[c] = np.bincount(key, minlength=2 * self.bins).reshape(2, self.bins)
        self.counts += added
        return added

    def merge(self, other: "ScoreHistograms") -> None:
        if other.counts.shape != self.counts.shape or other.logit_range != self.logit_range:
            raise ValueError("histograms differ in shape or range")
        self.counts += other.counts

    def auc(self) -> np.ndarray:
        """(C,) area under the ROC curve per class; NaN where a class has no positives or no negatives."""
        return np.array([auc_from_counts(self.counts[c, 1], self.counts[c, 0]) for c in range(self.num_classes)])

    def roc(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(false positive rates, true positive rates) of class c, thresholds from high to low, from (0, 0)."""
        return roc_from_counts(self.counts[c, 1], self.counts[c, 0])


def auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from positive and negative counts per bin (bins ordered by increasing score)."""
    return float(auc_from_count_stack(pos, neg))


def auc_from_count_stack(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """auc_from_counts over the last axis of stacks of counts (..., bins) -> (...); NaN where a
    stack has no positives or no negatives."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    n_pos, n_neg = pos.sum(axis=-1), neg.sum(axis=-1)
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)


def coarse(counts: np.ndarray, bins: int) -> np.ndarray:
    """Counts (..., B) summed into `bins` runs of neighbouring bins (..., bins): the same order, fewer ties
    told apart. What the bootstrap keeps per clip (memory grows with clips, not with bins)."""
    edges = np.arange(bins) * counts.shape[-1] // bins
    return np.add.reduceat(counts, edges, axis=-1)


def roc_from_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return np.array([0.0, 1.0]), np.array([np.nan, np.nan])
    keep = (pos + neg)[::-1] > 0  # empty bins add no point
    tpr = np.concatenate([[0.0], np.cumsum(pos[::-1])[keep] / n_pos])
    fpr = np.concatenate([[0.0], np.cumsum(neg[::-1])[keep] / n_neg])
    return fpr, tpr


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Exact AUC of scores where higher means positive, by the Mann-Whitney rank formula:
    (sum of the positives' ranks - n1 (n1 + 1) / 2) / (n1 n0), tied scores given their mean rank
    (a tie counts half). NaN without positives or without negatives."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def score_roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ROC of scores (every distinct score a threshold, high to low, from (0, 0))."""
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    values, index = np.unique(np.concatenate([pos, neg]), return_inverse=True)
    return roc_from_counts(np.bincount(index[:pos.size], minlength=values.size),
                           np.bincount(index[pos.size:], minlength=values.size))
