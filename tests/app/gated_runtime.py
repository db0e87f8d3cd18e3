"""A real exported model with a scripted trust gate, for render and worker tests (importable by the
spawned worker as "tests.app.gated_runtime:GatedRuntime"; kept apart from fake_runtimes so the fake
workers do not load the real runtime's modules)."""
from __future__ import annotations

import numpy as np

from models.core.runtime.backends import SegmentationRuntime
from models.core.runtime.gate import GateRule


class _ScriptedGate:
    """A FrameGate whose frame scores are a script, in call order (then in distribution)."""

    def __init__(self, scores, rule: GateRule):
        self.rule = rule
        self._scores = iter(scores)

    def score(self, features: np.ndarray) -> float:
        return float(next(self._scores, 0.5))


class GatedRuntime(SegmentationRuntime):
    """An exported model (the tiny test one) with a trust gate whose scores are SCORES, frame after
    frame: out of distribution above 1.0, AI UNSURE after two such frames in a row, cleared after
    two in-distribution ones; so frames 2, 3 and 4 are unsure and frame 1 (out, but alone) is not."""

    SCORES = (0.5, 2.0, 3.0, 3.0, 0.5, 0.5, 0.5, 0.5)
    UNSURE = (False, False, True, True, True, False, False, False)

    def __init__(self, model_dir, settings=None):
        super().__init__(model_dir, settings)
        self.gate = _ScriptedGate(self.SCORES, GateRule(threshold=1.0, enter_frames=2, exit_frames=2))

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        probs = super().run_tensor(x)
        self.features = np.zeros((1, 8), np.float32)  # pooled features: the scripted gate ignores them
        return probs
