"""The class table: ids, names, display colors, default visibility and drawing roles, from YAML.

The shipped table (assets/classes.yaml) is EndoSpine's lumbar one: background, bone, ligament,
disc, nerve, fat, instrument, with 255 as ignore. It is the default for new datasets and for a
display without a model. A dataset keeps its own copy (dataset.yaml) and an exported model the
one it was trained with (manifest.yaml); those copies win wherever they exist, so any table works
(e.g. background + polyp, or the 4-class table of a model trained before nerve, fat and
instrument). `visible` says which classes the display paints when it starts (default: every
foreground class); the background, id 0, is never painted.

Two optional roles (false if left out, and then not written, so a table without them reads and
writes exactly as before; a manifest's seal and a dataset's copy stay as they were):
  protect   the structure the surgeon must protect (the nerve): drawn on top of the other classes,
            in a color of its own (CIE76 delta E >= MIN_PROTECT_DELTA_E from every other class's),
            and visible when the display starts.
  occluder  not tissue, in front of it (the instrument): no other class's color is painted over
            its pixels, whether the occluder itself is shown or hidden (models.core.overlay).
Any other key in a class entry is refused (a misspelt `protected: true` must not pass silently).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models.core.errors import EndoSpineError
from models.core.paths import default_class_table
from models.core.yamlio import read_yaml

IGNORE_INDEX = 255
DEFAULT_ORIGIN = "default table"  # the origin of the shipped table, as the display names it
# How far (CIE76 delta E, sRGB D65) a protected class's color must be from every other class's:
# yellow (255,255,0) vs orange (255,160,0) is 56, vs lime (160,255,0) 37, vs (255,200,0) 32;
# the default table's nearest pair to its nerve (yellow vs the ligament's green) is 76.
MIN_PROTECT_DELTA_E = 40.0
CLASS_KEYS = ("id", "name", "color", "visible", "protect", "occluder")


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB display color
    visible: bool = True         # painted when the display starts (the user toggles it from there)
    protect: bool = False        # the structure to protect: drawn on top, in a color no other class is near
    occluder: bool = False       # not tissue (an instrument): no tissue color is painted over its pixels


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassInfo, ...]
    ignore_index: int = IGNORE_INDEX
    name: str = "custom"
    # where the table was read from, for the display to say ("default table", "model NAME", a path);
    # not part of the table: never written, never compared
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("a class table needs at least one class")
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))):
            raise ValueError(f"class ids must be 0..{len(ids) - 1} in order, got {ids}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(ids):
            raise ValueError(f"ignore_index {self.ignore_index} must be in {len(ids)}..255")
        for c in self.classes:
            if len(c.color) != 3 or not all(0 <= v <= 255 for v in c.color):
                raise ValueError(f"class {c.name!r}: color must be three values in 0..255")
            for key in ("visible", "protect", "occluder"):
                if not isinstance(getattr(c, key), bool):
                    raise ValueError(f"class {c.name!r}: {key} must be true or false, got {getattr(c, key)!r}")
            if c.id == 0 and (c.protect or c.occluder):
                raise ValueError(f"class {c.name!r}: the background (id 0) is never painted, so it cannot be "
                                 f"{'protect' if c.protect else 'occluder'}")
            if c.protect and c.occluder:
                raise ValueError(f"class {c.name!r}: protect and occluder exclude each other "
                                 "(a protected class is drawn on top, an occluder hides the classes under it)")
            if c.protect and not c.visible:
                raise ValueError(f"class {c.name!r}: a protected class must be visible when the display starts")
        for p in self.classes:
            if not p.protect:
                continue
            for c in self.classes:
                if c.id != p.id and (d := delta_e(p.color, c.color)) < MIN_PROTECT_DELTA_E:
                    raise ValueError(f"class {p.name!r} is protected, so its color {list(p.color)} must differ clearly "
                                     f"from every other class's, but class {c.name!r} has {list(c.color)} "
                                     f"(delta E {d:.0f} < {MIN_PROTECT_DELTA_E:.0f})")

    # -- lookups ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def foreground(self) -> list[ClassInfo]:
        """The classes a mean 'over tissues' runs over: all but id 0 (background)."""
        return list(self.classes[1:])

    @property
    def default_visible(self) -> frozenset[int]:
        """The ids the display paints when it starts: the foreground classes marked visible."""
        return frozenset(c.id for c in self.foreground if c.visible)

    @property
    def protected(self) -> frozenset[int]:
        """The protected classes' ids (`protect: true`): drawn on top of the others."""
        return frozenset(c.id for c in self.classes if c.protect)

    @property
    def occluders(self) -> frozenset[int]:
        """The occluder classes' ids (`occluder: true`): no other class's color lands on their pixels."""
        return frozenset(c.id for c in self.classes if c.occluder)

    def id_of(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise KeyError(f"no class named {name!r} (known: {', '.join(self.names)})")

    def color_lut(self, ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """A 256x3 uint8 RGB table: label id -> display color (unknown ids -> ignore_color)."""
        lut = np.empty((256, 3), np.uint8)
        lut[:] = ignore_color
        for c in self.classes:
            lut[c.id] = c.color
        return lut

    def valid_ids(self) -> set[int]:
        return {c.id for c in self.classes} | {self.ignore_index}

    # -- (de)serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The YAML form. `protect` and `occluder` only where true: a table without them writes
        exactly what it wrote before they existed (seals and hashes over that text still match)."""
        return {
            "name": self.name,
            "ignore_index": self.ignore_index,
            "classes": [_class_dict(c) for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "class table") -> "ClassTable":
        """A table from its YAML form; `visible` may be left out (tables written before it: true),
        and `protect` and `occluder` too (false). Any other key in a class entry is refused."""
        try:
            items = data["classes"]
            for c in items:
                if not isinstance(c, dict):
                    raise TypeError(f"each class is a mapping ({', '.join(CLASS_KEYS)}), got {type(c).__name__}")
                unknown = [str(k) for k in c if k not in CLASS_KEYS]
                if unknown:
                    raise ValueError(f"class {c.get('name', '?')!r}: unknown key {unknown[0]!r} "
                                     f"(known: {', '.join(CLASS_KEYS)})")
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["color"]), c.get("visible", True),
                          c.get("protect", False), c.get("occluder", False))
                for c in items
            )
            return cls(
                classes=classes,
                ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
                name=str(data.get("name", "custom")),
                origin=source,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EndoSpineError(f"{source}: not a valid class table ({exc})") from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ClassTable":
        """The table in a YAML file; without a path the shipped default (origin 'default table')."""
        if path is None:
            return replace(cls.load(default_class_table()), origin=DEFAULT_ORIGIN)
        return cls.from_dict(read_yaml(Path(path), "class table"), source=str(path))


def _class_dict(c: ClassInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"id": c.id, "name": c.name, "color": list(c.color), "visible": c.visible}
    if c.protect:
        d["protect"] = True
    if c.occluder:
        d["occluder"] = True
    return d


def delta_e(a: Sequence[int], b: Sequence[int]) -> float:
    """CIE76 color difference of two sRGB colors (0..255 each; D65): ~2 just noticeable, 40+ clearly apart."""
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def _lab(rgb: Sequence[int]) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = _SRGB_TO_XYZ @ c / _D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_D65 = np.array([0.95047, 1.0, 1.08883])


def default_classes() -> ClassTable:
    """EndoSpine's lumbar class table (assets/classes.yaml)."""
    return ClassTable.load()
