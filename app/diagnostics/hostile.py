"""`endospine hostile`: the hostile-input corpus of issue 19, run against the real commands.

Every case (app/diagnostics/hostile_cases.py) is made at run time in its own folder under --out
and run as a child process of the real command line, by command name:
`endospine render|run`, `endospine-model import|validate|split|train|export|gan`,
`endospine-calibrate fov|show`. Nothing of the pipeline is imported here (the display never
imports it), and a child is measured honestly: its own memory, its own crash. Two cases play a
file through the display's own source stage (`python -m app.diagnostics.hostile --play`, as
the broken-file corpus of `endospine faults` does), since what `run` shows is not printed.

Each child runs in its own session, under a memory cap (RLIMIT_AS, default 3 GB: a bomb ends in
MemoryError instead of taking the machine down) and a timeout, its tree's resident memory
polled every 20 ms (and the kernel's peak for the process itself). A case passes when the
command ends within its timeout with no Python traceback, no signal, no MemoryError, a peak RSS
under 2 GB, nothing wrong left on disk (the case's own check: the input overwritten, a partial
file, code that ran), and
    refuse   exit status not 0, the error line naming the input (`prog: error: <file>: ...`);
    accept   exit status 0 (and where the case says so, a warning naming the input);
    either   one of the two.
The command reports what the code does when it runs: other fixes turn cases green as they land.
This module imports no Qt and no pipeline code.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from app.diagnostics.hostile_cases import BUILDERS, Case, Corpus, command_line

MEMORY_CAP_GB = 3.0
RSS_LIMIT_MB = 2048.0
POLL_S = 0.02
TRACEBACK = "Traceback (most recent call last)"
OUT_OF_MEMORY = ("MemoryError", "std::bad_alloc", "OutOfMemoryError", "Insufficient memory")
NOISE = ("This plugin does not support", "QStandardPaths:", "qt.qpa.")


@dataclass
class Record:
    case: str
    defect: int
    expect: str
    command: str
    exit_code: int | None
    killed: str | None                 # a signal's name, "timeout" or "MemoryError"
    traceback: bool
    message: str
    peak_rss_mb: float
    seconds: float
    passed: bool
    why: str


# -- the judge (pure) --------------------------------------------------------------------------
def message_of(stdout: str, stderr: str, refused: bool) -> str:
    """The line a person reads: a refusal's error line, else the last line of output."""
    lines = [s.strip() for s in re.split(r"[\r\n]+", stderr)]
    lines = [s for s in lines if s and not s.startswith(NOISE) and not re.search(r"\d+%\|", s)]
    errors = [s for s in lines if ": error:" in s]
    out = [s.strip() for s in stdout.splitlines() if s.strip()]
    if refused:
        text = (errors or lines or out or [""])[-1]
    else:
        text = (out or lines or [""])[-1]
    return text[:300]


def judge(case: Case, exit_code: int | None, timed_out: bool, stdout: str, stderr: str, peak_rss_mb: float,
          problem: str | None = None) -> tuple[bool, str, str | None, bool, str]:
    """(passed, why, killed, traceback, message) of one finished child."""
    traceback = TRACEBACK in stderr or TRACEBACK in stdout
    killed = None
    if timed_out:
        killed = "timeout"
    elif exit_code is not None and exit_code < 0:
        killed = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else f"signal {-exit_code}"
    elif any(m in stderr for m in OUT_OF_MEMORY):
        killed = "MemoryError"
    refused = exit_code != 0
    message = message_of(stdout, stderr, refused)
    named = _names_input(case, message, stdout, stderr, refused)
    if timed_out:
        return False, f"no end within {case.timeout_s:g} s", killed, traceback, message
    if killed:
        return False, f"killed ({killed})", killed, traceback, message
    if traceback:
        last = [s for s in stderr.strip().splitlines() if s.strip()] or [""]
        return False, f"traceback: {last[-1].strip()[:200]}", killed, traceback, message
    if peak_rss_mb >= RSS_LIMIT_MB:
        return False, f"peak RSS {peak_rss_mb:.0f} MB >= {RSS_LIMIT_MB:.0f} MB", killed, traceback, message
    if problem:
        return False, problem, killed, traceback, message
    if refused:
        if case.expect == "accept":
            return False, f"refused (exit {exit_code}); expected it to work", killed, traceback, message
        if not named:
            return False, f"refused, but the message does not name {' or '.join(case.names)}", killed, traceback, message
        return True, "refused in one line naming the input", killed, traceback, message
    if case.expect == "refuse":
        return False, "accepted (exit 0); expected a refusal naming the input", killed, traceback, message
    if case.warn and not named:
        return False, f"accepted without a warning naming {' or '.join(case.names)}", killed, traceback, message
    return True, "clean result" + (" with a warning naming the input" if case.warn else ""), killed, traceback, message


