"""`endospine-model export`: a training run -> a self-describing Paddle Inference model folder.

The folder holds model.json + model.pdiparams (PIR, Paddle 3), optionally model.onnx and its
INT8 variant model.int8.onnx (--int8, models/quantize.py), deploy.yaml (the same model for
PaddleSeg's and FastDeploy's deployment tools) and manifest.yaml (classes, preprocessing, output
kind, SHA-256 of each file, training summary, validation and test figures, the test figures with
95 % bootstrap intervals over clips as `evaluate` computes them), sealed with the SHA-256 of its
own content and, with a signing key, signed (models/core/runtime/manifest.py). The exported graph
ends in a softmax: probabilities at stride 8.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.paddle_env import import_paddle
from models.core.runtime.gate import GATE_FILE, GATE_ROLE, write_gate_file
from models.core.runtime.manifest import (
    INT8_ROLE,
    SEAL,
    Manifest,
    onnx_external_files,
    parse_manifest,
    read_manifest_data,
    verify_files,
    write_sealed,
)
from models.core.runtime.preprocess import Preprocess
from models.core.yamlio import read_yaml
from models.dataset import StagedDir, load_dataset
from models.deployfile import DEPLOY_ROLE, listed, write_deploy_file
from models.evaluate.bootstrap import CONFIDENCE, DEFAULT_RESAMPLES, group_units, intervals
from models.evaluate.summary import interval_note, mean_groups, small_split
from models.gatefit import GatedHead, GateFit, fit_gate
from models.nets import build_model
from models.nets.complexity import count_macs, count_params
from models.train.checkpoint import save_weights
from models.train.config import TrainConfig
from models.train.init import WEIGHTS_FILE, WEIGHTS_ROLE

if TYPE_CHECKING:
    from models.predict import SplitCounts

paddle = import_paddle()

SYNTHETIC_NOTICE = ("Demonstration model: trained only on synthetic frames from the EndoSpine scene engine. "
                    "It shows that the pipeline works; it is not validated on real surgery and must not guide "
                    "clinical decisions. Not a medical device.")


class ProbabilityHead(paddle.nn.Layer):
    """The trained network followed by a softmax over classes."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return paddle.nn.functional.softmax(self.net(image), axis=1)


def load_trained(run: Path, trust_pickle: bool = False) -> tuple[TrainConfig, ClassTable, dict, paddle.nn.Layer]:
    """The best checkpoint of a run folder (safetensors; an old pickle one only with trust_pickle), in eval mode."""
    from models.train.checkpoint import checkpoint_path, load_weights, stored

    for name in ("config.yaml", "data.yaml", "state.yaml"):
        if not (run / name).is_file():
            raise EndoSpineError(f"{run / name}: missing (not a finished training run)")
    if stored(run / "best") is None:
        raise EndoSpineError(f"{checkpoint_path(run / 'best')}: missing (not a finished training run)")
    cfg = TrainConfig.load(run / "config.yaml")
    data = read_yaml(run / "data.yaml", "training data file")
    classes = ClassTable.from_dict(data["classes"], source=str(run / "data.yaml"))
    net = build_model(cfg.model, len(classes))
    load_weights(net, run / "best", trust_pickle)  # checked against the network: names, shapes, finite
    net.eval()
    return cfg, classes, data, net


