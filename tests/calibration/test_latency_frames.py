"""Latency by simulated loopback, the pattern process, and reading frames from SOURCE strings."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.cli import main
from calibration.frames import kind_of, live_frames, sample_frames
from calibration.latency import LatencyMeter, measure
from calibration.synthetic import simulated_loopback
from models.core.errors import EndoSpineError
from models.core.imageio import write_image
from models.core.optics.loopback import encode, render
from models.core.optics.profile import load_profile

DISPLAY_FRAME_MS = 1000 / 60


@pytest.mark.parametrize("delay_ms", [83.0, 217.0])
def test_simulated_loop_recovers_the_delay_within_one_frame(delay_ms):
    stats = measure(simulated_loopback(delay_ms, seconds=1.5, seed=int(delay_ms)), seconds=60)
    assert stats.samples >= 0.25 * stats.frames
    # every reading is the delay plus the pattern's age on screen (0 .. one display refresh)
    assert delay_ms - 3 <= stats.min_ms and stats.max_ms <= delay_ms + DISPLAY_FRAME_MS + 3
    assert abs(stats.p50_ms - delay_ms) <= DISPLAY_FRAME_MS


@pytest.mark.unit
def test_meter_wraps_the_stamp_and_drops_stale_patterns():
    meter = LatencyMeter()
    image = render(encode(7, (2 ** 32) - 30), 320, 200)          # drawn 30 ms before the 32-bit wrap
    assert meter.add(image, arrived_s=(2 ** 32 + 70) / 1000) == pytest.approx(100.0)
    assert meter.add(image, arrived_s=(2 ** 32 + 9000) / 1000) is None     # a frozen pattern: not a latency
    assert meter.add(np.zeros((200, 320, 3), np.uint8), 1.0) is None
    stats = meter.stats()
    assert (stats.samples, stats.frames, stats.display_frames) == (1, 3, 1)


@pytest.mark.unit
def test_no_pattern_seen_is_a_clear_error():
    meter = LatencyMeter()
    meter.add(np.zeros((100, 100, 3), np.uint8), 1.0)
    with pytest.raises(EndoSpineError, match="not read in any of 1 frames"):
        meter.stats()


def test_latency_needs_a_live_source(small_video, capsys):
    assert main(["latency", "--source", str(small_video)]) == 1
    assert "needs a live source" in capsys.readouterr().err
    with pytest.raises(EndoSpineError, match="a live source is needed"):
        next(live_frames("synthetic:1"))


def test_latency_section_written(tmp_path, monkeypatch, capsys):
    """The command end to end with the simulated loop in place of the capture card."""
    import calibration.commands as commands

    monkeypatch.setattr(commands, "live_frames", lambda spec, capture=None: simulated_loopback(120.0, 1.0, seed=5))
    profile = tmp_path / "tower.yaml"
    assert main(["latency", "--source", "capture:0", "--no-pattern", "--seconds", "5", "--out", str(profile),
                 "--plot", str(tmp_path / "lat.png")]) == 0
    p = load_profile(profile)
    assert 120 - 3 <= p.latency.p50_ms <= 120 + DISPLAY_FRAME_MS and p.latency.source == "capture:0"
    assert p.capture.index == 0 and (tmp_path / "lat.png").stat().st_size > 0
    assert '"p50_ms"' in capsys.readouterr().out


# -- frames from SOURCE -----------------------------------------------------------------------------
def test_sources_give_spread_frames(small_video, tmp_path):
    video = sample_frames(str(small_video), 5)
    assert len(video) == 5 and video[0].image.shape == (120, 160, 3) and video[-1].name == "small.mp4 frame 24"
    for i in range(7):
        write_image(tmp_path / f"{i}.png", np.full((20, 30, 3), i * 30, np.uint8))
    folder = sample_frames(str(tmp_path), 3)
    assert [s.name.rsplit("/", 1)[-1] for s in folder] == ["0.png", "3.png", "6.png"]
    assert len(sample_frames(str(tmp_path / "2.png"), 9)) == 1
    synth = sample_frames("synthetic:2?width=160&height=90", 2)
    assert synth[0].image.shape == (90, 160, 3) and synth[1].name == "synthetic:2 frame 299"
    assert [kind_of(s) for s in ("capture:1?fps=60", "rtsp://x/y", "synthetic", str(tmp_path), "a.jpg", "b.mkv")] == \
        ["capture", "stream", "synthetic", "folder", "image", "video"]


@pytest.mark.unit
@pytest.mark.parametrize("spec, problem", [("synthetic:x", "expected synthetic"), ("synthetic:1?zoom=2", "unknown option"),
                                           ("nope.mp4", "no such file"), ("capture:0?zoom=2", "unknown option")])
def test_bad_sources(spec, problem):
    with pytest.raises(EndoSpineError, match=problem):
        sample_frames(spec, 2)


def test_show_prints_every_section(tmp_path, capsys):
    profile = tmp_path / "p.yaml"
    assert main(["fov", "synthetic:1?width=320&height=180", "--frames", "3", "--out", str(profile)]) == 0
    assert main(["show", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "valid endoscope profile" in out and "fov: fixed circle" in out and "lens: none" in out


def test_pattern_window_runs_as_its_own_process(monkeypatch):
    from calibration.latency import launch_pattern, stop_pattern

    proc = launch_pattern(windowed=True)        # Qt offscreen here (tests/conftest.py), a real screen in the OR
    try:
        assert proc.poll() is None              # still showing after its start-up wait
    finally:
        stop_pattern(proc)
    assert proc.returncode is not None
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    with pytest.raises(EndoSpineError, match="the pattern window did not start"):
        launch_pattern()
