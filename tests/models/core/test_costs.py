"""The per-stage cost ledger that `endospine bench` reads (models/core/costs.py)."""
from __future__ import annotations

import os
import time

import pytest

from models.core.costs import StageLedger, per_call, process_cpu_s

pytestmark = pytest.mark.unit


def test_per_call_means_between_two_snapshots():
    ledger = StageLedger()
    ledger.add("decode", 0.010, 0.004)
    before = ledger.snapshot()
    ledger.add("decode", 0.020, 0.010)
    ledger.add("decode", 0.040, 0.020)
    ledger.add("paint", 0.003, 0.001)
    got = per_call(ledger.snapshot(), before)
    assert got["decode"] == {"calls": 2, "wall_ms": 30.0, "cpu_ms": 15.0}
    assert got["paint"] == {"calls": 1, "wall_ms": 3.0, "cpu_ms": 1.0}
    assert per_call(ledger.snapshot(), ledger.snapshot()) == {}  # no calls in between: no figure


def test_measure_counts_wall_and_thread_cpu_even_when_the_stage_raises():
    ledger = StageLedger()
    with ledger.measure("sleep"):
        time.sleep(0.02)
    with pytest.raises(ZeroDivisionError), ledger.measure("spin"):
        t = time.thread_time()
        while time.thread_time() - t < 0.02:
            pass
        1 / 0
    calls, wall, cpu = ledger.snapshot()["sleep"]
    assert calls == 1 and wall >= 0.02 and cpu < 0.01  # sleeping costs no CPU
    calls, wall, cpu = ledger.snapshot()["spin"]
    assert calls == 1 and cpu >= 0.02


def test_process_cpu_of_this_process_and_of_another_by_pid():
    assert process_cpu_s() >= 0
    assert process_cpu_s(os.getpid()) is not None
    assert process_cpu_s(2 ** 22 + 12345) is None  # no such process
