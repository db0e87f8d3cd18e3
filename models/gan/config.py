"""GAN settings: one dataclass, written to GAN_DIR/config.yaml, read back by resume, synthesis and quality.

Every field is typed and ranged (RANGES; models.core.schema) before any work starts: a wrong
field is one line naming the file (or the command line) and the field.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from models.core import schema
from models.core.errors import EndoSpineError
from models.core.yamlio import read_yaml

ADVERSARIAL = ("hinge", "lsgan")
BIG = 10 ** 8  # steps: more than anyone runs
RANGES: schema.Ranges = {
    "size": (32, 1024), "ngf": (1, 512), "ndf": (1, 512), "d_layers": (1, 5), "iters": (1, BIG),
    "batch_size": (1, 4096), "lr_g": (1e-8, 10.0), "lr_d": (1e-8, 10.0), "beta1": (0.0, 0.999999),
    "beta2": (0.0, 0.999999), "l1": (0.0, 1e4), "feature_matching": (0.0, 1e4), "ema": (0.0, 0.999999),
    "crop_min": (0.01, 1.0), "sample_every": (1, BIG), "checkpoint_every": (1, BIG), "log_every": (1, BIG),
    "seed": (0, 2 ** 31 - 1),
}


@dataclass(frozen=True)
class GanConfig:
    size: int = 128                 # square side the generator works at (power of two, 32..1024)
    ngf: int = 16                   # generator width (first layer's channels; 64 on a GPU)
    ndf: int = 16                   # discriminator width (64 on a GPU)
    d_layers: int = 3               # stride-2 layers of the PatchGAN (3: 70x70 receptive field)
    iters: int = 10000
    batch_size: int = 4
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    adversarial: str = "hinge"      # "hinge" or "lsgan"
    l1: float = 20.0                # weight of |generated - real| (images in [-1, 1])
    feature_matching: float = 10.0  # weight of the discriminator feature-matching loss (0 = off)
    ema: float = 0.999              # generator weights averaged over steps; samples and synthesis use them
    crop_min: float = 0.85          # random square crop of at least this share of the short side
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        schema.check(self, RANGES)  # types and ranges, also of a copy with command-line overrides
        if self.size & (self.size - 1):
            raise ValueError(f"size: {self.size} must be a power of two in 32..1024")
        if self.adversarial not in ADVERSARIAL:
            raise ValueError(f"adversarial: must be one of {', '.join(ADVERSARIAL)}, got {self.adversarial!r}")

    @property
    def depth(self) -> int:
        """Stride-2 stages of the generator: down to a 4x4 bottleneck."""
        return self.size.bit_length() - 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "GanConfig":
        try:
            return schema.build(cls, d if d is not None else {}, RANGES)
        except ValueError as exc:
            raise EndoSpineError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path | None, **overrides) -> "GanConfig":
        data: dict = {}
        if path is not None:
            data = read_yaml(Path(path), "GAN config file") or {}
            if not isinstance(data, dict):
                raise EndoSpineError(f"{path}: config must be a mapping of settings")
        cfg = cls.from_dict(data, source=str(path or "config"))
        try:
            return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        except ValueError as exc:
            raise EndoSpineError(f"command line: {exc}") from None