def _names_input(case: Case, message: str, stdout: str, stderr: str, refused: bool) -> bool:
    if not case.names:
        return True
    where = stdout + stderr if case.anywhere else (message if refused else stderr)
    return any(name in where for name in case.names)


# -- running one case --------------------------------------------------------------------------
def _limits(memory_cap: int, fsize: int | None):
    def apply() -> None:   # in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def _tree_rss(proc) -> int:
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_case(case: Case, folder: Path, memory_cap_gb: float = MEMORY_CAP_GB) -> Record:
    """Run one case's command in `folder` as a capped child; judge it."""
    import psutil

    folder.mkdir(parents=True, exist_ok=True)
    argv = command_line(case.argv)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1",
           "XDG_CONFIG_HOME": str(folder / ".config")}   # run's window settings stay in the case
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    peak, timed_out = 0, False
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_limits(int(memory_cap_gb * 2 ** 30), case.fsize))
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, _tree_rss(watched))
            if time.monotonic() - start > case.timeout_s:
                timed_out = True
                break
            time.sleep(POLL_S)
        _kill_group(proc.pid)   # on a timeout the whole tree; else what the command left running
        proc.wait()
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after > before:      # the kernel's peak of the largest process reaped so far: this case's
        peak = max(peak, after * 1024)
    stdout, stderr = (_text(folder / name) for name in ("stdout.txt", "stderr.txt"))
    problem = None
    if case.check is not None and not timed_out:
        try:
            problem = case.check(stdout)
        except Exception as exc:  # noqa: BLE001 - a check that cannot look is a finding, not a crash
            problem = f"check failed: {type(exc).__name__}: {exc}"
    passed, why, killed, traceback, message = judge(case, None if timed_out else proc.returncode, timed_out,
                                                    stdout, stderr, peak / 2 ** 20, problem)
    return Record(case.name, case.defect, case.expect, " ".join(case.argv), None if timed_out else proc.returncode,
                  killed, traceback, message, round(peak / 2 ** 20, 1), round(seconds, 2), passed, why)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _text(path: Path, limit: int = 8 << 20) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "backslashreplace")


# -- the whole corpus ----------------------------------------------------------------------------
def select(patterns: list[str] | None) -> list[str]:
    """Case names matching any of the patterns (fnmatch; all when None); an unknown one is an error."""
    if not patterns:
        return list(BUILDERS)
    chosen = [n for n in BUILDERS if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in BUILDERS)]
    if missing:
        from models.core.errors import EndoSpineError

        raise EndoSpineError(f"--cases: no case matches {', '.join(missing)} (see --list)")
    return chosen


