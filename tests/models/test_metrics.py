from __future__ import annotations

import numpy as np
import pytest

from models.metrics import ConfusionMatrix, frame_mean_iou, mean_iou, scores_from_matrix


@pytest.mark.unit
def test_known_case():
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    s = cm.scores()
    assert s["iou"][1] == pytest.approx(2 / 4)       # TP 2, FP 1, FN 1
    assert s["dice"][1] == pytest.approx(4 / 6)
    assert s["precision"][0] == pytest.approx(1 / 2)
    assert s["recall"][2] == pytest.approx(1 / 2)
    assert s["accuracy"][0] == pytest.approx(5 / 7)  # 7 valid pixels
    assert mean_iou(cm.matrix) == pytest.approx(np.mean([2 / 4, 1 / 3]))


@pytest.mark.unit
def test_absent_class_is_nan_not_perfect():
    m = np.array([[5, 0], [0, 0]])
    s = scores_from_matrix(m)
    assert np.isnan(s["iou"][1]) and s["iou"][0] == 1.0


@pytest.mark.unit
def test_shape_and_range_errors():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError):
        cm.update(np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8))


@pytest.mark.unit
def test_a_stack_of_matrices_scores_like_each_matrix_alone():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 50, (6, 4, 4))
    stack[2] = 0            # no valid pixels at all
    stack[3, 1, :] = 0      # class 1 absent from truth ...
    stack[3, :, 1] = 0      # ... and from the prediction
    batch = scores_from_matrix(stack)
    for i, m in enumerate(stack):
        for key, values in scores_from_matrix(m).items():
            assert batch[key].shape == (6, 4)
            np.testing.assert_array_equal(batch[key][i], values)
    assert np.isnan(batch["iou"][3, 1]) and np.isnan(batch["accuracy"][2]).all()


@pytest.mark.unit
def test_frame_mean_iou_over_the_classes_shown():
    truth = np.array([[0, 0, 1, 1], [1, 1, 255, 255]], np.uint8)
    pred = np.array([[0, 255, 1, 2], [1, 1, 3, 3]], np.uint8)   # 255: outside the model's view -> background
    # class 1 3/4, class 2 only predicted (0/1); class 3 only on ignored pixels: not counted; background not a tissue
    assert frame_mean_iou(truth, pred, 4) == pytest.approx((3 / 4 + 0) / 2)
    assert np.isnan(frame_mean_iou(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), 4))  # no tissue
    assert frame_mean_iou(truth, truth, 4) == 1.0
    assert np.isnan(frame_mean_iou(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8), 4))
    with pytest.raises(ValueError, match="differ in shape"):
        frame_mean_iou(truth, pred[:1], 4)
