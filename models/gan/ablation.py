"""`endospine-model gan ablation`: the same segmentation training without and with GAN images.

Two arms, the same seeds, config and step budget: "without" trains on the main dataset alone;
"with_gan" also draws `ratio` of every batch from the GAN dataset's train split (models/train
--extra-data). Validation (best checkpoint) and test stay on the main dataset's real splits.
Each run is exported (models/export.py), which measures the test split through the exported
predictor; the table holds test Dice and IoU (mean over the tissue classes) per arm and seed,
the arm means, and the paired difference (with - without, per seed) with its spread.

    OUT/ablation.yaml              the settings; a rerun with other settings is refused
    OUT/<arm>/seed<S>/run, /model  training run and exported model of each arm and seed
    OUT/ablation.json, .md, .png   the table and a bar chart

Resumable: a finished model is not redone, a run cut short resumes from its last checkpoint.
The result is reported whatever it is; GAN data stays off by default unless it helps.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.yamlio import dump_yaml, read_yaml
from models.dataset import load_dataset
from models.train.config import ExtraData, TrainConfig

ARMS = ("without", "with_gan")
METRICS = ("dice", "iou")
NAMES = {"dice": "Dice", "iou": "IoU"}


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise EndoSpineError(f"--seeds {text!r}: expected distinct whole numbers like 0,1")
    return seeds


def arm_config(base: TrainConfig, arm: str, seed: int, gan_data: str, ratio: float) -> TrainConfig:
    extra = base.extra_data + ((ExtraData(gan_data, ratio),) if arm == "with_gan" else ())
    try:
        return replace(base, seed=seed, extra_data=extra)
    except ValueError as exc:
        raise EndoSpineError(f"--ratio {ratio}: {exc}") from None


def check_inputs(data: str | Path, gan_data: str | Path) -> None:
    main, gan = load_dataset(data), load_dataset(gan_data)
    if main.classes.names != gan.classes.names:
        raise EndoSpineError(f"{gan.root}: classes {gan.classes.names} differ from {main.root}'s {main.classes.names}")
    if not any(it.source == "gan" for it in gan.items):
        raise EndoSpineError(f"{gan.root}: holds no GAN-synthesized images (make them with 'gan synthesize')")
    if not main.splits.get("test"):
        raise EndoSpineError(f"{main.root}: the test split is empty (the ablation reports test figures)")


def run_ablation(data: str | Path, gan_data: str | Path, out: str | Path, seeds: list[int], iters: int | None = None,
                 config: str | Path | None = None, ratio: float = 0.3, progress: bool = True,
                 trust_pickle: bool = False) -> dict:
    from models.core.runtime.manifest import load_manifest
    from models.export import export_run
    from models.train.loop import train

    out = Path(out)
    check_inputs(data, gan_data)
    base = TrainConfig.load(config, iters=iters)
    settings = {"data": str(Path(data).resolve()), "gan_data": str(Path(gan_data).resolve()), "ratio": ratio,
                "config": base.to_dict()}
    _check_settings(out, settings)
    results = []
    for arm in ARMS:
        for seed in seeds:
            cfg = arm_config(base, arm, seed, str(Path(gan_data).resolve()), ratio)
            run, model = out / arm / f"seed{seed}" / "run", out / arm / f"seed{seed}" / "model"
            if not (model / "manifest.yaml").is_file():
                print(f"ablation: {arm} seed {seed}: training {cfg.iters} steps in {run}", flush=True)
                state = _run_state(run)
                if state is None or state.get("step", 0) < cfg.iters:
                    if state is None and run.exists():
                        shutil.rmtree(run)  # cut short before its first checkpoint: start over
                    train(data, run, cfg, resume=state is not None, progress=progress, trust_pickle=trust_pickle)
                export_run(run, model, progress=progress, trust_pickle=trust_pickle)
            manifest = load_manifest(model)
            results.append(_row(arm, seed, manifest.metrics, manifest.training))
    table = summarize(results, seeds)
    table["settings"] = settings
    write_report(out, table)
    return table


def summarize(rows: list[dict], seeds: list[int]) -> dict:
    """Arm means and stds, and the paired per-seed difference (with_gan - without) with its spread."""
    by = {(r["arm"], r["seed"]): r for r in rows}
    arms = {}
    for arm in ARMS:
        arms[arm] = {m: _stats([by[(arm, s)][m] for s in seeds]) for m in METRICS}
    diff = {m: _stats([by[("with_gan", s)][m] - by[("without", s)][m] for s in seeds]) for m in METRICS}
    for m in METRICS:
        diff[m]["per_seed"] = {str(s): round(by[("with_gan", s)][m] - by[("without", s)][m], 4) for s in seeds}
    return {"rows": rows, "arms": arms, "difference": diff, "seeds": seeds}


def write_report(out: Path, table: dict) -> None:
    write_bytes_atomic(out / "ablation.json", (json.dumps(table, indent=2) + "\n").encode("utf-8"))
    write_bytes_atomic(out / "ablation.md", markdown(table).encode("utf-8"))
    _chart(out / "ablation.png", table)


def markdown(table: dict) -> str:
    s = table.get("settings", {})
    lines = ["# GAN ablation: test Dice / IoU (mean over tissue classes)", "",
             f"Data `{s.get('data', '?')}`; GAN data `{s.get('gan_data', '?')}` at batch share {s.get('ratio', '?')}; "
             f"{s.get('config', {}).get('iters', '?')} steps, model {s.get('config', {}).get('model', '?')}.", "",
             "| arm | seed | test Dice | test IoU | val mIoU | test images |", "|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['arm']} | {r['seed']} | {r['dice']:.4f} | {r['iou']:.4f} | {r['val_miou']:.4f} | "
                     f"{r['test_images']} |")
    lines += ["", "| | Dice mean ± std | IoU mean ± std |", "|---|---|---|"]
    for arm in ARMS:
        a = table["arms"][arm]
        lines.append(f"| {arm} | {a['dice']['mean']:.4f} ± {a['dice']['std']:.4f} | "
                     f"{a['iou']['mean']:.4f} ± {a['iou']['std']:.4f} |")
    d = table["difference"]
    lines.append(f"| with_gan - without (paired by seed) | {d['dice']['mean']:+.4f} ± {d['dice']['std']:.4f} "
                 f"[{d['dice']['min']:+.4f}, {d['dice']['max']:+.4f}] | {d['iou']['mean']:+.4f} ± "
                 f"{d['iou']['std']:.4f} [{d['iou']['min']:+.4f}, {d['iou']['max']:+.4f}] |")
    lines += ["", f"std: sample standard deviation over {len(table['seeds'])} seeds; [min, max] of the per-seed "
                  "differences. GAN data stays off by default unless the difference is clearly positive."]
    return "\n".join(lines) + "\n"


# -- helpers ---------------------------------------------------------------------------------
def _check_settings(out: Path, settings: dict) -> None:
    path = out / "ablation.yaml"
    if path.is_file():
        before = read_yaml(path, "ablation settings")
        if before != json.loads(json.dumps(settings)):
            raise EndoSpineError(f"{path}: {out} holds an ablation with other settings (data, GAN data, ratio, "
                                 f"config or iters); use another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise EndoSpineError(f"{out}: already exists and is not an ablation folder (choose another --out)")
    write_bytes_atomic(path, dump_yaml(json.loads(json.dumps(settings))).encode("utf-8"))


def _run_state(run: Path) -> dict | None:
    path = run / "state.yaml"
    return read_yaml(path, "training state") if path.is_file() else None


def _row(arm: str, seed: int, metrics: dict, training: dict) -> dict:
    test = metrics.get("test") or {}
    mean = test.get("mean") or {}
    if mean.get("dice") is None or mean.get("iou") is None:
        raise EndoSpineError(f"{arm} seed {seed}: the exported model has no test figures")
    gan = sum(d.get("gan_images", 0) for d in training.get("data", {}).get("train", []))
    return {"arm": arm, "seed": seed, "dice": float(mean["dice"]), "iou": float(mean["iou"]),
            "val_miou": float(metrics.get("val_miou_tissues", float("nan"))), "test_images": int(test.get("images", 0)),
            "gan_images": gan, "per_class": test.get("per_class", {})}


def _stats(values: list[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
            "min": round(float(v.min()), 4), "max": round(float(v.max()), 4)}


def _chart(path: Path, table: dict) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = table["seeds"]
    by = {(r["arm"], r["seed"]): r for r in table["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    x = np.arange(len(seeds) + 1)
    for ax, m in zip(axes, METRICS):
        for k, arm in enumerate(ARMS):
            vals = [by[(arm, s)][m] for s in seeds] + [table["arms"][arm][m]["mean"]]
            err = [np.nan] * len(seeds) + [table["arms"][arm][m]["std"]]  # a spread only on the mean bar
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, yerr=err, capsize=3, label=arm.replace("_", " "),
                   color=("#8c8c8c", "#d9822b")[k])
        ax.set_xticks(x, [f"seed {s}" for s in seeds] + ["mean ± std"])
        d = table["difference"][m]
        ax.set_title(f"test {NAMES[m]}: with - without {d['mean']:+.4f}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
