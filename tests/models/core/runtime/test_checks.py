"""The checks every runtime output passes in the worker, as a table of cases."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.runtime.checks import check_box, check_mask, check_probabilities

pytestmark = pytest.mark.unit


def _probs(c=4, h=6, w=5, value=0.25):
    return np.full((c, h, w), value, np.float32)


def _with(a, idx, v):
    a = a.copy()
    a[idx] = v
    return a


GOOD_BOX = (8, 0, 48, 48)


@pytest.mark.parametrize("probs, box, why", [
    (_with(_probs(), (1, 2, 2), np.nan), GOOD_BOX, "non-finite"),
    (_with(_probs(), (0, 0, 0), -np.inf), GOOD_BOX, "non-finite"),
    (_with(_probs(), (3, 5, 4), 1.5), GOOD_BOX, "outside [0, 1]"),
    (_probs(c=3), GOOD_BOX, "expected (4, h, w)"),
    (_probs()[0], GOOD_BOX, "expected (4, h, w)"),
    (_probs(h=0), GOOD_BOX, "expected (4, h, w)"),
    ([[0.5]], GOOD_BOX, "shape list"),
    (_probs().astype(np.int32), GOOD_BOX, "dtype int32"),
    (_probs(), (20, 0, 48, 48), "not inside the 64x48 frame"),
    (_probs(), (0, -1, 10, 10), "not inside"),
    (_probs(), (0, 0, 0, 10), "not inside"),
    (_probs(), (0, 0, 10.5, 10), "not inside"),
    (_probs(), (0, 0, 10), "not four integers"),
    (_probs(), None, "not four integers"),
])
def test_bad_probabilities_and_boxes_are_refused(probs, box, why):
    with pytest.raises(EndoSpineError, match=None) as err:
        check_probabilities(probs, box, 4, (64, 48))
    assert why in str(err.value) and "\n" not in str(err.value)


def test_good_output_passes():
    check_probabilities(_with(_probs(), (0, 0, 0), 1.0005), GOOD_BOX, 4, (64, 48))  # rounding overshoot
    check_probabilities(_probs().astype(np.float16), (0, 0, 64, 48), 4, (64, 48))
    check_box(np.array([0, 0, 64, 48]), (64, 48))
    check_mask(np.array([[0, 3], [255, 1]], np.uint8), (2, 2), 4, 255)


@pytest.mark.parametrize("mask, why", [
    (np.zeros((3, 2), np.uint8), "expected (2, 2) uint8"),
    (np.zeros((2, 2), np.int64), "expected (2, 2) uint8"),
    (np.array([[0, 4], [1, 1]], np.uint8), "unknown class ids [4]"),
    (np.array([[0, 254], [9, 1]], np.uint8), "unknown class ids [9, 254]"),
    (None, "expected (2, 2) uint8"),
])
def test_bad_masks_are_refused(mask, why):
    with pytest.raises(EndoSpineError) as err:
        check_mask(mask, (2, 2), 4, 255)
    assert why in str(err.value)
