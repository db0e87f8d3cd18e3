"""The source registry: which kind a SOURCE string names, the class built for it, and one-line
errors for strings that name nothing."""
from __future__ import annotations

import pytest

from models.core.errors import EndoSpineError
from models.core.sources.capture_card import CaptureSource
from models.core.sources.folder import FolderSource
from models.core.sources.registry import SOURCE_KINDS, kind_of, open_source
from models.core.sources.replay import ReplaySource
from models.core.sources.synthetic import SyntheticSource
from models.core.sources.video import STREAM_SCHEMES, VideoSource

KINDS = ("synthetic", "capture", "stream", "folder", "image", "video")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "frames").mkdir()
    return str(tmp_path / "frames")


# (spec, kind); "{folder}" is an existing folder
SPECS = [
    ("synthetic", "synthetic"),
    ("synthetic:7", "synthetic"),
    ("synthetic?width=160&height=90", "synthetic"),
    ("synthetic:2?width=160&height=90", "synthetic"),
    ("capture:0", "capture"),
    ("capture:1?backend=v4l2&fps=60&fourcc=MJPG", "capture"),
    *[(f"{scheme}192.168.0.2:8554/scope", "stream") for scheme in STREAM_SCHEMES],
    ("{folder}", "folder"),
    ("{folder}?fps=25", "folder"),
    ("refs/white.png", "image"),
    ("board.JPG", "image"),
    ("scan.tiff", "image"),
    ("clip.mp4", "video"),
    ("recording.MKV", "video"),
    ("no-suffix", "video"),
    ("synthetic.mp4", "video"),       # a file named like a kind is still a file
    ("capture.png", "image"),
    ("{folder}/missing.mov", "video"),
]


@pytest.mark.unit
@pytest.mark.parametrize("spec, kind", SPECS)
def test_kind_of_names_every_kind(spec, kind, folder):
    assert kind_of(spec.format(folder=folder)) == kind


@pytest.mark.unit
def test_the_registry_has_one_entry_per_kind_in_order():
    assert tuple(SOURCE_KINDS) == KINDS
    assert {kind for _, kind in SPECS} == set(KINDS)
    assert {name for name, kind in SOURCE_KINDS.items() if kind.live} == {"capture", "stream"}


@pytest.mark.unit
@pytest.mark.parametrize("spec, kind", SPECS)
@pytest.mark.parametrize("isolated", [False, True])
def test_open_source_builds_the_registered_class(spec, kind, isolated, folder):
    src = open_source(spec.format(folder=folder), isolated=isolated)
    assert isinstance(src, SOURCE_KINDS[kind].cls) and not src.opened


@pytest.mark.unit
def test_what_each_kind_builds(folder):
    assert type(open_source("synthetic:4?width=160&height=96")) is SyntheticSource
    synth = open_source("synthetic:4?width=160&height=96")
    assert (synth.seed, synth.size) == (4, (160, 96)) and open_source("synthetic").size == (960, 540)
    assert type(open_source("capture:2?fps=50")) is CaptureSource
    stream = open_source("rtsp://127.0.0.1:8554/scope", loop=True, isolated=True)
    assert type(stream) is VideoSource and stream.is_stream and not stream.loop  # streams stay in-process
    assert type(open_source(f"{folder}?fps=25", loop=True)) is FolderSource
    assert open_source(f"{folder}?fps=25", loop=True).fps == 25 and open_source(folder).fps == 10
    assert type(open_source("clip.mp4", loop=True)) is VideoSource and open_source("clip.mp4", loop=True).loop
    isolated = open_source("clip.mp4", loop=True, isolated=True)
    assert isinstance(isolated, ReplaySource) and type(isolated) is not VideoSource and isolated.loop


@pytest.mark.unit
@pytest.mark.parametrize("spec, problem", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("ftp://host/clip.mp4", "unknown scheme ftp://"),
    ("synthetic:abc", "expected synthetic[:SEED][?width=W&height=H]"),
    ("synthetic:1?width=wide", "expected synthetic[:SEED][?width=W&height=H]"),
    ("synthetic:1?zoom=2", "unknown option(s) zoom"),
    ("capture:x", "expected capture:N"),
    ("capture:0?zoom=2", "unknown option(s) zoom"),
    ("capture:0?backend=firewire", "backend must be one of"),
    ("{folder}?fps=0", "fps must be in (0, 240]"),
    ("{folder}?fps=fast", "fps must be a number"),
])
def test_bad_specs_are_one_line_naming_the_spec(spec, problem, folder):
    spec = spec.format(folder=folder)
    with pytest.raises(EndoSpineError) as exc:
        open_source(spec)
    msg = str(exc.value)
    assert problem in msg and "\n" not in msg
    assert (repr(spec) if not spec.strip() else spec) in msg


@pytest.mark.unit
def test_kind_of_refuses_what_open_source_refuses():
    for spec in ("", "ftp://host/x"):
        with pytest.raises(EndoSpineError):
            kind_of(spec)
