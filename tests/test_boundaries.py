"""The dependency direction of DESIGN.md, enforced by the import-linter contracts in setup.cfg."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.unit
def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), str(ROOT / "setup.cfg"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every contract must have been checked (a typo in a contract would otherwise pass silently).
    assert "4 kept, 0 broken" in proc.stdout, proc.stdout


@pytest.mark.unit
def test_no_qt_import_outside_app_ui():
    """A plain text check too, for imports import-linter cannot see (inside functions, strings)."""
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("app", "models", "calibration") or "ui" in rel.parts[1:-1]:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("import PyQt6", "from PyQt6")):
                offenders.append(f"{rel}: {stripped}")
    assert not offenders, offenders


# Modules that build or judge models: the runtime (app, calibration) must never import them.
TRAINING_SIDE = ("models.synth.generate", "models.train", "models.export", "models.gan", "models.evaluate",
                 "models.reader_study")


@pytest.mark.unit
@pytest.mark.parametrize("module", TRAINING_SIDE)
def test_training_modules_are_in_the_contract(module):
    import configparser
    import importlib.util

    if importlib.util.find_spec(module.split(".")[0]) is None or _missing(module):
        pytest.skip(f"{module} does not exist yet")
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = cfg["importlinter:contract:runtime-no-training"]["forbidden_modules"].split()
    assert module in listed, f"{module} exists: add it to the runtime-no-training contract in setup.cfg"


def _missing(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return not (path.with_suffix(".py").exists() or (path / "__init__.py").exists())
