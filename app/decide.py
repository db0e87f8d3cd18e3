"""What the OR screen shows, decided in one pure function (no Qt, no threads, no clock of its own).

Every display tick the live pipeline (app/compose.py) gathers the facts - the newest captured
frame, what the source and the capture thread say, the AI's state and newest result, the time -
and `decide` turns them into a `Decision`: a frame to put up (or keep the one there), the
overlay to paint over it or the badge saying why there is none, a message screen (NO SIGNAL,
NO SOURCE IMAGE, END OF VIDEO) instead of the picture, frames skipped, and in review mode the
frame the capture thread may read past. The window only paints what it returns.

The rules, all timings from models.core.timing.Timing:
- a frame that carries no picture (the source says blank) gives NO SOURCE IMAGE;
- the capture ended: END OF VIDEO; it faulted: NO SIGNAL, with the capture's one-line reason;
- no new frame for Timing.no_signal_limit(fps x speed) (0.4 s, or 2.5 frame intervals if
  longer): NO SIGNAL, with the source's own note (device gone, driver hung, same picture
  repeated) or "waiting for frames"; never while the source is idle (a paused replay); the last
  frame never comes back as live afterwards;
- a mask is painted only over the frame it was computed from or a frame at most
  Timing.stale_limit_s newer (`overlay_allowed`); otherwise a badge says why;
- a result that may be painted but whose gate says the scene is unlike the model's training data
  (Result.unsure) is not painted: AI UNSURE instead. The gate's hysteresis is the worker's
  (Result.unsure already holds it); decide follows the newest result and adds no state of its own.
  Why no mask is painted, first reason wins: the AI is off or down (its state), no result yet, the
  result is stale or from a newer frame, then AI UNSURE, then the user's OVERLAY OFF;
- review mode: a frame goes up only once the AI has answered for it, with its own mask only.

State that lives from tick to tick is the `Screen`, handed back in every Decision.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from app.ai.supervisor import AIState
from app.capture_thread import CaptureState
from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame, Result

NO_SOURCE_IMAGE = "NO SOURCE IMAGE"
NO_SIGNAL = "NO SIGNAL"
END_OF_VIDEO = "END OF VIDEO"
OVERLAY_OFF = "OVERLAY OFF"
AI_UNSURE = "AI UNSURE: scene unlike its training data"
_AI_DOWN = (AIState.LOADING, AIState.RESTARTING, AIState.UNAVAILABLE, AIState.REJECTED)


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """What the source and its capture thread report this tick (facts only, no verdicts)."""
    name: str
    capture: CaptureState = CaptureState.RUNNING
    message: str = ""          # the capture's one line when it ENDED or FAULTED
    blank: bool = False        # the newest frame carries no picture (uniform black)
    idle: bool = False         # no frames are expected (a paused replay)
    signal_note: str = ""      # the source's own words on why no frames come ('' if none)
    rate: float = 30.0         # frames per second it should deliver: fps x replay speed


@dataclass(frozen=True, slots=True)
class AIFacts:
    """The AI supervisor this tick (None in Tick.ai: there is no AI)."""
    state: AIState
    result: Result | None = None  # the newest result
    answered: bool = True         # review: it answered for the frame waiting for its mask (or has nothing to wait for)


@dataclass(frozen=True, slots=True)
class Screen:
    """What is on screen and what the next tick must remember."""
    frame: Frame | None = None         # the frame on screen (None: a message screen)
    shown_last: int = -1               # id of the newest frame ever put up or found blank (never reset)
    held: Frame | None = None          # review: captured, waiting for its own mask
    held_blank: bool = False
    last_new: float = 0.0              # when a new frame last arrived (or the replay was last idle)
    seen_result: Result | None = None  # the AI result the overlay was last decided for

    @property
    def asks_after(self) -> int:
        """Ask the frame store for frames newer than this id."""
        return self.shown_last if self.held is None else self.held.frame_id


@dataclass(frozen=True, slots=True)
class Tick:
    """Everything `decide` looks at, besides the Screen and the Timing."""
    now: float                          # time.monotonic()
    newest: Frame | None                # the store's newest frame newer than Screen.asks_after
    source: SourceFacts
    ai: AIFacts | None = None
    review: bool = False
    overlay_on: bool = True             # the user's all-overlay switch


@dataclass(frozen=True, slots=True)
class Overlay:
    """The overlay over the frame on screen: a result's mask, or none and a badge saying why."""
    result: Result | None
    age_ms: float | None    # how much newer the frame is than the mask's (None: nothing painted)
    badge: str
    withheld: Result | None = None  # AI UNSURE: the result the gate kept off the screen (for the recording)


