"""The 95 % bootstrap intervals over clips: known cases, the fallback to images, and the summary's shape."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from models.core.classes import ClassTable
from models.evaluate.accumulate import Accumulator
from models.evaluate.bootstrap import (
    Units,
    draws,
    group_units,
    intervals,
    percentile_interval,
    resampled_auc,
    resampled_scores,
)
from models.evaluate.roc import auc_from_counts
from models.evaluate.summary import headline, metrics
from models.metrics import scores_from_matrix

pytestmark = pytest.mark.unit
GROUPS = {"mean": [1, 2, 3], "mean_paper": [1, 2, 3], "mean_with_background": [0, 1, 2, 3]}
TABLE = ClassTable.from_dict({"name": "lumbar-4", "classes": [
    {"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "bone", "color": [64, 170, 255]},
    {"id": 2, "name": "ligament", "color": [0, 220, 120]}, {"id": 3, "name": "disc", "color": [200, 80, 255]}]})


def clip_matrix(errors: int, size: int = 100) -> np.ndarray:
    """A 4-class confusion matrix: `size` pixels per class, `errors` of each class's pixels given the next class."""
    m = np.diag(np.full(4, size - errors)).astype(np.int64)
    for c in range(4):
        m[c, (c + 1) % 4] += errors
    return m


def test_identical_clips_give_a_zero_width_interval_at_the_point():
    units = Units("clip", np.stack([clip_matrix(10)] * 12), None)
    ci = intervals(units, GROUPS, resamples=500, seed=3)
    point = scores_from_matrix(clip_matrix(10))["iou"]
    np.testing.assert_allclose(ci["per_class"]["iou"][:, 0], point)
    np.testing.assert_allclose(ci["per_class"]["iou"][:, 1], point)
    assert ci["means"]["mean"]["iou"][0] == pytest.approx(ci["means"]["mean"]["iou"][1])


def test_one_bad_clip_among_good_ones_widens_the_interval_downwards():
    good = np.stack([clip_matrix(5)] * 20)
    bad = good.copy()
    bad[7] = clip_matrix(80)
    calm = intervals(Units("clip", good, None), GROUPS, seed=0)["means"]["mean"]["iou"]
    lo, hi = intervals(Units("clip", bad, None), GROUPS, seed=0)["means"]["mean"]["iou"]
    pooled = np.mean(scores_from_matrix(bad.sum(axis=0))["iou"][1:])
    assert calm[1] - calm[0] < 1e-12
    assert hi - lo > 0.02 and lo < pooled <= hi
    assert hi == pytest.approx(scores_from_matrix(clip_matrix(5))["iou"][1:].mean())  # resamples missing the bad clip


def test_the_seed_makes_it_reproducible():
    rng = np.random.default_rng(0)
    units = Units("clip", rng.integers(0, 500, (15, 4, 4)), None)
    a = intervals(units, GROUPS, resamples=300, seed=11)
    b = intervals(units, GROUPS, resamples=300, seed=11)
    c = intervals(units, GROUPS, resamples=300, seed=12)
    np.testing.assert_array_equal(a["per_class"]["dice"], b["per_class"]["dice"])
    assert not np.array_equal(a["per_class"]["dice"], c["per_class"]["dice"])


def test_resampling_all_at_once_equals_one_resample_at_a_time():
    rng = np.random.default_rng(1)
    matrices = rng.integers(0, 300, (9, 4, 4))
    hist = rng.integers(0, 50, (9, 4, 2, 16))
    w = draws(9, 25, seed=5)
    assert (w.sum(axis=1) == 9).all()
    scores, auc = resampled_scores(w, matrices), resampled_auc(w, hist)
    for b in range(25):
        m = np.einsum("n,nij->ij", w[b], matrices)
        np.testing.assert_allclose(scores["iou"][b], scores_from_matrix(m)["iou"])
        assert scores["pixel_accuracy"][b] == pytest.approx(np.trace(m) / m.sum())
        h = np.einsum("n,ncki->cki", w[b], hist)
        np.testing.assert_allclose(auc[b], [auc_from_counts(h[c, 1], h[c, 0]) for c in range(4)])


def test_2000_resamples_over_40_clips_and_7_classes_take_well_under_a_second():
    rng = np.random.default_rng(2)
    units = Units("clip", rng.integers(0, 10 ** 6, (40, 7, 7)), None)
    groups = {"mean": range(1, 7), "mean_paper": [1, 2, 3], "mean_with_background": range(7)}
    start = time.perf_counter()
    intervals(units, groups, resamples=2000, seed=0)
    assert time.perf_counter() - start < 1.0


def test_a_class_absent_from_some_resamples_is_left_out_of_them():
    samples = np.array([[0.5], [np.nan], [0.7], [0.6]])
    lo, hi = percentile_interval(samples, 0.5)[0]
    assert (lo, hi) == pytest.approx((0.55, 0.65))
    assert np.isnan(percentile_interval(np.full((5, 1), np.nan))).all()


