"""The three console scripts exist, answer --help, and advertise only commands that exist."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = {"endospine": "app.cli", "endospine-model": "models.cli", "endospine-calibrate": "calibration.cli"}


def _console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines() if ln.strip()]
    return dict((part.strip() for part in ln.split("=")) for ln in lines)


@pytest.mark.unit
def test_console_scripts_declared():
    scripts = _console_scripts()
    assert set(scripts) == set(MODULES)
    for name, target in scripts.items():
        assert target == f"{MODULES[name]}:main"


@pytest.mark.parametrize("module", MODULES.values())
def test_help_runs(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


@pytest.mark.unit
@pytest.mark.parametrize("module", MODULES.values())
def test_every_advertised_command_has_a_handler(module):
    import importlib

    parser = importlib.import_module(module).build_parser()
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            assert sub.get_default("func") is not None, f"{module}: '{name}' has no handler"


@pytest.mark.unit
@pytest.mark.parametrize("module", MODULES.values())
def test_unknown_command_exits_nonzero(module):
    import importlib

    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main(["no-such-command"])
    assert exc.value.code != 0
