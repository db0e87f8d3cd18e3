"""Fitting the trust gate at export (models/core/runtime/gate.py says what it is and how it is used).

    fit = fit_gate(net, dataset, pre, prep)       # train split: feature statistics; val split: the rest
    head = GatedHead(net, fit.temperature)        # what export saves: (calibrated probabilities, features)

From the training run's own dataset, never its test split:
- feature statistics (mean, whitening) from the pooled features of up to `max_train` training
  images spread over all clips; the covariance shrunk towards its diagonal mean (Ledoit-Wolf's
  target, a fixed weight) so that a few hundred images give a stable inverse;
- the temperature T minimising the negative log-likelihood of validation pixels, on the
  probabilities the runtime computes (softmax(z / T) on the output grid, bilinear up to the label);
- the threshold: MARGIN times the QUANTILE of the validation frames' scores (they were not in the
  statistics). Features, shrinkage and margin were chosen on scene-engine data only (spine-v2's
  train and validation splits, 120 frames of 40 clips of another seed): channel means of the three
  encoder stages separated Kvasir-SEG, photographs, uniform and noise frames from those clips
  (AUROC 0.9999) better than fewer stages, added standard deviations or the decoder, and far
  better than max-softmax (0.877) or energy (0.913); with the margin, all 120 frames of the other
  seed passed;
- unsure_below: the calibrated top probability under which validation pixels are wrong more often
  than right (within [0.3, 0.7]);
- protect_floor, for a table with a protected class (the nerve): the highest probability of it at
  which, counting pixels where it wins or reaches the floor, NERVE_RECALL of the validation nerve
  pixels are shown (within [0.05, unsure_below]);
- the expected calibration error (15 bins) of validation pixels before and after scaling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from models.core.paddle_env import import_paddle
from models.core.runtime.gate import GateRule
from models.dataset import Dataset, spread
from models.train.data import EvalSamples

paddle = import_paddle()
F = paddle.nn.functional

QUANTILE = 0.995        # of validation scores, times MARGIN: the threshold
MARGIN = 1.25           # scene-engine clips of another seed score a little higher than the validation clips
SHRINK = 0.3            # covariance shrinkage towards its diagonal mean
MIN_IMAGES = 2          # per split; the manifest records how many the gate was fitted on
PIXELS_PER_IMAGE = 4000  # validation pixels sampled per image for the temperature and the unsure threshold
BINS = 15
NERVE_RECALL = 0.98     # of a protected class's validation pixels, shown (sure or hatched)


class GatedHead(paddle.nn.Layer):
    """The trained network, exported: (softmax(logits / T), pooled features)."""

    def __init__(self, net, temperature: float = 1.0):
        super().__init__()
        self.net = net
        self.inv_t = 1.0 / float(temperature)

    def forward(self, image):
        logits, feats = self.net.forward_features(image)
        return F.softmax(logits * self.inv_t, axis=1), feats


@dataclass(frozen=True)
class GateFit:
    mean: np.ndarray
    whiten: np.ndarray
    rule: GateRule
    report: dict      # what the manifest records of the fitting


def fit_gate(net, dataset: Dataset, pre, prep, max_train: int = 800, progress: bool = True,
             enter_frames: int = 4, exit_frames: int = 8) -> GateFit:
    train = spread(dataset.split("train"), max_train)
    val = dataset.split("val")
    if len(train) < MIN_IMAGES or len(val) < MIN_IMAGES:
        raise ValueError(f"{dataset.root}: the gate needs at least {MIN_IMAGES} training and {MIN_IMAGES} "
                         f"validation images (has {len(train)} and {len(val)})")
    net.eval()
    feats_train, _ = _pass(net, dataset, train, pre, prep, "gate: train features", progress, pixels=False)
    feats_val, pix = _pass(net, dataset, val, pre, prep, "gate: validation", progress, pixels=True)
    mean, whiten = feature_statistics(feats_train)
    scores_val = mahalanobis(feats_val, mean, whiten)
    threshold = float(np.quantile(scores_val, QUANTILE)) * MARGIN
    logits, labels, weights = pix
    temperature = fit_temperature(logits, labels, weights)
    conf_before, correct_before = _confidence(logits, labels, weights, 1.0)
    conf, correct = _confidence(logits, labels, weights, temperature)
    unsure_below = unsure_threshold(_grid_top(logits, weights, temperature), correct)  # as the runtime marks
    protected = [c.id for c in dataset.classes.classes if c.protect]
    floor, shown = None, {}
    if protected:
        p = _upsampled_probs(logits, weights, temperature)
        floor, shown = protect_floor(p, labels, protected[0], unsure_below)
    rule = GateRule(threshold=threshold, enter_frames=enter_frames, exit_frames=exit_frames,
                    unsure_below=unsure_below, temperature=temperature, protect_floor=floor)
    report = {"train_images": len(train), "val_images": len(val), "dims": int(mean.shape[0]),
              "val_score_median": round(float(np.median(scores_val)), 4), "quantile": QUANTILE, "margin": MARGIN, "shrink": SHRINK,
              "val_pixels": int(conf.size), "ece_val_before": round(ece(conf_before, correct_before), 4),
              "ece_val_after": round(ece(conf, correct), 4),
              "val_unsure_share": round(float((conf < unsure_below).mean()), 4), **shown}
    return GateFit(mean, whiten, rule, report)


# -- pure parts ------------------------------------------------------------------------------
def feature_statistics(feats: np.ndarray, shrink: float = SHRINK) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> (mean, W) with W^T W = inverse of the shrunk covariance."""
    feats = np.asarray(feats, np.float64)
    mean = feats.mean(0)
    cov = np.cov(feats - mean, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * (np.trace(cov) / d) * np.eye(d)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, vals.max() * 1e-9)
    whiten = (vecs / np.sqrt(vals)).T  # rows: eigenvectors scaled by 1/sqrt(eigenvalue)
    return mean, whiten


