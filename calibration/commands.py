"""The `endospine-calibrate` commands: measure one section, update it in the profile file.

Running a command on an existing profile replaces only its own section (and the capture
settings, when the source was a capture device); the other sections stay as they were.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from calibration.frames import live_frames, sample_frames
from models.core.errors import EndoSpineError
from models.core.imageio import write_image
from models.core.optics.capture_settings import CaptureSettings
from models.core.optics.circlefit import fit_circle_lsq
from models.core.optics.fov import Circle
from models.core.optics.lens import LensModel, Undistorter
from models.core.optics.profile import (
    ColorSection,
    FovSection,
    LatencySection,
    Profile,
    load_or_default,
    load_profile,
    save_profile,
)
from models.core.sources.registry import SOURCE_KINDS, kind_of


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"endospine-calibrate: warning: {text}", file=sys.stderr, flush=True)


def _capture_of(spec: str, profile: Profile) -> CaptureSettings | None:
    """The capture settings a capture SOURCE was read with (to store in the profile), else the profile's."""
    return CaptureSettings.parse(spec, profile.capture) if kind_of(spec) == "capture" else profile.capture


# -- fov -----------------------------------------------------------------------------------------
def cmd_fov(args: argparse.Namespace) -> int:
    from calibration.fov import draw_preview, estimate_fov

    profile = load_or_default(args.out)
    samples = sample_frames(args.source, args.frames, profile.capture)
    und = _undistorter(profile, samples[0].image)
    est = estimate_fov(samples, und.frame if und is not None else None)
    c = est.circle
    section = FovSection("fixed", est.frame_size, (round(c.cx, 3), round(c.cy, 3)), round(c.r, 3), est.notch_deg,
                         undistorted=und is not None,
                         measured={"source": args.source, "frames": est.total, "used": est.used,
                                   "spread_px": round(est.spread_px, 3), "no_circle": len(est.missing),
                                   "outliers": len(est.rejected)})
    save_profile(profile.updated(fov=section, capture=_capture_of(args.source, profile)), args.out)
    if est.missing:
        _warn(f"no circle in {len(est.missing)} of {est.total} frames (e.g. {est.missing[0]})")
    if est.rejected:
        _warn(f"{len(est.rejected)} frames disagreed and were left out (e.g. {est.rejected[0]})")
    notch = f", notch at {est.notch_deg:.1f} deg" if est.notch_deg is not None else ", no notch marker"
    _say(f"fov: center ({c.cx:.1f}, {c.cy:.1f}) radius {c.r:.1f} px in {est.frame_size[0]}x{est.frame_size[1]} "
         f"frames (spread {est.spread_px:.2f} px over {est.used} of {est.total} frames){notch} -> {args.out}")
    if args.preview:
        image = und.frame(samples[0].image) if und is not None else samples[0].image
        write_image(args.preview, draw_preview(image, est))
        _say(f"preview: {args.preview}")
    return 0


def _undistorter(profile: Profile, image: np.ndarray) -> Undistorter | None:
    lens = profile.lens
    size = (image.shape[1], image.shape[0])
    if lens is None or not lens.undistort:
        return None
    if not lens.fits(size):
        raise EndoSpineError(f"the profile's lens was calibrated on {lens.image_size[0]}x{lens.image_size[1]} frames, "
                             f"these are {size[0]}x{size[1]}: re-run endospine-calibrate lens for this format")
    return Undistorter(lens, size)


# -- color ---------------------------------------------------------------------------------------
def cmd_color(args: argparse.Namespace) -> int:
    from calibration.color import gray_world, white_reference

    profile = load_or_default(args.out)
    samples = sample_frames(args.source, args.frames, profile.capture)
    h, w = samples[0].image.shape[:2]
    circle = profile.fov.circle_for(w, h) if not profile.fov.undistorted else None
    est = gray_world(samples, circle) if args.gray_world else white_reference(samples, circle)
    section = ColorSection("gains", est.gains, method=est.method, measured={"source": args.source, **est.measured()})
    save_profile(profile.updated(color=section, capture=_capture_of(args.source, profile)), args.out)
    if args.gray_world:
        _warn("gray world assumes the frames average to gray; surgical scenes are red, so it over-corrects "
              "them: prefer a white or gray card (method stored in the profile: gray-world)")
    _say(f"color ({est.method}): gains R {est.gains[0]:.3f} G {est.gains[1]:.3f} B {est.gains[2]:.3f} "
         f"from {est.frames} frames (level {est.level:.0f}/255, clipped {est.clipped:.1%}) -> {args.out}")
    return 0


# -- lens ----------------------------------------------------------------------------------------
def cmd_lens(args: argparse.Namespace) -> int:
    from calibration.lens import calibrate, parse_pattern

    pattern = parse_pattern(args.pattern)
    profile = load_or_default(args.out)
    samples = []
    for spec in args.images:
        kind = kind_of(spec)
        if kind not in ("folder", "image", "video"):
            raise EndoSpineError(f"{spec}: lens needs image files, folders or video files of the checkerboard")
        samples += sample_frames(spec, 10 ** 6 if kind in ("folder", "image") else args.frames)
    est = calibrate(samples, pattern, args.lens_model, balance=args.balance)
    lens = LensModel(**{**est.lens.__dict__, "undistort": not args.no_undistort})
    fov = _fov_through_new_lens(profile, lens)
    save_profile(profile.updated(lens=lens, fov=fov), args.out)
    for name in est.missing:
        _warn(f"{name}: no {pattern[0]}x{pattern[1]} checkerboard found (left out)")
    worst = sorted(est.per_image_px.items(), key=lambda kv: -kv[1])[:3]
    k = np.asarray(lens.camera_matrix)
    _say(f"lens ({lens.model}): RMS reprojection error {est.rms_px:.3f} px over {len(est.per_image_px)} boards "
         f"(worst: {', '.join(f'{n} {e:.2f}' for n, e in worst)}); fx {k[0, 0]:.1f} fy {k[1, 1]:.1f} "
         f"cx {k[0, 2]:.1f} cy {k[1, 2]:.1f} -> {args.out}")
    if fov is not profile.fov:
        _say("fov: the fixed circle was carried over into the new lens geometry")
    return 0


