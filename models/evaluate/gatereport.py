"""Writing a gate check: scores.csv, summary.json, scores.png, roc.png, error.png (--corrupt) and
report.html (self-contained like evaluate's: styles inline, the PNGs embedded as base64)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.core.imageio import write_bytes_atomic
from models.evaluate import html, plots
from models.evaluate.gatesummary import HEADER, IOU_EVENT, Row
from models.evaluate.report import csv_bytes
from models.evaluate.roc import score_roc

KIND_COLORS = {"in": (0.3, 0.65, 0.35), "ood": (0.9, 0.5, 0.15), "corrupt": (0.55, 0.45, 0.75)}


def write_gate_report(out: Path, rows: list[Row], doc: dict) -> dict[str, bytes]:
    """Every file of the report into `out`; returns the figures by file name."""
    write_bytes_atomic(out / "scores.csv", csv_bytes(HEADER, [r.cells() for r in rows]))
    write_bytes_atomic(out / "summary.json", (json.dumps(doc, indent=2) + "\n").encode())
    figures = make_figures(rows, doc)
    for name, data in figures.items():
        write_bytes_atomic(out / name, data)
    write_bytes_atomic(out / "report.html", render_html(doc, figures).encode())
    return figures


def make_figures(rows: list[Row], doc: dict) -> dict[str, bytes]:
    t = doc["threshold"]
    boxes, colors = {}, []
    for name, s in doc["sets"].items():
        boxes[f"{name} ({s['kind']})"] = np.array([r.score for r in rows if r.set == name])
        colors.append(KIND_COLORS[s["kind"]])
    for r in doc.get("corrupt", {}).get("renderings", []):
        key = (r["corruption"], r["severity"])
        boxes[f"{_rendering(*key)} (corrupt)"] = np.array([x.score for x in rows if (x.corruption, x.severity) == key
                                            and x.kind == "corrupt"])
        colors.append(KIND_COLORS["corrupt"])
    figures = {"scores.png": plots.image_boxplot(
        boxes, "Gate score per frame (higher: less like the training frames)", "gate score (log scale)", colors,
        ylim=None, log=True, hline=(t, f"threshold {t:.4g}: above it out of distribution"),
        rotate=30 if len(boxes) > 6 else 0)}
    ins = [r.score for r in rows if r.kind == "in"]
    oods = [r for r in rows if r.kind == "ood"]
    curves = {"all ood sets (pooled)": (*score_roc([r.score for r in oods], ins), doc["auroc"]["pooled"])}
    for name, auc in doc["auroc"]["per_ood_set"].items():
        curves[name] = (*score_roc([r.score for r in oods if r.set == name], ins), auc)
    figures["roc.png"] = plots.roc_lines(curves, "In vs out of distribution, by gate score (ood = positive)")
    corrupt = [r for r in rows if r.kind == "corrupt" and r.mean_iou is not None]
    if corrupt:
        groups = {}
        for family in dict.fromkeys(r.corruption for r in corrupt):
            mine = [r for r in corrupt if r.corruption == family]
            groups["clean" if family == "none" else family] = (np.array([r.score for r in mine]),
                                                               np.array([r.mean_iou for r in mine]))
        figures["error.png"] = plots.scatter_groups(
            groups, "Corrupted frames: gate score against the frame's mean IoU", "gate score (log scale)",
            "frame mean IoU vs reference", vline=(t, f"threshold {t:.4g}"),
            hline=(IOU_EVENT, f"mean IoU {IOU_EVENT:g}"), logx=True, ylim=(-0.02, 1.02))
    return figures


def render_html(doc: dict, figures: dict[str, bytes]) -> str:
    about = {k: doc[k] for k in ("model", "split", "runtime", "checked") if doc.get(k)}
    parts = [f"<h1>Trust gate check: {html.esc(doc.get('model', ''))}</h1>",
             '<p class="meta">' + "<br>".join(f"<b>{html.esc(k)}</b>: {html.esc(v)}" for k, v in about.items())
             + f"<br><b>threshold</b>: {doc['threshold']:.4g}</p>",
             f"<p>{html.esc(doc['rule'])}</p>", "<h2>Sets</h2>"]
    a = doc["auroc"]
    rows = [[n, s["kind"], s["source"], s["images"], f"{100 * s['pass_rate']:.1f}", _g(s["score_median"]),
             _g(s["score_p5"]), _g(s["score_p95"]), _auc(a["per_ood_set"].get(n)) if s["kind"] == "ood" else ""]
            for n, s in doc["sets"].items()]
    parts += [html.table(["set", "kind", "source", "images", "passed %", "median score", "p5", "p95",
                          "AUROC vs in"], rows),
              f"<p>AUROC of the score, every ood frame against every in frame (pooled): <b>{_auc(a['pooled'])}</b>. "
              f"{html.esc(a['method'][0].upper() + a['method'][1:])}; 1: every ood frame scores above every in "
              f"frame, 0.5: chance.</p>",
              html.image(figures["scores.png"], "scores per set"), "<h2>ROC</h2>",
              html.image(figures["roc.png"], "ROC in vs ood")]
    c = doc.get("corrupt")
    if c:
        auc = f"<b>{c['auroc']:.4f}</b>" if c["auroc"] is not None else html.esc(c["auroc_note"])
        table = [[_rendering(r["corruption"], r["severity"]), r["images"], f"{100 * r['pass_rate']:.1f}",
                  _g(r["score_median"]), "-" if r["mean_iou_median"] is None else f"{r['mean_iou_median']:.3f}"]
                 for r in c["renderings"]]
        parts += ["<h2>Corrupted frames</h2>",
                  f"<p>{c['images']} images of {html.esc(c['source'])}, each clean and under every corruption "
                  f"(heavy blur, smoke, blood, over- and under-exposure at two severities, beyond any training "
                  f"augmentation; seeded per image). Mean IoU per frame: over the classes its reference or its "
                  f"prediction shows, background included. {c['event_frames']} of {c['scored_frames']} frames "
                  f"have {html.esc(c['event'])}; AUROC of the score for them: {auc}.</p>",
                  html.table(["corruption", "images", "passed %", "median score", "median mean IoU"], table),
                  html.image(figures["error.png"], "score vs mean IoU") if "error.png" in figures else ""]
    parts.append('<p class="meta">Files beside this page: scores.csv (one row per frame), summary.json and the '
                 'PNGs.</p>')
    return html.page(f"Gate check {doc.get('model', '')}", parts)


def _rendering(corruption: str, severity: int) -> str:
    return "clean" if corruption == "none" else f"{corruption} {severity}"


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _auc(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.4f}"
