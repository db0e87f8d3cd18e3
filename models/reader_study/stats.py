"""Tests of difference between readers scored on the same images (paired data).

Each reader (the model is one) has one score per image, images in the same order: an (R, N)
array. The primary test is Friedman's (non-parametric, repeated measures: images are blocks,
readers are treatments), with post-hoc Wilcoxon signed-rank tests for every pair of readers,
Holm-corrected for the number of pairs. A one-way ANOVA is given as well because the paper used
it; it ignores the pairing and assumes normal scores, so it is shown for comparison only.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p: float
    df: tuple[float, ...] = ()

    def significant(self, alpha: float = ALPHA) -> bool:
        return bool(np.isfinite(self.p) and self.p < alpha)


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    statistic: float      # Wilcoxon W (smaller of the signed-rank sums)
    p: float              # two-sided, uncorrected
    p_holm: float         # Holm-adjusted over all pairs
    median_difference: float  # median over images of a - b
    n: int                # images with a non-zero difference

    def significant(self, alpha: float = ALPHA) -> bool:
        return bool(np.isfinite(self.p_holm) and self.p_holm < alpha)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    NaNs stay NaN and do not count in m.
    """
    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def friedman(scores: np.ndarray) -> TestResult:
    """Friedman chi-square over (R readers, N images); needs R >= 3 and N >= 2."""
    scores = _complete(scores)
    r, n = scores.shape
    if r < 3 or n < 2:
        return TestResult("Friedman", float("nan"), float("nan"), (r - 1,))
    if np.all(scores == scores[0]):
        return TestResult("Friedman", 0.0, 1.0, (r - 1,))  # every reader identical on every image
    res = stats.friedmanchisquare(*scores)
    return TestResult("Friedman", float(res.statistic), float(res.pvalue), (r - 1,))


def anova(scores: np.ndarray) -> TestResult:
    """One-way ANOVA treating readers as independent groups (as the paper did)."""
    scores = _complete(scores)
    r, n = scores.shape
    if r < 2 or n < 2:
        return TestResult("one-way ANOVA", float("nan"), float("nan"), (r - 1, r * (n - 1)))
    if np.all(scores == scores[:, :1]):
        # No variance inside any group: F is undefined (scipy warns and returns nan).
        same = bool(np.all(scores == scores[0, 0]))
        return TestResult("one-way ANOVA", float("nan") if same else float("inf"), 1.0 if same else 0.0,
                          (r - 1, r * (n - 1)))
    res = stats.f_oneway(*scores)
    return TestResult("one-way ANOVA", float(res.statistic), float(res.pvalue), (r - 1, r * (n - 1)))


def pairwise_wilcoxon(scores: np.ndarray, names: Sequence[str]) -> list[PairResult]:
    """Two-sided Wilcoxon signed-rank test for every pair, Holm-adjusted over the pairs."""
    scores = _complete(scores)
    raw = []
    for i, j in combinations(range(len(names)), 2):
        d = scores[i] - scores[j]
        nonzero = int(np.count_nonzero(d))
        if scores.shape[1] == 0:
            w, p = float("nan"), float("nan")
        elif nonzero == 0:
            w, p = 0.0, 1.0  # identical on every image: no evidence of a difference
        else:
            res = stats.wilcoxon(scores[i], scores[j], zero_method="wilcox", alternative="two-sided")
            w, p = float(res.statistic), float(res.pvalue)
        med = float(np.median(d)) if d.size else float("nan")
        raw.append((names[i], names[j], w, p, med, nonzero))
    adjusted = holm([r[3] for r in raw])
    return [PairResult(a, b, w, p, float(q), med, n) for (a, b, w, p, med, n), q in zip(raw, adjusted)]


def describe(values: np.ndarray) -> tuple[float, float]:
    """(mean, sample SD) of the finite values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def complete_cases(scores: np.ndarray) -> np.ndarray:
    """Boolean (N,): images where every reader has a finite score (the paired tests use only these)."""
    return np.isfinite(np.asarray(scores, float)).all(axis=0)


def _complete(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, float)
    if scores.ndim != 2:
        raise ValueError("scores must be (readers, images)")
    return scores[:, complete_cases(scores)]
