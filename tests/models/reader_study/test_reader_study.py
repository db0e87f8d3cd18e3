"""The reader study: conclusions derived from the numbers, and the command end to end."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.cli import main
from models.core.classes import default_classes
from models.core.imageio import read_label, write_label
from models.reader_study.analysis import analyse
from models.reader_study.study import Reader, StudyScores

LUMBAR = default_classes()


def study(means: dict[str, float], sd: float, n: int = 40, seed: int = 0, model: str = "model",
          simulated: bool = False) -> StudyScores:
    """Per-image tissue IoUs whose mean over images is exactly `means[name]`."""
    rng = np.random.default_rng(seed)
    names = list(means)
    iou = np.empty((len(names), n, len(LUMBAR)))
    for r, name in enumerate(names):
        noise = rng.normal(0, sd, n)
        values = means[name] + noise - noise.mean()
        iou[r] = values[:, None]
    readers = [Reader(nm, None, is_model=nm == model, simulated=simulated and nm != model) for nm in names]
    m = np.tile(np.eye(len(LUMBAR), dtype=np.int64) * 10, (len(names), 1, 1))
    return StudyScores(LUMBAR, readers, [f"i{k}" for k in range(n)], iou, 2 * iou / (1 + iou), m)


@pytest.mark.unit
def test_paper_like_numbers_give_the_paper_like_conclusion():
    f = analyse(study({"junior": 0.563, "intermediate": 0.595, "model": 0.610, "senior": 0.619}, sd=0.15))
    text = " ".join(f.conclusion)
    assert [r.name for r in f.rows] == ["senior", "model", "intermediate", "junior"]
    assert "senior 61.9% > model 61.0% > intermediate 59.5% > junior 56.3%" in text
    assert not f.tests["iou"].friedman.significant()
    assert "no significant difference between the readers" in text
    assert "The model ranks 2 of 4" in text and "does not differ significantly from" in text
    assert "SIMULATED" not in text


@pytest.mark.unit
def test_clear_differences_are_reported_with_direction():
    f = analyse(study({"junior": 0.50, "senior": 0.80, "model": 0.70}, sd=0.02, simulated=True))
    text = " ".join(f.conclusion)
    assert f.tests["iou"].friedman.significant() and "the readers differ significantly" in text
    assert all(p.significant() for p in f.tests["iou"].pairs)
    assert "significantly better than junior (SIMULATED)" in text
    assert "significantly worse than senior (SIMULATED)" in text
    assert text.startswith("SIMULATED readers")


@pytest.mark.unit
def test_conclusion_follows_the_data_not_a_template():
    a = " ".join(analyse(study({"r1": 0.6, "r2": 0.61, "model": 0.62}, sd=0.15)).conclusion)
    b = " ".join(analyse(study({"r1": 0.9, "r2": 0.61, "model": 0.3}, sd=0.02)).conclusion)
    assert a != b and "ranks 1 of 3" in a and "ranks 3 of 3" in b


@pytest.fixture(scope="module")
def readers(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("readers") / "sim"
    assert main(["simulate-readers", "--data", str(tiny_synth), "--out", str(out), "--seed", "1"]) == 0
    return out


def _args(readers, *extra):
    return [a for lv in ("junior", "intermediate", "senior") for a in ("--reader", f"{lv}={readers / lv}")] + list(extra)


@pytest.mark.slow
def test_study_with_the_model(tiny_synth, tiny_model_dir, readers, tmp_path):
    out = tmp_path / "study"
    assert main(["reader-study", "--reference", str(tiny_synth), "--model", str(tiny_model_dir), "--out", str(out),
                 *_args(readers)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["images"] == 4 and len(res["readers"]) == 4
    means = [r["mean"]["iou"] for r in res["readers"]]
    assert means == sorted(means, reverse=True)  # ranked best first
    assert res["ranking_by_mean_iou"][-1] == "model"  # an untrained net is worse than any simulated reader
    assert {r["name"]: r["simulated"] for r in res["readers"]} == {"junior": True, "intermediate": True,
                                                                   "senior": True, "model": False}
    assert len(res["tests"]["iou"]["pairs"]) == 6 and res["tests"]["iou"]["friedman"]["p"] is not None
    page = (out / "report.html").read_text()
    assert "SIMULATED READERS" in page and "junior (SIMULATED)" in page
    assert res["conclusion"][0].startswith("SIMULATED readers")
    for name in ("box_iou.png", "box_dice.png", "box_iou_bone.png", "per_image.csv"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_label_folder_reference_and_a_perfect_prediction(tiny_synth, tmp_path, capsys):
    labels = tiny_synth / "labels"  # all 6 images, named by stem like the images
    sim = tmp_path / "sim"
    assert main(["simulate-readers", "--data", str(tiny_synth), "--split", "all", "--out", str(sim)]) == 0
    out = tmp_path / "study"
    assert main(["reader-study", "--reference", str(labels), "--pred", str(labels), "--out", str(out),
                 *_args(sim)]) == 0
    res = json.loads((out / "results.json").read_text())
    top = res["readers"][0]
    assert top["name"] == "model" and top["mean"]["iou"] == 1.0 and top["pooled_iou"] == 1.0
    assert res["images"] == 6
    # A label folder has no images to run a model on.
    assert main(["reader-study", "--reference", str(labels), "--model", "whatever", "--out", str(tmp_path / "o"),
                 *_args(sim)]) == 1
    assert "--model needs a dataset folder" in capsys.readouterr().err


def _error(capsys) -> str:
    lines = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert len(lines) == 1 and lines[0].startswith("endospine-model: error: "), lines
    return lines[0]


@pytest.mark.slow
def test_bad_inputs(tiny_synth, readers, tmp_path, capsys):
    broken = tmp_path / "senior"
    shutil.copytree(readers / "senior", broken)
    victim = sorted(broken.glob("*.png"))[0]
    base = ["reader-study", "--reference", str(tiny_synth), "--pred", str(readers / "junior"),
            "--out", str(tmp_path / "o")]
    victim.unlink()
    assert main(base + ["--reader", f"senior={broken}"]) == 1
    assert str(victim) in _error(capsys)
    write_label(victim, np.zeros((10, 12), np.uint8))
    assert main(base + ["--reader", f"senior={broken}"]) == 1
    assert str(victim) in (err := _error(capsys)) and "12x10" in err
    lab = read_label(readers / "senior" / victim.name)
    lab[0, 0] = 9
    write_label(victim, lab)
    assert main(base + ["--reader", f"senior={broken}"]) == 1
    assert "[9]" in _error(capsys)
    assert main(base + ["--reader", f"model={readers / 'senior'}"]) == 1
    assert "'model'" in _error(capsys)
    assert main(base + ["--reader", "senior"]) == 1
    assert "NAME=DIR" in _error(capsys)
    assert main(["reader-study", "--reference", str(tiny_synth / "labels"), "--model", "whatever",
                 "--out", str(tmp_path / "o"), "--reader", f"s={readers / 'senior'}"]) == 1
    assert "missing label" in _error(capsys)  # the label folder has 6 images, the readers 4
    assert not (tmp_path / "o").exists()
