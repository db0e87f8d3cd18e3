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
    assert p.frames_displayed == 3 and p.overlay_updates == 1 and p.stale_masks_drawn == 1
    assert p.raw_latency_ms == pytest.approx([10, 20, 20])
    assert p.stalls_ms == pytest.approx([40, 160])
    assert percentiles([1, 2, 3, 4])["max"] == 4
