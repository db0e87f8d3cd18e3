"""Learning curves (models/curve.py): budgets drawn, starts parsed, the table, and a whole tiny curve."""
from __future__ import annotations

import json

import pytest
import yaml

from models.cli import main
from models.core.errors import EndoSpineError
from models.curve import SCRATCH, Start, budget_order, markdown, parse_ints, summarize
from models.dataset import Item


def _items(clips: dict[str, int]) -> list[Item]:
    return [Item(image=f"images/{c}_{i}.png", label=f"labels/{c}_{i}.png", clip=c, frame=i)
            for c, n in clips.items() for i in range(n)]


def test_budget_order_is_a_seeded_permutation_spread_over_clips():
    items = _items({"a": 5, "b": 1, "c": 3, "d": 2})
    order = budget_order(items, seed=0)
    assert sorted(order) == sorted(it.image for it in items)
    clip = {it.image: it.clip for it in items}
    assert len({clip[i] for i in order[:4]}) == 4  # the first 4 images come from 4 different clips
    assert order == budget_order(items, seed=0)
    assert order != budget_order(items, seed=1)


def test_budgets_are_nested():
    items = _items({f"c{i}": 3 for i in range(10)})
    order = budget_order(items, seed=3)
    assert set(order[:5]) <= set(order[:12])


def test_starts_and_numbers_parse(tmp_path):
    model = tmp_path / "spine-model"
    model.mkdir()
    starts = Start.parse_all(f"scratch, {model}, other={model}")
    assert starts == [Start(SCRATCH, None), Start("spine-model", str(model)), Start("other", str(model))]
    with pytest.raises(EndoSpineError, match="no such model"):
        Start.parse_all("scratch,missing/dir")
    with pytest.raises(EndoSpineError, match="distinct names"):
        Start.parse_all(f"{model},{model}")
    assert parse_ints("400,50, 100", "sizes", 1) == [50, 100, 400]
    for bad in ("", "0", "5,5", "a,b"):
        with pytest.raises(EndoSpineError, match="--sizes"):
            parse_ints(bad, "sizes", 1)


def test_summary_and_table():
    runs = [{"start": s, "size": n, "seed": k, "dice": d}
            for s, n, k, d in [("scratch", 50, 0, 0.50), ("scratch", 50, 1, 0.54), ("spine", 50, 0, 0.60),
                               ("spine", 50, 1, 0.62), ("scratch", 100, 0, 0.70)]]
    s = summarize(runs, [50, 100], ["scratch", "spine"])
    assert s["dice"]["scratch"]["50"] == {"mean": pytest.approx(0.52), "min": 0.50, "max": 0.54, "seeds": 2}
    assert s["gain_over_scratch"]["spine"] == {"50": pytest.approx(0.09)}
    doc = {"summary": s, "setup": {"sizes": [50, 100], "seeds": [0, 1], "data": "d",
                                   "config": {"iters": 10, "batch_size": 8}}}
    table = markdown(doc)
    assert "| 50 | 0.520 [0.500, 0.540] | 0.610 [0.600, 0.620] | +0.090 |" in table
    assert "| 100 | 0.700 [0.700, 0.700] | - | - |" in table


def test_a_tiny_curve_runs_and_continues(tiny_model, tmp_path):
    data, _run, model = tiny_model
    out = tmp_path / "curve"
    args = ["curve", "--data", str(data), "--out", str(out), "--sizes", "2,4", "--init", f"scratch,tiny={model}",
            "--seeds", "0", "--iters", "2", "--batch-size", "2", "--eval-every", "2"]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("input_size: 128\nwarmup_iters: 1\nworkers: 0\naugment: {crop: 128}\n")
    assert main(args + ["--config", str(cfg)]) == 0
    doc = json.loads((out / "curve.json").read_text())
    assert {(r["size"], r["start"]) for r in doc["runs"]} == {(2, "scratch"), (4, "scratch"), (2, "tiny"), (4, "tiny")}
    assert all(0.0 <= r["dice"] <= 1.0 for r in doc["runs"])
    assert (out / "curve.png").stat().st_size > 0 and "| 4 |" in (out / "curve.md").read_text()
    run_log = (out / "runs" / "n2-tiny-s0" / "train.log").read_text()
    assert "init" in run_log.lower()
    assert yaml.safe_load((out / "runs" / "n2-scratch-s0" / "data.yaml").read_text())["train"][0]["images"] == 2
    assert yaml.safe_load((out / "runs" / "n4-scratch-s0" / "data.yaml").read_text())["train"][0]["images"] == 4
    assert not list((out / "runs").glob("*/*.safetensors"))  # weights dropped unless --keep-models
    # run again: every run is done, nothing retrains; fewer starts summarize what was asked for;
    # other training settings in the same folder are refused
    stamp = (out / "results" / "n4-tiny-s0.json").stat().st_mtime_ns
    assert main(args + ["--config", str(cfg)]) == 0
    assert (out / "results" / "n4-tiny-s0.json").stat().st_mtime_ns == stamp
    assert main([a.replace(f"scratch,tiny={model}", "scratch") for a in args] + ["--config", str(cfg)]) == 0
    assert {r["start"] for r in json.loads((out / "curve.json").read_text())["runs"]} == {"scratch"}
    assert main(args[:-2] + ["--eval-every", "1", "--config", str(cfg)]) == 1
