"""`endospine-model gan train`: the label-to-image GAN, trained on a dataset's train split only.

One step: G makes images from a batch of label maps; D scores (condition, real) and
(condition, fake) patches; G is updated with adversarial + L1 + feature-matching losses, then D
with its adversarial loss; an exponential moving average of G's weights is kept for samples and
synthesis. Batches are drawn with a generator seeded by (seed, step), so a resumed run sees the
same data as an uninterrupted one. Layout of the GAN folder: models/gan/store.py.
"""
from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import write_image
from models.core.paddle_env import import_paddle
from models.dataset import Dataset, load_dataset
from models.gan.config import GanConfig
from models.gan.data import PairSource
from models.gan.grid import grid, label_tile
from models.gan.losses import discriminator_loss, generator_loss
from models.gan.nets import build_gan, to_image
from models.gan.store import load_checkpoint, read_gan_dir, save_checkpoint, write_yaml

paddle = import_paddle()
log = logging.getLogger("endospine.gan")
ARCH_KEYS = ("size", "ngf", "ndf", "d_layers")


def make_optimizers(cfg: GanConfig, generator, discriminator):
    adam = paddle.optimizer.Adam
    return (adam(cfg.lr_g, beta1=cfg.beta1, beta2=cfg.beta2, parameters=generator.parameters()),
            adam(cfg.lr_d, beta1=cfg.beta1, beta2=cfg.beta2, parameters=discriminator.parameters()))


def train_step(cfg: GanConfig, generator, discriminator, opt_g, opt_d, cond: np.ndarray, real: np.ndarray) -> dict:
    """One generator and one discriminator update on a batch; returns the loss parts as floats."""
    cond_t, real_t = paddle.to_tensor(cond), paddle.to_tensor(real)
    n = real.shape[0]
    fake = generator(cond_t)
    # Real and (detached) fake through D in one batch: D has no batch statistics, so this is exact.
    scores, feats = discriminator(paddle.concat([cond_t, cond_t]), paddle.concat([real_t, fake.detach()]))
    d_loss = discriminator_loss(cfg.adversarial, scores[:n], scores[n:])
    fake_score, fake_feats = discriminator(cond_t, fake)
    g_loss, parts = generator_loss(cfg, fake, real_t, fake_score, fake_feats, [f[:n] for f in feats])
    opt_g.clear_grad()
    g_loss.backward()
    opt_g.step()
    opt_d.clear_grad()  # drops what g_loss left on D's weights
    d_loss.backward()
    opt_d.step()
    out = {k: float(v) for k, v in parts.items()}
    out.update(d_loss=float(d_loss), d_real=float(scores[:n].mean()), d_fake=float(scores[n:].mean()))
    return out


def update_ema(ema, model, beta: float) -> None:
    with paddle.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            paddle.assign(e * beta + p * (1 - beta), e)