def run_corpus(out: Path, patterns: list[str] | None = None, memory_cap_gb: float = MEMORY_CAP_GB,
               progress: Callable[[Record], None] | None = None) -> dict:
    """Make and run the chosen cases; the summary with every record."""
    from app.diagnostics.reliability import machine_note

    names = select(patterns)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(out)
    records: list[Record] = []
    not_run: dict[str, str] = {}
    start = time.monotonic()
    for name in names:
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            case = BUILDERS[name](corpus, folder)
        except Exception as exc:  # noqa: BLE001 - a case that cannot be made here is reported, not fatal
            not_run[name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        record = run_case(case, folder, memory_cap_gb)
        records.append(record)
        if progress is not None:
            progress(record)
    return summarize(records, not_run, memory_cap_gb, time.monotonic() - start, machine_note())


def summarize(records: list[Record], not_run: dict[str, str], memory_cap_gb: float, seconds: float,
              machine: str = "") -> dict:
    peak = max(records, key=lambda r: r.peak_rss_mb, default=None)
    return {"cases": len(records), "passed": sum(r.passed for r in records),
            "failed": [r.case for r in records if not r.passed],
            "tracebacks": sum(r.traceback for r in records),
            "crashes": sum(r.killed not in (None, "timeout") for r in records),
            "timeouts": sum(r.killed == "timeout" for r in records),
            "max_peak_rss_mb": peak.peak_rss_mb if peak else None, "max_peak_rss_case": peak.case if peak else None,
            "not_run": not_run, "memory_cap_gb": memory_cap_gb, "rss_limit_mb": RSS_LIMIT_MB,
            "seconds": round(seconds, 1), "machine": machine, "records": [asdict(r) for r in records]}


def table(records: list[dict]) -> str:
    """The per-case table: one line each."""
    head = f"{'case':<34}{'def':>4} {'expect':<7}{'exit':>5} {'killed':<12}{'tb':<3}{'RSS MB':>8}{'s':>7}  result"
    rows = [head]
    for r in records:
        rows.append(f"{r['case'][:33]:<34}{r['defect']:>4} {r['expect']:<7}{str(r['exit_code']):>5} "
                    f"{(r['killed'] or '-')[:11]:<12}{'Y' if r['traceback'] else '-':<3}{r['peak_rss_mb']:>8.0f}"
                    f"{r['seconds']:>7.1f}  {'PASS' if r['passed'] else 'FAIL'} {r['why']}"
                    + ("" if r['passed'] else f" | {r['message'][:160]}"))
    return "\n".join(rows)


# -- the display's source stage in a child (--play) --------------------------------------------
def play(spec: str, seconds: float, loop: bool) -> dict:
    """Play a file as `run` does (decoded in the supervised decoder child, at its own pace) for
    up to `seconds`; what arrived: frames, the last timestamp, the longest wait, an error."""
    from app.compose import open_source_stage
    from models.core.errors import EndoSpineError

    source = open_source_stage(spec, loop=loop, isolated=True)
    frames, last_pts, longest, error = 0, None, 0.0, None
    start = previous = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            frame = source.read()
            now = time.monotonic()
            if frame is None:
                break
            frames, last_pts, longest, previous = frames + 1, frame.pts, max(longest, now - previous), now
    except EndoSpineError as exc:
        error = str(exc)
    finally:
        source.close()
    return {"frames": frames, "last_pts": last_pts, "longest_wait_s": round(longest, 2), "error": error,
            "end_note": source.end_note()}


def main(argv: list[str] | None = None) -> int:
    from models.core.cliutil import run

    return run(build_parser(), argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.diagnostics.hostile", description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--play", metavar="FILE", help=argparse.SUPPRESS)   # the child side of the play cases
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(func=command)
    return parser


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, metavar="DIR", help="where the cases are made and run (kept afterwards; "
                   "each case's stdout.txt and stderr.txt are in its folder)")
    p.add_argument("--cases", metavar="NAME,...", help="comma-separated case names or patterns (e.g. 'bomb_*'); "
                   "default all")
    p.add_argument("--list", action="store_true", help="list the cases and stop")
    p.add_argument("--memory-cap-gb", type=float, default=MEMORY_CAP_GB,
                   help=f"address-space limit of each child (default {MEMORY_CAP_GB:g})")
    p.add_argument("--json", metavar="OUT", help="also write the JSON result, with every case's record, here")


def command(args: argparse.Namespace) -> int:
    """`endospine hostile` and `python -m app.diagnostics.hostile`: the table, then the JSON summary."""
    from models.core.errors import EndoSpineError
    from models.core.imageio import write_bytes_atomic

    if getattr(args, "play", None):
        result = play(args.play, args.seconds, args.loop)
        print(json.dumps(result))
        return 0
    if args.list:
        print("\n".join(select(args.cases.split(",") if args.cases else None)))
        return 0
    if args.out is None:
        raise EndoSpineError("--out DIR is required (the cases are made and kept there)")
    patterns = [p.strip() for p in args.cases.split(",") if p.strip()] if args.cases else None

    def progress(r: Record) -> None:
        print(f"{'PASS' if r.passed else 'FAIL'} {r.case} ({r.seconds:.1f} s): {r.why}", file=sys.stderr, flush=True)

    summary = run_corpus(args.out, patterns, args.memory_cap_gb, progress)
    print(table(summary["records"]))
    text = json.dumps(summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "records"}))
    if args.json:
        write_bytes_atomic(Path(args.json), (text + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
