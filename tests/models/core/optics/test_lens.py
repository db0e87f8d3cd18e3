"""Lens undistortion: maps and point mappings agree with each other and with OpenCV's projection."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.synthetic_lens import FISHEYE, RATIONAL
from models.core.optics.lens import LensModel, Undistorter

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("lens", [FISHEYE, RATIONAL], ids=["fisheye", "rational"])
def test_points_round_trip_and_match_the_image_remap(lens):
    und = Undistorter(lens, lens.image_size)
    rng = np.random.default_rng(0)
    raw = rng.uniform([60, 60], [580, 420], (200, 2))
    back = und.to_raw(und.to_undistorted(raw))
    assert np.abs(back - raw).max() < 0.01
    # a bright dot at a raw position appears, after the image remap, where to_undistorted says
    img = np.zeros((480, 640), np.uint8)
    cv2.circle(img, (400, 300), 3, 255, -1)
    dot = und.frame(np.dstack([img] * 3))[..., 0].astype(np.float64)
    ys, xs = np.nonzero(dot > 20)
    w = dot[ys, xs]
    centroid = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    assert np.hypot(*(centroid - und.to_undistorted(np.array([[400.0, 300.0]]))[0])) < 0.5


def test_grid_lookup_matches_exact_points():
    und = Undistorter(FISHEYE, (640, 480))
    box, size = (100, 80, 300, 240), (75, 60)
    ux, uy = und.grid_to_undistorted(box, size)
    xs = box[0] + (np.arange(size[0]) + 0.5) * (box[2] / size[0]) - 0.5
    ys = box[1] + (np.arange(size[1]) + 0.5) * (box[3] / size[1]) - 0.5
    mx, my = np.meshgrid(xs, ys)
    exact = und.to_undistorted(np.stack([mx.ravel(), my.ravel()], 1))
    assert np.abs(ux.ravel() - exact[:, 0]).max() < 0.05 and np.abs(uy.ravel() - exact[:, 1]).max() < 0.05


def test_raw_box_covers_the_region():
    und = Undistorter(FISHEYE, (640, 480))
    x, y, w, h = und.raw_box((200, 150, 240, 180))
    corners = und.to_raw(np.array([[200, 150], [440, 150], [440, 330], [200, 330]], float))
    assert (corners[:, 0] >= x - 1).all() and (corners[:, 0] <= x + w + 1).all()
    assert (corners[:, 1] >= y - 1).all() and (corners[:, 1] <= y + h + 1).all()


def test_resized_frames_scale_the_camera_matrix():
    k, _ = FISHEYE.matrices((320, 240))
    assert k[0, 0] == pytest.approx(FISHEYE.camera_matrix[0][0] / 2) and k[1, 2] == pytest.approx(237.0 / 2)
    assert FISHEYE.fits((320, 240)) and not FISHEYE.fits((640, 360))


@pytest.mark.parametrize("kw, problem", [(dict(model="pinhole"), "model"), (dict(distortion=(0.1,)), "distortion"),
                                         (dict(camera_matrix=((0, 0, 1), (0, 1, 1), (0, 0, 1))), "camera_matrix"),
                                         (dict(balance=2.0), "balance")])
def test_bad_lens_models(kw, problem):
    base = dict(model="fisheye", image_size=(640, 480), camera_matrix=FISHEYE.camera_matrix, distortion=FISHEYE.distortion)
    with pytest.raises(ValueError, match=problem):
        LensModel(**{**base, **kw})


def test_region_is_the_undistorted_frame_cut_to_the_box():
    """The runtime undistorts only the crop it needs; training undistorts whole images: same pixels."""
    und = Undistorter(FISHEYE, (640, 480))
    frame = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert np.array_equal(und.region(frame, (150, 60, 300, 280)), und.frame(frame)[60:340, 150:450])
