"""The runtime and the training loader apply an endoscope profile through the same FramePrep."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.imageio import write_image, write_label
from models.core.optics.profile import ColorSection, FovSection, Profile, save_profile
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.runtime.preprocess import Preprocess
from models.dataset import Item


def _frame(w=320, h=240, cx=170, cy=118, r=90):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (160, 110, 80)
    return img


def test_fixed_circle_and_color_from_a_profile(tiny_model_dir, tmp_path):
    path = save_profile(Profile(fov=FovSection("fixed", (320, 240), (150.0, 120.0), 100.0),
                                color=ColorSection("gains", (1.2, 1.0, 0.8))), tmp_path / "p.yaml")
    rt = SegmentationRuntime(tiny_model_dir, RuntimeSettings(profile=str(path)))
    labels, box, _ = rt.segment(_frame())          # the frame's own disc is elsewhere: the profile rules
    assert box == (50, 20, 200, 200) and labels.shape == (200, 200)
    assert labels[0, 0] == 255 and labels[100, 100] != 255
    assert rt.prep.color is not None


def test_no_profile_is_the_default_and_fov_off_overrides(tiny_model_dir, tmp_path):
    rt = SegmentationRuntime(tiny_model_dir)
    _, box, _ = rt.segment(_frame())
    assert rt.circle is not None and abs(rt.circle.r - 90) < 1 and box == rt.circle.box(320, 240)
    path = save_profile(Profile(fov=FovSection("fixed", (320, 240), (150.0, 120.0), 100.0)), tmp_path / "p.yaml")
    off = SegmentationRuntime(tiny_model_dir, RuntimeSettings(profile=str(path), fov="off"))
    _, box, _ = off.segment(_frame())
    assert off.circle is None and box == (40, 0, 240, 240)   # the manifest's centered square


def test_bad_profile_is_one_line_naming_it(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: endospine-profile/1\ncolor: {mode: gains, gains: [2, 2]}\n")
    with pytest.raises(EndoSpineError, match=f"{bad}: color.gains"):
        SegmentationRuntime(tiny_model_dir, RuntimeSettings(profile=str(bad)))


@pytest.mark.unit
def test_training_views_use_the_profile(tmp_path):
    from models.core.runtime.frameview import FramePrep
    from models.train.data import load_view

    write_image(tmp_path / "a.png", _frame())
    write_label(tmp_path / "a_label.png", np.full((240, 320), 3, np.uint8))
    item = Item("a.png", "a_label.png", "clip", 0)
    pre = Preprocess((128, 128))
    plain, plain_label = load_view(tmp_path, item, pre)
    assert plain_label.shape[0] == plain_label.shape[1] and 179 <= plain_label.shape[0] <= 183   # the disc's square
    assert plain_label[0, 0] == 255 and plain_label[90, 90] == 3                                     # outside: ignore
    warm = FramePrep(Profile(color=ColorSection("gains", (1.0, 1.0, 0.5))), pre, independent=True)
    image, _ = load_view(tmp_path, item, pre, warm)
    assert image[90, 90, 2] < plain[90, 90, 2] - 15 and image[90, 90, 0] == plain[90, 90, 0]
