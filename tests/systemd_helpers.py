"""Checking unit files with the real `systemd-analyze`, offline, in a scratch root: shared by
the kiosk's units (tests/fleet/test_systemd_units.py) and the cloud's
(tests/cloud/test_cloud_units.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEM_UNITS = next(
    (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
    None,
)


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None or SYSTEM_UNITS is None:
        pytest.fail("systemd-analyze is missing: ./setup.sh test installs systemd", pytrace=False)
    return path


def install_root(root: Path, units: list[Path], executables: list[str]) -> Path:
    """A file-system root with the units installed as an operator installs them: the system's
    own units (sysinit.target and friends) and an executable at each ExecStart path, which
    verify checks."""
    shutil.copytree(SYSTEM_UNITS or "/nonexistent", root / "usr/lib/systemd/system", symlinks=True)
    for executable in executables:
        program = root / executable.lstrip("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", "--man=no", "--generators=no", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )


def exposure(root: Path, unit: str) -> float:
    """`systemd-analyze security`'s overall exposure (0 safest, 10 most exposed)."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def settings(unit: Path) -> dict[str, list[str]]:
    """Key → values of a unit file (keys may repeat, e.g. Environment=)."""
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out
