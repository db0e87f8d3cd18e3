"""Encryption at rest (issue 21, item 3): recordings, snapshots and their CSVs written as sealed
files, readable only with the key. Qt-free; models/core/deid.py's DeidPolicy writes through it,
models.core.sources.video plays sealed videos through it, `endospine decrypt` and `endospine
keygen` (app/cli.py) are its commands.

The cipher is AES-256-GCM from the `cryptography` package (authenticated: a changed, removed,
reordered or appended byte is detected, never decrypted into something else). A file is a stream
of chunks, so that a writer needs no memory beyond one chunk and a reader can seek (PyAV demuxes
straight from SealedReader: playback writes no plaintext anywhere):

    header (40 bytes, all of it authenticated with every chunk):
      magic    8  b"ENDOSEAL"
      version  1  1
      reserved 3  zero
      chunk    4  plaintext bytes per chunk, big-endian (DEFAULT_CHUNK = 64 KiB; 1 byte..16 MiB)
      key id   8  the first 8 bytes of SHA-256("endospine-key-id/1" + key): which key, not the key
      salt    16  random per file
    chunks: chunk i = AES-256-GCM(file key, nonce, plaintext i, associated data) = ciphertext + 16-byte tag
      file key  = HKDF-SHA256(key, salt, info "endospine-sealed/1 file key"): a fresh key per file
      nonce     = 4 zero bytes + i as 8 bytes big-endian (unique under the per-file key)
      assoc.    = header + i (8 bytes) + final flag (1 byte: 1 on the last chunk only)
      every chunk but the last holds exactly `chunk` plaintext bytes; the last holds 0..chunk
      (an empty file is one empty final chunk), so the chunk count and the plaintext size follow
      from the file size.

What is detected, each as one line (EndoSpineError): a file that is not sealed; another format
version; the wrong key (the key id differs: said before anything is decrypted); a changed byte
(that chunk fails authentication); chunks swapped or dropped (index in the associated data); a
file cut short (its last chunk is not the final one: a writer that died, a full disk). A reader
opened with allow_truncated=True (playback, `decrypt --partial`) instead serves the chunks that
authenticate before the cut and says `truncated`: a recording whose process died plays up to
its last complete chunk (at most DEFAULT_CHUNK bytes of video are lost on top of what an
unencrypted recording loses).

Keys: 32 random bytes, written as base64 text (`endospine keygen --out FILE`; hex is accepted too).
A key comes from, in this order: `--key-file FILE`, the profile's `deid: {key_file: /abs/path}`,
the environment variable ENDOSPINE_KEY. Encrypting recordings and snapshots is the profile's
choice (`deid: {encrypt: true}`; key_file, else ENDOSPINE_KEY). Nothing of the key is written
beside the files but its 8-byte id; a key file inside the folder written to is refused. The key
a command was given for playing sealed sources is this process's (`use_key`); a decoder child
process gets it through its start arguments (a pipe), never through a file.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models.core.errors import EndoSpineError

MAGIC = b"ENDOSEAL"
VERSION = 1
HEADER = struct.Struct(">8sB3sI8s16s")   # magic, version, reserved, chunk size, key id, salt
HEADER_SIZE = HEADER.size                # 40
TAG = 16
DEFAULT_CHUNK = 64 * 1024
MAX_CHUNK = 16 * 1024 * 1024
SUFFIX = ".enc"                          # appended to a sealed file's name: rec-0001_raw.mp4.enc
KEY_BYTES = 32
ENV = "ENDOSPINE_KEY"
KEY_HOW = (f"give its key: {ENV}=<base64 key> in the environment, --key-file FILE, or the profile's "
           "deid: {key_file: FILE}")

_process_key: bytes | None = None


# -- keys ------------------------------------------------------------------------------------------
def key_id(key: bytes) -> str:
    """The key's public name: 16 hex digits (8 bytes of a hash), what a sealed file's header says."""
    return _key_id_bytes(key).hex()


def _key_id_bytes(key: bytes) -> bytes:
    return hashlib.sha256(b"endospine-key-id/1" + key).digest()[:8]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def parse_key(text: str | bytes, where: str) -> bytes:
    """32 bytes from base64 (44 characters) or hex (64); EndoSpineError naming `where` (never the value)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            text = ""
    text = text.strip()
    candidates = []
    if len(text) == 2 * KEY_BYTES:
        try:
            candidates.append(bytes.fromhex(text))
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            candidates.append(decode(text.encode("ascii"), validate=True) if decode is base64.b64decode
                              else decode(text.encode("ascii")))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            pass
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise EndoSpineError(f"{where}: not a key: expected {KEY_BYTES} bytes as base64 (44 characters) or hex (64), "
                         "as `endospine keygen --out FILE` writes")


