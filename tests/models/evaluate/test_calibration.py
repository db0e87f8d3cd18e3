"""Expected calibration error and the reliability bins on known cases; evaluate's calibration block."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from models.core.classes import ClassTable
from models.evaluate.accumulate import Accumulator
from models.evaluate.calibration import (
    Calibration,
    CalibrationBins,
    bin_index,
    expected_calibration_error,
    gate_temperature,
    unscale,
)
from models.evaluate.plots import reliability_diagram
from models.evaluate.summary import headline, metrics

TWO = ClassTable.from_dict({"name": "two", "classes": [{"id": 0, "name": "background", "color": [0, 0, 0]},
                                                       {"id": 1, "name": "bone", "color": [64, 170, 255]}]})


def softmax(z: np.ndarray, axis: int = 0) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def two_class(confidence: list[float], right: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(truth (n,), probs (2, n)): class 1 predicted with the given confidence, truth 1 where right."""
    c = np.asarray(confidence, np.float64)
    return np.where(right, 1, 0).astype(np.uint8), np.stack([1 - c, c])


@pytest.mark.unit
def test_bins_are_equal_width_and_one_falls_in_the_last():
    assert bin_index(np.array([0.0, 1 / 15 - 1e-9, 1 / 15 + 1e-9, 0.5, 14 / 15 + 1e-9, 1.0])).tolist() == \
        [0, 0, 1, 7, 14, 14]


@pytest.mark.unit
def test_perfectly_calibrated_bins_give_zero():
    # In each bin the share right equals the confidence: 0.6 (6 of 10), 0.8 (8 of 10), 1.0 (5 of 5).
    b = CalibrationBins()
    b.add([0.6] * 10, [True] * 6 + [False] * 4)
    b.add([0.8] * 10, [True] * 8 + [False] * 2)
    b.add([1.0] * 5, [True] * 5)
    assert b.pixels == 25 and b.ece() == pytest.approx(0.0, abs=1e-12)
    r = b.reliability()
    full = r.count > 0
    np.testing.assert_allclose(r.accuracy[full], r.confidence[full])
    assert np.isnan(r.accuracy[~full]).all() and r.edges[0] == 0 and r.edges[-1] == 1 and r.edges.size == 16


@pytest.mark.unit
def test_sampled_calibrated_model_has_ece_near_zero():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 400_000)
    cal = Calibration()
    truth, probs = two_class(conf, rng.random(conf.size) < conf)  # right with probability = confidence
    cal.add(truth, probs)
    assert cal.exported.ece() < 0.005 and cal.before is None


@pytest.mark.unit
def test_hand_computed_overconfident_case():
    # 4 pixels at 0.9 with 2 right, 6 at 0.7 with 3 right: 0.4 * |0.5 - 0.9| + 0.6 * |0.5 - 0.7| = 0.28
    truth, probs = two_class([0.9] * 4 + [0.7] * 6, [1, 1, 0, 0, 1, 1, 1, 0, 0, 0])
    cal = Calibration()
    cal.add(truth, probs)
    assert cal.exported.ece() == pytest.approx(0.28, abs=1e-12)
    # Streaming: the same pixels one at a time give the same bins.
    one = Calibration()
    for k in range(truth.size):
        one.add(truth[k:k + 1], probs[:, k:k + 1])
    for key in ("count", "confidence", "correct"):
        np.testing.assert_allclose(getattr(one.exported, key), getattr(cal.exported, key))


@pytest.mark.unit
def test_ece_from_counts_and_empty():
    assert expected_calibration_error([4, 6], [3.6, 4.2], [2, 3]) == pytest.approx(0.28)
    assert np.isnan(CalibrationBins().ece())


@pytest.mark.unit
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_unscale_reverses_temperature_scaling(dtype, tol):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, (5, 1000))  # no probability below the clamp
    for t in (0.5, 1.0, 1.7, 3.0):
        p = softmax(z / t).astype(dtype)
        np.testing.assert_allclose(unscale(p, t), softmax(z), atol=tol)
        assert unscale(p, t).dtype == dtype
    # Along another axis, and a zero probability (clamped) stays tiny.
    p = softmax(z.T / 2.0, axis=1)
    np.testing.assert_allclose(unscale(p, 2.0, axis=1), softmax(z.T, axis=1), atol=1e-12)
    assert unscale(np.array([[1.0], [0.0]]), 2.0)[1, 0] < 1e-20


@pytest.mark.unit
def test_before_scaling_is_the_unscaled_models_calibration():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 6, (3, 20_000))          # an overconfident model's logits
    truth = np.where(rng.random(z.shape[1]) < 0.7, z.argmax(axis=0), rng.integers(0, 3, z.shape[1]))
    t = 2.5
    scaled = Calibration(t)
    scaled.add(truth, softmax(z / t).astype(np.float32))
    plain = Calibration()
    plain.add(truth, softmax(z).astype(np.float32))
    assert scaled.before.ece() == pytest.approx(plain.exported.ece(), abs=1e-6)
    assert scaled.exported.correct.sum() == plain.exported.correct.sum()  # scaling keeps the top class
    assert scaled.exported.ece() < scaled.before.ece()  # softening an overconfident model helps


