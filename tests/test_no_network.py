"""EndoSpine needs no network at run time and must not try: in the OR there may be none, and a
medical display phoning home is a finding. The run-time paths are replayed in a fresh Python
whose audit hook turns any name lookup or outgoing connection into a failure."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

GUARD = textwrap.dedent("""
    import sys
    attempts = []
    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
                     "urllib.Request", "http.client.connect"):
            attempts.append((event, repr(args)[:200]))
            raise PermissionError(f"network access attempted: {event} {args!r:.200}")
    sys.addaudithook(hook)
    from MODULE import main
    code = main(ARGV)
    print("ATTEMPTS", attempts)
    sys.exit(code)
""")


def _run_guarded(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", GUARD.replace("MODULE", module).replace("ARGV", repr(argv))],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_render_makes_no_network_access(small_video, tiny_model_dir, tmp_path):
    out = tmp_path / "out.mp4"
    proc = _run_guarded("app.cli", ["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                                    "--max-frames", "5"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ATTEMPTS []" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-2])["frames"] == 5


@pytest.mark.slow
def test_model_loading_and_prediction_make_no_network_access(tiny_model_dir, tmp_path):
    from models.synth.generate import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, clips=3, frames=1, width=128, height=128, seed=1, workers=1, progress=False)
    proc = _run_guarded("models.cli", ["predict", "--model", str(tiny_model_dir), "--data", str(data),
                                       "--split", "train", "--out", str(tmp_path / "pred")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ATTEMPTS []" in proc.stdout
    assert len(list((tmp_path / "pred").glob("*.png"))) >= 1
