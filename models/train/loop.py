"""The training loop: mixed data, warmup + cosine AdamW, periodic validation, best/last checkpoints.

A run folder holds everything about one training run:
    config.yaml      the settings used (after flags)
    data.yaml        what it trained on: datasets, splits, images per source, class table
    train.log        the log (also shown with tqdm)
    metrics.csv      step, loss parts, learning rate, validation figures
    last.safetensors / last.opt.safetensors / state.yaml   the resume point (written atomically;
                     state.yaml, written last, also holds the position within the epoch, so a
                     resumed run trains on the same batches and reaches the same weights)
    best.safetensors weights with the best validation mean IoU over tissue classes so far
Checkpoints are safetensors (models/train/checkpoint.py); older runs' pickle files (.pdparams,
.pdopt) load only with trust_pickle (--trust-pickle).
Launch on several GPUs with `python -m paddle.distributed.launch --devices 0,1 $(which endospine-model) train ...`:
each rank draws its own share of the batches, rank 0 validates and writes.
"""
from __future__ import annotations

import csv
import itertools
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.optics.profile import load_profile
from models.core.runtime.frameview import FramePrep
from models.core.runtime.preprocess import Preprocess
from models.core.yamlio import dump_yaml, read_yaml
from models.dataset import Dataset, load_dataset
from models.metrics import ConfusionMatrix, mean_iou, scores_from_matrix
from models.nets import build_model
from models.train.checkpoint import WEIGHTS, load_optimizer, load_weights, save_optimizer, save_weights, stored
from models.train.config import TrainConfig
from models.train.data import EvalSamples, MixedSampler, TrainSamples, label_histogram, mixing_weights
from models.train.init import init_from
from models.train.losses import SegLoss, class_weights_from_counts, paddle

F = paddle.nn.functional
log = logging.getLogger("endospine.train")
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
warnings.filterwarnings("ignore", message="There are some unused values in state_dict")


