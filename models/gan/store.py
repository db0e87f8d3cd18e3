"""A GAN folder on disk: what `gan train` writes and what synthesis and quality read back.

    GAN_DIR/config.yaml      settings (models/gan/config.py)
    GAN_DIR/data.yaml        class table and the training data (dataset, split, images per source)
    GAN_DIR/state.yaml       step reached and the checkpoint folder that holds it (written last)
    GAN_DIR/checkpoints/step_NNNNNNN/  generator, generator_ema, discriminator (.safetensors),
                             opt_g, opt_d (.opt.safetensors, keyed by structured parameter names)
    GAN_DIR/samples/step_NNNNNNN.png   label | generated | real grids written during training
    GAN_DIR/train.log, metrics.csv

A checkpoint folder is complete before state.yaml names it, and older ones are removed only
after, so an interrupted save leaves the previous checkpoint usable. Checkpoints are safetensors
(models/train/checkpoint.py): loading one never runs code. GAN folders of older versions hold
pickle files (.pdparams, .pdopt), which load only with trust_pickle (--trust-pickle).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.yamlio import dump_yaml, read_yaml
from models.gan.config import GanConfig
from models.gan.nets import UNetGenerator, build_gan
from models.train.checkpoint import checkpoint_path, load_optimizer, load_weights, save_optimizer, save_weights, stored

PARTS = ("generator", "generator_ema", "discriminator")


@dataclass(frozen=True)
class GanInfo:
    root: Path
    cfg: GanConfig
    classes: ClassTable
    data: dict        # data.yaml
    step: int
    checkpoint: Path  # folder of the newest complete checkpoint


def write_yaml(path: Path, data) -> None:
    write_bytes_atomic(path, dump_yaml(data).encode("utf-8"))


def read_gan_dir(root: str | Path) -> GanInfo:
    """The settings, class table and newest checkpoint of a trained GAN folder (one-line errors)."""
    root = Path(root)
    if not root.is_dir():
        raise EndoSpineError(f"{root}: GAN folder not found (make one with 'endospine-model gan train')")
    for name in ("config.yaml", "data.yaml", "state.yaml"):
        if not (root / name).is_file():
            raise EndoSpineError(f"{root / name}: missing (not a GAN folder, or training has not saved a checkpoint)")
    cfg = GanConfig.load(root / "config.yaml")
    data = read_yaml(root / "data.yaml", "GAN data file")
    if not isinstance(data, dict):
        raise EndoSpineError(f"{root / 'data.yaml'}: not a GAN data file")
    classes = ClassTable.from_dict(data.get("classes"), source=str(root / "data.yaml"))
    state = read_yaml(root / "state.yaml", "GAN state file")
    try:
        step, folder = int(state["step"]), root / str(state["checkpoint"])
    except (TypeError, KeyError, ValueError):
        raise EndoSpineError(f"{root / 'state.yaml'}: expected 'step' and 'checkpoint'") from None
    for part in PARTS:
        if stored(folder / part) is None:
            raise EndoSpineError(f"{checkpoint_path(folder / part)}: checkpoint file missing")
    return GanInfo(root, cfg, classes, data, step, folder)


def load_generator(root: str | Path, ema: bool = True, trust_pickle: bool = False) -> tuple[GanInfo, UNetGenerator]:
    """The trained generator (weight average by default) in eval mode (old pickle weights only with trust_pickle)."""
    info = read_gan_dir(root)
    generator, _ = build_gan(info.cfg, len(info.classes))
    load_weights(generator, info.checkpoint / ("generator_ema" if ema else "generator"), trust_pickle)
    generator.eval()
    return info, generator


def save_checkpoint(root: Path, step: int, nets: dict, opts: dict) -> Path:
    """nets: {"generator": G, "generator_ema": G_ema, "discriminator": D}; opts: {"opt_g": (opt, G), ...}."""
    folder = root / "checkpoints" / f"step_{step:07d}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        save_weights(folder / name, net)
    for name, (opt, net) in opts.items():
        save_optimizer(folder / name, opt, net)
    write_yaml(root / "state.yaml", {"step": step, "checkpoint": folder.relative_to(root).as_posix()})
    for old in (root / "checkpoints").glob("step_*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(info: GanInfo, nets: dict, opts: dict, trust_pickle: bool = False) -> None:
    """Restore weights and optimizer moments saved by save_checkpoint (same structures; each file is
    checked against its network, old pickle files load only with trust_pickle)."""
    for name, net in nets.items():
        load_weights(net, info.checkpoint / name, trust_pickle)
    for name, (opt, net) in opts.items():
        load_optimizer(opt, net, info.checkpoint / name, trust_pickle)