def train_gan(data_dir: str | Path, gan_dir: str | Path, cfg: GanConfig, resume: bool = False,
              progress: bool = True, trust_pickle: bool = False) -> dict:
    root = Path(gan_dir)
    dataset = load_dataset(data_dir)
    items = _train_items(dataset)
    _prepare(root, dataset, cfg, resume)
    _setup_logging(root)
    paddle.seed(cfg.seed)
    classes = dataset.classes
    generator, discriminator = build_gan(cfg, len(classes))
    ema, _ = build_gan(cfg, len(classes))
    ema.set_state_dict(generator.state_dict())
    ema.eval()
    opt_g, opt_d = make_optimizers(cfg, generator, discriminator)
    nets = {"generator": generator, "generator_ema": ema, "discriminator": discriminator}
    opts = {"opt_g": (opt_g, generator), "opt_d": (opt_d, discriminator)}
    step = 0
    if resume:
        info = read_gan_dir(root)
        load_checkpoint(info, nets, opts, trust_pickle)
        step = info.step
        log.info("resumed %s at step %d", root, step)
    write_yaml(root / "config.yaml", cfg.to_dict())
    write_yaml(root / "data.yaml", {"classes": classes.to_dict(), "dataset": str(dataset.root), "name": dataset.name,
                                    "split": "train", "images": len(items), "sources": _sources(items)})
    source = PairSource(dataset, items, cfg.size, cfg.crop_min)
    samples = _sample_views(dataset, source, cfg)
    log.info("GAN %dx%d on %d train images of %s (%s); G %.2fM params, D %.2fM params", cfg.size, cfg.size,
             len(items), dataset.root, _sources(items), _count(generator), _count(discriminator))

    bar = tqdm(total=cfg.iters, initial=step, unit="it", desc="gan", disable=not progress)
    t0, start = time.monotonic(), step
    generator.train()
    discriminator.train()
    while step < cfg.iters:
        rng = np.random.default_rng([cfg.seed, step])
        index = rng.choice(len(source), size=cfg.batch_size, replace=len(source) < cfg.batch_size)
        cond, real, _ = source.batch(index, rng)
        parts = train_step(cfg, generator, discriminator, opt_g, opt_d, cond, real)
        update_ema(ema, generator, min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.iters:
            row = {"step": step, **parts, "s_per_iter": (time.monotonic() - t0) / (step - start)}
            bar.set_postfix(l1=f"{parts['l1']:.3f}", d=f"{parts['d_loss']:.3f}")
            _append_csv(root / "metrics.csv", row)
            log.info("step %d %s", step, " ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "step"))
        if step % cfg.sample_every == 0 or step == cfg.iters:
            write_samples(root / "samples" / f"step_{step:07d}.png", ema, samples, classes)
        if step % cfg.checkpoint_every == 0 or step == cfg.iters:
            save_checkpoint(root, step, nets, opts)
    bar.close()
    seconds = time.monotonic() - t0
    summary = {"gan": str(root), "steps": step, "minutes": round(seconds / 60, 1),
               "s_per_iter": round(seconds / max(step - start, 1), 3)}
    log.info("done: %s", summary)
    return summary


def write_samples(path: Path, generator, samples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                  classes) -> None:
    """A grid: per fixed sample, label map | generated (weight average) | real image."""
    cond = np.stack([s[1] for s in samples])
    with paddle.no_grad():
        fake = to_image(generator(paddle.to_tensor(cond)))
    rows = [(label_tile(lab, classes), img, real) for (_, _, lab, real), img in zip(samples, fake)]
    write_image(path, grid(rows, ["label", "generated", "real"], [s[0] for s in samples]))


# -- helpers ---------------------------------------------------------------------------------
def _train_items(dataset: Dataset) -> list:
    items = dataset.split("train")
    if not items:
        raise EndoSpineError(f"{dataset.root}: the train split is empty")
    gan = sum(it.source == "gan" for it in items)
    if gan:
        raise EndoSpineError(f"{dataset.root}: the train split holds {gan} GAN-synthesized images; "
                             f"train the GAN on real (or engine-rendered) images")
    return items


def _prepare(root: Path, dataset: Dataset, cfg: GanConfig, resume: bool) -> None:
    if resume:
        info = read_gan_dir(root)
        changed = [k for k in ARCH_KEYS if getattr(info.cfg, k) != getattr(cfg, k)]
        if changed:
            raise EndoSpineError(f"{root / 'config.yaml'}: cannot resume with other {', '.join(changed)}")
        if info.classes.names != dataset.classes.names:
            raise EndoSpineError(f"{dataset.root}: classes {dataset.classes.names} differ from the GAN's "
                                 f"{info.classes.names}")
        return
    if (root / "state.yaml").exists():
        raise EndoSpineError(f"{root}: already holds a GAN (use --resume, or another --out)")
    root.mkdir(parents=True, exist_ok=True)


def _sample_views(dataset: Dataset, source: PairSource, cfg: GanConfig, n: int = 4) -> list:
    """Fixed views to draw during training: n train items and, when there is one, n of the val split."""
    from models.gan.nets import encode_labels

    pools = [("train", source)]
    if dataset.splits.get("val"):
        pools.append(("val", PairSource(dataset, dataset.split("val"), cfg.size)))
    out = []
    for name, pool in pools:
        chosen = np.random.default_rng(cfg.seed).choice(len(pool), size=min(n, len(pool)), replace=False)
        for i in sorted(chosen.tolist()):
            real, lab = pool.view(i)
            out.append((f"{name} {Path(pool.items[i].image).stem}", encode_labels(lab[None], dataset.classes)[0],
                        lab, real))
    return out


def _sources(items) -> dict[str, int]:
    return dict(sorted(Counter(it.source for it in items).items()))


def _count(net) -> float:
    return sum(int(np.prod(p.shape)) for p in net.parameters()) / 1e6


def _setup_logging(root: Path) -> None:
    log.setLevel(logging.INFO)
    log.handlers.clear()
    log.propagate = False
    handler = logging.FileHandler(root / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)


def _append_csv(path: Path, row: dict) -> None:
    """metrics.csv: one row per logged step, one column per loss part."""
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