def read_key_file(path: str | Path) -> bytes:
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()[:4096]
    except FileNotFoundError:
        raise EndoSpineError(f"{path}: key file not found") from None
    except OSError as exc:
        raise EndoSpineError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None
    return parse_key(data, f"key file {path}")


def env_key() -> bytes | None:
    text = os.environ.get(ENV, "")
    return parse_key(text, f"environment variable {ENV}") if text.strip() else None


def resolve_key(key_file: str | Path | None = None, profile_key_file: str | Path | None = None) -> bytes | None:
    """The key a command was given: --key-file, else the profile's deid.key_file, else ENDOSPINE_KEY."""
    if key_file:
        return read_key_file(key_file)
    if profile_key_file:
        return read_key_file(profile_key_file)
    return env_key()


def use_key(key: bytes | None) -> None:
    """The key this process plays sealed sources with (a command's --key-file, its profile's, or
    the environment's): sources opened without a key of their own use it."""
    global _process_key
    _process_key = key


def process_key() -> bytes | None:
    """use_key()'s key, else ENDOSPINE_KEY, else None."""
    return _process_key if _process_key is not None else env_key()


def write_key_file(path: str | Path, key: bytes | None = None) -> bytes:
    """A new key (or `key`) as base64 text, readable by the owner only; an existing file is refused."""
    path = Path(path).expanduser()
    key = key if key is not None else new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise EndoSpineError(f"{path}: exists; a key file is never overwritten (recordings sealed with it would "
                             "be lost): choose a new name") from None
    except OSError as exc:
        raise EndoSpineError(f"{path}: cannot create the key file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(key).decode("ascii") + "\n")
    return key


def check_key_outside(key_file: str | Path | None, folder: str | Path, what: str = "the output folder") -> None:
    """A key file must not lie in (or under) the folder sealed files are written to."""
    if not key_file:
        return
    key = Path(key_file).expanduser().resolve()
    folder = Path(folder).expanduser().resolve()
    if key == folder or folder in key.parents:
        raise EndoSpineError(f"key file {key_file} lies inside {what} {folder}: keep the key away from the files "
                             "it protects (another disk, a secured folder)")


# -- the format ------------------------------------------------------------------------------------
def _file_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                   info=b"endospine-sealed/1 file key").derive(key)
    return AESGCM(derived)


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise EndoSpineError(f"an encryption key is {KEY_BYTES} bytes")
    return bytes(key)


def is_sealed(path: str | Path) -> bool:
    """Whether the file starts as a sealed file does (its name aside)."""
    try:
        with Path(path).open("rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def sealed_name(path: str | Path) -> Path:
    path = Path(path)
    return path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX)


