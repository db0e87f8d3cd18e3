"""Losses for class-imbalanced segmentation: weighted cross-entropy (optionally OHEM) + Dice."""
from __future__ import annotations

import numpy as np

from models.core.paddle_env import import_paddle
from models.train.config import LossConfig

paddle = import_paddle()
F = paddle.nn.functional


def class_weights_from_counts(counts: np.ndarray) -> np.ndarray:
    """Inverse square root of pixel frequency, normalized to mean 1 over present classes."""
    freq = counts / max(counts.sum(), 1)
    w = np.where(freq > 0, 1 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
    present = w > 0
    w[present] /= w[present].mean()
    w[~present] = 1.0
    return w.astype(np.float32)


class SegLoss:
    def __init__(self, cfg: LossConfig, num_classes: int, weights: np.ndarray | None = None, ignore: int = 255):
        self.cfg = cfg
        self.num_classes = num_classes
        self.ignore = ignore
        self.weight = paddle.to_tensor(weights) if weights is not None else None

    def __call__(self, logits, labels) -> tuple:
        """logits (N,C,h,w) at any stride, labels (N,H,W) int64. Returns (total, parts dict)."""
        if logits.shape[2:] != labels.shape[1:]:
            logits = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
        parts = {}
        total = 0.0
        if self.cfg.ce > 0:
            parts["ce"] = self._ce(logits, labels)
            total = total + self.cfg.ce * parts["ce"]
        if self.cfg.dice > 0:
            parts["dice"] = self._dice(logits, labels)
            total = total + self.cfg.dice * parts["dice"]
        return total, parts

    def _ce(self, logits, labels):
        pixel = F.cross_entropy(logits, labels.unsqueeze(1), weight=self.weight, ignore_index=self.ignore,
                                reduction="none", axis=1).flatten()
        valid = (labels.flatten() != self.ignore).astype("float32")
        n_valid = valid.sum()
        if self.cfg.ohem_fraction <= 0:
            return (pixel * valid).sum() / paddle.clip(n_valid, min=1.0)
        k = max(1, int(pixel.shape[0] * self.cfg.ohem_fraction))
        hardest, _ = paddle.topk(pixel * valid, k)
        return hardest.mean()

    def _dice(self, logits, labels, eps: float = 1.0):
        probs = F.softmax(logits, axis=1)
        valid = (labels != self.ignore).astype("float32").unsqueeze(1)
        onehot = F.one_hot(paddle.where(labels == self.ignore, paddle.zeros_like(labels), labels),
                           self.num_classes).transpose([0, 3, 1, 2])
        probs = probs * valid
        onehot = onehot * valid
        inter = (probs * onehot).sum(axis=[0, 2, 3])
        denom = probs.sum(axis=[0, 2, 3]) + onehot.sum(axis=[0, 2, 3])
        present = (onehot.sum(axis=[0, 2, 3]) > 0).astype("float32")
        dice = (2 * inter + eps) / (denom + eps)
        return ((1 - dice) * present).sum() / paddle.clip(present.sum(), min=1.0)
