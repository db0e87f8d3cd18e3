"""endospine-calibrate fov and color: known circles, known casts, bad references, profile updates."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.cli import main
from calibration.color import gray_world, white_reference
from calibration.fov import estimate_fov
from calibration.frames import Sample, sample_frames
from calibration.synthetic import CASTS, cast, fov_case, scope_picture, white_card
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, write_image
from models.core.optics.color import ColorCorrection, ciede2000, rgb8_to_lab
from models.core.optics.fov import Circle
from models.core.optics.profile import load_profile
from models.synth import SyntheticClip


@pytest.fixture(scope="module")
def synthetic_frames():
    """12 frames spread over a 16:9 synthetic clip whose circle has a notch marker."""
    return sample_frames("synthetic:3?width=960&height=540", 12), SyntheticClip(3, 0, 960, 540)


def test_multi_frame_circle_and_notch(synthetic_frames):
    frames, clip = synthetic_frames
    est = estimate_fov(frames)
    cx, cy, r = clip.fov
    assert est.used == 12 and not est.missing
    assert np.hypot(est.circle.cx - cx, est.circle.cy - cy) < 0.01 * r and abs(est.circle.r - r) < 0.01 * r
    assert max(np.hypot(est.circle.cx - cx, est.circle.cy - cy), abs(est.circle.r - r)) < 0.5   # subpixel
    true_notch = clip.notch_deg
    assert abs((est.notch_deg - true_notch + 180) % 360 - 180) < 1.0


def test_outlier_frames_are_rejected(synthetic_frames):
    frames, clip = synthetic_frames
    odd = [Sample(f"odd {i}", fov_case("offcenter-16x9", seed=i, size=(960, 540))[0]) for i in range(3)]
    est = estimate_fov(frames[:9] + odd)
    assert sorted(est.rejected) == ["odd 0", "odd 1", "odd 2"] and est.used == 9
    assert abs(est.circle.r - clip.fov[2]) < 0.5


def test_no_circle_unsteady_circle_and_mixed_sizes():
    plain = [Sample(f"cam frame {i}", np.full((120, 160, 3), 90 + i, np.uint8)) for i in range(3)]
    with pytest.raises(EndoSpineError, match="3 frames from cam: no circular field of view"):
        estimate_fov(plain)
    zooms = [Sample(f"z {i}", fov_case("centered", seed=i, size=(480, 270))[0]) for i in range(3)]  # r 103, 110, 113
    with pytest.raises(EndoSpineError, match="not steady"):
        estimate_fov(zooms)
    with pytest.raises(EndoSpineError, match="unlike the 160x120"):
        estimate_fov(plain[:1] + [Sample("big", np.zeros((100, 100, 3), np.uint8))])


def test_color_cast_set_returns_within_de2000_3():
    """Known casts on scene-engine frames, corrected from a white card seen under the same cast."""
    before, after = [], []
    for seed in (0, 1):
        img, c = scope_picture(seed, 360)
        yy, xx = np.mgrid[0:360, 0:360]
        inside = (xx - c.cx) ** 2 + (yy - c.cy) ** 2 <= (0.97 * c.r) ** 2
        lab = rgb8_to_lab(img[inside])
        card = white_card((360, 360), c, seed=seed)
        for gains in CASTS:
            seen = cast(img, gains)
            est = white_reference([Sample("card", cast(card, gains))])
            fixed = ColorCorrection.from_gains(est.gains)(seen)
            before.append(ciede2000(rgb8_to_lab(seen[inside]), lab).mean())
            after.append(ciede2000(rgb8_to_lab(fixed[inside]), lab).mean())
    assert np.mean(after) <= 3.0                  # the target (measured here: about 1.3)
    assert np.mean(before) > 4.0                  # the casts were real
    assert all(a < b for a, b in zip(after, before))


@pytest.mark.unit
def test_bad_references_are_refused_with_the_reason():
    c = Circle(119.5, 89.5, 85.0)
    card = white_card((240, 180), c)
    with pytest.raises(EndoSpineError, match="black frame 0: reference too dark"):
        white_reference([Sample("black frame 0", np.zeros((180, 240, 3), np.uint8))])
    with pytest.raises(EndoSpineError, match="hot: reference overexposed"):
        white_reference([Sample("hot", cast(card, (2.5, 2.5, 2.5)))])
    tissue, tc = scope_picture(0, 240)
    with pytest.raises(EndoSpineError, match="not a uniform white or gray reference"):
        white_reference([Sample("tissue", np.minimum(tissue, 235))], tc)       # tissue, not a card
    with pytest.raises(EndoSpineError, match="too strong"):
        white_reference([Sample("blue", cast(card, (0.05, 0.5, 1.0)))])


@pytest.mark.unit
def test_gray_world_neutralizes_a_gray_scene():
    rng = np.random.default_rng(0)
    scene = np.clip(rng.normal(110, 35, (120, 160, 1)) + rng.normal(0, 20, (120, 160, 3)), 0, 255).astype(np.uint8)
    est = gray_world([Sample("scene", cast(scene, (1.3, 1.0, 0.75)))])
    assert est.method == "gray-world"
    assert np.allclose(np.array(est.gains) * (1.3, 1.0, 0.75), np.mean(np.array(est.gains) * (1.3, 1.0, 0.75)), rtol=0.05)


def test_cli_fov_then_color_keep_each_other(tmp_path, capsys):
    frames = tmp_path / "frames"
    for i, seed in enumerate((0, 1, 2)):
        write_image(frames / f"f{i}.png", fov_case("all", seed=0, size=(640, 360))[0])
    truth = fov_case("all", seed=0, size=(640, 360))[1]
    profile = tmp_path / "tower.yaml"
    assert main(["fov", str(frames), "--out", str(profile), "--preview", str(tmp_path / "fov.png")]) == 0
    p = load_profile(profile)
    assert p.fov.mode == "fixed" and abs(p.fov.radius - truth.r) < 0.01 * truth.r and p.fov.frame_size == (640, 360)
    assert read_image(tmp_path / "fov.png").shape == (360, 640, 3)
    card = cast(white_card((640, 360), truth), (1.2, 1.0, 0.8))
    write_image(tmp_path / "card.png", card)
    assert main(["color", str(tmp_path / "card.png"), "--out", str(profile)]) == 0
    p2 = load_profile(profile)
    assert p2.fov == p.fov and p2.color.mode == "gains" and p2.color.method == "white-reference"
    assert np.allclose(np.array(p2.color.gains) * (1.2, 1.0, 0.8), np.mean(np.array(p2.color.gains) * (1.2, 1.0, 0.8)),
                       rtol=0.02)
    out = capsys.readouterr().out
    assert "fov: center" in out and "color (white-reference): gains" in out


def test_cli_bad_inputs_exit_1_with_one_line(tmp_path, capsys):
    write_image(tmp_path / "black.png", np.zeros((90, 120, 3), np.uint8))
    bad = tmp_path / "broken.yaml"
    bad.write_text("format: endospine-profile/1\nfov: {mode: fixed}\n")
    cases = [(["fov", str(tmp_path / "black.png"), "--out", str(tmp_path / "p.yaml")], "no circular field of view"),
             (["color", str(tmp_path / "black.png"), "--out", str(tmp_path / "p.yaml")], "reference too dark"),
             (["fov", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "p.yaml")], "no such file"),
             (["fov", "synthetic:1", "--out", str(bad)], "broken.yaml: fov: mode fixed needs"),
             (["show", str(bad)], "broken.yaml: fov"),
             (["latency", "--source", str(tmp_path / "black.png")], "needs a live source")]
    for argv, problem in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert problem in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "p.yaml").exists()   # nothing measured, nothing written
