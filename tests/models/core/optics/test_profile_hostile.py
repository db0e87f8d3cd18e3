"""Hostile profiles: every number finite and in range, `mode: off` as written, aliases refused,
absurd lens values refused (and every lens that is accepted undistorts without NaN), profiles
rewritten without aliases. Each refusal is one line naming the file and the field."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.core.errors import EndoSpineError
from models.core.optics.lens import FOCAL_PX, MAX_COEFFICIENT, MAX_FRAME_SIZE, LensModel, Undistorter
from models.core.optics.profile import FovSection, Profile, load_profile, save_profile

pytestmark = pytest.mark.unit

HEAD = "format: endospine-profile/1\n"
LENS = "lens: {model: fisheye, image_size: [640, 480], camera_matrix: [[FX, 0, 320], [0, 300, 240], [0, 0, 1]], " \
       "distortion: [0.05, -0.02, 0.004, -0.001]}\n"
FIXED = "fov: {mode: fixed, frame_size: [W, H], center: [100, 100], radius: 50}\n"  # W, H: replaced


def _refused(tmp_path, text: str, *words: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + text, encoding="utf-8")
    with pytest.raises(EndoSpineError) as exc:
        load_profile(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for word in words:  # in the problem, not in the path (named after the test)
        assert word in message[len(f"{path}: "):], message
    return message


@pytest.mark.parametrize("size", ["[.inf, 240]", "[1.0e+30, 240]", "[.nan, 240]", "[-.inf, 240]", "[9000, 240]",
                                  "[8192, 8192]", "[320.5, 240]", "[true, 240]", "[320]", "[1.0e+400, 240]"])
def test_frame_size_must_be_whole_numbers_within_the_video_limit(tmp_path, size):
    _refused(tmp_path, FIXED.replace("[W, H]", size), "fov.frame_size")


@pytest.mark.parametrize("field, value", [("radius", ".inf"), ("radius", ".nan"), ("radius", "1.0e+9"),
                                          ("center", "[.nan, 10]"), ("center", "[1.0e+300, 10]"), ("notch_deg", ".nan"),
                                          ("notch_deg", "-.inf")])
def test_every_fov_number_is_finite_and_in_range(tmp_path, field, value):
    fov = {"mode": "fixed", "frame_size": "[320, 240]", "center": "[100, 100]", "radius": "50", field: value}
    _refused(tmp_path, f"fov: {{{', '.join(f'{k}: {v}' for k, v in fov.items())}}}\n", f"fov.{field}")


@pytest.mark.parametrize("text, field", [
    ("color: {mode: gains, gains: [.nan, 1, 1]}\n", "color.gains"),
    ("color: {mode: gains, gains: [.inf, 1, 1]}\n", "color.gains"),
    ("color: {mode: matrix, matrix: [[.nan, 0, 0], [0, 1, 0], [0, 0, 1]]}\n", "color.matrix"),
    ("latency: {p50_ms: 1, p95_ms: 2, max_ms: .inf, samples: 3}\n", "latency.max_ms"),
    ("latency: {p50_ms: 1, p95_ms: 2, max_ms: 3, samples: 1.0e+300}\n", "latency.samples"),
    ("capture: {device: 0, fps: .nan}\n", "capture"),
    ("capture: {device: 0, width: 1.0e+300}\n", "capture.width"),
    ("capture: {device: 99999999999}\n", "capture.device"),
    ("timing: {no_signal_after_s: .inf}\n", "timing.no_signal_after_s"),
])
def test_every_other_number_is_finite_and_in_range(tmp_path, text, field):
    _refused(tmp_path, text, field)


@pytest.mark.parametrize("fx, problem", [("1.0e+300", "focal"), ("1.0e-300", "focal"), (".inf", "lens.camera_matrix"),
                                         (".nan", "lens.camera_matrix"), ("0.5", "focal"), ("-300", "focal")])
def test_absurd_focal_lengths_are_refused(tmp_path, fx, problem):
    _refused(tmp_path, LENS.replace("FX", fx), "lens.camera_matrix", problem)


@pytest.mark.parametrize("change, field", [
    (("[0.05, -0.02, 0.004, -0.001]", "[1.0e+300, 0, 0, 0]"), "lens.distortion"),
    (("[0.05, -0.02, 0.004, -0.001]", "[.nan, 0, 0, 0]"), "lens.distortion"),
    (("[0.05, -0.02, 0.004, -0.001]", "[2000, 0, 0, 0]"), "lens.distortion"),
    (("[[FX, 0, 320]", "[[300, 0, 1.0e+9]"), "lens.camera_matrix"),
    (("[[FX, 0, 320]", "[[300, 0, 0]"), "lens.camera_matrix"),       # principal point on the frame's edge
    (("[[FX, 0, 320]", "[[300, 1.0e+6, 320]"), "lens.camera_matrix"),   # skew
    (("[0, 0, 1]]", "[0, 0, 2]]"), "lens.camera_matrix"),
    (("image_size: [640, 480]", "image_size: [1.0e+12, 480]"), "lens.image_size"),
    (("image_size: [640, 480]", "image_size: [.inf, 480]"), "lens.image_size"),
    (("}\n", ", balance: .nan}\n"), "lens.balance"),
    (("}\n", ", valid_radius: 1.0e-300}\n"), "lens.valid_radius"),
    (("}\n", ", valid_radius: .inf}\n"), "lens.valid_radius"),
    (("}\n", ", rms_px: -1}\n"), "lens.rms_px"),
])
def test_absurd_lens_values_are_refused(tmp_path, change, field):
    _refused(tmp_path, LENS.replace(*change).replace("FX", "300"), field)


def test_the_frame_limit_is_the_video_sources_limit():
    from models.core.sources.video import MAX_SIZE

    assert MAX_FRAME_SIZE == MAX_SIZE


@pytest.mark.parametrize("word", ["off", "auto", "fixed"])
def test_fov_modes_read_as_written(tmp_path, word):
    path = tmp_path / "p.yaml"
    extra = ", frame_size: [320, 240], center: [160, 120], radius: 100" if word == "fixed" else ""
    path.write_text(f"{HEAD}fov: {{mode: {word}{extra}}}\n")
    assert load_profile(path).fov.mode == word


def test_alias_profiles_are_refused_and_never_rewritten_larger(tmp_path):
    _refused(tmp_path, "fov: {mode: auto, measured: &m {a: [1, 2, 3]}}\ncolor: {mode: none, measured: *m}\n", "alias")
    shared = {"frames": list(range(50))}   # a profile built in code that shares one object: written out plainly
    profile = Profile(fov=FovSection("auto", measured=shared), name="OR3")
    profile = Profile(fov=profile.fov, color=type(profile.color)(measured=shared), name="OR3")
    path = tmp_path / "p.yaml"
    text = save_profile(profile, path).read_text()
    assert "&" not in text and "*" not in text
    assert load_profile(path) == profile


def test_a_written_profile_keeps_off_as_a_string(tmp_path):
    path = save_profile(Profile(fov=FovSection("off")), tmp_path / "p.yaml")
    assert load_profile(path).fov.mode == "off"


# -- every lens the checks accept undistorts without NaN or warnings -------------------------------
finite = st.floats(-MAX_COEFFICIENT, MAX_COEFFICIENT, allow_nan=False)
small = st.floats(-2.0, 2.0, allow_nan=False)


@settings(max_examples=int(os.environ.get("ENDOSPINE_FUZZ_EXAMPLES", "40")), deadline=None,
          derandomize=not os.environ.get("ENDOSPINE_FUZZ_EXAMPLES"), suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(["fisheye", "rational"]), f=st.floats(*FOCAL_PX), aspect=st.floats(0.5, 2.0),
       cx=st.floats(0.1, 0.9), cy=st.floats(0.1, 0.9), skew=st.floats(-1.0, 1.0),
       coefficients=st.lists(finite | small, min_size=8, max_size=8), balance=st.floats(0.0, 1.0),
       valid=st.none() | st.floats(1.0, 2560.0))
def test_accepted_lenses_undistort_without_nan(model, f, aspect, cx, cy, skew, coefficients, balance, valid):
    fy = min(max(f * aspect, FOCAL_PX[0]), FOCAL_PX[1])
    lens = LensModel(model, (640, 480), ((f, skew * f, cx * 640), (0.0, fy, cy * 480), (0.0, 0.0, 1.0)),
                     tuple(coefficients[:4 if model == "fisheye" else 8]), balance=balance, valid_radius=valid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        und = Undistorter(lens, (64, 48))
        assert np.isfinite(und.new_k).all() and und.new_k[0, 0] > 0 and np.isfinite(und.rho_valid)
        assert und.frame(np.full((48, 64, 3), 200, np.uint8)).shape == (48, 64, 3)
        ux, uy = und.grid_to_undistorted((0, 0, 64, 48), (16, 12))
        assert np.isfinite(ux).all() and np.isfinite(uy).all()
        x, y, w, h = und.raw_box((8, 8, 32, 24))
        assert 0 <= x < 64 and 0 <= y < 48 and w >= 1 and h >= 1


def test_a_saved_profile_always_loads_again(tmp_path):
    """Rounding to 6 decimals must not turn a valid value invalid (fps 1e-9 -> 0, radius just over 4 -> 4)."""
    from models.core.optics.capture_settings import CaptureSettings

    profile = Profile(fov=FovSection("fixed", (320, 240), (160.0, 120.0), 4.0000001),
                      capture=CaptureSettings(0, fps=1e-9), name="edge")
    assert load_profile(save_profile(profile, tmp_path / "p.yaml")) == profile
    plain = Profile(fov=FovSection("fixed", (320, 240), (160.123456789, 120.0), 100.0))
    assert "160.123457" in save_profile(plain, tmp_path / "q.yaml").read_text()  # rounded where it is harmless