def test_units_are_clips_or_else_images_and_say_why():
    m = np.stack([clip_matrix(k) for k in range(5)])
    u = group_units(["a", "b", "a", "c", "b"], m, None)
    assert u.kind == "clip" and u.note == "" and len(u.matrices) == 3
    np.testing.assert_array_equal(u.matrices[0], m[0] + m[2])  # clip a: its two images summed
    u = group_units(["", "", "", "", ""], m, None)
    assert u.kind == "image" and len(u.matrices) == 5 and u.note == "the dataset has no clip ids"
    u = group_units(["a", "", "a", "c", "b"], m, None)
    assert u.kind == "image" and u.note == "1 of 5 images have no clip id"
    u = group_units(list("abcde"), m, {c: np.ones((4, 2, 8)) for c in "abcde"})
    assert u.kind == "image" and "single image" in u.note and u.histograms.shape == (5, 4, 2, 8)
    u = group_units(["a"] * 5, m, None)
    assert u.kind == "image" and u.single_clip and "not independent" in u.note
    assert intervals(group_units(["a"], m[:1], None), GROUPS) is None  # one unit: nothing to resample


def _accumulate(clips: list[str], scores: bool = True) -> Accumulator:
    """Bands of the four classes, each image with its own amount of noise, under the given clip ids."""
    rng = np.random.default_rng(4)
    acc = Accumulator(TABLE, with_scores=scores, gallery_size=0)
    truth = np.repeat((np.arange(16) * 4 // 16).astype(np.uint8)[None], 8, axis=0)
    for k, clip in enumerate(clips):
        logits = rng.normal(0, 0.5 + 0.4 * k, (8, 16, 4)) + 2.0 * np.eye(4)[truth]
        p = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
        acc.add(f"i{k}", clip, k, truth, p.argmax(axis=2).astype(np.uint8),
                p.reshape(-1, 4).T.astype(np.float32) if scores else None)
    return acc


def test_the_summary_carries_an_interval_beside_every_figure():
    acc = _accumulate([f"c{k % 6}" for k in range(18)])
    doc = metrics(acc, "test", resamples=400, seed=1)
    json.dumps(doc, allow_nan=False)
    ci, b = doc["ci95"], doc["bootstrap"]
    assert b["unit"] == "clip" and b["units"] == 6 and b["small_split"] and "small split: 6 clips" in b["note"]
    assert doc["mean_classes"]["mean_paper"] == ["bone", "ligament", "disc"] == doc["mean_classes"]["mean"]
    for group in ("mean", "mean_paper", "mean_with_background"):
        for key, (lo, hi) in ci[group].items():
            assert lo <= hi, (group, key)
            assert lo - 0.05 <= doc[group][key] <= hi + 0.05, (group, key)  # around the point, not elsewhere
    for name in TABLE.names:
        assert set(ci["per_class"][name]) == set(doc["per_class"][name])
        assert ci["per_class"][name]["iou"][1] - ci["per_class"][name]["iou"][0] > 0
    assert ci["pixel_accuracy"][0] <= doc["pixel_accuracy"] <= ci["pixel_accuracy"][1]
    line = headline(doc)
    iou, (lo, hi) = doc["mean"]["iou"], ci["mean"]["iou"]
    assert f"IoU {iou:.3f} [{lo:.3f}, {hi:.3f}]" in line and "over 6 clips (small split)" in line


def test_no_clip_ids_fall_back_to_images_and_no_resamples_means_no_intervals():
    acc = _accumulate([""] * 8, scores=False)
    doc = metrics(acc, "test", resamples=200)
    assert doc["bootstrap"]["unit"] == "image" and doc["bootstrap"]["units"] == 8
    assert doc["bootstrap"]["note"].startswith("interval over images: the dataset has no clip ids")
    assert doc["ci95"]["mean"]["iou"] is not None and doc["ci95"]["mean"]["auc"] is None  # label maps: no AUC
    assert "over 8 images (the dataset has no clip ids; small split)" in headline(doc)
    off = metrics(acc, "test", resamples=0)
    assert off["ci95"] is None and "--bootstrap 0" in off["bootstrap"]["note"] and "[" not in headline(off)
    assert off["mean"] == doc["mean"]  # the point estimate does not depend on the bootstrap


def test_the_paper_mean_is_over_bone_ligament_disc_of_a_larger_table():
    seven = ClassTable.from_dict({"name": "seven", "classes": [
        {"id": i, "name": n, "color": [30 * i, 20, 200 - 25 * i]}
        for i, n in enumerate(["background", "bone", "ligament", "disc", "nerve", "fat", "instrument"])]})
    acc = Accumulator(seven, with_scores=False, gallery_size=0)
    truth = np.repeat((np.arange(14) // 2).astype(np.uint8)[None], 4, axis=0)
    pred = truth.copy()
    pred[:, 8:10] = 0  # nerve (id 4) missed: the tissue mean drops, the paper's three do not
    for k in range(4):
        acc.add(f"i{k}", f"c{k % 2}", k, truth, pred)
    doc = metrics(acc, "test", resamples=100)
    assert doc["mean_classes"]["mean"] == ["bone", "ligament", "disc", "nerve", "fat", "instrument"]
    assert doc["mean_paper"]["iou"] == 1.0 and doc["mean"]["iou"] == pytest.approx(5 / 6)
    assert doc["ci95"]["mean_paper"]["iou"] == [1.0, 1.0]
    assert "bone/ligament/disc IoU 1.000 [1.000, 1.000]" in headline(doc)
    other = ClassTable.from_dict({"name": "x", "classes": [{"id": 0, "name": "bg", "color": [0, 0, 0]},
                                                           {"id": 1, "name": "tool", "color": [255, 0, 0]}]})
    acc = Accumulator(other, with_scores=False, gallery_size=0)
    acc.add("a", "c", 0, np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    doc = metrics(acc, "test")
    assert "mean_paper" not in doc and "mean_paper" not in doc["mean_classes"]
