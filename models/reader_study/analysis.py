"""From per-image scores to the study's findings: table, ranking, tests and the conclusion text.

The conclusion is written from the numbers every time (never fixed text): ranking, whether the
readers differ at the chosen alpha, which pairs differ after Holm correction, and where the
model stands among the readers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.metrics import mean_iou
from models.reader_study.stats import (
    ALPHA,
    PairResult,
    TestResult,
    anova,
    complete_cases,
    describe,
    friedman,
    pairwise_wilcoxon,
)
from models.reader_study.study import StudyScores

METRICS = {"iou": "IoU", "dice": "Dice"}


@dataclass(frozen=True)
class ReaderRow:
    name: str
    label: str
    is_model: bool
    simulated: bool
    images: int
    mean: dict[str, float]     # metric -> mean over images of the per-image tissue mean
    sd: dict[str, float]
    tissue_mean: dict[str, dict[str, float]]  # metric -> tissue -> mean over images having it
    pooled_iou: float          # IoU over tissues from the reader's pooled confusion matrix


@dataclass(frozen=True)
class MetricTests:
    metric: str
    complete: int              # images scored for every reader (the paired tests use these)
    friedman: TestResult
    anova: TestResult
    pairs: list[PairResult]


@dataclass(frozen=True)
class Findings:
    rows: list[ReaderRow]      # ranked by mean IoU, best first
    tests: dict[str, MetricTests]
    alpha: float
    conclusion: list[str]


def analyse(scores: StudyScores, alpha: float = ALPHA) -> Findings:
    tissues = scores.classes.foreground or list(scores.classes.classes)
    per_image = {m: scores.per_image(m) for m in METRICS}
    rows = []
    for r, reader in enumerate(scores.readers):
        stats = {m: describe(per_image[m][r]) for m in METRICS}
        tissue_mean = {m: {t.name: describe(scores.per_image(m, t.id)[r])[0] for t in tissues} for m in METRICS}
        rows.append(ReaderRow(reader.name, reader.label, reader.is_model, reader.simulated,
                              int(np.isfinite(per_image["iou"][r]).sum()), {m: s[0] for m, s in stats.items()},
                              {m: s[1] for m, s in stats.items()}, tissue_mean, mean_iou(scores.matrices[r])))
    order = sorted(range(len(rows)), key=lambda i: (-_key(rows[i].mean["iou"]), rows[i].name))
    labels = [r.label for r in rows]
    tests = {m: MetricTests(m, int(complete_cases(per_image[m]).sum()), friedman(per_image[m]), anova(per_image[m]),
                            pairwise_wilcoxon(per_image[m], labels)) for m in METRICS}
    ranked = [rows[i] for i in order]
    return Findings(ranked, tests, alpha, conclusion(ranked, tests, len(scores.stems), alpha))


def conclusion(rows: list[ReaderRow], tests: dict[str, MetricTests], images: int, alpha: float) -> list[str]:
    """Paragraphs of plain text derived from the figures."""
    out = []
    simulated = [r.name for r in rows if r.simulated]
    if simulated:
        out.append(f"SIMULATED readers ({', '.join(simulated)}): their labels are software perturbations of the "
                   f"reference, not surgeons' work. This study demonstrates the method; it says nothing about how "
                   f"surgeons compare with the model.")
    t = tests["iou"]
    out.append(f"Ranking by mean IoU over tissues (mean of per-image values, {images} images): "
               + _ranking(rows, "iou") + ".")
    if t.complete < images:
        out.append(f"{images - t.complete} images had no tissue in the reference or in some answer; the paired "
                   f"tests use the {t.complete} images scored for every reader.")
    out.append(_omnibus(t, len(rows), alpha))
    out.append(_posthoc(t, alpha))
    a = t.anova
    if np.isfinite(a.p):
        out.append(f"One-way ANOVA, for comparison with the paper (it treats the readers as independent groups, "
                   f"although all read the same images): F({a.df[0]:.0f}, {a.df[1]:.0f}) = {a.statistic:.2f}, "
                   f"{_p(a.p)}, {'significant' if a.significant(alpha) else 'not significant'} at {alpha:g}.")
    out.append(_model_place(rows, t, alpha))
    d = tests["dice"]
    order = sorted(rows, key=lambda r: -_key(r.mean["dice"]))
    dice_omnibus = (f"Friedman {_p(d.friedman.p)}" if np.isfinite(d.friedman.p) else
                    f"Wilcoxon {_p(d.pairs[0].p_holm)}" if d.pairs else "no test")
    out.append("By mean Dice: " + _ranking(order, "dice") + f" ({dice_omnibus}).")
    return [p for p in out if p]


def _ranking(rows: list[ReaderRow], metric: str) -> str:
    parts = [f"{rows[0].label} {_pct(rows[0].mean[metric])}"]
    for prev, row in zip(rows, rows[1:]):
        sign = ">" if round(100 * prev.mean[metric], 1) > round(100 * row.mean[metric], 1) else "="
        parts.append(f"{sign} {row.label} {_pct(row.mean[metric])}")
    return " ".join(parts)


def _omnibus(t: MetricTests, readers: int, alpha: float) -> str:
    f = t.friedman
    if not np.isfinite(f.p):
        return "With two readers the Friedman test does not apply; the Wilcoxon signed-rank test decides."
    verdict = ("the readers differ significantly" if f.significant(alpha)
               else "no significant difference between the readers")
    return (f"Friedman test across the {readers} readers (images as blocks): chi2({f.df[0]:.0f}) = "
            f"{f.statistic:.2f}, {_p(f.p)}: {verdict} at alpha = {alpha:g}.")


def _posthoc(t: MetricTests, alpha: float) -> str:
    sig = [p for p in t.pairs if p.significant(alpha)]
    head = f"Post-hoc Wilcoxon signed-rank tests, Holm-corrected over {len(t.pairs)} pair(s): "
    if not sig:
        return head + "no pair differs significantly."
    listed = "; ".join(f"{p.a} {'above' if p.median_difference >= 0 else 'below'} {p.b} by a median "
                       f"{abs(100 * p.median_difference):.1f} points per image (Holm {_p(p.p_holm)})" for p in sig)
    rest = len(t.pairs) - len(sig)
    caution = ("" if not np.isfinite(t.friedman.p) or t.friedman.significant(alpha)
               else " The omnibus test was not significant: read these pairs as exploratory.")
    return head + f"{len(sig)} significant: {listed}" + (f"; the other {rest} not." if rest else ".") + caution


def _model_place(rows: list[ReaderRow], t: MetricTests, alpha: float) -> str:
    model = next((r for r in rows if r.is_model), None)
    if model is None:
        return ""
    rank = rows.index(model) + 1
    better, worse, same = [], [], []
    for p in t.pairs:
        if model.label not in (p.a, p.b):
            continue
        other = p.b if p.a == model.label else p.a
        diff = p.median_difference if p.a == model.label else -p.median_difference
        if not p.significant(alpha):
            same.append(other)
        elif diff > 0 or (diff == 0 and _mean_of(rows, model.label) > _mean_of(rows, other)):
            better.append(other)
        else:
            worse.append(other)
    parts = [f"The model ranks {rank} of {len(rows)} by mean IoU ({_pct(model.mean['iou'])})."]
    if better:
        parts.append(f"It is significantly better than {', '.join(better)}.")
    if worse:
        parts.append(f"It is significantly worse than {', '.join(worse)}.")
    if same:
        parts.append(f"It does not differ significantly from {', '.join(same)}.")
    return " ".join(parts)


def _mean_of(rows: list[ReaderRow], label: str) -> float:
    return next(r.mean["iou"] for r in rows if r.label == label)


def _key(v: float) -> float:
    return v if np.isfinite(v) else -np.inf


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if np.isfinite(v) else "n/a"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
