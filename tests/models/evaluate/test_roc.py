"""AUC from score histograms against scikit-learn's exact roc_auc_score."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from models.evaluate.roc import ScoreHistograms, auc_from_counts, rank_auc, score_roc

pytestmark = pytest.mark.unit


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _case(kind: str, rng: np.random.Generator, n: int = 3000, c: int = 3):
    truth = rng.integers(0, c, n)
    if kind == "uniform":  # weakly informative, scores spread over [0, 1]
        scores = rng.random((n, c)).astype(np.float32)
        scores[np.arange(n), truth] += 0.3
        scores /= scores.sum(axis=1, keepdims=True)
    elif kind == "confident":  # a trained net: probabilities piled up near 0 and 1
        logits = rng.normal(0, 3, (n, c))
        logits[np.arange(n), truth] += 7
        scores = _softmax(logits)
    else:  # "ties": a handful of distinct values, many exact ties
        scores = rng.integers(0, 5, (n, c)).astype(np.float32) / 4
        scores[np.arange(n), truth] = np.maximum(scores[np.arange(n), truth], rng.integers(0, 5, n) / 4)
    return truth, scores


@pytest.mark.parametrize("kind", ["uniform", "confident", "ties"])
@pytest.mark.parametrize("seed", [0, 1])
def test_histogram_auc_matches_sklearn(kind, seed):
    truth, scores = _case(kind, np.random.default_rng(seed))
    h = ScoreHistograms(3)
    half = len(truth) // 2  # added in two images: accumulation must not change the answer
    h.add(truth[:half], scores[:half].T)
    h.add(truth[half:], scores[half:].T)
    for c in range(3):
        exact = roc_auc_score(truth == c, scores[:, c])
        assert h.auc()[c] == pytest.approx(exact, abs=1e-3), (kind, c)


def test_confident_scores_need_logit_bins():
    """Near-0/near-1 probabilities: 4096 linear bins would lump them; logit bins keep AUC exact."""
    rng = np.random.default_rng(3)
    n = 4000
    truth = rng.integers(0, 2, n)
    # Positives at p ~ 1e-4..1e-3, negatives at p ~ 1e-5..1e-4: all within the first linear bin.
    p = np.where(truth == 1, 10 ** rng.uniform(-4, -3, n), 10 ** rng.uniform(-5, -4, n)).astype(np.float32)
    h = ScoreHistograms(2)
    h.add(truth, np.stack([1 - p, p]))
    assert roc_auc_score(truth, p) == pytest.approx(1.0)
    assert h.auc()[1] == pytest.approx(1.0, abs=1e-3)
    linear = np.minimum((p * 4096).astype(int), 4095)
    lumped = auc_from_counts(np.bincount(linear[truth == 1], minlength=4096),
                             np.bincount(linear[truth == 0], minlength=4096))
    assert lumped < 0.9  # what naive binning reports: negatives and most positives share bin 0


def test_hand_computed_auc_with_a_tie():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5) (0.9>0.1) (0.5=0.5 half) (0.5>0.1) -> 3.5/4
    h = ScoreHistograms(2)
    p = np.array([0.9, 0.5, 0.5, 0.1], np.float32)
    h.add(np.array([1, 1, 0, 0]), np.stack([1 - p, p]))
    assert h.auc()[1] == pytest.approx(0.875, abs=1e-12)
    assert h.auc()[0] == pytest.approx(0.875, abs=1e-12)


def test_roc_curve_runs_from_origin_to_one_and_matches_sklearn_points():
    truth, scores = _case("ties", np.random.default_rng(5))
    h = ScoreHistograms(3)
    h.add(truth, scores.T)
    fpr, tpr = h.roc(1)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and fpr[-1] == pytest.approx(1.0) and tpr[-1] == pytest.approx(1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    sk_fpr, sk_tpr, _ = roc_curve(truth == 1, scores[:, 1])
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)  # 5 distinct scores: every point is exact
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)


def test_class_without_positives_has_no_auc():
    h = ScoreHistograms(3)
    h.add(np.array([0, 1, 0, 1]), np.full((3, 4), 1 / 3, np.float32))
    auc = h.auc()
    assert np.isnan(auc[2]) and auc[0] == pytest.approx(0.5)


def test_memory_is_fixed_by_bins_not_pixels():
    h = ScoreHistograms(4, bins=1024)
    before = h.counts.nbytes
    rng = np.random.default_rng(0)
    for _ in range(5):
        h.add(rng.integers(0, 4, 10000), rng.random((4, 10000)).astype(np.float32))
    assert h.counts.nbytes == before == 4 * 2 * 1024 * 8
    assert h.counts.sum() == 5 * 10000 * 4


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        ScoreHistograms(3).add(np.zeros(5, int), np.zeros((5, 3), np.float32))  # (n, C) instead of (C, n)


def test_rank_auc_and_score_roc_are_exact():
    assert rank_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert rank_auc([1.0], [2.0]) == 0.0
    assert rank_auc([2.0, 5.0], [2.0, 1.0]) == pytest.approx(0.875)  # one tie of four pairs counts half
    assert np.isnan(rank_auc([], [1.0])) and np.isnan(rank_auc([1.0], []))
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 500).round(1)  # many ties
    truth = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert rank_auc(pos, neg) == pytest.approx(roc_auc_score(truth, np.r_[pos, neg]), abs=1e-12)
    fpr, tpr = score_roc(pos, neg)
    ref_fpr, ref_tpr, _ = roc_curve(truth, np.r_[pos, neg], drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(rank_auc(pos, neg), abs=1e-12)
