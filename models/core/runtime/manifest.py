"""The exported model's manifest.yaml: what the model is, how to feed it, and what vouches for it.

The runtime trusts nothing in a model folder that the manifest does not vouch for, and no
manifest that is not sealed:

  seal       `integrity.manifest_sha256`: the SHA-256 of the manifest's canonical content (every
             field but `integrity`, as sorted-key JSON). A verified load recomputes it, so an
             edited or unsealed manifest is refused ("re-export it"); `Manifest.write` always seals.
  files      every file the runtime reads is listed with its SHA-256: the Paddle graph and
             weights, model.onnx and each external-data file model.onnx names (onnxdata.py).
             A listed path must stay inside the folder once symlinks are resolved; an
             external-data file that model.onnx names and the manifest does not list is refused.
  values     the preprocessing (preprocess.py), the output contract, the file list and the class
             table are checked on every load, verified or not: one line naming the manifest and
             the field.
  signature  optional `integrity.signature`: Ed25519 over the seal (models/core/signing.py);
             required when the endoscope profile names a trusted key.
  int8       optional: model.int8.onnx (role `onnx-int8`, made from model.onnx by
             `endospine-model quantize` or `export --int8`), listed and hashed like every file,
             and `metrics.int8`, how it was made and its accuracy against FP32; the one is never
             listed without the other (checked on every load). Its input is the float tensor
             or, when `quantize` made it read the picture itself, the picture's uint8 2x2
             blocks; the runtime reads which from the model's declared input.

The seal catches careless edits and damage; anyone can recompute it. Only a signature says who
approved the model.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.runtime.onnxdata import external_data_files
from models.core.runtime.preprocess import Preprocess
from models.core.yamlio import dump_yaml, parse_yaml, read_folder_file

FORMAT = "endospine-model/1"
MANIFEST = "manifest.yaml"
SEAL = "integrity"                         # the one section outside the canonical content
REEXPORT = "re-export it with 'endospine-model export'"
OUTPUT_KINDS = ("probabilities",)
OUTPUT_STRIDES = (1, 2, 4, 8, 16, 32)
OUTPUT_FIELDS = {"kind": OUTPUT_KINDS, "layout": ("NCHW",), "activation": ("softmax",)}
MAX_FILES = 64
MAX_DEPTH = 32                             # nesting of the manifest's content
SHA256 = re.compile(r"[0-9a-f]{64}")
INT8_ROLE = "onnx-int8"                    # model.int8.onnx: the INT8 variant of model.onnx (ONNX Runtime)
ONNX_ROLES = ("onnx", INT8_ROLE)           # files ONNX Runtime loads: their external data must be listed too
INT8_KEYS = {"method": str, "options": dict, "calibration": dict, "test": dict}
INT8_CALIBRATION = {"dataset": str, "split": str, "images": int}
INT8_TEST = {"dataset": str, "split": str, "images": int, "clips": int, "runtime": str,
             "fp32_miou": float, "int8_miou": float, "miou_difference": float}
FIELDS = ("format", "name", "created", "notice", "classes", "preprocess", "output", "network", "files",
          "training", "metrics", "gate", "history", SEAL)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def canonical_sha256(data: dict) -> str:
    """The seal: SHA-256 of a manifest's content without its integrity section, as sorted-key
    JSON. ValueError for content JSON cannot hold exactly (non-text keys, other types, depth)."""
    content = {k: v for k, v in data.items() if k != SEAL}
    text = json.dumps(_plain(content, 0), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def signed_message(seal: str) -> bytes:
    """What a model signature signs: the seal, which covers every file's SHA-256."""
    return f"{FORMAT} manifest sha256:{seal}".encode("ascii")


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
    gate: dict[str, Any] = field(default_factory=dict)     # the trust gate (models/core/runtime/gate.py); {}: none
    created: str = ""
    notice: str = ""
    history: tuple[str, ...] = ()           # later changes to the folder, one line each
    integrity: dict[str, Any] = field(default_factory=dict, compare=False)  # as read; write() makes its own

    @property
    def model_id(self) -> str:
        params = self.files.get("params", {}).get("sha256", "")
        return f"{self.name}@{params[:12]}"

    @property
    def signature(self) -> dict | None:
        return self.integrity.get("signature")

    def path(self, root: Path, role: str) -> Path:
        return root / self.files[role]["path"]

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "name": self.name, "created": self.created, "notice": self.notice,
             "classes": self.classes.to_dict(), "preprocess": self.preprocess.to_dict(), "output": self.output,
             "network": self.network, "files": self.files, "training": self.training, "metrics": self.metrics}
        if self.gate:
            d["gate"] = self.gate
        if self.history:
            d["history"] = list(self.history)
        return d

    def write(self, root: Path, signer=None) -> dict:
        """Write root/manifest.yaml, sealed (and signed with `signer`, an Ed25519 private key from
        models.core.signing.load_private_key). Returns the integrity section written."""
        return write_sealed(root, self.to_dict(), signer)


