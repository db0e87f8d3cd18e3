"""`endospine`: the OR display.

Every file or folder a command writes is checked before it starts (OUTPUTS, models.core.outputs):
a name its writer supports, a folder it can write in, not the input it reads.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from models.core.cliutil import (
    add_backend,
    add_precision,
    add_view_size,
    common_options,
    non_negative_int,
    number,
    positive_int,
    run,
    show_progress,
    source_help,
)
from models.core.outputs import ANY, CSV, FOLDER, IMAGE, JSON, PNG, VIDEO, check_before
from models.core.paths import demo_video, shipped_model

DEFAULT_SOURCE_HELP = source_help("the shipped demo video (assets/demo.mp4), else synthetic")
PROFILE_HELP = "endoscope profile YAML from endospine-calibrate (default: automatic field of view, no color change)"


def _deid_out(args: argparse.Namespace):
    """deid --out is what IN is: a folder for a folder, an image for an image, else a video."""
    from models.core.imageio import IMAGE_SUFFIXES

    inp = Path(args.input)
    return FOLDER if inp.is_dir() else IMAGE if inp.suffix.lower() in IMAGE_SUFFIXES else VIDEO


# What each command writes (option -> kind, folders) and reads: checked before it runs. Recordings
# and snapshots (run --out-dir) may go beside the played video, so that folder is not an input.
OUTPUTS = {
    "run": {"files": {"screenshot": IMAGE}, "folders": ("out_dir",), "inputs": ("source",)},
    "render": {"files": {"out": VIDEO, "frames_csv": CSV}, "inputs": ("source",)},
    "bench": {"files": {"json": JSON}, "inputs": ("source",)},
    "faults": {"files": {"json": JSON}, "folders": ("corpus_dir",)},
    "hostile": {"files": {"json": JSON}, "folders": ("out",)},
    "soak": {"files": {"plot": PNG, "samples_csv": CSV, "json": JSON}, "inputs": ("source",)},
    "deid": {"files": {"out": _deid_out, "report": JSON}, "inputs": ("input",)},
    "decrypt": {"files": {"out": ANY}, "inputs": ("input",)},
    "keygen": {"files": {"out": ANY}},
    "overlay-video": {"files": {"out": VIDEO}, "inputs": ("recording",)},
}


def default_source() -> str:
    demo = demo_video()
    return str(demo) if demo.is_file() else "synthetic"


def default_model(model: str | None, no_ai: bool) -> str | None:
    """--model, else the shipped model if present; None for no AI."""
    if no_ai:
        return None
    if model is None and (shipped_model() / "manifest.yaml").is_file():
        return str(shipped_model())
    return model


def display_profile(path: str | None):
    """--profile for the live display: the profile, or None (the default profile: automatic field
    of view, no color change). A bad file is a warning, not a dark OR screen."""
    import sys

    from models.core.errors import EndoSpineError
    from models.core.optics.profile import load_profile, names_trust

    if path is None:
        return None
    try:
        return load_profile(path)
    except EndoSpineError as exc:
        if names_trust(path):  # never fall back from a trusted signing key to running any model
            raise EndoSpineError(f"{exc} (the profile names a trusted signing key: fix it, the display does "
                                 "not fall back to the default profile)") from None
        print(f"endospine: warning: {exc}; using the default profile (automatic field of view, no color change)",
              file=sys.stderr)
        return None


def _use_key(key_file: str | None, profile) -> str | None:
    """The key for encrypted SOURCE files (models/core/sealed.py): --key-file, else the profile's
    deid.key_file (profile: a Profile, a profile file or None), else ENDOSPINE_KEY when a file needs
    it. Returns the key file used, if any."""
    from models.core import sealed

    if isinstance(profile, (str, Path)):
        from models.core.optics.profile import load_profile

        profile = load_profile(profile)
    key_file = key_file or (profile.deid.key_file if profile is not None else None)
    if key_file:
        sealed.use_key(sealed.read_key_file(key_file))
    return key_file


def _cmd_run(args: argparse.Namespace) -> int:
    from app.ai.supervisor import worker_config
    from app.compose import open_source_stage
    from app.platform_check import check_before_qt

    check_before_qt()  # missing system libraries or no display: one line and exit 1, not Qt's abort
    from app.ui.run import run_window
    from models.core.deid import DeidPolicy
    from models.core.timing import DEFAULT_TIMING

    profile = display_profile(args.profile)
    deid = DeidPolicy.from_profile(profile)  # recordings, snapshots: the field of view only; encrypted if it says
    from models.core.sealed import check_key_outside

    for key_file in {_use_key(args.key_file, profile), deid.key_file} - {None}:  # never beside the files
        check_key_outside(key_file, args.out_dir or Path.home() / "EndoSpine", "--out-dir")
    capture = profile.capture if profile is not None else None
    timing = profile.timing if profile is not None else DEFAULT_TIMING
    worker = worker_config(default_model(args.model, args.no_ai), args.backend,
                           profile=args.profile if profile is not None else None, precision=args.precision)
    spec = args.source or (capture.spec() if capture is not None else default_source())  # the tower's capture card
    # a missing or unreadable source is a one-line error here, before any window
    source = open_source_stage(spec, loop=not args.no_loop, capture=capture, isolated=True, timing=timing,
                               view_max=args.view_size)
    return run_window(source, worker, output_dir=args.out_dir, fullscreen=args.fullscreen, screen=args.screen,
                      screenshot=args.screenshot, review=args.review, timing=timing,
                      deid=deid,
                      quit_after=args.quit_after if args.quit_after is not None else (4.0 if args.screenshot else None))


def _cmd_render(args: argparse.Namespace) -> int:
    from app.render import render_video, summary_line
    from models.core.errors import EndoSpineError

    model = args.model or str(shipped_model())
    if not args.model and not (shipped_model() / "manifest.yaml").is_file():
        raise EndoSpineError("no --model given and no shipped model in assets/model")
    from app.ai.supervisor import worker_config

    # what `run` would use: backend, precision, post-processing
    live = worker_config(model, args.backend, profile=args.profile, precision=args.precision)
    _use_key(args.key_file, args.profile)  # an encrypted SOURCE's key
    from models.core.deid import DeidPolicy
    from models.core.optics.profile import load_profile

    # as the display's recordings: the field of view only, unless the profile's deid or the flag keeps whole frames
    policy = DeidPolicy.from_profile(load_profile(args.profile) if args.profile else None,
                                     keep_full_frame=args.keep_full_frame)
    summary = render_video(args.source, args.out, model, frames_csv=args.frames_csv, max_frames=args.max_frames,
                           settings=live.settings, post=live.post, progress=show_progress(args), policy=policy,
                           view_max=args.view_size)
    print(summary_line(summary))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the real widget, no screen needed

    from app.diagnostics.ui.bench import run_bench
    from models.core.errors import EndoSpineError

    model = args.model or str(shipped_model())
    if not (Path(model) / "manifest.yaml").is_file():
        raise EndoSpineError(f"{model}: no exported model here (give --model)")
    if args.profile:
        from models.core.optics.profile import load_profile

        load_profile(args.profile)  # a bad file is a one-line error before any measuring
    result = run_bench(args.source or default_source(), model, seconds=args.seconds, warmup=args.warmup,
                       backend=args.backend, profile=args.profile, record=args.record, decoder=args.decoder,
                       view_max=args.view_size, precision=args.precision)
    _emit(result, args.json)
    return 0


def _emit(result: dict, json_path: str | None) -> None:
    """Print the one-line JSON summary and, if asked, write it atomically. Printed first: a disk
    that fails then costs one line on stderr, not the figures of a long run."""
    import json

    from models.core.imageio import write_bytes_atomic

    text = json.dumps(result)
    print(text)
    if json_path:
        write_bytes_atomic(Path(json_path), (text + "\n").encode("utf-8"))


def _cmd_faults(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.diagnostics.reliability import run_faults
    from app.diagnostics.ui.fault_bench import AI_FAULTS
    from models.core.errors import EndoSpineError

    names = tuple(n for n in (args.ai or ",".join(AI_FAULTS)).split(",") if n)
    unknown = sorted(set(names) - set(AI_FAULTS))
    if unknown:
        raise EndoSpineError(f"--ai: unknown fault(s) {', '.join(unknown)} (known: {', '.join(AI_FAULTS)})")
    _emit(run_faults(cycles=args.cycles, ai_faults=names, files=not args.no_files, corpus_dir=args.corpus_dir),
          args.json)
    return 0


def _cmd_hostile(args: argparse.Namespace) -> int:
    from app.diagnostics.hostile import command

    return command(args)


def _cmd_soak(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.ai.supervisor import worker_config
    from app.diagnostics.reliability import soak_plot, soak_summary
    from app.diagnostics.ui.soak import run_soak
    from models.core.imageio import write_csv_atomic
    worker = worker_config(default_model(args.model, args.no_ai), args.backend)
    run = run_soak(args.source or default_source(), worker, args.minutes, interval_s=args.interval)
    warmup = min(args.warmup, args.minutes * 60 / 3)  # a short check run still has samples to fit
    summary = {k: v for k, v in run.items() if k != "samples"} | soak_summary(run["samples"], warmup)
    if args.plot:
        summary["plot"] = str(args.plot)
    _emit(summary, args.json)  # the figures first: a disk that fails below loses no more than its file
    if args.plot:
        soak_plot(run["samples"], warmup, Path(args.plot),
                  title=f"display {summary['display_fps_mean']} fps, AI {summary['ai_per_s_mean']}/s, "
                        f"{summary['ai_restarts']} AI restarts; {summary['machine']}")
    if args.samples_csv:
        write_csv_atomic(args.samples_csv, run["samples"])
    return 0


def _cmd_deid(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from app.deid import deidentify, summary_line
    from models.core.deid import DeidPolicy, parse_region
    from models.core.optics.profile import load_profile

    policy = DeidPolicy.from_profile(load_profile(args.profile) if args.profile else None)  # its circle and margin
    policy = replace(policy, region=parse_region(args.region) if args.region else None,
                     margin_px=args.margin if args.margin is not None else policy.margin_px)
    print(summary_line(deidentify(args.input, args.out, policy, report=args.report, progress=show_progress(args))))
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from models.core import sealed

    key = sealed.write_key_file(args.out)
    where = Path(args.out).expanduser().absolute()
    print(f"keygen: wrote {where} (key id {sealed.key_id(key)}, readable by you only). Keep it apart from the "
          f"recordings (another disk or a secured folder) and keep a copy: without it they cannot be read. "
          f"Use it in the profile, deid: {{encrypt: true, key_file: {where}}}, or as {sealed.ENV}=\"$(cat {where})\"")
    return 0


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from models.core import sealed

    key = sealed.read_key_file(args.key_file) if args.key_file else sealed.env_key()
    done = sealed.decrypt_file(args.input, args.out, key, partial=args.partial)
    cut = "; the file was cut short: this is the part before the cut" if done["truncated"] else ""
    print(f"decrypt: {args.input} -> {args.out}: {done['bytes']} bytes, key id {done['key_id']}, every chunk "
          f"authenticated{cut}")
    return 0


def _cmd_overlay_video(args: argparse.Namespace) -> int:
    from functools import partial

    from tqdm import tqdm

    from app.recording import overlay_video
    from models.core import sealed

    key = sealed.read_key_file(args.key_file) if args.key_file else sealed.env_key()
    bar = partial(tqdm, desc="overlay-video", unit="frame", disable=not show_progress(args))
    done = overlay_video(args.recording, args.out, key=key, progress=bar)
    print(f"overlay-video: {args.recording} -> {done['path']}: {done['frames']} frames, the mask painted on "
          f"{done['painted']}{done['note']}")
    return 0


def _cmd_pattern(args: argparse.Namespace) -> int:
    from app.platform_check import check_before_qt

    check_before_qt()  # as for run: one line naming what is missing, not Qt's abort
    from app.ui.pattern import run_pattern

    return run_pattern(screen=args.screen, windowed=args.windowed, quit_after=args.quit_after)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endospine", description=__doc__)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = sub.add_parser("run", help="open the display on a source")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help=source_help("the capture card of a --profile with capture settings, else the shipped demo "
                                    "video (assets/demo.mp4), else synthetic"))
    p.add_argument("--model", metavar="DIR", help="exported model folder (default: the shipped model, if present)")
    p.add_argument("--no-ai", action="store_true", help="video only, no inference worker")
    add_backend(p)
    add_precision(p)
    p.add_argument("--review", action="store_true",
                   help="frame-exact replay: each frame waits for its own mask (slower if the model is)")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="snapshots and recordings (default ~/EndoSpine)")
    p.add_argument("--fullscreen", action="store_true", help="start fullscreen (F11 toggles, Esc leaves)")
    p.add_argument("--screen", type=non_negative_int, metavar="N", help="open on monitor N (0-based), e.g. the OR monitor")
    p.add_argument("--no-loop", action="store_true", help="stop at the end of a video file instead of looping")
    p.add_argument("--quit-after", type=float, metavar="S", help="close the window after S seconds")
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="save a screenshot of the window just before closing (default after 4 s)")
    p.add_argument("--profile", metavar="FILE", help=PROFILE_HELP + "; its capture settings open the tower's "
                   "capture card when no SOURCE is given (a bad file: a warning and the default profile)")
    p.add_argument("--key-file", metavar="FILE", help="the key of an encrypted SOURCE (*.enc; default: the "
                   "profile's deid.key_file, else $ENDOSPINE_KEY)")
    add_view_size(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("render", help="frame-exact overlay video of a source, with a per-frame CSV (headless)")
    p.add_argument("source", metavar="SOURCE", help=source_help())
    p.add_argument("--out", required=True, metavar="OUT.mp4",
                   help="overlay video to write: the field of view only (every pixel beyond the endoscope's circle "
                        "+ margin black; all black until a circle is known)")
    p.add_argument("--model", metavar="DIR", help="exported model folder (default: the shipped model)")
    add_backend(p)
    add_precision(p)
    p.add_argument("--frames-csv", metavar="F", help="per-frame CSV: frame, pts, tissue area shares, inference ms, "
                   "the circle kept")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--profile", metavar="FILE", help=PROFILE_HELP + "; its fixed circle and deid settings "
                   "(margin, keep_full_frame) apply to the video")
    p.add_argument("--keep-full-frame", action="store_true",
                   help="write whole frames, NOT de-identified: text the video tower burns in around the picture "
                        "(patient name, dates, record number) stays (default: every pixel outside the field of "
                        "view black)")
    p.add_argument("--key-file", metavar="FILE", help="the key of an encrypted SOURCE (*.enc; default: the "
                   "profile's deid.key_file, else $ENDOSPINE_KEY)")
    add_view_size(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("bench", help="measure the live pipeline (real window, offscreen) against a naive loop")
    p.add_argument("source", nargs="?", metavar="SOURCE", help=DEFAULT_SOURCE_HELP)
    p.add_argument("--model", metavar="DIR", help="exported model folder (default: the shipped model)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per part (default 20)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    p.add_argument("--json", metavar="OUT", help="also write the JSON result here")
    add_backend(p)
    add_precision(p)
    p.add_argument("--profile", metavar="FILE", help=PROFILE_HELP)
    p.add_argument("--record", action="store_true",
                   help="also record (raw video, masks and CSV, as the R key) while measuring, into a temporary folder: "
                        "de-identified and, if the --profile says deid: encrypt, encrypted")
    p.add_argument("--decoder", choices=("process", "inprocess"), default="process",
                   help="a video file decoded in its own child process, as `endospine run` does, or in the "
                        "bench's process (for comparison)")
    add_view_size(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("faults", help="reliability figures: scripted AI faults, unplug/replug, broken files (offscreen)")
    p.add_argument("--cycles", type=non_negative_int, default=100, help="unplug/replug cycles (default 100, ~2.9 s each)")
    p.add_argument("--ai", metavar="LIST", help="comma-separated AI faults to run (default all: slow,hang,crash,segv,"
                   "nan,wrong_shape)")
    p.add_argument("--no-files", action="store_true", help="skip the broken-file corpus")
    p.add_argument("--corpus-dir", type=Path, metavar="DIR", help="keep the generated broken files here")
    p.add_argument("--json", metavar="OUT", help="also write the JSON result here")
    p.set_defaults(func=_cmd_faults)

    p = sub.add_parser("hostile", help="the hostile-input corpus (issue 19) against the real commands, in capped "
                       "child processes: exit, traceback, crash, peak memory per case")
    from app.diagnostics.hostile import add_arguments  # argparse only: no Qt, no pipeline

    add_arguments(p)
    p.set_defaults(func=_cmd_hostile)

    p = sub.add_parser("soak", help="run the live display offscreen for a long time; memory, fds and threads per hour")
    p.add_argument("source", nargs="?", metavar="SOURCE", help=DEFAULT_SOURCE_HELP + " (looped)")
    p.add_argument("--minutes", type=number(float, 0.1, 10080), default=60.0, help="how long (default 60)")
    p.add_argument("--interval", type=number(float, 0.5, 600), default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--warmup", type=number(float, 0), default=300.0,
                   help="seconds left out of the growth fit (default 300; at most a third of the run)")
    p.add_argument("--model", metavar="DIR", help="exported model folder (default: the shipped model, if present)")
    p.add_argument("--no-ai", action="store_true", help="video only")
    add_backend(p)
    p.add_argument("--plot", metavar="PNG", help="plot of the samples")
    p.add_argument("--samples-csv", metavar="CSV", help="every sample")
    p.add_argument("--json", metavar="OUT", help="also write the JSON result here")
    p.set_defaults(func=_cmd_soak)

    p = sub.add_parser("deid", help="a de-identified copy of a video, an image or a folder of images: every pixel "
                       "outside the endoscope's field of view black, no metadata",
                       description="Copy IN to OUT keeping only the field of view (the circle found in the frames, "
                                   "--region or a profile's fixed circle, plus --margin): text a video tower burns "
                                   "in around the picture (patient name, dates, record number) is removed, and so is "
                                   "every metadata key (creation time, device, encoder, EXIF, ...). A video or "
                                   "image without a circle is refused unless a region is given. Writes a JSON "
                                   "report (the circle per file, the share of pixels blacked out, the keys "
                                   "dropped) and prints one summary line.")
    p.add_argument("input", metavar="IN", help="a video file, an image, or a folder of images (not its subfolders)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="the copy: a video file (.mp4 .mkv ...) for a video, an image for an image, a new or "
                        "empty folder for a folder")
    p.add_argument("--region", metavar="CX,CY,R", help="the field of view to keep, a circle in pixels "
                   "(default: the profile's fixed circle, else found in the frames)")
    p.add_argument("--profile", metavar="FILE", help="endoscope profile: its fixed circle and deid margin")
    p.add_argument("--margin", type=number(float, 0, 64), metavar="PX",
                   help="picture kept beyond the circle, in pixels (default: the profile's, else 4)")
    p.add_argument("--report", metavar="FILE", help="the JSON report (default: OUT.deid.json beside a file, "
                   "OUT/deid.json in a folder)")
    p.set_defaults(func=_cmd_deid)

    p = sub.add_parser("keygen", help="a new key for encrypting recordings and snapshots (the profile's deid: "
                       "{encrypt: true, key_file: FILE})")
    p.add_argument("--out", required=True, metavar="FILE", help="the key file to create (never overwritten; keep it "
                   "away from the recordings)")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("decrypt", help="the plain file of an encrypted recording, snapshot or CSV (*.enc), for review",
                       description="Decrypt IN to OUT, authenticating every chunk first: a wrong key, a changed, "
                                   "reordered or missing byte is one line and exit 1, and nothing is written.")
    p.add_argument("input", metavar="IN", help="an encrypted file (rec-0001_raw.mp4.enc, ...)")
    p.add_argument("--out", required=True, metavar="OUT", help="the plain file to write (e.g. rec-0001_raw.mp4)")
    p.add_argument("--key-file", metavar="FILE", help="the key (default: $ENDOSPINE_KEY)")
    p.add_argument("--partial", action="store_true", help="a file cut short (its recording's process died): write "
                   "the part before the cut that authenticates")
    p.set_defaults(func=_cmd_decrypt)

    p = sub.add_parser("overlay-video", help="a recording's overlay video: its raw video with the masks the display "
                       "painted, as it painted them",
                       description="Recordings keep the raw video, each mask the display painted (rec-NNNN_masks/) "
                                   "and per frame which mask was shown where and how (rec-NNNN_frames.csv). This "
                                   "paints them on the raw frames, de-identified as the recording; an encrypted "
                                   "recording gives an encrypted video (OUT + .enc), with the same key.")
    p.add_argument("recording", metavar="CSV", help="the recording's rec-NNNN_frames.csv (or .csv.enc)")
    p.add_argument("--out", required=True, metavar="OUT", help="the overlay video to write (e.g. rec-0001_overlay.mp4)")
    p.add_argument("--key-file", metavar="FILE", help="the key of an encrypted recording (default: $ENDOSPINE_KEY)")
    p.set_defaults(func=_cmd_overlay_video)

    p = sub.add_parser("pattern", help="show the latency loopback pattern full screen (endospine-calibrate latency)")
    p.add_argument("--screen", type=non_negative_int, metavar="N", help="on monitor N (0-based)")
    p.add_argument("--windowed", action="store_true", help="in a window instead of full screen")
    p.add_argument("--quit-after", type=float, metavar="S", help="close after S seconds")
    p.set_defaults(func=_cmd_pattern)
    check_before(sub, OUTPUTS)
    return common_options(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
