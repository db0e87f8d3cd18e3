"""The post-processing stage: smoothing, thresholds, mask size, field of view and output checks."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.optics.fov import Circle
from models.core.runtime.frameview import View
from models.core.runtime.postprocess import (
    PostSettings,
    PostStage,
    UnsureMarks,
    labels_at,
    mask_size,
    paste_into_frame,
    segment_frame,
    set_where,
    view_labels,
)
from models.core.types import UNSURE_BIT

pytestmark = pytest.mark.unit

CLASSES = default_classes()  # background, bone, ligament, disc, ...; ignore 255
N = len(CLASSES)             # the model's output planes: one per class
FRAME = (64, 48)
BOX = (8, 0, 48, 48)


def _probs(cls: int = 1, c: int = N, h: int = 6, w: int = 6, p: float = 1.0) -> np.ndarray:
    """Probability p for class `cls` everywhere, the rest spread over the other classes."""
    probs = np.full((c, h, w), (1.0 - p) / (c - 1), np.float32)
    probs[cls] = p
    return probs


def _stage(**kw) -> PostStage:
    return PostStage(CLASSES, PostSettings(**kw))


# -- labels --------------------------------------------------------------------------------------
def test_labels_upsample_smoothly_and_thresholds():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0] = 1.0
    probs[:, :, 2:] = 0
    probs[1, :, 2:] = 0.55
    probs[2, :, 2:] = 0.45
    labels = labels_at(probs, (16, 16), {})
    assert labels.shape == (16, 16) and labels.dtype == np.uint8
    assert (labels[:, :6] == 0).all() and (labels[:, 10:] == 1).all()
    strict = labels_at(probs, (16, 16), {1: 0.6})
    assert (strict[:, 10:] == 0).all()  # class 1 under its threshold falls back to background


def _labels_by_definition(probs, size, thresholds, unsure=None):
    """labels_at's result as its docstring defines it, the slow obvious way: every plane
    resized, numpy's argmax (the first of equal maxima), boolean-indexed writes."""
    planes = np.stack([cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_LINEAR)
                       for p in probs])
    labels = planes.argmax(axis=0).astype(np.uint8)
    for cid, t in thresholds.items():
        labels[(labels == cid) & (planes[cid] < t)] = 0
    if unsure is not None:
        top = cv2.resize(np.ascontiguousarray(probs.max(axis=0)), size, interpolation=cv2.INTER_LINEAR)
        labels[top < unsure.below] |= UNSURE_BIT
        for pid, floor in unsure.protect:
            labels[(planes[pid] >= floor) & ((labels & 0x7F) != pid)] = pid | UNSURE_BIT
    return labels


@pytest.mark.parametrize("seed", range(6))
def test_labels_are_the_argmax_of_the_resized_planes(seed):
    """The fast label writes (uint8 arithmetic) give exactly the obvious computation's labels,
    ties included (coarse probability steps make equal maxima common), with thresholds,
    unsure marks and a protected class."""
    rng = np.random.default_rng(seed)
    c, h, w = 7, int(rng.integers(3, 30)), int(rng.integers(3, 30))
    probs = rng.dirichlet(np.full(c, 0.4), size=(h, w)).transpose(2, 0, 1).astype(np.float32)
    if seed % 2:
        probs = np.round(probs * 8) / 8  # many ties
    size = (int(rng.integers(2, 80)), int(rng.integers(2, 80)))
    thresholds = {int(k): float(rng.uniform(0.2, 0.7)) for k in rng.choice(c, 2, replace=False)}
    marks = UnsureMarks(0.55, ((4, 0.2),))
    for th, un in (({}, None), (thresholds, None), ({}, marks), (thresholds, marks)):
        assert np.array_equal(labels_at(probs, size, th, unsure=un), _labels_by_definition(probs, size, th, un))


@pytest.mark.parametrize("value", [0, 7, 132, 255])
def test_set_where_is_a_boolean_indexed_write(value):
    rng = np.random.default_rng(value)
    labels = rng.integers(0, 256, (37, 53), np.uint8)
    where = rng.random((37, 53)) < 0.4
    expected = labels.copy()
    expected[where] = value
    set_where(labels, where, value)
    assert np.array_equal(labels, expected)


def test_the_field_of_view_is_ignore_at_every_frame_of_a_still_circle():
    """The outside of a circle that stays put is worked out once (cached) and read-only: the
    second frame's labels are as right as the first's, and later frames cannot change it."""
    circle = Circle(24.0, 24.0, 20.0)
    view = View(BOX, BOX, circle, None)
    outside = circle.outside(BOX, (24, 24))
    for cls in (1, 3):
        labels = view_labels(_probs(cls), view, (24, 24), {}, 255)
        assert (labels[outside] == 255).all() and (labels[~outside] == cls).all()


def test_stage_thresholds_per_class():
    probs = _probs(cls=2, p=0.5)
    assert (_stage()(probs, BOX, FRAME) == 2).all()
    assert (_stage(thresholds=((2, 0.6),))(probs, BOX, FRAME) == 0).all()
    assert (_stage(thresholds=((1, 0.9),))(probs, BOX, FRAME) == 2).all()  # another class's threshold


def test_paste_into_frame():
    labels = np.full((2, 2), 3, np.uint8)
    full = paste_into_frame(labels, (1, 0, 2, 2), (4, 2))
    assert full.tolist() == [[255, 3, 3, 255], [255, 3, 3, 255]]
    assert paste_into_frame(labels, (0, 0, 2, 2), (2, 2)) is labels


