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


# ------------------------------------------------- every bad setting is one line (issue 12)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("retention_days = [1, 2]\n", {}, r"retention_days: expected a whole number, got \[1, 2\]"),
        ("min_free_mb = {a = 1}\n", {}, r"min_free_mb: expected a whole number, got \{'a': 1\}"),
        ("sync_interval_s = [1.0]\n", {}, r"sync_interval_s: expected a number, got \[1.0\]"),
        ("sync_interval_s = nan\n", {}, "sync_interval_s: expected a finite number"),
        ("connect_timeout_s = inf\n", {}, "connect_timeout_s: expected a finite number"),
        ('language = "klingon"\n', {}, "language 'klingon' is not available; use one of en, "),
        ('camera = "bogus:9"\n', {}, "camera 'bogus:9': use auto, picamera2, demo, opencv"),
        ('camera = "replay:"\n', {}, "camera 'replay:': replay: needs a path after ':'"),
        ("", {"SKINSCAN_DATA_DIR": ""}, "SKINSCAN_DATA_DIR: expected a path, not an empty value"),
        ("", {"SKINSCAN_RETENTION_DAYS": "abc"}, "SKINSCAN_RETENTION_DAYS: expected a whole n"),
        ("", {"SKINSCAN_SYNC_INTERVAL_S": "nan"}, "SKINSCAN_SYNC_INTERVAL_S: expected a finite"),
    ],
)
def test_every_bad_setting_names_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, env: dict, message: str
) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ=env)


def test_a_config_file_that_is_not_utf8_or_is_a_directory_is_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('language = "fr" # réglé\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(latin1, environ={})
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        load_config(tmp_path, environ={})


def _strings_files() -> set[str]:
    from importlib import resources

    files = resources.files("kiosk.ui").joinpath("strings")
    return {f.name.removesuffix(".json") for f in files.iterdir() if f.name.endswith(".json")}


def test_the_config_accepts_exactly_the_languages_that_have_strings_files() -> None:
    shipped = _strings_files()
    assert {"en", "fr", "ar"} <= shipped
    for language in sorted(shipped):
        assert load_config(None, environ={"SKINSCAN_LANGUAGE": language}).language == language
    for language in ("de", "EN", "fr-CA", ""):
        with pytest.raises(ConfigError) as refused:
            load_config(None, environ={"SKINSCAN_LANGUAGE": language})
        message = str(refused.value)
        assert "\n" not in message
        listed = message.partition("; use one of ")[2]
        assert listed.startswith("en, ") and set(listed.split(", ")) == shipped, message


def test_a_language_the_ui_gains_is_accepted_with_no_change_to_the_config(monkeypatch) -> None:
    # As if kiosk/ui/strings/de.json (and German advice texts) had been added.
    from types import MappingProxyType

    from kiosk.live import triage
    from kiosk.ui import i18n

    tables, advice = i18n._tables(), triage.languages()
    monkeypatch.setattr(i18n, "_tables", lambda: MappingProxyType({**tables, "de": tables["en"]}))
    monkeypatch.setattr(triage, "languages", lambda: (*advice, "de"))
    assert load_config(None, environ={"SKINSCAN_LANGUAGE": "de"}).language == "de"
    with pytest.raises(ConfigError, match=r"use one of en, ar, de, fr$"):
        load_config(None, environ={"SKINSCAN_LANGUAGE": "nl"})


@pytest.mark.parametrize("camera", ["opencv", "Auto", " demo", "opencv:0", "replay:/clips/a.avi"])
def test_camera_settings_the_camera_accepts_are_accepted(tmp_path: Path, camera: str) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f"camera = {camera!r}\n".replace("'", '"'))
    assert load_config(path, environ={}).camera == camera
