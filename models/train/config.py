"""Training settings: one dataclass, loaded from a YAML file, overridden by command-line flags.

Every field is typed and ranged (RANGES; models.core.schema) before any work starts: a wrong
field in the file is one line naming the file and the field, a wrong flag one naming the flag's
setting (`command line: lr: ...`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from models.augment import AugmentConfig
from models.core import schema
from models.core.errors import EndoSpineError
from models.core.runtime.preprocess import CROPS
from models.core.yamlio import read_yaml
from models.nets import ARCHS

BIG = 10 ** 8  # steps, images: more than anyone runs
RANGES: schema.Ranges = {
    "input_size": (128, 2048), "iters": (1, BIG), "batch_size": (1, 4096), "lr": (1e-8, 10.0),
    "weight_decay": (0.0, 1.0), "warmup_iters": (0, BIG), "eval_every": (1, BIG), "log_every": (1, BIG),
    "workers": (0, 64), "seed": (0, 2 ** 31 - 1), "val_max_images": (0, BIG), "freeze_backbone": (0, BIG),
    "loss.ce": (0.0, 100.0), "loss.dice": (0.0, 100.0), "loss.ohem_fraction": (0.0, 1.0),
    "augment.crop": (128, 2048), "augment.scale": (0.05, 20.0), "augment.rotate": (0.0, 180.0),
    "augment.hflip": (0.0, 1.0), "augment.vflip": (0.0, 1.0), "augment.brightness": (0.0, 1.0),
    "augment.contrast": (0.0, 1.0), "augment.saturation": (0.0, 1.0), "augment.hue": (0.0, 180.0),
    "augment.gamma": (0.1, 10.0), "augment.blur": (0.0, 1.0), "augment.noise": (0.0, 1.0), "augment.jpeg": (0.0, 1.0),
}


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

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"path: must be a folder, got {self.path!r}")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio < 1:
            raise ValueError(f"ratio: must be a number in (0, 1), got {self.ratio!r}")


@dataclass(frozen=True)
class LossConfig:
    ce: float = 1.0
    dice: float = 1.0
    class_weights: str = "auto"   # "auto" (inverse sqrt pixel frequency) or "none"
    ohem_fraction: float = 0.0    # >0: CE over only the hardest fraction of valid pixels

    def __post_init__(self) -> None:
        if self.class_weights not in ("auto", "none"):
            raise ValueError(f"class_weights: must be 'auto' or 'none', got {self.class_weights!r}")
        if not 0 <= self.ohem_fraction < 1:
            raise ValueError(f"ohem_fraction: must be in [0, 1), got {self.ohem_fraction!r}")
        if not (self.ce >= 0 and self.dice >= 0 and self.ce + self.dice > 0):
            raise ValueError("ce, dice: the loss weights must be >= 0 and not both 0")


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
    init: str | None = None        # fine-tune: start from this exported model folder or run (models/train/init.py)
    freeze_backbone: int = 0       # with init: steps during which the encoder is not trained (0 = none)

    def __post_init__(self) -> None:
        schema.check(self, RANGES)  # types and ranges, also of a copy with command-line overrides
        if self.model not in ARCHS:
            raise ValueError(f"model: must be one of {', '.join(ARCHS)}, got {self.model!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop: must be one of {', '.join(CROPS)}, got {self.crop!r}")
        if self.input_size % 128:
            raise ValueError(f"input_size: {self.input_size} must be a multiple of 128")
        if sum(e.ratio for e in self.extra_data) >= 1:
            raise ValueError("extra_data: the ratios must add up to less than 1")

    @property
    def warmup_steps(self) -> int:
        """Steps of linear warmup: warmup_iters, at most half the run, at least 1 (the scheduler
        needs one; from 5 % of lr, one step is as good as none)."""
        return max(1, min(self.warmup_iters, self.iters // 2))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"]["scale"] = list(self.augment.scale)
        d["augment"]["gamma"] = list(self.augment.gamma)
        d["extra_data"] = [asdict(e) for e in self.extra_data]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        """Settings from a parsed file; EndoSpineError '<source>: <field>: <problem>'."""
        try:
            return schema.build(cls, d if d is not None else {}, RANGES)
        except ValueError as exc:
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
        except ValueError as exc:
            raise EndoSpineError(f"command line: {exc}") from None
