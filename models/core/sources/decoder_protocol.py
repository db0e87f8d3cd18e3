"""The messages between IsolatedVideoSource (the display's process) and its decoder child.

    child  -> parent   Opened | OpenFailed
    parent -> child    Slots                the frame slots, once, right after Opened
    child  -> parent   SlotFrame            a frame is in a slot; the parent copies it out, then
                                            answers Free(slot)
                       InlineFrame          a frame larger than a slot (the size changed mid-file)
                       Costs                what its stages cost so far (about once a second)
                       Progress             the heartbeat: packets read, the file clock, and how
                                            long the frame it holds waits for its time
                       Ended | DecodeFailed
    parent -> child    Control              pause/step/seek/speed/loop, numbered
                       Free | Stop

The parent judges a decoder by progress, not by pictures: a frame, more packets read, or a frame
held for its time on the file's clock (a still of seconds in a variable-frame-rate file) each
count; a child that shows none of these for Timing.decoder_hang_after is hung. The child sends
Progress only while it sends no frames (at most every `heartbeat_s`, and at once when a long
wait for a frame's time begins), so normal playback costs nothing extra on the pipe.

Every frame carries `mark`: the number of the last Control the child had applied when it
decoded the frame. The parent drops frames older than its last seek or pause.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.core.child import Message
from models.core.picture import Planes


# -- child -> parent ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Opened(Message):
    size: tuple[int, int]
    fps: float
    duration: float | None
    truncated: bool


@dataclass(frozen=True)
class OpenFailed(Message):
    message: str                 # one line naming the file, as VideoSource.open() said it


@dataclass(frozen=True)
class SlotFrame(Message):
    mark: int
    slot: int
    width: int
    height: int
    pts: float
    corrupt_packets: int
    timestamp_repairs: int
    full_fmt: str | None = None            # the frame's full-resolution planes follow its picture in
    full_size: tuple[int, int] | None = None  # the slot (models.core.picture.Planes); None: none


@dataclass(frozen=True)
class InlineFrame(Message):
    mark: int
    image: np.ndarray
    pts: float
    corrupt_packets: int
    timestamp_repairs: int
    full: Planes | None = None


@dataclass(frozen=True)
class Costs(Message):
    """The child's stage ledger (models.core.costs) so far, about once a second."""
    stages: dict


@dataclass(frozen=True)
class Progress(Message):
    packets: int                 # packets demuxed since the file was opened (loops and seeks included)
    read_to: float | None        # the file clock: timestamp of the newest packet read, seconds
    due_in: float                # seconds until the frame the child holds is due; 0.0 while decoding


@dataclass(frozen=True)
class Ended(Message):
    note: str                    # VideoSource.end_note(): '' for a normal end
    position: float


@dataclass(frozen=True)
class DecodeFailed(Message):
    message: str


# -- parent -> child ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Slots(Message):
    name: str
    slot_bytes: int


@dataclass(frozen=True)
class Control(Message):
    command: str                 # "pause", "step", "seek", "speed", "loop" or "full" (ship full planes)
    value: object
    number: int


@dataclass(frozen=True)
class Free(Message):
    slot: int


@dataclass(frozen=True)
class Stop(Message):
    pass
