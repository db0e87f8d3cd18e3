"""Endoscope profiles: round trip, defaults, and a one-line error naming the file and field."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.optics.capture_settings import CaptureSettings
from models.core.optics.lens import LensModel
from models.core.optics.profile import (
    ColorSection,
    FovSection,
    LatencySection,
    Profile,
    default_profile,
    load_or_default,
    load_profile,
    save_profile,
)
from models.core.timing import Timing

pytestmark = pytest.mark.unit

FISHEYE = LensModel("fisheye", (1920, 1080), ((800.0, 0.0, 960.0), (0.0, 800.0, 540.0), (0.0, 0.0, 1.0)),
                    (0.05, -0.02, 0.004, -0.001), rms_px=0.21)


def _full() -> Profile:
    return default_profile().updated(
        fov=FovSection("fixed", (1920, 1080), (958.4, 540.2), 421.7, notch_deg=312.5, undistorted=True,
                       measured={"frames": 40}),
        color=ColorSection("gains", (1.12, 1.0, 0.81), method="white-reference"),
        lens=FISHEYE, latency=LatencySection(92.0, 110.5, 131.2, 580, "capture:0"),
        capture=CaptureSettings(0, "v4l2", 1920, 1080, 60.0, "MJPG", 1),
        timing=Timing(no_signal_after_s=0.6, ai_backoff_s=(0.2, 1.0)), name="OR3 tower")


def test_round_trip_keeps_every_section(tmp_path):
    full = _full()  # one instance: its `created` stamp must not cross a second between two calls
    path = save_profile(full, tmp_path / "tower.yaml")
    assert load_profile(path) == full
    text = path.read_text()
    assert "format: endospine-profile/1" in text and "device: 0" in text
    assert "timing:\n  no_signal_after_s: 0.6\n  ai_backoff_s: [0.2, 1.0]\n" in text  # only what differs
    assert [p.name for p in tmp_path.iterdir()] == ["tower.yaml"]  # written atomically, nothing left behind


def test_default_profile_is_automatic_fov_and_no_change(tmp_path):
    p = default_profile()
    assert p.fov.mode == "auto" and p.color.correction() is None and p.lens is None
    assert load_or_default(tmp_path / "none-yet.yaml") == p
    save_profile(p, tmp_path / "default.yaml")
    assert load_profile(tmp_path / "default.yaml") == p and p.timing == Timing()
    assert "timing" not in (tmp_path / "default.yaml").read_text()  # default timing: not written


def test_fixed_circle_scales_with_the_frame_and_not_across_shapes():
    fov = FovSection("fixed", (1920, 1080), (959.5, 539.5), 420.0)
    c = fov.circle_for(960, 540)
    assert (c.cx, c.cy, c.r) == pytest.approx((479.5, 269.5, 210.0))
    assert fov.circle_for(1920, 1080).r == 420.0
    assert fov.circle_for(1440, 1080) is None          # another aspect: detect instead


BAD = [
    ("fov: {mode: fixed}\n", "format"),
    ("format: endospine-profile/2\n", "format: expected"),
    ("format: endospine-profile/1\nfov: {mode: fixed}\n", "fov: mode fixed needs frame_size"),
    ("format: endospine-profile/1\nfov: {mode: sometimes}\n", "fov.mode: must be one of"),
    ("format: endospine-profile/1\nfov: {mode: fixed, frame_size: [100, 100], center: [50, 50], radius: -3}\n",
     "fov.radius"),
    ("format: endospine-profile/1\nfov: {mode: fixed, frame_size: [100, 100], center: [150, 50], radius: 30}\n",
     "fov.center: (150, 50) lies outside"),
    ("format: endospine-profile/1\nfov: {radus: 3}\n", "fov.radus: unknown field"),
    ("format: endospine-profile/1\ncolor: {mode: gains, gains: [1, 2]}\n", "color.gains"),
    ("format: endospine-profile/1\ncolor: {mode: gains, gains: [1, 0, 1]}\n", "color.gains"),
    ("format: endospine-profile/1\ncolor: {mode: matrix}\n", "color.matrix"),
    ("format: endospine-profile/1\ncolor: {mode: gains, gains: [1, one, 1]}\n", "color.gains: unexpected value"),
    ("format: endospine-profile/1\nlens: {model: fisheye, image_size: [640, 480], "
     "camera_matrix: [[300, 0, 320], [0, 300, 240], [0, 0, 1]], distortion: [0, 0]}\n", "lens.distortion"),
    ("format: endospine-profile/1\nlens: {model: pinhole}\n", "lens"),
    ("format: endospine-profile/1\nlatency: {p50_ms: 3}\n", "latency: missing field(s) p95_ms, max_ms, samples"),
    ("format: endospine-profile/1\nlatency: {p50_ms: 30, p95_ms: 20, max_ms: 40, samples: 5}\n", "latency: p50_ms <="),
    ("format: endospine-profile/1\ncapture: {device: 0, backend: vfw}\n", "capture: backend must be one of"),
    ("format: endospine-profile/1\ncapture: {device: -1}\n", "capture: device must be"),
    ("format: endospine-profile/1\nfov: {mode: fixed, frame_size: [100, 100], center: [50, 50], radius: 30, "
     "undistorted: true}\n", "fov.undistorted"),
    ("format: endospine-profile/1\ntiming: {no_signal_after_s: -1}\n", "timing.no_signal_after_s: must be a positive"),
    ("format: endospine-profile/1\ntiming: {no_signal_after: 1}\n", "timing.no_signal_after: unknown timing rule"),
    ("format: endospine-profile/1\ntiming: {ai_backoff_s: 2}\n", "timing.ai_backoff_s: a list of seconds"),
    ("format: endospine-profile/1\ntiming: [0.4]\n", "timing: must be a mapping"),
    ("format: endospine-profile/1\nextra: 1\n", "extra: unknown section"),
    ("format: endospine-profile/1\nfov: [1, 2]\n", "fov: must be a mapping"),
    ("- just\n- a list\n", "must be a mapping of sections"),
    ("format: endospine-profile/1\nfov: {mode: auto\n", "cannot read profile"),
    ("", "must be a mapping"),
]


@pytest.mark.parametrize("text, problem", BAD)
def test_malformed_profiles_name_the_file_and_field(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EndoSpineError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(EndoSpineError, match="profile not found"):
        load_profile(tmp_path / "nope.yaml")


def test_gains_of_one_are_no_correction():
    assert ColorSection("gains", (1.0, 1.0, 1.0)).correction() is None
    c = ColorSection("matrix", matrix=((1.1, 0, 0), (0, 1, 0), (0, 0, 0.9))).correction()
    assert c is not None and np.allclose(np.diag(c.matrix), (1.1, 1, 0.9))
