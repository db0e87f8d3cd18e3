"""The class table: ids, names and display colors, loaded from one YAML file.

The default table (assets/classes.yaml) is EndoSpine's lumbar one: background, bone, ligament,
disc, with 255 as ignore. Any dataset may declare its own table (e.g. background + polyp); the
pipeline works from whichever table it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from models.core.errors import EndoSpineError
from models.core.paths import default_class_table
from models.core.yamlio import read_yaml

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB display color


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassInfo, ...]
    ignore_index: int = IGNORE_INDEX
    name: str = "custom"

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
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "class table") -> "ClassTable":
        try:
            items = data["classes"]
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["color"]))
                for c in items
            )
            return cls(
                classes=classes,
                ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
                name=str(data.get("name", "custom")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EndoSpineError(f"{source}: not a valid class table ({exc})") from None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ClassTable":
        path = Path(path) if path is not None else default_class_table()
        return cls.from_dict(read_yaml(path, "class table"), source=str(path))


def default_classes() -> ClassTable:
    """EndoSpine's lumbar class table (assets/classes.yaml)."""
    return ClassTable.load()
