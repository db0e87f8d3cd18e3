"""The report's figures as PNG bytes: matplotlib's object API (no pyplot, no display, no global state)."""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from models.core.classes import ClassTable
from models.evaluate.calibration import Calibration
from models.evaluate.roc import ScoreHistograms

METRIC_LABELS = {"precision": "Precision", "recall": "Recall", "iou": "IoU", "dice": "Dice", "auc": "AUC"}


def png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def class_color(classes: ClassTable, i: int) -> tuple[float, float, float]:
    """A class's display color for a white page (black background class drawn gray)."""
    c = np.asarray(classes.classes[i].color, float) / 255
    return (0.45, 0.45, 0.45) if c.max() < 0.15 else tuple(c)


def confusion_heatmap(m: np.ndarray, names: Sequence[str]) -> bytes:
    """Row-normalized confusion matrix (truth rows, prediction columns), share and count per cell."""
    m = np.asarray(m, np.int64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    n = len(names)
    fig = Figure(figsize=(1.4 * n + 2.2, 1.2 * n + 1.4))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{100 * share[i, j]:.1f}%\n{_count(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), names, rotation=30, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("reference")
    ax.set_title("Confusion matrix (rows sum to 100%)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return png(fig)


def roc_curves(hist: ScoreHistograms, classes: ClassTable) -> bytes:
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    auc = hist.auc()
    for i, c in enumerate(classes.classes):
        fpr, tpr = hist.roc(i)
        if not np.isfinite(auc[i]):
            continue
        ax.plot(fpr, tpr, color=class_color(classes, i), lw=2 if i else 1.2, ls="-" if i else "--",
                label=f"{c.name}  AUC {auc[i]:.4f}")
    _roc_frame(ax, "ROC per class, one-vs-rest over valid pixels", " (1 - specificity)", " (sensitivity)")
    ax.legend(loc="lower right", fontsize=9)
    return png(fig)


def _roc_frame(ax, title: str, x_note: str = "", y_note: str = "", title_size: float | None = None) -> None:
    """The chance diagonal, limits, labels, title and grid every ROC plot shares."""
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate" + x_note)
    ax.set_ylabel("true positive rate" + y_note)
    ax.set_title(title, fontsize=title_size)
    ax.grid(alpha=0.3)


def reliability_diagram(cal: Calibration) -> bytes:
    """Accuracy against confidence per bin (bars as exported, their gap to the mean confidence hatched;
    a line before temperature scaling when the model is scaled) over the diagonal, and below it the
    share of pixels per confidence bin."""
    fig = Figure(figsize=(5.4, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    shown = [("as exported", cal.exported, (0.3, 0.5, 0.8))]
    if cal.before is not None:
        shown.append((f"before temperature scaling (T {cal.temperature:g})", cal.before, (0.9, 0.45, 0.1)))
    top.plot([0, 1], [0, 1], color="0.45", lw=1, ls=":", label="perfectly calibrated")
    for k, (name, bins, color) in enumerate(shown):
        r = bins.reliability()
        left, width, full = r.edges[:-1], np.diff(r.edges), r.count > 0
        label = f"{name}, ECE {bins.ece():.3f}"
        share = r.count / max(1, bins.pixels)
        if k == 0:
            top.bar(left[full], r.accuracy[full], width[full], align="edge", color=(*color, 0.7), edgecolor="white",
                    label=label)
            top.bar(left[full], (r.confidence - r.accuracy)[full], width[full], bottom=r.accuracy[full], align="edge",
                    fill=False, edgecolor=(0.8, 0.2, 0.2), hatch="//", lw=0.6, label="gap to mean confidence")
            bottom.bar(left, share, width, align="edge", color=(*color, 0.7), edgecolor="white")
        else:
            top.plot(r.confidence[full], r.accuracy[full], color=color, marker="o", ms=4, lw=1.5, label=label)
            bottom.stairs(share, r.edges, color=color, lw=1.5)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.01)
    top.set_ylabel("accuracy (top class right)")
    top.set_title(f"Reliability over {cal.exported.pixels:,} valid pixels, {cal.bins} bins", fontsize=10)
    bottom.legend(*top.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, -0.42), ncols=2,
                  fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("share of pixels", fontsize=8)
    bottom.grid(alpha=0.3)
    return png(fig)


def class_bars(per_class: dict, classes: ClassTable, metrics: Sequence[str]) -> bytes:
    """Grouped bars: one group per class, one bar per metric (missing values left out)."""
    names = classes.names
    fig = Figure(figsize=(1.7 * len(names) + 2.5, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / len(metrics)
    for k, key in enumerate(metrics):
        values = [per_class[n][key] for n in names]
        xs = [i + (k - (len(metrics) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar([x for x, v in zip(xs, values) if v is not None], [v for v in values if v is not None],
                      width, label=METRIC_LABELS.get(key, key))
        ax.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("fraction")
    ax.set_title("Per-class figures (pooled over the split)")
    ax.legend(ncols=len(metrics), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.3))
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def image_boxplot(values: dict[str, np.ndarray], title: str, ylabel: str,
                  colors: Sequence | None = None, ylim: tuple[float, float] | None = (0, 1.02), log: bool = False,
                  hline: tuple[float, str] | None = None, rotate: float = 0) -> bytes:
    """Box plots of per-image values, one box per key (NaNs dropped), points overlaid; optionally a
    logarithmic axis, a labelled horizontal line (value, label) and slanted tick labels."""
    labels = list(values)
    data = [np.asarray(values[k], float)[np.isfinite(values[k])] for k in labels]
    ticks = [k.replace(" (", "\n(") for k in labels]  # "junior (SIMULATED)" on two lines
    fig = Figure(figsize=(min(16.0, max(4.5, 1.5 * len(labels) + 1.5)), 4.2))
    ax = fig.add_subplot()
    parts = ax.boxplot(data, tick_labels=ticks, showmeans=True, patch_artist=True, widths=0.55,
                       meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                  "markersize": 5},
                       medianprops={"color": "black"}, flierprops={"markersize": 0})
    rng = np.random.default_rng(0)
    for i, d in enumerate(data):
        color = colors[i] if colors else (0.55, 0.7, 0.9)
        parts["boxes"][i].set_facecolor((*color[:3], 0.45))
        ax.scatter(i + 1 + rng.uniform(-0.18, 0.18, d.size), d, s=5, color="0.25", alpha=0.35, lw=0)
    if rotate:
        ax.tick_params(axis="x", labelrotation=rotate)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    if log:
        ax.set_yscale("log")
    if hline is not None:
        ax.axhline(hline[0], color=(0.8, 0.15, 0.1), ls="--", lw=1.2, label=hline[1])
        ax.legend(loc="best", fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def interval_bars(labels: Sequence[str], values: Sequence[float | None], intervals: Sequence[list[float] | None],
                  colors: Sequence, title: str, ylabel: str, separator: int | None = None) -> bytes:
    """One bar per label with its interval drawn as a capped line (no value: no bar; no interval: bar alone);
    a dotted line before bar `separator` (classes | means)."""
    fig = Figure(figsize=(max(4.5, 0.95 * len(labels) + 2.0), 4.0))
    ax = fig.add_subplot()
    for i, (value, iv) in enumerate(zip(values, intervals)):
        if value is None:
            continue
        ax.bar(i, value, 0.62, color=(*colors[i][:3], 0.75))
        top = value
        if iv is not None:
            ax.vlines(i, iv[0], iv[1], color="black", lw=1.3)
            ax.hlines(iv, i - 0.12, i + 0.12, color="black", lw=1.3)
            top = max(top, iv[1])
        ax.text(i, top + 0.015, f"{value:.3f}", ha="center", va="bottom", fontsize=7.5)
    if separator:
        ax.axvline(separator - 0.5, color="0.5", ls=":", lw=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def clip_bars(clips: Sequence[str], values: Sequence[float], title: str) -> bytes:
    """Mean IoU (tissues) per clip, in the order given."""
    fig = Figure(figsize=(min(14.0, 2.0 + 0.32 * len(clips)), 3.4))
    ax = fig.add_subplot()
    ax.bar(range(len(clips)), values, color=(0.35, 0.55, 0.8))
    ax.set_xticks(range(len(clips)), clips, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("mean IoU (tissues)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def roc_lines(curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]], title: str) -> bytes:
    """ROC curves of named scores: name -> (false positive rates, true positive rates, AUC), the first bold."""
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    for k, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, lw=2.2 if k == 0 else 1.3, ls="-" if k == 0 else "--", color="black" if k == 0 else None,
                label=f"{name}  AUC {'undefined' if auc is None else f'{auc:.4f}'}")
    _roc_frame(ax, title, title_size=10)
    ax.legend(loc="lower right", fontsize=8)
    return png(fig)


def scatter_groups(groups: dict[str, tuple[np.ndarray, np.ndarray]], title: str, xlabel: str, ylabel: str,
                   vline: tuple[float, str] | None = None, hline: tuple[float, str] | None = None,
                   logx: bool = False, ylim: tuple[float, float] | None = None) -> bytes:
    """One colour per group of (x, y) points (the first black), optional labelled vertical and
    horizontal lines (value, label)."""
    fig = Figure(figsize=(6.8, 4.8))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10"]
    for k, (name, (x, y)) in enumerate(groups.items()):
        ax.scatter(x, y, s=16, color="black" if k == 0 else cmap((k - 1) % 10), alpha=0.75, lw=0, label=name)
    for line, draw, color in ((vline, ax.axvline, (0.8, 0.15, 0.1)), (hline, ax.axhline, (0.2, 0.3, 0.8))):
        if line is not None:
            draw(line[0], color=color, ls="--", lw=1.2, label=line[1])
    if logx:
        ax.set_xscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def _count(v: int) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e4 else str(int(v))
