"""Cloud settings: defaults, TOML, environment overrides, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.config import CloudConfigError, load_cloud_config


def test_toml_then_environment_override_the_defaults(tmp_path: Path):
    toml = tmp_path / "cloud.toml"
    toml.write_text('lease_s = 30\nport = 9000\nsigning_key = "~/keys/release.pem"\n')
    config = load_cloud_config(
        toml,
        environ={
            "SKINSCAN_CLOUD_PORT": "9100",
            "SKINSCAN_CLOUD_SECURE_COOKIES": "true",
            "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681",
        },
    )
    assert config.lease_s == 30 and config.port == 9100
    assert config.secure_cookies is True
    assert config.signing_key == Path("~/keys/release.pem").expanduser()
    assert config.uses_emulators and config.firestore_emulator_host == "127.0.0.1:8681"
    assert load_cloud_config(toml, environ={}).secure_cookies is None  # auto


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("leese_s = 3\n", {}, "unknown setting"),
        ("", {"SKINSCAN_CLOUD_LEASE_S": "soon"}, "SKINSCAN_CLOUD_LEASE_S"),
        ("", {"SKINSCAN_CLOUD_LEASE_S": "0"}, "lease_s must be positive"),
        ("", {"SKINSCAN_CLOUD_SECURE_COOKIES": "maybe"}, "true or false"),
        ("", {"STORAGE_EMULATOR_HOST": "127.0.0.1:9023"}, "needs a scheme"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, env: dict, message: str):
    toml = tmp_path / "cloud.toml"
    toml.write_text(text)
    with pytest.raises(CloudConfigError, match=message):
        load_cloud_config(toml, environ=env)


def test_the_cli_reports_a_bad_setting_in_one_line_with_status_2():
    cli = Path(sys.executable).with_name("skinscan-cloud")
    result = subprocess.run(
        [str(cli), "worker", "--once"],
        capture_output=True,
        text=True,
        env={**os.environ, "SKINSCAN_CLOUD_LEASE_S": "soon"},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("skinscan-cloud: error: SKINSCAN_CLOUD_LEASE_S")
    assert "Traceback" not in result.stderr
