"""Reading and writing YAML: one loader for every file EndoSpine reads, with limits, and one dumper.

Every YAML file (profiles, configs, manifests, dataset.yaml, class tables, cards) is read by
`read_yaml`, which refuses in one line naming the file:
- a file larger than its limit (MAX_BYTES; a dataset.yaml may be larger, DATASET_MAX_BYTES),
  read no further than the limit (a FIFO or /dev/zero cannot make it wait or grow);
- any alias (`*name`): a few hundred bytes of nested aliases expand to gigabytes, and our
  files never need them (write the values out);
- nesting deeper than MAX_DEPTH (our files nest 5 levels at most; deeper data would only reach
  recursive code with a RecursionError);
- anything the safe loader refuses (no `!!python` tag ever builds an object).
`on`/`off`/`yes`/`no` stay strings (YAML 1.2): `fov: {mode: off}` means the mode named off; only
`true`/`false` are booleans. `dump_yaml` writes plain YAML without anchors or aliases.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from models.core.errors import EndoSpineError

MAX_BYTES = 4 * 1024 * 1024           # profiles, configs, manifests and cards are a few KB
DATASET_MAX_BYTES = 16 * 1024 * 1024  # dataset.yaml: ~130 bytes an image, so ~120k images
MAX_DEPTH = 32

_BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
# An alias `*name` can only start after a separator or flow indicator. Text without one is parsed
# at once; text with one (an alias, or e.g. a quoted 'a *b') is scanned exactly first.
_MAYBE_ALIAS = re.compile(r"(?:^|[\s\[\]{},:?-])\*[^\s\[\]{},]", re.MULTILINE)

# libyaml's C loader when present: 8x faster on a 1000-item dataset.yaml. Both are safe loaders.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class SafeLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with YAML 1.2 booleans: only true/false, never on/off/yes/no/y/n."""


SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()}
SafeLoader.add_implicit_resolver(_BOOL_TAG, _BOOL, list("tTfF"))


class SafeDumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """The safe dumper, never writing anchors or aliases (an object met twice is written twice)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any, **options: Any) -> str:
    """`data` as plain YAML text (no aliases, keys in their order unless sort_keys=True)."""
    options.setdefault("sort_keys", False)
    return yaml.dump(data, Dumper=SafeDumper, allow_unicode=True, **options)


def read_yaml(path: str | Path, what: str = "file", max_bytes: int = MAX_BYTES) -> Any:
    """The parsed content of a YAML file, within the limits above; EndoSpineError
    '<path>: <what> not found / cannot read / <the limit it breaks>'."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise EndoSpineError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise EndoSpineError(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise EndoSpineError(f"{path}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > max_bytes:
        raise EndoSpineError(f"{path}: {what} larger than {max_bytes / 2 ** 20:g} MB; refused")
    try:
        return parse_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EndoSpineError(f"{path}: cannot read {what} (not UTF-8 text)") from None
    except ValueError as exc:
        raise EndoSpineError(f"{path}: cannot read {what} ({' '.join(str(exc).split())})") from None


def parse_yaml(text: str) -> Any:
    """YAML text -> data, or ValueError naming the problem in a few words (and its line)."""
    try:
        alias = _first_alias(text) if "*" in text and _MAYBE_ALIAS.search(text) else None
        data = yaml.load(text, Loader=SafeLoader) if alias is None else None  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{exc.problem or exc.context or 'invalid YAML'}{where}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML ({type(exc).__name__})") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a date 2024-13-45, a 5000-digit number
        raise ValueError(f"invalid value ({type(exc).__name__}: {str(exc)[:80]})") from None
    if alias is not None:
        raise ValueError(f"YAML alias *{alias.value[:40]} at line {alias.start_mark.line + 1}: "
                         "aliases are not accepted (write the values out)")
    _check_depth(data)
    return data


def _first_alias(text: str) -> yaml.AliasToken | None:
    """The first alias token of the text (the scanner alone: nothing is built)."""
    return next((t for t in yaml.scan(text, Loader=SafeLoader) if isinstance(t, yaml.AliasToken)), None)


def _check_depth(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def read_folder_file(root: Path, name: str, fmt: str, what: str, folder: str, missing: str,
                     kind: str, max_bytes: int = MAX_BYTES) -> tuple[Path, dict]:
    """(path, content) of root/name, a YAML mapping whose `format` is fmt (a model's manifest, a
    dataset's dataset.yaml), or a one-line EndoSpineError: '<root>: <folder> not found',
    '<path>: missing (<missing>)', '<path>: not a <fmt> <kind>'."""
    path = root / name
    if not root.is_dir():
        raise EndoSpineError(f"{root}: {folder} not found")
    if not path.is_file():
        raise EndoSpineError(f"{path}: missing ({missing})")
    data = read_yaml(path, what, max_bytes)
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise EndoSpineError(f"{path}: not a {fmt} {kind}")
    return path, data
