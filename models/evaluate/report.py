"""Writing an evaluation: metrics.json, per_image.csv, per_clip.csv, the PNGs and report.html.

report.html is self-contained (styles inline, the PNGs embedded as base64): it opens offline,
from a USB stick or an e-mail, and shows the same pictures that sit beside it as PNG files.
Figures show their 95 % interval over clips in brackets, "81.2 [78.1, 84.0]" (see bootstrap.py).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from models.core.cliutil import plural
from models.core.imageio import encode_image, write_bytes_atomic
from models.evaluate import html, plots
from models.evaluate.accumulate import Accumulator
from models.evaluate.gallery import compose
from models.evaluate.summary import KEYS, calibration_text, clip_table, figure, image_table

LABELS = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "iou": "IoU", "dice": "Dice",
          "auc": "AUC"}


def write_report(out: Path, acc: Accumulator, doc: dict, about: dict[str, str]) -> dict[str, bytes]:
    """Write every file of the report into `out`; `about` lines head the HTML (model, data, ...)."""
    write_bytes_atomic(out / "metrics.json", (json.dumps(doc, indent=2) + "\n").encode())
    header, rows = image_table(acc)
    write_bytes_atomic(out / "per_image.csv", csv_bytes(header, rows))
    clip_header, clip_rows = clip_table(acc)
    write_bytes_atomic(out / "per_clip.csv", csv_bytes(clip_header, clip_rows))
    figures = make_figures(acc, doc, clip_header, clip_rows)
    for name, data in figures.items():
        if name.endswith(".png"):
            write_bytes_atomic(out / name, data)
    write_bytes_atomic(out / "report.html", render_html(acc, doc, about, figures, clip_header, clip_rows).encode())
    return figures


def make_figures(acc: Accumulator, doc: dict, clip_header: list[str], clip_rows: list[list]) -> dict[str, bytes]:
    classes = acc.classes
    figures = {"confusion_matrix.png": plots.confusion_heatmap(acc.confusion.matrix, classes.names)}
    if acc.histograms is not None:
        figures["roc.png"] = plots.roc_curves(acc.histograms, classes)
    if acc.calibration is not None:
        figures["reliability.png"] = plots.reliability_diagram(acc.calibration)
    keys = ["precision", "recall", "iou", "dice"] + (["auc"] if acc.histograms is not None else [])
    figures["class_metrics.png"] = plots.class_bars(doc["per_class"], classes, keys)
    if doc.get("ci95"):
        labels, values, intervals, colors = zip(*_iou_bars(doc, classes))
        b = doc["bootstrap"]
        figures["class_iou_ci.png"] = plots.interval_bars(
            labels, values, intervals, colors, f"IoU with its 95% interval over {plural(b['units'], b['unit'])} "
            f"({b['resamples']} resamples){', small split' if b['small_split'] else ''}", "IoU",
            separator=len(classes))
    shown = classes.foreground or list(classes.classes)
    per_image = {c.name: np.array([r.iou[c.id] for r in acc.rows]) for c in shown}
    figures["per_image_iou.png"] = plots.image_boxplot(
        per_image, "IoU per image and class (where reference or prediction has it)", "IoU",
        [plots.class_color(classes, c.id) for c in shown])
    if len(clip_rows) > 1:
        scored = [r for r in clip_rows if r[4] != ""]
        figures["per_clip_iou.png"] = plots.clip_bars([r[0] for r in scored], [r[4] for r in scored],
                                                      "Mean IoU over tissues per clip (pixels pooled), worst first")
        column = {c.name: clip_header.index(f"iou_{c.name}") for c in shown}
        per_clip = {n: np.array([np.nan if r[i] == "" else r[i] for r in clip_rows], float) for n, i in column.items()}
        figures["per_clip_class_iou.png"] = plots.image_boxplot(
            per_clip, "IoU per clip and class (pixels pooled within each clip)", "IoU",
            [plots.class_color(classes, c.id) for c in shown])
    for name, entries in (("gallery_best", acc.gallery.best()), ("gallery_worst", acc.gallery.worst())):
        sheet = compose(entries, classes, acc.gallery.tile)
        figures[f"{name}.png"] = encode_image(sheet)
        figures[f"{name}.jpg"] = encode_image(sheet, ".jpg", jpeg_quality=88)  # embedded in the HTML
    return figures


def paper_table(doc: dict) -> tuple[list[str], list[list], list[str | None]]:
    """The paper's table: one row per tissue, their mean (and the paper's three tissues'), then background
    and the mean of all. With intervals a cell reads "81.2 [78.1, 84.0]"."""
    names = doc["classes"]
    ci = doc.get("ci95") or {}
    header = ["class"] + [LABELS[k] + (" %" if k != "auc" else "") for k in KEYS]

    def cells(d: dict, c: dict | None) -> list[str]:
        c = c or {}
        return [figure(d[k], c.get(k), 1 if ci else 2, 100) if k != "auc" else figure(d[k], c.get(k), 3 if ci else 4)
                for k in KEYS]

    rows, css = [], []
    for n in names[1:]:
        rows.append([n] + cells(doc["per_class"][n], ci.get("per_class", {}).get(n)))
        css.append(None)
    for group, label in _mean_rows(doc):
        if group != "mean_with_background":
            rows.append([label] + cells(doc[group], ci.get(group)))
            css.append("mean")
    rows.append([names[0]] + cells(doc["per_class"][names[0]], ci.get("per_class", {}).get(names[0])))
    css.append(None)
    rows.append(["mean (all classes)"] + cells(doc["mean_with_background"], ci.get("mean_with_background")))
    css.append("mean")
    return header, rows, css


def _mean_rows(doc: dict) -> list[tuple[str, str]]:
    """(key, label) of the means to show; the paper's three only when they are not all the tissues."""
    means = doc["mean_classes"]
    rows = [("mean", "mean (tissues)")]
    if "mean_paper" in doc and means["mean_paper"] != means["mean"]:
        rows.append(("mean_paper", f"mean ({', '.join(means['mean_paper'])}: the paper's)"))
    return rows + [("mean_with_background", "mean (all classes)")]