class SealedWriter(io.RawIOBase):
    """A write-only, non-seekable file object that seals what is written to it (PyAV muxes into it,
    io.TextIOWrapper writes CSV text into it). Full chunks go to the file as soon as the next byte
    arrives; close() seals the rest as the final chunk. tell() is the plaintext written so far.
    `target` is a path (created, truncated) or a binary file object (not closed by close())."""

    def __init__(self, target: str | Path | BinaryIO, key: bytes, chunk_size: int = DEFAULT_CHUNK):
        super().__init__()
        key = _check_key(key)
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1..{MAX_CHUNK}")
        self.name = str(target) if isinstance(target, (str, Path)) else getattr(target, "name", "<stream>")
        self._own = isinstance(target, (str, Path))
        self._file: BinaryIO = Path(target).open("wb") if self._own else target
        salt = secrets.token_bytes(16)
        self._header = HEADER.pack(MAGIC, VERSION, b"\x00" * 3, chunk_size, _key_id_bytes(key), salt)
        self._aes = _file_key(key, salt)
        self._chunk = chunk_size
        self._buf = bytearray()
        self._index = 0
        self._written = 0
        self._finished = False
        try:
            self._file.write(self._header)
        except BaseException:
            if self._own:
                self._file.close()
            raise

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._written

    def write(self, data) -> int:
        if self._finished:
            raise ValueError("write to a closed sealed file")
        view = memoryview(data).cast("B")
        n = len(view)
        self._buf += view
        self._written += n
        if len(self._buf) > self._chunk:
            whole = (len(self._buf) - 1) // self._chunk  # keep at least one byte: the final chunk is never empty
            out = bytearray()
            for k in range(whole):
                out += self._seal(memoryview(self._buf)[k * self._chunk:(k + 1) * self._chunk], final=False)
            del self._buf[:whole * self._chunk]
            self._file.write(out)
        return n

    def _seal(self, plain, final: bool) -> bytes:
        sealed = self._aes.encrypt(_nonce(self._index), bytes(plain), _aad(self._header, self._index, final))
        self._index += 1
        return sealed

    def flush(self) -> None:
        if not self._finished:
            self._file.flush()

    def close(self) -> None:
        """Seal what is buffered as the final chunk and close the file (once)."""
        if self._finished:
            return
        self._finished = True
        try:
            self._file.write(self._seal(self._buf, final=True))
            self._buf = bytearray()
            self._file.flush()
        finally:
            if self._own:
                self._file.close()
            super().close()

    def abandon(self) -> None:
        """Close the file without the final chunk (a reader then says: cut short)."""
        if self._finished:
            return
        self._finished = True
        try:
            if self._own:
                self._file.close()
        finally:
            super().close()


