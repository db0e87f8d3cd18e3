"""Calibration of a model's probabilities: expected calibration error and the reliability diagram's data.

A pixel's confidence is its top-class probability; it is right when that class is the reference's.
The confidences fall into equal-width bins over [0, 1] (15, as in Guo et al. 2017), and each bin
keeps three numbers: pixels, summed confidence, pixels right. That is all the ECE needs,

    ECE = sum over bins of (pixels in bin / pixels) * |accuracy in bin - mean confidence in bin|
        = sum over bins of |right - summed confidence| / pixels,

so it streams over a split of any size in fixed memory (np.bincount per image).

Temperature scaling: an export may fit a temperature T on the validation split and bake it into the
graph, which then outputs p = softmax(z / T). The unscaled probabilities come back exactly as
softmax(T * log p) = softmax(z) (p clamped to MIN_PROB before the log), so one run of the exported
model gives the ECE both as exported and before scaling. Scaling by T > 0 keeps each pixel's top
class, so both count the same pixels right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ECE_BINS = 15
MIN_PROB = 1e-12


class CalibrationBins:
    """Per equal-width bin of confidence over [0, 1]: pixels, summed confidence, pixels right."""

    def __init__(self, bins: int = ECE_BINS):
        if bins < 1:
            raise ValueError("need at least 1 bin")
        self.bins = bins
        self.count = np.zeros(bins, np.int64)
        self.confidence = np.zeros(bins, np.float64)
        self.correct = np.zeros(bins, np.int64)

    @property
    def pixels(self) -> int:
        return int(self.count.sum())

    def add(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """confidence: (n,) top-class probabilities in [0, 1]; correct: (n,) bool, the top class is right."""
        confidence = np.asarray(confidence).ravel()
        correct = np.asarray(correct, bool).ravel()
        if confidence.shape != correct.shape:
            raise ValueError(f"{confidence.size} confidences but {correct.size} right/wrong flags")
        key = bin_index(confidence, self.bins)
        self.count += np.bincount(key, minlength=self.bins)
        self.confidence += np.bincount(key, weights=confidence, minlength=self.bins)
        self.correct += np.bincount(key[correct], minlength=self.bins)

    def ece(self) -> float:
        """Expected calibration error; NaN without pixels."""
        return expected_calibration_error(self.count, self.confidence, self.correct)

    def reliability(self) -> "Reliability":
        return reliability(self.count, self.confidence, self.correct)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's data per bin; NaN confidence and accuracy where a bin is empty."""
    edges: np.ndarray       # (bins + 1,) from 0 to 1
    count: np.ndarray       # (bins,) pixels
    confidence: np.ndarray  # (bins,) mean confidence
    accuracy: np.ndarray    # (bins,) share of pixels right


class Calibration:
    """A model's calibration on a split: as exported and, when its export baked in a temperature,
    before that scaling (temperature None: not temperature-scaled)."""

    def __init__(self, temperature: float | None = None, bins: int = ECE_BINS):
        self.temperature = temperature
        self.exported = CalibrationBins(bins)
        self.before = CalibrationBins(bins) if temperature is not None else None

    @property
    def bins(self) -> int:
        return self.exported.bins

    def add(self, truth: np.ndarray, probs: np.ndarray) -> None:
        """truth: (n,) class ids of valid pixels; probs: (C, n) the model's probability of each class."""
        truth = np.asarray(truth).ravel()
        if probs.ndim != 2 or probs.shape[1] != truth.size:
            raise ValueError(f"probabilities {probs.shape} do not match {truth.size} pixels")
        correct = probs.argmax(axis=0) == truth
        self.exported.add(probs.max(axis=0), correct)
        if self.before is not None:
            self.before.add(unscale(probs, self.temperature).max(axis=0), correct)


def bin_index(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Confidences in [0, 1] -> bins 0..bins-1: [k/bins, (k+1)/bins), the last bin also holds 1."""
    key = (np.asarray(confidence, np.float64) * bins).astype(np.int64)
    return np.clip(key, 0, bins - 1, out=key)


def expected_calibration_error(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> float:
    """ECE from per-bin pixels, summed confidence and pixels right; NaN without pixels."""
    total = int(np.sum(count))
    if total == 0:
        return math.nan
    return float(np.abs(np.asarray(correct, np.float64) - np.asarray(confidence, np.float64)).sum() / total)


def reliability(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> Reliability:
    count = np.asarray(count, np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(count > 0, np.asarray(confidence, np.float64) / count, np.nan)
        accuracy = np.where(count > 0, np.asarray(correct, np.float64) / count, np.nan)
    return Reliability(np.linspace(0.0, 1.0, count.size + 1), count, mean_confidence, accuracy)


def unscale(probs: np.ndarray, temperature: float, axis: int = 0) -> np.ndarray:
    """softmax(temperature * log p) along `axis`: the probabilities before a temperature scaling
    p = softmax(z / temperature), exactly softmax(z) (p clamped to MIN_PROB first)."""
    p = np.asarray(probs)
    z = np.log(np.maximum(p, np.asarray(MIN_PROB, p.dtype if p.dtype.kind == "f" else np.float64)))
    z *= temperature
    z -= z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def gate_temperature(gate: dict) -> float | None:
    """The temperature a model's manifest section `gate` says its export baked in; None: none."""
    t = gate.get("temperature")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise ValueError(f"gate.temperature: expected a positive number, got {t!r}")
    return float(t)