def write_sealed(root: Path, content: dict, signer=None) -> dict:
    """Write a manifest's content atomically with its seal (and signature). The seal is taken
    over the content as a reader will parse it back, so floats and tuples cannot make it differ."""
    from models.core import signing

    content = {k: v for k, v in content.items() if k != SEAL}
    parsed = parse_yaml(_dump(content))
    seal = canonical_sha256(parsed)
    integrity: dict[str, Any] = {"manifest_sha256": seal}
    if signer is not None:
        integrity["signature"] = signing.sign(signer, signed_message(seal))
    write_bytes_atomic(Path(root) / MANIFEST, _dump({**parsed, SEAL: integrity}).encode("utf-8"))
    return integrity


def sign_model_folder(root: str | Path, signer) -> dict:
    """Sign a verified model folder (sealed, every file matching) as it is: the content and so the
    seal stay the same, the signature is added (or replaced). Returns the integrity section."""
    root = Path(root)
    path, data = read_manifest_data(root)
    check_seal(path, data)
    verify_files(root, parse_manifest(path, data))
    return write_sealed(root, data, signer)


def read_manifest_data(root: Path) -> tuple[Path, dict]:
    """(path, raw content) of root/manifest.yaml, format checked, nothing else."""
    return read_folder_file(root, MANIFEST, FORMAT, "manifest", "model folder",
                            "not an exported EndoSpine model; use 'endospine-model export'", "manifest")


def load_manifest(root: str | Path, verify: bool = True, trusted_key: bytes | None = None,
                  trusted_by: str = "the endoscope profile") -> Manifest:
    """Read root/manifest.yaml and check every value. With verify (the runtime's way): the seal,
    then every listed file's containment and SHA-256, and the ONNX external data. With
    trusted_key (raw Ed25519 public key; implies verify): a signature by that key."""
    root = Path(root)
    path, data = read_manifest_data(root)
    verify = verify or trusted_key is not None
    seal = check_seal(path, data) if verify else ""
    manifest = parse_manifest(path, data)
    if verify:
        verify_files(root, manifest)
    if trusted_key is not None:
        check_signature(path, manifest, seal, trusted_key, trusted_by)
    return manifest


def check_seal(path: Path, data: dict) -> str:
    """The manifest's seal, recomputed and compared; EndoSpineError 're-export it' otherwise."""
    integrity = data.get(SEAL)
    sealed = integrity.get("manifest_sha256") if isinstance(integrity, dict) else None
    if not isinstance(sealed, str) or not sealed:
        raise EndoSpineError(f"{path}: not sealed (no {SEAL}.manifest_sha256: written by an older export or "
                             f"by hand); {REEXPORT}")
    try:
        actual = canonical_sha256(data)
    except ValueError as exc:
        raise EndoSpineError(f"{path}: malformed manifest ({exc})") from None
    if actual != sealed:
        raise EndoSpineError(f"{path}: edited after export (content SHA-256 {actual[:16]}..., sealed "
                             f"{sealed[:16]}...); {REEXPORT}")
    return actual


def check_signature(path: Path, manifest: Manifest, seal: str, trusted_key: bytes, trusted_by: str) -> None:
    from models.core import signing

    if manifest.signature is None:
        raise EndoSpineError(f"{path}: not signed, and {trusted_by} trusts only models signed with key "
                             f"{signing.fingerprint(trusted_key)}; sign it (endospine-model sign)")
    try:
        signing.verify(trusted_key, signed_message(seal), manifest.signature)
    except ValueError as exc:
        raise EndoSpineError(f"{path}: signature refused by {trusted_by}: {exc}") from None