def write_model_folder(net, arch: str, classes: ClassTable, pre: Preprocess, folder: Path, *, onnx: bool = False,
                       training: dict | None = None, metrics: dict | None = None, notice: str = "",
                       signer=None, gate: GateFit | None = None) -> Manifest:
    """Save `net` (eval mode) + softmax for Paddle Inference into an existing folder, with its sealed
    manifest listing every file the runtime reads (signed with `signer`, an Ed25519 private key)
    and deploy.yaml, the same model for PaddleSeg's and FastDeploy's tools (listed and hashed too).
    With `gate` (models/gatefit.py): the temperature-scaled softmax and the pooled features, and
    the gate file and section (models/core/runtime/gate.py)."""
    w, h = pre.input_size
    head = exported_head(net, gate)
    paddle.jit.save(head, str(folder / "model"), input_spec=[paddle.static.InputSpec([1, 3, h, w], "float32", "image")])
    graph = folder / "model.json" if (folder / "model.json").exists() else folder / "model.pdmodel"
    files = {"model": graph, "params": folder / "model.pdiparams",
             WEIGHTS_ROLE: save_weights(folder / WEIGHTS_FILE.split(".")[0], net)}  # for train --init
    if gate is not None:
        files[GATE_ROLE] = write_gate_file(folder / GATE_FILE, gate.mean, gate.whiten)
    if onnx:
        files["onnx"] = _export_onnx(folder, graph)
        for i, location in enumerate(onnx_external_files(files["onnx"]), 1):  # tensors kept beside model.onnx
            files[f"onnx-data-{i}"] = _inside(folder, folder / location)
    manifest = Manifest(
        name=f"endospine-{arch}-{w}" if w == h else f"endospine-{arch}-{w}x{h}", classes=classes, preprocess=pre,
        output={"kind": "probabilities", "stride": net.output_stride, "layout": "NCHW", "activation": "softmax"},
        files={role: listed(folder, p) for role, p in files.items()},
        network={"arch": arch, "input": [1, 3, h, w], "gmac": round(count_macs(net, (1, 3, h, w)) / 1e9, 3),
                 "params_m": round(count_params(net) / 1e6, 3), "paddle": paddle.__version__},
        training=training or {}, metrics=metrics or {}, gate=gate_section(gate) if gate is not None else {},
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(), notice=notice)
    deploy = write_deploy_file(folder, manifest)
    manifest = replace(manifest, files={**manifest.files, DEPLOY_ROLE: listed(folder, deploy)})
    return replace(manifest, integrity=manifest.write(folder, signer))


def exported_head(net, gate: GateFit | None = None):
    """The layer export saves (eval mode): the network + softmax, or with a gate the network's
    (temperature-scaled softmax, pooled features)."""
    head = GatedHead(net, gate.rule.temperature) if gate is not None else ProbabilityHead(net)
    head.eval()
    return head


def gate_section(gate: GateFit) -> dict:
    r = gate.rule
    return {"score": "mahalanobis distance of pooled encoder features to the training frames, / sqrt(dims)",
            "threshold": round(r.threshold, 4), "enter_frames": r.enter_frames, "exit_frames": r.exit_frames,
            "unsure_below": round(r.unsure_below, 4), "temperature": r.temperature,
            **({"protect_floor": r.protect_floor} if r.protect_floor is not None else {}), "fitted": gate.report}


def reseal_model_folder(folder: str | Path, note: str, signer=None) -> dict:
    """Seal (and sign) the manifest of a folder exported before manifests were sealed: every value
    checked, every listed file verified against its hash, model.onnx's external data listed; the
    content is kept as it is but for a dated line in `history`. Returns the integrity section."""
    folder = Path(folder)
    path, data = read_manifest_data(folder)
    manifest = parse_manifest(path, data)
    verify_files(folder, manifest)
    stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    content = {k: v for k, v in data.items() if k != SEAL}
    content["history"] = [*manifest.history, f"{stamp}: {note}"]
    return write_sealed(folder, content, signer)


