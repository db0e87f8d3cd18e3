"""One line for a person from any exception (models.core.errors.one_line)."""
from __future__ import annotations

import pytest

from models.core.errors import EndoSpineError, one_line

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("exc, line", [
    (EndoSpineError("clip.mp4: not a readable video"), "clip.mp4: not a readable video"),
    (EndoSpineError("first line\nsecond line"), "first line"),
    (EndoSpineError(""), "EndoSpineError"),
    (ValueError("bad value\ntraceback-ish detail"), "ValueError: bad value"),
    (RuntimeError(), "RuntimeError"),
])
def test_one_line(exc, line):
    assert one_line(exc) == line
