"""One command-line vocabulary across endospine, endospine-model and endospine-calibrate (issue 20):
--version, -v/-q/--log-file everywhere, defaults in every help, --model always a model folder with
--backend beside it (default auto everywhere), SOURCE described as the README describes it, every
README command present in the parsers and back, no choice offered only to be refused."""
from __future__ import annotations

import argparse
import importlib
import logging
import re
from pathlib import Path

import pytest

from models.core import cliutil
from models.core.cliutil import HelpFormatter, plural

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"endospine": "app.cli", "endospine-model": "models.cli", "endospine-calibrate": "calibration.cli"}
pytestmark = pytest.mark.unit


def _module(tool: str):
    return importlib.import_module(TOOLS[tool])


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """'run', 'gan train', ...: every subcommand parser, nested ones too."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[prefix + name] = sub
                out.update(_commands(sub, prefix + name + " "))
    return out


def _all_parsers():
    for tool in TOOLS:
        parser = _module(tool).build_parser()
        yield tool, parser
        for name, sub in _commands(parser).items():
            yield f"{tool} {name}", sub


def _visible(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions if a.help is not argparse.SUPPRESS for o in a.option_strings}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _help(tool: str, *command: str) -> str:
    parser = _module(tool).build_parser()
    return _flat((_commands(parser)[" ".join(command)] if command else parser).format_help())


# -- --version, -v, -q, --log-file -----------------------------------------------------------
@pytest.mark.parametrize("tool", TOOLS)
def test_version(tool, capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        _module(tool).main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"{tool} {version('endospine')}\n"


def test_version_of_a_source_tree_never_installed(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    text = cliutil.version()
    assert re.match(r"\d+\.\d+\.\d+ \(source tree, not installed\)$", text), text


@pytest.mark.parametrize("where, parser", list(_all_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_takes_the_output_options(where, parser):
    options = _visible(parser)
    assert {"-v", "--verbose", "-q", "--quiet", "--log-file"} <= set(options), where
    if " " not in where:
        assert "--version" in options


@pytest.mark.parametrize("argv", [["-q", "show", "p.yaml"], ["show", "p.yaml", "-q"], ["show", "-q", "p.yaml"]])
def test_output_options_before_or_after_the_command(argv):
    from calibration.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.verbose is False and args.log_file is None


def test_verbose_and_quiet_exclude_each_other(capsys):
    from calibration.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["-v", "show", "p.yaml", "-q"])
    assert exc.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_log_file_gets_the_command_and_its_error(tmp_path, capsys):
    from calibration.cli import main

    log = tmp_path / "logs" / "calibrate.log"   # the folder is created
    assert main(["show", str(tmp_path / "missing.yaml"), "-v", "--log-file", str(log)]) == 1
    text = log.read_text()
    assert f"endospine-calibrate {cliutil.version()}: show" in text
    assert "error: " in text and "missing.yaml" in text and "exit 1" in text
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", text)   # time stamps, as train.log
    err = capsys.readouterr().err
    assert err.count("endospine-calibrate: error:") == 1   # the console's one-line error, once


def test_log_file_is_appended_and_never_one_of_the_commands_files(tmp_path, capsys):
    from calibration.cli import main
    from models.core.optics.profile import default_profile, save_profile

    profile, log = save_profile(default_profile(), tmp_path / "p.yaml"), tmp_path / "run.log"
    for _ in range(2):
        assert main(["show", str(profile), "--log-file", str(log)]) == 0
    assert log.read_text().count("exit 0") == 2
    assert main(["show", str(profile), "--log-file", str(profile)]) == 1
    assert "--log-file" in capsys.readouterr().err
    assert main(["show", str(profile), "--log-file", str(tmp_path)]) == 1   # a folder
    assert "is a folder" in capsys.readouterr().err


def test_console_levels_and_the_run_loggers(tmp_path, capsys):
    """Info on the console by default; debug with -v; only warnings with -q; everything in the log
    file, including what train and gan train keep to their run's train.log (propagate off)."""
    lib, run_log = logging.getLogger("endospine.some.module"), logging.getLogger("endospine.train")
    saved = run_log.propagate, list(run_log.handlers)
    run_log.propagate = False   # as models/train/loop.py sets it up
    run_log.setLevel(logging.INFO)
    try:
        for flags, shown, hidden in [({}, ["info-line"], ["debug-line", "step-line"]),
                                     ({"verbose": True}, ["info-line", "debug-line", "step-line"], []),
                                     ({"quiet": True}, ["warning-line"], ["info-line", "step-line"])]:
            log = tmp_path / f"{len(flags)}{sorted(flags)}.log"
            cliutil.configure_logging(log_file=log, **flags)
            lib.debug("debug-line")
            lib.info("info-line")
            lib.warning("warning-line")
            run_log.info("step-line")
            cliutil._current.close()
            err = capsys.readouterr().err
            assert all(s in err for s in shown) and not any(s in err for s in hidden), (flags, err)
            text = log.read_text()
            assert all(s in text for s in ("debug-line", "info-line", "warning-line", "step-line")), text
    finally:
        run_log.propagate, run_log.handlers[:] = saved[0], saved[1]
        cliutil._current.close()
    assert not logging.getLogger("endospine").handlers and not run_log.filters   # taken down again
    assert logging.getLogger("endospine").propagate


