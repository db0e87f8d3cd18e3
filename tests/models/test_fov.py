from __future__ import annotations

import numpy as np
import pytest

from models.fov import Circle, FovTracker, detect_fov
from models.synth import SyntheticClip


@pytest.mark.parametrize("size, seed", [((1920, 1080), 1), ((1280, 720), 2), ((512, 512), 3), ((640, 480), 4)])
def test_detects_the_synthetic_circle(size, seed):
    clip = SyntheticClip(seed, 0, *size)
    cx, cy, r = clip.fov
    found = detect_fov(clip.render(10)[0])
    assert found is not None
    tol = 0.02 * r + 2  # the detector runs on a 192 px wide copy
    assert abs(found.cx - cx) < tol and abs(found.cy - cy) < tol and abs(found.r - r) < tol


@pytest.mark.unit
def test_no_surround_no_circle():
    assert detect_fov(np.full((100, 160, 3), 120, np.uint8)) is None
    assert detect_fov(np.zeros((100, 160, 3), np.uint8)) is None


@pytest.mark.unit
def test_box_and_outside():
    c = Circle(50, 40, 30)
    assert c.box(200, 100) == (20, 10, 60, 60)
    assert Circle(10, 10, 30).box(200, 100) == (0, 0, 40, 40)  # clipped to the frame
    out = c.outside((20, 10, 60, 60), (6, 6))
    assert out[0, 0] and out[5, 5] and not out[3, 3]


@pytest.mark.unit
def test_tracker_smooths_small_moves_and_jumps_on_big_ones():
    def frame(cx, r):
        img = np.zeros((200, 300, 3), np.uint8)
        yy, xx = np.mgrid[0:200, 0:300]
        img[(xx - cx) ** 2 + (yy - 100) ** 2 <= r * r] = 150
        return img

    t = FovTracker(every=1, smoothing=0.5, jump=0.2)
    a = t.update(frame(150, 80))
    b = t.update(frame(153, 80))
    assert a.cx < b.cx < 153  # smoothed
    c = t.update(frame(150, 50))
    assert abs(c.r - 50) < 3  # zoom change: taken at once