def _iou_bars(doc: dict, classes) -> list[tuple[str, float | None, list[float] | None, tuple]]:
    """(label, IoU, interval, color) per class and per mean, for the interval picture."""
    ci = doc["ci95"]
    out = [(c.name, doc["per_class"][c.name]["iou"], ci["per_class"][c.name]["iou"], plots.class_color(classes, c.id))
           for c in classes.classes]
    short = {"mean": "mean\n(tissues)", "mean_paper": "mean\n(paper's 3)", "mean_with_background": "mean\n(all)"}
    return out + [(short[g], doc[g]["iou"], ci[g]["iou"], (0.3, 0.3, 0.35)) for g, _ in _mean_rows(doc)]


def interval_text(doc: dict) -> tuple[str, str]:
    """What the brackets mean, and the caveat (small split, images instead of clips) or ''."""
    b = doc["bootstrap"]
    if not doc.get("ci95"):
        return f"No intervals: {b['note']}.", ""
    unit, counted = f"{b['unit']}s", plural(b["units"], b["unit"])
    text = (f"Brackets: 95% interval, a percentile bootstrap over the {counted} of the split "
            f"({b['resamples']} resamples, seed {b['seed']}): each resample draws {counted} with "
            f"replacement and pools their pixels; the interval holds the middle 95% of the resampled figures, "
            f"how far a figure could move on another draw of {unit} like these.")
    return text, (b["note"][0].upper() + b["note"][1:] + "." if b["note"] else "")


