"""From an Accumulator to the figures of the report: metrics.json, per-image and per-clip tables.

Conventions (the paper's): per class, one-vs-rest over all valid pixels of the split (pooled,
not averaged over images); "mean" is over the tissue classes (every class but background, id 0),
"mean_paper" over the paper's three (bone, ligament, disc; when the table has them),
"mean_with_background" over all classes ("mean_classes" names them). Fractions in [0, 1]; a figure
that does not exist (a class absent from truth and prediction, an AUC without probabilities) is
null, never 0 or 1. "ci95" mirrors the figures with [low, high]: a 95 % bootstrap interval over
clips ("bootstrap" says over what and how many; see bootstrap.py). "calibration" holds the expected
calibration error of the model's top-class probability (see calibration.py), without an interval.
"""
from __future__ import annotations

import math

import numpy as np

from models.core.cliutil import plural
from models.evaluate.accumulate import Accumulator
from models.evaluate.bootstrap import CONFIDENCE, DEFAULT_RESAMPLES, SMALL_SPLIT, Units, intervals
from models.evaluate.calibration import ECE_BINS, Calibration, CalibrationBins
from models.metrics import scores_from_matrix

KEYS = ("accuracy", "precision", "recall", "iou", "dice", "auc")
NO_PROBABILITIES = "evaluated from label maps (--pred): no probabilities"
PAPER_TISSUES = ("bone", "ligament", "disc")  # the paper's figures are over these three


def mean_groups(names: list[str]) -> dict[str, list[int]]:
    """Which classes each mean averages: mean (tissues: all but background), mean_paper, mean_with_background."""
    every = list(range(len(names)))
    groups = {"mean": every[1:] or every}
    if all(t in names for t in PAPER_TISSUES):
        groups["mean_paper"] = [names.index(t) for t in PAPER_TISSUES]
    groups["mean_with_background"] = every
    return groups


def metrics(acc: Accumulator, split: str, extra: dict | None = None, resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0) -> dict:
    """The metrics.json document (the issue fixes the first eight keys); resamples 0: no intervals."""
    names = acc.classes.names
    m = acc.confusion.matrix
    per = scores_from_matrix(m)
    auc = acc.histograms.auc() if acc.histograms is not None else np.full(len(names), np.nan)
    per["auc"] = auc
    total = int(m.sum())
    rows = m.sum(axis=1, keepdims=True)
    normalized = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    groups = mean_groups(names)
    doc = {
        "classes": names,
        "split": split,
        "images": len(acc.rows),
        "per_class": {n: {k: num(per[k][i]) for k in KEYS} for i, n in enumerate(names)},
        **{g: {k: mean(per[k][cols]) for k in KEYS} for g, cols in groups.items()},
        "mean_classes": {g: [names[i] for i in cols] for g, cols in groups.items()},
        "pixel_accuracy": num(np.trace(m) / total) if total else None,
        "confusion_matrix": m.astype(int).tolist(),
        "confusion_matrix_row_normalized": [[round(float(v), 6) for v in r] for r in normalized],
        "valid_pixels": total,
        "clips": len(acc.clip_matrices),
        "roc_auc": ({"available": True, "source": "softmax probability per class, one-vs-rest over valid pixels",
                     "bins": acc.histograms.bins, "bin_space": "logit", "ties": "counted half"}
                    if acc.histograms is not None else
                    {"available": False, "reason": NO_PROBABILITIES}),
        "calibration": calibration_doc(acc.calibration),
    }
    doc.update(interval_doc(acc, groups, auc, resamples, seed))
    doc.update(extra or {})
    return doc


