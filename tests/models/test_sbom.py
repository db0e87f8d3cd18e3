"""The SBOM lists what is really installed, in CycloneDX form."""
from __future__ import annotations

import json
from importlib import metadata

import pytest

from models.sbom import _requirements, build_sbom, main


@pytest.mark.unit
def test_sbom_lists_the_installed_runtime_dependencies_with_their_versions():
    sbom = build_sbom()
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    versions = {c["name"].lower(): c["version"] for c in sbom["components"]}
    for name in ("paddlepaddle", "numpy", "pyqt6", "av", "opencv-python-headless", "pyyaml"):
        assert versions[name] == metadata.version(name), name
    refs = {c["bom-ref"] for c in sbom["components"]}
    assert all(set(d["dependsOn"]) <= refs for d in sbom["dependencies"])  # edges only to listed parts
    assert "endospine" not in versions and sbom["metadata"]["component"]["name"] == "endospine"


@pytest.mark.unit
def test_requirements_skip_extras():
    class Dist:
        requires = ["numpy>=1.24", "pytest ; extra == 'test'", "PyYAML (>=6)", "tomli; python_version < '3.11'"]
    assert _requirements(Dist()) == ["numpy", "pyyaml", "tomli"]


@pytest.mark.unit
def test_sbom_command_writes_json(tmp_path, capsys):
    out = tmp_path / "sbom.json"
    assert main(["--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["components"]) > 10