def export_run(run: str | Path, out: str | Path, onnx: bool = False, test_data: str | Path | None = None,
               notice: str | None = None, progress: bool = True, trust_pickle: bool = False,
               sign_key: str | Path | None = None, gate: bool = True, int8: bool = False) -> Manifest:
    """A run's best model as a sealed model folder at `out`; with int8 (needs onnx) also
    model.int8.onnx, calibrated on the run's training split, its accuracy against FP32 measured
    on the test split the manifest's test figures come from (metrics.int8)."""
    from models.core.signing import load_private_key

    if int8 and not onnx:
        raise EndoSpineError("--int8 needs --onnx (model.int8.onnx is made from model.onnx)")
    run = Path(run)
    signer = load_private_key(sign_key) if sign_key else None   # a bad key file fails before any work
    cfg, classes, data, net = load_trained(run, trust_pickle)
    state = read_yaml(run / "state.yaml", "training state file")
    size = cfg.input_size
    pre = Preprocess((size, size), crop=cfg.crop)
    training = {"run": str(run), "config": {"model": cfg.model, "iters": cfg.iters, "batch_size": cfg.batch_size,
                                            "lr": cfg.lr, "seed": cfg.seed, "crop_px": cfg.augment.crop,
                                            "profile": cfg.profile},
                "data": {k: data[k] for k in ("train", "val", "test") if k in data}, "best_step": state.get("best_step")}
    with StagedDir(out, overwrite=False) as tmp:
        fit = _fit_gate(net, Path(data["val"]["dataset"]), pre, cfg.profile, progress) if gate else None
        manifest = write_model_folder(
            net, cfg.model, classes, pre, tmp, onnx=onnx, training=training,
            metrics={"val_miou_tissues": round(float(state.get("best_miou", float("nan"))), 4)},
            notice=notice if notice is not None else _default_notice(data), gate=fit)
        metrics = dict(manifest.metrics, export_parity_max_abs=exported_parity(exported_head(net, fit), tmp, size))
        test_root = Path(test_data) if test_data else Path(data["val"]["dataset"])
        if onnx:
            metrics["onnx_parity_max_abs"] = onnx_parity(tmp, test_root)
        # the training data's tower profile applies to its own test split, not to another dataset's
        metrics.update(_test_metrics(tmp, test_root, progress, cfg.profile if not test_data else None))
        if int8:
            from models.quantize import make_int8

            path, metrics["int8"] = make_int8(tmp, Path(data["val"]["dataset"]), test_root, cfg.profile,
                                              cfg.profile if not test_data else None, progress=progress,
                                              signer=signer)
            manifest = replace(manifest, files={**manifest.files, INT8_ROLE: listed(tmp, path)})
        manifest = replace(manifest, metrics=metrics)
        manifest = replace(manifest, integrity=manifest.write(tmp, signer))
    return manifest


def exported_parity(head, model_dir: Path, size: int, runs: int = 3, seed: int = 0) -> float:
    """Max |exported (oneDNN predictor) - eager `head` (exported_head)| over a few random inputs,
    on probabilities and, with a gate, on the pooled features (relative to their scale)."""
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime

    runtime = SegmentationRuntime(model_dir, RuntimeSettings(device="cpu", onednn=True))
    rng = np.random.default_rng(seed)
    worst = 0.0
    with paddle.no_grad():
        for _ in range(runs):
            x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
            out = head(paddle.to_tensor(x))
            probs, feats = (out[0].numpy(), out[1].numpy()) if isinstance(out, (tuple, list)) else (out.numpy(), None)
            worst = max(worst, float(np.abs(runtime.run_tensor(x) - probs).max()))
            if feats is not None:
                scale = max(float(np.abs(feats).max()), 1e-6)
                worst = max(worst, float(np.abs(runtime.features - feats).max()) / scale)
    return worst


ONNX_TOLERANCE = 1e-3


def onnx_parity(model_dir: Path, data_root: Path, images: int = 4) -> float:
    """Max |ONNX Runtime - Paddle predictor| on real images of the dataset (and one random input).

    PIR exports converted to ONNX have misread norm epsilons before (Paddle2ONNX #1646): a
    model.onnx that disagrees is refused rather than shipped.
    """
    from models.core.imageio import read_image
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime

    paddle_rt = SegmentationRuntime(model_dir)
    onnx_rt = SegmentationRuntime(model_dir, RuntimeSettings(backend="onnxruntime"))
    dataset = load_dataset(data_root)
    items = (dataset.splits.get("test") or dataset.items)[:images]
    inputs = [paddle_rt.pre(read_image(dataset.path(it.image)))[0] for it in items]
    w, h = paddle_rt.pre.input_size
    inputs.append(np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32))
    worst = max(float(np.abs(onnx_rt.run_tensor(x) - paddle_rt.run_tensor(x)).max()) for x in inputs)
    if worst > ONNX_TOLERANCE:
        raise EndoSpineError(f"{model_dir / 'model.onnx'}: differs from the Paddle model by {worst:.2e} "
                             f"(> {ONNX_TOLERANCE:g}); not exported")
    return worst


