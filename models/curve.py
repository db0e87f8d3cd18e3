"""Learning curves: test Dice over label budgets, starting points and seeds.

How many labelled frames does a team need, and does starting from a model that already knows
endoscopy save labels? For every budget n, start s and seed k this trains on n images of the
train split, picks the checkpoint on the whole validation split, exports it (no gate, no ONNX)
and evaluates it on the test split with `evaluate`, the code behind every headline figure.

- Budgets are nested: seed k shuffles the train split once (spread over clips first, so frames of
  one clip do not fill a small budget) and budget n takes the first n, so a larger budget holds the
  smaller ones' images. Seeds change the images drawn and the training randomness.
- Starts are `scratch` or a model folder / run (`train --init`), named `NAME=PATH` or by folder.
- Every finished run leaves results/<run>.json; running the command again with the same data and
  training settings skips those (a long curve survives an interruption; seeds, budgets and starts
  can be added later), and refuses a folder made with other data or settings.

The folder gets curve.json (every run and the summary), curve.png and curve.md (test Dice per
budget and start: mean and min-max over seeds, and each pretrained start's gain over scratch).
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.dataset import Item, load_dataset

log = logging.getLogger("endospine.curve")
SCRATCH = "scratch"


@dataclass(frozen=True)
class Start:
    name: str
    path: str | None  # None: from scratch

    @staticmethod
    def parse_all(text: str) -> list["Start"]:
        """'scratch,spine=assets/model,build/run-x' -> starts; names must be unique."""
        starts = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if part == SCRATCH:
                starts.append(Start(SCRATCH, None))
                continue
            name, _, path = part.rpartition("=") if "=" in part else ("", "", part)
            name = name or Path(path.rstrip("/")).name or path
            if not Path(path).exists():
                raise EndoSpineError(f"--init {path}: no such model folder or run")
            starts.append(Start(name, path))
        names = [s.name for s in starts]
        if not starts or len(set(names)) != len(names):
            raise EndoSpineError(f"--init {text!r}: give one or more starts with distinct names "
                                 "(scratch, a model folder, a run, or NAME=PATH)")
        return starts


def parse_ints(text: str, what: str, minimum: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EndoSpineError(f"--{what} {text!r}: expected comma-separated whole numbers") from None
    if not values or min(values) < minimum or len(set(values)) != len(values):
        raise EndoSpineError(f"--{what} {text!r}: expected distinct whole numbers of at least {minimum}")
    return sorted(values)


def budget_order(items: list[Item], seed: int) -> list[str]:
    """The train images in the order seed `seed` draws them: clips shuffled, then one frame per
    clip in turn (each clip's frames shuffled), so any prefix spreads over as many clips as it can."""
    rng = random.Random(seed)
    by_clip: dict[str, list[str]] = defaultdict(list)
    for it in items:
        by_clip[it.clip].append(it.image)
    clips = sorted(by_clip)
    rng.shuffle(clips)
    for clip in clips:
        rng.shuffle(by_clip[clip])
    order, depth = [], 0
    while len(order) < len(items):
        order += [by_clip[c][depth] for c in clips if depth < len(by_clip[c])]
        depth += 1
    return order


def run_name(size: int, start: Start, seed: int) -> str:
    return f"n{size}-{start.name}-s{seed}"


def learning_curve(data: str | Path, out: str | Path, cfg, sizes: list[int], starts: list[Start],
                   seeds: list[int], settings=None, keep_models: bool = False, progress: bool = True) -> dict:
    """Train and test every (budget, start, seed); write curve.json/.png/.md in `out`; return the document."""
    from models.evaluate.run import evaluate
    from models.export import export_run
    from models.train.loop import train

    out = Path(out)
    dataset = load_dataset(data)
    train_items = dataset.split("train")
    for split in ("val", "test"):
        if not dataset.split(split):
            raise EndoSpineError(f"{dataset.root}: the {split} split is empty")
    if max(sizes) > len(train_items):
        raise EndoSpineError(f"--sizes: {max(sizes)} is more than the {len(train_items)} images of "
                             f"{dataset.root}'s train split")
    setup = {"data": str(dataset.root), "config": cfg.to_dict(), "sizes": sizes, "seeds": seeds,
             "starts": {s.name: s.path for s in starts}}
    _check_setup(out, {k: setup[k] for k in ("data", "config")})
    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    runs = [(n, s, k) for k in seeds for s in starts for n in sizes]
    results = []
    for i, (size, start, seed) in enumerate(runs, 1):
        name = run_name(size, start, seed)
        done = results_dir / f"{name}.json"
        if done.is_file():
            results.append(json.loads(done.read_text()))
            log.info("[%d/%d] %s: done before (test Dice %.4f)", i, len(runs), name, results[-1]["dice"])
            continue
        log.info("[%d/%d] %s: training on %d images", i, len(runs), name, size)
        t0 = time.monotonic()
        run_dir, model_dir = out / "runs" / name, out / "models" / name
        for folder in (run_dir, model_dir, out / "evals" / name):
            shutil.rmtree(folder, ignore_errors=True)  # a run cut short starts again
        chosen = budget_order(train_items, seed)[:size]
        run_cfg = replace(cfg, seed=seed, init=start.path, freeze_backbone=cfg.freeze_backbone if start.path else 0)
        summary = train(dataset.root, run_dir, run_cfg, progress=progress, train_only=chosen)
        export_run(run_dir, model_dir, onnx=False, gate=False, progress=False)
        doc = evaluate(dataset.root, out / "evals" / name, split="test", model_dir=model_dir, settings=settings,
                       gallery=0, progress=False, bootstrap=0)
        result = {"run": name, "size": size, "start": start.name, "seed": seed,
                  "dice": doc["mean"]["dice"], "iou": doc["mean"]["iou"], "best_val_miou": summary["best_val_miou"],
                  "best_step": summary["best_step"], "test_images": doc["images"],
                  "minutes": round((time.monotonic() - t0) / 60, 1)}
        write_bytes_atomic(done, json.dumps(result, indent=1).encode())
        if not keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
            for weights in run_dir.glob("*.safetensors"):
                weights.unlink()
        results.append(result)
        log.info("[%d/%d] %s: test Dice %.4f (validation mean IoU %.4f at step %d), %.1f min", i, len(runs), name,
                 result["dice"], result["best_val_miou"], result["best_step"], result["minutes"])
    doc = {"setup": setup, "runs": results, "summary": summarize(results, sizes, [s.name for s in starts])}
    write_bytes_atomic(out / "curve.json", json.dumps(doc, indent=1).encode())
    write_bytes_atomic(out / "curve.md", markdown(doc).encode())
    plot(doc, out / "curve.png")
    return doc


def _check_setup(out: Path, setup: dict) -> None:
    """A folder holds one curve: the same data and training settings continue it, others are refused."""
    path = out / "setup.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != json.loads(json.dumps(setup)):
            raise EndoSpineError(f"{path}: this folder holds a curve with other settings; use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, json.dumps(setup, indent=1).encode())


def summarize(results: list[dict], sizes: list[int], starts: list[str]) -> dict:
    """{start: {size: {mean, min, max, seeds}}} and each non-scratch start's mean gain over scratch."""
    table: dict = {s: {} for s in starts}
    for start in starts:
        for size in sizes:
            dice = [r["dice"] for r in results if r["start"] == start and r["size"] == size]
            if dice:
                table[start][str(size)] = {"mean": float(np.mean(dice)), "min": float(min(dice)),
                                           "max": float(max(dice)), "seeds": len(dice)}
    gain: dict = {}
    if SCRATCH in table:
        for start in starts:
            if start != SCRATCH:
                gain[start] = {k: v["mean"] - table[SCRATCH][k]["mean"] for k, v in table[start].items()
                               if k in table[SCRATCH]}
    return {"dice": table, "gain_over_scratch": gain}


def markdown(doc: dict) -> str:
    s = doc["summary"]
    starts = list(s["dice"])
    sizes = [str(n) for n in doc["setup"]["sizes"]]
    cfg = doc["setup"]["config"]
    lines = [f"Test Dice (mean over tissue classes, pooled pixels) on {doc['setup']['data']}'s test split; "
             f"{cfg['iters']} steps at batch {cfg['batch_size']} for every run; mean [min, max] over seeds "
             f"{', '.join(map(str, doc['setup']['seeds']))}.", "",
             "| labelled images | " + " | ".join(starts) + "".join(f" | {g} - scratch" for g in s["gain_over_scratch"])
             + " |", "|---" * (1 + len(starts) + len(s["gain_over_scratch"])) + "|"]
    for n in sizes:
        cells = []
        for start in starts:
            c = s["dice"][start].get(n)
            cells.append(f"{c['mean']:.3f} [{c['min']:.3f}, {c['max']:.3f}]" if c else "-")
        cells += [f"{g[n]:+.3f}" if n in g else "-" for g in s["gain_over_scratch"].values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for start, rows in doc["summary"]["dice"].items():
        sizes = sorted(int(n) for n in rows)
        mean = [rows[str(n)]["mean"] for n in sizes]
        low = [rows[str(n)]["mean"] - rows[str(n)]["min"] for n in sizes]
        high = [rows[str(n)]["max"] - rows[str(n)]["mean"] for n in sizes]
        bars = ax.errorbar(sizes, mean, yerr=[low, high], marker="o", capsize=3, label=start)
        runs = [r for r in doc["runs"] if r["start"] == start]
        ax.plot([r["size"] for r in runs], [r["dice"] for r in runs], ".", color=bars[0].get_color(), alpha=0.4)
    ax.set_xscale("log")
    ax.minorticks_off()  # the budgets are the ticks
    ax.set_xticks(doc["setup"]["sizes"], [str(n) for n in doc["setup"]["sizes"]])
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test Dice (tissue classes)")
    ax.set_title(f"Learning curve, {doc['setup']['config']['iters']} steps per run (bars: min-max over seeds)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