def calibration_doc(cal: Calibration | None) -> dict:
    """The "calibration" block: ECE as exported, before temperature scaling (null: the model is not
    scaled), the temperature, and the reliability diagram's numbers per bin; the same keys without a model."""
    if cal is None:
        return {"available": False, "reason": NO_PROBABILITIES, "bins": ECE_BINS, "pixels": 0, "ece": None,
                "ece_before": None, "temperature": None}
    scaled = cal.before is not None
    return {"available": True,
            "source": "top-class softmax probability per valid pixel, right when its class is the reference's",
            "bins": cal.bins, "pixels": cal.exported.pixels, "ece": num(cal.exported.ece()),
            "ece_before": num(cal.before.ece()) if scaled else None, "temperature": cal.temperature,
            "note": (f"the export baked temperature {cal.temperature:g} into the model; ece_before reverses it, "
                     f"softmax(T log p)" if scaled else "the model is not temperature-scaled (no gate.temperature)"),
            "reliability": reliability_doc(cal.exported),
            "reliability_before": reliability_doc(cal.before) if scaled else None}


def reliability_doc(bins: CalibrationBins) -> dict:
    """Per bin: pixels, mean confidence and accuracy (null where a bin is empty)."""
    r = bins.reliability()
    return {"count": [int(v) for v in r.count], "confidence": [num(v) for v in r.confidence],
            "accuracy": [num(v) for v in r.accuracy]}


def interval_doc(acc: Accumulator, groups: dict[str, list[int]], auc: np.ndarray, resamples: int, seed: int) -> dict:
    """"bootstrap" (over what, how many, why images) and "ci95" ([low, high] beside every figure; null: none)."""
    units = acc.units()
    n = len(units.matrices)
    small = small_split(units)
    about = {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE, "unit": units.kind, "units": n,
             "small_split": small, "unit_note": units.note,
             "method": f"percentile bootstrap: {units.kind}s drawn with replacement, figures from the pooled pixels "
                       f"of each resample",
             "note": interval_note(units, small, acc.histograms is not None)}
    ci = intervals(units, groups, resamples, seed, auc if acc.histograms is not None else None)
    if ci is None:
        about["note"] = ("no intervals (--bootstrap 0)" if resamples < 1 else
                         f"no intervals: {n} {units.kind}{'s' if n != 1 else ''}, need two")
        return {"bootstrap": about, "ci95": None}
    names = acc.classes.names
    per = ci["per_class"]
    return {"bootstrap": about, "ci95": {
        "per_class": {c: {k: pair(per[k][i]) if k in per else None for k in KEYS} for i, c in enumerate(names)},
        **{g: {k: pair(v[k]) if k in v else None for k in KEYS} for g, v in ci["means"].items()},
        "pixel_accuracy": pair(ci["pixel_accuracy"])}}


def small_split(units: Units) -> bool:
    """Fewer than SMALL_SPLIT units, or the images of a single clip: the interval is rough."""
    return len(units.matrices) < SMALL_SPLIT or units.single_clip


def interval_note(units: Units, small: bool, scored: bool) -> str:
    """Why the units are images, whether the split is small, why the AUC has no interval ('' if none)."""
    n = len(units.matrices)
    parts = [f"interval over images: {units.note}" if units.note else "",
             (f"small split: {'a single clip' if units.single_clip else plural(n, units.kind)} "
              f"(fewer than {SMALL_SPLIT}), the interval is rough") if small else "",
             "AUC without an interval: no score histograms per clip" if scored and units.histograms is None else ""]
    return "; ".join(p for p in parts if p)


def pair(lo_hi) -> list[float] | None:
    lo, hi = (num(v) for v in lo_hi)
    return None if lo is None or hi is None else [lo, hi]


