"""Writing a reader study: results.json, per_image.csv, box plots and a self-contained report.html.

Simulated readers are labeled SIMULATED in every table, plot and paragraph, and the page opens
with a banner saying so.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from models.core.imageio import write_bytes_atomic
from models.evaluate import html, plots
from models.evaluate.report import csv_bytes
from models.reader_study.analysis import METRICS, Findings
from models.reader_study.study import StudyScores

MODEL_COLOR = (0.85, 0.45, 0.15)
READER_COLOR = (0.35, 0.55, 0.8)
SIMULATED_COLOR = (0.6, 0.6, 0.65)


def write_study(out: Path, scores: StudyScores, findings: Findings, about: dict[str, str]) -> None:
    doc = _clean(results(scores, findings, about))
    write_bytes_atomic(out / "results.json", (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
    write_bytes_atomic(out / "per_image.csv", csv_bytes(*image_table(scores)))
    figures = make_figures(scores, findings)
    for name, data in figures.items():
        write_bytes_atomic(out / name, data)
    write_bytes_atomic(out / "report.html", render_html(scores, findings, about, figures).encode())


def results(scores: StudyScores, f: Findings, about: dict[str, str]) -> dict:
    return {
        "about": about,
        "classes": scores.classes.names,
        "images": len(scores.stems),
        "alpha": f.alpha,
        "readers": [{**asdict(r), "source": _source(scores, r.name)} for r in f.rows],
        "ranking_by_mean_iou": [r.name for r in f.rows],
        "tests": {m: {"complete_images": t.complete, "friedman": asdict(t.friedman), "anova": asdict(t.anova),
                      "pairs": [{**asdict(p), "significant": p.significant(f.alpha)} for p in t.pairs]}
                  for m, t in f.tests.items()},
        "conclusion": f.conclusion,
    }


def image_table(scores: StudyScores) -> tuple[list[str], list[list]]:
    tissues = scores.classes.foreground or list(scores.classes.classes)
    header = (["image", "reader", "simulated", "iou_mean", "dice_mean"] + [f"iou_{t.name}" for t in tissues]
              + [f"dice_{t.name}" for t in tissues])
    means = {m: scores.per_image(m) for m in METRICS}
    rows = []
    for i, stem in enumerate(scores.stems):
        for r, reader in enumerate(scores.readers):
            rows.append([stem, reader.name, int(reader.simulated), _cell(means["iou"][r, i]), _cell(means["dice"][r, i])]
                        + [_cell(scores.iou[r, i, t.id]) for t in tissues] + [_cell(scores.dice[r, i, t.id]) for t in tissues])
    return header, rows


def make_figures(scores: StudyScores, f: Findings) -> dict[str, bytes]:
    index = {r.name: i for i, r in enumerate(scores.readers)}
    order = [index[r.name] for r in f.rows]
    colors = [MODEL_COLOR if scores.readers[i].is_model else SIMULATED_COLOR if scores.readers[i].simulated
              else READER_COLOR for i in order]
    figures = {}
    for m, label in METRICS.items():
        values = scores.per_image(m)
        figures[f"box_{m}.png"] = plots.image_boxplot(
            {scores.readers[i].label: values[i] for i in order},
            f"{label} per image, mean over tissues, by reader (best mean first)", label, colors)
    for t in scores.classes.foreground:
        values = scores.per_image("iou", t.id)
        figures[f"box_iou_{t.name}.png"] = plots.image_boxplot(
            {scores.readers[i].label: values[i] for i in order}, f"{t.name}: IoU per image by reader", "IoU", colors)
    return figures


def render_html(scores: StudyScores, f: Findings, about: dict[str, str], figures: dict[str, bytes]) -> str:
    tissues = scores.classes.foreground or list(scores.classes.classes)
    parts = ["<h1>Reader study: readers and model against the reference</h1>",
             '<p class="meta">' + "<br>".join(f"<b>{html.esc(k)}</b>: {html.esc(v)}" for k, v in about.items())
             + "</p>"]
    if any(r.simulated for r in f.rows):
        parts.append('<p class="sim">SIMULATED READERS: the readers marked SIMULATED are reference label maps '
                     'perturbed by software (boundary noise, missed thin structures, class confusions), not '
                     'surgeons. This page demonstrates the method; it is not evidence about surgeons.</p>')
    parts += ["<h2>Conclusion</h2>"] + [f"<p>{html.esc(p)}</p>" for p in f.conclusion]
    header = (["rank", "reader", "images", "IoU % (mean ± SD)", "Dice % (mean ± SD)"]
              + [f"{t.name} IoU %" for t in tissues] + ["pooled IoU %"])
    rows = [[i + 1, r.label, r.images, _ms(r.mean["iou"], r.sd["iou"]),
             _ms(r.mean["dice"], r.sd["dice"])] + [_p1(r.tissue_mean["iou"][t.name]) for t in tissues]
            + [_p1(r.pooled_iou)] for i, r in enumerate(f.rows)]
    parts += ["<h2>Readers</h2>",
              "<p>Per image: IoU and Dice of each tissue against the reference, averaged over the tissues present in "
              "the reference or the answer; the table gives the mean and SD of that over images. Per tissue: mean "
              "over the images where the tissue is in the reference or the answer. Pooled: IoU over tissues from "
              "all pixels of the split at once.</p>",
              html.table(header, rows, ["mean" if r.is_model else None for r in f.rows])]
    for m, label in METRICS.items():
        t = f.tests[m]
        parts.append(f"<h2>Tests on per-image {label} (alpha = {f.alpha:g}, {t.complete} paired images)</h2>")
        omni = [[x.name, _stat(x), _df(x), _pv(x.p), _yes(x.significant(f.alpha))] for x in (t.friedman, t.anova)]
        parts.append(html.table(["test", "statistic", "df", "p", "significant"], omni))
        pair_rows = [[f"{p.a} vs {p.b}", f"{100 * p.median_difference:+.2f}", p.n, _num(p.statistic), _pv(p.p),
                      _pv(p.p_holm), _yes(p.significant(f.alpha))] for p in t.pairs]
        parts.append(html.table(["pair a vs b (Wilcoxon signed-rank)", "median a - b (points)", "non-zero diffs", "W",
                                 "p", "p Holm", "significant"], pair_rows))
        parts.append(html.image(figures[f"box_{m}.png"], f"{label} box plot"))
    parts.append("<h2>Per tissue</h2>")
    parts += [html.image(figures[f"box_iou_{t.name}.png"], f"{t.name} IoU") for t in scores.classes.foreground]
    parts.append('<p class="meta">Friedman: readers as treatments, images as blocks; post-hoc two-sided Wilcoxon '
                 'signed-rank tests with Holm step-down correction; one-way ANOVA shown because the paper used it '
                 '(it ignores the pairing). Box: quartiles; line: median; diamond: mean; dots: images. Files beside '
                 'this page: results.json, per_image.csv and the PNGs.</p>')
    return html.page("Reader study", parts)


def _source(scores: StudyScores, name: str) -> str | None:
    reader = next(r for r in scores.readers if r.name == name)
    return str(reader.folder) if reader.folder is not None else None


def _clean(v):
    """JSON-ready: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cell(v: float) -> float | str:
    return round(float(v), 6) if math.isfinite(v) else ""


def _ms(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{100 * mean:.1f} ± {100 * sd:.1f}" if math.isfinite(sd) else f"{100 * mean:.1f}"


def _p1(v: float) -> str:
    return f"{100 * v:.1f}" if math.isfinite(v) else "-"


def _num(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "-"


def _stat(t) -> str:
    return "-" if not math.isfinite(t.statistic) else f"{'chi2' if t.name == 'Friedman' else 'F'} = {t.statistic:.3f}"


def _df(t) -> str:
    return ", ".join(f"{d:.0f}" for d in t.df) if math.isfinite(t.statistic) else "-"


def _pv(p: float) -> str:
    return "-" if not math.isfinite(p) else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