def _test_metrics(model_dir: Path, data_root: Path, progress: bool, profile: str | None = None) -> dict:
    from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
    from models.predict import split_counts

    dataset = load_dataset(data_root)
    items = dataset.splits.get("test") or []
    if not items:
        return {"test": None, "test_note": f"{data_root} has no test split"}
    counts = split_counts(SegmentationRuntime(model_dir, RuntimeSettings(profile=profile)), dataset, items,
                          progress=progress)
    return {"test": {"dataset": str(data_root), "runtime": "paddle cpu onednn, fov auto", "profile": profile,
                     **manifest_figures(counts)}}


INTERVAL_KEYS = ("iou", "dice")  # the figures the manifest gives an interval (evaluate's metrics.json has them all)


def manifest_figures(counts: SplitCounts, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """The manifest's test figures from a split's counts: images, clips, per_class and mean (over
    the tissues) as before, all pixels pooled; mean_paper (bone, ligament, disc, when the table has
    them); ci95, the 95 % percentile bootstrap over clips of IoU and Dice per class and of both
    means, computed by evaluate's code (models/evaluate/bootstrap.py), so that `evaluate` on the
    same split gives the same intervals; bootstrap: over what, how many, and the small-split note.
    4 decimals, intervals as [low, high], null where a figure does not exist."""
    groups = {g: cols for g, cols in mean_groups(counts.names).items() if g in ("mean", "mean_paper")}
    doc = counts.figures(groups)
    units = group_units(counts.clips, counts.matrices)
    n, small = len(units.matrices), small_split(units)
    ci = intervals(units, groups, resamples, seed)
    doc["ci95"] = None if ci is None else {
        "per_class": {c: {k: _pair(ci["per_class"][k][i]) for k in INTERVAL_KEYS} for i, c in enumerate(counts.names)},
        **{g: {k: _pair(ci["means"][g][k]) for k in INTERVAL_KEYS} for g in groups}}
    if ci is not None:
        note = interval_note(units, small, scored=False)
    else:
        note = "no intervals (no resamples)" if resamples < 1 else \
            f"no intervals: {n} {units.kind}{'s' if n != 1 else ''}, need two"
    doc["bootstrap"] = {"unit": units.kind, "units": n, "resamples": resamples, "seed": seed,
                        "confidence": CONFIDENCE, "small_split": small, "note": note}
    return doc


def _pair(lo_hi) -> list[float] | None:
    lo, hi = (float(v) for v in lo_hi)
    return [round(lo, 4), round(hi, 4)] if np.isfinite(lo) and np.isfinite(hi) else None


def _export_onnx(folder: Path, graph: Path) -> Path:
    try:
        import paddle2onnx  # noqa: F401
    except ImportError:
        raise EndoSpineError("--onnx needs paddle2onnx: pip install 'endospine[onnx]'") from None
    import subprocess
    import sys

    target = folder / "model.onnx"
    cmd = [sys.executable, "-m", "paddle2onnx.command", "--model_dir", str(folder), "--model_filename", graph.name,
           "--params_filename", "model.pdiparams", "--save_file", str(target), "--opset_version", "13"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EndoSpineError(f"{target}: paddle2onnx failed ({tail[0]})")
    return target


def _fit_gate(net, data_root: Path, pre: Preprocess, profile: str | None, progress: bool) -> GateFit:
    """The trust gate from the run's dataset: train split statistics, validation split the rest."""
    from models.core.optics.profile import load_profile
    from models.core.runtime.frameview import FramePrep

    dataset = load_dataset(data_root)
    prep = FramePrep(load_profile(profile) if profile else None, pre, independent=True)
    try:
        return fit_gate(net, dataset, pre, prep, progress=progress)
    except ValueError as exc:
        raise EndoSpineError(f"cannot fit the trust gate: {exc} (--no-gate exports without one)") from None


def _default_notice(data: dict) -> str:
    sources = " ".join(str(d.get("sources", "")) for d in data.get("train", []))
    if sources and "real" not in sources:
        return SYNTHETIC_NOTICE
    return "Research model; not a medical device."


def _inside(folder: Path, path: Path) -> Path:
    """A file the export wrote, refused if it is not a regular file inside the folder."""
    real = path.resolve()
    if not real.is_relative_to(folder.resolve()) or not real.is_file():
        raise EndoSpineError(f"{path}: external data of model.onnx is not a file inside {folder}; not exported")
    return path
