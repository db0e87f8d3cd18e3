"""The trust gate's runtime parts: the rule, the frame score, the hysteresis, the gate file, and
the post-processing stage's unsure pixels and verdict."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.runtime.gate import FrameGate, GateRule, GateState, read_gate_file, write_gate_file
from models.core.runtime.postprocess import PostSettings, PostStage, UnsureMarks, labels_at
from models.core.types import UNSURE_BIT

pytestmark = pytest.mark.unit


def test_rule_values_are_checked_with_one_line():
    assert GateRule.from_manifest({"threshold": 2.5, "enter_frames": 3, "score": "text is ignored"}, "m").enter_frames == 3
    for section, words in (({}, "threshold: missing"), ({"threshold": -1}, "threshold"),
                           ({"threshold": 2, "enter_frames": 0}, "enter_frames"),
                           ({"threshold": 2, "unsure_below": 1.5}, "unsure_below"),
                           ({"threshold": "2"}, "expected a number"), ({"threshold": 2, "temperature": 1e9}, "temperature")):
        with pytest.raises(EndoSpineError) as exc:
            GateRule.from_manifest(section, "where/manifest.yaml")
        assert str(exc.value).startswith("where/manifest.yaml: gate.") and words in str(exc.value), section


def test_score_is_the_whitened_distance_over_sqrt_dims():
    gate = FrameGate(np.zeros(4), np.diag([1.0, 2.0, 1.0, 1.0]), GateRule(threshold=1.0))
    assert gate.score(np.array([[2.0, 0.0, 0.0, 0.0]])) == pytest.approx(1.0)  # |(2,0,0,0)| / 2
    assert gate.score(np.array([0.0, 2.0, 0.0, 0.0])) == pytest.approx(2.0)
    with pytest.raises(EndoSpineError, match="3 values, the gate expects 4"):
        gate.score(np.zeros(3))
    with pytest.raises(EndoSpineError, match="non-finite"):
        gate.score(np.array([np.nan, 0, 0, 0]))


def test_hysteresis_needs_runs_both_ways_and_does_not_flicker():
    state = GateState(GateRule(threshold=1.0, enter_frames=3, exit_frames=4))
    seen = [state.update(out) for out in [True, True, False, True, True, True, False, True, False, False, False,
                                          False]]
    assert seen == [False, False, False, False, False, True, True, True, True, True, True, False]
    flicker = [state.update(i % 2 == 0) for i in range(20)]  # alternating frames never change the state
    assert len(set(flicker)) == 1
    state.reset()
    assert state.unsure is False


def test_gate_file_round_trip_and_refusals(tmp_path):
    mean, whiten = np.arange(3, dtype=np.float32), np.eye(3, dtype=np.float32)
    path = write_gate_file(tmp_path / "gate.safetensors", mean, whiten)
    m, w = read_gate_file(path)
    assert np.array_equal(m, mean) and np.array_equal(w, whiten)
    bad = tmp_path / "bad.safetensors"
    write_gate_file(bad, mean, np.eye(2, dtype=np.float32))
    with pytest.raises(EndoSpineError, match="do not fit"):
        read_gate_file(bad)
    write_gate_file(bad, np.array([np.inf, 0, 0]), whiten)
    with pytest.raises(EndoSpineError, match="NaN or infinite"):
        read_gate_file(bad)
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(EndoSpineError) as exc:
        read_gate_file(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def _probs(top: float, n: int = 7, cls: int = 1, h: int = 4, w: int = 4) -> np.ndarray:
    p = np.full((n, h, w), (1 - top) / (n - 1), np.float32)
    p[cls] = top
    return p


def test_unsure_pixels_carry_the_bit_and_keep_their_class():
    p = _probs(0.9)
    p[:, 0, 0] = 0.1
    p[4, 0, 0] = 0.4  # nerve wins at 0.4: unsure, still nerve
    labels = labels_at(p, (4, 4), {}, unsure=UnsureMarks(0.5))
    assert labels[0, 0] == 4 | UNSURE_BIT and (labels & 0x7F)[0, 0] == 4
    assert (labels.ravel()[1:] == 1).all()
    assert labels_at(p, (4, 4), {})[0, 0] == 4  # no threshold: plain ids


def test_a_likely_nerve_is_shown_even_where_another_class_wins():
    p = _probs(0.9)
    p[:, 1, 1] = 0.05
    p[1, 1, 1], p[4, 1, 1] = 0.6, 0.3      # bone wins, but the nerve is at its floor
    p[:, 2, 2] = 0.05
    p[1, 2, 2], p[4, 2, 2] = 0.65, 0.25    # under the floor: bone
    labels = labels_at(p, (4, 4), {}, unsure=UnsureMarks(0.5, protect=((4, 0.3),)))
    assert labels[1, 1] == 4 | UNSURE_BIT and labels[2, 2] == 1 and labels[0, 0] == 1
    rule = GateRule(threshold=2.0, unsure_below=0.5, protect_floor=0.3)
    stage = PostStage(default_classes(), PostSettings(smoothing=0.0), rule)  # the nerve is the table's protected class
    assert stage(p, (0, 0, 4, 4), (4, 4), score=1.0)[1, 1] == 4 | UNSURE_BIT


def test_stage_judges_frames_and_marks_pixels_only_with_live_settings():
    rule = GateRule(threshold=2.0, enter_frames=2, exit_frames=2, unsure_below=0.6)
    live = PostStage(default_classes(), PostSettings(smoothing=0.0), rule)
    still = PostStage(default_classes(), PostSettings.still(), rule)
    box, size = (0, 0, 4, 4), (4, 4)
    for score, unsure in ((3.0, False), (3.0, True), (1.0, True), (1.0, False)):
        labels = live(_probs(0.55), box, size, score=score)
        assert live.score == score and live.unsure is unsure
        assert (labels == (1 | UNSURE_BIT)).all()
        assert (still(_probs(0.55), box, size, score=score) == 1).all()
    plain = PostStage(default_classes(), PostSettings(smoothing=0.0))  # a model without a gate
    plain(_probs(0.55), box, size, score=None)
    assert plain.score is None and plain.unsure is False
    live.reset()
    assert live.unsure is False and live.score is None