def parse_manifest(path: Path, data: dict) -> Manifest:
    """Every field typed and in range; EndoSpineError '<manifest>: <field>: <problem>'."""
    def bad(where: str, problem: str) -> EndoSpineError:
        return EndoSpineError(f"{path}: {where}: {problem}")

    for key in data:
        if key not in FIELDS:
            raise bad(str(key), f"unknown field (expected {', '.join(FIELDS)})")
    for key in ("name", "classes", "preprocess", "output", "files"):
        if key not in data:
            raise bad(key, "missing")
    for key in ("created", "notice"):
        if not isinstance(data.get(key) or "", str):
            raise bad(key, "expected text")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise bad("name", "expected a non-empty name")
    sections = {}
    for key in ("network", "training", "metrics", "gate"):
        if not isinstance(data.get(key) or {}, dict):
            raise bad(key, f"expected a mapping, got {type(data[key]).__name__}")
        sections[key] = dict(data.get(key) or {})
    history = data.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise bad("history", "expected a list of lines")
    if not isinstance(data["preprocess"], dict):
        raise bad("preprocess", f"expected a mapping, got {type(data['preprocess']).__name__}")
    try:
        pre = Preprocess.from_dict(data["preprocess"])
    except ValueError as exc:
        raise EndoSpineError(f"{path}: preprocess.{exc}") from None
    try:
        classes = ClassTable.from_dict(data["classes"], source=str(path))
    except (OverflowError, RecursionError) as exc:
        raise bad("classes", f"not a valid class table ({type(exc).__name__})") from None
    files = _parse_files(data["files"], bad)
    _check_int8(sections["metrics"].get("int8"), files, bad)
    integrity = data.get(SEAL)
    return Manifest(name=data["name"], classes=classes, preprocess=pre, output=_parse_output(data["output"], pre, bad),
                    files=files, created=str(data.get("created") or ""),
                    notice=str(data.get("notice") or ""), history=tuple(history),
                    integrity=dict(integrity) if isinstance(integrity, dict) else {}, **sections)


def _parse_output(output: Any, pre: Preprocess, bad) -> dict:
    if not isinstance(output, dict):
        raise bad("output", f"expected a mapping (kind, stride, layout), got {type(output).__name__}")
    for key in output:
        if key not in (*OUTPUT_FIELDS, "stride"):
            raise bad(f"output.{key}", "unknown field (expected kind, stride, layout, activation)")
    for key, known in OUTPUT_FIELDS.items():
        value = output.get(key, known[0]) if key != "kind" else output.get("kind")
        if value not in known:
            raise bad(f"output.{key}", f"unsupported {value!r} (known: {', '.join(known)})")
    stride = output.get("stride")
    if type(stride) is not int or stride not in OUTPUT_STRIDES:
        raise bad("output.stride", f"{stride!r}: expected one of {', '.join(map(str, OUTPUT_STRIDES))}")
    if any(side % stride for side in pre.input_size):
        raise bad("output.stride", f"{stride} does not divide the input size {list(pre.input_size)}")
    return dict(output)


def _parse_files(files: Any, bad) -> dict[str, dict[str, str]]:
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_FILES:
        raise bad("files", f"expected a mapping of up to {MAX_FILES} roles to {{path, sha256}}")
    out = {}
    for role, entry in files.items():
        where = f"files.{role}"
        if not isinstance(role, str) or not isinstance(entry, dict) or set(entry) != {"path", "sha256"}:
            raise bad(where, "expected {path: ..., sha256: ...}")
        rel, digest = entry["path"], entry["sha256"]
        if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
            raise bad(f"{where}.path", f"{rel!r}: expected a relative path inside the model folder")
        parts = PurePosixPath(rel)
        if parts.is_absolute() or ".." in parts.parts or parts == PurePosixPath("."):
            raise bad(f"{where}.path", f"file path {rel!r} leaves the model folder")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise bad(f"{where}.sha256", "expected 64 lowercase hex digits")
        out[role] = {"path": rel, "sha256": digest}
    for role in ("model", "params"):
        if role not in out:
            raise bad("files", f"lists no '{role}' file")
    if INT8_ROLE in out and "onnx" not in out:
        raise bad(f"files.{INT8_ROLE}", "an INT8 model without the model.onnx it was made from")
    return out


