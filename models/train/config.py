"""Training settings: one dataclass, loaded from a YAML file, overridden by command-line flags."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from models.augment import AugmentConfig
from models.core.errors import EndoSpineError
from models.core.yamlio import read_yaml
from models.nets import ARCHS


@dataclass(frozen=True)
class ExtraData:
    path: str
    ratio: float  # share of each batch drawn from this dataset

    @classmethod
    def parse(cls, text: str) -> "ExtraData":
        path, _, ratio = text.rpartition(":") if ":" in text else (text, "", "")
        try:
            value = float(ratio) if ratio else 0.3
        except ValueError:
            raise EndoSpineError(f"--extra-data {text!r}: expected DIR or DIR:RATIO with RATIO in (0, 1)") from None
        if not 0 < value < 1:
            raise EndoSpineError(f"--extra-data {text!r}: RATIO must be in (0, 1)")
        return cls(path or text, value)


@dataclass(frozen=True)
class LossConfig:
    ce: float = 1.0
    dice: float = 1.0
    class_weights: str = "auto"   # "auto" (inverse sqrt pixel frequency) or "none"
    ohem_fraction: float = 0.0    # >0: CE over only the hardest fraction of valid pixels

    def __post_init__(self) -> None:
        if self.class_weights not in ("auto", "none"):
            raise ValueError("loss.class_weights must be 'auto' or 'none'")
        if not 0 <= self.ohem_fraction < 1:
            raise ValueError("loss.ohem_fraction must be in [0, 1)")
        if self.ce < 0 or self.dice < 0 or self.ce + self.dice == 0:
            raise ValueError("loss weights ce and dice must be >= 0 and not both 0")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "liteseg-cpu"
    input_size: int = 384          # the exported model's square input
    crop: str = "center-square"    # how a frame becomes the model's view (models/core/runtime/preprocess.py)
    iters: int = 6000
    batch_size: int = 8
    lr: float = 0.002
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    eval_every: int = 500
    log_every: int = 20
    workers: int = 1
    seed: int = 0
    val_max_images: int = 0        # 0 = the whole val split
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    extra_data: tuple[ExtraData, ...] = ()
    profile: str | None = None     # endoscope profile of the tower that recorded --data (models/core/optics/profile.py);
                                   # None: the default (automatic field of view, no color change)

    def __post_init__(self) -> None:
        if self.model not in ARCHS:
            raise ValueError(f"model must be one of {', '.join(ARCHS)}")
        if self.input_size % 128 or self.input_size <= 0:
            raise ValueError(f"input_size {self.input_size} must be a positive multiple of 128")
        for name in ("iters", "batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if sum(e.ratio for e in self.extra_data) >= 1:
            raise ValueError("extra_data ratios must add up to less than 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"]["scale"] = list(self.augment.scale)
        d["augment"]["gamma"] = list(self.augment.gamma)
        d["extra_data"] = [asdict(e) for e in self.extra_data]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        try:
            d = dict(d or {})
            known = {f.name for f in fields(cls)}
            unknown = set(d) - known
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            if "loss" in d:
                d["loss"] = LossConfig(**d["loss"])
            if "augment" in d:
                a = dict(d["augment"])
                for k in ("scale", "gamma"):
                    if k in a:
                        a[k] = tuple(a[k])
                d["augment"] = AugmentConfig(**a)
            if "extra_data" in d:
                d["extra_data"] = tuple(ExtraData(**e) for e in d["extra_data"])
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise EndoSpineError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path | None, **overrides) -> "TrainConfig":
        data: dict = {}
        if path is not None:
            path = Path(path)
            data = read_yaml(path, "config file") or {}
            if not isinstance(data, dict):
                raise EndoSpineError(f"{path}: config must be a mapping of settings")
        cfg = cls.from_dict(data, source=str(path or "config"))
        overrides = {k: v for k, v in overrides.items() if v is not None}
        try:
            return replace(cfg, **overrides)
        except (TypeError, ValueError) as exc:
            raise EndoSpineError(f"command line: {exc}") from None
