"""The ablation: paired differences, the report, resumability, and one tiny end-to-end run."""
from __future__ import annotations

import json

import pytest
import yaml

from models.core.errors import EndoSpineError
from models.gan.ablation import markdown, parse_seeds, summarize


def _rows():
    figures = {("without", 0): (0.60, 0.45), ("without", 1): (0.64, 0.49),
               ("with_gan", 0): (0.63, 0.47), ("with_gan", 1): (0.62, 0.48)}
    return [{"arm": a, "seed": s, "dice": d, "iou": i, "val_miou": 0.5, "test_images": 3}
            for (a, s), (d, i) in figures.items()]


@pytest.mark.unit
def test_summary_pairs_seeds():
    t = summarize(_rows(), [0, 1])
    assert t["arms"]["without"]["dice"]["mean"] == pytest.approx(0.62)
    assert t["difference"]["dice"]["per_seed"] == {"0": 0.03, "1": -0.02}
    assert t["difference"]["dice"]["mean"] == pytest.approx(0.005)
    assert t["difference"]["dice"]["std"] == pytest.approx(0.0354, abs=1e-4)
    assert (t["difference"]["iou"]["min"], t["difference"]["iou"]["max"]) == (-0.01, 0.02)
    md = markdown(t)
    assert "| with_gan | 1 | 0.6200 | 0.4800 |" in md and "+0.0050 ± 0.0354" in md


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", "a,b", "0,0", "-1"])
def test_bad_seeds(text):
    with pytest.raises(EndoSpineError):
        parse_seeds(text)


@pytest.mark.slow
def test_tiny_ablation_end_to_end_and_resume(tmp_path, monkeypatch):
    from models.cli import main

    data, gan, synth, out = tmp_path / "data", tmp_path / "gan", tmp_path / "gan-data", tmp_path / "abl"
    assert main(["synth", "--out", str(data), "--clips", "5", "--frames", "2", "--size", "96", "--seed", "4",
                 "--workers", "1", "--ratios", "0.6,0.2,0.2"]) == 0
    gcfg = tmp_path / "gan.yaml"
    gcfg.write_text(yaml.safe_dump({"ngf": 8, "ndf": 8}))
    assert main(["gan", "train", "--data", str(data), "--out", str(gan), "--config", str(gcfg), "--size", "32",
                 "--iters", "2", "--batch-size", "2"]) == 0
    assert main(["gan", "synthesize", "--gan", str(gan), "--labels", str(data), "--out", str(synth), "--n", "6"]) == 0
    cfg = tmp_path / "seg.yaml"
    cfg.write_text(yaml.safe_dump({"input_size": 128, "batch_size": 2, "eval_every": 2, "log_every": 1,
                                   "warmup_iters": 1, "workers": 0, "augment": {"crop": 128}}))
    args = ["gan", "ablation", "--data", str(data), "--gan-data", str(synth), "--out", str(out), "--seeds", "0",
            "--iters", "2", "--config", str(cfg), "--ratio", "0.5"]
    assert main(args) == 0
    table = json.loads((out / "ablation.json").read_text())
    rows = {r["arm"]: r for r in table["rows"]}
    assert rows["with_gan"]["gan_images"] == 6 and rows["without"]["gan_images"] == 0
    assert all(0 <= r["dice"] <= 1 and r["test_images"] == 2 for r in rows.values())
    assert table["difference"]["dice"]["mean"] == pytest.approx(rows["with_gan"]["dice"] - rows["without"]["dice"],
                                                               abs=1e-4)
    assert (out / "ablation.md").is_file() and (out / "ablation.png").stat().st_size > 1000

    import models.train.loop

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(models.train.loop, "train", no_training)
    assert main(args) == 0  # finished runs are skipped
    assert main(args[:-2] + ["--ratio", "0.3"]) == 1  # other settings in the same folder are refused
