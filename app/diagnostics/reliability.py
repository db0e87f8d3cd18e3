"""Reliability figures: `endospine faults` (scripted faults) and the numbers behind `endospine soak`.

faults: AI faults (slow, hang, abort, SIGSEGV, NaN, wrong shape) and unplug/replug cycles run
against the real window offscreen (app.diagnostics.ui.fault_bench), and a corpus of broken video files is
played through the real VideoSource in child processes (app.diagnostics.corrupt_corpus). One JSON summary.

Fuzzing is not run here: its targets and hypothesis are test-side (tests/fuzz, the `test` extra),
which an installed display does not carry; the README gives the fuzz figures from
`ENDOSPINE_FUZZ_EXAMPLES=N pytest tests/fuzz --hypothesis-show-statistics`.

This module imports no Qt; the display parts are imported when they run.
"""
from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.stats import percentiles


def machine_note() -> str:
    """What the figures were measured on, read when they are written (not a fixed claim):
    cores and the load averages, which show whether other jobs shared the machine."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores; load average (1, 5, 15 min) {load} when written"
STALL_FAULTS = ("slow", "hang", "crash", "segv")  # faults under which raw video must keep going


def run_faults(cycles: int = 100, ai_faults: tuple[str, ...] | None = None, files: bool = True,
               corpus_dir: Path | None = None, file_timeout_s: float = 30.0) -> dict:
    """All scenarios; the summary dict `endospine faults` prints."""
    from app.diagnostics.ui.fault_bench import AI_FAULTS, ai_fault, unplug_cycles

    names = tuple(AI_FAULTS) if ai_faults is None else ai_faults
    ai = {name: ai_fault(name) for name in tqdm(names, desc="AI faults", unit="fault")}
    summary: dict = {"ai": ai}
    stalls = [ai[n]["max_raw_stall_ms"] for n in STALL_FAULTS if n in ai and ai[n]["max_raw_stall_ms"] is not None]
    summary["max_raw_stall_ms_ai_slow_hang_crash"] = max(stalls) if stalls else None
    summary["overlay_hidden_ms"] = {n: r["overlay_hidden_ms"] for n, r in ai.items() if n != "slow"}
    stale = sum(r["stale_masks_drawn"] for r in ai.values())
    if cycles > 0:
        print(f"unplug/replug: {cycles} cycles of about 2.9 s", flush=True)
        plug = unplug_cycles(cycles)
        summary["unplug"] = {
            "cycles": plug["cycles"], "no_signal_shown": plug["no_signal_shown"], "recovered": plug["recovered"],
            "to_no_signal_ms": percentiles(plug["to_no_signal_ms"], (50, 95)),
            "to_recovery_ms": percentiles(plug["to_recovery_ms"], (50, 95)),
            "old_frame_back_after_no_signal": plug["old_frame_back_after_no_signal"],
        }
        stale += plug["stale_masks_drawn"]
    summary["stale_masks_drawn"] = stale
    if files:
        summary["corrupt_files"] = corrupt_file_cases(corpus_dir, file_timeout_s)
    summary["machine"] = machine_note()
    summary["fuzz"] = "not run here: see the README (ENDOSPINE_FUZZ_EXAMPLES=N pytest tests/fuzz)"
    return summary


def corrupt_file_cases(corpus_dir: Path | None, timeout_s: float) -> dict:
    """Make the broken-file corpus and try every file in its own child process."""
    from app.diagnostics.corrupt_corpus import make_corpus, try_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(corpus_dir) if corpus_dir else Path(tmp)
        paths = make_corpus(folder)
        outcomes = [try_file(p, timeout_s) for p in tqdm(paths, desc="broken files", unit="file")]
    broken = [o for o in outcomes if not o.case.startswith("intact")]
    controls = [o for o in outcomes if o.case.startswith("intact")]
    return {"passed": sum(o.passed for o in broken), "tried": len(broken),
            "intact_controls_played": sum(o.passed for o in controls), "controls": len(controls),
            "failed": {o.case: o.detail for o in outcomes if not o.passed},
            "cases": {o.case: o.detail for o in outcomes}}


# -- soak figures -------------------------------------------------------------------------------
SOAK_SERIES = ("main_rss_mb", "children_rss_mb", "fds", "threads")


def growth_per_hour(times_s, values, warmup_s: float) -> float | None:
    """Least-squares slope of values over time after the warm-up, per hour (None: too few samples)."""
    t = np.asarray(times_s, float)
    v = np.asarray(values, float)
    keep = t >= warmup_s
    if keep.sum() < 3 or np.ptp(t[keep]) <= 0:
        return None
    slope = np.polyfit(t[keep], v[keep], 1)[0]
    return round(float(slope * 3600.0), 3)


def soak_summary(samples: list[dict], warmup_s: float) -> dict:
    """samples: dicts with t_s and the SOAK_SERIES keys -> first/last values and growth per hour."""
    out: dict = {"samples": len(samples), "warmup_s": warmup_s, "machine": machine_note()}
    if not samples:
        return out
    times = [s["t_s"] for s in samples]
    out["seconds"] = round(times[-1], 1)
    for key in SOAK_SERIES:
        values = [s[key] for s in samples]
        out[key] = {"first": values[0], "last": values[-1], "max": max(values),
                    "growth_per_hour": growth_per_hour(times, values, warmup_s),
                    "change_after_warmup": change_after_warmup(times, values, warmup_s)}
    return out


def change_after_warmup(times_s, values, warmup_s: float) -> float | None:
    """Median of the last quarter minus median of the first quarter of the post-warm-up samples:
    robust to the sample-to-sample jitter that dominates a short run's slope."""
    kept = [v for t, v in zip(times_s, values) if t >= warmup_s]
    if len(kept) < 4:
        return None
    q = max(1, len(kept) // 4)
    return round(float(np.median(kept[-q:]) - np.median(kept[:q])), 3)


def soak_plot(samples: list[dict], warmup_s: float, path: Path, title: str = "") -> None:
    """Memory, file descriptors and threads over time, warm-up shaded; written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.core.imageio import write_bytes_atomic

    t = np.array([s["t_s"] for s in samples]) / 60.0
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    panels = ((("main_rss_mb", "main process"), ("children_rss_mb", "children (AI worker, decoder)")), (("fds", "open files"),),
              (("threads", "threads (main)"),))
    for ax, series, label in zip(axes, panels, ("RSS (MB)", "file descriptors", "threads")):
        for key, name in series:
            ax.plot(t, [s[key] for s in samples], marker=".", label=name)
        ax.axvspan(0, warmup_s / 60.0, color="0.9", label="warm-up")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("minutes")
    heading = f"endospine soak, {t[-1]:.0f} min" + (f": {title}" if title else "")
    fig.suptitle(textwrap.fill(heading, 120), fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(Path(path), buf.getvalue())
