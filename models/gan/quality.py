"""`endospine-model gan quality`: how far generated images are from real ones, on a held-out split.

The generator paints the label maps of the held-out split (default val; the GAN never saw it);
the generated set is compared with the real images of the same maps, and, as the yardstick,
a same-sized sample of real train images is compared with them too. Distances (models/gan/
distance.py, no pretrained network): SWD x 1e3 on Laplacian-pyramid patches (ProGAN) per level,
and FD-CT, a Fréchet distance on 24 color/texture features. A picture grid shows, per row, the
label map, the generated image, the real image of that map, and the train image nearest to the
generated one in standardized feature space (a copy of a train image would show up there).

Writes GAN_DIR/quality-<split>.json and .png (or into --out).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic, write_image
from models.core.paddle_env import import_paddle
from models.dataset import load_dataset
from models.gan.data import PairSource
from models.gan.distance import FEATURE_NAMES, frechet_distance, image_features, pyramid_swd, standardizer
from models.gan.grid import grid, label_tile
from models.gan.nets import encode_labels, to_image
from models.gan.store import load_generator
from models.gan.synthesize import check_same_classes

paddle = import_paddle()

METHOD = {
    "swd_x1e3": "sliced Wasserstein distance x1e3 between 7x7 RGB patches of Laplacian-pyramid levels (ProGAN, "
                "Karras et al. 2018): 128 patches per image and level, descriptors normalized per color channel "
                "within each set, 512 random directions x 4 repeats; per level (side in px) and mean; lower is better",
    "fd_color_texture": f"Frechet distance between Gaussians fitted to {len(FEATURE_NAMES)} color/texture features "
                        "per image (CIELAB mean/std/10-50-90th percentiles; |Laplacian|, Laplacian std, gradient "
                        "magnitude of L at 3 scales), inside the field of view, standardized by the real split's "
                        "mean and std; no pretrained network; lower is better",
    "train_vs_real": "the same distances between real train images (same count) and the real split: the level "
                     "two real samples differ by",
}


def _evenly(items: list, limit: int) -> list:
    return items if len(items) <= limit else items[:: max(1, len(items) // limit)][:limit]


def gan_quality(gan_dir: str | Path, data_dir: str | Path, split: str = "val", out: str | Path | None = None,
                max_images: int = 200, rows: int = 8, seed: int = 0, progress: bool = True,
                trust_pickle: bool = False) -> dict:
    info, generator = load_generator(gan_dir, trust_pickle=trust_pickle)
    dataset = load_dataset(data_dir)
    check_same_classes(dataset, info.classes, gan_dir)
    if split == "train":
        raise EndoSpineError("--split train: quality is measured on a split the GAN did not train on (val or test)")
    held = _evenly(dataset.split(split), max_images)
    train = dataset.split("train")
    if len(held) < 2 or len(train) < 2:
        raise EndoSpineError(f"{dataset.root}: need at least 2 images in the {split} and train splits")
    n = min(len(held), len(train))
    held = held[:n]
    picked = np.random.default_rng(seed).choice(len(train), size=n, replace=False)
    size = info.cfg.size
    real, labels = _read_views(PairSource(dataset, held, size), progress, f"read {split}")
    train_imgs, train_labels = _read_views(PairSource(dataset, [train[i] for i in sorted(picked)], size), progress,
                                           "read train")
    fake = np.concatenate([_generate(generator, labels[k:k + 8], dataset.classes) for k in range(0, n, 8)])

    ignore = dataset.classes.ignore_index
    f_real = np.stack([image_features(im, lab != ignore) for im, lab in zip(real, labels)])
    f_fake = np.stack([image_features(im, lab != ignore) for im, lab in zip(fake, labels)])
    f_train = np.stack([image_features(im, lab != ignore) for im, lab in zip(train_imgs, train_labels)])
    z = standardizer(f_real)
    result = {
        "gan": str(info.root), "step": info.step, "data": str(dataset.root), "split": split, "images": n,
        "size": size, "method": METHOD,
        "generated_vs_real": {"swd_x1e3": pyramid_swd(fake, real, seed),
                              "fd_color_texture": round(frechet_distance(z(f_fake), z(f_real)), 4)},
        "train_vs_real": {"swd_x1e3": pyramid_swd(train_imgs, real, seed),
                          "fd_color_texture": round(frechet_distance(z(f_train), z(f_real)), 4)},
    }
    if n <= 2 * len(FEATURE_NAMES):
        result["note"] = (f"only {n} images for {len(FEATURE_NAMES)} features: the Gaussians of FD-CT are poorly "
                          f"determined; use a split of at least {4 * len(FEATURE_NAMES)} images")
    out_dir = Path(out) if out else info.root
    png = out_dir / f"quality-{split}.png"
    write_image(png, _nearest_grid(z(f_fake), z(f_train), labels, fake, real, train_imgs, dataset.classes, rows))
    result["grid"] = str(png)
    write_bytes_atomic(out_dir / f"quality-{split}.json", (json.dumps(result, indent=2) + "\n").encode("utf-8"))
    return result


def _read_views(source: PairSource, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [source.view(i) for i in tqdm(range(len(source)), unit="img", desc=desc, disable=not progress)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _generate(generator, labels: np.ndarray, classes) -> np.ndarray:
    with paddle.no_grad():
        return to_image(generator(paddle.to_tensor(encode_labels(labels, classes))))


def _nearest_grid(z_fake, z_train, labels, fake, real, train_imgs, classes, rows: int) -> np.ndarray:
    """label | generated | real (same map) | nearest train image by feature distance."""
    lines, notes = [], []
    for k in np.unique(np.linspace(0, len(fake) - 1, min(rows, len(fake))).round().astype(int)):  # spread out
        dist = np.linalg.norm(z_train - z_fake[k], axis=1)
        j = int(dist.argmin())
        lines.append((label_tile(labels[k], classes), fake[k], real[k], train_imgs[j]))
        notes.append(f"nearest train d={dist[j]:.2f}")
    return grid(lines, ["label", "generated", "real", "nearest train"], notes)
