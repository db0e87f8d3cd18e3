"""The trust gate: is this frame like the ones the model was trained on, and which pixels is it sure of?

An exported model with a gate has two outputs: the class probabilities, already temperature-scaled
(softmax(z / T), T fitted on the validation split at export, so they are calibrated), and a short
vector of pooled features of its encoder and decoder. The gate file (gate.safetensors, listed and
hashed in the manifest like the weights) holds the training frames' feature mean and a whitening
matrix W (W^T W = the inverse of their shrunk covariance). A frame's score is its Mahalanobis
distance to the training frames, divided by sqrt(dims):

    score = |W (f - mean)| / sqrt(D)        about 1 for a typical training frame; far larger for a scene unlike them

The manifest's `gate` section holds the rest, fitted at export (models/gatefit.py):

    threshold     a frame with a higher score is out of distribution (a high quantile of the validation frames)
    enter_frames  this many out-of-distribution frames in a row raise AI UNSURE (no mask is painted) ...
    exit_frames   ... and this many in-distribution frames in a row clear it: hysteresis both ways, no flicker
    unsure_below  a pixel whose (calibrated) top probability is below this is one the model is unsure of:
                  on calibrated probabilities it is more likely wrong than right
    protect_floor a protected class (the nerve) at least this likely where another class wins is
                  shown as an unsure nerve pixel (hatched): the nerve errs towards being shown
    temperature   T, for the record (evaluate reverses it to report the calibration error before scaling)

`FrameGate.score` costs a (D x D) matrix-vector product: about 0.01 ms for D = 448. A model folder
exported before gates has no gate section: it still loads, its results carry score None, and the
display says that the overlay is not gated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.core.errors import EndoSpineError

GATE_FILE = "gate.safetensors"
GATE_ROLE = "gate"        # its role in the manifest's files
FORMAT = "endospine-gate/1"
MAX_DIMS = 4096


@dataclass(frozen=True)
class GateRule:
    """The manifest's gate section: when a frame is out of distribution and when a pixel is unsure."""

    threshold: float
    enter_frames: int = 4
    exit_frames: int = 8
    unsure_below: float = 0.5
    temperature: float = 1.0
    protect_floor: float | None = None  # a protected class (the nerve) at least this likely is shown, unsure

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold: expected a positive number, got {self.threshold!r}")
        for name in ("enter_frames", "exit_frames"):
            v = getattr(self, name)
            if type(v) is not int or not 1 <= v <= 1000:
                raise ValueError(f"{name}: expected a whole number in 1..1000, got {v!r}")
        if not 0.0 <= self.unsure_below <= 1.0:
            raise ValueError(f"unsure_below: expected a probability in [0, 1], got {self.unsure_below!r}")
        if self.protect_floor is not None and not 0.0 < self.protect_floor <= 1.0:
            raise ValueError(f"protect_floor: expected a probability in (0, 1], got {self.protect_floor!r}")
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 20):
            raise ValueError(f"temperature: expected a number in [0.05, 20], got {self.temperature!r}")

    @classmethod
    def from_manifest(cls, section: dict[str, Any], where: str) -> "GateRule":
        try:
            values = {k: section[k] for k in ("threshold", "enter_frames", "exit_frames", "unsure_below",
                                               "temperature", "protect_floor") if k in section}
            for k in ("threshold", "unsure_below", "temperature", "protect_floor"):
                if k in values:
                    if isinstance(values[k], bool) or not isinstance(values[k], (int, float)):
                        raise ValueError(f"{k}: expected a number, got {values[k]!r}")
                    values[k] = float(values[k])
            if "threshold" not in values:
                raise ValueError("threshold: missing")
            return cls(**values)
        except ValueError as exc:
            raise EndoSpineError(f"{where}: gate.{exc}") from None


class FrameGate:
    """A frame's pooled features -> its out-of-distribution score."""

    def __init__(self, mean: np.ndarray, whiten: np.ndarray, rule: GateRule):
        self.mean = np.ascontiguousarray(mean, np.float32)     # float32: a 448 x 448 product in ~0.03 ms
        self.whiten = np.ascontiguousarray(whiten, np.float32)
        self.rule = rule
        self.dims = self.mean.shape[0]
        self._norm = 1.0 / math.sqrt(self.dims)

    def score(self, features: np.ndarray) -> float:
        f = np.asarray(features, np.float32).reshape(-1)
        if f.shape[0] != self.dims:
            raise EndoSpineError(f"model feature output has {f.shape[0]} values, the gate expects {self.dims}")
        if not np.isfinite(f).all():
            raise EndoSpineError("model produced non-finite features")
        return float(np.linalg.norm(self.whiten @ (f - self.mean)) * self._norm)

    def is_out(self, score: float) -> bool:
        return score > self.rule.threshold

    @classmethod
    def load(cls, root: Path, manifest) -> "FrameGate | None":
        """The gate of a verified model folder, or None when it was exported without one."""
        if not manifest.gate:
            return None
        where = str(Path(root) / "manifest.yaml")
        rule = GateRule.from_manifest(manifest.gate, where)
        if GATE_ROLE not in manifest.files:
            raise EndoSpineError(f"{where}: gate section without a '{GATE_ROLE}' file")
        mean, whiten = read_gate_file(manifest.path(Path(root), GATE_ROLE))
        return cls(mean, whiten, rule)


def read_gate_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), whitening (D, D)) from a gate file; one line naming the file when it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("format") != FORMAT:
                raise EndoSpineError(f"{path}: not an EndoSpine gate file (format {FORMAT} expected)")
            names = set(f.keys())
            if names != {"mean", "whiten"}:
                raise EndoSpineError(f"{path}: expected tensors mean and whiten, found {sorted(names)[:4]}")
            mean, whiten = f.get_tensor("mean"), f.get_tensor("whiten")
    except EndoSpineError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for damaged files
        raise EndoSpineError(f"{path}: cannot read the gate file ({str(exc).splitlines()[0][:120]})") from None
    d = mean.shape[0] if mean.ndim == 1 else -1
    if not 1 <= d <= MAX_DIMS or whiten.shape != (d, d):
        raise EndoSpineError(f"{path}: mean {mean.shape} and whiten {whiten.shape} do not fit (D, ) and (D, D)")
    if not (np.isfinite(mean).all() and np.isfinite(whiten).all()):
        raise EndoSpineError(f"{path}: holds NaN or infinite values")
    return mean, whiten


def write_gate_file(path: Path, mean: np.ndarray, whiten: np.ndarray) -> Path:
    from safetensors.numpy import save

    from models.core.imageio import write_bytes_atomic

    data = save({"mean": np.ascontiguousarray(mean, np.float32), "whiten": np.ascontiguousarray(whiten, np.float32)},
                metadata={"format": FORMAT})
    write_bytes_atomic(path, data)
    return path


class GateState:
    """Hysteresis over consecutive frames: AI UNSURE after `enter` out-of-distribution frames in a
    row, cleared after `exit` in-distribution frames in a row. reset() (a new clip) clears it."""

    def __init__(self, rule: GateRule):
        self.rule = rule
        self.reset()

    def reset(self) -> None:
        self.unsure = False
        self._run = 0  # frames in a row that disagree with the current state

    def update(self, out: bool) -> bool:
        if out != self.unsure:
            self._run += 1
            if self._run >= (self.rule.enter_frames if out else self.rule.exit_frames):
                self.unsure, self._run = out, 0
        else:
            self._run = 0
        return self.unsure
