"""`--profile` in the app: render and the worker apply it, run falls back to the default on a bad file,
and a profile's capture settings open the tower's card."""
from __future__ import annotations

import json

import pytest

from app.ai.supervisor import worker_config
from app.cli import display_profile, main
from models.core.optics.capture_settings import CaptureSettings
from models.core.optics.profile import ColorSection, FovSection, Profile, save_profile
from models.core.sources.registry import open_source


def test_render_applies_the_profile(small_video, tiny_model_dir, tmp_path, capsys):
    profile = save_profile(Profile(fov=FovSection("fixed", (160, 120), (80.0, 60.0), 50.0),
                                   color=ColorSection("gains", (1.1, 1.0, 0.9))), tmp_path / "p.yaml")
    out = tmp_path / "o.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--max-frames", "3", "--profile", str(profile)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: endospine-profile/1\nfov: {mode: fixed, radius: 3}\n")
    assert main(["render", str(small_video), "--out", str(tmp_path / "b.mp4"), "--model", str(tiny_model_dir),
                 "--profile", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{bad}: fov: mode fixed needs" in err and len(err.splitlines()) == 1


@pytest.mark.unit
def test_live_display_warns_and_uses_the_default_on_a_bad_profile(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: endospine-profile/1\ncolor: {mode: gains, gains: [9, 9]}\n")
    assert display_profile(str(bad)) is None
    err = capsys.readouterr().err
    assert "warning" in err and "bad.yaml: color.gains" in err and "default profile" in err
    good = save_profile(Profile(color=ColorSection("gains", (1.2, 1.0, 0.9))), tmp_path / "good.yaml")
    assert display_profile(str(good)).color.gains == (1.2, 1.0, 0.9)
    assert display_profile(None) is None


def test_worker_gets_the_profile(tiny_model_dir, tmp_path):
    cfg = worker_config(str(tiny_model_dir), "paddle", profile=str(tmp_path / "p.yaml"))
    assert cfg.settings.profile == str(tmp_path / "p.yaml")
    assert worker_config(str(tiny_model_dir), "paddle").settings.profile is None


@pytest.mark.unit
def test_profile_capture_settings_are_defaults_for_a_capture_source():
    tower = CaptureSettings(1, "v4l2", 1920, 1080, 60.0, "MJPG", 1)
    src = open_source("capture:1?fps=50", capture=tower)
    s = src.settings
    assert (s.index, s.backend, s.width, s.height, s.fps, s.fourcc) == (1, "v4l2", 1920, 1080, 50.0, "MJPG")
    assert open_source(tower.spec()).settings == tower      # the profile's device as a SOURCE string
