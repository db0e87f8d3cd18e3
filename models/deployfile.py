"""deploy.yaml: an exported EndoSpine model as PaddleSeg's and FastDeploy's deployment tools load it.

`export` writes it beside the model and lists it in the manifest with its SHA-256 (role `deploy`);
no EndoSpine code reads it. `add_deploy_file` adds it to a folder exported before export wrote one.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.runtime.manifest import (
    SEAL,
    Manifest,
    check_seal,
    parse_manifest,
    read_manifest_data,
    sha256_file,
    verify_files,
    write_sealed,
)
from models.core.yamlio import dump_yaml

DEPLOY_FILE = "deploy.yaml"
DEPLOY_ROLE = "deploy"  # its role in the manifest's files: hashed like the rest; no EndoSpine code reads it
DEPLOY_INTERP = "AREA"  # preprocess.py shrinks with INTER_AREA (frames are larger than the input)


def deploy_config(manifest: Manifest) -> dict:
    """deploy.yaml's content: the `Deploy` mapping that PaddleSeg's DeployConfig
    (paddleseg/deploy/infer.py, used by deploy/python/infer.py) and FastDeploy's PaddleSegModel
    (its preprocessor and postprocessor) read. `model` and `params` are relative to the folder;
    `transforms` are the runtime's preprocessing (preprocess.py: resize, then (x / 255 - mean) / std,
    on RGB, to which both tools convert the BGR images they read) without its crop, which no
    PaddleSeg transform expresses; `output_op: softmax` says the graph already ends in a softmax
    (FastDeploy then takes the argmax without a second softmax) and its first output is what the
    tools read."""
    pre = manifest.preprocess
    if pre.color_order != "RGB":  # PaddleSeg's Compose and FastDeploy always feed RGB
        raise EndoSpineError(f"deploy.yaml: color order {pre.color_order} cannot be written for PaddleSeg tools")
    w, h = pre.input_size
    return {"Deploy": {
        "model": manifest.files["model"]["path"], "params": manifest.files["params"]["path"],
        "transforms": [{"type": "Resize", "target_size": [w, h], "interp": DEPLOY_INTERP},
                       {"type": "Normalize", "mean": list(pre.mean), "std": list(pre.std)}],
        "input_shape": [1, 3, h, w], "output_op": "softmax", "output_dtype": "float32"}}


def deploy_notes(manifest: Manifest, width: int = 100) -> list[str]:
    """The comment lines at the top of deploy.yaml: what the tools do differently from the
    EndoSpine runtime, and what the outputs are ("" between sections)."""
    pre, stride = manifest.preprocess, manifest.output["stride"]
    w, h = pre.input_size
    shape = [1, len(manifest.classes), h // stride, w // stride]
    fallback = "the centered square of side min(W, H)" if pre.crop == "center-square" else "the whole frame"
    temperature, fitted = manifest.gate.get("temperature"), manifest.gate.get("fitted")
    dims = fitted.get("dims", "D") if isinstance(fitted, dict) else "D"
    softmax = (f"softmax(logits / {temperature:g}) (the trust gate's temperature; the argmax is unchanged)"
               if isinstance(temperature, (int, float)) and temperature > 0 else "softmax(logits)")
    sections = [
        [f"{manifest.name} for PaddleSeg's deploy tools (deploy/python/infer.py) and FastDeploy's "
         "PaddleSegModel, written by 'endospine-model export'. manifest.yaml is the model's contract and lists "
         "this file with its SHA-256; the EndoSpine runtime does not read this file."],
        ["Input: RGB (both tools convert the BGR images they read), resized, then (x / 255 - mean) / std.",
         "NOT EXPRESSIBLE HERE: the EndoSpine runtime first crops each frame to the square around the circular "
         f"field of view it finds (without one: {fallback}). No PaddleSeg transform does that, so these tools "
         "resize the whole frame: give them the field of view's square for the view the model was trained on. "
         "Nor do they apply the endoscope profile (lens undistortion, color correction).",
         "Resize: the runtime uses AREA when shrinking (as here), LINEAR when enlarging; FastDeploy always "
         "uses LINEAR."],
        [f"Output 0 (the one these tools read): class probabilities, float32 {shape}, 1/{stride} of the input "
         "size (PaddleSeg's infer.py saves its label maps at that size; FastDeploy resizes them to the image). "
         f"The graph already ends in {softmax}: output_op softmax; the argmax gives the labels.",
         *([f"Output 1: pooled encoder features [1, {dims}] for EndoSpine's trust gate; these tools ignore it."]
           if manifest.gate else []),
         "Classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(manifest.classes.names)) + "."],
    ]
    lines: list[str] = []
    for section in sections:
        lines += [""] if lines else []
        for paragraph in section:
            lines += textwrap.wrap(paragraph, width, break_on_hyphens=False)
    return lines


def write_deploy_file(folder: Path, manifest: Manifest) -> Path:
    """folder/deploy.yaml for `manifest` (deploy_config, with deploy_notes as comments)."""
    notes = "".join(f"# {line}".rstrip() + "\n" for line in deploy_notes(manifest))
    path = folder / DEPLOY_FILE
    write_bytes_atomic(path, (notes + dump_yaml(deploy_config(manifest), default_flow_style=None)).encode("utf-8"))
    return path


def add_deploy_file(folder: str | Path, signer=None) -> dict:
    """Write deploy.yaml into a verified folder exported before export wrote one, list it in the
    manifest and seal it again (a dated line in `history`); a signed folder needs `signer` (the
    seal changes, so the old signature would no longer hold). Returns the integrity section."""
    folder = Path(folder)
    _, content, manifest = open_for_file(folder, DEPLOY_ROLE, DEPLOY_FILE, signer)
    deploy = write_deploy_file(folder, manifest)
    return seal_with_file(folder, content, manifest, DEPLOY_ROLE, deploy, "PaddleSeg / FastDeploy", signer)


def open_for_file(folder: Path, role: str, name: str, signer=None, what: str = "") -> tuple[Path, dict, Manifest]:
    """An exported folder about to gain the file `name` under `role`: its manifest (path, raw
    content, parsed) once the seal and every file's hash hold, the role is free, no unlisted file
    of that name would be overwritten, and a signed folder has its `signer`. Else one-line errors
    (`what`: the file in words, default 'a ROLE file')."""
    path, content = read_manifest_data(folder)
    check_seal(path, content)
    manifest = parse_manifest(path, content)
    verify_files(folder, manifest)
    if role in manifest.files:
        raise EndoSpineError(f"{path}: already lists {what or f'a {role} file'} ({manifest.files[role]['path']})")
    if (folder / name).exists():
        raise EndoSpineError(f"{folder / name}: exists but is not in the manifest; not overwritten")
    if manifest.signature is not None and signer is None:
        raise EndoSpineError(f"{path}: signed; adding a file changes the seal, so give the signing key")
    return path, content, manifest


def seal_with_file(folder: Path, content: dict, manifest: Manifest, role: str, written: Path, note: str,
                   signer=None, metrics: dict | None = None) -> dict:
    """The manifest `content` (from open_for_file) with the written file listed under `role`,
    `metrics` merged into its metrics, a dated history line ('added NAME (note)'), sealed again.
    Returns the integrity section."""
    stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    content = {k: v for k, v in content.items() if k != SEAL}
    content["files"] = {**content["files"], role: listed(folder, written)}
    if metrics:
        content["metrics"] = {**(content.get("metrics") or {}), **metrics}
    content["history"] = [*manifest.history, f"{stamp}: added {written.name} ({note})"]
    return write_sealed(folder, content, signer)


def listed(folder: Path, path: Path) -> dict[str, str]:
    """A written file's entry in the manifest's files."""
    return {"path": path.relative_to(folder).as_posix(), "sha256": sha256_file(path)}
