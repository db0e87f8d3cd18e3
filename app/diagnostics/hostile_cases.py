"""The cases of the hostile corpus (`endospine hostile`, app/diagnostics/hostile.py): one builder
per case, which makes the case's inputs in its own folder (with app/diagnostics/hostile_inputs.py)
and returns the command to run and what it must do.

Cases are grouped by the defect of issue 19 they try; `control_*` cases run the same commands on
good inputs and must work (they show that a refusal elsewhere is the input's doing). A case's
command is a command name (`endospine`, `endospine-model`, `endospine-calibrate`) found as
`command_line` says, or `python` for the display's source stage in a child (`--play`).
Only the runtime core (models.core) is imported: the display never imports the pipeline.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.core.yamlio import dump_yaml, parse_yaml

COMMANDS = {"endospine": "app.cli", "endospine-model": "models.cli", "endospine-calibrate": "calibration.cli"}
SYNTHETIC = "synthetic:1?width=320&height=240"


@dataclass(frozen=True)
class Case:
    name: str
    defect: int                        # the defect of issue 19 it tries (0: a control that must work)
    argv: tuple[str, ...]              # a command of COMMANDS, or "python", then the arguments
    expect: str = "refuse"             # refuse | accept | either
    names: tuple[str, ...] = ()        # a refusal (or, with warn, an acceptance) must name one of these
    warn: bool = False                 # accepted only with a warning naming the input
    anywhere: bool = False             # the name may be anywhere in the output (a report), not the error line
    timeout_s: float = 60.0
    check: Callable[[str], str | None] | None = None   # (stdout) -> what is wrong after the run, or None
    fsize: int | None = None           # RLIMIT_FSIZE for the child: a disk that fills up


def command_line(argv: tuple[str, ...]) -> list[str]:
    """A command of COMMANDS by name: the console script beside this Python, else on PATH, else
    its module through this Python. "python" is this Python."""
    head, rest = argv[0], list(argv[1:])
    if head == "python":
        return [sys.executable, *rest]
    beside = Path(sys.executable).parent / head
    if beside.is_file():
        return [str(beside), *rest]
    found = shutil.which(head)
    if found:
        return [found, *rest]
    return [sys.executable, "-c", f"import sys; from {COMMANDS[head]} import main; sys.exit(main())", *rest]


# -- the shared inputs -------------------------------------------------------------------------
class Corpus:
    """The shared inputs cases copy and edit, made once on first use: a small dataset (by the real
    `endospine-model synth`), the shipped model folder, a short clip."""

    def __init__(self, out: Path):
        self.out = out
        self.base = out / "_base"
        self._made: dict[str, Path] = {}

    def dataset(self) -> Path:
        if "dataset" not in self._made:
            path = self.base / "dataset"
            if not (path / "dataset.yaml").is_file():
                shutil.rmtree(path, ignore_errors=True)
                proc = subprocess.run(command_line(("endospine-model", "synth", "--out", str(path), "--clips", "3",
                                                    "--frames", "2", "--size", "64", "--workers", "1")),
                                      capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:
                    raise RuntimeError(f"endospine-model synth failed: {proc.stderr.strip()[-200:]}")
            self._made["dataset"] = path
        return self._made["dataset"]

    def model(self) -> Path:
        from models.core.paths import shipped_model

        folder = shipped_model()
        if not (folder / "manifest.yaml").is_file():
            raise RuntimeError(f"{folder}: no shipped model")
        return folder

    def clip(self) -> Path:
        from app.diagnostics.hostile_inputs import write_video

        path = self.base / "clip.mp4"
        if not path.is_file():
            self.base.mkdir(parents=True, exist_ok=True)
            write_video(path, [i / 25 for i in range(50)])
        return path

    def copy_dataset(self, d: Path) -> Path:
        return Path(shutil.copytree(self.dataset(), d / "ds"))

    def copy_model(self, d: Path) -> Path:
        from app.diagnostics.hostile_inputs import copy_model

        return copy_model(self.model(), d / "model")


Builder = Callable[[Corpus, Path], Case]
BUILDERS: dict[str, Builder] = {}


def _case(name: str):
    def register(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn
    return register


def _render(source: str | Path, out: Path, *extra: str) -> tuple[str, ...]:
    return ("endospine", "render", str(source), "--out", str(out), *extra)


def _run(source: str | Path, d: Path, seconds: float, *extra: str) -> tuple[str, ...]:
    return ("endospine", "run", str(source), "--quit-after", f"{seconds:g}", "--out-dir", str(d / "recordings"), *extra)


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _json_last(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON summary in the output")


def _unchanged(path: Path) -> Callable[[str], str | None]:
    from app.diagnostics.hostile_inputs import file_hash

    digest = file_hash(path)
    return lambda _: None if path.is_file() and file_hash(path) == digest else f"{path.name} was changed or removed"


def _no_file(path: Path, what: str) -> Callable[[str], str | None]:
    return lambda _: f"{what} exists: {path.name}" if path.exists() else None


# -- defect 1: decompression bombs beyond PNG/JPEG, wherever an image is read ----------------------
@_case("bomb_tif_render_folder")
def _(c, d):
    from app.diagnostics.hostile_inputs import bomb, write_picture

    write_picture(d / "frames" / "000.png")
    _write(d / "frames" / "001.tif", bomb("tif"))
    write_picture(d / "frames" / "002.png")
    return Case("bomb_tif_render_folder", 1, _render(d / "frames", d / "o.mp4"), "either", ("001.tif",), timeout_s=60)


@_case("bomb_webp_render_folder_first")
def _(c, d):
    from app.diagnostics.hostile_inputs import bomb, write_picture

    _write(d / "frames" / "000.webp", bomb("webp"))
    write_picture(d / "frames" / "001.png")
    return Case("bomb_webp_render_folder_first", 1, _render(d / "frames", d / "o.mp4"), "refuse", ("000.webp",))


@_case("bomb_tif_run_folder")
def _(c, d):
    from app.diagnostics.hostile_inputs import bomb, write_picture

    write_picture(d / "frames" / "000.png")
    _write(d / "frames" / "001.tif", bomb("tif"))
    return Case("bomb_tif_run_folder", 1, _run(d / "frames", d, 5, "--no-ai"), "either", ("001.tif",), timeout_s=60)


def _bomb_in_dataset(fmt: str, part: str) -> Builder:
    def build(c, d):
        from app.diagnostics.hostile_inputs import bomb

        ds = c.copy_dataset(d)
        target = sorted((ds / part).iterdir())[0]
        target.write_bytes(bomb(fmt))
        return Case(f"bomb_{fmt}_validate_{part}", 1, ("endospine-model", "validate", str(ds)), "refuse",
                    (target.name,), anywhere=True, timeout_s=90)
    return build


_case("bomb_png_validate_labels")(_bomb_in_dataset("png", "labels"))
_case("bomb_jpg_validate_images")(_bomb_in_dataset("jpg", "images"))


def _bomb_calibrate(fmt: str) -> Builder:
    def build(c, d):
        from app.diagnostics.hostile_inputs import bomb

        image = _write(d / f"reference.{fmt}", bomb(fmt))
        return Case(f"bomb_{fmt}_calibrate_fov", 1, ("endospine-calibrate", "fov", str(image), "--out",
                                                     str(d / "profile.yaml")), "refuse", (image.name,))
    return build


_case("bomb_tif_calibrate_fov")(_bomb_calibrate("tif"))
_case("bomb_jpg_calibrate_fov")(_bomb_calibrate("jpg"))


@_case("bomb_bmp_import_masks")
def _(c, d):
    from app.diagnostics.hostile_inputs import bomb, write_picture

    _write(d / "src" / "images" / "a.bmp", bomb("bmp"))
    write_picture(d / "src" / "masks" / "a.png")
    return Case("bomb_bmp_import_masks", 1, ("endospine-model", "import", "masks", str(d / "src"), "--out",
                                             str(d / "ds")), "refuse", ("a.bmp",))


@_case("bomb_png_labelme_imagedata")
def _(c, d):
    from app.diagnostics.hostile_inputs import bomb

    doc = {"shapes": [{"label": "bone", "points": [[1, 1], [9, 1], [9, 9]]}], "imagePath": "missing.png",
           "imageData": base64.b64encode(bomb("png")).decode()}
    _write(d / "src" / "f.json", json.dumps(doc))
    return Case("bomb_png_labelme_imagedata", 1, _import_labelme(d), "refuse", ("f.json",))


def _import_labelme(d: Path) -> tuple[str, ...]:
    return ("endospine-model", "import", "labelme", str(d / "src"), "--out", str(d / "ds"))


# -- defects 2, 3, 10, 13: the model folder -------------------------------------------------------
def _model_case(name: str, defect: int, edit: Callable[[Path], None], expect: str = "refuse",
                names: tuple[str, ...] = ("manifest.yaml",)) -> None:
    @_case(name)
    def build(c, d):
        model = c.copy_model(d)
        edit(model)
        return Case(name, defect, _render(SYNTHETIC, d / "o.mp4", "--model", str(model), "--max-frames", "2"),
                    expect, names, timeout_s=90)


def _preprocess(**values) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        from app.diagnostics.hostile_inputs import edit_manifest

        edit_manifest(model, lambda m: m["preprocess"].update(values))
    return edit


def _unsealed_std(model: Path) -> None:
    from app.diagnostics.hostile_inputs import edit_manifest

    edit_manifest(model, lambda m: m["preprocess"].update(std=[1e-30] * 3), reseal=False)


def _resealed_as_is(model: Path) -> None:
    from app.diagnostics.hostile_inputs import edit_manifest

    edit_manifest(model, lambda m: None)


def _weight_byte(model: Path) -> None:
    from app.diagnostics.hostile_inputs import flip_byte

    flip_byte(model / "model.onnx")


def _external(listed: bool) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        from app.diagnostics.hostile_inputs import flip_byte, onnx_to_external_data

        data = onnx_to_external_data(model, listed)
        if listed:
            flip_byte(data)
    return edit


def _symlink_out(model: Path) -> None:
    outside = model.parent / "outside"
    outside.mkdir()
    shutil.move(str(model / "model.onnx"), outside / "model.onnx")
    (model / "model.onnx").symlink_to(Path("..") / "outside" / "model.onnx")


_model_case("control_model_resealed", 0, _resealed_as_is, "accept", ())
_model_case("manifest_std_1e-30_unsealed", 2, _unsealed_std)
_model_case("manifest_std_1e-30", 2, _preprocess(std=[1e-30] * 3))
_model_case("manifest_std_nan", 2, _preprocess(std=[float("nan")] * 3))
_model_case("manifest_mean_std_0_255", 2, _preprocess(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]))
_model_case("manifest_weight_byte", 2, _weight_byte, names=("model.onnx",))
_model_case("onnx_external_data_unlisted", 3, _external(False), names=("model.onnx",))
_model_case("onnx_external_data_edited", 3, _external(True), names=("model.onnx.data",))
_model_case("manifest_mean_5_values", 10, _preprocess(mean=[0.5] * 5))
_model_case("manifest_input_size_1e30", 10, _preprocess(input_size=[10 ** 30, 10 ** 30]))
_model_case("manifest_input_size_65536", 10, _preprocess(input_size=[65536, 65536]))
_model_case("model_symlink_out", 13, _symlink_out, names=("model.onnx",))


@_case("manifest_std_1e-30_run")
def _(c, d):
    model = c.copy_model(d)
    _preprocess(std=[1e-30] * 3)(model)
    return Case("manifest_std_1e-30_run", 2, _run(SYNTHETIC, d, 8, "--model", str(model)), "either",
                ("manifest.yaml",), timeout_s=90)


# -- defect 4: checkpoints a user hands over must not run code ------------------------------------
def _classes_yaml() -> str:
    from models.core.paths import assets_dir

    return (assets_dir() / "classes.yaml").read_text(encoding="utf-8")


@_case("pickle_checkpoint_export")
def _(c, d):
    from app.diagnostics.hostile_inputs import code_running_pickle

    run = d / "run"
    _write(run / "config.yaml", "model: liteseg-cpu\ninput_size: 128\n")
    _write(run / "data.yaml", dump_yaml({"classes": parse_yaml(_classes_yaml())}))
    _write(run / "state.yaml", "best_step: 1\nbest_miou: 0.5\n")
    marker = d / "code_ran.txt"
    _write(run / "best.pdparams", code_running_pickle(marker))
    return Case("pickle_checkpoint_export", 4, ("endospine-model", "export", str(run), "--out", str(d / "m")),
                "refuse", ("best.pdparams",), timeout_s=120, check=_no_file(marker, "code from the checkpoint ran"))


@_case("pickle_checkpoint_gan_synthesize")
def _(c, d):
    from app.diagnostics.hostile_inputs import code_running_pickle

    gan, marker = d / "gan", d / "code_ran.txt"
    _write(gan / "config.yaml", "size: 32\n")
    _write(gan / "data.yaml", dump_yaml({"classes": parse_yaml(_classes_yaml())}))
    _write(gan / "state.yaml", "step: 1\ncheckpoint: checkpoints/step_0000001\n")
    for part in ("generator", "generator_ema", "discriminator"):
        _write(gan / "checkpoints" / "step_0000001" / f"{part}.pdparams", code_running_pickle(marker))
    return Case("pickle_checkpoint_gan_synthesize", 4,
                ("endospine-model", "gan", "synthesize", "--gan", str(gan), "--labels", str(c.dataset()), "--out",
                 str(d / "out"), "--n", "1"), "refuse", (".pdparams",), timeout_s=120,
                check=_no_file(marker, "code from the checkpoint ran"))


# -- defects 5, 6, 11, 14: profiles and other YAML -----------------------------------------------
PROFILE = "format: endospine-profile/1\n"
LENS = ("lens: {{model: fisheye, image_size: [320, 240], camera_matrix: [[{f:.6e}, 0, 160], [0, {f:.6e}, 120], [0, 0, 1]], "
        "distortion: [0.0, 0.0, 0.0, 0.0], balance: 1.0, undistort: true}}\n")


def _profile_case(name: str, defect: int, text: str | Callable[[], str], target: str, expect: str, warn: bool = False,
                  check_out: Callable[[str], str | None] | None = None) -> None:
    @_case(name)
    def build(c, d):
        profile = _write(d / f"{name}.yaml", text() if callable(text) else text)
        argv = {"run": _run(SYNTHETIC, d, 6, "--profile", str(profile)),
                "render": _render(SYNTHETIC, d / "o.mp4", "--profile", str(profile), "--max-frames", "2"),
                "show": ("endospine-calibrate", "show", str(profile))}[target]
        return Case(name, defect, argv, expect, (profile.name,), warn=warn, timeout_s=90, check=check_out)


_profile_case("profile_inf_frame_size_run", 5, PROFILE + "fov: {mode: fixed, frame_size: [.inf, 240], "
              "center: [160, 120], radius: 100}\n", "run", "accept", warn=True)
_profile_case("profile_inf_frame_size_render", 5, PROFILE + "fov: {mode: fixed, frame_size: [.inf, 240], "
              "center: [160, 120], radius: 100}\n", "render", "refuse")
_profile_case("profile_alias_bomb_run", 6, lambda: _alias_bomb("fov", head=PROFILE), "run", "either", warn=True)
_profile_case("profile_alias_bomb_show", 6, lambda: _alias_bomb("fov", head=PROFILE), "show", "refuse")
_profile_case("profile_fov_off_show", 11, PROFILE + "fov: {mode: off}\n", "show", "accept",
              check_out=lambda out: None if any("fov" in line and "off" in line for line in out.splitlines()[1:])
              else "the shown profile does not say fov: off")
_profile_case("profile_fov_off_render", 11, PROFILE + "fov: {mode: off}\n", "render", "accept")
_profile_case("control_lens_profile_render", 0, PROFILE + LENS.format(f=300.0), "render", "accept")
_profile_case("profile_lens_fx_1e300_render", 14, PROFILE + LENS.format(f=1e300), "render", "refuse")
_profile_case("profile_lens_fx_1e-300_render", 14, PROFILE + LENS.format(f=1e-300), "render", "refuse")


def _alias_bomb(key: str, **kw) -> str:
    from app.diagnostics.hostile_inputs import alias_bomb

    return alias_bomb(key, **kw)


@_case("profile_alias_rewritten_by_fov")
def _(c, d):
    from app.diagnostics.hostile_inputs import alias_bomb

    profile = _write(d / "profile.yaml", alias_bomb("notes", levels=6, head=PROFILE))

    def small(_: str) -> str | None:
        size = profile.stat().st_size if profile.exists() else 0
        return f"{profile.name} grew to {size:,} bytes" if size > 64 * 1024 else None
    return Case("profile_alias_rewritten_by_fov", 6, ("endospine-calibrate", "fov", "synthetic:3?width=320&height=240",
                                                      "--out", str(profile), "--frames", "3"), "either",
                (profile.name,), timeout_s=90, check=small)


@_case("manifest_alias_bomb_render")
def _(c, d):
    from app.diagnostics.hostile_inputs import alias_bomb

    model = c.copy_model(d)
    head = (model / "manifest.yaml").read_text(encoding="utf-8")
    (model / "manifest.yaml").write_text(alias_bomb("notes", head=head), encoding="utf-8")
    return Case("manifest_alias_bomb_render", 6, _render(SYNTHETIC, d / "o.mp4", "--model", str(model),
                                                         "--max-frames", "2"), "refuse", ("manifest.yaml",))


@_case("dataset_yaml_alias_bomb_validate")
def _(c, d):
    from app.diagnostics.hostile_inputs import alias_bomb

    ds = c.copy_dataset(d)
    head = (ds / "dataset.yaml").read_text(encoding="utf-8")
    (ds / "dataset.yaml").write_text(alias_bomb("notes", head=head), encoding="utf-8")
    return Case("dataset_yaml_alias_bomb_validate", 6, ("endospine-model", "validate", str(ds)), "refuse",
                ("dataset.yaml",), anywhere=True)


# -- defects 7, 8, 12: videos ---------------------------------------------------------------------
def _play(source: Path, seconds: float, loop: bool) -> tuple[str, ...]:
    return ("python", "-m", "app.diagnostics.hostile", "--play", str(source), "--seconds", f"{seconds:g}",
            *(("--loop",) if loop else ()))


def _played(test: Callable[[dict], str | None]) -> Callable[[str], str | None]:
    def check(stdout: str) -> str | None:
        report = _json_last(stdout)
        return f"playback stopped: {report['error']}" if report.get("error") else test(report)
    return check


@_case("control_play_clip")
def _(c, d):
    return Case("control_play_clip", 0, _play(c.clip(), 3, False), "accept", timeout_s=60,
                check=_played(lambda r: None if r["frames"] == 50 else f"{r['frames']} of 50 frames"))


@_case("video_still_8s_play")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_still_video

    video = write_still_video(d / "still.mp4")
    return Case("video_still_8s_play", 7, _play(video, 14, False), "accept", timeout_s=60,
                check=_played(lambda r: None if r["frames"] == 50 else
                              f"{r['frames']} of 50 frames (last at {r['last_pts']} s)"))


@_case("video_still_8s_run")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_still_video

    video = write_still_video(d / "still.mp4")
    return Case("video_still_8s_run", 7, _run(video, d, 13, "--no-ai", "--no-loop"), "accept", timeout_s=60)


@_case("h264_raw_loop_play")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_raw_h264

    video = write_raw_h264(d / "clip.h264")
    return Case("h264_raw_loop_play", 8, _play(video, 6, True), "accept", timeout_s=60,
                check=_played(lambda r: None if r["frames"] > 60 else f"only {r['frames']} frames in 6 s (no loop)"))


@_case("h264_raw_loop_run")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_raw_h264

    video = write_raw_h264(d / "clip.h264")
    return Case("h264_raw_loop_run", 8, _run(video, d, 6, "--no-ai"), "accept", timeout_s=60)


@_case("render_resolution_grows")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_growing_h264

    video = write_growing_h264(d / "joined.h264")

    def all_frames(stdout: str) -> str | None:
        frames = _json_last(stdout).get("frames")
        return None if frames == 50 else f"rendered {frames} of 50 frames"
    return Case("render_resolution_grows", 12, _render(video, d / "o.mp4"), "accept", timeout_s=90, check=all_frames)


# -- defect 9: output paths -----------------------------------------------------------------------
@_case("out_readonly_folder")
def _(c, d):
    if os.geteuid() == 0:       # root writes anywhere it may chmod: a kernel folder is read-only to all
        out = Path("/proc/1/hostile.mp4")
    else:
        locked = d / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "hostile.mp4"
    return Case("out_readonly_folder", 9, _render(SYNTHETIC, out, "--max-frames", "3"), "refuse",
                ("hostile.mp4", str(out.parent)), check=_no_file(out, "output"))


@_case("out_is_a_folder")
def _(c, d):
    (d / "folder.mp4").mkdir()
    return Case("out_is_a_folder", 9, _render(SYNTHETIC, d / "folder.mp4", "--max-frames", "3"), "refuse",
                ("folder.mp4",))


@_case("out_png")
def _(c, d):
    return Case("out_png", 9, _render(SYNTHETIC, d / "x.png", "--max-frames", "3"), "refuse", ("x.png",),
                check=_no_file(d / "x.png", "output"))


@_case("out_no_extension")
def _(c, d):
    return Case("out_no_extension", 9, _render(SYNTHETIC, d / "noext", "--max-frames", "3"), "refuse", ("noext",),
                check=_no_file(d / "noext", "output"))


@_case("out_same_as_input")
def _(c, d):
    video = Path(shutil.copy(c.clip(), d / "a.mp4"))
    return Case("out_same_as_input", 9, _render(video, video), "refuse", ("a.mp4",), check=_unchanged(video))


@_case("out_symlink_to_input")
def _(c, d):
    video = Path(shutil.copy(c.clip(), d / "a.mp4"))
    (d / "link.mp4").symlink_to("a.mp4")
    return Case("out_symlink_to_input", 9, _render(video, d / "link.mp4"), "refuse", ("link.mp4", "a.mp4"),
                check=_unchanged(video))


@_case("out_disk_full")
def _(c, d):
    (d / "out").mkdir()

    def nothing_left(_: str) -> str | None:
        left = sorted(p.name for p in (d / "out").iterdir())
        return f"left behind: {', '.join(left)}" if left else None
    return Case("out_disk_full", 9, _render(SYNTHETIC, d / "out" / "full.mp4", "--max-frames", "150"), "refuse",
                ("full.mp4",), fsize=64 * 1024, timeout_s=90, check=nothing_left)


# -- defect 10: values never checked ------------------------------------------------------------
TRAIN_CONFIGS = {"lr_nan": "lr: .nan\n", "iters_2_5": "iters: 2.5\n", "iters_five": "iters: five\n",
                 "workers_minus_1": "workers: -1\n", "batch_size_2_5": "batch_size: 2.5\n",
                 "augment_rotate_lots": "augment: {rotate: lots}\n"}


def _train_case(key: str, text: str) -> None:
    name = f"train_{key}"

    @_case(name)
    def build(c, d):
        config = _write(d / f"{key}.yaml", text)
        return Case(name, 10, ("endospine-model", "train", "--data", str(c.dataset()), "--out", str(d / "run"),
                               "--config", str(config)), "refuse", (config.name,), timeout_s=120)


for key_, text_ in TRAIN_CONFIGS.items():
    _train_case(key_, text_)


@_case("train_iters_1")
def _(c, d):
    return Case("train_iters_1", 10, ("endospine-model", "train", "--data", str(c.dataset()), "--out", str(d / "run"),
                                      "--iters", "1", "--batch-size", "2", "--input-size", "128", "--eval-every", "1"),
                "either", ("--iters",), timeout_s=300)


@_case("split_ratios_nan")
def _(c, d):
    return Case("split_ratios_nan", 10, ("endospine-model", "split", str(c.copy_dataset(d)), "--ratios", "nan,0.1,0.1"),
                "refuse", ("--ratios", "nan"))


def _labelme_case(name: str, defect: int, text: str, expect: str = "refuse") -> None:
    @_case(name)
    def build(c, d):
        from app.diagnostics.hostile_inputs import write_picture

        write_picture(d / "src" / "f.png", 40, 60)
        _write(d / "src" / "f.json", text)
        return Case(name, defect, _import_labelme(d), expect, () if expect == "accept" else ("f.json",))


def _labelme(*shapes: dict) -> str:
    return json.dumps({"shapes": list(shapes), "imagePath": "f.png", "imageHeight": 40, "imageWidth": 60})


_labelme_case("control_import_labelme", 0, _labelme({"label": "bone", "points": [[1, 1], [30, 1], [30, 30]]},
                                                    {"label": "disc", "points": [[40, 20], [45, 20]],
                                                     "shape_type": "circle"}), "accept")
_labelme_case("labelme_circle_radius_1e12", 10, _labelme({"label": "bone", "points": [[10, 10], [1e12, 10]],
                                                          "shape_type": "circle"}))
_labelme_case("labelme_nested_200k", 10, '{"shapes": ' + "[" * 200_000 + "]" * 200_000 + "}")
_labelme_case("labelme_polygon_1e30", 12, _labelme({"label": "bone", "points": [[1e30, 0], [0, 1e30], [1e30, 1e30]]}))


@_case("import_masks_non_utf8_names")
def _(c, d):
    from app.diagnostics.hostile_inputs import write_picture

    for folder in ("images", "masks"):   # a Latin-1 name, as copied from an old share
        write_picture(Path(os.fsdecode(os.fsencode(str(d / "src" / folder)) + b"/Wirbels\xe4ule_01.png")))

    def imported(_: str) -> str | None:
        meta = d / "ds" / "dataset.yaml"
        if not meta.is_file():
            return "no dataset.yaml written"
        meta.read_bytes().decode("utf-8")   # raises (a finding) when it is not UTF-8
        return None
    # the masks are pictures, not ids: --threshold reads them as binary masks of a 2-class map
    _write(d / "map.yaml", "1: bone\n")
    return Case("import_masks_non_utf8_names", 10, ("endospine-model", "import", "masks", str(d / "src"), "--out",
                                                    str(d / "ds"), "--threshold", "128", "--map", str(d / "map.yaml")),
                "accept", check=imported)


# -- controls: the same commands on good inputs must work ------------------------------------------
@_case("control_render_synthetic")
def _(c, d):
    return Case("control_render_synthetic", 0, _render(SYNTHETIC, d / "o.mp4", "--max-frames", "3"), "accept",
                timeout_s=90)


@_case("control_run_synthetic")
def _(c, d):
    return Case("control_run_synthetic", 0, _run(SYNTHETIC, d, 6), "accept", timeout_s=90)
