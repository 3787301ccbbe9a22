"""The systemd units: `systemd-analyze verify` finds nothing (any output is a failure: it exits 0
on unknown keys and bad values), the hardening score stays good, and the units agree with
setup.sh about paths and with the kiosk about the watchdog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.systemd_helpers import exposure, install_root, settings, verify

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
UNITS = ("skinscan-kiosk.service",)
APP_DIR = "/opt/skinscan"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return install_root(
        tmp_path_factory.mktemp("root"),
        [UNIT_DIR / unit for unit in UNITS],
        [f"{APP_DIR}/venv/bin/kiosk"],
    )


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_says_nothing(root, unit):
    result = verify(root, unit)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_verify_would_catch_a_mistake(root, tmp_path):
    """The check above can fail: a misspelt key and a missing program are reported."""
    broken = root / "etc/systemd/system/skinscan-broken.service"
    text = (UNIT_DIR / "skinscan-kiosk.service").read_text()
    broken.write_text(
        text.replace("WatchdogSec=", "WatchdogSecs=").replace("venv/bin/kiosk", "venv/bin/nope")
    )
    try:
        out = verify(root, broken.name)
    finally:
        broken.unlink()
    report = out.stdout + out.stderr
    assert "WatchdogSecs" in report and "venv/bin/nope" in report


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_exposure_stays_low(root, unit):
    assert exposure(root, unit) <= 3.0


def test_kiosk_unit_is_a_watched_notify_service_on_kms():
    s = settings(UNIT_DIR / "skinscan-kiosk.service")
    assert s["Type"] == ["notify"] and s["Restart"] == ["always"]
    assert int(s["WatchdogSec"][0]) >= 10  # longer than a camera reconnect's backoff
    assert s["User"] == ["skinscan"]
    assert set(s["SupplementaryGroups"][0].split()) == {"video", "input", "render"}
    assert "SDL_VIDEODRIVER=kmsdrm" in s["Environment"]
    assert s["ExecStart"][0].split()[:2] == [f"{APP_DIR}/venv/bin/kiosk", "run"]


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_basics(unit):
    s = settings(UNIT_DIR / unit)
    assert s["ProtectSystem"] == ["strict"]
    assert s["ReadWritePaths"] == ["/var/lib/skinscan"]
    assert s["PrivateTmp"] == ["true"] and s["NoNewPrivileges"] == ["true"]
    assert s["User"] == ["skinscan"] and s["WantedBy"] == ["multi-user.target"]
    assert "ProcSubset" not in s, "LiteRT reads /proc/cpuinfo"


def test_setup_sh_installs_exactly_these_units_at_these_paths():
    text = (REPO / "setup.sh").read_text()
    assert f"APP_DIR={APP_DIR}\n" in text
    assert "STATE_DIR=/var/lib/skinscan\n" in text
    listed = re.search(r"^UNITS=\(([^)]*)\)", text, re.M)
    assert listed and set(listed.group(1).split()) == set(UNITS)
    assert {p.name for p in UNIT_DIR.glob("*.service")} == set(UNITS)