def train(data_dir: str | Path, run_dir: str | Path, cfg: TrainConfig, resume: bool = False,
          progress: bool = True, trust_pickle: bool = False, train_only: Sequence[str] | None = None) -> dict:
    """Train on the dataset's train split (only the images named in `train_only` when given: a
    label budget of a learning curve), validate on its val split; returns the run's summary."""
    run = Path(run_dir)
    dataset = load_dataset(data_dir)
    train_items, val_items = dataset.split("train"), dataset.split("val")
    if train_only is not None:
        keep = set(train_only)
        train_items = [it for it in train_items if it.image in keep]
    if not train_items:
        raise EndoSpineError(f"{dataset.root}: the train split is empty")
    if not val_items:
        raise EndoSpineError(f"{dataset.root}: the val split is empty (validation picks the best model)")
    _check_real_only(dataset)
    profile = load_profile(cfg.profile) if cfg.profile else None  # a bad file stops us before any output
    pools = [(dataset, train_items)] + [_extra_pool(e.path, dataset.classes) for e in cfg.extra_data]
    shares = [1 - sum(e.ratio for e in cfg.extra_data)] + [e.ratio for e in cfg.extra_data]
    _prepare_run_dir(run, resume)
    rank, world = _distributed_setup()
    _setup_logging(run if rank == 0 else None)
    paddle.seed(cfg.seed + rank)

    classes = dataset.classes
    pre = Preprocess((cfg.input_size, cfg.input_size), crop=cfg.crop)
    model = build_model(cfg.model, len(classes))
    weights = None
    if cfg.loss.class_weights == "auto":
        weights = class_weights_from_counts(label_histogram(dataset, train_items, len(classes)))
    loss_fn = SegLoss(cfg.loss, len(classes), weights, classes.ignore_index)
    sched = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.CosineAnnealingDecay(cfg.lr, T_max=cfg.iters, eta_min=cfg.lr * 0.01),
        warmup_steps=cfg.warmup_steps, start_lr=cfg.lr * 0.05, end_lr=cfg.lr)
    opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=model.parameters(), weight_decay=cfg.weight_decay)

    state = {"step": 0, "best_miou": -1.0, "best_step": 0, "epoch": 0, "epoch_step": 0}
    init_notes = []
    if resume:
        state = _load_resume(run, model, opt, trust_pickle)
    elif cfg.init:
        init_notes = init_from(model, cfg.model, classes, cfg.init, trust_pickle)
    frozen = _Encoder(model.backbone) if cfg.freeze_backbone else None
    if rank == 0:
        _write_yaml(run / "config.yaml", cfg.to_dict())
        _write_yaml(run / "data.yaml", _data_summary(dataset, pools, shares, val_items, weights))
        log.info("train data: %s", ", ".join(f"{_sources(items)} from {ds.root} (share {share:.2f}{_gan_note(items)})"
                                             for (ds, items), share in zip(pools, shares)))
        log.info("validation: %d images from %s (%s)", len(val_items), dataset.root, _sources(val_items))
        if world > 1:
            log.info("data-parallel over %d processes: each draws its own batches of %d, gradients averaged "
                     "(an effective batch of %d)", world, cfg.batch_size, world * cfg.batch_size)
        for line in init_notes:
            log.info("%s", line)
        if frozen is not None:
            log.info("encoder frozen for the first %d steps (weights and batch-norm statistics)", cfg.freeze_backbone)
    if world > 1:
        model = paddle.DataParallel(model)

    main_prep = FramePrep(profile, pre, independent=True)
    preps = [main_prep] + [FramePrep(None, pre, independent=True) for _ in cfg.extra_data]
    samples = TrainSamples(pools, pre, cfg.augment, cfg.seed, preps)
    ratios = [e.ratio for e in cfg.extra_data]
    sampler = MixedSampler(mixing_weights([len(items) for _, items in pools], ratios),
                           per_epoch=max(len(samples) // world, cfg.batch_size), seed=cfg.seed * 1000 + rank)
    batches = _ResumableBatches(sampler=sampler, batch_size=cfg.batch_size, drop_last=True)
    batches.skip = state["epoch_step"]  # a resumed run starts where the checkpoint left its epoch
    loader = paddle.io.DataLoader(samples, batch_sampler=batches, num_workers=cfg.workers,
                                  use_shared_memory=cfg.workers > 0)
    val_loader = paddle.io.DataLoader(EvalSamples(dataset, _val_subset(val_items, cfg.val_max_images), pre, main_prep),
                                      batch_size=4, num_workers=0)

    step = state["step"]
    bar = tqdm(total=cfg.iters, initial=step, unit="it", desc="train", disable=not progress or rank != 0)
    t0, seen = time.monotonic(), 0
    model.train()
    while step < cfg.iters:
        sampler.epoch = samples.epoch = state["epoch"]
        for images, labels in loader:
            if frozen is not None:
                frozen.freeze(step < cfg.freeze_backbone)
            logits = model(images)
            total, parts = loss_fn(logits, labels)
            total.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
            step += 1
            state["epoch_step"] += 1
            seen += images.shape[0]
            bar.update(1)
            if step % cfg.log_every == 0 and rank == 0:
                row = {"step": step, "loss": float(total), "lr": sched.get_lr(),
                       **{k: float(v) for k, v in parts.items()},
                       "images_per_s": seen / max(time.monotonic() - t0, 1e-6)}
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                _append_csv(run / "metrics.csv", row)
                log.info("step %d loss %.4f %s lr %.2e %.1f img/s", step, row["loss"],
                         " ".join(f"{k} {float(v):.4f}" for k, v in parts.items()), row["lr"], row["images_per_s"])
            if (step % cfg.eval_every == 0 or step == cfg.iters) and rank == 0:
                miou, per_class = evaluate_model(model, val_loader, classes)
                model.train()
                state.update(step=step)
                if miou > state["best_miou"]:
                    state.update(best_miou=miou, best_step=step)
                    save_weights(run / "best", _unwrap(model))
                save_weights(run / "last", _unwrap(model))
                save_optimizer(run / "last", opt, _unwrap(model))
                _write_yaml(run / "state.yaml", state)  # last: it names a complete checkpoint
                _append_csv(run / "metrics.csv", {"step": step, "val_miou": miou,
                                                   **{f"val_iou_{k}": v for k, v in per_class.items()}})
                log.info("step %d validation mean IoU (tissues) %.4f [%s] best %.4f @ %d", step, miou,
                         ", ".join(f"{k} {v:.3f}" for k, v in per_class.items()), state["best_miou"], state["best_step"])
            if step >= cfg.iters:
                break  # mid-epoch: the state keeps this epoch and the position in it
        else:
            state["epoch"] += 1
            state["epoch_step"] = 0
    bar.close()
    summary = {"run": str(run), "steps": step, "best_val_miou": state["best_miou"], "best_step": state["best_step"],
               "minutes": round((time.monotonic() - t0) / 60, 1)}
    if rank == 0:
        _write_yaml(run / "state.yaml", state)
        log.info("done: %s", summary)
    return summary


def evaluate_model(model, loader, classes: ClassTable) -> tuple[float, dict[str, float]]:
    """Mean IoU over tissue classes (all but background) and per-class IoU, at the input size."""
    model.eval()
    cm = ConfusionMatrix(len(classes), classes.ignore_index)
    with paddle.no_grad():
        for images, labels in loader:
            logits = model(images)
            logits = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
            pred = logits.argmax(axis=1).numpy().astype(np.uint8)
            for t, p in zip(labels.numpy().astype(np.uint8), pred):
                cm.update(t, p)
    iou = scores_from_matrix(cm.matrix)["iou"]
    per_class = {c.name: float(iou[c.id]) for c in classes.classes}
    miou = mean_iou(cm.matrix)
    return (miou if np.isfinite(miou) else 0.0), per_class


# -- helpers ---------------------------------------------------------------------------------
def _extra_pool(path: str, classes: ClassTable) -> tuple[Dataset, list]:
    extra = load_dataset(path)
    if extra.classes.names != classes.names:
        raise EndoSpineError(f"{path}: classes {extra.classes.names} differ from the main dataset's {classes.names}")
    # Only an extra dataset's train split is used (all its images when it has no split lists):
    # validation and test stay on the main dataset, never on GAN or other extra images.
    items = extra.splits.get("train", []) if extra.splits else extra.items
    if not items:
        raise EndoSpineError(f"{path}: extra dataset has no training images (only its train split is used)")
    return extra, items


def _check_real_only(dataset: Dataset) -> None:
    """Validation and test judge the model on real (or engine-rendered) images, never GAN ones."""
    for name in ("val", "test"):
        gan = sum(it.source == "gan" for it in dataset.splits.get(name, []))
        if gan:
            raise EndoSpineError(f"{dataset.root}: the {name} split holds {gan} GAN-synthesized images; "
                                 f"GAN images may only be training data (--extra-data)")


def _prepare_run_dir(run: Path, resume: bool) -> None:
    if resume:
        if not (run / "state.yaml").is_file():
            raise EndoSpineError(f"{run}: nothing to resume (no state.yaml)")
        return
    if (run / "state.yaml").exists() or stored(run / "last", WEIGHTS):
        raise EndoSpineError(f"{run}: already holds a training run (use --resume, or another --out)")
    run.mkdir(parents=True, exist_ok=True)


def _load_resume(run: Path, model, opt, trust_pickle: bool = False) -> dict:
    """state.yaml's counters, the last weights and the optimizer state (safetensors; old pickle files
    only with trust_pickle)."""
    path = run / "state.yaml"
    state = read_yaml(path, "training state file")
    if not isinstance(state, dict):
        raise EndoSpineError(f"{path}: not a training state file")
    state.setdefault("epoch_step", 0)  # written before resume kept the position: the epoch restarts
    for key in ("step", "best_step", "epoch", "epoch_step"):
        if type(state.get(key)) is not int or state[key] < 0:
            raise EndoSpineError(f"{path}: {key} must be a whole number >= 0, not {state.get(key)!r}")
    if not isinstance(state.get("best_miou"), (int, float)) or isinstance(state["best_miou"], bool):
        raise EndoSpineError(f"{path}: best_miou must be a number, not {state.get('best_miou')!r}")
    load_weights(model, run / "last", trust_pickle)
    load_optimizer(opt, model, run / "last", trust_pickle)
    log.info("resumed %s at step %d", run, state["step"])
    return state


class _ResumableBatches(paddle.io.BatchSampler):
    """The epoch's batches; after a resume, the first epoch leaves out the `skip` already trained on."""

    skip = 0

    def __iter__(self):
        skip, self.skip = self.skip, 0
        return itertools.islice(super().__iter__(), skip, None)


def _distributed_setup() -> tuple[int, int]:
    world = paddle.distributed.get_world_size()
    if world > 1:
        paddle.distributed.init_parallel_env()
    return paddle.distributed.get_rank(), world


class _Encoder:
    """The encoder of a fine-tune, frozen for its first steps. Frozen, its trainable parameters get no
    gradient, so AdamW leaves them (and their moments) alone, and its batch norms use and keep their
    running statistics."""

    def __init__(self, layer):
        self.layer = layer
        self.trainable = [p for p in layer.parameters() if not p.stop_gradient]  # not the running statistics

    def freeze(self, frozen: bool) -> None:
        for p in self.trainable:
            p.stop_gradient = frozen
        if frozen:
            self.layer.eval()
        else:
            self.layer.train()


def _unwrap(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def _val_subset(items: list, limit: int) -> list:
    if not limit or len(items) <= limit:
        return items
    return items[:: max(1, len(items) // limit)][:limit]


def _sources(items) -> str:
    counts: dict[str, int] = {}
    for it in items:
        counts[it.source] = counts.get(it.source, 0) + 1
    return "+".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _gan_note(items) -> str:
    gan = sum(it.source == "gan" for it in items)
    return f", {gan} GAN-synthetic images" if gan else ""


def _data_summary(dataset: Dataset, pools, shares, val_items, weights) -> dict:
    return {
        "classes": dataset.classes.to_dict(),
        "train": [{"dataset": str(ds.root), "name": ds.name, "images": len(items), "sources": _sources(items),
                   "clips": len({it.clip for it in items}), "batch_share": round(share, 4),
                   "gan_images": sum(it.source == "gan" for it in items)}
                  for (ds, items), share in zip(pools, shares)],
        "val": {"dataset": str(dataset.root), "images": len(val_items), "sources": _sources(val_items)},
        "test": {"images": len(dataset.splits.get("test", []))},
        "class_weights": None if weights is None else [round(float(w), 4) for w in weights],
    }


def _setup_logging(run: Path | None) -> None:
    log.setLevel(logging.INFO)
    log.handlers.clear()
    log.propagate = False
    if run is not None:
        handler = logging.FileHandler(run / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)


def _write_yaml(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_yaml(data), encoding="utf-8")
    os.replace(tmp, path)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["key", "value", "step"])
        for k, v in row.items():
            if k != "step":
                writer.writerow([k, f"{v:.6g}" if isinstance(v, float) else v, row["step"]])
