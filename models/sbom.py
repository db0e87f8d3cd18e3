"""Software bill of materials: every Python distribution installed beside EndoSpine, as CycloneDX
1.5 JSON, for a hospital's security review (`make sbom`, or `python -m models.sbom --out FILE`).

Read from the installed metadata (importlib.metadata), so it lists what is really there, not what
setup.cfg asks for: name, version, package URL, declared licenses, and the dependency edges among
installed distributions. Nothing is fetched from the network.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Sequence

from models.core.cliutil import run
from models.core.imageio import write_bytes_atomic

ROOT_NAME = "endospine"


def _key(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _licenses(meta) -> list[dict]:
    expression = meta.get("License-Expression")
    if expression:
        return [{"expression": expression}]
    found = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    text = (meta.get("License") or "").strip()
    if not found and text and len(text) < 100 and "\n" not in text:
        found = [text]
    return [{"license": {"name": name}} for name in dict.fromkeys(found)]


def _requirements(dist) -> list[str]:
    """Names of the distributions this one needs unconditionally (extras and markers that do not
    hold here are skipped)."""
    names = []
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if match:
            names.append(_key(match.group(1)))
    return names


def build_sbom() -> dict:
    dists = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name and _key(name) not in dists:
            dists[_key(name)] = dist
    components, dependencies = [], []
    for key in sorted(dists):
        dist = dists[key]
        version = dist.version
        ref = f"pkg:pypi/{key}@{version}"
        component = {"type": "library", "bom-ref": ref, "name": dist.metadata["Name"], "version": version,
                     "purl": ref}
        if licenses := _licenses(dist.metadata):
            component["licenses"] = licenses
        components.append(component)
        needs = sorted({f"pkg:pypi/{d}@{dists[d].version}" for d in _requirements(dist) if d in dists})
        dependencies.append({"ref": ref, "dependsOn": needs})
    root = dists.get(ROOT_NAME)
    subject = {"type": "application", "name": ROOT_NAME,
               "version": root.version if root else "unknown",
               "bom-ref": f"pkg:pypi/{ROOT_NAME}@{root.version}" if root else ROOT_NAME}
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "metadata": {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "component": subject,
                     "properties": [{"name": "python", "value": sys.version.split()[0]}]},
        "components": [c for c in components if c["name"].lower() != ROOT_NAME],
        "dependencies": dependencies,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.sbom", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CycloneDX JSON file to write")

    def command(args: argparse.Namespace) -> int:
        sbom = build_sbom()
        write_bytes_atomic(Path(args.out), json.dumps(sbom, indent=1).encode("utf-8"))
        print(f"wrote {args.out}: {len(sbom['components'])} components")
        return 0

    parser.set_defaults(func=command)
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
