"""The test figures `export` writes into the manifest: pooled point estimates as before, plus the
number of clips, the mean over the paper's three tissues and 95 % bootstrap intervals over clips,
computed by evaluate's code, so that the manifest and `endospine-model evaluate` agree."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from models.core.classes import default_classes
from models.core.runtime.manifest import MANIFEST, load_manifest
from models.evaluate.accumulate import Accumulator
from models.evaluate.summary import metrics
from models.export import manifest_figures
from models.predict import SplitCounts

SMALL_NOTE = "small split: {n} clips (fewer than 30), the interval is rough"


def figures_pair(rng, n_classes: int, pixels: int = 400, skill: float = 0.7):
    """A truth map and an answer that is right on about `skill` of the pixels (1 x pixels)."""
    truth = rng.integers(0, n_classes, (1, pixels)).astype(np.uint8)
    wrong = rng.random(truth.shape) > skill
    answer = np.where(wrong, rng.integers(0, n_classes, truth.shape), truth).astype(np.uint8)
    return truth, answer


def split(n_clips: int, frames: int = 2, seed: int = 1):
    """The same images counted two ways: a SplitCounts (what export keeps) and evaluate's Accumulator."""
    classes = default_classes()
    n = len(classes)
    rng = np.random.default_rng(seed)
    acc = Accumulator(classes, with_scores=False, gallery_size=0)
    clips, matrices = [], []
    for c in range(n_clips):
        skill = rng.uniform(0.3, 0.95)   # clips differ, so that the intervals have a width
        for f in range(frames):
            truth, answer = figures_pair(rng, n, skill=skill)
            acc.add(f"c{c}_{f}", f"clip{c}", f, truth, answer)
            clips.append(f"clip{c}")
            matrices.append(acc.image_matrices[-1])
    return SplitCounts(list(classes.names), clips, np.stack(matrices)), metrics(acc, "test")


def intervals_hold_their_points(test: dict) -> int:
    """Every figure with a point estimate has an interval around it; returns how many were checked."""
    checked = 0
    for name, figures in [*test["per_class"].items(), ("mean", test["mean"]), ("mean_paper", test["mean_paper"])]:
        ci = test["ci95"]["per_class"][name] if name in test["per_class"] else test["ci95"][name]
        assert set(ci) == {"iou", "dice"}, name
        for key, (lo, hi) in ((k, ci[k] or (None, None)) for k in ("iou", "dice")):
            point = figures[key]
            if point is None:
                continue
            assert lo is not None and lo <= point <= hi, (name, key, lo, point, hi)
            checked += 1
    return checked


def test_manifest_figures_are_evaluates_figures_to_four_decimals():
    counts, doc = split(n_clips=5)
    test = manifest_figures(counts)
    assert (test["images"], test["clips"]) == (10, 5)
    assert test["bootstrap"] == {"unit": "clip", "units": 5, "resamples": 2000, "seed": 0, "confidence": 0.95,
                                 "small_split": True, "note": SMALL_NOTE.format(n=5)}
    assert test["bootstrap"]["note"] == doc["bootstrap"]["note"]
    for name in counts.names:
        for key in ("accuracy", "precision", "recall", "iou", "dice"):
            assert test["per_class"][name][key] == pytest.approx(doc["per_class"][name][key], abs=1e-4)
        for key in ("iou", "dice"):
            assert test["ci95"]["per_class"][name][key] == pytest.approx(doc["ci95"]["per_class"][name][key],
                                                                         abs=1e-4)
    for group in ("mean", "mean_paper"):
        for key in ("iou", "dice"):
            assert test[group][key] == pytest.approx(doc[group][key], abs=1e-4)
            assert test["ci95"][group][key] == pytest.approx(doc["ci95"][group][key], abs=1e-4)
    bone, ligament, disc = (test["per_class"][t]["iou"] for t in ("bone", "ligament", "disc"))
    assert test["mean_paper"]["iou"] == pytest.approx((bone + ligament + disc) / 3, abs=1e-4)
    assert test["mean"]["iou"] != test["mean_paper"]["iou"]  # seven classes: the tissues are more than three
    assert intervals_hold_their_points(test) == 2 * (len(counts.names) + 2)
    lo, hi = test["ci95"]["mean"]["iou"]
    assert hi - lo > 0.01  # clips of different skill: a real width, not a point


