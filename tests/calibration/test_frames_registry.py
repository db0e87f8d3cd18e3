"""Calibration reads its frames through the core's source registry: the same classifier, the
same source classes, no copied suffix or scheme lists, no device opening of its own."""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

import calibration.frames as frames
from app.diagnostics.fake_card import FakeCard, Frames
from calibration.frames import live_frames, sample_frames
from models.core.errors import EndoSpineError
from models.core.imageio import IMAGE_SUFFIXES
from models.core.sources import registry
from models.core.sources.base import Source
from models.core.sources.video import STREAM_SCHEMES, VideoSource


@pytest.mark.unit
def test_calibration_classifies_with_the_core():
    import calibration.commands as commands

    assert frames.kind_of is registry.kind_of and commands.kind_of is registry.kind_of


@pytest.mark.unit
def test_no_copied_suffixes_schemes_or_device_opening():
    tree = ast.parse(inspect.getsource(frames))
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    copied = strings & {*IMAGE_SUFFIXES, *STREAM_SCHEMES, "capture:", "synthetic:", "synthetic?"}  # kind names are fine
    assert not copied, f"calibration/frames.py spells out what the registry decides: {sorted(copied)}"
    assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert not assigned & {"IMAGE_SUFFIXES", "STREAM_SCHEMES"}
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "cv2" not in modules and "models.synth" not in modules          # no device or scene engine of its own
    assert not names & {"open_device", "SyntheticClip"}
    assert {"kind_of", "SOURCE_KINDS", "FolderSource", "SyntheticSource", "CaptureSource", "open_source"} <= names


def _seq(rgb: np.ndarray) -> int:
    """The fake card's frame number (its blue channel, BGR channel 0, is RGB channel 2)."""
    return int(rgb[0, 0, 2])


def test_live_capture_frames_come_from_capture_source(monkeypatch):
    card = FakeCard([Frames(12, fps=60)], after="unplugged")
    monkeypatch.setattr(frames, "opencv_device", card)
    got = []
    with pytest.raises(EndoSpineError) as exc:
        for image, arrived in live_frames("capture:0?width=64&height=48", every=2, warmup=3):
            got.append((image, arrived))
    assert str(exc.value) == "capture:0?width=64&height=48: the device stopped delivering frames"
    assert [_seq(img) for img, _ in got] == [5, 7, 9, 11]           # warmup dropped, then every 2nd
    assert got[0][0].shape == (48, 64, 3) and got[0][0].dtype == np.uint8
    stamps = [t for _, t in got]
    assert stamps == sorted(stamps) and len(card.log.opens) == 1   # one session: never reopened


def test_capture_samples_and_profile_defaults(monkeypatch):
    from models.core.optics.capture_settings import CaptureSettings

    asked = []
    card = FakeCard([Frames(40, fps=120)])
    monkeypatch.setattr(frames, "opencv_device", lambda settings: asked.append(settings) or card(settings))
    tower = CaptureSettings(0, "v4l2", 64, 48, 120.0, "MJPG")
    samples = sample_frames("capture:0?fps=60", 3, capture=tower)
    assert [s.name for s in samples] == ["capture:0?fps=60 frame 0", "capture:0?fps=60 frame 1",
                                         "capture:0?fps=60 frame 2"]
    assert [_seq(s.image) for s in samples] == [8, 11, 14]          # as before: 5 warmup frames, every 3rd
    assert (asked[0].backend, asked[0].fps, asked[0].fourcc) == ("v4l2", 60.0, "MJPG")


def test_a_stream_is_read_by_the_core_video_source(monkeypatch, small_video):
    opened = []

    def stream(spec, **kw):
        opened.append(spec)
        return VideoSource(small_video, realtime=False)  # stands in for rtsp://: same class, same reads
    monkeypatch.setattr(frames, "open_source", stream)
    samples = sample_frames("rtsp://cam/scope", 4)
    assert [s.name for s in samples] == [f"rtsp://cam/scope frame {n}" for n in range(4)]
    stamped = list(live_frames("rtsp://cam/scope", warmup=0))
    assert len(stamped) == 30 and [t for _, t in stamped] == sorted(t for _, t in stamped)
    assert opened == ["rtsp://cam/scope"] * 2


@pytest.mark.unit
@pytest.mark.parametrize("spec, problem", [("", "is empty"), ("ftp://host/clip.mp4", "unknown scheme"),
                                           ("synthetic:1?zoom=2", "unknown option")])
def test_bad_specs_fail_as_in_the_display(spec, problem):
    with pytest.raises(EndoSpineError, match=problem):
        sample_frames(spec, 2)


# -- a new kind is one entry in the registry ----------------------------------------------------------
class Ramp(Source):
    """ramp:N, a made-up kind: N frames whose pixels are the frame number; broken=True: it ends in a failure."""

    def __init__(self, n: int, broken: bool = False):
        super().__init__()
        self.n, self.broken, self.name, self.corrupt_packets = n, broken, f"ramp:{n}", 0

    def open(self) -> None:
        self.size, self.opened = (8, 6), True

    def read(self):
        if self._next_id >= self.n:
            self.corrupt_packets += self.broken
            return None
        return self._frame(np.full((6, 8, 3), self._next_id, np.uint8), None)


@pytest.fixture
def ramp_kind():
    """Adds the ramp kind to the registry (before "video", which claims every other string)."""
    kinds = registry.SOURCE_KINDS
    saved = dict(kinds)

    def add(live: bool, broken: bool = False) -> None:
        video = kinds.pop("video")
        kinds["ramp"] = registry.SourceKind("ramp", lambda s: s.startswith("ramp:"), Ramp,
                                            lambda s, how: Ramp(int(s[5:]), broken), live=live)
        kinds["video"] = video
    yield add
    kinds.clear()
    kinds.update(saved)


def test_calibration_reads_a_new_kind_from_its_registry_entry(ramp_kind):
    ramp_kind(live=False)
    assert registry.kind_of("ramp:5") == "ramp" and isinstance(registry.open_source("ramp:5"), Ramp)
    samples = sample_frames("ramp:5", 3)
    assert [(s.name, int(s.image[0, 0, 0])) for s in samples] == [("ramp:5 frame 0", 0), ("ramp:5 frame 1", 1),
                                                                  ("ramp:5 frame 2", 2)]
    with pytest.raises(EndoSpineError, match="ramp:5: a live source is needed here"):
        next(live_frames("ramp:5"))


def test_a_new_live_kind_gives_stamped_frames_and_its_failure_is_an_error(ramp_kind):
    ramp_kind(live=True)
    got = list(live_frames("ramp:9", warmup=2, every=3))
    assert [int(img[0, 0, 0]) for img, _ in got] == [4, 7]          # frames 5 and 8 (1-based), as for a card
    assert got[0][1] <= got[1][1]
    ramp_kind(live=True, broken=True)
    with pytest.raises(EndoSpineError, match="ramp:3: stream broke"):
        list(live_frames("ramp:3", warmup=0))
