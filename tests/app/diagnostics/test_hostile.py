"""The hostile corpus command (app/diagnostics/hostile.py): its judge on every kind of ending, a
few real cases end to end, and children that misbehave on purpose (a traceback, a hang, a memory
bomb, a signal) to show that the judge catches them."""
from __future__ import annotations

import json
import signal

import pytest

from app.cli import main as endospine
from app.diagnostics.hostile import judge, message_of, run_case, run_corpus, select, table
from app.diagnostics.hostile_cases import BUILDERS, Case
from models.core.errors import EndoSpineError

REFUSE = Case("c", 1, ("python",), "refuse", ("in.yaml",))
ACCEPT = Case("c", 0, ("python",), "accept")
WARN = Case("c", 5, ("python",), "accept", ("p.yaml",), warn=True)
TB = "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: boom\n"


@pytest.mark.unit
@pytest.mark.parametrize("case, code, timed_out, stdout, stderr, rss, problem, passed, why", [
    (REFUSE, 1, False, "", "prog: error: /d/in.yaml: lr: must be a number\n", 80, None, True, "refused in one line"),
    (REFUSE, 1, False, "", "prog: error: lr: must be a number\n", 80, None, False, "does not name in.yaml"),
    (REFUSE, 0, False, "done\n", "", 80, None, False, "accepted (exit 0)"),
    (REFUSE, 1, False, "", TB, 80, None, False, "traceback: ValueError: boom"),
    (REFUSE, 1, False, "", "prog: error: in.yaml: x\n", 2500, None, False, "peak RSS 2500 MB"),
    (REFUSE, 1, False, "", "prog: error: in.yaml: x\n", 80, "code from the checkpoint ran", False, "code from"),
    (REFUSE, None, True, "", "", 80, None, False, "no end within 60 s"),
    (REFUSE, -signal.SIGKILL, False, "", "", 80, None, False, "killed (SIGKILL)"),
    (REFUSE, 1, False, "", "MemoryError\n", 80, None, False, "killed (MemoryError)"),
    (ACCEPT, 0, False, '{"frames": 3}\n', "50%|#####| 1/2\n", 80, None, True, "clean result"),
    (ACCEPT, 1, False, "", "prog: error: nope\n", 80, None, False, "expected it to work"),
    (WARN, 0, False, "", "prog: warning: /d/p.yaml: bad; using the default\n", 80, None, True, "with a warning"),
    (WARN, 0, False, "", "", 80, None, False, "without a warning naming p.yaml"),
])
def test_judge(case, code, timed_out, stdout, stderr, rss, problem, passed, why):
    ok, reason, *_ = judge(case, code, timed_out, stdout, stderr, rss, problem)
    assert ok is passed and why in reason


@pytest.mark.unit
def test_message_is_the_error_line_not_the_noise():
    stderr = "This plugin does not support propagateSizeHints()\nrender:  50%|##| 1/2\nprog: error: a.mp4: bad\nnote\n"
    assert message_of("", stderr, refused=True) == "prog: error: a.mp4: bad"
    assert message_of('{"frames": 2}\n', stderr, refused=False) == '{"frames": 2}'


def test_misbehaving_children_are_caught(tmp_path):
    """Synthetic failures: a traceback, a hang, a memory bomb under the cap, a signal; and a child
    whose memory is measured."""
    cases = {
        "traceback": Case("traceback", 0, ("python", "-c", "raise ValueError('boom')"), "refuse", ("x",)),
        "hang": Case("hang", 0, ("python", "-c", "import time; time.sleep(60)"), "either", timeout_s=1.0),
        "bomb": Case("bomb", 0, ("python", "-c", "b = bytearray(3 << 30)"), "refuse", ("x",)),
        "signal": Case("signal", 0, ("python", "-c", "import os; os.kill(os.getpid(), 9)"), "either"),
        "memory": Case("memory", 0, ("python", "-c", "import time; b = bytearray(300 << 20); b[::4096] = "
                                                    "b'x' * len(b[::4096]); time.sleep(0.3)"), "accept"),
    }
    records = {name: run_case(case, tmp_path / name, memory_cap_gb=1.0) for name, case in cases.items()}
    assert records["traceback"].traceback and not records["traceback"].passed
    assert records["traceback"].why == "traceback: ValueError: boom"
    assert records["hang"].killed == "timeout" and records["hang"].exit_code is None and records["hang"].seconds < 5
    assert records["bomb"].killed == "MemoryError" and not records["bomb"].passed
    assert records["signal"].killed == "SIGKILL" and not records["signal"].passed
    assert records["memory"].passed and records["memory"].peak_rss_mb > 250


def test_real_cases_end_to_end(tmp_path, capsys):
    names = ["control_import_labelme", "labelme_nested_200k", "out_png"]
    summary = run_corpus(tmp_path / "corpus", names)
    assert summary["cases"] == 3 and summary["passed"] == 3, table(summary["records"])
    assert (summary["tracebacks"], summary["crashes"], summary["timeouts"], summary["not_run"]) == (0, 0, 0, {})
    assert summary["max_peak_rss_mb"] > 10 and summary["max_peak_rss_case"] in names
    by_name = {r["case"]: r for r in summary["records"]}
    assert set(by_name["out_png"]) == {"case", "defect", "expect", "command", "exit_code", "killed", "traceback",
                                       "message", "peak_rss_mb", "seconds", "passed", "why"}
    assert by_name["labelme_nested_200k"]["exit_code"] == 1 and "f.json" in by_name["labelme_nested_200k"]["message"]
    assert by_name["control_import_labelme"]["exit_code"] == 0
    assert (tmp_path / "corpus" / "out_png" / "stderr.txt").is_file()      # every case's output is kept


def test_the_command_prints_the_table_and_the_summary(tmp_path, capsys):
    assert endospine(["hostile", "--out", str(tmp_path / "c"), "--cases", "out_no_ext*",
                      "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("case") and "PASS" in out[1] and json.loads(out[-1])["cases"] == 1
    assert json.loads((tmp_path / "r.json").read_text())["records"][0]["case"] == "out_no_extension"


@pytest.mark.unit
def test_case_selection(capsys):
    assert len(BUILDERS) >= 30 and select(["bomb_*"]) == [n for n in BUILDERS if n.startswith("bomb_")]
    with pytest.raises(EndoSpineError, match="no case matches nope"):
        select(["nope"])
    assert endospine(["hostile", "--list"]) == 0 and "labelme_nested_200k" in capsys.readouterr().out
