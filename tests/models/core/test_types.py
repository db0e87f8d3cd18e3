from __future__ import annotations

import numpy as np
import pytest

from models.core.types import Frame, Result


@pytest.mark.unit
def test_frame_checks_image():
    f = Frame(0, 1.0, 0.0, np.zeros((4, 6, 3), np.uint8))
    assert f.size == (6, 4)
    with pytest.raises(ValueError):
        Frame(0, 1.0, 0.0, np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError):
        Frame(0, 1.0, 0.0, np.zeros((4, 6, 3), np.float32))


@pytest.mark.unit
def test_result_checks_mask_and_totals():
    r = Result(3, np.zeros((4, 4), np.uint8), "m", {"predict": 10.0, "preprocess": 2.5})
    assert r.total_ms == 12.5
    with pytest.raises(ValueError):
        Result(3, np.zeros((4, 4, 1), np.uint8), "m")


def test_own_returns_a_frame_whose_pixels_are_its_own_as_it_is():
    frame = Frame(0, 0.0, None, np.zeros((4, 6, 3), np.uint8))
    assert frame.own() is frame              # nothing lent: no copy
