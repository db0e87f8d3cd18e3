"""From an Accumulator to the figures of the report: metrics.json, per-image and per-clip tables.

Conventions (the paper's): per class, one-vs-rest over all valid pixels of the split (pooled,
not averaged over images); "mean" is over the tissue classes (every class but background, id 0);
"mean_with_background" over all classes. Fractions in [0, 1]; a figure that does not exist (a
class absent from truth and prediction, an AUC without probabilities) is null, never 0 or 1.
"""
from __future__ import annotations

import math

import numpy as np

from models.evaluate.accumulate import Accumulator
from models.metrics import scores_from_matrix

KEYS = ("accuracy", "precision", "recall", "iou", "dice", "auc")


def metrics(acc: Accumulator, split: str, extra: dict | None = None) -> dict:
    """The metrics.json document (the issue fixes the first eight keys)."""
    names = acc.classes.names
    m = acc.confusion.matrix
    per = scores_from_matrix(m)
    auc = acc.histograms.auc() if acc.histograms is not None else np.full(len(names), np.nan)
    per["auc"] = auc
    total = int(m.sum())
    rows = m.sum(axis=1, keepdims=True)
    normalized = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    doc = {
        "classes": names,
        "split": split,
        "images": len(acc.rows),
        "per_class": {n: {k: num(per[k][i]) for k in KEYS} for i, n in enumerate(names)},
        "mean": {k: mean(per[k][1:] if len(names) > 1 else per[k]) for k in KEYS},
        "mean_with_background": {k: mean(per[k]) for k in KEYS},
        "pixel_accuracy": num(np.trace(m) / total) if total else None,
        "confusion_matrix": m.astype(int).tolist(),
        "confusion_matrix_row_normalized": [[round(float(v), 6) for v in r] for r in normalized],
        "valid_pixels": total,
        "clips": len(acc.clip_matrices),
        "roc_auc": ({"available": True, "source": "softmax probability per class, one-vs-rest over valid pixels",
                     "bins": acc.histograms.bins, "bin_space": "logit", "ties": "counted half"}
                    if acc.histograms is not None else
                    {"available": False, "reason": "evaluated from label maps (--pred): no probabilities"}),
    }
    doc.update(extra or {})
    return doc


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
