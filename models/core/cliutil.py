"""What the three command-line tools share: one-line errors and non-zero exits, never a traceback."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from models.core.errors import EndoSpineError


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse argv and call the chosen subcommand's `func(args) -> int | None`."""
    for stream in (sys.stdout, sys.stderr):   # a file name that is not UTF-8 prints escaped, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parser.parse_args(argv)
    func: Callable | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except EndoSpineError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader went away (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing left to flush at exit
        return 141


def number(kind: type = int, low: float | None = None, high: float | None = None, what: str | None = None):
    """An argparse type: text -> int or float within [low, high], with a plain-words error."""
    noun = what or ("a whole number" if kind is int else "a number")
    bounds = (f" in {low:g}..{high:g}" if low is not None and high is not None
              else f" >= {low:g}" if low is not None else f" <= {high:g}" if high is not None else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}{bounds}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {noun}{bounds}, got {value}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = number(int, 1, what="a positive whole number")
non_negative_int = number(int, 0, what="a whole number")
