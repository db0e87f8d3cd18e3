"""`endospine-model evaluate` end to end on a tiny rendered dataset, and its one-line errors."""
from __future__ import annotations

import base64
import csv
import json
import re
import shutil

import numpy as np
import pytest

from models.cli import main
from models.core.imageio import read_label, write_label
from models.dataset import load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_report(tiny_model_dir, tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report"
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tiny_synth), "--out", str(out),
                 "--gallery", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def predictions(tiny_model_dir, tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "pred"
    assert main(["predict", "--model", str(tiny_model_dir), "--data", str(tiny_synth), "--out", str(out)]) == 0
    return out


def test_report_files_and_metrics(model_report, tiny_synth):
    for name in ("metrics.json", "per_image.csv", "per_clip.csv", "report.html", "confusion_matrix.png", "roc.png",
                 "class_metrics.png", "class_iou_ci.png", "per_image_iou.png", "per_clip_class_iou.png",
                 "gallery_best.png", "gallery_worst.png"):
        assert (model_report / name).is_file(), name
    doc = json.loads((model_report / "metrics.json").read_text())
    ds = load_dataset(tiny_synth)
    test = ds.split("test")
    assert doc["images"] == len(test) == 4 and doc["split"] == "test"
    # The confusion matrix counts exactly the valid reference pixels of the split.
    valid = sum(int((read_label(ds.path(it.label)) != 255).sum()) for it in test)
    assert sum(map(sum, doc["confusion_matrix"])) == valid
    for d in [*doc["per_class"].values(), doc["mean"], doc["mean_with_background"]]:
        assert all(v is None or 0 <= v <= 1 for v in d.values())
    assert doc["per_class"]["bone"]["auc"] is not None  # the untrained model still has probabilities
    rows = list(csv.DictReader((model_report / "per_image.csv").open()))
    assert len(rows) == 4 and {r["clip"] for r in rows} == {it.clip for it in test}
    clips = list(csv.DictReader((model_report / "per_clip.csv").open()))
    assert sorted(int(c["images"]) for c in clips) == [2, 2]


def test_every_figure_has_its_interval_over_clips(model_report):
    doc = json.loads((model_report / "metrics.json").read_text())
    b = doc["bootstrap"]
    assert (b["unit"], b["units"], b["resamples"], b["seed"], b["small_split"]) == ("clip", 2, 2000, 0, True)
    # Two clips: the resamples are (a, a), (a, b) and (b, b): the interval runs from one clip's figure to the other's.
    clips = {c["clip"]: c for c in csv.DictReader((model_report / "per_clip.csv").open())}
    lo, hi = doc["ci95"]["per_class"]["bone"]["iou"]
    assert sorted([lo, hi]) == pytest.approx(sorted(float(c["iou_bone"]) for c in clips.values()), abs=1e-6)
    for group in ("mean", "mean_paper", "mean_with_background"):
        assert doc["ci95"][group]["iou"][0] <= doc[group]["iou"] <= doc["ci95"][group]["iou"][1]
    assert doc["ci95"]["mean"]["auc"] is not None and doc["ci95"]["pixel_accuracy"] is not None
    page = (model_report / "report.html").read_text()
    iou = doc["per_class"]["bone"]["iou"]
    assert f"<td>{100 * iou:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]</td>" in page  # the bone row's IoU cell
    assert "95% interval, a percentile bootstrap over the 2 clips" in page and "Small split: 2 clips" in page
    assert "per-class IoU with 95% intervals" in page


def test_html_is_self_contained(model_report):
    page = (model_report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    png = base64.b64decode(sources[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ROC" in page and "untrained test model" in page  # the model's notice is shown


def test_pred_folder_gives_the_same_figures_without_auc(model_report, predictions, tmp_path, tiny_synth, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(predictions), "--data", str(tiny_synth), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    b = json.loads((out / "metrics.json").read_text())
    iou, (lo, hi) = b["mean"]["iou"], b["ci95"]["mean"]["iou"]
    assert f"mean over tissues IoU {iou:.3f} [{lo:.3f}, {hi:.3f}]" in line and "over 2 clips (small split)" in line
    a = json.loads((model_report / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"]  # predict's PNGs and the model run agree pixel for pixel
    assert all(v["auc"] is None for v in b["per_class"].values()) and b["mean"]["auc"] is None
    assert not (out / "roc.png").exists()
    assert "No ROC curves or AUC" in (out / "report.html").read_text()


def test_bootstrap_flag_and_seed(predictions, tmp_path, tiny_synth, capsys):
    runs = {}
    for name, flags in (("off", ["--bootstrap", "0"]), ("seed7", ["--seed", "7"]), ("again", ["--seed", "7"])):
        assert main(["evaluate", "--pred", str(predictions), "--data", str(tiny_synth), "--out", str(tmp_path / name),
                     "--gallery", "0", *flags]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert runs["off"]["ci95"] is None and runs["off"]["bootstrap"]["resamples"] == 0
    assert "[" not in capsys.readouterr().out.splitlines()[0]
    assert "Brackets" not in (tmp_path / "off" / "report.html").read_text()
    assert runs["seed7"]["ci95"] == runs["again"]["ci95"] and runs["seed7"]["bootstrap"]["seed"] == 7
    assert runs["off"]["mean"] == runs["seed7"]["mean"]


def _error(capsys) -> str:
    """The one error line (tqdm's progress shares stderr)."""
    lines = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert len(lines) == 1 and lines[0].startswith("endospine-model: error: "), lines
    return lines[0]


def test_missing_prediction(predictions, tmp_path, tiny_synth, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(predictions, pred)
    victim = sorted(pred.glob("*.png"))[0]
    victim.unlink()
    assert main(["evaluate", "--pred", str(pred), "--data", str(tiny_synth), "--out", str(tmp_path / "r")]) == 1
    err = _error(capsys)
    assert str(victim) in err and "missing prediction" in err
    assert not (tmp_path / "r").exists()


def test_size_mismatch(predictions, tmp_path, tiny_synth, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(predictions, pred)
    victim = sorted(pred.glob("*.png"))[1]
    write_label(victim, np.zeros((64, 100), np.uint8))
    assert main(["evaluate", "--pred", str(pred), "--data", str(tiny_synth), "--out", str(tmp_path / "r")]) == 1
    err = _error(capsys)
    assert str(victim) in err and "100x64" in err and "128x128" in err


def test_unknown_ids(predictions, tmp_path, tiny_synth, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(predictions, pred)
    victim = sorted(pred.glob("*.png"))[2]
    labels = read_label(victim)
    labels[5, 5] = 7
    write_label(victim, labels)
    assert main(["evaluate", "--pred", str(pred), "--data", str(tiny_synth), "--out", str(tmp_path / "r")]) == 1
    err = _error(capsys)
    assert str(victim) in err and "[7]" in err and "not in the class table" in err


def test_needs_exactly_one_source(tiny_synth, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(tiny_synth), "--out", str(tmp_path / "r")])
    assert "--model" in capsys.readouterr().err


def test_profile_reaches_the_runtime(tiny_model_dir, tiny_synth, tmp_path, capsys):
    """--profile changes what the model sees (here a field of view switched off) and a bad profile
    is refused in one line before any work."""
    from models.core.optics.profile import FovSection, default_profile, save_profile

    off = save_profile(default_profile().updated(fov=FovSection(mode="off")), tmp_path / "off.yaml")
    out = tmp_path / "report-off"
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tiny_synth), "--out", str(out),
                 "--gallery", "0", "--profile", str(off)]) == 0
    assert str(off) in (out / "report.html").read_text()
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: endospine-profile/1\nfov: {mode: sideways}\n")
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tiny_synth), "--out",
                 str(tmp_path / "r2"), "--profile", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.yaml" in err and "\n" not in err and not (tmp_path / "r2").exists()
