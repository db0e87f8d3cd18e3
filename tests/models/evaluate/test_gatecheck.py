"""`endospine-model gate-check` end to end on a tiny gated model, its refusals, and its summary."""
from __future__ import annotations

import base64
import csv
import json
import re

import cv2
import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from models.cli import main
from models.core.runtime.gate import GateRule
from models.evaluate.gatesummary import console_lines, make_row, summarize

RENDERINGS = 11  # clean + 5 corruptions x 2 severities


def _folder(path, images):
    path.mkdir(parents=True)
    for i, img in enumerate(images):
        assert cv2.imwrite(str(path / f"{i:02d}.png"), img)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """uniform (3 flat colours), noise (5 noise frames) and a second folder called noise (1 frame)."""
    root = tmp_path_factory.mktemp("gate-sets")
    rng = np.random.default_rng(0)
    uniform = _folder(root / "uniform", [np.full((160, 160, 3), v, np.uint8) for v in (30, 128, 220)])
    noise = _folder(root / "noise", [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(5)])
    again = _folder(root / "other" / "noise", [rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)])
    (root / "empty").mkdir()
    return {"uniform": uniform, "noise": noise, "again": again, "empty": root / "empty", "root": root}


@pytest.fixture(scope="module")
def report(tiny_model, folders, tmp_path_factory):
    data, _, model = tiny_model
    out = tmp_path_factory.mktemp("gate-check") / "report"
    code = main(["gate-check", "--model", str(model), "--in", str(data), "--ood", str(folders["uniform"]),
                 "--ood", str(folders["noise"]), "--ood", str(folders["again"]), "--out", str(out),
                 "--corrupt", str(data), "--max-images", "3"])
    assert code == 0
    return out, model


def _rows(out):
    return list(csv.DictReader((out / "scores.csv").open()))


@pytest.mark.slow
def test_report_files_and_sets(report, capsys):
    out, model = report
    for name in ("scores.csv", "summary.json", "scores.png", "roc.png", "error.png", "report.html"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "summary.json").read_text())
    manifest = yaml.safe_load((model / "manifest.yaml").read_text())
    assert doc["threshold"] == pytest.approx(manifest["gate"]["threshold"])
    assert f"above {doc['threshold']:.4g}" in doc["rule"]
    kinds = {n: s["kind"] for n, s in doc["sets"].items()}
    assert kinds == {"data": "in", "uniform": "ood", "noise": "ood", "noise-2": "ood"}   # names made unique
    sizes = {n: s["images"] for n, s in doc["sets"].items()}
    assert sizes == {"data": 2, "uniform": 3, "noise": 3, "noise-2": 1}                  # --max-images 3
    assert doc["sets"]["data"]["source"].startswith("dataset ") and "split test" in doc["sets"]["data"]["source"]
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http" not in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 3 and all(base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG" for s in sources)
    assert "noise-2" in page and "blood 2" in page


@pytest.mark.slow
def test_summary_agrees_with_the_csv(report):
    out, _ = report
    doc = json.loads((out / "summary.json").read_text())
    rows = _rows(out)
    t = doc["threshold"]
    for r in rows:
        assert r["passed"] == str(int(float(r["score"]) <= t)), r
    for name, s in doc["sets"].items():
        scores = np.array([float(r["score"]) for r in rows if r["set"] == name])
        passed = [r["passed"] == "1" for r in rows if r["set"] == name]
        assert s["images"] == scores.size and s["pass_rate"] == pytest.approx(np.mean(passed), abs=1e-4)
        for key, value in (("score_median", np.median(scores)), ("score_p5", np.percentile(scores, 5)),
                           ("score_p95", np.percentile(scores, 95))):
            assert s[key] == pytest.approx(value, abs=1e-4), (name, key)
    ins = [float(r["score"]) for r in rows if r["kind"] == "in"]
    for name in (None, "uniform", "noise", "noise-2"):
        ood = [float(r["score"]) for r in rows if r["kind"] == "ood" and name in (None, r["set"])]
        auc = roc_auc_score([0] * len(ins) + [1] * len(ood), ins + ood)
        got = doc["auroc"]["pooled"] if name is None else doc["auroc"]["per_ood_set"][name]
        assert got == pytest.approx(auc, abs=1e-4), name


