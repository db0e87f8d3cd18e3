"""Simulated readers: each error kind on its own, skill ordering, determinism, and the marked folders."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.classes import default_classes
from models.core.imageio import read_label
from models.metrics import ConfusionMatrix, mean_iou
from models.reader_study.simulate import SKILLS, Skill, perturb

LUMBAR = default_classes()


def scene(size: int = 512) -> np.ndarray:
    """A field-of-view disc (ignore outside) with bone, a ligament band, a thin ligament strand and disc."""
    lab = np.zeros((size, size), np.uint8)
    s = size / 512
    lab[int(60 * s):int(250 * s), int(60 * s):int(300 * s)] = 1
    lab[int(280 * s):int(360 * s), int(80 * s):int(450 * s)] = 2
    lab[int(100 * s):int(400 * s), int(400 * s):int(404 * s)] = 2  # 4 px strand
    lab[int(380 * s):int(470 * s), int(150 * s):int(330 * s)] = 3
    yy, xx = np.mgrid[0:size, 0:size]
    lab[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (0.48 * size) ** 2] = 255
    return lab


def iou_vs(reference: np.ndarray, answer: np.ndarray) -> float:
    cm = ConfusionMatrix(len(LUMBAR))
    cm.update(reference, np.where(answer == 255, 0, answer).astype(np.uint8))
    return mean_iou(cm.matrix)


@pytest.mark.unit
def test_ignore_is_kept_and_ids_stay_valid():
    ref = scene()
    out = perturb(ref, SKILLS["junior"], LUMBAR, np.random.default_rng(0))
    np.testing.assert_array_equal(out == 255, ref == 255)
    assert set(np.unique(out)) <= set(range(len(LUMBAR))) | {LUMBAR.ignore_index}
    assert not np.array_equal(out, ref)


@pytest.mark.unit
def test_missed_thin_structures_only():
    ref = scene()
    out = perturb(ref, Skill(boundary_px=0, smoothness_px=10, thin_px=7, confusion=0, spread=0), LUMBAR,
                  np.random.default_rng(0))
    assert (out[100:270, 400:404] == 0).all() and (out[370:400, 400:404] == 0).all()  # the 4 px strand is missed
    assert (out[300:340, 100:430] == 2).all()  # the wide ligament band survives
    assert ((ref == 1) == (out == 1)).mean() > 0.999  # a big rectangle loses only its corners


@pytest.mark.unit
def test_class_confusion_only():
    ref = scene()
    out = perturb(ref, Skill(boundary_px=0, smoothness_px=10, thin_px=0, confusion=1.0, spread=0), LUMBAR,
                  np.random.default_rng(0))
    for c in (1, 2, 3):
        region = ref == c
        assert not (out[region] == c).any()           # every region took another tissue's label
        assert set(np.unique(out[region])) <= {t.id for t in LUMBAR.foreground}
    np.testing.assert_array_equal(out == 0, ref == 0)


@pytest.mark.unit
def test_boundary_noise_moves_borders_by_a_few_pixels():
    ref = scene()
    out = perturb(ref, Skill(boundary_px=3, smoothness_px=12, thin_px=0, confusion=0, spread=0), LUMBAR,
                  np.random.default_rng(1))
    changed = (out != ref) & (ref != 255)
    assert 0.005 < changed.mean() < 0.1
    assert (out[120:190, 120:240] == 1).all()  # the inside of the bone block stays bone


@pytest.mark.unit
def test_skill_levels_are_ordered_on_average():
    ref = scene()
    means = {lv: np.mean([iou_vs(ref, perturb(ref, SKILLS[lv], LUMBAR, np.random.default_rng(s)))
                          for s in range(8)]) for lv in SKILLS}
    assert means["senior"] > means["intermediate"] > means["junior"] > 0.4, means


@pytest.mark.slow
def test_simulate_readers_command(tiny_synth, tmp_path):
    out = tmp_path / "readers"
    assert main(["simulate-readers", "--data", str(tiny_synth), "--out", str(out), "--seed", "3"]) == 0
    again = tmp_path / "again"
    assert main(["simulate-readers", "--data", str(tiny_synth), "--out", str(again), "--seed", "3",
                 "--levels", "junior"]) == 0
    for level in ("junior", "intermediate", "senior"):
        card = yaml.safe_load((out / level / "reader.yaml").read_text())
        assert card["simulated"] is True and card["name"] == level and card["images"] == 4
        assert len(list((out / level).glob("*.png"))) == 4
    for png in (out / "junior").glob("*.png"):
        np.testing.assert_array_equal(read_label(png), read_label(again / "junior" / png.name))  # same seed
    assert main(["simulate-readers", "--data", str(tiny_synth), "--out", str(tmp_path / "x"),
                 "--levels", "expert"]) == 1
