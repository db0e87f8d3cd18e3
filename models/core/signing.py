"""Ed25519 signatures over exported models, for hospitals that sign the models they approve.

A model folder's manifest carries the SHA-256 of its own canonical content, and that content
lists the SHA-256 of every file the runtime reads (models/core/runtime/manifest.py): a signature
over that one hash signs the whole folder. The private key stays with whoever exports or
approves models (`endospine-model keygen`, `export --sign-key`, `sign`); an endoscope profile's
`trust:` section holds the public key, and the runtime then refuses a model that is unsigned or
signed with another key.

Keys are PEM files: PKCS#8 private keys, SubjectPublicKeyInfo public keys, as written by
`endospine-model keygen` or by `openssl genpkey -algorithm ed25519 -out model-signing.key.pem`
and `openssl pkey -in model-signing.key.pem -pubout -out model-signing.pub.pem`.
The `cryptography` package is imported only when a key is used.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

from models.core.errors import EndoSpineError

ALGORITHM = "ed25519"
PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----"
KEY_FILE_LIMIT = 64 << 10           # a PEM key is a few hundred bytes


def fingerprint(raw_public: bytes) -> str:
    """A short, printable name of a public key: 'sha256:' + 16 hex digits of its raw bytes."""
    return "sha256:" + hashlib.sha256(raw_public).hexdigest()[:16]


def parse_public_key(pem: str | bytes) -> bytes:
    """The raw 32 bytes of an Ed25519 public key in PEM form; ValueError saying what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({_first_line(exc)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"a {type(key).__name__.removeprefix('_')} key; model signatures use Ed25519 keys")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public_key(path: str | Path) -> bytes:
    """The raw Ed25519 public key in a PEM file; ValueError naming the file."""
    path = Path(path)
    text = _read_key_file(path, "a PEM public key", "cannot read", ValueError)
    try:
        return parse_public_key(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_private_key(path: str | Path):
    """An Ed25519 private key from an unencrypted PEM file; EndoSpineError naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read_key_file(path, "a PEM private key", "cannot read signing key", EndoSpineError)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise EndoSpineError(f"{path}: encrypted private keys are not supported; keep the key file "
                             "unencrypted on a protected machine (endospine-model keygen)") from None
    except ValueError as exc:
        raise EndoSpineError(f"{path}: not a PEM private key ({_first_line(exc)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EndoSpineError(f"{path}: not an Ed25519 private key (make one with endospine-model keygen)")
    return key


def public_bytes(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(private_key, message: bytes) -> dict:
    """The signature record a manifest stores: algorithm, the key's fingerprint, base64 value."""
    return {"algorithm": ALGORITHM, "key": fingerprint(public_bytes(private_key)),
            "value": base64.b64encode(private_key.sign(message)).decode("ascii")}


def verify(raw_public: bytes, message: bytes, record: Any) -> None:
    """Check a signature record against a trusted key; ValueError saying why it fails."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM or not isinstance(record.get("value"), str):
        raise ValueError(f"malformed signature (expected algorithm {ALGORITHM}, key, value)")
    trusted = fingerprint(raw_public)
    if record.get("key") != trusted:
        raise ValueError(f"signed with key {record.get('key')!r}, not with the trusted key {trusted}")
    try:
        value = base64.b64decode(record["value"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("malformed signature (value is not base64)") from None
    try:
        Ed25519PublicKey.from_public_bytes(raw_public).verify(value, message)
    except InvalidSignature:
        raise ValueError(f"the signature does not match the content (key {trusted})") from None


def generate_key_pair(out: str | Path, name: str = "model-signing") -> tuple[Path, Path]:
    """Write OUT/NAME.key.pem (private, mode 0600) and OUT/NAME.pub.pem; never overwrites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out)
    private, public = out / f"{name}.key.pem", out / f"{name}.pub.pem"
    for path in (private, public):
        if path.exists():
            raise EndoSpineError(f"{path}: exists; not overwriting a key")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EndoSpineError(f"{out}: cannot create folder ({exc.strerror or exc})") from None
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        public.write_bytes(public_pem)
    except OSError as exc:
        raise EndoSpineError(f"{out}: cannot write the key pair ({exc.strerror or exc})") from None
    return private, public


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_key_file(path: Path, kind: str, cannot: str, error: type[Exception]) -> bytes:
    """The bytes of a key file of at most KEY_FILE_LIMIT; `error` naming the file otherwise."""
    try:
        if path.stat().st_size > KEY_FILE_LIMIT:
            raise error(f"{path}: too large for {kind}")
        return path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: {cannot} ({exc.strerror or type(exc).__name__})") from None
