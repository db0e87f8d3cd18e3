"""The class table: ids, names, display colors and default visibility, loaded from YAML.

The shipped table (assets/classes.yaml) is EndoSpine's lumbar one: background, bone, ligament,
disc, with 255 as ignore. It is the default for new datasets and for a display without a model.
A dataset keeps its own copy (dataset.yaml) and an exported model the one it was trained with
(manifest.yaml); those copies win wherever they exist, so any table works (e.g. background +
polyp). `visible` says which classes the display paints when it starts (default: every
foreground class); the background, id 0, is never painted.
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


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB display color
    visible: bool = True         # painted when the display starts (the user toggles it from there)


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
            if not isinstance(c.visible, bool):
                raise ValueError(f"class {c.name!r}: visible must be true or false, got {c.visible!r}")

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
        return {
            "name": self.name,
            "ignore_index": self.ignore_index,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color), "visible": c.visible}
                        for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "class table") -> "ClassTable":
        """A table from its YAML form; `visible` may be left out (tables written before it: true)."""
        try:
            items = data["classes"]
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["color"]), c.get("visible", True))
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


def default_classes() -> ClassTable:
    """EndoSpine's lumbar class table (assets/classes.yaml)."""
    return ClassTable.load()
