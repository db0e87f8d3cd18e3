"""The exported model's manifest.yaml: what the model is, how to feed it, and file hashes.

The app trusts nothing in a model folder that the manifest does not vouch for: every listed
file must exist and match its SHA-256 before a predictor is built from it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.runtime.preprocess import Preprocess
from models.core.yamlio import read_folder_file

FORMAT = "endospine-model/1"
MANIFEST = "manifest.yaml"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    name: str
    classes: ClassTable
    preprocess: Preprocess
    output: dict[str, Any]                  # {"kind": "probabilities", "stride": 8, "layout": "NCHW"}
    files: dict[str, dict[str, str]]        # role -> {"path": ..., "sha256": ...}
    network: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    notice: str = ""

    @property
    def model_id(self) -> str:
        params = self.files.get("params", {}).get("sha256", "")
        return f"{self.name}@{params[:12]}"

    def path(self, root: Path, role: str) -> Path:
        return root / self.files[role]["path"]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "created": self.created, "notice": self.notice,
                "classes": self.classes.to_dict(), "preprocess": self.preprocess.to_dict(), "output": self.output,
                "network": self.network, "files": self.files, "training": self.training, "metrics": self.metrics}

    def write(self, root: Path) -> None:
        tmp = root / f".{MANIFEST}.tmp"
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=110, default_flow_style=None), encoding="utf-8")
        tmp.replace(root / MANIFEST)


def load_manifest(root: str | Path, verify: bool = True) -> Manifest:
    """Read root/manifest.yaml; with verify, check every listed file's SHA-256."""
    root = Path(root)
    path, data = read_folder_file(root, MANIFEST, FORMAT, "manifest", "model folder",
                                  "not an exported EndoSpine model; use 'endospine-model export'", "manifest")
    try:
        files = {str(k): {"path": str(v["path"]), "sha256": str(v["sha256"])} for k, v in data["files"].items()}
        manifest = Manifest(
            name=str(data["name"]), classes=ClassTable.from_dict(data["classes"], source=str(path)),
            preprocess=Preprocess.from_dict(data["preprocess"]), output=dict(data["output"]), files=files,
            network=dict(data.get("network") or {}), training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}), created=str(data.get("created", "")),
            notice=str(data.get("notice", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EndoSpineError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
    for role in ("model", "params"):
        if role not in files:
            raise EndoSpineError(f"{path}: lists no '{role}' file")
    if manifest.output.get("kind") != "probabilities":
        raise EndoSpineError(f"{path}: unsupported output kind {manifest.output.get('kind')!r}")
    if verify:
        verify_files(root, manifest)
    return manifest


def verify_files(root: Path, manifest: Manifest) -> None:
    for role, entry in manifest.files.items():
        rel = Path(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise EndoSpineError(f"{root / MANIFEST}: file path {entry['path']!r} leaves the model folder")
        target = root / rel
        if not target.is_file():
            raise EndoSpineError(f"{target}: missing ({role} file listed in the manifest)")
        actual = sha256_file(target)
        if actual != entry["sha256"]:
            raise EndoSpineError(f"{target}: SHA-256 mismatch (manifest {entry['sha256']}, file {actual}); "
                                 "refusing a modified model")
