"""Broken video files made from a small synthetic video, and an isolated player to try them on.

Each case is opened and played through the real VideoSource in a child process
(`python -m app.diagnostics.corrupt_corpus PATH`), so that a decoder crash or hang is observed from outside
instead of taking the measuring process down. A case passes when the child ends, within the
timeout and without a traceback, with either a clear one-line message or frames played in
presentation order (the good part of a damaged file).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_FRAMES = 5000  # a player that never ends is a failure too


@dataclass(frozen=True)
class Outcome:
    case: str
    passed: bool
    detail: str  # the child's message or what went wrong


def write_clip(path: Path, frames: int = 50, size: tuple[int, int] = (96, 64), fps: int = 25,
               faststart: bool = False) -> Path:
    """A small H.264 clip of moving gradients (MP4 index at the end unless faststart; .ts: MPEG-TS)."""
    from models.core.video import VideoWriter

    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    with VideoWriter(path, w, h, fps, preset="ultrafast", gop=10, faststart=faststart) as out:
        for i in range(frames):
            out.write(np.stack([(x * 2 + i * 5) % 256, (y * 3 + i * 3) % 256, np.full_like(x, (i * 9) % 256)],
                               -1).astype(np.uint8))
    return path


def _mdat_span(data: bytes) -> tuple[int, int]:
    """Byte range of the media data (mdat payload) of an MP4, or the file's second half."""
    at = data.find(b"mdat")
    if at < 4:
        return len(data) // 2, len(data)
    size = int.from_bytes(data[at - 4:at], "big")
    end = min(len(data), at - 4 + size) if size > 8 else len(data)
    return at + 4, end


def make_corpus(folder: Path, seed: int = 0) -> list[Path]:
    """Write the broken files (and two intact controls) into folder; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plain = write_clip(folder / "intact_index_at_end.mp4")
    fast = write_clip(folder / "intact_index_at_start.mp4", faststart=True)
    ts = write_clip(folder / "intact.ts")
    a, b, t = plain.read_bytes(), fast.read_bytes(), ts.read_bytes()
    cases = {
        "zero_length.mp4": b"",
        "not_a_video.mp4": b"patient list\nthis is a text file with a video name\n" * 20,
        "random_bytes.mp4": rng.integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        "truncated_index_at_end.mp4": a[: len(a) * 6 // 10],
        "truncated_index_at_start.mp4": b[: len(b) * 6 // 10],
        "truncated_header_only.mp4": b[:200],
        "header_zeroed.mp4": bytes(64) + a[64:],
        "truncated.ts": t[: len(t) // 2 + 77],
    }
    for name, src in (("flipped_bytes_index_at_end", a), ("flipped_bytes_index_at_start", b)):
        for k in range(3):
            data = bytearray(src)
            lo, hi = _mdat_span(src)
            for pos in rng.integers(lo, hi, max(1, (hi - lo) // 500)):
                data[pos] ^= 1 << int(rng.integers(0, 8))
            cases[f"{name}_{k}.mp4"] = bytes(data)
    for k in range(3):
        data = bytearray(a)
        lo, hi = _mdat_span(a)
        for pos in rng.integers(lo, hi - 300, 4):  # whole runs of garbage inside packets
            data[pos:pos + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
        cases[f"corrupt_packets_{k}.mp4"] = bytes(data)
        data = bytearray(t)
        for pos in rng.integers(len(t) // 5, len(t) - 188, 6):
            data[pos:pos + 188] = rng.integers(0, 256, 188, dtype=np.uint8).tobytes()
        cases[f"corrupt_packets_{k}.ts"] = bytes(data)
    paths = [plain, fast, ts]
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def try_file(path: Path, timeout_s: float = 30.0) -> Outcome:
    """Open and play `path` in a child process; judge how it ended."""
    try:
        proc = subprocess.run([sys.executable, "-m", "app.diagnostics.corrupt_corpus", str(path)], capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Outcome(path.name, False, f"no end within {timeout_s:g} s (hang)")
    if proc.returncode != 0:
        return Outcome(path.name, False, f"child exited with code {proc.returncode}: {proc.stderr.strip()[-200:]}")
    if "Traceback" in proc.stderr:
        return Outcome(path.name, False, "traceback: " + proc.stderr.strip().splitlines()[-1])
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Outcome(path.name, False, f"no report from the child: {proc.stdout[-200:]!r}")
    if report.get("error"):
        clear = "\n" not in report["error"] and path.name in report["error"]
        return Outcome(path.name, clear, report["error"])
    ok = report["frames"] > 0 and report["in_order"] and report["frames"] < MAX_FRAMES
    note = report.get("end_note") or "played to the end"
    return Outcome(path.name, ok, f"{report['frames']} frames, {report['corrupt_packets']} corrupt packets, "
                                  f"{'in order' if report['in_order'] else 'OUT OF ORDER'}; {note}")


def _play(path: str) -> dict:
    """The child's side: the real VideoSource, as fast as it decodes."""
    from models.core.errors import EndoSpineError
    from models.core.sources.video import VideoSource

    source = VideoSource(path, realtime=False)
    try:
        source.open()
    except EndoSpineError as exc:
        return {"error": str(exc)}
    frames, last, in_order = 0, None, True
    try:
        while frames < MAX_FRAMES:
            frame = source.read()
            if frame is None:
                break
            if last is not None and frame.pts is not None and frame.pts <= last:
                in_order = False
            last = frame.pts if frame.pts is not None else last
            frames += 1
    except EndoSpineError as exc:
        return {"error": str(exc), "frames": frames}
    finally:
        source.close()
    return {"frames": frames, "in_order": in_order, "end_note": source.end_note(),
            "corrupt_packets": source.corrupt_packets}


if __name__ == "__main__":
    print(json.dumps(_play(sys.argv[1])))
