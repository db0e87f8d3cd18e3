"""Simulated readers: reference label maps perturbed the way human labelers err, at three skills.

For a demonstration study on synthetic data only. A simulated reader is not a surgeon: its
folder carries reader.yaml with `simulated: true`, and every report marks it SIMULATED.

Errors drawn per image (each reader and image gets its own seeded random state; how strong each
error is varies from image to image around the skill's level, as a labeler has easy and hard
images):
- boundary noise: the label map is resampled through a smooth random displacement field, so
  borders wander by a few pixels (a labeler's polygon that does not hug the edge);
- missed thin structures: parts of a tissue thinner than a few pixels (a morphological opening
  removes them) become background (frayed ligament strands, slivers of disc are left out);
- class confusions: whole connected regions of a tissue are given another tissue's label
  (ligamentum flavum and disc are both creamy white).
Reference ignore pixels stay ignore. Pixel sizes are for a 512 px short side and scale with it.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic, write_label
from models.core.yamlio import dump_yaml
from models.dataset import StagedDir, load_dataset
from models.evaluate.labels import read_reference
from models.predict import split_items

READER_FORMAT = "endospine-reader/1"


@dataclass(frozen=True)
class Skill:
    boundary_px: float    # RMS border displacement
    smoothness_px: float  # length scale of the displacement field
    thin_px: int          # parts thinner than this are missed
    confusion: float      # chance that a tissue region takes another tissue's label
    spread: float = 0.5   # per-image strength is drawn from [1 - spread, 1 + spread] x the level

    def __post_init__(self) -> None:
        if self.boundary_px < 0 or self.smoothness_px <= 0 or self.thin_px < 0 or not 0 <= self.confusion <= 1:
            raise ValueError("skill values out of range")
        if not 0 <= self.spread < 1:
            raise ValueError("spread must be in [0, 1)")


SKILLS: dict[str, Skill] = {
    "senior": Skill(boundary_px=2.0, smoothness_px=14.0, thin_px=3, confusion=0.02),
    "intermediate": Skill(boundary_px=3.5, smoothness_px=12.0, thin_px=5, confusion=0.05),
    "junior": Skill(boundary_px=5.5, smoothness_px=10.0, thin_px=7, confusion=0.08),
}


def perturb(labels: np.ndarray, skill: Skill, classes: ClassTable, rng: np.random.Generator) -> np.ndarray:
    """One simulated reading of a reference label map (HxW uint8 class ids, ignore kept)."""
    ignore = labels == classes.ignore_index
    scale = min(labels.shape) / 512
    strength = rng.uniform(1 - skill.spread, 1 + skill.spread)
    out = _displace(labels, skill.boundary_px * scale * strength, skill.smoothness_px * scale, rng)
    out = np.where(ignore | (out == classes.ignore_index), labels, out)  # ignore neither moves nor spreads
    tissues = [c.id for c in classes.foreground]
    k = int(round(skill.thin_px * scale * strength))
    if k >= 2:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        for c in tissues:
            mask = (out == c).astype(np.uint8)
            kept = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
            out[(mask > 0) & (kept == 0)] = 0
    if len(tissues) > 1 and skill.confusion > 0:
        out = _confuse(out, labels, tissues, min(1.0, skill.confusion * strength), rng)
    out[ignore] = classes.ignore_index
    return out


def _displace(labels: np.ndarray, amplitude: float, smoothness: float, rng: np.random.Generator) -> np.ndarray:
    if amplitude <= 0:
        return labels.copy()
    h, w = labels.shape
    field = []
    for _ in range(2):
        noise = rng.standard_normal((h, w)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), smoothness)
        field.append(smooth * np.float32(amplitude / max(float(smooth.std()), 1e-6)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(labels, xs + field[0], ys + field[1], cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def _confuse(labels: np.ndarray, reference: np.ndarray, tissues: list[int], chance: float,
             rng: np.random.Generator) -> np.ndarray:
    """Relabel, with the given chance, each connected region of a tissue in the reference (where the
    reading still has that tissue). The draws depend only on the reference, so a larger chance with
    the same random state confuses a superset of the regions."""
    out = labels.copy()
    for c in tissues:
        n, comp = cv2.connectedComponents((reference == c).astype(np.uint8), connectivity=8)
        others = [t for t in tissues if t != c]
        draws, targets = rng.random(n - 1), rng.integers(len(others), size=n - 1)
        for region in np.flatnonzero(draws < chance) + 1:
            out[(comp == region) & (labels == c)] = others[targets[region - 1]]
    return out


def simulate_readers(data_dir: str | Path, out: str | Path, split: str = "test", seed: int = 0,
                     levels: tuple[str, ...] = ("junior", "intermediate", "senior"), progress: bool = True) -> Path:
    """Write OUT/<level>/<image stem>.png and OUT/<level>/reader.yaml for each skill level."""
    unknown = [lv for lv in levels if lv not in SKILLS]
    if unknown or not levels:
        raise EndoSpineError(f"--levels: unknown skill level(s) {', '.join(unknown) or '(none given)'}; "
                             f"known: {', '.join(SKILLS)}")
    dataset = load_dataset(data_dir)
    items = split_items(dataset, split)
    with StagedDir(out) as tmp:
        for item in tqdm(items, unit="img", desc="simulate readers", disable=not progress):
            stem = Path(item.image).stem
            reference = read_reference(dataset.path(item.label), dataset.classes)
            for level in levels:
                rng = np.random.default_rng(_seed(seed, level, stem))
                write_label(tmp / level / f"{stem}.png", perturb(reference, SKILLS[level], dataset.classes, rng))
        for level in levels:
            card = {"format": READER_FORMAT, "name": level, "simulated": True,
                    "method": "reference label maps perturbed by software (boundary noise, missed thin "
                              "structures, class confusions); not a human reader",
                    "skill": asdict(SKILLS[level]), "seed": seed, "reference": str(dataset.root),
                    "split": split, "images": len(items)}
            write_bytes_atomic(tmp / level / "reader.yaml",
                               dump_yaml(card, width=120).encode("utf-8"))
    return Path(out)


def _seed(seed: int, level: str, stem: str) -> int:
    """A stable seed per (seed, reader, image): same inputs, same pixels, in any order or subset."""
    digest = hashlib.sha256(f"{seed}/{level}/{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
