from __future__ import annotations

import pytest

from app.stats import PaintProbe, RateMeter, percentiles


@pytest.mark.unit
def test_rate_meter():
    m = RateMeter(window=1.0)
    for i in range(11):
        m.tick(10 + i * 0.1)
    assert m.rate(11.0) == pytest.approx(10.0)
    assert m.rate(20.0) == 0.0  # everything fell out of the window


@pytest.mark.unit
def test_paint_probe_counts_what_was_shown():
    p = PaintProbe(stale_limit_s=0.12)
    p.on_paint(1.00, 0, 0.99)                 # frame 0, no mask
    p.on_paint(1.01, 0, 0.99)                 # repaint of the same frame: not a new frame
    p.on_paint(1.04, 1, 1.02, 0, 0.99)        # frame 1 with the mask of frame 0 (30 ms old)
    p.on_paint(1.20, 5, 1.18, 0, 0.99)        # 190 ms old mask drawn: stale
    p.on_paint(1.21, 5, 1.18, 0, 0.99)        # frame 5 repainted with it: one frame with a mask, not two
    p.on_paint(1.24, 6, 1.22)                 # frame 6: the mask hidden
    assert p.frames_displayed == 4 and p.overlay_updates == 1 and p.stale_masks_drawn == 2  # per paint
    assert p.frames_with_mask == 2            # frames 1 and 5 of 0, 1, 5, 6
    assert p.raw_latency_ms == pytest.approx([10, 20, 20, 20])
    assert p.stalls_ms == pytest.approx([40, 160, 40])
    assert percentiles([1, 2, 3, 4])["max"] == 4


@pytest.mark.unit
def test_gate_tally_counts_each_result_once():
    import numpy as np

    from app.stats import GateTally
    from models.core.types import Result

    def result(i, score, unsure=False):
        return Result(i, np.zeros((2, 2), np.uint8), "m", score=score, unsure=unsure)

    none = GateTally()
    for r in (None, result(0, None), result(1, None)):
        none.see(r)
    assert none.figures() == {"gated_share": None, "gate_score_median": None, "gate_results": 2}  # no gate
    assert GateTally().figures() == {"gated_share": None, "gate_score_median": None, "gate_results": 0}  # no AI

    tally = GateTally()
    results = [result(0, 1.0), result(1, 2.0), result(2, 9.0, True), result(3, 8.0, True)]
    for r in (results[0], results[0], None, results[1], results[1], results[2], results[3], results[3]):
        tally.see(r)  # polled faster than results come: each counts once
    assert tally.figures() == {"gated_share": 0.5, "gate_score_median": 5.0, "gate_results": 4}
    later = GateTally()
    later.start_after(results[1])  # the result already there when measuring starts is not counted
    for r in results[1:]:
        later.see(r)
    assert later.figures() == {"gated_share": 1.0, "gate_score_median": 8.5, "gate_results": 2}

    bounded = GateTally(keep=100)
    for i in range(5000):
        bounded.see(result(i, float(i % 10), i % 4 == 0))
    assert len(bounded._scores) == 100 and bounded.results == bounded.scored == 5000
    figures = bounded.figures()
    assert figures["gated_share"] == 0.25 and 2 <= figures["gate_score_median"] <= 7