@dataclass(frozen=True, slots=True)
class Decision:
    screen: Screen                          # pass it back next tick
    frame: Frame | None = None              # put this frame up (None: keep what is there)
    message: tuple[str, str] | None = None  # (title, detail) replaces the picture and hides the overlay
    overlay: Overlay | None = None          # the overlay decided afresh (None: unchanged)
    skipped: int = 0                        # frames captured but never shown
    release: int | None = None              # review: the capture thread may read past this frame id


def decide(tick: Tick, screen: Screen, timing: Timing = DEFAULT_TIMING) -> Decision:
    """What the screen shows after this tick (the rules: the module docstring)."""
    now, src, frame, blank = tick.now, tick.source, tick.newest, tick.source.blank
    if tick.review:  # a frame goes up only once its own mask is there
        if frame is not None:  # the source is alive, the frame just waits for its mask
            screen = replace(screen, held=frame, held_blank=blank, last_new=now)
        frame = None
        if screen.held is not None and (tick.ai is None or tick.ai.answered):
            frame, blank = screen.held, screen.held_blank
            screen = replace(screen, held=None, held_blank=False)
    if frame is not None and blank:  # the card delivers, but black
        screen = replace(screen, frame=None, shown_last=frame.frame_id, last_new=now)
        return Decision(screen, message=(NO_SOURCE_IMAGE, f"{src.name} delivers black frames: check the "
                                         "camera head, the light source and the card's input"),
                        release=frame.frame_id if tick.review else None)  # review: read on past it
    if frame is not None:
        skipped = max(0, frame.frame_id - screen.shown_last - 1) if screen.shown_last >= 0 else 0
        screen = replace(screen, frame=frame, shown_last=frame.frame_id, last_new=now)
        overlay, screen = overlay_for(screen, tick.ai, tick.review, tick.overlay_on, timing)
        return Decision(screen, frame=frame, overlay=overlay, skipped=skipped,
                        release=frame.frame_id if tick.review else None)
    overlay = None
    if tick.ai is not None and screen.frame is not None and tick.ai.result is not screen.seen_result:
        overlay, screen = overlay_for(screen, tick.ai, tick.review, tick.overlay_on, timing)  # once per result
    message = None
    if src.capture in (CaptureState.ENDED, CaptureState.FAULTED):
        message = (END_OF_VIDEO if src.capture is CaptureState.ENDED else NO_SIGNAL, src.message)
    elif screen.held is None:
        if src.idle:  # a paused replay: frame age means nothing, and counts afresh on resume
            screen = replace(screen, last_new=now)
        elif now - screen.last_new > timing.no_signal_limit(src.rate):
            message = (NO_SIGNAL, src.signal_note or "waiting for frames from " + src.name)
    if message is not None:  # the last frame must not come back as live
        screen = replace(screen, frame=None)
    return Decision(screen, message=message, overlay=overlay)


def overlay_for(screen: Screen, ai: AIFacts | None, review: bool, overlay_on: bool,
                timing: Timing = DEFAULT_TIMING) -> tuple[Overlay | None, Screen]:
    """The overlay over the frame on screen now (None without a frame), and the Screen that
    remembers which result it was decided for. Also what a style change asks for."""
    frame = screen.frame
    if frame is None:
        return None, screen
    result = ai.result if ai is not None else None
    screen = replace(screen, seen_result=result)
    if review and result is not None and result.frame_id != frame.frame_id:
        result = None  # review mode: only the frame's own mask, never a neighbour's
    allowed, age = overlay_allowed(frame.frame_id, frame.capture_time, result, timing)
    if allowed and result.unsure:  # the gate: the scene is unlike the training data, no mask at all
        return Overlay(None, None, AI_UNSURE, withheld=result), screen
    if allowed:
        return Overlay(result, age, "" if overlay_on else OVERLAY_OFF), screen
    return Overlay(None, None, hidden_reason(ai, result, age)), screen


def overlay_allowed(frame_id: int, frame_capture_time: float, result: Result | None,
                    timing: Timing = DEFAULT_TIMING) -> tuple[bool, float | None]:
    """May this result's mask be painted over this frame? Returns (allowed, age in ms).

    Only over the frame it was computed from, or a newer frame captured at most
    `timing.stale_limit_s` after it; never over an older frame, never without a capture time.
    """
    if result is None or result.capture_time is None:
        return False, None
    age = frame_capture_time - result.capture_time
    if result.frame_id > frame_id or age < 0:
        return False, age * 1e3
    return age <= timing.stale_limit_s, age * 1e3


def hidden_reason(ai: AIFacts | None, result: Result | None, age_ms: float | None) -> str:
    """The badge when no mask is painted: why ('' without an AI)."""
    if ai is None:
        return ""
    if ai.state is AIState.OFF:
        return "AI OFF"
    if ai.state in _AI_DOWN:
        return f"AI {ai.state.value.upper()}"
    if result is None:
        return "AI: no mask yet"
    return f"AI overlay hidden: mask {age_ms:.0f} ms old" if age_ms is not None else "AI overlay hidden"
