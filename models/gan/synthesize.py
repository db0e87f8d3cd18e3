"""`endospine-model gan synthesize`: new image/label pairs from a trained GAN, as a dataset.

Label maps come from a dataset's train split, as square views at the GAN's size. The first pass
over them (a seeded permutation) keeps each map unchanged with probability 1 - `perturb`; every
other output is a NEW map made by perturbing one (models/gan/perturb.py: flips, rotation + zoom,
elastic warp, and sometimes a region of a second map). The generator (weight average) paints
each map. The output is an EndoSpine dataset (docs/ARCHITECTURE.md) whose images are all in the train split,
every item has source "gan" and clip "gan-<clip of the map it came from>", and dataset.yaml records
the generator (GAN folder, step) and, per image, the source label map and the operations applied.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import read_label, write_image, write_label
from models.core.paddle_env import import_paddle
from models.dataset import Dataset, Item, StagedDir, load_dataset, write_meta, write_splits
from models.gan.data import label_view
from models.gan.nets import encode_labels, to_image
from models.gan.perturb import PerturbConfig, perturb
from models.gan.store import load_generator

paddle = import_paddle()
ENGINE = "endospine-gan/1"


def check_same_classes(dataset: Dataset, classes: ClassTable, gan_dir: str | Path) -> None:
    if dataset.classes.names != classes.names or dataset.classes.ignore_index != classes.ignore_index:
        raise EndoSpineError(f"{dataset.root}: classes {dataset.classes.names} differ from those the GAN in "
                             f"{gan_dir} was trained on ({classes.names})")


def plan_maps(items: list[Item], n: int, seed: int, perturb_share: float) -> list[tuple[Item, Item | None]]:
    """Per output i: (label map it starts from, second map to perturb with or None to keep it unchanged).

    Unchanged maps are never repeated (the first pass is a permutation), so no two outputs are copies.
    """
    order = np.random.default_rng([seed, 0xA11]).permutation(len(items))
    plan = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 0xB0])
        base = items[order[i]] if i < len(items) else items[int(rng.integers(len(items)))]
        keep = i < len(items) and rng.random() >= perturb_share
        plan.append((base, None if keep else items[int(rng.integers(len(items)))]))
    return plan


def synthesize(gan_dir: str | Path, labels_dir: str | Path, out: str | Path, n: int | None = None, seed: int = 0,
               perturb_share: float = 0.8, cfg: PerturbConfig = PerturbConfig(), batch: int = 8,
               progress: bool = True, trust_pickle: bool = False) -> Dataset:
    if not 0 <= perturb_share <= 1:
        raise EndoSpineError(f"--perturb {perturb_share}: expected a share in 0..1")
    info, generator = load_generator(gan_dir, trust_pickle=trust_pickle)
    source = load_dataset(labels_dir)
    check_same_classes(source, info.classes, gan_dir)
    items = source.split("train")
    if not items:
        raise EndoSpineError(f"{source.root}: the train split is empty (label maps come from it)")
    n = n or len(items)
    size, classes = info.cfg.size, info.classes
    plan = plan_maps(items, n, seed, perturb_share)
    made: list[Item] = []
    derivation = []
    bar = tqdm(total=n, unit="img", desc="synthesize", disable=not progress)
    with StagedDir(out) as tmp:
        for start in range(0, n, batch):
            maps = []
            for i in range(start, min(n, start + batch)):
                base, other = plan[i]
                lab = label_view(read_label(source.path(base.label)), size)
                ops: list[str] = []
                if other is not None:
                    second = label_view(read_label(source.path(other.label)), size)
                    lab, ops = perturb(lab, np.random.default_rng([seed, i, 0xC0]), cfg, second, classes.ignore_index)
                    ops = [f"{op} with {other.label}" if op.startswith("recombine") else op for op in ops]
                maps.append(lab)
                derivation.append({"image": f"images/gan_{i:06d}.png", "from": base.label, "ops": ops})
                made.append(Item(f"images/gan_{i:06d}.png", f"labels/gan_{i:06d}.png", f"gan-{base.clip}", i, "gan"))
            cond = encode_labels(np.stack(maps), classes, f"{source.root} (train split)")
            with paddle.no_grad():
                images = to_image(generator(paddle.to_tensor(cond)))
            for item, image, lab in zip(made[start:], images, maps):
                write_image(tmp / item.image, image)
                write_label(tmp / item.label, lab)
            bar.update(len(maps))
        bar.close()
        generator_info = {"engine": ENGINE, "gan": str(Path(gan_dir).resolve()), "step": info.step, "size": size,
                          "weights": "generator_ema", "labels": str(source.root.resolve()), "labels_split": "train",
                          "seed": seed, "perturb_share": perturb_share,
                          "perturb": {**asdict(cfg), "scale": list(cfg.scale)}}
        write_meta(tmp, classes, made, name=f"gan-{source.name}",
                   extra={"generator": generator_info, "derivation": derivation})
        write_splits(tmp, {"train": made})
    return load_dataset(out)
