from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.datatools import quality
from tests.models.datatools.conftest import _scene

pytestmark = pytest.mark.unit


def test_fov_is_the_bright_disc_and_whole_frame_without_surround():
    img, fov = _scene(1)
    mask = quality.estimate_fov(quality.analysis_gray(img))
    agree = np.count_nonzero((mask > 0) == fov) / fov.size
    assert agree > 0.98
    flat = np.full((60, 80, 3), 120, np.uint8)
    assert quality.estimate_fov(quality.analysis_gray(flat)).all()
    assert quality.estimate_fov(np.zeros((60, 80), np.uint8)).all()   # too dark to tell: whole frame


def test_sharpness_ignores_the_fov_rim_and_drops_with_blur():
    img, fov = _scene(2)
    values = [quality.measure(img).sharpness]
    for sigma in (1, 2, 4):
        blurred = np.where(fov[..., None], cv2.GaussianBlur(img, (0, 0), sigma), 0).astype(np.uint8)
        values.append(quality.measure(blurred).sharpness)
    assert values == sorted(values, reverse=True) and values[-1] < values[0] / 4
    # a flat disc on black: only the rim is an edge, and the rim must not count
    disc = np.where(fov[..., None], 150, 0).astype(np.uint8).repeat(3, axis=2)
    assert quality.measure(disc).sharpness < 1.0


def test_exposure_fractions():
    img, fov = _scene(3)
    q = quality.measure(img)
    assert q.dark < 0.05 and q.bright < 0.05
    white = np.where(fov[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    assert quality.measure(white).bright > 0.95
    assert quality.measure((img * 0.05).astype(np.uint8)).dark > 0.95


def test_dhash_near_duplicates_close_and_other_scenes_far():
    a, _ = _scene(4)
    b, _ = _scene(5)
    ha = quality.measure(a).hash
    shifted = np.roll(a, 1, axis=1)
    brighter = cv2.convertScaleAbs(a, alpha=1.1, beta=5)
    assert quality.hash_distance(ha, quality.measure(shifted).hash) < 0.1
    assert quality.hash_distance(ha, quality.measure(brighter).hash) < 0.1
    assert quality.hash_distance(ha, quality.measure(b).hash) > 0.25
    kept = np.stack([quality.measure(b).hash, ha])
    assert quality.nearest_distance(ha, kept) == 0.0
    assert quality.nearest_distance(ha, np.zeros((0, ha.size), bool)) == 1.0


def test_large_frames_are_measured_at_analysis_width():
    img, _ = _scene(6)
    big = cv2.resize(img, (1920, 1440), interpolation=cv2.INTER_CUBIC)
    assert quality.analysis_gray(big).shape == (480, 640)
    assert quality.analysis_gray(img).shape == img.shape[:2]   # never scaled up
