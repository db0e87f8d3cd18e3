"""Encryption at rest (issue 21, item 3; models/core/sealed.py): the chunked AES-256-GCM format
round-trips across chunk boundaries, reads at random, and refuses a changed byte, a file cut
short, swapped chunks and the wrong key in one line each; keys from files and the environment;
PyAV muxes into the writer and demuxes from the reader."""
from __future__ import annotations

import io
import os

import av
import numpy as np
import pytest

from models.core import sealed
from models.core.errors import EndoSpineError
from models.core.video import VideoWriter

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
CHUNK = 100  # small, so that a few hundred bytes cross several chunk boundaries


@pytest.mark.parametrize("n", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, 1234])
def test_round_trip_across_chunk_boundaries(n):
    data = os.urandom(n)
    blob = sealed.seal_bytes(data, KEY, chunk_size=CHUNK)
    assert len(blob) == sealed.HEADER_SIZE + max(1, -(-n // CHUNK)) * sealed.TAG + n  # size follows from the content
    assert sealed.open_bytes(blob, KEY) == data
    if n >= 8:
        assert data[:8] not in blob  # nothing in clear


def test_written_in_pieces_and_read_at_random():
    data = os.urandom(5000)
    buf = io.BytesIO()
    w = sealed.SealedWriter(buf, KEY, chunk_size=CHUNK)
    at = 0
    for size in (1, 7, 99, 100, 101, 333, 1, 2000):
        w.write(data[at:at + size])
        at += size
    w.write(data[at:])
    assert w.tell() == len(data)
    w.close()
    r = sealed.SealedReader(io.BytesIO(buf.getvalue()), KEY)
    assert r.size == len(data) and r.seekable()
    rng = np.random.default_rng(0)
    for _ in range(200):
        pos, n = int(rng.integers(0, 5100)), int(rng.integers(0, 400))
        r.seek(pos)
        assert r.read(n) == data[pos:pos + n]
    assert r.seek(-10, os.SEEK_END) == 4990 and r.read() == data[-10:]


def test_two_files_of_the_same_content_differ():  # a fresh salt, hence a fresh file key, per file
    a, b = sealed.seal_bytes(b"x" * 300, KEY), sealed.seal_bytes(b"x" * 300, KEY)
    assert a != b and a[sealed.HEADER_SIZE:] != b[sealed.HEADER_SIZE:]


def _blob(n=1050):
    data = os.urandom(n)
    return data, bytearray(sealed.seal_bytes(data, KEY, chunk_size=CHUNK))


def test_a_changed_byte_anywhere_is_refused():
    data, blob = _blob()
    stored = CHUNK + sealed.TAG
    for at in (sealed.HEADER_SIZE + 5, sealed.HEADER_SIZE + 3 * stored + 50, len(blob) - 1, 30):  # chunks, header
        bad = bytearray(blob)
        bad[at] ^= 0x01
        with pytest.raises(EndoSpineError, match="fails authentication|cut short or damaged"):
            sealed.open_bytes(bytes(bad), KEY, name="rec.mp4.enc")


def test_a_file_cut_short_is_refused_or_read_up_to_the_cut():
    data, blob = _blob()
    stored = CHUNK + sealed.TAG
    for cut in (len(blob) - 1, len(blob) - (len(blob) - sealed.HEADER_SIZE) % stored,  # the final chunk gone
                sealed.HEADER_SIZE + 4 * stored + 20, sealed.HEADER_SIZE):
        with pytest.raises(EndoSpineError, match="cut short"):
            sealed.open_bytes(bytes(blob[:cut]), KEY)
    # playback and decrypt --partial: the chunks before the cut, authenticated
    r = sealed.SealedReader(io.BytesIO(bytes(blob[:sealed.HEADER_SIZE + 4 * stored + 20])), KEY, allow_truncated=True)
    assert r.truncated and r.read() == data[:4 * CHUNK]
    r = sealed.SealedReader(io.BytesIO(bytes(blob[:sealed.HEADER_SIZE + 4 * stored])), KEY, allow_truncated=True)
    assert r.truncated and r.read() == data[:4 * CHUNK]


def test_swapped_or_dropped_chunks_are_refused():
    data, blob = _blob()
    stored = CHUNK + sealed.TAG
    h = sealed.HEADER_SIZE
    swapped = blob[:h] + blob[h + stored:h + 2 * stored] + blob[h:h + stored] + blob[h + 2 * stored:]
    dropped = blob[:h] + blob[h + stored:]
    r = sealed.SealedReader(io.BytesIO(bytes(swapped)), KEY)  # the end is intact: opens ...
    with pytest.raises(EndoSpineError, match="chunk 1 of .* fails authentication"):
        r.read()  # ... but the first chunk is not the first any more
    with pytest.raises(EndoSpineError, match="cut short or damaged at its end"):
        sealed.SealedReader(io.BytesIO(bytes(dropped)), KEY)  # the final chunk is no longer where it was


def test_wrong_or_missing_key_is_one_clear_line():
    _, blob = _blob()
    with pytest.raises(EndoSpineError, match=f"another key \\(key id {sealed.key_id(KEY)}; the key given is "
                                             f"{sealed.key_id(OTHER)}\\)"):
        sealed.open_bytes(bytes(blob), OTHER, name="rec.mp4.enc")
    with pytest.raises(EndoSpineError, match="encrypted \\(key id .*\\); give its key: ENDOSPINE_KEY"):
        sealed.open_bytes(bytes(blob), None)
    with pytest.raises(EndoSpineError, match="not an EndoSpine encrypted file"):
        sealed.open_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100), KEY)


