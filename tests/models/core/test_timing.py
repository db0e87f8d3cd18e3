"""The timing rules (models.core.timing): the derived limits and a profile's overrides."""
from __future__ import annotations

import pytest

from models.core.timing import DEFAULT_TIMING, Timing

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("fps, no_signal, card_hang", [
    (30.0, 0.4, 0.5),     # fast sources: the fixed floors
    (2.0, 1.25, 2.0),     # slow ones: 2.5 and 4 frame intervals
    (0.0, 0.4, 0.5),      # no rate known: the floors
])
def test_limits_follow_the_frame_rate(fps, no_signal, card_hang):
    assert DEFAULT_TIMING.no_signal_limit(fps) == pytest.approx(no_signal)
    assert DEFAULT_TIMING.card_hang_after(fps) == pytest.approx(card_hang)


def test_overrides_round_trip_and_only_differences_are_kept():
    t = Timing.from_dict({"no_signal_after_s": 0.6, "ai_backoff_s": [0.2, 1.0], "ai_max_failures": 6})
    assert t.no_signal_limit(30.0) == 0.6 and t.ai_backoff_s == (0.2, 1.0)
    assert t.to_dict() == {"no_signal_after_s": 0.6, "ai_max_failures": 6, "ai_backoff_s": [0.2, 1.0]}
    assert Timing.from_dict(t.to_dict()) == t and Timing.from_dict(None) == Timing() and Timing().to_dict() == {}


@pytest.mark.parametrize("data, problem", [
    ({"stale_limit_s": 0}, "stale_limit_s: must be a positive"),
    ({"stale_limit_s": float("nan")}, "stale_limit_s: must be a positive"),
    ({"decoder_hang_s": 7200}, "decoder_hang_s: 7200 is more than an hour"),
    ({"ai_max_failures": 2.5}, "ai_max_failures: a whole number"),
    ({"ai_backoff_s": []}, "ai_backoff_s: at least one delay"),
    ({"lag": 1}, "lag: unknown timing rule"),
    ([1, 2], "must be a mapping"),
])
def test_bad_values_are_one_line(data, problem):
    with pytest.raises(ValueError, match=problem):
        Timing.from_dict(data)
