"""Evaluation figures on tiny hand-made label maps with known answers."""
from __future__ import annotations

import json
import math
import tracemalloc

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.core.classes import ClassTable
from models.evaluate.accumulate import Accumulator, frame_scores
from models.evaluate.gallery import Gallery
from models.evaluate.summary import clip_table, image_table, metrics

pytestmark = pytest.mark.unit
# The four-class lumbar table these hand-made maps are drawn in (the default table has grown since).
LUMBAR = ClassTable.from_dict({"name": "lumbar-4", "classes": [
    {"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "bone", "color": [64, 170, 255]},
    {"id": 2, "name": "ligament", "color": [0, 220, 120]}, {"id": 3, "name": "disc", "color": [200, 80, 255]}]})
SIX = {"accuracy", "precision", "recall", "iou", "dice", "auc"}


def bands(h: int = 8, w: int = 16) -> np.ndarray:
    """Four vertical bands: classes 0, 1, 2, 3, each w/4 wide."""
    return np.repeat((np.arange(w) * 4 // w).astype(np.uint8)[None], h, axis=0)


def onehot_scores(truth: np.ndarray, labels: np.ndarray, p: float = 0.9) -> np.ndarray:
    """(C, n) probabilities that put p on the answer's class, spread the rest (valid pixels, row-major)."""
    valid = truth != 255
    a = labels[valid].astype(int)
    s = np.full((4, a.size), (1 - p) / 3, np.float32)
    s[a, np.arange(a.size)] = p
    return s


def test_perfect_prediction():
    acc = Accumulator(LUMBAR)
    t = bands()
    acc.add("a", "c0", 0, t, t.copy(), onehot_scores(t, t))
    doc = metrics(acc, "test")
    for name in LUMBAR.names:
        assert doc["per_class"][name] == {k: 1.0 for k in SIX}
    assert doc["mean"] == {k: 1.0 for k in SIX} and doc["pixel_accuracy"] == 1.0
    assert doc["confusion_matrix"] == [[32, 0, 0, 0], [0, 32, 0, 0], [0, 0, 32, 0], [0, 0, 0, 32]]


def test_all_wrong():
    acc = Accumulator(LUMBAR)
    t = bands()
    wrong = ((t + 1) % 4).astype(np.uint8)
    acc.add("a", "c0", 0, t, wrong, onehot_scores(t, wrong))
    doc = metrics(acc, "test")
    for name in LUMBAR.names:
        d = doc["per_class"][name]
        # TP 0, FN 32 (its band went to the next class), FP 32 (the previous band came here), TN 64 of 128
        assert (d["iou"], d["dice"], d["precision"], d["recall"]) == (0.0, 0.0, 0.0, 0.0)
        assert d["accuracy"] == 0.5
        # positives all score 0.1/3; negatives: 32 score 0.9, 64 tie with the positives -> 0.5 * 64/96
        assert d["auc"] == pytest.approx(1 / 3, abs=1e-3)
    assert doc["pixel_accuracy"] == 0.0 and doc["mean"]["iou"] == 0.0


def test_class_absent_is_null_and_left_out_of_the_mean():
    acc = Accumulator(LUMBAR)
    t = np.where(bands() == 3, 2, bands()).astype(np.uint8)  # no disc anywhere
    pred = t.copy()
    pred[:, 4] = 0  # one bone column (8 px of 32) predicted as background
    acc.add("a", "c0", 0, t, pred, onehot_scores(t, pred))
    doc = metrics(acc, "test")
    disc = doc["per_class"]["disc"]
    assert disc["iou"] is None and disc["dice"] is None and disc["auc"] is None
    assert disc["accuracy"] == 1.0  # every pixel is a true negative
    bone = doc["per_class"]["bone"]
    assert bone["iou"] == pytest.approx(24 / 32) and bone["recall"] == pytest.approx(24 / 32)
    assert bone["precision"] == 1.0
    assert doc["mean"]["iou"] == pytest.approx((24 / 32 + 1.0) / 2)  # bone and ligament only
    bg_iou = 32 / 40
    assert doc["mean_with_background"]["iou"] == pytest.approx((bg_iou + 24 / 32 + 1.0) / 3)
    json.dumps(doc, allow_nan=False)  # nulls, never NaN, in metrics.json


def test_ignore_pixels_never_count():
    acc = Accumulator(LUMBAR)
    t = bands()
    t[:4] = 255  # top half unlabeled
    pred = bands()
    pred[:4] = 3  # whatever is predicted there must not matter
    row = acc.add("a", "c0", 0, t, pred, onehot_scores(t, pred))
    doc = metrics(acc, "test")
    assert row.valid_pixels == 64 == doc["valid_pixels"] == sum(map(sum, doc["confusion_matrix"]))
    assert doc["per_class"]["disc"]["precision"] == 1.0 and doc["pixel_accuracy"] == 1.0


def test_metrics_json_has_the_issue_shape():
    acc = Accumulator(LUMBAR, with_scores=False)
    acc.add("a", "c0", 0, bands(), bands())
    doc = metrics(acc, "val")
    assert {"classes", "split", "images", "per_class", "mean", "mean_with_background", "pixel_accuracy",
            "confusion_matrix"} <= set(doc)
    assert doc["classes"] == LUMBAR.names and doc["split"] == "val" and doc["images"] == 1
    assert set(doc["per_class"]) == set(LUMBAR.names)
    assert all(set(v) == SIX for v in doc["per_class"].values())
    assert set(doc["mean"]) == SIX == set(doc["mean_with_background"])
    assert doc["mean"]["auc"] is None and doc["roc_auc"]["available"] is False  # label maps: no AUC
    assert all(isinstance(v, int) for r in doc["confusion_matrix"] for v in r)


def test_auc_accumulated_over_images_matches_sklearn_on_all_pixels():
    rng = np.random.default_rng(0)
    acc = Accumulator(LUMBAR)
    truths, scores = [], []
    for k in range(3):
        t = rng.integers(0, 4, (12, 10)).astype(np.uint8)
        t[rng.random(t.shape) < 0.2] = 255
        logits = rng.normal(0, 1.5, (12, 10, 4))
        logits[..., :] += 2.0 * np.eye(4)[np.where(t == 255, 0, t)]
        p = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
        s = p[t != 255].astype(np.float32)
        acc.add(f"i{k}", "c0", k, t, p.argmax(axis=2).astype(np.uint8), s.T)
        truths.append(t[t != 255])
        scores.append(s)
    truth, score = np.concatenate(truths), np.concatenate(scores)
    doc = metrics(acc, "test")
    for c, name in enumerate(LUMBAR.names):
        assert doc["per_class"][name]["auc"] == pytest.approx(roc_auc_score(truth == c, score[:, c]), abs=1e-3)


def test_frame_scores_place_box_probabilities_on_the_right_pixels():
    h, w = 6, 10
    box = (3, 1, 4, 4)  # x, y, w, h
    probs = np.zeros((4, 4, 4), np.float32)
    probs[2] = np.arange(16, dtype=np.float32).reshape(4, 4) / 100  # a distinct value per box pixel
    probs[0] = 1 - probs[2]
    truth = np.zeros((h, w), np.uint8)
    truth[0, :] = 255
    declined = np.zeros((h, w), bool)
    declined[2, 4] = True  # e.g. outside the field-of-view circle
    s = frame_scores(probs, box, declined, truth != 255)
    assert s.shape == (4, int((truth != 255).sum()))
    full = np.full((h, w), -1.0)
    full[truth != 255] = s[2]
    assert full[1, 3] == pytest.approx(0.00) and full[4, 6] == pytest.approx(0.15)
    assert full[2, 5] == pytest.approx(0.06)
    assert full[2, 4] == 0.0 and full[5, 0] == 0.0 and full[1, 0] == 0.0  # declined / outside box: background
    bg = np.full((h, w), -1.0)
    bg[truth != 255] = s[0]
    assert bg[2, 4] == 1.0 and bg[3, 9] == 1.0


def test_frame_scores_resize_like_the_runtime():
    """Probabilities on a coarse grid are brought to the box bilinearly (argmax = runtime labels)."""
    from models.core.runtime.postprocess import labels_at

    rng = np.random.default_rng(1)
    probs = rng.random((4, 5, 5)).astype(np.float32)
    probs /= probs.sum(axis=0)
    box = (0, 0, 20, 20)
    s = frame_scores(probs, box, np.zeros((20, 20), bool), np.ones((20, 20), bool))
    labels = labels_at(probs, (20, 20), {})
    np.testing.assert_array_equal(s.argmax(axis=0).reshape(20, 20), labels)
    together = cv2.resize(np.ascontiguousarray(probs.transpose(1, 2, 0)), (20, 20), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(s.T.reshape(20, 20, 4), together)  # the runtime's values, bit for bit


def test_per_image_and_per_clip_tables():
    acc = Accumulator(LUMBAR, with_scores=False)
    t = bands()
    half = t.copy()
    half[:, 4:8] = 0  # bone missed entirely
    acc.add("good", "c1", 0, t, t)
    acc.add("bad", "c2", 0, t, half)
    acc.add("good2", "c1", 1, t, t)
    header, rows = image_table(acc)
    by = {r[0]: dict(zip(header, r)) for r in rows}
    assert by["good"]["iou_mean"] == 1.0
    assert by["bad"]["iou_bone"] == 0.0 and by["bad"]["iou_mean"] == pytest.approx(2 / 3)
    ch, crows = clip_table(acc)
    clips = {r[0]: dict(zip(ch, r)) for r in crows}
    assert clips["c1"]["images"] == 2 and clips["c1"]["iou_mean"] == 1.0
    assert crows[0][0] == "c2"  # worst clip first


def test_gallery_is_bounded_one_per_clip_and_builds_only_kept_thumbnails():
    calls = []
    g = Gallery(LUMBAR, n=2, tile=32)
    t = bands()

    def pictures(k):
        def make():
            calls.append(k)
            return np.zeros(t.shape + (3,), np.uint8), t, t
        return make

    offers = [(0.5, "a"), (0.9, "b"), (0.1, "c"), (0.6, "d"), (0.95, "b"), (0.55, "e"), (0.52, "f"), (0.05, "c"),
              (0.92, "g")]
    for k, (score, clip) in enumerate(offers):
        g.offer(score, clip, f"img{k}", pictures(k))
    # best: clip b's better frame (img4) replaced img1, then g came in; worst: clip c's worse frame replaced img2
    assert [e.caption for e in g.best()] == ["img4", "img8"]
    assert [e.caption for e in g.worst()] == ["img7", "img0"]
    assert not {5, 6} & set(calls)  # neither among the best nor the worst when offered
    g.offer(math.nan, "z", "nan", pictures(99))
    assert 99 not in calls


def test_memory_stays_flat_with_the_number_of_images():
    """Images and probabilities are not kept: 50 more 128x128 images add only their small rows."""
    rng = np.random.default_rng(2)
    t = rng.integers(0, 4, (128, 128)).astype(np.uint8)
    s = rng.random((4, t.size)).astype(np.float32)  # 256 kB per image if it were kept
    image = np.zeros((128, 128, 3), np.uint8)
    acc = Accumulator(LUMBAR, gallery_size=2)
    for k in range(10):  # fills the gallery (equal scores never displace a kept image)
        acc.add(f"w{k}", f"c{k % 5}", k, t, t, s, lambda: image)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for k in range(50):
            acc.add(f"i{k}", f"c{k % 5}", k, t, t, s, lambda: image)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 200_000, grown  # 50 x (probabilities 256 kB + image 48 kB) would be 15 MB