def test_a_bug_keeps_its_traceback_and_lands_in_the_log_file(tmp_path):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_subparsers().add_parser("boom").set_defaults(func=lambda args: 1 / 0)
    cliutil.common_options(parser)
    with pytest.raises(ZeroDivisionError):
        cliutil.run(parser, ["boom", "--log-file", str(tmp_path / "t.log")])
    text = (tmp_path / "t.log").read_text()
    assert "unexpected error" in text and "ZeroDivisionError" in text and "exit 1" in text


def test_quiet_turns_progress_bars_off(tmp_path, monkeypatch):
    import models.predict
    from models.cli import main

    seen = []
    monkeypatch.setattr(models.predict, "predict_dataset",
                        lambda *a, **k: seen.append((k["progress"], k["settings"].backend)) or Path(a[2]))
    base = ["predict", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"), "--backend", "paddle"]
    assert main([*base, "--out", str(tmp_path / "o1")]) == 0
    assert main([*base, "--out", str(tmp_path / "o2"), "-q"]) == 0
    assert seen == [(True, "paddle"), (False, "paddle")]


# -- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where, parser", list(_all_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_help_shows_every_default(where, parser):
    assert parser.formatter_class is HelpFormatter, where
    text = parser.format_help()   # formats without error (a stray % would raise)
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help is argparse.SUPPRESS or action.default in (None, False, [], argparse.SUPPRESS):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        assert "default" in formatter._get_help_string(action).lower(), (where, action.option_strings or action.dest)


def test_train_help_shows_the_built_in_defaults():
    from models.cli import NETS, TRAIN_DEFAULTS
    from models.nets import ARCHS
    from models.train.config import TrainConfig

    assert tuple(NETS) == tuple(ARCHS)
    built_in = TrainConfig()
    assert TRAIN_DEFAULTS == {k: getattr(built_in, k) for k in TRAIN_DEFAULTS}
    text = _help("endospine-model", "train")
    for flag in ("--net", "--iters", "--batch-size", "--lr", "--input-size", "--eval-every", "--workers", "--seed",
                 "--freeze-backbone"):
        assert re.search(re.escape(flag) + r" .*?\(default: the config's, else ", text), flag


# -- --model and --backend -------------------------------------------------------------------
def test_backend_wherever_a_model_folder_is_given():
    backends = {}
    for where, parser in _all_parsers():
        options = _visible(parser)
        if "--model" in options:
            assert "--backend" in options, f"{where}: --model without --backend"
        if "--backend" in options:
            backends[where] = options["--backend"]
    assert len(backends) >= 11   # 4 in endospine, 7 in endospine-model
    assert {(a.default, tuple(a.choices)) for a in backends.values()} == {("auto", ("auto", "paddle", "onnxruntime"))}


def test_auto_backend_is_the_displays_rule(monkeypatch, tmp_path):
    import models.core.runtime.manifest as manifest
    from models.core.errors import EndoSpineError

    assert cliutil.resolve_backend("auto", tmp_path) == "paddle"   # no model here: the command says so later
    files = {"model": {}, "params": {}, "onnx": {}}
    monkeypatch.setattr(manifest, "load_manifest", lambda root, verify=True: argparse.Namespace(files=files))
    assert cliutil.resolve_backend("auto", tmp_path) == "onnxruntime"
    assert cliutil.resolve_backend("auto", tmp_path, device="gpu") == "paddle"
    assert cliutil.resolve_backend("auto", None) == "paddle"    # --pred: no model runs
    assert cliutil.resolve_backend("paddle", tmp_path) == "paddle"
    del files["onnx"]
    assert cliutil.resolve_backend("auto", tmp_path) == "paddle"
    with pytest.raises(EndoSpineError, match="CPU only"):
        cliutil.resolve_backend("onnxruntime", tmp_path, device="gpu")


def test_train_model_is_the_net_with_a_deprecation_note(capsys):
    from models.cli import build_parser

    base = ["train", "--data", "d", "--out", "o"]
    assert build_parser().parse_args([*base, "--net", "liteseg-gpu"]).net == "liteseg-gpu"
    assert capsys.readouterr().err == ""
    assert build_parser().parse_args(base).net is None   # the config's model: (or liteseg-cpu) stands
    assert build_parser().parse_args([*base, "--model", "liteseg-gpu"]).net == "liteseg-gpu"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deprecated" in err and "--net liteseg-gpu" in err
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*base, "--model", "assets/model"])
    assert exc.value.code == 2 and "--init MODEL_DIR" in capsys.readouterr().err
    train = _commands(build_parser())["train"]
    assert "--model" not in _visible(train) and "--net" in _visible(train)


