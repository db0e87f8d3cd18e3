"""CVAT 'Segmentation mask 1.1' exports -> label maps.

The unzipped export holds:
    labelmap.txt                      '# label:color_rgb:parts:actions', then 'bone:250,50,83::'
    SegmentationClass/<name>.png      color masks, one color per label
    ImageSets/Segmentation/<subset>.txt   image names per subset (e.g. default, train, val, test)
    JPEGImages/<name>.<ext>           the images (export with 'Save images' checked)
Label names map to class ids through --map, else by class name; every label of labelmap.txt must
map (an unknown one is an error naming it). Colors in a mask that labelmap.txt does not list are
an error naming the mask. Subsets named train, val (validation) or test keep their split; images
in other subsets (CVAT's 'default') are in no split. The text files are read with the readers'
limits (pairs.read_text_limited: a regular UTF-8 file of bounded size).
CVAT writes the export with Datumaro's VOC segmentation writer, which lists and writes a mask only
for an image that has annotations: an image without a mask (in JPEGImages/ only, or listed with no
SegmentationClass/ file, as Datumaro's own VOC samples have) carries no labels and is not
imported; a note says how many and names the first. SegmentationObject/ (instance masks) is not read.
"""
from __future__ import annotations

from pathlib import Path

from models.core.errors import EndoSpineError
from models.datatools.common import IMAGE_SUFFIXES
from models.datatools.masks import MaskReader, name_to_id, parse_color
from models.datatools.pairs import ImportOptions, Pair, find_files, read_text_limited

SUBSET_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}


def read_cvat(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    labelmap = src / "labelmap.txt"
    masks_dir, images_dir = src / "SegmentationClass", src / "JPEGImages"
    if not labelmap.is_file() or not masks_dir.is_dir():
        raise EndoSpineError(f"{src}: expected labelmap.txt and SegmentationClass/ "
                             "(a CVAT 'Segmentation mask 1.1' export)")
    if not images_dir.is_dir():
        raise EndoSpineError(f"{src}: no JPEGImages/ folder (export from CVAT with 'Save images' checked)")
    colors = parse_labelmap(labelmap, opts)
    subsets = _subsets(src / "ImageSets" / "Segmentation")
    if subsets is None:
        subsets = {key: None for key in find_files(masks_dir, (".png",))}
    images = find_files(images_dir, IMAGE_SUFFIXES)
    reader = MaskReader(opts.classes, colors=colors)
    pairs, no_mask = [], []
    for key, subset in subsets.items():
        mask = masks_dir / f"{key}.png"
        if key not in images:
            raise EndoSpineError(f"{images_dir}: no image for {key!r} (export with 'Save images' checked)")
        if not mask.is_file():
            no_mask.append(f"{key} (in {subset}.txt)")
            continue
        pairs.append(Pair(key, mask, _label(reader, mask), images[key], split=SUBSET_SPLITS.get(subset or ""),
                          files=(mask,)))
    if not pairs and no_mask:
        raise EndoSpineError(f"{masks_dir}: no mask for any of the {len(subsets)} listed images (nothing annotated?)")
    notes = []
    unlisted = sorted(k for k in images if k not in subsets)
    if no_mask:
        notes.append(f"not imported, no mask in {masks_dir.name}/ (not annotated): {len(no_mask)} listed image(s), "
                     f"e.g. {no_mask[0]}")
    if unlisted:
        notes.append(f"not imported, not in any subset list (not annotated): {len(unlisted)} image(s) in "
                     f"{images_dir.name}/, e.g. {unlisted[0]}")
    other = sorted({s for s in subsets.values() if s and s not in SUBSET_SPLITS})
    if other:
        notes.append(f"CVAT subsets {', '.join(other)} are not train/val/test: their images are in no split")
    return pairs, notes


def parse_labelmap(path: Path, opts: ImportOptions) -> dict[tuple[int, int, int], int]:
    colors: dict[tuple[int, int, int], int] = {}
    lines = read_text_limited(path, "CVAT labelmap.txt").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        color = parse_color(parts[1]) if len(parts) >= 2 else None
        if color is None:
            raise EndoSpineError(f"{path}:{lineno}: expected 'label:R,G,B:parts:actions', got {line.strip()!r}")
        cid = name_to_id(parts[0].strip(), opts.classes, opts.label_map, f"{path}:{lineno}")
        if colors.get(color, cid) != cid:
            raise EndoSpineError(f"{path}:{lineno}: color {color} is already used by another class")
        colors[color] = cid
    if not colors:
        raise EndoSpineError(f"{path}: no labels")
    return colors


def _subsets(folder: Path) -> dict[str, str] | None:
    """image name -> subset name, from ImageSets/Segmentation/*.txt (None when there are none)."""
    lists = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not lists:
        return None
    out: dict[str, str] = {}
    for path in lists:
        subset = path.stem.lower()
        lines = read_text_limited(path, "CVAT subset list").splitlines()
        for line in lines:
            key = line.strip()
            if not key:
                continue
            if key in out:
                raise EndoSpineError(f"{path}: {key!r} is also in subset {out[key]!r}")
            out[key] = subset
    return out


def _label(reader: MaskReader, path: Path):
    return lambda h, w: reader(path)