@pytest.mark.unit
def test_gate_temperature():
    assert gate_temperature({}) is None and gate_temperature({"temperature": 2}) == 2.0
    for bad in (0, -1.5, float("nan"), "2", True):
        with pytest.raises(ValueError, match="gate.temperature: expected a positive number"):
            gate_temperature({"temperature": bad})


@pytest.mark.unit
def test_metrics_block_headline_and_picture():
    truth = np.array([[1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 255]], np.uint8)
    valid = truth[truth != 255]
    probs = np.stack([[0.1] * 4 + [0.3] * 6, [0.9] * 4 + [0.7] * 6]).astype(np.float32)
    for t in (None, 1.5):
        acc = Accumulator(TWO, gallery_size=0, temperature=t)
        acc.add("a", "c", 0, truth, np.ones_like(truth), probs)
        doc = metrics(acc, "test", resamples=0)
        json.dumps(doc, allow_nan=False)
        cal = doc["calibration"]
        assert (cal["available"], cal["bins"], cal["pixels"], cal["temperature"]) == (True, 15, valid.size, t)
        assert cal["ece"] == pytest.approx(0.28, abs=1e-6)
        assert sum(cal["reliability"]["count"]) == valid.size and cal["reliability"]["accuracy"][13] == 0.5
        line = headline(doc)
        if t is None:
            assert cal["ece_before"] is None and cal["reliability_before"] is None
            assert "ECE 0.280 (not temperature-scaled)" in line
        else:
            before = Calibration()
            before.add(valid, unscale(probs, t))
            assert cal["ece_before"] == pytest.approx(before.exported.ece(), abs=1e-6)
            assert f"ECE 0.280 as exported, {cal['ece_before']:.3f} before temperature scaling (T 1.5)" in line
        assert reliability_diagram(acc.calibration)[:8] == b"\x89PNG\r\n\x1a\n"
    acc = Accumulator(TWO, with_scores=False, gallery_size=0)
    acc.add("a", "c", 0, truth, np.ones_like(truth))
    doc = metrics(acc, "test", resamples=0)
    assert doc["calibration"]["available"] is False and doc["calibration"]["ece"] is None
    assert "ECE" not in headline(doc)


def model_with_gate(monkeypatch, gate: dict) -> None:
    """evaluate's runtime reads this manifest `gate` section. A real gated export also needs a gate file
    and a feature output (models/core/runtime/gate.py); for the calibration figures only the section counts."""
    from models.core.runtime.backends import SegmentationRuntime
    from models.evaluate import run

    class Gated(SegmentationRuntime):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.manifest = dataclasses.replace(self.manifest, gate=gate)

    monkeypatch.setattr(run, "SegmentationRuntime", Gated)


@pytest.mark.slow
def test_evaluate_reports_calibration_before_and_after(tiny_model_dir, tiny_synth, tmp_path, capsys, monkeypatch):
    from models.cli import main

    docs = {}
    for name in ("plain", "scaled"):
        if name == "scaled":
            model_with_gate(monkeypatch, {"threshold": 3.0, "temperature": 1.5})
        out = tmp_path / name
        assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tiny_synth), "--out", str(out),
                     "--gallery", "0", "--bootstrap", "0"]) == 0
        docs[name] = json.loads((out / "metrics.json").read_text())
        line = capsys.readouterr().out
        page = (out / "report.html").read_text()
        assert (out / "reliability.png").is_file() and "reliability diagram" in page and "<h2>Calibration</h2>" in page
        cal = docs[name]["calibration"]
        assert cal["pixels"] == docs[name]["valid_pixels"] and 0 <= cal["ece"] <= 1
        assert ("not temperature-scaled" in line) == (name == "plain") == ("not temperature-scaled" in page)
    plain, scaled = docs["plain"]["calibration"], docs["scaled"]["calibration"]
    assert plain["temperature"] is None and plain["ece_before"] is None and plain["reliability_before"] is None
    # This graph has no temperature in it, so "before" reverses a scaling that never happened: the run
    # as exported is the plain model's, and "before" is that run sharpened by T.
    assert scaled["temperature"] == 1.5 and scaled["ece"] == pytest.approx(plain["ece"], abs=1e-9)
    assert scaled["ece_before"] is not None and scaled["ece_before"] != scaled["ece"]
    assert sum(scaled["reliability_before"]["count"]) == scaled["pixels"]
    assert "before temperature scaling (T 1.5)" in line


@pytest.mark.slow
def test_a_bad_temperature_is_a_one_line_error(tiny_model_dir, tiny_synth, tmp_path, capsys, monkeypatch):
    from models.cli import main

    model_with_gate(monkeypatch, {"temperature": -1})
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tiny_synth),
                 "--out", str(tmp_path / "r")]) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert len(err) == 1 and "gate.temperature: expected a positive number, got -1" in err[0], err
    assert not (tmp_path / "r").exists()
