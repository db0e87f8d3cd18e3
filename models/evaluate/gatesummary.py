"""What `gate-check` found, from its rows alone: summary.json and the console lines (no model here).

A row is one rendering of one image: its set, the set's kind (in | ood | corrupt), the gate score
(6 significant digits, as scores.csv holds it, so that every figure can be recomputed from the CSV)
and the verdict `passed` = score <= threshold. Corrupt rows also carry the corruption, its
severity and the frame's mean IoU against the reference.

AUROCs are exact (models/evaluate/roc.py: rank_auc), the out-of-distribution frames or the
wrongly segmented ones being the positives: 1 means the score ranks every positive above every
negative, 0.5 chance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.core.runtime.gate import GateRule
from models.evaluate.roc import rank_auc

IOU_EVENT = 0.5    # a corrupted frame with a mean IoU below this is one the model got wrong
HEADER = ["set", "kind", "image", "score", "passed", "corruption", "severity", "mean_iou"]


@dataclass(frozen=True)
class Row:
    set: str
    kind: str                        # in | ood | corrupt
    image: str
    score: float                     # 6 significant digits
    passed: bool                     # score <= threshold
    corruption: str = ""             # corrupt rows: the family, "none" for the clean rendering
    severity: int | None = None      # corrupt rows: 0 (clean), 1 or 2
    mean_iou: float | None = None    # corrupt rows: 4 decimals; None when the reference has no valid pixel

    def cells(self) -> list:
        return [self.set, self.kind, self.image, self.score, int(self.passed), self.corruption,
                "" if self.severity is None else self.severity, "" if self.mean_iou is None else self.mean_iou]


def make_row(set_name: str, kind: str, image: str, score: float, threshold: float, **corrupt) -> Row:
    """A row, the score rounded and the verdict taken on the score as the runtime computed it."""
    miou = corrupt.pop("mean_iou", None)
    miou = None if miou is None or not math.isfinite(miou) else round(float(miou), 4)
    return Row(set_name, kind, image, float(f"{score:.6g}"), bool(score <= threshold), mean_iou=miou, **corrupt)


def rule_text(rule: GateRule, dims: int) -> str:
    return (f"A frame is out of distribution when its score (the Mahalanobis distance of its {dims} pooled "
            f"features to the training frames', divided by sqrt({dims})) is above {rule.threshold:.4g}. Live, "
            f"AI UNSURE follows {rule.enter_frames} such frames in a row and clears after {rule.exit_frames} "
            f"in-distribution frames in a row; gate-check judges every frame on its own: passed = score <= "
            f"{rule.threshold:.4g}.")


def summarize(rows: list[Row], rule: GateRule, dims: int, sources: dict[str, str], about: dict) -> dict:
    """summary.json: the threshold and rule, per set its figures, the AUROCs, and with corrupt rows
    the per-corruption figures and the AUROC of the score for the event mean IoU < 0.5."""
    doc = {**about, "threshold": rule.threshold, "rule": rule_text(rule, dims), "sets": {}}
    by_set: dict[str, list[Row]] = {}
    for r in rows:
        by_set.setdefault(r.set, []).append(r)
    for name, group in by_set.items():
        if group[0].kind != "corrupt":
            doc["sets"][name] = {"kind": group[0].kind, "source": sources.get(name, ""), **_figures(group)}
    ins = np.array([r.score for r in rows if r.kind == "in"])
    oods = {n: np.array([r.score for r in g]) for n, g in by_set.items() if g[0].kind == "ood"}
    doc["auroc"] = {
        "positives": "frames of the ood sets (a higher score means out of distribution)",
        "negatives": "frames of the in sets",
        "method": "exact, Mann-Whitney rank formula (ties count half)",
        "pooled": _num(rank_auc(np.concatenate(list(oods.values())) if oods else [], ins)),
        "per_ood_set": {n: _num(rank_auc(s, ins)) for n, s in oods.items()},
    }
    corrupt = [r for r in rows if r.kind == "corrupt"]
    if corrupt:
        doc["corrupt"] = corrupt_section(corrupt, sources.get(corrupt[0].set, ""))
    return doc


def corrupt_section(rows: list[Row], source: str) -> dict:
    scored = [r for r in rows if r.mean_iou is not None]
    wrong = np.array([r.mean_iou < IOU_EVENT for r in scored], bool)
    scores = np.array([r.score for r in scored])
    auc, note = _num(rank_auc(scores[wrong], scores[~wrong])), None
    if not scored:
        note = "undefined: no frame has a reference label with valid pixels"
    elif not wrong.any():
        note = f"undefined: no frame has mean IoU < {IOU_EVENT:g}, so there is no error for the score to find"
    elif wrong.all():
        note = f"undefined: every frame has mean IoU < {IOU_EVENT:g}, so there is no good frame to rank errors against"
    renderings: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        renderings.setdefault((r.corruption, r.severity), []).append(r)
    return {
        "set": rows[0].set, "source": source, "images": len({r.image for r in rows}), "frames": len(rows),
        "event": f"frame mean IoU < {IOU_EVENT:g}", "event_frames": int(wrong.sum()), "scored_frames": len(scored),
        "auroc": auc, "auroc_note": note,
        "renderings": [{"corruption": c, "severity": s, **_figures(g), "mean_iou_median": _median_iou(g)}
                       for (c, s), g in renderings.items()],
    }


def console_lines(doc: dict) -> list[str]:
    """One line per set, the AUROC line, and with --corrupt one line for the corrupted set."""
    t = doc["threshold"]
    lines = [f"{name} ({s['kind']}, {s['images']} images): pass {100 * s['pass_rate']:.1f}% (score <= {t:.4g}); "
             f"score median {s['score_median']:.4g} [p5 {s['score_p5']:.4g}, p95 {s['score_p95']:.4g}]"
             for name, s in doc["sets"].items()]
    a = doc["auroc"]
    per_set = ", ".join(f"{n} {_fmt(v)}" for n, v in a["per_ood_set"].items())
    lines.append(f"AUROC in vs ood: {_fmt(a['pooled'])} pooled; {per_set}")
    c = doc.get("corrupt")
    if c:
        passed = sum(r["pass_rate"] * r["images"] for r in c["renderings"]) / max(1, c["frames"])
        auc = f"{c['auroc']:.4f}" if c["auroc"] is not None else c["auroc_note"]
        lines.append(f"{c['set']} (corrupt, {c['images']} images x {len(c['renderings'])} renderings): pass "
                     f"{100 * passed:.1f}%; {c['event_frames']} of {c['scored_frames']} frames with {c['event']}; "
                     f"AUROC of the score for them: {auc}")
    return lines


def _figures(rows: list[Row]) -> dict:
    scores = np.array([r.score for r in rows])
    return {"images": len(rows), "pass_rate": round(float(np.mean([r.passed for r in rows])), 4),
            "score_median": _num(np.median(scores)), "score_p5": _num(np.percentile(scores, 5)),
            "score_p95": _num(np.percentile(scores, 95))}


def _median_iou(rows: list[Row]) -> float | None:
    values = [r.mean_iou for r in rows if r.mean_iou is not None]
    return _num(float(np.median(values))) if values else None


def _num(v: float) -> float | None:
    return round(float(v), 4) if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.4f}"