def _check_int8(section: Any, files: dict, bad) -> None:
    """metrics.int8 (how model.int8.onnx was made, its accuracy against FP32) iff files lists
    the INT8 model; every value typed, the mean IoUs in 0..1 and their difference consistent."""
    if section is None:
        if INT8_ROLE in files:
            raise bad("metrics.int8", f"missing: files lists an INT8 model ({INT8_ROLE}) without its accuracy "
                                      "against FP32")
        return
    if INT8_ROLE not in files:
        raise bad("metrics.int8", f"present, but files lists no INT8 model ({INT8_ROLE})")
    _typed(section, INT8_KEYS, "metrics.int8", bad)
    _typed(section["calibration"], INT8_CALIBRATION, "metrics.int8.calibration", bad, extra=True)
    _typed(section["test"], INT8_TEST, "metrics.int8.test", bad, extra=True)
    cal, test = section["calibration"], section["test"]
    if cal["split"] != "train" or cal["images"] < 1:
        raise bad("metrics.int8.calibration", "expected images >= 1 of the train split")
    if test["images"] < 1 or not 1 <= test["clips"] <= test["images"]:
        raise bad("metrics.int8.test", "expected images >= 1 and 1 <= clips <= images")
    for key in ("fp32_miou", "int8_miou"):
        if not 0.0 <= test[key] <= 1.0:
            raise bad(f"metrics.int8.test.{key}", f"{test[key]!r}: expected a mean IoU in 0..1")
    if abs(test["miou_difference"] - (test["int8_miou"] - test["fp32_miou"])) > 2e-4:
        raise bad("metrics.int8.test.miou_difference", "is not int8_miou - fp32_miou")


def _typed(section: Any, keys: dict, where: str, bad, extra: bool = False) -> None:
    """A mapping holding `keys` with their types (float: any finite number); extra: other keys allowed."""
    if not isinstance(section, dict):
        raise bad(where, f"expected a mapping, got {type(section).__name__}")
    for key, kind in keys.items():
        value = section.get(key)
        if kind is float:
            ok = type(value) in (int, float) and math.isfinite(value)
        else:
            ok = type(value) is kind
        if not ok:
            raise bad(f"{where}.{key}", f"expected {'a number' if kind is float else kind.__name__}, got {value!r}")
    unknown = set(section) - set(keys)
    if unknown and not extra:
        raise bad(f"{where}.{sorted(unknown)[0]}", f"unknown field (expected {', '.join(keys)})")


def verify_files(root: Path, manifest: Manifest) -> None:
    """Every listed file inside the folder (symlinks resolved), present, and matching its
    SHA-256; model.onnx's external data listed too."""
    manifest_path = root / MANIFEST
    try:
        base = root.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise EndoSpineError(f"{root}: cannot resolve the model folder ({exc})") from None
    for role, entry in manifest.files.items():
        target = root / entry["path"]
        try:
            real = target.resolve()
        except (OSError, RuntimeError) as exc:   # a symlink loop
            raise EndoSpineError(f"{target}: cannot resolve ({role} file: {exc})") from None
        if not real.is_relative_to(base):
            raise EndoSpineError(f"{target}: {role} file resolves to {real}, outside the model folder "
                                 f"(a symlink?); refusing it")
        if not real.is_file():
            raise EndoSpineError(f"{target}: missing ({role} file listed in the manifest)")
        actual = sha256_file(real)
        if actual != entry["sha256"]:
            raise EndoSpineError(f"{target}: SHA-256 mismatch (manifest {entry['sha256']}, file {actual}); "
                                 "refusing a modified model")
    for role in ONNX_ROLES:
        if role in manifest.files:
            check_onnx_data(root, manifest, manifest_path, role)


def check_onnx_data(root: Path, manifest: Manifest, manifest_path: Path, role: str = "onnx") -> None:
    """Every external-data file an ONNX model (model.onnx, model.int8.onnx) names must be a listed
    (so hashed) file."""
    onnx = manifest.path(root, role)
    listed = {PurePosixPath(e["path"]) for e in manifest.files.values()}
    for location in onnx_external_files(onnx):
        rel = PurePosixPath(manifest.files[role]["path"]).parent / location
        if rel.is_absolute() or ".." in rel.parts or rel not in listed:
            raise EndoSpineError(f"{onnx}: reads external data {location!r} that {manifest_path.name} does not "
                                 f"list and hash; {REEXPORT}")


def onnx_external_files(onnx: Path) -> list[str]:
    """The external-data locations model.onnx names; EndoSpineError if it cannot be read."""
    try:
        return external_data_files(onnx.read_bytes())
    except (OSError, ValueError) as exc:
        raise EndoSpineError(f"{onnx}: not a readable ONNX model ({exc})") from None


# -- helpers ---------------------------------------------------------------------------------
def _dump(content: dict) -> str:
    return dump_yaml(content, width=110, default_flow_style=None)


def _plain(value: Any, depth: int) -> Any:
    """The content as JSON types, checked: text keys, no other types, bounded depth."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("a mapping has a key that is not text")
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"a value of type {type(value).__name__} (quote it)")
