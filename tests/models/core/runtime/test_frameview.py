"""FramePrep: a profile applied the same way to run-time frames and to training images."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.synthetic_lens import FISHEYE
from models.core.optics.color import ColorCorrection
from models.core.optics.lens import LensModel, Undistorter
from models.core.optics.profile import ColorSection, FovSection, Profile
from models.core.runtime.frameview import FramePrep
from models.core.runtime.postprocess import view_labels
from models.core.runtime.preprocess import Preprocess

PRE = Preprocess((128, 128))


def _disc_frame(w=320, h=240, cx=170.0, cy=118.0, r=90.0, level=(150, 110, 80)):
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.zeros((h, w, 3), np.uint8)
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = level
    return frame


@pytest.mark.unit
def test_default_profile_crops_the_found_circle_and_ignores_outside():
    frame = _disc_frame()
    x, view = FramePrep(None, PRE)(frame)
    assert x.shape == (1, 3, 128, 128)
    assert view.circle is not None and abs(view.circle.r - 90) < 1
    assert view.box == view.crop == view.circle.box(320, 240)
    probs = np.zeros((4, 16, 16), np.float32)
    probs[1] = 1.0
    labels = view_labels(probs, view, (view.box[2], view.box[3]), {}, 255)
    assert labels[0, 0] == 255 and labels[labels.shape[0] // 2, labels.shape[1] // 2] == 1


@pytest.mark.unit
def test_fixed_and_off_modes():
    frame = _disc_frame()
    fixed = Profile(fov=FovSection("fixed", (640, 480), (300.0, 220.0), 160.0))   # measured at 2x: scaled
    _, view = FramePrep(fixed, PRE)(frame)
    assert (view.circle.cx, view.circle.cy, view.circle.r) == pytest.approx((149.75, 109.75, 80.0))
    _, view = FramePrep(Profile(fov=FovSection("off")), PRE)(frame)
    assert view.circle is None and view.box == PRE.crop_box(320, 240)


@pytest.mark.unit
def test_color_correction_reaches_the_model_input():
    frame = _disc_frame(level=(120, 120, 120))
    gains = (1.3, 1.0, 0.8)
    x_plain, _ = FramePrep(None, PRE)(frame)
    x_corr, view = FramePrep(Profile(color=ColorSection("gains", gains)), PRE)(frame)
    expected = ColorCorrection.from_gains(gains)(np.full((1, 1, 3), 120, np.uint8))[0, 0]
    center = x_corr[0, :, 64, 64] * 0.5 + 0.5     # back to 0..1 (mean 0.5, std 0.5)
    assert np.allclose(center * 255, expected, atol=1.0)
    assert np.allclose(x_plain[0, :, 64, 64] * 0.5 + 0.5, 120 / 255, atol=1e-3)


@pytest.mark.unit
def test_training_view_matches_the_runtime_crop():
    frame = _disc_frame()
    label = np.full(frame.shape[:2], 2, np.uint8)
    prep = FramePrep(Profile(color=ColorSection("gains", (1.2, 1.0, 0.9))), PRE, independent=True)
    image, lab = prep.training_view(frame, label)
    _, view = prep(frame)
    assert image.shape[:2] == lab.shape == (view.crop[3], view.crop[2])
    assert lab[0, 0] == 255 and lab[lab.shape[0] // 2, lab.shape[1] // 2] == 2          # outside the circle: ignore
    assert image[image.shape[0] // 2, image.shape[1] // 2, 0] > 150                      # red gain applied


def test_masks_come_back_onto_the_distorted_frame():
    """Undistortion is for the model's view only: labels computed on it land on the raw frame
    where the same tissue is (checked against the exact point mapping)."""
    lens = LensModel(**{**FISHEYE.__dict__, "undistort": True})
    prep = FramePrep(Profile(fov=FovSection("off"), lens=lens), Preprocess((128, 128), crop="none"))
    frame = np.full((480, 640, 3), 120, np.uint8)
    _, view = prep(frame)
    und = view.lens
    assert isinstance(und, Undistorter) and view.crop == (0, 0, 640, 480)
    # class 1 inside a circle of the undistorted frame, as the model would see the tissue
    ph, pw = 96, 128
    gy, gx = np.mgrid[0:ph, 0:pw]
    ux, uy = (gx + 0.5) * 640 / pw - 0.5, (gy + 0.5) * 480 / ph - 0.5
    inside = (ux - 330) ** 2 + (uy - 250) ** 2 < 120 ** 2
    probs = np.stack([~inside, inside, np.zeros_like(inside), np.zeros_like(inside)]).astype(np.float32)
    labels = view_labels(probs, view, (view.box[2] // 2, view.box[3] // 2), {}, 255)
    x, y, bw, bh = view.box
    hh, ww = labels.shape
    cx, cy = np.meshgrid(x + (np.arange(ww) + 0.5) * bw / ww - 0.5, y + (np.arange(hh) + 0.5) * bh / hh - 0.5)
    exact = und.to_undistorted(np.stack([cx.ravel(), cy.ravel()], 1))
    truth = ((exact[:, 0] - 330) ** 2 + (exact[:, 1] - 250) ** 2 < 120 ** 2).reshape(hh, ww)
    valid = labels != 255
    assert valid.mean() > 0.9
    assert (labels[valid] == truth[valid]).mean() > 0.99
    # and the distortion mattered: the same circle taken in raw coordinates would be off
    naive = ((cx - 330) ** 2 + (cy - 250) ** 2 < 120 ** 2)
    assert (naive != truth).mean() > 0.01
