"""What the screen shows (app.decide), table by table, without Qt, threads or a clock."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.ai.supervisor import AIState
from app.capture_thread import CaptureState
from app.decide import AI_UNSURE, AIFacts, Screen, SourceFacts, Tick, decide, overlay_allowed, overlay_for
from models.core.timing import Timing
from models.core.types import Frame, Result

pytestmark = pytest.mark.unit

IMAGE = np.zeros((4, 4, 3), np.uint8)
MASK = np.zeros((2, 2), np.uint8)
T0 = 100.0  # capture time of frame 0; frames at 30 fps


def frame(i: int, t: float | None = None) -> Frame:
    return Frame(i, T0 + i / 30 if t is None else t, None, IMAGE)


def result(i: int, t: float | None = None, timed: bool = True, unsure: bool = False,
           score: float | None = None) -> Result:
    return Result(i, MASK, "m", capture_time=(T0 + i / 30 if t is None else t) if timed else None,
                  score=score, unsure=unsure)


def src(**facts) -> SourceFacts:
    return SourceFacts("capture:0", **facts)


def ai(state: AIState = AIState.RUNNING, r: Result | None = None, answered: bool = True) -> AIFacts:
    return AIFacts(state, r, answered)


ON_SCREEN = Screen(frame=frame(5), shown_last=5, last_new=0.0)  # frame 5 went up at t=0


# -- NO SIGNAL, NO SOURCE IMAGE, END OF VIDEO -----------------------------------------------------
WAITING = "waiting for frames from capture:0"
MESSAGES = [  # (case, screen, tick, timing, expected (title, detail) or None)
    ("live: a frame 0.39 s ago", ON_SCREEN, Tick(0.39, None, src()), Timing(), None),
    ("no frame for 0.41 s at 30 fps", ON_SCREEN, Tick(0.41, None, src()), Timing(), ("NO SIGNAL", WAITING)),
    ("2 fps: 2.5 intervals = 1.25 s, not yet", ON_SCREEN, Tick(1.2, None, src(rate=2.0)), Timing(), None),
    ("2 fps: 2.5 intervals passed", ON_SCREEN, Tick(1.3, None, src(rate=2.0)), Timing(), ("NO SIGNAL", WAITING)),
    ("10 fps replay at 0.25x: 1 s", ON_SCREEN, Tick(0.9, None, src(rate=2.5)), Timing(), None),
    ("the source's own note", ON_SCREEN, Tick(0.5, None, src(signal_note="capture:0: no device for 0 s")),
     Timing(), ("NO SIGNAL", "capture:0: no device for 0 s")),
    ("a profile's slower rule", ON_SCREEN, Tick(0.5, None, src()), Timing(no_signal_after_s=0.6), None),
    ("capture faulted", ON_SCREEN, Tick(0.01, None, src(capture=CaptureState.FAULTED, message="capture:0: busy")),
     Timing(), ("NO SIGNAL", "capture:0: busy")),
    ("capture ended", ON_SCREEN, Tick(0.01, None, src(capture=CaptureState.ENDED, message="clip.mp4: ends early")),
     Timing(), ("END OF VIDEO", "clip.mp4: ends early")),
    ("paused replay, long after its last frame", ON_SCREEN, Tick(60.0, None, src(idle=True)), Timing(), None),
    ("a black frame", ON_SCREEN, Tick(0.1, frame(6), src(blank=True)), Timing(),
     ("NO SOURCE IMAGE", "capture:0 delivers black frames: check the camera head, the light source and the "
                         "card's input")),
    ("review: a frame waits for its mask", replace(ON_SCREEN, held=frame(6)), Tick(5.0, None, src(), ai(answered=False),
                                                                                  review=True), Timing(), None),
]


@pytest.mark.parametrize("case, screen, tick, timing, expected", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_messages(case, screen, tick, timing, expected):
    d = decide(tick, screen, timing)
    assert d.message == expected
    if expected is not None:  # the last frame is gone and never comes back as live
        assert d.screen.frame is None and d.frame is None and d.screen.asks_after >= 5


def test_paused_replay_counts_afresh_on_resume():
    paused = decide(Tick(60.0, None, src(idle=True)), ON_SCREEN).screen
    assert paused.last_new == 60.0
    assert decide(Tick(60.39, None, src()), paused).message is None
    assert decide(Tick(60.41, None, src()), paused).message == ("NO SIGNAL", WAITING)


def test_black_frame_is_not_a_shown_frame_and_a_later_one_comes_back():
    black = decide(Tick(0.1, frame(6), src(blank=True)), ON_SCREEN)
    assert black.skipped == 0 and black.screen.shown_last == 6 and black.screen.last_new == 0.1
    back = decide(Tick(0.2, frame(9), src()), black.screen)
    assert back.frame.frame_id == 9 and back.message is None and back.skipped == 2


# -- the overlay and its badge --------------------------------------------------------------------
F = frame(10)
# Why no mask is painted, first reason wins: the AI's state (off, loading, restarting, unavailable,
# output rejected), no result yet, the newest result stale or from a newer frame (its gate verdict
# does not matter then: it may not be painted anyway), then the gate (AI UNSURE: the newest result
# that may be painted says the scene is unlike the training data), then the user's OVERLAY OFF.
# A message screen (NO SIGNAL, END OF VIDEO, NO SOURCE IMAGE) replaces the picture before all of them.
BADGES = [  # (case, AI facts (None: no AI), overlay switch, expected badge, frame id of the mask painted)
    ("no AI", None, True, "", None),
    ("AI off", ai(AIState.OFF), True, "AI OFF", None),
    ("loading", ai(AIState.LOADING), True, "AI LOADING", None),
    ("restarting", ai(AIState.RESTARTING), True, "AI RESTARTING", None),
    ("unavailable", ai(AIState.UNAVAILABLE), True, "AI UNAVAILABLE", None),
    ("output rejected", ai(AIState.REJECTED), True, "AI OUTPUT REJECTED", None),
    ("no mask yet", ai(), True, "AI: no mask yet", None),
    ("its own mask", ai(r=result(10)), True, "", 10),
    ("a mask 100 ms older", ai(r=result(7, F.capture_time - 0.100)), True, "", 7),
    ("a mask 130 ms older: stale", ai(AIState.DELAYED, result(6, F.capture_time - 0.130)), True,
     "AI overlay hidden: mask 130 ms old", None),
    ("a mask from a newer frame", ai(r=result(11)), True, "AI overlay hidden: mask -33 ms old", None),
    ("a mask without a capture time", ai(r=result(10, timed=False)), True, "AI overlay hidden", None),
    ("overlays switched off", ai(r=result(10)), False, "OVERLAY OFF", 10),
    ("stale while loading says loading", ai(AIState.LOADING, result(1)), True, "AI LOADING", None),
    # the trust gate (Result.unsure: the worker's verdict, hysteresis included)
    ("gated, sure: painted", ai(r=result(10, score=0.2)), True, "", 10),
    ("unsure: its own mask", ai(r=result(10, unsure=True, score=3.1)), True, AI_UNSURE, None),
    ("unsure: a mask 100 ms older", ai(r=result(7, F.capture_time - 0.100, unsure=True)), True, AI_UNSURE, None),
    ("unsure while DELAYED, still allowed", ai(AIState.DELAYED, result(8, unsure=True)), True, AI_UNSURE, None),
    ("unsure beats overlays switched off", ai(r=result(10, unsure=True)), False, AI_UNSURE, None),
    ("stale beats unsure", ai(AIState.DELAYED, result(6, F.capture_time - 0.130, unsure=True)), True,
     "AI overlay hidden: mask 130 ms old", None),
    ("a newer frame's mask beats unsure", ai(r=result(11, unsure=True)), True, "AI overlay hidden: mask -33 ms old",
     None),
    ("unsure without a capture time", ai(r=result(10, timed=False, unsure=True)), True, "AI overlay hidden", None),
    ("loading beats unsure", ai(AIState.LOADING, result(1, unsure=True)), True, "AI LOADING", None),
    ("AI off beats unsure", ai(AIState.OFF, result(1, unsure=True)), True, "AI OFF", None),
]


@pytest.mark.parametrize("case, facts, overlay_on, badge, mask_of", BADGES, ids=[b[0] for b in BADGES])
def test_badges(case, facts, overlay_on, badge, mask_of):
    d = decide(Tick(1.0, F, src(), facts, overlay_on=overlay_on), ON_SCREEN)
    assert d.frame is F and d.overlay is not None
    assert d.overlay.badge == badge
    assert (d.overlay.result.frame_id if d.overlay.result is not None else None) == mask_of
    assert (d.overlay.age_ms is None) == (mask_of is None)
    assert (d.overlay.withheld is not None) == (badge == AI_UNSURE)   # only the gate withholds a result
    assert d.overlay.withheld is None or d.overlay.withheld is facts.result


@pytest.mark.parametrize("frame_id, t, r, allowed", [
    (10, 1.000, result(10, 1.000), True),    # its own frame
    (13, 1.100, result(10, 1.000), True),    # 100 ms newer
    (14, 1.130, result(10, 1.000), False),   # 130 ms: stale
    (9, 0.966, result(10, 1.000), False),    # never over an older frame
    (10, 1.000, result(10, timed=False), False),
    (10, 1.000, None, False),
])
def test_staleness_rule(frame_id, t, r, allowed):
    assert overlay_allowed(frame_id, t, r)[0] is allowed


def test_stale_limit_comes_from_the_timing():
    assert overlay_allowed(14, 1.130, result(10, 1.000), Timing(stale_limit_s=0.2)) == (True, pytest.approx(130))


def test_overlay_is_decided_once_per_result_and_after_a_style_change():
    nine = result(9)
    shown = decide(Tick(1.0, F, src(), ai(r=nine)), ON_SCREEN).screen
    assert decide(Tick(1.01, None, src(), ai(r=nine)), shown).overlay is None  # the same result: nothing new
    again = decide(Tick(1.02, None, src(), ai(r=result(10))), shown)
    assert again.overlay.result.frame_id == 10 and again.screen.seen_result.frame_id == 10
    overlay, _ = overlay_for(again.screen, ai(r=result(10)), review=False, overlay_on=False)
    assert overlay.badge == "OVERLAY OFF"
    assert overlay_for(Screen(), ai(r=result(10)), review=False, overlay_on=True) == (None, Screen())


def test_unsure_follows_the_newest_result_without_a_hysteresis_of_its_own():
    """The worker's gate holds the hysteresis; decide shows each new result's verdict at once, and
    decides once per result like any other (no flicker from re-deciding the same result)."""
    screen, badges = ON_SCREEN, []
    for i, unsure in enumerate((False, True, True, False, True, False), start=6):
        d = decide(Tick(1.0 + i / 30, frame(i), src(), ai(r=result(i, unsure=unsure))), screen)
        screen = d.screen
        badges.append(d.overlay.badge)
        assert (d.overlay.result is None) is unsure and (d.overlay.age_ms is None) is unsure
        assert decide(Tick(1.01 + i / 30, None, src(), ai(r=screen.seen_result)), screen).overlay is None
    assert badges == ["", AI_UNSURE, AI_UNSURE, "", AI_UNSURE, ""]
    unsure = result(11, unsure=True)                        # a new result object for the frame on screen
    d = decide(Tick(1.5, None, src(), ai(r=unsure)), screen)
    assert d.overlay.badge == AI_UNSURE and d.overlay.result is None and d.overlay.withheld is unsure
    overlay, _ = overlay_for(d.screen, ai(r=unsure), review=False, overlay_on=True)  # a style change
    assert overlay.badge == AI_UNSURE and overlay.result is None


def test_review_shows_a_frames_own_unsure_verdict():
    up = decide(Tick(1.0, frame(6), src(), ai(r=result(6, unsure=True)), review=True), ON_SCREEN)
    assert up.frame.frame_id == 6 and up.release == 6
    assert up.overlay.result is None and up.overlay.badge == AI_UNSURE
    neighbour = decide(Tick(1.0, frame(6), src(), ai(r=result(5, unsure=True)), review=True), ON_SCREEN)
    assert neighbour.overlay.badge == "AI: no mask yet"  # a neighbour's verdict is not this frame's


def test_a_message_screen_replaces_an_unsure_picture():
    d = decide(Tick(0.5, None, src(capture=CaptureState.FAULTED, message="capture:0: busy"),
                    ai(r=result(5, unsure=True))), ON_SCREEN)
    assert d.message == ("NO SIGNAL", "capture:0: busy") and d.screen.frame is None


# -- skipped frames ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shown_last, newest, skipped", [(-1, 4, 0), (5, 6, 0), (5, 9, 3)])
def test_skipped_frames_are_counted(shown_last, newest, skipped):
    d = decide(Tick(1.0, frame(newest), src()), Screen(shown_last=shown_last))
    assert d.skipped == skipped and d.screen.shown_last == newest and d.screen.last_new == 1.0


# -- review mode --------------------------------------------------------------------------------------
def test_review_holds_a_frame_until_its_own_mask_then_releases_it():
    held = decide(Tick(1.0, frame(6), src(), ai(answered=False), review=True), ON_SCREEN)
    assert held.frame is None and held.release is None and held.message is None
    assert held.screen.held.frame_id == 6 and held.screen.asks_after == 6 and held.screen.last_new == 1.0
    waiting = decide(Tick(9.0, None, src(), ai(answered=False), review=True), held.screen)
    assert waiting.message is None and waiting.frame is None  # a slow model is no lost signal
    up = decide(Tick(9.1, None, src(), ai(r=result(6)), review=True), waiting.screen)
    assert up.frame.frame_id == 6 and up.release == 6 and up.screen.held is None
    assert up.overlay.result.frame_id == 6 and up.overlay.badge == ""


def test_review_never_draws_a_neighbours_mask():
    neighbour = ai(r=result(5))  # 33 ms older: fine live, never in review
    live = decide(Tick(1.0, frame(6), src(), neighbour), ON_SCREEN)
    assert live.overlay.result.frame_id == 5
    review = decide(Tick(1.0, frame(6), src(), neighbour, review=True), ON_SCREEN)
    assert review.frame.frame_id == 6 and review.overlay.result is None and review.overlay.badge == "AI: no mask yet"


def test_review_without_a_running_ai_releases_at_once():
    d = decide(Tick(1.0, frame(6), src(), ai(AIState.UNAVAILABLE), review=True), ON_SCREEN)
    assert d.frame.frame_id == 6 and d.release == 6 and d.overlay.badge == "AI UNAVAILABLE"


def test_review_releases_a_black_frame_too():
    """A black frame in review mode is shown as NO SOURCE IMAGE once answered, and capture may read
    on: before, the gate stayed shut and the screen fell to NO SIGNAL until the window closed."""
    held = decide(Tick(1.0, frame(6), src(blank=True), ai(answered=False), review=True), ON_SCREEN)
    assert held.release is None and held.message is None
    shown = decide(Tick(1.1, None, src(), ai(r=result(6)), review=True), held.screen)
    assert shown.message[0] == "NO SOURCE IMAGE" and shown.release == 6 and shown.screen.held is None


def test_live_mode_releases_nothing():
    assert decide(Tick(1.0, frame(6), src(), ai()), ON_SCREEN).release is None
