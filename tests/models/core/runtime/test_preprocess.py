from __future__ import annotations

import numpy as np
import pytest

from models.core.runtime.preprocess import Preprocess


@pytest.mark.unit
@pytest.mark.parametrize("size, crop, box", [
    ((1920, 1080), "center-square", (420, 0, 1080, 1080)),
    ((500, 700), "center-square", (0, 100, 500, 500)),
    ((512, 512), "center-square", (0, 0, 512, 512)),
    ((640, 480), "none", (0, 0, 640, 480)),
])
def test_crop_box(size, crop, box):
    assert Preprocess((384, 384), crop=crop).crop_box(*size) == box


@pytest.mark.unit
def test_normalize_layout_and_values():
    pre = Preprocess((128, 128))
    img = np.zeros((128, 128, 3), np.uint8)
    img[..., 0] = 255
    x = pre.normalize(img)
    assert x.shape == (1, 3, 128, 128) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    assert x[0, 0].min() == pytest.approx(1.0) and x[0, 1].max() == pytest.approx(-1.0)


@pytest.mark.unit
def test_call_crops_then_resizes():
    pre = Preprocess((128, 128))
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[:, :50] = 255  # outside the centered 200x200 square
    x, box = pre(frame)
    assert box == (50, 0, 200, 200) and x.shape == (1, 3, 128, 128)
    assert x.max() == pytest.approx(-1.0)  # the white band was cropped away


@pytest.mark.unit
@pytest.mark.parametrize("kw", [dict(input_size=(100, 128)), dict(crop="circle"), dict(std=(0, 1, 1)),
                                dict(color_order="BGR")])
def test_bad_settings(kw):
    with pytest.raises(ValueError):
        Preprocess(**kw)


@pytest.mark.unit
def test_round_trip_dict():
    pre = Preprocess((256, 384), crop="none", mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    assert Preprocess.from_dict(pre.to_dict()) == pre
