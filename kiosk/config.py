"""One typed configuration for the kiosk.

Three layers, later ones win: the defaults below (they run on a laptop with no file at all), a
TOML file (`--config FILE`, else /etc/skinscan/kiosk.toml when it exists), and environment
variables `SKINSCAN_<KEY>` (`SKINSCAN_MQTT_<KEY>` for the [mqtt] table). The standard
FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST switch sync to local emulators, with no
credentials needed.

Secrets (the MQTT password, the admin PIN) are marked so that `public_view()` never shows them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from kiosk.errors import SkinscanError

SYSTEM_CONFIG = Path("/etc/skinscan/kiosk.toml")
ENV_PREFIX = "SKINSCAN_"
FIRESTORE_EMULATOR_ENV = "FIRESTORE_EMULATOR_HOST"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_SECRET = {"secret": True}
_KIOSK_ID_FILE = "kiosk_id"
T = TypeVar("T")
KIOSK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(SkinscanError):
    """The configuration file or an override is unreadable or has a wrong value."""


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "skinscan"


@dataclass(frozen=True)
class MqttConfig:
    """Fleet telemetry. No host means telemetry is off."""

    host: str | None = None
    port: int = 1883
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, metadata=_SECRET)
    topic_prefix: str = "skinscan"
    discovery: bool = False  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    keepalive_s: int = 30

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class KioskConfig:
    data_dir: Path = field(default_factory=_default_data_dir)
    # Empty: made once from a UUID and kept in data_dir/kiosk_id (see resolve_kiosk_id).
    kiosk_id: str = ""
    firebase_project: str = "demo-skinscan"
    firebase_bucket: str = "demo-skinscan.appspot.com"
    credentials: Path | None = None  # service-account JSON; must be 0600
    # The kiosk's own Firebase Auth identity (kiosk.cases.identity; 0600): Firestore then
    # applies cloud/firestore.rules to it. Empty: Firestore through the service account.
    identity: Path | None = None
    firestore_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    # Model: a metadata JSON; empty means the installed release in data_dir/models, else the
    # model shipped with the package.
    model: Path | None = None
    # Ed25519 public key (base64 of the 32 raw bytes) that model releases must be signed with.
    # Empty: model updates are refused.
    model_public_key: str = ""
    # Ed25519 public key (base64) of the review console: a review or a dermatologist's message
    # is shown as the specialist's only when it carries a valid signature by this key.
    # Empty: nothing from the cloud is shown as a specialist's (all of it is kept aside).
    review_public_key: str = ""
    retention_days: int = 30  # local image kept this long after a confirmed upload
    min_free_mb: int = 200  # refuse new cases below this much free space in data_dir
    sync_interval_s: float = 30.0  # between passes while online (each writes the heartbeat)
    sync_concurrency: int = 4  # images on the wire at most (fewer on a slow link)
    connect_timeout_s: float = 5.0
    # After the link drops, probe it (a TCP connect) soon and then at most this far apart,
    # and send the moment a probe gets through.
    link_probe_interval_s: float = 3.0
    language: str = "en"
    camera: str = "auto"  # auto | picamera2 | opencv:N | replay:PATH
    admin_pin: str = field(default="2468", metadata=_SECRET)
    fullscreen: bool = True
    mqtt: MqttConfig = field(default_factory=MqttConfig)

    @property
    def cases_db(self) -> Path:
        return self.data_dir / "cases.sqlite3"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def uses_emulators(self) -> bool:
        return bool(self.firestore_emulator_host or self.storage_emulator_host)

    def public_view(self) -> dict[str, Any]:
        """The settings as plain data with secrets replaced, for `kiosk status` and logs."""
        return _public(self)


def _public(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("secret"):
            out[f.name] = "***" if value else None
        elif dataclasses.is_dataclass(value):
            out[f.name] = _public(value)
        elif isinstance(value, Path):
            out[f.name] = str(value)
        else:
            out[f.name] = value
    return out


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> KioskConfig:
    """Defaults, then the TOML file, then the environment. `path=None` reads
    /etc/skinscan/kiosk.toml when present; a named file that is missing is an error."""
    config = load_layered(KioskConfig, path, SYSTEM_CONFIG, environ, ENV_PREFIX)
    _validate(config)
    return config


def load_layered(
    cls: type[T],
    path: str | Path | None,
    system_file: Path,
    environ: Mapping[str, str] | None,
    env_prefix: str,
) -> T:
    """A settings dataclass from its defaults, a TOML file (`path`, else `system_file` when it
    exists) and environment variables `<env_prefix><FIELD>` (`<env_prefix><TABLE>_<FIELD>` for
    a nested table). Fields named like the emulator variables take those. Shared by the kiosk
    and the cloud side, so both read settings the same way."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_toml(Path(path))
    elif system_file.is_file():
        values = _read_toml(system_file)
    config = _with_env(_build(cls, values, ""), env, env_prefix)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    emulators = {
        name: env.get(variable) or getattr(config, name)
        for name, variable in (
            ("firestore_emulator_host", FIRESTORE_EMULATOR_ENV),
            ("storage_emulator_host", STORAGE_EMULATOR_ENV),
        )
        if name in names
    }
    return dataclasses.replace(config, **emulators)  # type: ignore[type-var]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(f"config file not readable (permissions): {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.start} cannot be decoded); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from None


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(where + u for u in unknown)}")
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"[{where}{name}] must be a table")
            kwargs[name] = _build(kind, raw, f"{where}{name}.")
        else:
            kwargs[name] = _coerce(raw, kind, where + name)
    return cls(**kwargs)