def test_outside_the_field_of_view_is_ignore():
    view = View(BOX, BOX, Circle(32.0, 24.0, 20.0), None)
    labels = _stage()(_probs(), BOX, FRAME, view=view)
    assert labels[0, 0] == 255 and labels[24, 24] == 1
    other = View((0, 0, 48, 48), (0, 0, 48, 48), Circle(24.0, 24.0, 20.0), None)
    assert (_stage()(_probs(), BOX, FRAME, view=other) == 1).all()  # another frame's view: not applied


# -- mask size -----------------------------------------------------------------------------------
@pytest.mark.parametrize("box, cap, size", [((0, 0, 1080, 1080), 768, (768, 768)), ((0, 0, 300, 200), 768, (300, 200)),
                                            ((5, 5, 2000, 1000), 500, (500, 250)), ((5, 5, 2000, 1000), None, (2000, 1000))])
def test_mask_size(box, cap, size):
    assert mask_size(box, cap) == size


def test_labels_come_at_mask_size():
    frame, box = (1920, 1080), (420, 0, 1080, 1080)
    assert _stage()(_probs(), box, frame).shape == (512, 512)                  # the live cap
    assert _stage(mask_max_side=100)(_probs(), box, frame).shape == (100, 100)
    assert PostStage(CLASSES, PostSettings.still())(_probs(), box, frame).shape == (1080, 1080)


# -- smoothing -----------------------------------------------------------------------------------
def test_smoothing_blends_consecutive_frames_only():
    stage = _stage(smoothing=0.5, thresholds=((2, 0.6),))   # class 2 shows only above 0.6
    strong, weak = _probs(cls=2, p=1.0), _probs(cls=2, p=0.4)
    assert (stage(strong, BOX, FRAME, frame_id=1) == 2).all()
    assert (stage(weak, BOX, FRAME, frame_id=2) == 2).all()      # 0.5 * 0.4 + 0.5 * 1.0 = 0.7
    assert (stage(weak, BOX, FRAME, frame_id=40) == 0).all()     # a jump (seek, stall): fresh start
    stage(strong, BOX, FRAME, frame_id=41)
    assert (stage(weak, (0, 0, 48, 48), FRAME, frame_id=42) == 0).all()  # another crop: fresh start
    stage(strong, BOX, FRAME, frame_id=43)
    stage.reset()                                                # a new clip
    assert (stage(weak, BOX, FRAME, frame_id=44) == 0).all()
    stage.reset()
    stage(strong, BOX, FRAME)
    assert (stage(weak, BOX, FRAME) == 2).all()                  # no frame ids: one after the other


def test_smoothing_off_and_still_settings():
    for settings in (PostSettings(smoothing=0.0, thresholds=((2, 0.6),)), PostSettings.still(((2, 0.6),))):
        stage = PostStage(CLASSES, settings)
        stage(_probs(cls=2, p=1.0), BOX, FRAME, frame_id=1)
        assert (stage(_probs(cls=2, p=0.4), BOX, FRAME, frame_id=2) == 0).all()


# -- checks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("probs, box, why", [
    (np.where(np.eye(6, dtype=bool)[None], np.nan, _probs()).astype(np.float32), BOX, "non-finite"),
    (_probs(c=2), BOX, f"expected ({N}, h, w)"),                 # a manifest claiming N classes, a 2-class output
    (_probs(c=N + 1), BOX, f"expected ({N}, h, w)"),
    (_probs(), (40, 0, 48, 48), "not inside the 64x48 frame"),
    (_probs() * 2, BOX, "outside [0, 1]"),
])
def test_refused_outputs_raise_one_line(probs, box, why):
    with pytest.raises(EndoSpineError) as err:
        _stage()(probs, box, FRAME, frame_id=1)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_a_refused_output_never_reaches_the_smoothing():
    stage = _stage(smoothing=0.5)
    stage(_probs(cls=1), BOX, FRAME, frame_id=1)
    with pytest.raises(EndoSpineError):
        stage(np.full((N, 6, 6), np.nan, np.float32), BOX, FRAME, frame_id=2)
    # blended with frame 1, not with the refused frame 2: bone 0.5 * 0.2 / (N - 1) + 0.5 * 1 beats disc 0.5 * 0.8
    assert (stage(_probs(cls=3, p=0.8), BOX, FRAME, frame_id=3) == 1).all()


def test_a_wrong_mask_is_refused():
    class WrongGrid:  # a lens whose grid is of another size than asked
        def grid_to_undistorted(self, box, size):
            return np.mgrid[0:size[1] + 1, 0:size[0]].astype(np.float32)[::-1]

    view = View(BOX, BOX, None, WrongGrid())
    with pytest.raises(EndoSpineError, match=r"expected \(48, 48\) uint8"):
        _stage()(_probs(), BOX, FRAME, view=view)


# -- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(smoothing=1.0), dict(smoothing=-0.1), dict(max_gap=0), dict(mask_max_side=0),
                                dict(thresholds=((1, 1.5),)), dict(thresholds=((-1, 0.5),)), dict(thresholds=((1,),))])
def test_bad_settings(kw):
    with pytest.raises(ValueError):
        PostSettings(**kw)


def test_thresholds_must_name_classes_of_the_model():
    with pytest.raises(EndoSpineError, match="class ids \\[7\\]"):
        PostStage(CLASSES, PostSettings(thresholds=((7, 0.5),)))


def test_segment_frame_times_the_stage():
    class Runtime:
        view = None

        def probabilities(self, image):
            return _probs(cls=3), (0, 0, image.shape[1], image.shape[0]), {"preprocess": 1.0, "predict": 2.0}

    labels, box, timings = segment_frame(Runtime(), _stage(), np.zeros((48, 64, 3), np.uint8), 7)
    assert labels.shape == (48, 64) and (labels == 3).all() and box == (0, 0, 64, 48)
    assert set(timings) == {"preprocess", "predict", "postprocess"}