def _fov_through_new_lens(profile: Profile, lens: LensModel) -> FovSection:
    """A fixed circle moved into the new lens's geometry (a circle maps to a near-circle)."""
    fov = profile.fov
    if fov.mode != "fixed":
        return fov
    size = tuple(fov.frame_size)
    if not lens.fits(size):
        _warn("the fixed field of view is for another frame format; re-run endospine-calibrate fov")
        return FovSection("auto")
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    pts = np.stack([fov.center[0] + fov.radius * np.cos(t), fov.center[1] + fov.radius * np.sin(t)], 1)
    if fov.undistorted and profile.lens is not None:
        pts = Undistorter(profile.lens, size).to_raw(pts)
    if lens.undistort:
        pts = Undistorter(lens, size).to_undistorted(pts)
    cx, cy, r = fit_circle_lsq(pts[np.isfinite(pts).all(axis=1)])
    c = Circle(cx, cy, r)
    return FovSection("fixed", size, (round(c.cx, 3), round(c.cy, 3)), round(c.r, 3), fov.notch_deg,
                      undistorted=lens.undistort, measured=fov.measured)


# -- latency -------------------------------------------------------------------------------------
def cmd_latency(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from calibration.latency import launch_pattern, measure, stop_pattern

    kind = kind_of(args.source)
    if not SOURCE_KINDS[kind].live:
        raise EndoSpineError(f"{args.source}: latency needs a live source (capture:N or a stream URL); a {kind} "
                             "has no arrival times to measure")
    profile = load_or_default(args.out) if args.out else None
    capture = profile.capture if profile is not None else None
    frames = live_frames(args.source, capture)
    proc = None if args.no_pattern else launch_pattern(args.screen)
    try:
        bar = tqdm(total=int(args.seconds), unit="s", desc="latency", file=sys.stderr,
                   disable=getattr(args, "quiet", False))

        def progress(meter, elapsed: float) -> None:
            bar.n = min(int(elapsed), bar.total)
            bar.set_postfix(read=f"{len(meter.latencies)}/{meter.frames}")
        stats = measure(frames, args.seconds, progress)
        bar.close()
    finally:
        if proc is not None:
            stop_pattern(proc)
    summary = {"source": args.source, **stats.summary()}
    _say(json.dumps(summary))
    if args.plot:
        _plot(args.plot, stats)
    if args.out:
        section = LatencySection(round(stats.p50_ms, 2), round(stats.p95_ms, 2), round(stats.max_ms, 2), stats.samples,
                                 args.source, measured={"min_ms": round(stats.min_ms, 2), "frames": stats.frames})
        save_profile(profile.updated(latency=section, capture=_capture_of(args.source, profile)), args.out)
        _say(f"latency -> {args.out}")
    return 0


def _plot(path: str, stats) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    ax.hist(stats.values, bins=40, color="0.6")
    ax.axvline(stats.p50_ms, color="k", lw=1, label=f"p50 {stats.p50_ms:.1f} ms")
    ax.axvline(stats.p95_ms, color="r", lw=1, label=f"p95 {stats.p95_ms:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_title(f"loopback latency, {stats.samples} frames")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- show ----------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    p = load_profile(args.profile)
    fov = p.fov
    lines = [f"{args.profile}: valid endoscope profile{f' ({p.name})' if p.name else ''}"]
    if fov.mode == "fixed":
        lines.append(f"  fov: fixed circle center ({fov.center[0]:.1f}, {fov.center[1]:.1f}) radius {fov.radius:.1f} px "
                     f"in {fov.frame_size[0]}x{fov.frame_size[1]}"
                     + (f", notch {fov.notch_deg:.1f} deg" if fov.notch_deg is not None else ""))
    else:
        lines.append(f"  fov: {fov.mode}")
    col = p.color
    lines.append(f"  color: {col.mode}" + (f" {', '.join(f'{g:.3f}' for g in col.gains)} ({col.method})"
                                          if col.mode == "gains" else ""))
    lines.append(f"  lens: {p.lens.model}, RMS {p.lens.rms_px} px, undistort {'on' if p.lens.undistort else 'off'}"
                 if p.lens else "  lens: none")
    lines.append(f"  latency: p50 {p.latency.p50_ms} ms, p95 {p.latency.p95_ms} ms, max {p.latency.max_ms} ms"
                 if p.latency else "  latency: not measured")
    lines.append(f"  capture: {p.capture.spec()}" if p.capture else "  capture: not set")
    _say("\n".join(lines))
    return 0


# -- selftest ------------------------------------------------------------------------------------
def cmd_selftest(args: argparse.Namespace) -> int:
    from calibration.selftest import run_selftest

    figures = run_selftest(quick=args.quick, out=args.out, say=_say)
    _say(json.dumps(figures, default=float))
    return 0
