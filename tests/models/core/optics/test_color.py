"""Color: CIEDE2000 against the published test data, transfer functions, the profile's correction."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.optics.color import (
    ColorCorrection,
    ciede2000,
    linear_to_srgb,
    linear_to_srgb8,
    luminance_preserving_gains,
    rgb8_to_lab,
    srgb8_to_linear,
    srgb_to_linear,
)

pytestmark = pytest.mark.unit

# Sharma, Wu and Dalal (2005), Table 1: L1 a1 b1 L2 a2 b2 and the CIEDE2000 difference.
SHARMA_2005 = np.array([
    [50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425],
    [50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615],
    [50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412],
    [50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669],
    [50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461],
    [50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065],
    [50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492],
    [50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977],
    [50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030],
    [50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000],
    [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
    [63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630],
    [61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731],
    [35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645],
    [22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373],
    [36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146],
    [90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441],
    [90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381],
    [6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377],
    [2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082],
])


def test_ciede2000_matches_the_published_pairs_both_ways():
    lab1, lab2, expected = SHARMA_2005[:, :3], SHARMA_2005[:, 3:6], SHARMA_2005[:, 6]
    assert np.abs(ciede2000(lab1, lab2) - expected).max() < 1e-4
    assert np.abs(ciede2000(lab2, lab1) - expected).max() < 1e-4
    assert ciede2000(lab1, lab1).max() == 0


def test_lab_of_known_colors():
    lab = rgb8_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [128, 128, 128]], np.uint8))
    assert np.allclose(lab[0], [100, 0, 0], atol=0.02) and np.allclose(lab[1], 0, atol=1e-9)
    assert np.allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)   # sRGB red, D65
    assert abs(lab[3, 0] - 53.59) < 0.05 and np.abs(lab[3, 1:]).max() < 0.01


def test_transfer_functions_round_trip():
    x = np.linspace(0, 1, 1001)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-12
    v = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb8(srgb8_to_linear(v)), v)


def test_identity_correction_returns_the_frame_itself():
    frame = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert ColorCorrection(np.eye(3))(frame) is frame


def test_gains_scale_linear_light_and_agree_with_the_matrix_path():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    gains = (1.2, 1.0, 0.7)
    by_lut = ColorCorrection.from_gains(gains)
    assert by_lut.diagonal
    expected = linear_to_srgb8(srgb8_to_linear(frame) * np.array(gains, np.float32))
    assert np.abs(by_lut(frame).astype(int) - expected).max() <= 1
    near_diag = ColorCorrection(np.diag(gains) + np.array([[0, 1e-7, 0], [0, 0, 0], [0, 0, 0]]))
    assert not near_diag.diagonal                                  # the float path
    assert np.abs(near_diag(frame).astype(int) - by_lut(frame).astype(int)).max() <= 1


def test_a_matrix_mixes_channels():
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0] = 200                                            # pure red in
    out = ColorCorrection([[1, 0, 0], [0.2, 1, 0], [0, 0, 1]])(frame)
    assert out[0, 0, 0] == 200 and out[0, 0, 1] > 50 and out[0, 0, 2] == 0


def test_luminance_preserving_gains_make_the_color_neutral_at_its_luminance():
    mean = np.array([0.5, 0.4, 0.2])
    g = luminance_preserving_gains(mean)
    balanced = g * mean
    assert np.allclose(balanced, balanced[0])
    y = np.array([0.2126729, 0.7151522, 0.0721750])
    assert abs(y @ balanced - y @ mean) < 1e-6
