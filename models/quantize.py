"""INT8: model.int8.onnx from an exported folder's model.onnx, and its accuracy against FP32.

ONNX Runtime's static quantization (onnxruntime.quantization, shipped with onnxruntime): the
activation ranges are calibrated on frames of the TRAINING split, each prepared exactly as the
runtime prepares a frame (FramePrep: the profile's lens, field of view, crop, colour, then the
manifest's resize and normalisation), so the ranges are those the model meets at run time. The
accuracy is the test split's mean IoU (tissues) through the code `evaluate` uses (split_counts),
FP32 and INT8 both on ONNX Runtime, with their difference; it goes into the manifest's
`metrics.int8` with the method and the number of calibration images, and model.int8.onnx into its
`files` (role `onnx-int8`), hashed like every other file.

`export --onnx --int8` writes it while exporting; `add_int8_file` (`endospine-model quantize`)
adds it to an exported, verified folder (a dated `history` line, sealed again; a signed folder
needs the signing key), as `add_deploy_file` does for deploy.yaml.

Before quantizing, the FP32 graph is rewritten where exact rewrites let ONNX Runtime keep the
INT8 graph in uint8 (models/int8graph.py: the first convolution on space-to-depth input, the
fixed bilinear up-samplings as Resize, the average pools as depthwise convolutions); the rewritten
graph is checked against the original on calibration frames and refused if it differs.

The options (OPTIONS) were chosen on the shipped model's validation split (README, "INT8"):
7-bit weight ranges (reduce_range), because on CPUs without VNNI ONNX Runtime sums u8 x s8
products in 16 bits, which saturate: validation mean IoU fell by 0.0039 without it and by 0.0002
with it; per-channel weights without it fell by 0.033. The softmax stays FP32, so the
probabilities the post-processing thresholds read are not quantized. Speed on a 2-core Xeon
(AVX512-VNNI, AMX) before the rewrites: 1.28-1.30x FP32 (2 threads, `endospine-model bench`),
1.39x on one thread; not faster than FP32 on a 2-core AVX2 CPU without VNNI. Tried on the Xeon
and not faster: per-channel weights, full-range weights, the QDQ format, the first convolution
left in FP32 (its layout changes cost more than its INT8 kernel loses). The rewrites took the
first convolution from 2.2-2.5 ms to 1.2 ms and removed the nine FP32 islands (README, "INT8").
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.runtime.manifest import (
    INT8_ROLE,
    SEAL,
    check_seal,
    parse_manifest,
    read_manifest_data,
    verify_files,
    write_sealed,
)
from models.dataset import Dataset, load_dataset
from models.deployfile import listed, open_for_file, seal_with_file
from models.int8ends import ENDS, bounded_softmax, picture_agreement, pixel_blocks_input
from models.int8graph import REWRITES, quantize_before_space_to_depth, rewrite_for_int8, same_outputs

INT8_FILE = "model.int8.onnx"
CALIBRATION_IMAGES = 64    # training frames, spread evenly over the split


@dataclass(frozen=True)
class QuantOptions:
    """How model.int8.onnx is made (onnxruntime.quantization.quantize_static)."""
    format: str = "QOperator"              # QLinearConv & co. (or "QDQ": QuantizeLinear/DequantizeLinear pairs)
    activations: str = "uint8"
    weights: str = "int8"
    per_channel: bool = False
    reduce_range: bool = True              # 7-bit weights: no 16-bit saturation on CPUs without VNNI
    calibration: str = "MinMax"            # or "Entropy", "Percentile"
    op_types: tuple[str, ...] = ("Conv", "Relu", "Add", "Mul", "Concat", "Sigmoid", "GlobalAveragePool", "Resize")
    rewrites: tuple[str, ...] = REWRITES   # exact FP32 graph rewrites first (models/int8graph.py)
    ends: tuple[str, ...] = ENDS           # then the quantized graph's ends (models/int8ends.py)

    def method(self, rewritten: dict[str, int] | None = None) -> str:
        """One line for the manifest; rewritten: how often each rewrite applied."""
        import onnxruntime

        done = ", ".join(f"{name} x{n}" for name, n in (rewritten or {}).items() if n and name not in ENDS)
        ends = ", ".join({"pixel-blocks": "reads the picture in 2x2 uint8 blocks",
                          "bounded-softmax": "softmax as exp / sum"}[name]
                         for name, n in (rewritten or {}).items() if n and name in ENDS)
        return (f"onnxruntime {onnxruntime.__version__} static quantization, {self.format}, {self.activations} "
                f"activations, {self.weights} weights {'per channel' if self.per_channel else 'per tensor'}"
                f"{', reduced range' if self.reduce_range else ''}, {self.calibration} calibration; "
                f"quantized ops: {', '.join(self.op_types)} (the rest FP32)"
                f"{f'; FP32 graph rewritten first (exact): {done}' if done else ''}"
                f"{f'; quantized graph: {ends}' if ends else ''}")

    def to_dict(self) -> dict:
        return {**asdict(self), "op_types": list(self.op_types), "rewrites": list(self.rewrites),
                "ends": list(self.ends)}


OPTIONS = QuantOptions()
PICTURE_AGREEMENT = 0.95   # least share of output cells whose top class the picture input leaves as it was: the
                           # shipped model 0.985 on its 4 calibration frames, 0.988 over 24 validation frames
                           # (FP32 against the float-input INT8 graph there: 0.965); a wrong channel order or
                           # bias would move far more


def calibration_frames(dataset: Dataset, pre, profile: str | None = None, images: int = CALIBRATION_IMAGES,
                       split: str = "train") -> np.ndarray:
    """`images` frames of the split (all if it has fewer), evenly spread over it, as model inputs
    (n, 1, 3, H, W) float32 made the way the runtime makes them (FramePrep, field of view found
    in each image, as for every dataset image)."""
    from models.core.imageio import read_image
    from models.core.optics.profile import load_profile
    from models.core.runtime.frameview import FramePrep

    items = dataset.split(split)
    if not items:
        raise EndoSpineError(f"{dataset.root}: the {split} split has no images to calibrate INT8 on")
    picks = np.unique(np.linspace(0, len(items) - 1, min(images, len(items))).round().astype(int))
    prep = FramePrep(load_profile(profile) if profile else None, pre, independent=True)
    return np.stack([prep(read_image(dataset.path(items[i].image)))[0] for i in picks])


def quantize_onnx(src: Path, dst: Path, frames: np.ndarray, options: QuantOptions = OPTIONS,
                  pre=None) -> dict[str, int]:
    """Write dst, the INT8 model of the FP32 ONNX model src, its activation ranges calibrated on
    `frames` (calibration_frames, made with the Preprocess `pre`), after options.rewrites (checked
    exact on up to 4 of the frames), with options.ends applied to the quantized graph (the
    picture input needs `pre`'s mean and std, and is checked against the float input on up to 4
    frames: at least PICTURE_AGREEMENT of the output cells keep their top class). Written
    atomically; one line if ONNX Runtime refuses. Returns how often each rewrite applied."""
    try:
        from onnxruntime import quantization as q
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise EndoSpineError("INT8 needs onnxruntime: pip install -e '.[onnx]'") from None
    if len(frames) == 0:
        raise EndoSpineError(f"{src}: no calibration frames")
    if set(options.ends) - set(ENDS):
        raise ValueError(f"unknown INT8 graph ends {sorted(set(options.ends) - set(ENDS))}; known: {ENDS}")
    types = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    methods = {"MinMax": q.CalibrationMethod.MinMax, "Entropy": q.CalibrationMethod.Entropy,
               "Percentile": q.CalibrationMethod.Percentile}
    formats = {"QOperator": q.QuantFormat.QOperator, "QDQ": q.QuantFormat.QDQ}

    class Frames(q.CalibrationDataReader):
        def __init__(self, name: str):
            self.name, self.i = name, 0

        def get_next(self):
            if self.i >= len(frames):
                return None
            self.i += 1
            return {self.name: np.ascontiguousarray(frames[self.i - 1], dtype=np.float32)}

        def rewind(self):
            self.i = 0

    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / dst.name
        try:
            # shape inference and ONNX Runtime's graph optimisations (batch norms folded into convs) first
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            import onnx

            model = onnx.load(str(prepared))
            name = model.graph.input[0].name
            rewritten, counts = rewrite_for_int8(model, options.rewrites)
            if any(counts.values()):
                same_outputs(model, rewritten, frames[:4])
                onnx.save(rewritten, str(prepared))
            q.quantize_static(str(prepared), str(out), Frames(name), quant_format=formats[options.format],
                              op_types_to_quantize=list(options.op_types), per_channel=options.per_channel,
                              reduce_range=options.reduce_range, activation_type=types[options.activations],
                              weight_type=types[options.weights], calibrate_method=methods[options.calibration])
            quantized = onnx.load(str(out))
            changed = quantize_before_space_to_depth(quantized)
            if "pixel-blocks" in options.ends and pre is not None:
                float_input = onnx.ModelProto()
                float_input.CopyFrom(quantized)
                counts["pixel-blocks"] = int(pixel_blocks_input(quantized, pre.mean, pre.std))
                agree = picture_agreement(float_input, quantized, frames[:4], pre) if counts["pixel-blocks"] else 1.0
                if agree < PICTURE_AGREEMENT:
                    raise EndoSpineError(f"the picture-input graph keeps the top class of only {agree:.1%} of the "
                                         f"output cells (at least {PICTURE_AGREEMENT:.0%} wanted)")
            if "bounded-softmax" in options.ends:
                counts["bounded-softmax"] = int(bounded_softmax(quantized))
            if changed or any(counts.get(name) for name in ENDS):
                onnx.save(quantized, str(out))
        except EndoSpineError as exc:
            raise EndoSpineError(f"{src}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise many types; the user needs one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EndoSpineError(f"{src}: INT8 quantization failed ({first})") from None
        out.replace(dst)
    return counts


def int8_accuracy(folder: Path, int8: Path, test_root: Path, profile: str | None = None, progress: bool = True,
                  signer=None) -> dict:
    """The test split's mean IoU (tissues) of folder's model.onnx and of `int8`, both through
    SegmentationRuntime on ONNX Runtime and split_counts (what `evaluate` runs): metrics.int8.test.
    The INT8 model runs from a sealed copy of the folder in which it is model.onnx (the
    folder's own manifest cannot list it before its accuracy is known)."""
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
    from models.predict import split_counts

    dataset = load_dataset(test_root)
    items = dataset.splits.get("test") or []
    if not items:
        raise EndoSpineError(f"{test_root}: no test split, so INT8's accuracy against FP32 cannot be measured; "
                             "give a dataset with one (--test-data)")
    settings = RuntimeSettings(backend="onnxruntime", profile=profile)
    fp32 = split_counts(SegmentationRuntime(folder, settings), dataset, items, progress=progress)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.int8-check-") as tmp:
        stage = _as_onnx(folder, int8, Path(tmp), signer)
        quant = split_counts(SegmentationRuntime(stage, settings), dataset, items, progress=progress)
    a, b = fp32.figures()["mean"]["iou"], quant.figures()["mean"]["iou"]
    if a is None or b is None:
        raise EndoSpineError(f"{test_root}: the test split has no tissue pixels to measure INT8's accuracy on")
    return {"dataset": str(test_root), "split": "test", "images": len(items), "clips": len(set(fp32.clips)),
            "runtime": f"onnxruntime cpu, fov {settings.fov}", "profile": profile,
            "fp32_miou": a, "int8_miou": b, "miou_difference": round(b - a, 4)}


def _as_onnx(folder: Path, int8: Path, stage: Path, signer=None) -> Path:
    """A copy of the verified folder whose manifest lists `int8` as its model.onnx (and no INT8
    model of its own, should the folder have one that `int8` is to replace)."""
    path, data = read_manifest_data(folder)
    manifest = parse_manifest(path, data)
    files = {role: entry for role, entry in manifest.files.items() if role != INT8_ROLE}
    for entry in files.values():
        target = stage / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / entry["path"], target)
    shutil.copyfile(int8, stage / INT8_FILE)
    content = _without_int8({k: v for k, v in data.items() if k != SEAL})
    content["files"] = {**files, "onnx": listed(stage, stage / INT8_FILE)}
    write_sealed(stage, content, signer)
    return stage


