"""Fuzzing the image gate (models.core.imageio): every format it reads, with bytes changed in the
header (where the parsers look) and anywhere else, and cut short. Each input either decodes to the
size its header declares or is refused in one line; nothing else (no OpenCV exception, no other
error) and nothing above the pixel limit is decoded. ENDOSPINE_FUZZ_EXAMPLES sets the count, as
for the other parsers.
"""
from __future__ import annotations

import os

import cv2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.core.errors import EndoSpineError
from models.core.imageio import MAX_PIXELS, decode_image, image_header
from tests.imagebombs import FORMATS, encoded

EXAMPLES = int(os.environ.get("ENDOSPINE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("ENDOSPINE_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

pytestmark = pytest.mark.unit
SAMPLES = {kind: encoded(kind) for kind in FORMATS}


@FUZZ
@given(kind=st.sampled_from(FORMATS),
       flips=st.lists(st.tuples(st.integers(0, 63) | st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6),
       cut=st.floats(0.02, 1.0))
def test_changed_images_decode_as_declared_or_are_refused(kind, flips, cut, monkeypatch):
    data = bytearray(SAMPLES[kind])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    data = bytes(data[: max(1, int(len(data) * cut))])
    decoded = []
    real_imdecode = cv2.imdecode

    def watched(buf, flags):
        header = image_header(bytes(buf))   # the gate has accepted it: within the limit
        assert header.width * header.height <= MAX_PIXELS
        decoded.append(header)
        return real_imdecode(buf, flags)

    with monkeypatch.context() as mp:
        mp.setattr(cv2, "imdecode", watched)
        try:
            img = decode_image(data, "x")
        except EndoSpineError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("x: ")
            assert "decodes to" not in str(exc), "a header parser disagrees with OpenCV"
            return
    (header,) = decoded
    assert img.shape[:2] in ((header.height, header.width), (header.width, header.height))
    assert img.ndim == 2 or img.shape[2] in (3, 4)
