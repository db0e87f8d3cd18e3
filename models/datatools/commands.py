"""The dataset command handlers: parsed arguments in, library calls, a printed summary out.

The parsers live in models/cli.py (_add_dataset_commands); nothing below this module sees an
argparse namespace. Imports are deferred so that building the parser stays cheap.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.core.cliutil import number, plural, runtime_settings, show_progress

CLIP_FRAME_PATTERN = r"^(.+)_(\d+)$"


def _classes(path: str | None):
    from models.core.classes import ClassTable, default_classes

    return ClassTable.load(path) if path else default_classes()


def cmd_extract(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models.core.deid import DeidPolicy, parse_region
    from models.core.optics.profile import load_profile
    from models.datatools.extract import REASONS, ExtractSettings, counts, extract_frames

    settings = ExtractSettings(every=args.every, max_per_clip=args.max_per_clip, min_sharpness=args.min_sharpness,
                               dup_threshold=args.dup_threshold, max_dark=args.max_dark, max_bright=args.max_bright,
                               image_format=args.format)
    # the profile gives the circle (and margin); only the flag keeps whole frames here
    policy = replace(DeidPolicy.from_profile(load_profile(args.profile) if args.profile else None),
                     keep_full_frame=args.keep_full_frame,
                     region=parse_region(args.region) if args.region else None)
    summaries = extract_frames(args.videos, args.out, settings, _classes(args.classes), policy)
    head = f"{'clip':<24}{'decoded':>8}{'cands':>7}{'kept':>6}" + "".join(f"{r:>11}" for r in REASONS)
    head += f"{'sharp~':>9}"
    print(head)
    for s in summaries:
        sharp = "-" if s.median_sharpness is None else f"{s.median_sharpness:.1f}"
        print(f"{s.clip[:24]:<24}{s.decoded:>8}{s.candidates:>7}{s.kept:>6}"
              + "".join(f"{s.dropped[r]:>11}" for r in REASONS) + f"{sharp:>9}")
    total = counts(summaries)
    if len(summaries) > 1:
        print(f"{'total':<24}{total['decoded']:>8}{total['candidates']:>7}{total['kept']:>6}"
              + "".join(f"{total[r]:>11}" for r in REASONS))
    print(f"wrote {plural(total['kept'], 'frame')} of {plural(len(summaries), 'clip')} to {args.out} (unlabeled; "
          f"frames.yaml lists clip, frame index and pts). After labeling, import with --clip-from "
          f"'{CLIP_FRAME_PATTERN}'.")
    print(f"frames: {policy.summary()}" + ("" if policy.keep_full_frame else "; circle per clip in frames.yaml"))
    if total["kept"] == 0:
        print("warning: no frame kept; look at the drop reasons and the median sharpness (sharp~) above")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from models.datatools.importers import ImportOptions, import_dataset
    from models.datatools.masks import load_label_map
    from models.datatools.validate import class_lines, class_rows

    classes = _classes(args.classes)
    options = ImportOptions(classes=classes, label_map=load_label_map(args.map, classes), threshold=args.threshold,
                            clip_from=args.clip_from, workers=args.workers)
    r = import_dataset(args.format, args.src, args.out, options)
    print(f"imported {plural(r.images, 'image')} ({plural(r.clips, 'clip')}) from {args.src} ({r.kind}) into "
          f"{r.out} in {r.seconds:.1f} s")
    if r.splits:
        print("splits: " + ", ".join(f"{s} {plural(n, 'image')} ({plural(c, 'clip')})"
                                     for s, (n, c) in r.splits.items()))
    print("\n".join(class_lines(class_rows(classes, r.pixels, r.images_with))))
    for note in r.notes:
        print(f"note: {note}")
    for warning in r.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_prelabel(args: argparse.Namespace) -> int:
    from models.datatools.prelabel import prelabel

    rows = prelabel(args.model, args.images, args.format, args.out, runtime_settings(args, args.model),
                    min_area=args.min_area, epsilon=args.simplify, progress=show_progress(args))
    failed = sum(r.passed is False for r in rows)
    gate = "no trust gate: prelabel.csv has no scores" if rows and rows[0].score is None else \
        f"{failed} of {plural(len(rows), 'image')} above the gate's threshold (first in prelabel.csv)"
    print(f"wrote {args.format} pre-labels of {plural(len(rows), 'image')} to {args.out}; {gate}")
    return 0

def cmd_validate(args: argparse.Namespace) -> int:
    from models.core.imageio import write_bytes_atomic
    from models.core.yamlio import dump_yaml
    from models.datatools.validate import validate_dataset

    report = validate_dataset(args.data, workers=args.workers)
    print(report.to_text(max_problems=None if args.all else 50))
    if args.report:
        path = Path(args.report)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(report.to_dict(), indent=2)
        elif suffix in (".yaml", ".yml"):
            text = dump_yaml(report.to_dict(), width=120)
        else:
            text = report.to_text()
        write_bytes_atomic(path, (text + "\n").encode("utf-8"))
        print(f"wrote {path}")
    return 0 if report.ok else 1


def cmd_split(args: argparse.Namespace) -> int:
    from models.dataset import SPLITS, parse_ratios
    from models.datatools.splitting import resplit

    ratios = parse_ratios(args.ratios)
    splits = resplit(args.data, by=args.by, ratios=ratios, seed=args.seed)
    total = sum(len(v) for v in splits.values())
    for name in SPLITS:
        items = splits[name]
        share = len(items) / total if total else 0.0
        images, clips = len(items), len({it.clip for it in items})
        print(f"{name:<6}{images:>7} {'image ' if images == 1 else 'images'} {share:>6.1%} {clips:>6} "
              f"{'clip' if clips == 1 else 'clips'}")
    print(f"wrote train.txt, val.txt, test.txt in {args.data} (by clip, seed {args.seed})")
    empty = [name for name, r in zip(SPLITS, ratios) if r > 0 and not splits[name]]
    if empty:
        print(f"warning: {', '.join(empty)} got no clip: too few clips for the ratios")
    return 0


check_threshold = number(int, 1, 255, what="a gray level")
fraction = number(float, 0, 1)
non_negative_float = number(float, 0)

