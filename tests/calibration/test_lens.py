"""endospine-calibrate lens: checkerboards through a known lens give that lens back."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.cli import main
from calibration.frames import Sample
from calibration.lens import board_points, calibrate, find_corners, parse_pattern
from calibration.synthetic_lens import FISHEYE, RATIONAL, BoardCamera, mapping_error
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, write_image
from models.core.optics.lens import Undistorter
from models.core.optics.profile import FovSection, Profile, load_profile, save_profile

PATTERN = (7, 5)


@pytest.fixture(scope="module")
def fisheye_boards(tmp_path_factory):
    cam = BoardCamera(FISHEYE)
    views = cam.views(PATTERN, 8, seed=2)
    folder = tmp_path_factory.mktemp("boards")
    for i, (image, _, _) in enumerate(views):
        write_image(folder / f"board{i:02d}.png", image)
    write_image(folder / "z_no_board.png", np.full((480, 640, 3), 90, np.uint8))
    corners = np.concatenate([cam.project(board_points(PATTERN), r, t) for _, r, t in views])
    return folder, corners


def _check_recovered(truth, found, corners, focal_pct, center_px, mapping_px):
    k0, k1 = np.asarray(truth.camera_matrix), np.asarray(found.camera_matrix)
    assert abs(k1[0, 0] / k0[0, 0] - 1) * 100 < focal_pct and abs(k1[1, 1] / k0[1, 1] - 1) * 100 < focal_pct
    assert np.hypot(k1[0, 2] - k0[0, 2], k1[1, 2] - k0[1, 2]) < center_px
    assert mapping_error(truth, found, corners) < mapping_px


def test_cli_recovers_the_fisheye_and_carries_the_circle_over(fisheye_boards, tmp_path, capsys):
    folder, corners = fisheye_boards
    profile = tmp_path / "tower.yaml"
    save_profile(Profile(fov=FovSection("fixed", (640, 480), (321.0, 238.0), 200.0)), profile)
    assert main(["lens", str(folder), "--pattern", "7x5", "--out", str(profile)]) == 0
    captured = capsys.readouterr()
    assert "z_no_board.png: no 7x5 checkerboard found" in captured.err
    assert "RMS reprojection error" in captured.out
    p = load_profile(profile)
    assert p.lens.model == "fisheye" and p.lens.undistort and p.lens.rms_px < 0.5
    # measured here: focal 0.05%, center 0.4 px, rays land within 0.4 px over the boards' area
    _check_recovered(FISHEYE, p.lens, corners, focal_pct=1.0, center_px=2.0, mapping_px=1.0)
    # undistorted, the board's rows of corners are straight lines again (they bow in the raw image)
    raw = read_image(folder / "board00.png")
    bowed, straight = find_corners(raw, PATTERN), find_corners(Undistorter(p.lens, (640, 480)).frame(raw), PATTERN)
    assert straight is not None
    assert _worst_row_bend(straight) < 0.5 and 3 * _worst_row_bend(straight) < _worst_row_bend(bowed)
    # the fixed circle now lives in the undistorted frame: the old rim maps onto the new circle
    assert p.fov.undistorted
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    rim = Undistorter(p.lens, (640, 480)).to_undistorted(np.stack([321 + 200 * np.cos(t), 238 + 200 * np.sin(t)], 1))
    d = np.hypot(rim[:, 0] - p.fov.center[0], rim[:, 1] - p.fov.center[1])
    assert np.abs(d - p.fov.radius).max() < 0.01 * p.fov.radius


def _worst_row_bend(corners: np.ndarray) -> float:
    """Largest distance (px) of a corner from the straight line through its row."""
    worst = 0.0
    for row in corners.reshape(PATTERN[1], PATTERN[0], 2).astype(np.float64):
        centered = row - row.mean(axis=0)
        normal = np.linalg.svd(centered)[2][1]
        worst = max(worst, float(np.abs(centered @ normal).max()))
    return worst


def test_rational_model():
    cam = BoardCamera(RATIONAL)
    views = cam.views(PATTERN, 7, seed=4)
    est = calibrate([Sample(f"b{i}", v[0]) for i, v in enumerate(views)], PATTERN, "rational")
    corners = np.concatenate([cam.project(board_points(PATTERN), r, t) for _, r, t in views])
    assert est.rms_px < 0.5 and len(est.lens.distortion) == 8
    _check_recovered(RATIONAL, est.lens, corners, focal_pct=1.0, center_px=2.0, mapping_px=1.5)


def test_no_board_found_names_the_images(tmp_path, capsys):
    for i in range(3):
        write_image(tmp_path / f"wall{i}.png", np.full((120, 160, 3), 60 + 40 * i, np.uint8))
    assert main(["lens", str(tmp_path), "--pattern", "9x6", "--out", str(tmp_path / "p.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert "checkerboard was found in 0 of 3 images" in err and "wall0.png" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.unit
@pytest.mark.parametrize("text", ["9", "9x", "axb", "2x6"])
def test_bad_patterns(text):
    with pytest.raises(EndoSpineError, match="--pattern"):
        parse_pattern(text)