class SealedReader(io.RawIOBase):
    """A read-only, seekable file object over a sealed file: reads decrypt (and authenticate) the
    chunks they touch, with random access by chunk; PyAV demuxes straight from it. Opening checks
    the header, the key id and the last chunk (the file is complete); a chunk that fails
    authentication when read is an EndoSpineError naming the file. allow_truncated=True: a file
    cut short serves the chunks before the cut (`truncated` says so) instead of refusing."""

    def __init__(self, source: str | Path | BinaryIO, key: bytes | None, allow_truncated: bool = False,
                 name: str | None = None):
        super().__init__()
        self.name = name or (str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<stream>"))
        self._own = isinstance(source, (str, Path))
        try:
            self._file: BinaryIO = Path(source).open("rb") if self._own else source
        except OSError as exc:
            raise EndoSpineError(f"{self.name}: cannot read ({exc.strerror or exc})") from None
        try:
            self._open(key, allow_truncated)
        except BaseException:
            self._close_file()
            raise

    def _open(self, key: bytes | None, allow_truncated: bool) -> None:
        f = self._file
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        head = f.read(HEADER_SIZE)
        if head[:len(MAGIC)] != MAGIC:
            raise EndoSpineError(f"{self.name}: not an EndoSpine encrypted file (no {MAGIC.decode()} header)")
        if len(head) < HEADER_SIZE:
            raise EndoSpineError(f"{self.name}: encrypted file cut short inside its header")
        magic, version, reserved, chunk, kid, salt = HEADER.unpack(head)
        if version != VERSION:
            raise EndoSpineError(f"{self.name}: encrypted with format version {version}; this EndoSpine reads "
                                 f"version {VERSION}")
        if reserved != b"\x00" * 3 or not 1 <= chunk <= MAX_CHUNK:
            raise EndoSpineError(f"{self.name}: damaged encrypted file (its header is invalid)")
        if key is None:
            raise EndoSpineError(f"{self.name}: encrypted (key id {kid.hex()}); {KEY_HOW}")
        key = _check_key(key)
        if _key_id_bytes(key) != kid:
            raise EndoSpineError(f"{self.name}: encrypted with another key (key id {kid.hex()}; the key given is "
                                 f"{key_id(key)}): give the key it was written with")
        self.key_id = kid.hex()
        self._header, self._chunk, self._aes = head, chunk, _file_key(key, salt)
        self._stored = chunk + TAG
        body = size - HEADER_SIZE
        self.truncated = False
        self._cache: dict[int, bytes] = {}
        count = -(-body // self._stored) if body > 0 else 0
        last = count - 1
        last_len = body - last * self._stored if count else 0
        if count and last_len >= TAG:
            plain = self._decrypt(last, last_len, final=True, strict=False)
            if plain is not None:
                self._count, self.size = count, last * chunk + len(plain)
                self._cache[last] = plain
                self.pos = 0
                return
        # the last chunk is not the final one: cut short (or its end altered)
        kept = last
        if count and last_len == self._stored and self._decrypt(last, last_len, final=False, strict=False) is not None:
            kept = count  # cut exactly after a whole chunk
        if not allow_truncated:
            raise EndoSpineError(f"{self.name}: encrypted file cut short or damaged at its end (no final chunk: "
                                 "its writer did not finish, e.g. a crash or a full disk; `endospine decrypt "
                                 "--partial` keeps the part that authenticates)")
        self.truncated = True
        self._count, self.size, self.pos = max(kept, 0), max(kept, 0) * chunk, 0

    def _decrypt(self, index: int, length: int, final: bool, strict: bool = True) -> bytes | None:
        self._file.seek(HEADER_SIZE + index * self._stored)
        data = self._file.read(length)
        try:
            if len(data) != length:
                raise InvalidTag
            return self._aes.decrypt(_nonce(index), data, _aad(self._header, index, final))
        except InvalidTag:
            if not strict:
                return None
            raise EndoSpineError(f"{self.name}: chunk {index + 1} of {self._count} fails authentication: the file "
                                 "is damaged or was altered (nothing after byte "
                                 f"{index * self._chunk} of its content can be trusted)") from None

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk `index` (authenticated)."""
        plain = self._cache.get(index)
        if plain is None:
            final = index == self._count - 1 and not self.truncated
            length = self._stored if not final else (self.size - index * self._chunk) + TAG
            plain = self._decrypt(index, length, final)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = plain
        return plain

    # -- io ------------------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"seek: whence {whence} is not supported")
        target = base + offset
        if target < 0:
            raise ValueError("seek before the start of the file")
        self.pos = target
        return target

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self.size - self.pos)
        out = bytearray()
        while n > 0 and self.pos < self.size:
            index, at = divmod(self.pos, self._chunk)
            piece = self.chunk(index)[at:at + n]
            if not piece:
                break
            out += piece
            self.pos += len(piece)
            n -= len(piece)
        return bytes(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def _close_file(self) -> None:
        if self._own:
            try:
                self._file.close()
            except OSError:
                pass

    def close(self) -> None:
        if not self.closed:
            self._close_file()
            self._cache = {}
        super().close()


# -- whole files and byte strings ------------------------------------------------------------------
def seal_bytes(data: bytes, key: bytes, chunk_size: int = DEFAULT_CHUNK) -> bytes:
    buf = io.BytesIO()
    w = SealedWriter(buf, key, chunk_size)
    w.write(data)
    w.close()
    return buf.getvalue()


def open_bytes(blob: bytes, key: bytes | None, name: str = "<bytes>") -> bytes:
    """The plaintext of a sealed byte string, every chunk authenticated."""
    with SealedReader(io.BytesIO(blob), key, name=name) as r:
        return r.read()


def decrypt_file(src: str | Path, dst: str | Path, key: bytes | None, partial: bool = False) -> dict:
    """Write the plaintext of sealed `src` to `dst`, atomically: every chunk is authenticated before
    the file gets its name; any failure leaves nothing. partial=True: a file cut short gives the
    part before the cut. Returns {'bytes', 'key_id', 'truncated'}."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise EndoSpineError(f"{src}: not found")
    tmp = dst.with_name(f".{dst.name}.partial{os.getpid()}")
    with SealedReader(src, key, allow_truncated=partial) as reader:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tmp.open("wb") as out:
                while block := reader.read(1 << 20):
                    out.write(block)
            os.replace(tmp, dst)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EndoSpineError(f"{dst}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return {"bytes": reader.size, "key_id": reader.key_id, "truncated": reader.truncated}
