"""Distribution distances without a pretrained network: SWD on pyramid patches, Frechet on features."""
from __future__ import annotations

import numpy as np
import pytest

from models.gan.distance import (
    FEATURE_NAMES,
    frechet_distance,
    image_features,
    laplacian_pyramid,
    pyramid_swd,
    sliced_wasserstein,
    standardizer,
)

pytestmark = pytest.mark.unit


def _images(seed: int, n: int = 6, size: int = 32, tint=(0, 0, 0), smooth: bool = False) -> np.ndarray:
    """White noise pictures, or (smooth) spatially correlated ones: another texture, same color spread."""
    import cv2

    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, size, size, 3)).astype(np.float32)
    if smooth:
        base = np.stack([cv2.GaussianBlur(b, (0, 0), 2.0) for b in base])
        base /= base.std()
    return np.clip(128 + 20 * base + np.asarray(tint), 0, 255).astype(np.uint8)


def test_pyramid_levels_reconstruct_the_image():
    img = _images(0, 1, 64)[0]
    levels = laplacian_pyramid(img)
    assert [lv.shape[0] for lv in levels] == [64, 32, 16]
    import cv2

    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = cv2.pyrUp(rebuilt, dstsize=band.shape[1::-1]) + band
    np.testing.assert_allclose(rebuilt, img.astype(np.float32), atol=1e-3)


def test_swd_zero_for_same_points_and_larger_for_other_texture():
    points = np.random.default_rng(0).normal(size=(200, 147)).astype(np.float32)
    rng = np.random.default_rng(1)
    assert sliced_wasserstein(points, points, rng) == pytest.approx(0.0, abs=1e-6)
    # a shift s along every axis moves a random unit projection by s * N(0, 1): mean |.| = s * 0.798
    assert sliced_wasserstein(points, points + 0.5, rng) == pytest.approx(0.5 * 0.798, rel=0.15)
    a, b, other = _images(0, 16), _images(1, 16), _images(2, 16, smooth=True)
    assert pyramid_swd(a, other)["32"] > 2 * pyramid_swd(a, b)["32"]
    with pytest.raises(ValueError):
        pyramid_swd(a, b[:3])


def test_frechet_distance_sees_a_color_shift():
    feats = lambda imgs: np.stack([image_features(im) for im in imgs])  # noqa: E731
    real, twin, warm = feats(_images(0, 12)), feats(_images(1, 12)), feats(_images(2, 12, tint=(40, 0, -30)))
    assert real.shape == (12, len(FEATURE_NAMES))
    z = standardizer(real)
    assert frechet_distance(z(real), z(real)) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(z(warm), z(real)) > 10 * frechet_distance(z(twin), z(real))


def test_features_only_look_inside_the_view():
    img = _images(0, 1, 32)[0].copy()
    inside = np.zeros((32, 32), bool)
    inside[8:24, 8:24] = True
    changed = img.copy()
    changed[~inside] = 0
    np.testing.assert_allclose(image_features(img, inside)[:15], image_features(changed, inside)[:15])
