"""GAN settings: one dataclass, written to GAN_DIR/config.yaml, read back by resume, synthesis and quality."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from models.core.errors import EndoSpineError
from models.core.yamlio import read_yaml

ADVERSARIAL = ("hinge", "lsgan")


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
        if self.size < 32 or self.size > 1024 or self.size & (self.size - 1):
            raise ValueError(f"size {self.size} must be a power of two in 32..1024")
        for name in ("ngf", "ndf", "iters", "batch_size", "sample_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.d_layers <= 5:
            raise ValueError("d_layers must be in 1..5")
        if self.adversarial not in ADVERSARIAL:
            raise ValueError(f"adversarial must be one of {ADVERSARIAL}")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError("learning rates must be positive")
        if self.l1 < 0 or self.feature_matching < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0 <= self.ema < 1:
            raise ValueError("ema must be in [0, 1)")
        if not 0 < self.crop_min <= 1:
            raise ValueError("crop_min must be in (0, 1]")

    @property
    def depth(self) -> int:
        """Stride-2 stages of the generator: down to a 4x4 bottleneck."""
        return self.size.bit_length() - 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "GanConfig":
        try:
            d = dict(d or {})
            unknown = set(d) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            return cls(**d)
        except (TypeError, ValueError) as exc:
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
        except (TypeError, ValueError) as exc:
            raise EndoSpineError(f"command line: {exc}") from None