def _with_env(config: Any, env: Mapping[str, str], prefix: str) -> Any:
    hints = get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            changes[f.name] = _with_env(getattr(config, f.name), env, f"{prefix}{f.name.upper()}_")
            continue
        raw = env.get(prefix + f.name.upper())
        if raw is not None:
            changes[f.name] = _coerce(raw, kind, prefix + f.name.upper())
    return dataclasses.replace(config, **changes)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(raw: Any, kind: Any, name: str) -> Any:
    """A TOML value or an environment string as the field's type; a clear error if it is not."""
    optional = False
    if get_origin(kind) in (Union, types.UnionType):
        args = [a for a in get_args(kind) if a is not type(None)]
        optional = len(args) < len(get_args(kind))
        kind = args[0]
    if optional and (raw is None or raw == ""):
        return None
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            # TOML gives int (or a float like 3.0); the environment gives text.
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError("expected a whole number")
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError("expected a whole number")
            text = str(raw).strip() if isinstance(raw, str) else raw
            if isinstance(text, str) and not re.fullmatch(r"[+-]?\d+", text):
                raise ValueError("expected a whole number")
            return int(text)
        if kind is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError("expected a number")
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if kind is Path:
            if not isinstance(raw, str):
                raise ValueError("expected a path")
            if not raw.strip():
                raise ValueError("expected a path, not an empty value")
            return Path(raw).expanduser()
        if kind is str:
            if not isinstance(raw, (str, int)) or isinstance(raw, bool):
                raise ValueError("expected text")
            return str(raw)
    except (ValueError, TypeError) as e:
        message = str(e) if str(e).startswith("expected") else "expected a number"
        raise ConfigError(f"{name}: {message}, got {raw!r}") from None
    raise ConfigError(f"{name}: unsupported setting type {kind!r}")  # pragma: no cover


def _validate(config: KioskConfig) -> None:
    def positive(name: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")

    positive("retention_days", config.retention_days)
    positive("sync_interval_s", config.sync_interval_s)
    positive("sync_concurrency", config.sync_concurrency)
    positive("connect_timeout_s", config.connect_timeout_s)
    positive("link_probe_interval_s", config.link_probe_interval_s)
    if config.min_free_mb < 0:
        raise ConfigError(f"min_free_mb must not be negative, got {config.min_free_mb}")
    if config.kiosk_id and not KIOSK_ID_PATTERN.match(config.kiosk_id):
        raise ConfigError(
            f"kiosk_id {config.kiosk_id!r}: use 1-63 letters, digits, '.', '_' or '-'"
        )
    if not (1 <= config.mqtt.port <= 65535):
        raise ConfigError(f"mqtt.port must be 1-65535, got {config.mqtt.port}")
    if not config.admin_pin.isdigit() or not 4 <= len(config.admin_pin) <= 8:
        raise ConfigError("admin_pin must be 4 to 8 digits")
    languages = available_languages()
    if config.language not in languages:
        raise ConfigError(
            f"language {config.language!r} is not available; use one of {', '.join(languages)}"
        )
    camera_problem = camera_spec_problem(config.camera)
    if camera_problem:
        raise ConfigError(f"camera {config.camera!r}: {camera_problem}")
    if config.storage_emulator_host and "://" not in config.storage_emulator_host:
        raise ConfigError(
            f"STORAGE_EMULATOR_HOST needs a scheme, e.g. http://{config.storage_emulator_host}"
        )


def available_languages() -> tuple[str, ...]:
    """The languages the touchscreen can be set to, English first: `kiosk.ui.i18n.ui_languages()`,
    the languages with a strings file (kiosk/ui/strings/<code>.json) and advice texts, so a new
    language needs no change here."""
    # Imported here, not at the top: kiosk.ui.i18n pulls in the triage code (numpy), which the
    # cloud side, reading its settings through this module, has no use for. No cycle either way:
    # nothing under kiosk.ui.i18n imports kiosk.config.
    from kiosk.ui.i18n import ui_languages

    return ui_languages()


def camera_spec_problem(spec: str) -> str | None:
    """Why a camera setting cannot name a source (None when it can): auto | picamera2 |
    demo | opencv:INDEX_OR_PATH | replay:PATH."""
    # The same reading as kiosk.live.camera.open_source: case and surrounding spaces do not
    # matter, and a bare "opencv" is the first webcam.
    kind, sep, target = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("auto", "picamera2", "demo"):
        return None if not sep else f"{kind} takes no ':' part"
    if kind == "opencv":
        return None if not sep or target.strip() else "opencv: needs a device index or a path"
    if kind == "replay":
        return None if target.strip() else "replay: needs a path after ':'"
    return "use auto, picamera2, demo, opencv[:INDEX_OR_PATH] or replay:PATH"


def resolve_kiosk_id(config: KioskConfig) -> KioskConfig:
    """The configured kiosk id, else the one this kiosk made for itself on first start (kept in
    data_dir so it survives restarts; a UUID so two kiosks never share one)."""
    if config.kiosk_id:
        return config
    from kiosk.files import atomic_write_bytes

    path = config.data_dir / _KIOSK_ID_FILE
    try:
        kiosk_id = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kiosk_id = ""
    if not KIOSK_ID_PATTERN.match(kiosk_id):
        kiosk_id = f"kiosk-{uuid.uuid4().hex[:12]}"
        config.data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (kiosk_id + "\n").encode())
    return dataclasses.replace(config, kiosk_id=kiosk_id)
