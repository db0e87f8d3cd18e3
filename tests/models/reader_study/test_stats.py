"""The reader study's statistics against scipy and against hand-computed cases."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats as sps

from models.reader_study.stats import anova, complete_cases, describe, friedman, holm, pairwise_wilcoxon

pytestmark = pytest.mark.unit


def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x0.005=0.02, 3x0.01=0.03, 2x0.03=0.06, max(0.06, 1x0.04)=0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1, never decreasing
    out = holm([math.nan, 0.01, 0.02])  # NaN neither counts in m nor changes
    assert math.isnan(out[0]) and out[1:].tolist() == [0.02, 0.02]
    assert holm([0.04]).tolist() == [0.04]


def test_friedman_hand_computed_readers_are_treatments():
    scores = np.array([[0.9, 0.8, 0.7, 0.6],   # A: ranks 3, 2, 3, 3 -> 11
                       [0.8, 0.9, 0.6, 0.5],   # B: ranks 2, 3, 2, 2 -> 9
                       [0.7, 0.6, 0.5, 0.4]])  # C: ranks 1, 1, 1, 1 -> 4
    r = friedman(scores)
    # 12 / (n k (k+1)) * sum R^2 - 3 n (k+1) = 12/48 * 218 - 48 = 6.5, chi2 with 2 df: p = exp(-3.25)
    assert r.statistic == pytest.approx(6.5) and r.df == (2,)
    assert r.p == pytest.approx(math.exp(-3.25))
    assert r.significant(0.05) and not r.significant(0.01)


def test_friedman_matches_scipy_with_ties_and_drops_incomplete_images():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((4, 30)), 1)  # many ties
    scores[2, 5] = np.nan
    r = friedman(scores)
    keep = complete_cases(scores)
    assert keep.sum() == 29
    expected = sps.friedmanchisquare(*scores[:, keep])
    assert r.statistic == pytest.approx(expected.statistic) and r.p == pytest.approx(expected.pvalue)


def test_anova_hand_computed_and_scipy():
    r = anova(np.array([[1.0, 2, 3], [2, 3, 4], [5, 6, 7]]))
    # SSB = 3 * (25 + 4 + 49) / 9 = 26 over 2 df; SSW = 6 over 6 df -> F = 13
    assert r.statistic == pytest.approx(13.0) and r.df == (2, 6)
    assert r.p == pytest.approx(sps.f.sf(13.0, 2, 6))
    rng = np.random.default_rng(1)
    data = rng.normal(0.6, 0.1, (4, 25))
    assert anova(data).p == pytest.approx(sps.f_oneway(*data).pvalue)


def test_wilcoxon_exact_hand_computed():
    x = np.array([6.0, 3, 8, 9, 10])
    y = np.array([5.0, 5, 5, 5, 5])  # differences 1, -2, 3, 4, 5: W+ = 13, W- = 2
    (pair,) = pairwise_wilcoxon(np.stack([x, y]), ["x", "y"])
    assert pair.statistic == 2.0
    assert pair.p == pytest.approx(2 * 3 / 32)  # 3 of 32 sign patterns have W- <= 2, two-sided
    assert pair.p_holm == pair.p and pair.median_difference == 3.0 and pair.n == 5


def test_pairwise_wilcoxon_matches_scipy_and_holm():
    rng = np.random.default_rng(2)
    base = rng.random(40)
    scores = np.stack([base + rng.normal(shift, 0.05, 40) for shift in (0.0, 0.01, 0.05)])
    names = ["a", "b", "c"]
    pairs = pairwise_wilcoxon(scores, names)
    assert [(p.a, p.b) for p in pairs] == list(combinations(names, 2))
    raw = [sps.wilcoxon(scores[i], scores[j]) for i, j in combinations(range(3), 2)]
    for p, ref in zip(pairs, raw):
        assert p.statistic == pytest.approx(ref.statistic) and p.p == pytest.approx(ref.pvalue)
    np.testing.assert_allclose([p.p_holm for p in pairs], holm([r.pvalue for r in raw]))
    assert pairs[1].significant() and pairs[1].median_difference < 0  # a vs c: c is 0.05 higher


def test_identical_readers_are_not_different():
    scores = np.tile(np.linspace(0.2, 0.9, 10), (3, 1))
    assert friedman(scores).p == 1.0 and not friedman(scores).significant()
    assert all(p.p == 1.0 and p.p_holm == 1.0 for p in pairwise_wilcoxon(scores, ["a", "b", "c"]))


def test_two_readers_have_no_friedman():
    r = friedman(np.random.default_rng(3).random((2, 10)))
    assert math.isnan(r.p) and not r.significant()


def test_describe_uses_sample_sd_and_skips_nan():
    mean, sd = describe(np.array([1.0, 2.0, 3.0, math.nan]))
    assert mean == 2.0 and sd == pytest.approx(1.0)