def mahalanobis(feats: np.ndarray, mean: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Scores of (N, D) features, as FrameGate.score computes them."""
    z = (np.asarray(feats, np.float64) - mean) @ whiten.T
    return np.linalg.norm(z, axis=1) / np.sqrt(mean.shape[0])


def fit_temperature(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """T in [0.05, 20] minimising the mean negative log-likelihood of the labelled pixels."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = _upsampled_probs(logits, weights, np.exp(log_t))
        return float(-np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-3})
    return round(float(np.exp(res.x)), 4)


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error over equal-width confidence bins."""
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, conf, bins) - np.bincount(idx, correct.astype(float), bins))
    return float(gap.sum() / max(n.sum(), 1))


def unsure_threshold(conf: np.ndarray, correct: np.ndarray, bins: int = 20, lo: float = 0.3, hi: float = 0.7) -> float:
    """The top probability under which pixels are wrong more often than right (the first bin,
    going up, whose accuracy reaches 1/2), within [lo, hi]."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    hits = np.bincount(idx, correct.astype(float), bins)
    for b in range(bins):
        if n[b] >= 50 and hits[b] / n[b] >= 0.5:
            return float(np.clip(edges[b], lo, hi))
    return hi


def protect_floor(probs: np.ndarray, labels: np.ndarray, pid: int, cap: float,
                  recall: float = NERVE_RECALL, lo: float = 0.05) -> tuple[float | None, dict]:
    """(N, C) calibrated probabilities, (N,) labels -> (the floor, what it shows on these pixels)."""
    mine = labels == pid
    if mine.sum() < 50:
        return None, {}
    wins = probs.argmax(axis=1) == pid
    p = probs[:, pid]
    need = int(np.ceil(recall * mine.sum())) - int((mine & wins).sum())  # pixels the floor must add
    rest = np.sort(p[mine & ~wins])[::-1]
    floor = cap if need <= 0 else float(rest[min(need, len(rest)) - 1])
    floor = float(np.clip(floor, lo, cap))
    shown = wins | (p >= floor)
    return round(floor, 4), {"val_protected_shown": round(float(shown[mine].mean()), 4),
                             "val_protected_hatched_elsewhere": round(float((shown & ~wins & ~mine).mean()), 4)}


# -- passes over the data --------------------------------------------------------------------
def _pass(net, dataset: Dataset, items: list, pre, prep, desc: str, progress: bool, pixels: bool):
    """Pooled features of every image; with pixels, a sample of labelled pixels: for each, the
    four output-grid logit vectors around it and their bilinear weights (what the runtime's
    resize of the probabilities does), and its label."""
    samples = EvalSamples(dataset, items, pre, prep)
    rng = np.random.default_rng(0)
    feats, grid_logits, labels, weights = [], [], [], []
    with paddle.no_grad():
        for i in tqdm(range(len(samples)), desc=desc, unit="img", disable=not progress):
            x, lab = samples[i]
            logits, f = net.forward_features(paddle.to_tensor(x[None]))
            feats.append(f.numpy()[0])
            if pixels:
                z = logits.numpy()[0]
                g, w, y = _sample_pixels(z, lab, dataset.classes.ignore_index, rng)
                grid_logits.append(g)
                weights.append(w)
                labels.append(y)
    pix = None
    if pixels:
        pix = (np.concatenate(grid_logits), np.concatenate(labels), np.concatenate(weights))
    return np.stack(feats), pix


def _sample_pixels(z: np.ndarray, lab: np.ndarray, ignore: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, gh, gw = z.shape
    h, w = lab.shape
    ys, xs = np.nonzero(lab != ignore)
    if len(ys) > PIXELS_PER_IMAGE:
        pick = rng.choice(len(ys), PIXELS_PER_IMAGE, replace=False)
        ys, xs = ys[pick], xs[pick]
    # cv2.resize's bilinear sampling (half-pixel centres, edges clamped)
    gx = np.clip((xs + 0.5) * gw / w - 0.5, 0, gw - 1)
    gy = np.clip((ys + 0.5) * gh / h - 0.5, 0, gh - 1)
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    x1, y1 = np.minimum(x0 + 1, gw - 1), np.minimum(y0 + 1, gh - 1)
    fx, fy = gx - x0, gy - y0
    corners = np.stack([z[:, y0, x0], z[:, y0, x1], z[:, y1, x0], z[:, y1, x1]], axis=1).transpose(2, 1, 0)
    wts = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    return corners.astype(np.float32), wts.astype(np.float32), lab[ys, xs].astype(np.int64)


def _grid_softmax(corners: np.ndarray, temperature: float) -> np.ndarray:
    """(N, 4, C) logits at the four grid points around each pixel -> softmax(z / T) there."""
    z = corners / temperature
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def _upsampled_probs(corners: np.ndarray, weights: np.ndarray, temperature: float) -> np.ndarray:
    """(N, C) probabilities as the runtime computes them: softmax on the grid, then bilinear."""
    return (_grid_softmax(corners, temperature) * weights[..., None]).sum(axis=1)


def _grid_top(corners, weights, temperature: float) -> np.ndarray:
    """The top probability as the runtime's unsure marks take it: on the grid, then bilinear."""
    return (_grid_softmax(corners, temperature).max(axis=2) * weights).sum(axis=1)


def _confidence(corners, labels, weights, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    p = _upsampled_probs(corners, weights, temperature)
    return p.max(axis=1), p.argmax(axis=1) == labels