def render_html(acc: Accumulator, doc: dict, about: dict[str, str], figures: dict[str, bytes],
                clip_header: list[str], clip_rows: list[list]) -> str:
    classes = acc.classes
    header, rows, css = paper_table(doc)
    parts = [f"<h1>Segmentation evaluation: {html.esc(about.get('model', ''))}</h1>",
             '<p class="meta">' + "<br>".join(f"<b>{html.esc(k)}</b>: {html.esc(v)}" for k, v in about.items()
                                             if k != "notice") + "</p>"]
    if about.get("notice"):
        parts.append(f'<p class="note">{html.esc(about["notice"])}</p>')
    ci = doc.get("ci95")
    small = " (small split)" if ci and doc["bootstrap"]["small_split"] else ""
    paper = (f"; mean ({', '.join(doc['mean_classes']['mean_paper'])}: the paper's) over the three tissues of "
             f"the paper's figures" if any(g == "mean_paper" for g, _ in _mean_rows(doc)) else "")
    parts += [
        f"<h2>Figures on the split{small}</h2>",
        f"<p>{plural(doc['images'], 'image')}, {plural(doc['clips'], 'clip')}, {doc['valid_pixels']:,} valid "
        f"pixels (reference label {classes.ignore_index} excluded). Per class one-vs-rest over all valid pixels "
        f"of the split, pooled; "
        f"mean (tissues) is over every class but background{paper}. Overall pixel accuracy "
        f"<b>{figure(doc['pixel_accuracy'], (ci or {}).get('pixel_accuracy'), 1 if ci else 2, 100)}</b> %.</p>",
        html.table(header, rows, css),
    ]
    meaning, caveat = interval_text(doc)
    parts.append(f'<p class="meta">{html.esc(meaning)}</p>')
    if caveat:
        parts.append(f'<p class="note">{html.esc(caveat)}</p>')
    if acc.histograms is None:
        parts.append('<p class="note">No ROC curves or AUC: this evaluation read label maps (--pred), which carry '
                     'no class probabilities, and so no calibration (ECE) either. Evaluate with --model for ROC/AUC '
                     'and calibration.</p>')
    else:
        parts.append(f"<p class=\"meta\">AUC from the model's softmax probability of each class at label "
                     f"resolution, integrated from {acc.histograms.bins} score bins per class (logit-spaced, ties "
                     f"counted half). Pixels the model did not label (outside its view) score as background.</p>")
    names = classes.names
    cm_rows = [[names[i]] + [f"{int(v):,}" for v in row] for i, row in enumerate(doc["confusion_matrix"])]
    parts += ["<h2>Confusion matrix</h2>", "<p>Rows: reference, columns: prediction; pixel counts.</p>",
              html.table(["reference \\ prediction"] + names, cm_rows), html.image(figures["confusion_matrix.png"], "confusion matrix")]
    if "roc.png" in figures:
        parts += ["<h2>ROC curves</h2>", html.image(figures["roc.png"], "ROC curves")]
    if "reliability.png" in figures:
        parts += ["<h2>Calibration</h2>", f"<p>{html.esc(_calibration_meaning(doc['calibration']))}</p>",
                  html.image(figures["reliability.png"], "reliability diagram")]
    parts += ["<h2>Per-class figures</h2>", html.image(figures["class_metrics.png"], "per-class bars")]
    if "class_iou_ci.png" in figures:
        parts.append(html.image(figures["class_iou_ci.png"], "per-class IoU with 95% intervals"))
    parts += [html.image(figures["per_image_iou.png"], "per-image IoU"),
              f'<p class="meta">Per image: a class that the prediction shows (even a few pixels) but the reference '
              f'lacks scores IoU 0 on that image; a class in neither is left out of that image\'s mean. '
              f'{html.esc(_phantoms(acc))}</p>']
    if "per_clip_iou.png" in figures or clip_rows:
        parts.append("<h2>Per clip</h2>")
        if "per_clip_iou.png" in figures:
            parts.append(html.image(figures["per_clip_iou.png"], "per-clip IoU"))
        if "per_clip_class_iou.png" in figures:
            parts.append(html.image(figures["per_clip_class_iou.png"], "per-clip IoU per class"))
        tissues = [f"iou_{c.name}" for c in classes.foreground]
        cols = [clip_header.index(k) for k in ["clip", "images", "pixel_accuracy", "iou_mean", "dice_mean", *tissues]]
        parts.append("<p>Pixels pooled over each clip's images, in %. A tissue that a clip's reference never shows "
                     "but the prediction does scores IoU 0 for that clip.</p>")
        parts.append(html.table(["clip", "images", "pixel accuracy", "mean IoU", "mean Dice"]
                                + [f"{c.name} IoU" for c in classes.foreground],
                                [[_fmt(r[i]) for i in cols] for r in clip_rows], scroll=True))
    legend = html.legend((c.name, c.color) for c in classes.foreground)
    parts += ["<h2>Best and worst images</h2>",
              f"<p>By mean IoU over tissues per image. Overlays: {legend}; errors: reference pixels the "
              f"prediction got wrong, in red.</p>",
              "<h3>Best</h3>", html.image(figures["gallery_best.jpg"], "best images", "image/jpeg"),
              "<h3>Worst</h3>", html.image(figures["gallery_worst.jpg"], "worst images", "image/jpeg"),
              '<p class="meta">Files beside this page: metrics.json, per_image.csv, per_clip.csv and the PNGs.</p>']
    return html.page(f"Evaluation {about.get('model', '')}", parts)


def _calibration_meaning(cal: dict) -> str:
    """The calibration section's text: the ECE (as exported and before scaling) and how it is counted."""
    scaled = (f"The export fitted T = {cal['temperature']:g} on the validation split and baked it into the model, "
              f"which outputs softmax(z / T); the figure before scaling reverses it: softmax(T log p) = softmax(z)."
              if cal["temperature"] is not None else
              "The model is not temperature-scaled (its manifest has no gate.temperature).")
    return (f"{calibration_text(cal, 4)}. Expected calibration error of the top-class probability over "
            f"{cal['pixels']:,} valid pixels in {cal['bins']} equal-width confidence bins: the pixel-weighted mean "
            f"gap between a bin's accuracy and its mean confidence (0: pixels given 0.8 are right 80% of the "
            f"time). {scaled} Pixels the model did not label count as background with probability 1. No interval.")


def _phantoms(acc: Accumulator) -> str:
    """How often the prediction shows a tissue that the image's reference lacks (why per-image IoU dips)."""
    parts = []
    for c in acc.classes.foreground:
        px = np.array([r.only_predicted[c.id] for r in acc.rows])
        hit = px[px > 0]
        if hit.size:
            parts.append(f"{c.name} in {hit.size} images (median {int(np.median(hit))} px)")
    return ("Tissue predicted in images whose reference has none of it: " + "; ".join(parts) + "."
            if parts else "The prediction never shows a tissue that an image's reference lacks.")


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _fmt(v) -> str:
    """Table cell: fractions as percentages, empty (no such figure) as '-'."""
    return f"{100 * v:.1f}" if isinstance(v, float) else "-" if v == "" else str(v)
