"""Signed models: Ed25519 over the manifest's seal, trusted through an endoscope profile's
`trust:` section. Keys are made at test time."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from models.core import signing
from models.core.errors import EndoSpineError
from models.core.optics.profile import Profile, load_profile, names_trust
from models.core.runtime.manifest import MANIFEST, load_manifest, sign_model_folder, write_sealed
from models.core.yamlio import dump_yaml, read_yaml
from tests.models.core.runtime.test_manifest import make_folder


@pytest.fixture
def keys(tmp_path):
    private, public = signing.generate_key_pair(tmp_path / "keys")
    return signing.load_private_key(private), signing.read_public_key(public), public


def one_line_refusal(root: Path, key: bytes, *needles: str) -> None:
    with pytest.raises(EndoSpineError) as info:
        load_manifest(root, trusted_key=key, trusted_by="the profile p.yaml")
    text = str(info.value)
    assert "\n" not in text and str(root / MANIFEST) in text
    for needle in needles:
        assert needle in text, text


@pytest.mark.unit
def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    private, public = signing.generate_key_pair(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    assert len(signing.read_public_key(public)) == 32
    with pytest.raises(EndoSpineError, match="not overwriting"):
        signing.generate_key_pair(tmp_path)


@pytest.mark.unit
def test_signed_loads_tampered_and_unsigned_are_refused(tmp_path, keys):
    private, public, _ = keys
    root = make_folder(tmp_path / "m")
    one_line_refusal(root, public, "not signed", signing.fingerprint(public))
    integrity = sign_model_folder(root, private)
    assert integrity["signature"]["key"] == signing.fingerprint(public)
    assert load_manifest(root, trusted_key=public).signature == integrity["signature"]

    data = read_yaml(root / MANIFEST)                      # a forged signature value
    value = bytearray(base64.b64decode(data["integrity"]["signature"]["value"]))
    value[0] ^= 1
    data["integrity"]["signature"]["value"] = base64.b64encode(bytes(value)).decode()
    (root / MANIFEST).write_text(dump_yaml(data), encoding="utf-8")
    one_line_refusal(root, public, "does not match")

    sign_model_folder(root, private)                       # content changed, resealed, old signature kept
    data = read_yaml(root / MANIFEST)
    signature = data["integrity"]["signature"]
    data["preprocess"]["std"] = [0.25, 0.25, 0.25]
    write_sealed(root, data)
    data = read_yaml(root / MANIFEST)
    data["integrity"]["signature"] = signature
    (root / MANIFEST).write_text(dump_yaml(data), encoding="utf-8")
    one_line_refusal(root, public, "does not match")


@pytest.mark.unit
def test_a_signature_by_another_key_is_refused(tmp_path, keys):
    _, public, _ = keys
    other_private, _ = signing.generate_key_pair(tmp_path / "other")
    root = make_folder(tmp_path / "m")
    sign_model_folder(root, signing.load_private_key(other_private))
    one_line_refusal(root, public, "not with the trusted key")


@pytest.mark.unit
def test_sign_refuses_a_folder_that_does_not_verify(tmp_path, keys):
    root = make_folder(tmp_path / "m")
    (root / "model.json").write_bytes(b"changed")
    with pytest.raises(EndoSpineError, match="SHA-256 mismatch"):
        sign_model_folder(root, keys[0])


@pytest.mark.unit
def test_bad_private_keys_are_one_line(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    for path, why in ((encrypted, "encrypted"), (garbage, "not a PEM private key"), (tmp_path / "no.pem", "cannot read")):
        with pytest.raises(EndoSpineError, match=why):
            signing.load_private_key(path)


# -- the profile's trust section -----------------------------------------------------------------
def write_profile(path: Path, trust) -> Path:
    path.write_text(dump_yaml({"format": "endospine-profile/1", "trust": trust}), encoding="utf-8")
    return path


@pytest.mark.unit
def test_profile_trust_key_from_a_file_beside_it_or_inline(tmp_path, keys):
    _, public, public_file = keys
    beside = write_profile(tmp_path / "keys" / "p.yaml", {"public_key": public_file.name})
    profile = load_profile(beside)
    assert profile.trust.key == public and profile.to_dict()["trust"] == {"public_key": public_file.name}
    inline = write_profile(tmp_path / "inline.yaml", {"public_key": public_file.read_text()})
    assert load_profile(inline).trust.key == public
    assert Profile.from_dict(profile.to_dict(), base=beside.parent) == profile


@pytest.mark.unit
@pytest.mark.parametrize("trust, why", [
    ({"public_key": "missing.pem"}, "cannot read"),
    ({"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "not a PEM public key"),
    ({"public_key": ""}, "trust.public_key"),
    ({"key": "x.pem"}, "trust:"),
    ("x.pem", "trust:"),
])
def test_bad_trust_sections_are_one_line_naming_the_profile(tmp_path, trust, why):
    path = write_profile(tmp_path / "p.yaml", trust)
    with pytest.raises(EndoSpineError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and why in str(info.value) and "\n" not in str(info.value)


@pytest.mark.unit
def test_an_rsa_key_is_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "rsa.pem").write_bytes(pem)
    with pytest.raises(EndoSpineError, match="Ed25519"):
        load_profile(write_profile(tmp_path / "p.yaml", {"public_key": "rsa.pem"}))


@pytest.mark.unit
def test_a_broken_profile_with_a_trust_key_stops_the_display_instead_of_falling_back(tmp_path, capsys):
    from app.cli import display_profile

    broken = tmp_path / "broken.yaml"
    broken.write_text("format: endospine-profile/1\nfov: {mode: fixed}\ntrust: {public_key: k.pem}\n")
    assert names_trust(broken)
    with pytest.raises(EndoSpineError, match="trusted signing key"):
        display_profile(str(broken))
    plain = tmp_path / "plain.yaml"
    plain.write_text("format: endospine-profile/1\nfov: {mode: fixed}\n")
    assert not names_trust(plain) and display_profile(str(plain)) is None   # the warning and the default
    assert "warning" in capsys.readouterr().err