def test_lens_model_is_renamed_the_same_way(capsys):
    from calibration.cli import build_parser

    base = ["lens", "imgs", "--pattern", "9x6", "--out", "p.yaml"]
    assert build_parser().parse_args(base).lens_model == "fisheye"
    assert build_parser().parse_args([*base, "--model", "rational"]).lens_model == "rational"
    assert "deprecated" in capsys.readouterr().err


def test_train_config_key_model_still_chooses_the_network(tmp_path):
    from models.train.config import TrainConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: liteseg-gpu\n")
    assert TrainConfig.load(cfg, model=None).model == "liteseg-gpu"      # no --net: the file's
    assert TrainConfig.load(cfg, model="liteseg-cpu").model == "liteseg-cpu"  # --net wins


# -- choices, counts, words ------------------------------------------------------------------
def test_split_offers_no_split_by_image(capsys):
    from models.cli import build_parser, main

    by = _visible(_commands(build_parser())["split"])["--by"]
    assert "image" not in by.choices
    with pytest.raises(SystemExit) as exc:
        main(["split", "somewhere", "--by", "image"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "leak" in err and "invalid choice" not in err


@pytest.mark.parametrize("runs, rounds, sizes", [(5, 3, [2, 2, 1]), (50, 3, [17, 17, 16]), (2, 3, [1, 1]),
                                                 (1, 3, [1]), (7, 1, [7])])
def test_bench_rounds_share_the_runs(runs, rounds, sizes):
    from models.bench import round_sizes

    assert round_sizes(runs, rounds) == sizes and sum(sizes) == runs


def test_bench_runs_5_reports_5_runs(monkeypatch, capsys, tmp_path):
    """Through the command: each configuration is timed --runs times in all."""
    import json

    import models.bench as bench
    from models.cli import main

    class Inline:   # the executor, without processes
        def __init__(self, *a, **k): pass
        def __enter__(self): return self
        def __exit__(self, *exc): return False
        def submit(self, fn, *args):
            return argparse.Namespace(result=lambda: fn(*args))

    timed: list[int] = []
    monkeypatch.setattr(bench, "ProcessPoolExecutor", Inline)
    monkeypatch.setattr(bench, "_time_config",
                        lambda model, settings, runs, warmup: timed.append(runs) or ([1.0] * runs, [0.1] * runs))
    monkeypatch.setattr(bench, "load_manifest", lambda root: argparse.Namespace(
        files={"model": {}}, model_id="m", preprocess=argparse.Namespace(input_size=(128, 128))))
    assert main(["bench", "--model", str(tmp_path), "--runs", "5", "--onednn-only"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 5 and timed == [2, 2, 1] and result["backend"] == "auto"


@pytest.mark.parametrize("n, text", [(0, "0 clips"), (1, "1 clip"), (2, "2 clips")])
def test_plural(n, text):
    assert plural(n, "clip") == text


def test_counted_words_agree():
    from models.cli import _test_figures

    test = {"mean": {"iou": 0.5}, "images": 1, "clips": 1}
    assert _test_figures(test).endswith("on 1 image of 1 clip")
    assert _test_figures({**test, "images": 3, "clips": 2}).endswith("on 3 images of 2 clips")
    counted = re.compile(r"\{[^{}]+\} clips\b")   # "{n} clips" says "1 clips" once n is 1: use plural()
    offenders = [f"{path.relative_to(ROOT)}:{i}" for pkg in ("app", "models", "calibration")
                 for path in sorted((ROOT / pkg).rglob("*.py"))
                 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if counted.search(line)]
    assert not offenders, offenders


# -- SOURCE and the README -------------------------------------------------------------------
def _readme_source_bullets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("\nSOURCE is\n") + 1:].split("\n\n", 1)[0]
    return [_flat(b) for b in re.split(r"\n(?=- )", block.split("\n", 1)[1])]


def test_source_kinds_match_the_registry_the_help_and_the_readme():
    from models.core.sources.registry import SOURCE_KINDS

    assert set(cliutil.SOURCE_KINDS) == set(SOURCE_KINDS)
    names = [name for name, _ in cliutil.SOURCE_KINDS.values()]
    bullets = _readme_source_bullets()
    assert len(bullets) == len(names), bullets
    for name in names:
        assert sum(name in b for b in bullets) == 1, (name, bullets)
    for tool, command in [("endospine", "run"), ("endospine", "render"), ("endospine", "bench"),
                          ("endospine", "soak"), ("endospine-calibrate", "fov"), ("endospine-calibrate", "color")]:
        text = _help(tool, command)
        assert all(name in text for name in names), (command, [n for n in names if n not in text])
    calibrate = _help("endospine-calibrate")
    assert all(name.split("[")[0] in calibrate for name in names)


def _readme_synopses() -> list[tuple[str, str, str]]:
    """(tool, command, text) for every command line in the code blocks of the command reference."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Command reference")
    section = text[start:text.index("\n## ", start + 1)]
    entries: list[list[str]] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S):
        current = None
        for line in block.splitlines():
            m = re.match(r"(endospine(?:-model|-calibrate)?) (\S+)(?: (\S+))?", line)
            if m:
                tool, command, sub = m.groups()
                current = [tool, f"gan {sub}" if command == "gan" else command, line]
                entries.append(current)
            elif current is not None and line.startswith(" "):
                current[2] += " " + line
            else:
                current = None
    return [tuple(e) for e in entries]


@pytest.mark.parametrize("tool", TOOLS)
def test_readme_commands_and_options_match_the_parsers(tool):
    commands = {name: p for name, p in _commands(_module(tool).build_parser()).items()
                if not _commands(p)}   # 'gan' itself is a group: its commands are documented
    synopses = [(c, text) for t, c, text in _readme_synopses() if t == tool]
    documented = {c for c, _ in synopses}
    assert documented == set(commands), (set(commands) - documented, documented - set(commands))
    own = {"--help", "--verbose", "--quiet", "--log-file"}
    for command, parser in commands.items():
        flags = set()
        for c, text in synopses:
            if c == command:
                flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
        options = {o for o in _visible(parser) if o.startswith("--")}
        assert flags <= options, (command, flags - options)
        assert options - own <= flags, (command, options - own - flags)
