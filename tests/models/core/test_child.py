"""The shared child-process mechanism: exit reasons, frame slots, and messages that pickle small."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from models.core.child import FrameSlots, exit_description, lent_from
from models.core.sources.decoder_protocol import Control, SlotFrame, Stop


@pytest.mark.unit
@pytest.mark.parametrize("code, text", [(-11, "SIGSEGV"), (-6, "SIGABRT"), (1, "exit code 1"), (None, "exit code None")])
def test_exit_description(code, text):
    assert exit_description(code) == text


@pytest.mark.unit
def test_frame_slots_between_creator_and_attacher():
    slots = FrameSlots.create(4 * 3 * 3, count=2)
    other = FrameSlots.attach(slots.name, slots.slot_bytes, 2)
    try:
        image = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
        other.write(1, image)
        copy = slots.read(1, 4, 3)
        assert np.array_equal(copy, image) and slots.fits(4, 3) and not slots.fits(5, 3)
        other.write(1, image[::-1])  # the copy outlives the slot's next frame
        assert np.array_equal(copy, image)
    finally:
        other.close()
        slots.close()


@pytest.mark.unit
@pytest.mark.parametrize("msg", [SlotFrame(3, 1, 1920, 1080, 12.5, 0, 2), Control("seek", 1.5, 7), Stop()])
def test_messages_pickle_by_position(msg):
    data = pickle.dumps(msg)
    assert pickle.loads(data) == msg
    assert b"timestamp_repairs" not in data and len(data) < 120  # values only, no field names


def test_a_loan_goes_back_when_its_last_array_is_dropped_and_outlives_close():
    slots = FrameSlots.create(4 * 6 * 3, 2)
    slots.write(1, np.full((4, 6, 3), 7, np.uint8))
    back = []
    loan = slots.lend(1, back.append)
    image = loan.array((4, 6, 3))
    rows = image[1:3]                        # a view of the lent array keeps the loan too
    del loan
    assert lent_from(image) == (slots.name, 72) and lent_from(rows) == (slots.name, 72 + 18)  # where to read it
    assert lent_from(image[:, 1:]) is None and lent_from(np.zeros(3, np.uint8)) is None
    assert not image.flags.writeable and image.sum() == 7 * 72
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1                   # frames are immutable, and the slot is the child's
    del image
    assert back == []
    del rows
    assert back == [1]                       # once, when the last array went
    loan = slots.lend(0, back.append)
    with pytest.raises(ValueError):
        loan.array((5, 6, 3))                # larger than a slot
    kept = loan.array((2, 6, 3), offset=24)
    del loan
    slots.close()                            # the memory stays mapped for the array still on screen
    assert kept.sum() == 0
    del kept
    assert back == [1, 0]


_FAULTS = """
import resource, sys
import numpy as np
from models.core.child import steady_memory
if sys.argv[1] == "steady":
    assert steady_memory()
for i in range(30):  # a few 1080p pictures alive at once (decoded, in a slot, on screen), then freed
    if i == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    frames = [np.empty((1080, 1920, 3), np.uint8) for _ in range(3)]
    for f in frames:
        f.fill(i)
    del frames, f
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_memory_reuses_frame_sized_buffers_instead_of_faulting_in_fresh_pages():
    def faults_per_frame(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    assert faults_per_frame("default") > 1000  # glibc gave a picture's 6 MB back: 1500 faults of 4 KB again
    assert faults_per_frame("steady") < 50
