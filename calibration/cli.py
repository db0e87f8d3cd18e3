"""`endospine-calibrate`: endoscope profiles (field of view, color, lens, latency).

Each command measures one thing about a tower and writes it into a profile YAML (--out),
keeping the profile's other sections. `endospine run --profile FILE` and the pipeline
(`endospine-model train|predict --profile FILE`) apply the profile the same way.

SOURCE, as for `endospine`: a video file, a stream URL, a folder of images, a single image, a
capture card or camera (capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=]), or
synthetic[:SEED][?width=&height=]. latency needs a live one: capture:N or a stream URL.

Every output (--out, --preview, --plot) is checked before the measuring starts: a YAML profile,
a PNG or JPEG picture, a folder that can be written, not the source (models.core.outputs).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from models.core.cliutil import Deprecated, common_options, non_negative_int, number, positive_int, run, source_help
from models.core.outputs import IMAGE, PLOT, YAML, check_before

LENS_MODELS = ("fisheye", "rational")
# What each command writes (option -> kind, folders) and reads: checked before it runs.
OUTPUTS = {
    "fov": {"files": {"out": YAML, "preview": IMAGE}, "inputs": ("source",)},
    "color": {"files": {"out": YAML}, "inputs": ("source",)},
    "lens": {"files": {"out": YAML}, "inputs": ("images",)},
    "latency": {"files": {"out": YAML, "plot": PLOT}, "inputs": ("source",)},
    "selftest": {"folders": ("out",)},
}


def build_parser() -> argparse.ArgumentParser:
    from calibration import commands as c

    parser = argparse.ArgumentParser(prog="endospine-calibrate", description=__doc__)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("fov", help="measure the circular field of view (center, radius, notch) over many frames",
                       description="Detect the circle in each frame (subpixel rim, robust to instruments, dark rim "
                                   "tissue, letterboxing, burned-in text), reject frames that disagree, average the "
                                   "rest. Writes fov: mode fixed. Frames are undistorted first when the profile's "
                                   "lens section says so.")
    p.add_argument("source", metavar="SOURCE", help=source_help())
    p.add_argument("--out", required=True, metavar="PROFILE", help="profile YAML to create or update")
    p.add_argument("--frames", type=positive_int, default=40, help="frames spread over the source (default 40)")
    p.add_argument("--preview", metavar="PNG", help="also write a frame with the measured circle drawn on it")
    p.set_defaults(func=c.cmd_fov)

    p = sub.add_parser("color", help="white balance from a white or gray reference (or gray world)",
                       description="Point the scope at a white or gray card that fills its view. Gains (linear light) "
                                   "make the card neutral at its own brightness. A dark, clipped or non-uniform "
                                   "reference is refused.")
    p.add_argument("source", metavar="SOURCE", help="frames of the reference card: " + source_help())
    p.add_argument("--out", required=True, metavar="PROFILE", help="profile YAML to create or update")
    p.add_argument("--frames", type=positive_int, default=10, help="frames to average (default 10)")
    p.add_argument("--gray-world", action="store_true",
                   help="no card: assume the frames average to gray (over-corrects red surgical scenes; flagged)")
    p.set_defaults(func=c.cmd_color)

    p = sub.add_parser("lens", help="lens distortion from checkerboard images (fisheye or rational model)",
                       description="COLSxROWS counts inner corners (a board of 10x7 squares has 9x6). Use 10-20 views "
                                   "at varied angles and distances, reaching the edge of the field of view.")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders of images, or videos")
    p.add_argument("--pattern", required=True, metavar="COLSxROWS", help="inner corners, e.g. 9x6")
    p.add_argument("--out", required=True, metavar="PROFILE", help="profile YAML to create or update")
    p.add_argument("--lens-model", choices=LENS_MODELS, default="fisheye",
                   help="OpenCV fisheye (endoscopes) or the rational model")
    p.add_argument("--model", dest="lens_model", action=Deprecated, new="--lens-model", accepted=LENS_MODELS,
                   hint=f"the lens model is --lens-model ({', '.join(LENS_MODELS)})")
    p.add_argument("--balance", type=number(float, 0, 1), default=1.0,
                   help="undistorted view: 1 keeps the whole field of view (default), 0 crops to full pixels")
    p.add_argument("--no-undistort", action="store_true", help="store the model without applying it")
    p.add_argument("--frames", type=positive_int, default=40, help="frames taken from each video (default 40)")
    p.set_defaults(func=c.cmd_lens)

    p = sub.add_parser("latency", help="glass-to-glass loopback: show a pattern, film it, read it back",
                       description="Starts `endospine pattern` (full screen on --screen) in its own process; a camera "
                                   "filming it feeds SOURCE. Reports p50/p95/max latency from drawing the pattern to "
                                   "receiving its picture (same machine: one CLOCK_MONOTONIC).")
    p.add_argument("--source", required=True, metavar="SOURCE",
                   help="a live source: capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=] or a stream URL")
    p.add_argument("--seconds", type=number(float, 1, 3600), default=20.0, help="measuring time (default 20)")
    p.add_argument("--screen", type=non_negative_int, metavar="N", help="monitor for the pattern (0-based)")
    p.add_argument("--no-pattern", action="store_true", help="the pattern is already shown (endospine pattern)")
    p.add_argument("--out", metavar="PROFILE", help="also store the figures in this profile")
    p.add_argument("--plot", metavar="PNG", help="histogram of the latencies")
    p.set_defaults(func=c.cmd_latency)

    p = sub.add_parser("show", help="check a profile and print what it holds")
    p.add_argument("profile", metavar="PROFILE")
    p.set_defaults(func=c.cmd_show)

    p = sub.add_parser("selftest", help="run the tools on synthetic frames with known answers; print the errors")
    p.add_argument("--quick", action="store_true", help="fewer cases (about a minute)")
    p.add_argument("--out", metavar="DIR", help="also write example pictures here")
    p.set_defaults(func=c.cmd_selftest)
    check_before(sub, OUTPUTS)
    return common_options(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
