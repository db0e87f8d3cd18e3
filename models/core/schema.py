"""Settings files as typed dataclasses: every field's type and range checked before any work.

A settings dataclass (the training config, the GAN config) declares its fields with types
(int, float, str, bool, `X | None`, `tuple[float, float]`, `tuple[X, ...]`, a nested dataclass)
and a table of ranges, {"lr": (1e-8, 10), "augment.rotate": (0, 180)}, inclusive, by dotted name.

- `build(cls, mapping, ranges)` reads a parsed YAML mapping: unknown and missing fields, a wrong
  type (`iters: 2.5`, `iters: five`, `rotate: lots`), a number that is not finite (`.nan`,
  `.inf`) or out of its range is a ValueError 'augment.rotate: must be a number in 0..180, got
  'lots'', raised before the dataclass is built (so its own checks see sane types);
- `check(obj, ranges)` checks an instance the same way, e.g. in `__post_init__`, so a copy made
  with command-line overrides (`dataclasses.replace`) is held to the same ranges.
Integral floats (`iters: 6000.0`) are accepted as whole numbers; booleans are never numbers.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import types
import typing
from typing import Any

Ranges = dict[str, tuple[float, float]]


def build(cls: type, data: Any, ranges: Ranges | None = None, where: str = "") -> Any:
    """An instance of dataclass `cls` from a mapping; ValueError('<field>: <problem>')."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'settings'}: must be a mapping of settings, got {_shown(data)}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            raise ValueError(f"{_join(where, _key_shown(key))}: unknown setting (expected one of {', '.join(known)})")
    missing = [name for name, f in known.items() if name not in data and _required(f)]
    if missing:
        raise ValueError(f"{where or 'settings'}: missing {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    values = {key: _convert(value, hints[key], _join(where, key), ranges or {}) for key, value in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:  # the dataclass's own rules: name the section they belong to
        text = str(exc)
        if where and not text.startswith(f"{where}."):
            text = f"{where}.{text}" if text.split(" ", 1)[0].endswith(":") else f"{where}: {text}"
        raise ValueError(text) from None


def check(obj: Any, ranges: Ranges, where: str = "") -> None:
    """Type and range of every field of a dataclass instance (nested ones too); ValueError."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _convert(getattr(obj, f.name), hints[f.name], _join(where, f.name), ranges, built=True)


def _convert(value: Any, hint: Any, name: str, ranges: Ranges, built: bool = False) -> Any:
    """`value` as type `hint` (lists become tuples, mappings dataclasses) or ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{name}: unsupported type {hint}")
        return _convert(value, inner[0], name, ranges, built)
    if dataclasses.is_dataclass(hint):
        if built and isinstance(value, hint):
            check(value, ranges, name)
            return value
        return value if isinstance(value, hint) else build(hint, value, ranges, name)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: must be a list, got {_shown(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{name}[{i}]", ranges, built) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{name}: must be a list of {len(args)} values, got {_shown(value)}")
        items = tuple(_convert(v, a, name, {}, built) for v, a in zip(value, args))
        for v in items:
            _in_range(v, name, ranges, value)
        return items
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: must be true or false, got {_shown(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: must be text, got {_shown(value)}")
        return value
    if hint in (int, float):
        number = _number(value, hint, name, ranges)
        _in_range(number, name, ranges, value)
        return number
    raise TypeError(f"{name}: unsupported type {hint}")  # a programming error, not a user's


def _number(value: Any, kind: type, name: str, ranges: Ranges) -> int | float:
    noun = "a whole number" if kind is int else "a number"
    low, high = ranges.get(_key(name), (None, None))
    bounds = f" in {_fmt(low)}..{_fmt(high)}" if low is not None else ""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and kind is int and not float(value).is_integer():
        ok = False
    if not ok:
        hint = ""
        if isinstance(value, str) and _is_number(value):  # YAML 1.1 reads 1e-3 (no dot) as text
            hint = f" (write it with a dot, e.g. {float(value):.1e}: YAML reads {value} as text)"
        raise ValueError(f"{name}: must be {noun}{bounds}, got {_shown(value)}{hint}")
    return int(value) if kind is int else float(value)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _in_range(number: Any, name: str, ranges: Ranges, shown: Any) -> None:
    if _key(name) in ranges and isinstance(number, (int, float)):
        low, high = ranges[_key(name)]
        if not low <= number <= high:
            noun = "a whole number" if isinstance(number, int) else "a number"
            raise ValueError(f"{name}: must be {noun} in {_fmt(low)}..{_fmt(high)}, got {_shown(shown)}")


def _fmt(bound: float) -> str:
    """A bound as YAML reads it back as a number: 64, 0.5, 1.0e-08 (never 1e-08, which is text)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}" if bound >= 1e-4 else f"{bound:.1e}"


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _key(name: str) -> str:
    """The range table's name of a field: extra_data[1].ratio -> extra_data.ratio."""
    return re.sub(r"\[\d+\]", "", name)


def _key_shown(key: Any) -> str:
    """A mapping key as a message shows it: plain names as they are, anything else quoted."""
    return key if isinstance(key, str) and key.isidentifier() else repr(key)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