def make_int8(folder: Path, calibration_data: Path, test_data: Path, calibration_profile: str | None = None,
              test_profile: str | None = None, images: int = CALIBRATION_IMAGES, progress: bool = True,
              signer=None, options: QuantOptions = OPTIONS, dst: Path | None = None) -> tuple[Path, dict]:
    """dst (default folder/model.int8.onnx) from the verified folder's model.onnx, calibrated on
    calibration_data's training split, and its metrics.int8 section (accuracy on test_data's test
    split). The folder's manifest is not changed; the caller lists the file."""
    from models.core.runtime.manifest import load_manifest

    manifest = load_manifest(folder)
    if "onnx" not in manifest.files:
        raise EndoSpineError(f"{folder}: no model.onnx to quantize (export with --onnx)")
    dataset = load_dataset(calibration_data)
    frames = calibration_frames(dataset, manifest.preprocess, calibration_profile, images)
    dst = dst or folder / INT8_FILE
    rewritten = quantize_onnx(manifest.path(folder, "onnx"), dst, frames, options, manifest.preprocess)
    test = int8_accuracy(folder, dst, test_data, test_profile, progress, signer)
    return dst, {"method": options.method(rewritten), "options": options.to_dict(),
                 "calibration": {"dataset": str(calibration_data), "split": "train", "images": len(frames),
                                 "profile": calibration_profile},
                 "test": test}


