"""Settings for the cloud side (worker, review console, model release), in one typed dataclass.

Three layers, later ones win: the defaults below, a TOML file (`--config FILE`, else
/etc/skinscan/cloud.toml when it exists) and environment variables `SKINSCAN_CLOUD_<KEY>`. The
standard FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST variables switch to local emulators
with no credentials.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from kiosk.config import FIRESTORE_EMULATOR_ENV, STORAGE_EMULATOR_ENV
from kiosk.errors import SkinscanError

SYSTEM_CONFIG = Path("/etc/skinscan/cloud.toml")
ENV_PREFIX = "SKINSCAN_CLOUD_"


class CloudConfigError(SkinscanError):
    """The cloud configuration file or an override is unreadable or has a wrong value."""


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "skinscan-cloud"


def _default_worker_id() -> str:
    # Host and pid: unique among workers running at once, and readable in a lease.
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class CloudConfig:
    firebase_project: str = "demo-skinscan"
    firebase_bucket: str = "demo-skinscan.appspot.com"
    credentials: Path | None = None  # service-account JSON; must be 0600
    firestore_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    # Holds the staff accounts file and the console's session secret (both 0600).
    state_dir: Path = field(default_factory=_default_state_dir)
    # Worker: the float model's metadata JSON (empty: the model shipped with the package).
    model: Path | None = None
    worker_id: str = field(default_factory=_default_worker_id)
    lease_s: float = 120.0  # a claimed case is another worker's after this long
    catch_up_interval_s: float = 30.0  # also how soon an expired lease is noticed
    threads: int = 2
    # Console.
    host: str = "127.0.0.1"
    port: int = 8080
    session_hours: float = 8.0
    # Session cookies are Secure (HTTPS only) unless the console listens on loopback; set true
    # behind a TLS reverse proxy on the same host.
    secure_cookies: bool | None = None
    login_attempts: int = 5  # failed logins allowed per account and per address ...
    login_window_s: float = 900.0  # ... within this many seconds
    # Model release: the Ed25519 private key (PEM, must be 0600).
    signing_key: Path | None = None

    @property
    def uses_emulators(self) -> bool:
        return bool(self.firestore_emulator_host or self.storage_emulator_host)

    @property
    def users_file(self) -> Path:
        return self.state_dir / "staff.json"

    @property
    def secret_key_file(self) -> Path:
        return self.state_dir / "session.key"


def load_cloud_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> CloudConfig:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_toml(Path(path))
    elif SYSTEM_CONFIG.is_file():
        values = _read_toml(SYSTEM_CONFIG)
    hints = get_type_hints(CloudConfig)
    names = {f.name for f in dataclasses.fields(CloudConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CloudConfigError(f"unknown setting(s) {', '.join(unknown)}")
    kwargs = {name: _coerce(raw, hints[name], name) for name, raw in values.items()}
    for name in names:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            kwargs[name] = _coerce(raw, hints[name], ENV_PREFIX + name.upper())
    kwargs["firestore_emulator_host"] = env.get(FIRESTORE_EMULATOR_ENV) or kwargs.get(
        "firestore_emulator_host"
    )
    kwargs["storage_emulator_host"] = env.get(STORAGE_EMULATOR_ENV) or kwargs.get(
        "storage_emulator_host"
    )
    config = CloudConfig(**kwargs)
    _validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CloudConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise CloudConfigError(f"{path}: not valid TOML: {e}") from None


def _coerce(raw: Any, kind: Any, name: str) -> Any:
    if get_origin(kind) in (Union, types.UnionType):
        args = [a for a in get_args(kind) if a is not type(None)]
        if raw is None or raw == "":
            return None
        kind = args[0]
    try:
        if kind is bool:
            text = str(raw).strip().lower()
            if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError("expected true or false")
            return text in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(str(raw)).expanduser()
        if kind is str:
            return str(raw)
    except ValueError as e:
        raise CloudConfigError(f"{name}: {e}, got {raw!r}") from None
    raise CloudConfigError(f"{name}: unsupported setting type {kind!r}")  # pragma: no cover


def _validate(config: CloudConfig) -> None:
    for name in ("lease_s", "catch_up_interval_s", "session_hours", "login_window_s"):
        if getattr(config, name) <= 0:
            raise CloudConfigError(f"{name} must be positive, got {getattr(config, name)}")
    if config.threads < 1 or config.login_attempts < 1:
        raise CloudConfigError("threads and login_attempts must be at least 1")
    if not 0 < config.port < 65536:
        raise CloudConfigError(f"port must be 1-65535, got {config.port}")
    if config.storage_emulator_host and "://" not in config.storage_emulator_host:
        raise CloudConfigError(
            f"STORAGE_EMULATOR_HOST needs a scheme, e.g. http://{config.storage_emulator_host}"
        )
