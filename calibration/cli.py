"""`endospine-calibrate`: endoscope profiles (field of view, color, lens, latency).

No calibration command is available yet in this release.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from models.cliutil import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endospine-calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_subparsers(title="commands", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
