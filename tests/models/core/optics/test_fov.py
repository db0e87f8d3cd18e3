from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.core.optics.fov import Circle, FovTracker, detect_fov
from models.synth import SyntheticClip


@pytest.mark.parametrize("size, seed", [((1920, 1080), 1), ((1280, 720), 2), ((512, 512), 3), ((640, 480), 4)])
def test_detects_the_synthetic_circle(size, seed):
    clip = SyntheticClip(seed, 0, *size)
    cx, cy, r = clip.fov
    found = detect_fov(clip.render(10)[0])
    assert found is not None
    tol = 0.003 * r  # subpixel rim points on the full frame (measured: at most 0.05% of the radius)
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


# -- precision and robustness (calibration.synthetic: frames with known circles) -------------------
from calibration.synthetic import FOV_CASES, fov_case  # noqa: E402


@pytest.mark.parametrize("kind", FOV_CASES)
def test_hard_frames_within_one_percent_of_the_radius(kind):
    """Off-center 16:9, letterbox bars, instruments across the rim, dark rim tissue, burned-in text."""
    frame, truth = fov_case(kind, seed=1, size=(960, 540))
    found = detect_fov(frame)
    assert found is not None
    assert np.hypot(found.cx - truth.cx, found.cy - truth.cy) <= 0.01 * truth.r
    assert abs(found.r - truth.r) <= 0.01 * truth.r
    # measured here: all cases within 0.1% of the radius; a regression to the old coarse
    # detector (about 2% at this size) fails the line below
    assert max(np.hypot(found.cx - truth.cx, found.cy - truth.cy), abs(found.r - truth.r)) <= 0.003 * truth.r


@pytest.mark.unit
@pytest.mark.parametrize("name", ["room", "bright-rectangle", "ellipse", "noise"])
def test_frames_without_a_circle_have_none(name):
    rng = np.random.default_rng(3)
    if name == "room":  # a plain camera: smooth scene, no dark surround
        frame = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    elif name == "bright-rectangle":
        frame = np.full((480, 640, 3), 10, np.uint8)
        frame[100:380, 150:500] = 180
    elif name == "ellipse":
        frame = np.zeros((480, 640, 3), np.uint8)
        cv2.ellipse(frame, (320, 240), (200, 150), 0, 0, 360, (180, 120, 90), -1)
    else:
        frame = rng.integers(0, 40, (480, 640, 3), dtype=np.uint8)
    assert detect_fov(frame) is None


def test_tracker_follows_a_zoom_in_the_scene_engine():
    """auto mode: a new scope or zoom (another circle) is taken at the next detection."""
    a, b = SyntheticClip(0, 0, 640, 360), SyntheticClip(4, 0, 640, 360)  # radius 136 -> 150 px: a zoom
    tracker = FovTracker(every=5)
    for t in range(5):
        circle = tracker.update(a.render(t)[0])
    assert abs(circle.r - a.fov[2]) < 0.5
    assert abs(a.fov[2] - b.fov[2]) > 5    # a different circle comes next
    for t in range(6):
        circle = tracker.update(b.render(t)[0])
    assert abs(circle.r - b.fov[2]) < 0.5 and abs(circle.cx - b.fov[0]) < 0.5


@pytest.mark.unit
def test_tracker_needs_the_frame_only_when_it_detects():
    frame = np.zeros((200, 300, 3), np.uint8)
    cv2.circle(frame, (150, 100), 80, (150, 110, 90), -1)
    t = FovTracker(every=3)
    assert t.due and t.update(frame) is not None
    assert not t.due and t.update(None) is not None and t.update(None) is not None
    assert t.due
    with pytest.raises(ValueError, match="needs the frame"):
        t.update(None)
