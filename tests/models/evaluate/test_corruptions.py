"""gate-check's corruptions: shape and type kept, seeded, and each changes the frame the way it says."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.evaluate.corruptions import FAMILIES, SEVERITIES, corrupt, image_seed, renderings
from models.synth import SyntheticClip

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def frame():
    """A scene-engine frame (tissue texture inside a circular field of view) and its view mask."""
    rgb, labels = SyntheticClip(seed=11, clip=0, width=192, height=160).render(0)
    return rgb, labels != 255


def _detail(rgb: np.ndarray, inside: np.ndarray) -> float:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F)[cv2.erode(inside.astype(np.uint8), np.ones((5, 5)))
                                                 .astype(bool)].var())


def _mean(rgb: np.ndarray, inside: np.ndarray) -> float:
    return float(rgb[inside].mean())


def _redness(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are dark red: red well above green and blue, and not bright."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 2 * g + 20) & (r > 2 * b + 20) & (r < 160)


def test_every_rendering_keeps_shape_and_type_and_is_seeded(frame):
    rgb, inside = frame
    assert renderings()[0] == ("none", 0) and len(renderings()) == 1 + len(FAMILIES) * len(SEVERITIES) == 11
    assert corrupt(rgb, "none", 0, 1) is rgb
    for family, severity in renderings()[1:]:
        out = corrupt(rgb, family, severity, 7, inside)
        assert out.shape == rgb.shape and out.dtype == np.uint8 and out.flags.c_contiguous, family
        assert np.array_equal(out, corrupt(rgb, family, severity, 7, inside)), family   # same seed, same bytes
        assert not np.array_equal(out, rgb), family
    for family in ("smoke", "blood"):  # the random shape follows the seed
        assert not np.array_equal(corrupt(rgb, family, 1, 7, inside), corrupt(rgb, family, 1, 8, inside))
    assert image_seed("images/a.png") == image_seed("images/a.png") != image_seed("images/b.png")
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(rgb, "fog", 1, 0)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(rgb, "blur", 3, 0)


def test_blur_removes_detail_more_at_severity_two(frame):
    rgb, inside = frame
    clean = _detail(rgb, inside)
    mild, heavy = (_detail(corrupt(rgb, "blur", s, 0), inside) for s in SEVERITIES)
    assert heavy < mild < 0.2 * clean


def test_exposure_moves_brightness_and_clips(frame):
    rgb, inside = frame
    clean = _mean(rgb, inside)
    over = [corrupt(rgb, "overexposure", s, 0) for s in SEVERITIES]
    under = [corrupt(rgb, "underexposure", s, 0) for s in SEVERITIES]
    assert clean < _mean(over[0], inside) < _mean(over[1], inside)
    assert (over[1][inside] == 255).mean() > 0.3 > (rgb[inside] == 255).mean()   # highlights blown out
    assert clean > _mean(under[0], inside) > _mean(under[1], inside) and _mean(under[1], inside) < 0.15 * clean
    assert (under[0][~inside] <= rgb[~inside]).all()  # gains keep the scope's dark surround dark


def test_smoke_is_a_bright_low_contrast_veil_inside_the_view(frame):
    rgb, inside = frame
    for s in SEVERITIES:
        out = corrupt(rgb, "smoke", s, 3, inside)
        assert _mean(out, inside) > _mean(rgb, inside) + 20                # brighter ...
        assert out[inside].std() < 0.7 * rgb[inside].std()                # ... lower contrast ...
        assert _detail(out, inside) < 0.4 * _detail(rgb, inside)          # ... and detail washed out
        assert np.array_equal(out[~inside], rgb[~inside])
    thick = corrupt(rgb, "smoke", 2, 3, inside)
    assert _detail(thick, inside) < _detail(corrupt(rgb, "smoke", 1, 3, inside), inside)
    # the density varies at low frequency: the veil's strength differs between the view's halves
    veil = thick.astype(float).mean(2) - rgb.astype(float).mean(2)
    h, w = inside.shape
    quarters = [veil[:h // 2, :w // 2], veil[:h // 2, w // 2:], veil[h // 2:, :w // 2], veil[h // 2:, w // 2:]]
    masks = [inside[:h // 2, :w // 2], inside[:h // 2, w // 2:], inside[h // 2:, :w // 2], inside[h // 2:, w // 2:]]
    means = [q[m].mean() for q, m in zip(quarters, masks)]
    assert max(means) - min(means) > 5


def test_blood_fills_a_large_dark_red_part_of_the_view(frame):
    rgb, inside = frame
    before = _redness(rgb)[inside].mean()
    shares = []
    for s, coverage in zip(SEVERITIES, (0.45, 0.7)):
        out = corrupt(rgb, "blood", s, 5, inside)
        share = _redness(out)[inside].mean() - before
        shares.append(share)
        assert coverage - 0.15 < share < coverage + 0.1, (s, share)
        assert _mean(out, inside) < _mean(rgb, inside)
        assert np.array_equal(out[~inside], rgb[~inside])
    assert shares[1] > shares[0]
    # one connected-ish pool with a low-frequency shape, not speckle: few separate blobs
    pool = _redness(corrupt(rgb, "blood", 1, 5, inside)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(pool)
    assert sum(1 for a in stats[1:, cv2.CC_STAT_AREA] if a > 20) <= 4
