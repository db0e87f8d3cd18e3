"""Output paths, checked before any work; write failures as one line.

A command that runs for minutes should not find out at the end that it cannot write its result,
and must never write over what it was given. `check_file` and `check_folder` are the one check
every command-line output goes through, before the work starts (each problem is an
EndoSpineError naming the option and the path):

- a file is not an existing folder (nor a device, pipe or socket); a folder is not an existing file;
- a file's extension is one its writer supports (`Kind`: VIDEO, CSV, JSON, ...);
- the nearest existing folder on the way is a folder this process may create files in (missing
  folders below it are created by the writer, as before);
- it is none of the command's inputs: the same path once resolved, or the same file under another
  name (os.path.samefile: hard links).

`check_before(subparsers, table)` wires this into a command-line tool: each subcommand named in
the table checks its output options (`check_args`) before its handler runs.

`write_failed(path, exc)` turns what the operating system says while writing (a full disk, an I/O
error, a read-only file system) into the same kind of line (WriteFailed). The writers themselves
are atomic (a temporary name, renamed on success) and remove their partial file on any failure.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from models.core.errors import EndoSpineError


@dataclass(frozen=True)
class Kind:
    """What a writer writes and the file extensions it supports (empty: any name)."""
    noun: str
    suffixes: tuple[str, ...] = ()


VIDEO = Kind("video", (".mp4", ".m4v", ".mov", ".mkv", ".ts", ".avi"))  # models.core.video writes these
CSV = Kind("CSV", (".csv",))
JSON = Kind("JSON", (".json",))
YAML = Kind("YAML", (".yaml", ".yml"))
PNG = Kind("PNG", (".png",))
IMAGE = Kind("image", (".png", ".jpg", ".jpeg"))
PLOT = Kind("plot", (".png", ".svg", ".pdf"))  # matplotlib picks the format from the name
ANY = Kind("file")
FOLDER = Kind("folder")  # from a Kind chooser (check_args): this output is a folder

_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.EIO: "input/output error (the disk or the network share failed)",
    errno.EFBIG: "file too large for this file system",
    errno.ENAMETOOLONG: "name too long",
}


def os_reason(exc: BaseException) -> str:
    """An operating-system error in a few words: 'disk full', 'permission denied', ..."""
    number = getattr(exc, "errno", None)
    if number in _REASONS:
        return _REASONS[number]
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


class WriteFailed(EndoSpineError, OSError):
    """Writing failed (disk full, I/O error, ...): one line for people, and still an OSError with
    its errno for code that tells a full disk from other failures."""

    def __init__(self, message: str, number: int | None = None):
        super().__init__(message)
        self.errno = number

    def __str__(self) -> str:
        return self.args[0]


def write_failed(path: str | Path, exc: BaseException, what: str = "cannot write") -> WriteFailed:
    """The one-line error for `exc` raised while writing `path`."""
    return WriteFailed(f"{path}: {what} ({os_reason(exc)})", getattr(exc, "errno", None))


def _name(flag: str | None, path: Path) -> str:
    return f"{flag} {path}" if flag else str(path)


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_folder_writable(path: Path, flag: str | None) -> None:
    """The nearest existing folder on the way to `path` must be a folder we may create files in."""
    folder = _existing_ancestor(path.absolute())
    if not folder.is_dir():
        raise EndoSpineError(f"{_name(flag, path)}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):  # also false on a read-only file system, root or not
        raise EndoSpineError(f"{_name(flag, path)}: cannot write in {folder} (permission denied or read-only)")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # a symlink loop, a vanished file: not provably the same
        return False


def _inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    """The inputs that are paths on this machine (not synthetic:SEED, capture:N or a URL)."""
    return [Path(i) for i in inputs if i is not None and str(i) and "://" not in str(i) and Path(i).exists()]


def check_file(path: str | Path, kind: Kind, flag: str | None = None,
               inputs: Iterable[str | Path | None] = ()) -> Path:
    """`path` as a file output of `kind`, checked; EndoSpineError('FLAG PATH: problem') if not."""
    try:
        return _check_file(Path(path), kind, flag, inputs)
    except OSError as exc:  # the name itself is unusable (too long, ...)
        raise EndoSpineError(f"{_name(flag, Path(path))}: {os_reason(exc)}") from None


def check_folder(path: str | Path, flag: str | None = None, inputs: Iterable[str | Path | None] = ()) -> Path:
    """`path` as a folder output, checked (whether it must be empty is the command's own rule)."""
    try:
        return _check_folder(Path(path), flag, inputs)
    except OSError as exc:
        raise EndoSpineError(f"{_name(flag, Path(path))}: {os_reason(exc)}") from None


def _check_file(path: Path, kind: Kind, flag: str | None, inputs: Iterable[str | Path | None]) -> Path:
    name = _name(flag, path)
    if not str(path) or path.name in ("", ".", ".."):
        raise EndoSpineError(f"{name}: not a file name")
    if path.is_dir():
        example = path / f"out{kind.suffixes[0] if kind.suffixes else ''}"
        raise EndoSpineError(f"{name}: is a folder; name a file in it, e.g. {example}")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise EndoSpineError(f"{name}: exists and is not a regular file (a device, pipe or socket)")
    if kind.suffixes and path.suffix.lower() not in kind.suffixes:
        what = f"'{path.suffix}' is not" if path.suffix else "no extension: not"
        raise EndoSpineError(f"{name}: {what} a {kind.noun} file name this writer supports "
                             f"({', '.join(kind.suffixes)})")
    _check_folder_writable(path, flag)
    for source in _inputs(inputs):
        if _same(path, source):
            raise EndoSpineError(f"{name}: is the input {source}; writing it would replace it "
                                 "(choose another name)")
    return path


def _check_folder(path: Path, flag: str | None, inputs: Iterable[str | Path | None]) -> Path:
    name = _name(flag, path)
    if not str(path):
        raise EndoSpineError(f"{name}: not a folder name")
    if path.exists() and not path.is_dir():
        raise EndoSpineError(f"{name}: is a file, not a folder")
    _check_folder_writable(path / "x", flag)
    for source in _inputs(inputs):
        if _same(path, source):
            raise EndoSpineError(f"{name}: is the input {source}; writing there could replace it "
                                 "(choose another folder)")
    return path


def check_args(args, files: dict[str, Kind] | None = None, folders: tuple[str, ...] = (),
               inputs: tuple[str, ...] = (), apart: tuple[tuple[str, str], ...] = ()) -> None:
    """A command's output options, checked before it starts: `files` maps an option's dest to
    its Kind (or to a function of the arguments that returns one, FOLDER for a folder: an output
    whose kind follows its input), `folders` names folder options, `inputs` the options (or positionals, lists
    included) holding what the command reads, `apart` pairs (file, folder) where the file must
    not go inside the folder (a folder written as a whole replaces what is in it). Options left
    out on the command line are skipped."""
    given: list = []
    for dest in inputs:
        value = getattr(args, dest, None)
        given.extend(value if isinstance(value, (list, tuple)) else [value])
    for dest, kind in (files or {}).items():
        if getattr(args, dest, None):
            kind = kind(args) if callable(kind) else kind
            if kind is FOLDER:
                check_folder(getattr(args, dest), _flag(dest), given)
            else:
                check_file(getattr(args, dest), kind, _flag(dest), given)
    for dest in folders:
        if getattr(args, dest, None):
            check_folder(getattr(args, dest), _flag(dest), given)
    for file_dest, folder_dest in apart:
        file, folder = getattr(args, file_dest, None), getattr(args, folder_dest, None)
        if file and folder and Path(file).absolute().resolve().is_relative_to(Path(folder).absolute().resolve()):
            raise EndoSpineError(f"{_flag(file_dest)} {file}: inside {_flag(folder_dest)} {folder}, which is "
                                 f"written as a whole and would replace it; put it beside that folder")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_before(subparsers, table: dict[str, dict]) -> None:
    """Make each subcommand named in `table` run check_args(args, **its entry) before its handler."""
    for name, spec in table.items():
        parser = subparsers.choices[name]
        parser.set_defaults(func=_checking(parser.get_default("func"), spec))


def _checking(command, spec: dict):
    def checked(args):
        check_args(args, **spec)
        return command(args)

    checked.__name__ = getattr(command, "__name__", "command")
    checked.__doc__ = command.__doc__
    return checked