def test_thirty_clips_are_not_small_and_one_clip_has_no_clip_interval():
    test = manifest_figures(split(n_clips=30)[0])
    assert test["bootstrap"]["small_split"] is False and test["bootstrap"]["note"] == ""
    one = manifest_figures(split(n_clips=1, frames=3)[0])
    assert one["clips"] == 1 and one["bootstrap"]["unit"] == "image" and one["bootstrap"]["small_split"] is True
    assert "single clip" in one["bootstrap"]["note"]


def test_rounded_and_plain():
    test = manifest_figures(split(n_clips=3)[0])
    for value in [test["mean"]["iou"], *test["ci95"]["mean_paper"]["dice"]]:
        assert type(value) is float and round(value, 4) == value
    assert yaml.safe_load(yaml.safe_dump(test)) == test  # plain YAML types, as the manifest's seal requires


# -- end to end: `endospine-model export RUN --out DIR --test-data DIR` --------------------------
@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory, tiny_synth):
    """A finished training run as `train` leaves it, holding a seeded, untrained network."""
    from models.dataset import load_dataset
    from models.nets import build_model
    from models.nets.layers import paddle
    from models.train.checkpoint import save_weights

    run = tmp_path_factory.mktemp("run") / "run"
    run.mkdir()
    classes = load_dataset(tiny_synth).classes
    (run / "config.yaml").write_text(yaml.safe_dump({"input_size": 128, "augment": {"crop": 128}}))
    (run / "data.yaml").write_text(yaml.safe_dump({"classes": classes.to_dict(), "val": {"dataset": str(tiny_synth)},
                                                   "train": [{"sources": "synthetic"}]}, sort_keys=False))
    (run / "state.yaml").write_text(yaml.safe_dump({"step": 0, "best_step": 0, "best_miou": 0.0}))
    paddle.seed(0)
    net = build_model("liteseg-cpu", len(classes))
    net.eval()
    save_weights(run / "best", net)
    return run


@pytest.mark.slow
def test_export_writes_intervals_over_clips_into_the_manifest(untrained_run, tiny_synth, tmp_path, capsys):
    from models.cli import main
    from models.dataset import load_dataset
    from models.evaluate.run import evaluate

    out = tmp_path / "model"
    assert main(["export", str(untrained_run), "--out", str(out), "--test-data", str(tiny_synth), "--no-gate"]) == 0
    m = load_manifest(out)  # sealed and every value checked
    test = m.metrics["test"]
    items = load_dataset(tiny_synth).split("test")
    assert (test["images"], test["clips"]) == (len(items), len({it.clip for it in items})) == (4, 2)
    assert set(test["mean_paper"]) == set(test["mean"]) == set(test["per_class"]["bone"])
    assert test["bootstrap"]["note"] == SMALL_NOTE.format(n=2)
    assert intervals_hold_their_points(test) > 0
    raw = yaml.safe_load((out / MANIFEST).read_text())["metrics"]["test"]
    assert raw["ci95"]["mean"]["iou"] == test["ci95"]["mean"]["iou"]
    lo, hi = test["ci95"]["mean"]["iou"]
    assert (f"test mean IoU (tissues) {test['mean']['iou']:.4f} [{lo:.4f}, {hi:.4f}], bone/ligament/disc "
            f"{test['mean_paper']['iou']:.4f}") in capsys.readouterr().out

    doc = evaluate(tiny_synth, tmp_path / "report", model_dir=out, gallery=0, progress=False)
    for group in ("mean", "mean_paper"):  # the manifest says what `evaluate` says, to four decimals
        for key in ("iou", "dice"):
            assert test[group][key] == pytest.approx(doc[group][key], abs=1e-4)
            assert test["ci95"][group][key] == pytest.approx(doc["ci95"][group][key], abs=1e-4)
    for name in m.classes.names:
        assert test["ci95"]["per_class"][name]["iou"] == pytest.approx(doc["ci95"]["per_class"][name]["iou"],
                                                                       abs=1e-4)
