"""Configuration: defaults, TOML file, environment overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.config import ConfigError, KioskConfig, load_config, resolve_kiosk_id


def test_defaults_need_no_file(tmp_path: Path) -> None:
    config = load_config(None, environ={"XDG_DATA_HOME": str(tmp_path)})
    assert isinstance(config, KioskConfig)
    assert config.firebase_project.startswith("demo-")
    assert not config.mqtt.enabled
    assert config.firestore_emulator_host is None


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        'data_dir = "/var/lib/skinscan"\n'
        'kiosk_id = "clinic-7"\n'
        "retention_days = 14\n"
        "[mqtt]\n"
        'host = "broker.local"\n'
        "port = 8883\n"
        "tls = true\n"
        'password = "s3cret"\n'
    )
    env = {
        "SKINSCAN_KIOSK_ID": "clinic-8",
        "SKINSCAN_MQTT_PORT": "1884",
        "SKINSCAN_FIREBASE_BUCKET": "b.appspot.com",
        "SKINSCAN_CREDENTIALS": "~/sa.json",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080",
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023",
    }
    config = load_config(path, environ=env)
    assert config.data_dir == Path("/var/lib/skinscan")
    assert config.kiosk_id == "clinic-8"
    assert config.retention_days == 14
    assert config.mqtt.host == "broker.local"
    assert config.mqtt.port == 1884
    assert config.mqtt.tls is True
    assert config.firebase_bucket == "b.appspot.com"
    assert config.credentials == Path("~/sa.json").expanduser()
    assert config.uses_emulators
    view = config.public_view()
    assert view["mqtt"]["password"] == "***"
    assert view["admin_pin"] == "***"
    assert "s3cret" not in repr(view)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("retention_days = 'soon'\n", {}, "retention_days"),
        ("colour = 'blue'\n", {}, "unknown setting"),
        ("[mqtt]\nport = 70000\n", {}, "mqtt.port"),
        ("", {"SKINSCAN_MQTT_TLS": "maybe"}, "SKINSCAN_MQTT_TLS"),
        ("", {"SKINSCAN_KIOSK_ID": "bad id!"}, "kiosk_id"),
        ("", {"STORAGE_EMULATOR_HOST": "127.0.0.1:9023"}, "needs a scheme"),
        ("admin_pin = '12'\n", {}, "admin_pin"),
        ("this is = not toml\n", {}, "not valid TOML"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, text: str, env: dict, message: str) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ=env)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_kiosk_id_is_made_once_and_kept(tmp_path: Path) -> None:
    config = KioskConfig(data_dir=tmp_path)
    first = resolve_kiosk_id(config)
    second = resolve_kiosk_id(config)
    assert first.kiosk_id.startswith("kiosk-")
    assert first.kiosk_id == second.kiosk_id
    assert resolve_kiosk_id(KioskConfig(data_dir=tmp_path, kiosk_id="x1")).kiosk_id == "x1"
