"""`run --profile` with a hostile profile: one warning line and the default profile (README), never
a traceback; a profile chosen from the File menu is one line (compose.timing_of)."""
from __future__ import annotations

import pytest

from app.cli import display_profile
from app.compose import timing_of
from models.core.errors import EndoSpineError
from tests.models.core.test_yamlio import billion_laughs

pytestmark = pytest.mark.unit

HOSTILE = {
    "inf-frame": "format: endospine-profile/1\nfov: {mode: fixed, frame_size: [.inf, 240], center: [10, 10], radius: 50}\n",
    "huge-frame": "format: endospine-profile/1\nfov: {mode: fixed, frame_size: [1.0e+30, 240], center: [10, 10], radius: 50}\n",
    "lens-1e300": "format: endospine-profile/1\nlens: {model: fisheye, image_size: [640, 480], camera_matrix: "
                  "[[1.0e+300, 0, 320], [0, 1.0e-300, 240], [0, 0, 1]], distortion: [0, 0, 0, 0]}\n",
    "alias-bomb": "format: endospine-profile/1\nfov:\n  mode: auto\n  measured:\n" + "".join(
        "    " + line + "\n" for line in billion_laughs().splitlines()),
    "deep": "format: endospine-profile/1\nfov: {mode: auto, measured: {a: " + "[" * 500 + "]" * 500 + "}}\n",
    "binary": "\x00\xff",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_run_warns_in_one_line_and_uses_the_default(tmp_path, capsys, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(HOSTILE[name], encoding="utf-8", errors="surrogateescape")
    assert display_profile(str(path)) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"endospine: warning: {path}: ") and "using the default profile" in err
    with pytest.raises(EndoSpineError, match=f"^{path}: "):
        timing_of(path)


def test_mode_off_written_by_hand_is_kept(tmp_path, capsys):
    path = tmp_path / "off.yaml"
    path.write_text("format: endospine-profile/1\nfov: {mode: off}\n")
    assert display_profile(str(path)).fov.mode == "off"
    assert capsys.readouterr().err == ""