@pytest.mark.slow
def test_corrupted_frames_carry_their_mean_iou(report):
    out, _ = report
    doc = json.loads((out / "summary.json").read_text())
    rows = [r for r in _rows(out) if r["kind"] == "corrupt"]
    assert len(rows) == 2 * RENDERINGS and {r["set"] for r in rows} == {"data-2"}
    assert all(0 <= float(r["mean_iou"]) <= 1 for r in rows)
    assert {(r["corruption"], r["severity"]) for r in rows} >= {("none", "0"), ("blur", "1"), ("smoke", "2"),
                                                                  ("blood", "1"), ("underexposure", "2")}
    c = doc["corrupt"]
    assert (c["set"], c["images"], c["frames"], len(c["renderings"])) == ("data-2", 2, 2 * RENDERINGS, RENDERINGS)
    wrong = [r for r in rows if float(r["mean_iou"]) < 0.5]
    assert c["event_frames"] == len(wrong)
    if 0 < len(wrong) < len(rows):
        truth = [float(r["mean_iou"]) < 0.5 for r in rows]
        assert c["auroc"] == pytest.approx(roc_auc_score(truth, [float(r["score"]) for r in rows]), abs=1e-4)
        assert c["auroc_note"] is None
    else:
        assert c["auroc"] is None and c["auroc_note"].startswith("undefined")
    for entry in c["renderings"]:
        mine = [r for r in rows if (r["corruption"], r["severity"]) == (entry["corruption"], str(entry["severity"]))]
        assert entry["images"] == 2
        assert entry["mean_iou_median"] == pytest.approx(np.median([float(r["mean_iou"]) for r in mine]), abs=1e-4)


@pytest.mark.slow
def test_model_without_a_gate_is_refused(tiny_model_dir, folders, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["gate-check", "--model", str(tiny_model_dir), "--in", str(folders["uniform"]),
                 "--ood", str(folders["noise"]), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tiny_model_dir}: this model has no trust gate (exported before gates); re-export it")
    assert "\n" not in err and not out.exists()


@pytest.mark.unit
def test_bad_folders_are_refused_with_one_line(tiny_model_dir, folders, tmp_path, capsys):
    cases = (("--ood", folders["empty"], "no images"), ("--ood", folders["root"] / "missing", "not a folder"),
             ("--in", folders["uniform"] / "00.png", "not a folder"))
    for flag, bad, words in cases:
        args = {"--in": str(folders["uniform"]), "--ood": str(folders["noise"])}
        args[flag] = str(bad)
        argv = ["gate-check", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r")]
        assert main(argv + [x for kv in args.items() for x in kv]) == 1, bad
        err = capsys.readouterr().err.strip()
        assert f"{flag} {bad}: {words}" in err and "\n" not in err, err
    assert main(["gate-check", "--model", str(tiny_model_dir), "--in", str(folders["uniform"]), "--ood",
                 str(folders["noise"]), "--corrupt", str(folders["noise"]), "--out", str(tmp_path / "r")]) == 1
    assert "not a dataset folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["gate-check", "--model", str(tmp_path / "no-model"), "--in", str(folders["uniform"]), "--ood",
                 str(folders["noise"]), "--out", str(tmp_path / "full")]) == 1   # refused before the model loads
    assert "already exists and is not empty" in capsys.readouterr().err


@pytest.mark.unit
def test_summary_from_rows():
    rule = GateRule(threshold=2.0)
    rows = [make_row("a", "in", f"{i}", s, 2.0) for i, s in enumerate([1.0, 1.5, 2.0, 3.0])]
    rows += [make_row("u", "ood", f"{i}", s, 2.0) for i, s in enumerate([5.0, 6.0])]
    rows += [make_row("n", "ood", f"{i}", s, 2.0) for i, s in enumerate([1.5, 2.5])]
    rows += [make_row("c", "corrupt", "x", s, 2.0, corruption=c, severity=k, mean_iou=m)
             for s, c, k, m in [(1.0, "none", 0, 0.9), (4.0, "blur", 1, 0.2), (1.2, "blur", 2, float("nan"))]]
    doc = summarize(rows, rule, 8, {"a": "folder a"}, {"model": "m"})
    assert doc["sets"]["a"] == {"kind": "in", "source": "folder a", "images": 4, "pass_rate": 0.75,
                                "score_median": 1.75, "score_p5": 1.075, "score_p95": 2.85}
    # n: 1.5 beats 1.0, ties 1.5 (half), 2.5 beats three of four in frames: 4.5 of 8 pairs
    assert doc["auroc"]["per_ood_set"] == {"u": 1.0, "n": 0.5625}
    assert doc["auroc"]["pooled"] == pytest.approx(12.5 / 16, abs=1e-4)
    c = doc["corrupt"]
    assert (c["frames"], c["scored_frames"], c["event_frames"], c["auroc"]) == (3, 2, 1, 1.0)
    assert [(r["corruption"], r["severity"], r["mean_iou_median"]) for r in c["renderings"]] == [
        ("none", 0, 0.9), ("blur", 1, 0.2), ("blur", 2, None)]
    lines = console_lines(doc)
    assert len(lines) == 3 + 1 + 1 and lines[3].startswith("AUROC in vs ood: 0.78")
    assert lines[3].endswith("pooled; u 1.0000, n 0.5625")
    clean = [r for r in rows if r.kind != "corrupt"] + [rows[-3]]
    c = summarize(clean, rule, 8, {}, {})["corrupt"]
    assert c["auroc"] is None and "no frame has mean IoU < 0.5" in c["auroc_note"]
