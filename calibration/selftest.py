"""`endospine-calibrate selftest`: every tool on synthetic inputs with known answers, errors measured.

    field of view  single frames of the scene engine and the hard cases of calibration.synthetic
                   (center and radius error / radius), and the multi-frame estimate with its notch
    color          known casts on scene-engine frames, corrected from a white card under the same
                   cast: mean CIEDE2000 to the uncast frame (before, after, gray world for contrast)
    lens           checkerboards through a known fisheye and rational lens: focal, center, the
                   largest ray-landing difference over the boards' area, RMS reprojection
    latency        a simulated loop with known delays: p50 and min minus the delay
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from calibration.frames import Sample
from models.core.optics.color import ColorCorrection, ciede2000, rgb8_to_lab
from models.core.optics.fov import detect_fov


def _rel(found, true) -> tuple[float, float]:
    return float(np.hypot(found.cx - true.cx, found.cy - true.cy) / true.r), float(abs(found.r - true.r) / true.r)


def fov_figures(quick: bool, out: Path | None) -> dict:
    from calibration.fov import draw_preview, estimate_fov
    from calibration.frames import sample_frames
    from calibration.synthetic import FOV_CASES, fov_case
    from models.core.optics.fov import Circle
    from models.synth import SyntheticClip

    seeds = range(2 if quick else 6)
    clip_err, missed = [], 0
    for size in ((1920, 1080), (1280, 720), (960, 540), (512, 512), (640, 480)):
        for seed in seeds:
            clip = SyntheticClip(seed, 0, *size)
            for t in (0, 120):
                found = detect_fov(clip.render(t)[0])
                if found is None:
                    missed += 1
                else:
                    clip_err.append(_rel(found, Circle(*clip.fov)))
    case_err: dict[str, list] = {k: [] for k in FOV_CASES}
    for kind in FOV_CASES:
        for seed in seeds:
            for size in ((1280, 720), (1920, 1080)):
                frame, truth = fov_case(kind, seed, size)
                found = detect_fov(frame)
                case_err[kind].append(_rel(found, truth) if found is not None else (np.inf, np.inf))
                if out is not None and seed == 0 and size == (1280, 720):
                    from calibration.fov import FovEstimate
                    from models.core.imageio import write_image

                    est = FovEstimate(found or truth, size, None, 1, 1, 0.0)
                    write_image(out / f"fov-{kind}.jpg", draw_preview(frame, est))
    notch_err, multi_err = [], []
    for seed in range(3 if quick else 8):
        clip = SyntheticClip(seed, 0, 1280, 720)
        est = estimate_fov(sample_frames(f"synthetic:{seed}?width=1280&height=720", 12))
        multi_err.append(_rel(est.circle, Circle(*clip.fov)))
        truth = clip.notch_deg
        if truth is None or est.notch_deg is None:
            notch_err.append(0.0 if truth is est.notch_deg else np.inf)
        else:
            notch_err.append(abs((est.notch_deg - truth + 180) % 360 - 180))
    c = np.array(clip_err)
    return {"clip_frames": len(c), "clip_missed": missed,
            "clip_center_err_median": float(np.median(c[:, 0])), "clip_center_err_max": float(c[:, 0].max()),
            "clip_radius_err_median": float(np.median(c[:, 1])), "clip_radius_err_max": float(c[:, 1].max()),
            "cases_max_err": {k: float(np.max(v)) for k, v in case_err.items()},
            "multi_frame_max_err": float(np.max(multi_err)), "notch_err_deg_max": float(np.max(notch_err))}


def color_figures(quick: bool, out: Path | None) -> dict:
    from calibration.color import gray_world, white_reference
    from calibration.synthetic import CASTS, cast, scope_picture, white_card
    from models.core.errors import EndoSpineError

    rows, per_cast = [], {}
    for seed in range(2 if quick else 4):
        img, c = scope_picture(seed, 480)
        yy, xx = np.mgrid[0:480, 0:480]
        inside = (xx - c.cx) ** 2 + (yy - c.cy) ** 2 <= (0.97 * c.r) ** 2
        lab0 = rgb8_to_lab(img[inside])
        card = white_card((480, 480), c, seed=seed)
        for g in CASTS:
            seen = cast(img, g)
            gains = white_reference([Sample("card", cast(card, g))]).gains
            fixed = ColorCorrection.from_gains(gains)(seen)
            try:
                gw = ColorCorrection.from_gains(gray_world([Sample("frame", seen)]).gains)(seen)
                gw_de = float(ciede2000(rgb8_to_lab(gw[inside]), lab0).mean())
            except EndoSpineError:
                gw_de = float("nan")  # cast too strong for gray world's gains
            row = (float(ciede2000(rgb8_to_lab(seen[inside]), lab0).mean()),
                   float(ciede2000(rgb8_to_lab(fixed[inside]), lab0).mean()), gw_de)
            rows.append(row)
            per_cast.setdefault(str(g), []).append(row[1])
            if out is not None and seed == 0 and g == CASTS[0]:
                from models.core.imageio import write_image

                write_image(out / "color-cast-before-after.jpg", np.concatenate([img, seen, fixed], axis=1))
    r = np.array(rows)
    return {"pairs": len(r), "de2000_mean_before": float(r[:, 0].mean()), "de2000_mean_after": float(r[:, 1].mean()),
            "de2000_max_after": float(r[:, 1].max()), "de2000_mean_gray_world": float(np.nanmean(r[:, 2])),
            "per_cast_after": {k: float(np.mean(v)) for k, v in per_cast.items()}}


def lens_figures(quick: bool, out: Path | None) -> dict:
    from calibration.lens import board_points, calibrate
    from calibration.synthetic_lens import FISHEYE, RATIONAL, BoardCamera, mapping_error

    result = {}
    pattern = (7, 5)
    for truth in (FISHEYE, RATIONAL):
        cam = BoardCamera(truth)
        views = cam.views(pattern, 8 if quick else 14, seed=3)
        est = calibrate([Sample(f"board{i}", v[0]) for i, v in enumerate(views)], pattern, truth.model)
        corners = np.concatenate([cam.project(board_points(pattern), v[1], v[2]) for v in views])
        k0, k1 = np.asarray(truth.camera_matrix), np.asarray(est.lens.camera_matrix)
        result[truth.model] = {
            "boards": len(est.per_image_px), "rms_px": est.rms_px,
            "fx_err_pct": float(100 * abs(k1[0, 0] / k0[0, 0] - 1)), "fy_err_pct": float(100 * abs(k1[1, 1] / k0[1, 1] - 1)),
            "center_err_px": float(np.hypot(k1[0, 2] - k0[0, 2], k1[1, 2] - k0[1, 2])),
            "mapping_err_px_max": mapping_error(truth, est.lens, corners)}
        if out is not None:
            from models.core.imageio import write_image
            from models.core.optics.lens import Undistorter

            und = Undistorter(est.lens, truth.image_size).frame(views[0][0])
            write_image(out / f"lens-{truth.model}.jpg", np.concatenate([views[0][0], und], axis=1))
    return result


def latency_figures(quick: bool, out: Path | None) -> dict:
    from calibration.latency import measure
    from calibration.synthetic import simulated_loopback

    result = {}
    for delay in ((83, 250) if quick else (50, 83, 120, 250)):
        s = measure(simulated_loopback(delay, seconds=2.0 if quick else 4.0, seed=delay), seconds=60)
        result[f"{delay}ms"] = {"p50_minus_delay": round(s.p50_ms - delay, 2), "min_minus_delay": round(s.min_ms - delay, 2),
                                "read": f"{s.samples}/{s.frames}"}
    if out is not None:
        from models.core.imageio import write_image

        write_image(out / "latency-camera-frame.jpg", next(iter(simulated_loopback(83, seconds=0.1)))[0])
    return result


def run_selftest(quick: bool = False, out: str | None = None, say=print) -> dict:
    folder = Path(out) if out else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name, fn in (("fov", fov_figures), ("color", color_figures), ("lens", lens_figures), ("latency", latency_figures)):
        t0 = time.monotonic()
        figures[name] = fn(quick, folder)
        say(f"{name} ({time.monotonic() - t0:.0f} s): {figures[name]}")
    return figures
