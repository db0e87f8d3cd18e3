"""Output paths checked before any work (issue 19, defect 9): each bad name is one line naming it."""
from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

import pytest

from models.core import outputs
from models.core.errors import EndoSpineError
from models.core.outputs import CSV, VIDEO, check_args, check_file, check_folder, write_failed


def read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` refuse new files: its mode, and for root (whom modes do not stop) the answer a
    read-only file system gives."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(outputs.os, "access", lambda p, mode: False if Path(p) == folder else real(p, mode))


@pytest.fixture
def video_in(tmp_path) -> Path:
    path = tmp_path / "case.mp4"
    path.write_bytes(b"\0" * 64)
    return path


@pytest.mark.parametrize("name, problem", [
    ("folder", "is a folder; name a file in it, e.g."),
    ("x.png", "'.png' is not a video file name this writer supports (.mp4"),
    ("noext", "no extension: not a video file name"),
    ("afile/x.mp4", "afile is a file, not a folder"),
    ("a" * 300 + ".mp4", "name too long"),
])
def test_bad_video_names(tmp_path, name, problem):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(EndoSpineError) as exc:
        check_file(tmp_path / name, VIDEO, "--out")
    assert str(exc.value).startswith(f"--out {tmp_path / name}: ") and problem in str(exc.value)


def test_the_input_under_any_name_is_refused(tmp_path, video_in, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.mp4").symlink_to(video_in)
    os.link(video_in, tmp_path / "hard.mp4")
    for name in (str(video_in), "case.mp4", "./sub/../case.mp4", "link.mp4", "hard.mp4"):
        with pytest.raises(EndoSpineError, match="is the input .*writing it would replace it"):
            check_file(name, VIDEO, "--out", inputs=["synthetic", str(video_in)])
    assert check_file("other.mp4", VIDEO, "--out", inputs=[str(video_in), "capture:0", "rtsp://x/y"])


def test_a_device_is_not_a_file():
    with pytest.raises(EndoSpineError, match="not a regular file"):
        check_file("/dev/null", CSV, "--frames-csv")


def test_read_only_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(monkeypatch, ro)
    try:
        for path in (ro / "x.mp4", ro / "new" / "deeper" / "x.mp4"):
            with pytest.raises(EndoSpineError, match=f"cannot write in {ro} "):
                check_file(path, VIDEO, "--out")
        with pytest.raises(EndoSpineError, match=f"cannot write in {ro} "):
            check_folder(ro / "report", "--out")
    finally:
        ro.chmod(0o755)


def test_missing_folders_on_the_way_are_fine(tmp_path):
    assert check_file(tmp_path / "a" / "b" / "x.csv", CSV) == tmp_path / "a" / "b" / "x.csv"
    assert check_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"


def test_folder_outputs(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(EndoSpineError, match="is a file, not a folder"):
        check_folder(tmp_path / "f.txt", "--out")
    with pytest.raises(EndoSpineError, match="is the input"):
        check_folder(tmp_path, "--out", inputs=[str(tmp_path)])


def test_check_args_reads_the_options(tmp_path):
    args = argparse.Namespace(video=str(tmp_path / "o" / "v.mp4"), out=str(tmp_path / "o"), source=None)
    with pytest.raises(EndoSpineError, match="--video .*: inside --out .*written as a whole"):
        check_args(args, {"video": VIDEO}, ("out",), ("source",), apart=(("video", "out"),))
    args.video = str(tmp_path / "v.mkv")
    check_args(args, {"video": VIDEO}, ("out",), ("source",), apart=(("video", "out"),))
    args.video = str(tmp_path / "v.txt")
    with pytest.raises(EndoSpineError, match="^--video .*v.txt: '.txt' is not a video"):
        check_args(args, {"video": VIDEO})


@pytest.mark.unit
@pytest.mark.parametrize("number, words", [(errno.ENOSPC, "disk full"), (errno.EIO, "input/output error"),
                                           (errno.EROFS, "read-only file system")])
def test_write_failures_are_one_line(number, words):
    exc = write_failed("out.mp4", OSError(number, os.strerror(number)), "cannot write video")
    assert str(exc).startswith(f"out.mp4: cannot write video ({words}") and "\n" not in str(exc)
    assert isinstance(exc, EndoSpineError) and isinstance(exc, OSError) and exc.errno == number


# -- every command line tool checks its outputs first ------------------------------------------------
OUTPUT_FLAGS = {"out", "json", "plot", "preview", "samples_csv", "frames_csv", "video", "report", "screenshot",
                "out_dir", "corpus_dir"}


def _tools():
    import app.cli
    import calibration.cli
    import models.cli

    return [(module, module.build_parser()) for module in (app.cli, calibration.cli, models.cli)]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_output_option_is_in_its_tools_table():
    for module, parser in _tools():
        for name, sub in _subcommands(parser).items():
            if name == "gan":  # its own sub-commands (models/gan/commands.py) check their folders themselves
                continue
            dests = {a.dest for a in sub._actions}
            spec = module.OUTPUTS.get(name, {})
            named = set(spec.get("files", {})) | set(spec.get("folders", ()))
            assert named <= dests, (module.__name__, name, named - dests)
            assert set(spec.get("inputs", ())) <= dests, (module.__name__, name)
            missing = (dests & OUTPUT_FLAGS) - named
            assert not missing, f"{module.__name__} {name}: {missing} not checked before the command runs"


@pytest.mark.parametrize("tool, argv, problem", [
    ("calibration.cli", ["fov", "synthetic", "--out", "{t}/p.txt"], "--out {t}/p.txt: '.txt' is not a YAML"),
    ("calibration.cli", ["fov", "synthetic", "--out", "{t}/p.yaml", "--preview", "{t}"], "--preview {t}: is a folder"),
    ("app.cli", ["soak", "synthetic", "--minutes", "1", "--json", "{t}"], "--json {t}: is a folder"),
    ("app.cli", ["bench", "synthetic", "--json", "{t}/r.csv"], "'.csv' is not a JSON"),
    ("models.cli", ["synth", "--video", "{t}/o/v.mp4", "--out", "{t}/o"], "inside --out"),
    ("models.cli", ["sheet", "{t}", "--out", "{t}/sheet"], "--out {t}/sheet: no extension"),
    ("models.cli", ["predict", "--model", "{t}", "--data", "{t}", "--out", "{t}"], "is the input"),
])
def test_tools_refuse_bad_outputs_in_one_line(tmp_path, capsys, tool, argv, problem):
    import importlib

    main = importlib.import_module(tool).main
    assert main([a.replace("{t}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem.replace("{t}", str(tmp_path)) in err[0], err