def headline(doc: dict) -> str:
    """The console line: the means over the tissues and over the paper's three, with their intervals."""
    ci = doc.get("ci95") or {}

    def fig(group: str, key: str) -> str:
        return figure(doc[group][key], (ci.get(group) or {}).get(key), 3)

    means = doc["mean_classes"]
    auc = f", AUC {fig('mean', 'auc')}" if doc["mean"]["auc"] is not None else " (no AUC from label maps)"
    parts = [f"mean over tissues IoU {fig('mean', 'iou')}, Dice {fig('mean', 'dice')}{auc}"]
    if "mean_paper" in doc and means["mean_paper"] != means["mean"]:
        parts.append(f"{'/'.join(means['mean_paper'])} IoU {fig('mean_paper', 'iou')}, "
                     f"Dice {fig('mean_paper', 'dice')}")
    cal = doc.get("calibration") or {}
    if cal.get("available"):
        parts.append(calibration_text(cal, 3))
    b = doc["bootstrap"]
    why = [w for w in (b["unit_note"], "small split" if b["small_split"] else "") if w]
    parts.append(f"95% interval over {plural(b['units'], b['unit'])}" + (f" ({'; '.join(why)})" if why else "")
                 if ci else b["note"])
    return f"{plural(doc['images'], 'image')}, {plural(doc['clips'], 'clip')}: " + "; ".join(parts)


def calibration_text(cal: dict, digits: int = 3) -> str:
    """"ECE 0.031 as exported, 0.084 before temperature scaling (T 1.5)", or "... (not temperature-scaled)"."""
    ece = figure(cal["ece"], None, digits)
    if cal["temperature"] is None:
        return f"ECE {ece} (not temperature-scaled)"
    return (f"ECE {ece} as exported, {figure(cal['ece_before'], None, digits)} before temperature scaling "
            f"(T {cal['temperature']:g})")


def figure(value: float | None, interval: list[float] | None, digits: int = 3, scale: float = 1.0) -> str:
    """"0.812 [0.781, 0.840]": a figure and its interval (or the figure alone; '-' for none)."""
    if value is None:
        return "-"
    text = f"{scale * value:.{digits}f}"
    return text + (f" [{scale * interval[0]:.{digits}f}, {scale * interval[1]:.{digits}f}]" if interval else "")


def image_table(acc: Accumulator) -> tuple[list[str], list[list]]:
    """Header and rows of per_image.csv: one line per image, IoU and Dice per class."""
    names = acc.classes.names
    header = (["image", "clip", "frame", "valid_pixels", "pixel_accuracy", "iou_mean", "dice_mean"]
              + [f"iou_{n}" for n in names] + [f"dice_{n}" for n in names])
    rows = [[r.image, r.clip, r.frame, r.valid_pixels, cell(r.pixel_accuracy), cell(r.mean("iou")),
             cell(r.mean("dice"))] + [cell(v) for v in r.iou] + [cell(v) for v in r.dice] for r in acc.rows]
    return header, rows


def clip_table(acc: Accumulator) -> tuple[list[str], list[list]]:
    """Header and rows of per_clip.csv: pixels pooled over each clip's images, worst clip first."""
    names = acc.classes.names
    images: dict[str, int] = {}
    for r in acc.rows:
        images[r.clip] = images.get(r.clip, 0) + 1
    header = (["clip", "images", "valid_pixels", "pixel_accuracy", "iou_mean", "dice_mean"]
              + [f"iou_{n}" for n in names] + [f"dice_{n}" for n in names])
    rows = []
    for clip, m in acc.clip_matrices.items():
        s = scores_from_matrix(m)
        total = int(m.sum())
        tissue = slice(1, None) if len(names) > 1 else slice(None)
        rows.append([clip, images[clip], total, cell(np.trace(m) / total if total else math.nan),
                     cell(mean(s["iou"][tissue])), cell(mean(s["dice"][tissue]))]
                    + [cell(v) for v in s["iou"]] + [cell(v) for v in s["dice"]])
    rows.sort(key=lambda r: (math.inf if r[4] == "" else r[4], r[0]))
    return header, rows


def num(v) -> float | None:
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def mean(values) -> float | None:
    values = np.asarray(values, float)
    return num(np.nanmean(values)) if np.isfinite(values).any() else None


def cell(v) -> float | str:
    v = float(v)
    return round(v, 6) if math.isfinite(v) else ""
