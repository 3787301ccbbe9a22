"""The cloud side's deployment files (cloud/deploy/): the worker and console units pass
`systemd-analyze verify` silently and stay hardened, and the config template loads and agrees
with the units about the state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import load_cloud_config
from tests.systemd_helpers import exposure, install_root, settings, verify

DEPLOY = Path(__file__).resolve().parents[2] / "cloud" / "deploy"
UNITS = ("skinscan-cloud-worker@.service", "skinscan-console.service")
# What `systemctl enable` names: the template with an instance.
ENABLED = {"skinscan-cloud-worker@.service": "skinscan-cloud-worker@1.service"}
PROGRAM = "/opt/skinscan-cloud/venv/bin/skinscan-cloud"
STATE_DIR = "/var/lib/skinscan-cloud"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return install_root(
        tmp_path_factory.mktemp("root"), [DEPLOY / unit for unit in UNITS], [PROGRAM]
    )


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_says_nothing(root, unit):
    result = verify(root, ENABLED.get(unit, unit))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_exposure_stays_low(root, unit):
    assert exposure(root, ENABLED.get(unit, unit)) <= 3.0


@pytest.mark.parametrize(("unit", "command"), list(zip(UNITS, ("worker", "review"), strict=True)))
def test_units_run_the_cloud_command_as_its_own_user(unit, command):
    s = settings(DEPLOY / unit)
    assert s["ExecStart"] == [f"{PROGRAM} {command}"]
    assert s["User"] == ["skinscan-cloud"] and s["Restart"] == ["always"]
    assert s["ProtectSystem"] == ["strict"] and s["ReadWritePaths"] == [STATE_DIR]
    assert s["NoNewPrivileges"] == ["true"] and s["PrivateTmp"] == ["true"]


def test_config_template_loads_and_keeps_state_where_the_units_may_write():
    config = load_cloud_config(DEPLOY / "cloud.toml", environ={})
    assert config.state_dir == Path(STATE_DIR)
    assert config.users_file.parent == Path(STATE_DIR)
    assert config.host == "127.0.0.1" and config.secure_cookies is True
    assert not config.uses_emulators