def test_keys_from_files_and_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "or3.key"
    key = sealed.write_key_file(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert sealed.read_key_file(path) == key
    with pytest.raises(EndoSpineError, match="never overwritten"):
        sealed.write_key_file(path)
    monkeypatch.setenv(sealed.ENV, key.hex())
    assert sealed.env_key() == key and sealed.resolve_key() == key
    monkeypatch.setenv(sealed.ENV, "secret-but-malformed")
    with pytest.raises(EndoSpineError, match="ENDOSPINE_KEY: not a key") as exc:
        sealed.env_key()
    assert "secret-but-malformed" not in str(exc.value)  # the value is never echoed
    monkeypatch.delenv(sealed.ENV)
    assert sealed.resolve_key() is None and sealed.resolve_key(profile_key_file=path) == key
    with pytest.raises(EndoSpineError, match="lies inside the output folder"):
        sealed.check_key_outside(path, tmp_path)
    sealed.check_key_outside(path, tmp_path / "recordings")  # beside, not inside: allowed


def test_decrypt_file_writes_nothing_on_failure(tmp_path):
    data, blob = _blob(3000)
    src = tmp_path / "a.bin.enc"
    src.write_bytes(bytes(blob))
    out = tmp_path / "out" / "a.bin"
    assert sealed.decrypt_file(src, out, KEY)["bytes"] == 3000 and out.read_bytes() == data
    bad = bytearray(blob)
    bad[sealed.HEADER_SIZE + 7 * (CHUNK + sealed.TAG) + 3] ^= 0x80
    src.write_bytes(bytes(bad))
    out2 = tmp_path / "out" / "b.bin"
    with pytest.raises(EndoSpineError, match="chunk 8 of .* fails authentication"):
        sealed.decrypt_file(src, out2, KEY)
    assert sorted(p.name for p in out2.parent.iterdir()) == ["a.bin"]  # no partial file left


def _frames(n=30, w=64, h=48):
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_pyav_muxes_into_the_writer_and_demuxes_from_the_reader(tmp_path):
    plain = tmp_path / "v.mp4"
    for path, key in ((plain, None), (tmp_path / "s.mp4", KEY)):
        with VideoWriter(path, 64, 48, 25, preset="ultrafast", crf=18, fragmented=True, atomic=False, key=key) as w:
            for f in _frames():
                w.write(f)
    enc = tmp_path / "s.mp4.enc"
    assert enc.is_file() and not (tmp_path / "s.mp4").exists()
    blob = enc.read_bytes()
    assert b"ftyp" not in blob and b"moof" not in blob and b"mdat" not in blob
    with pytest.raises(av.FFmpegError):
        av.open(str(enc))
    with sealed.SealedReader(enc, KEY) as r, av.open(r) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(plain)) as c:
        want = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == len(want) == 30
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_failing_disk_under_the_writer_is_a_write_failure(tmp_path):
    from models.core.outputs import WriteFailed

    w = VideoWriter(tmp_path / "f.mp4", 64, 48, 25, preset="ultrafast", key=KEY)  # atomic: staged, removed on failure

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            self.f.close()

    w._sink._file = FullDisk(w._sink._file)
    with pytest.raises(WriteFailed, match="f.mp4.enc: cannot .* video \\(disk full\\)"):
        for f in _frames(60):
            w.write(f)
        w.close()  # FFmpeg buffers: the error may come out here
    assert list(tmp_path.iterdir()) == []
