"""Fitting the trust gate at export: the pure parts (statistics, temperature, calibration error, unsure threshold)."""
from __future__ import annotations

import numpy as np
import pytest

from models.gatefit import ece, feature_statistics, fit_temperature, mahalanobis, unsure_threshold

pytestmark = pytest.mark.unit


def test_statistics_whiten_the_training_features():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((5, 5))
    feats = rng.standard_normal((4000, 5)) @ mix + 3.0
    mean, whiten = feature_statistics(feats, shrink=0.0)
    z = (feats - mean) @ whiten.T
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(5), atol=1e-6)
    scores = mahalanobis(feats, mean, whiten)
    assert np.median(scores) == pytest.approx(np.sqrt(4.35 / 5), abs=0.05)  # chi2(5) median, / sqrt(5)
    far = mahalanobis(feats[:1] + 50 * mix[0], mean, whiten)
    assert far[0] > 5 * np.quantile(scores, 0.995)


def test_temperature_recovers_the_true_one():
    rng = np.random.default_rng(1)
    n, c, true_t = 20000, 4, 2.0
    z = rng.standard_normal((n, c)) * 4
    p = np.exp(z / true_t)
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(c, p=row) for row in p])
    corners = np.repeat(z[:, None, :], 4, axis=1).astype(np.float32)  # the same logits at the four grid points
    weights = np.full((n, 4), 0.25, np.float32)
    assert fit_temperature(corners, labels, weights) == pytest.approx(true_t, rel=0.08)


def test_calibration_error_and_unsure_threshold():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0, 1, 200000)
    correct = rng.uniform(0, 1, conf.size) < conf  # calibrated
    assert ece(conf, correct) < 0.01
    assert ece(np.full(1000, 0.9), np.zeros(1000, bool)) == pytest.approx(0.9)
    assert unsure_threshold(conf, correct) == pytest.approx(0.5)
    assert unsure_threshold(conf, np.ones(conf.size, bool)) == pytest.approx(0.3)  # always right: the floor
    assert unsure_threshold(conf, np.zeros(conf.size, bool)) == pytest.approx(0.7)  # never right: the ceiling


def test_protect_floor_shows_the_asked_share_of_nerve_pixels():
    from models.gatefit import protect_floor

    rng = np.random.default_rng(3)
    n = 10000
    labels = rng.integers(0, 3, n)
    p = rng.dirichlet(np.ones(3), n)
    floor, shown = protect_floor(p, labels, 2, cap=0.5, recall=0.9)
    mine = labels == 2
    got = ((p.argmax(1) == 2) | (p[:, 2] >= floor))[mine].mean()
    assert 0.05 <= floor <= 0.5 and got >= 0.9 and shown["val_protected_shown"] == pytest.approx(got, abs=1e-4)
    assert protect_floor(p, labels, 2, cap=0.5, recall=0.0)[0] == 0.5  # nothing to add: the cap
    assert protect_floor(p[:10], labels[:10], 2, cap=0.5) == (None, {})  # too few pixels to say