def add_int8_file(folder: str | Path, data: str | Path, test_data: str | Path | None = None,
                  profile: str | None = None, images: int = CALIBRATION_IMAGES, signer=None,
                  progress: bool = True, replace: bool = False) -> dict:
    """Write model.int8.onnx into a verified folder that has model.onnx and none yet, calibrated on
    `data`'s training split, measured on the test split of `test_data` (default `data`); list it
    in the manifest with metrics.int8 and seal it again (a dated line in `history`); a signed
    folder needs `signer`. profile: the endoscope profile of the datasets' tower. replace: the
    folder has one, made anew (e.g. by a newer quantizer) and swapped in only once it is made and
    measured; until then the folder is as it was. Returns metrics.int8 with the new integrity
    section under "integrity"."""
    folder = Path(folder)
    if replace:
        path, content, manifest = _open_for_replacement(folder, signer)
        written = folder / f".{INT8_FILE}.new"
    else:
        path, content, manifest = open_for_file(folder, INT8_ROLE, INT8_FILE, signer, what="an INT8 model")
        written = folder / INT8_FILE
    if "onnx" not in manifest.files:
        raise EndoSpineError(f"{path}: lists no model.onnx to quantize (export with --onnx)")
    backup = folder / f".{INT8_FILE}.old"      # the replaced file until the new manifest is written
    for stale in (written, backup) if replace else ():
        stale.unlink(missing_ok=True)          # left by an interrupted replacement; never listed
    try:
        _, section = make_int8(folder, Path(data), Path(test_data or data), profile, profile, images,
                               progress, signer, dst=written)
        t = section["test"]
        note = (f"{'replacing the previous one; ' if replace else ''}INT8, {_calibration_note(section)}; "
                f"test mean IoU {t['int8_miou']} vs FP32 {t['fp32_miou']}")
        if replace:
            (folder / INT8_FILE).replace(backup)
            written = written.replace(folder / INT8_FILE)
        integrity = seal_with_file(folder, content, manifest, INT8_ROLE, written, note, signer,
                                   metrics={"int8": section})
    except BaseException:
        written.unlink(missing_ok=True)        # the folder as it was
        if backup.exists():
            backup.replace(folder / INT8_FILE)
        raise
    backup.unlink(missing_ok=True)
    return {**section, "integrity": integrity}


def _open_for_replacement(folder: Path, signer=None) -> tuple[Path, dict, object]:
    """The verified folder's manifest (path, content without its INT8 model and figures, parsed),
    for add_int8_file(replace=True); one-line errors if it has no INT8 model or is signed and no
    key is given."""
    path, content = read_manifest_data(folder)
    check_seal(path, content)
    manifest = parse_manifest(path, content)
    verify_files(folder, manifest)
    if INT8_ROLE not in manifest.files:
        raise EndoSpineError(f"{path}: lists no INT8 model to replace (quantize without --replace)")
    if manifest.signature is not None and signer is None:
        raise EndoSpineError(f"{path}: signed; replacing a file changes the seal, so give the signing key")
    return path, _without_int8(content), manifest


def _without_int8(content: dict) -> dict:
    """A manifest's content without the INT8 model's file entry and metrics.int8."""
    content = {**content, "files": {k: v for k, v in content["files"].items() if k != INT8_ROLE}}
    if "int8" in (content.get("metrics") or {}):
        content["metrics"] = {k: v for k, v in content["metrics"].items() if k != "int8"}
    return content


def _calibration_note(section: dict) -> str:
    """'calibrated on 64 training images'."""
    n = section["calibration"]["images"]
    return f"calibrated on {n} training image{'s' if n != 1 else ''}"
