"""Settings for the cloud side (worker, review console, model release), in one typed dataclass.

Three layers, later ones win: the defaults below, a TOML file (`--config FILE`, else
/etc/skinscan/cloud.toml when it exists) and environment variables `SKINSCAN_CLOUD_<KEY>`. The
standard FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST variables switch to local emulators
with no credentials.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiosk.config import ConfigError, load_layered

SYSTEM_CONFIG = Path("/etc/skinscan/cloud.toml")
ENV_PREFIX = "SKINSCAN_CLOUD_"


# The same error as the kiosk's: both sides read settings through kiosk.config.load_layered.
CloudConfigError = ConfigError


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
    # A claimed case is another worker's this long after its worker's last renewal (a live
    # worker renews every third of it): a dead worker's case waits at most lease_s plus
    # catch_up_interval_s, under a minute.
    lease_s: float = 30.0
    catch_up_interval_s: float = 20.0  # also how soon an expired lease is noticed
    threads: int = 2
    # Console.
    host: str = "127.0.0.1"
    port: int = 8080
    session_hours: float = 8.0
    # Session cookies are Secure (HTTPS only) unless the console listens on loopback; set true
    # behind a TLS reverse proxy on the same host.
    secure_cookies: bool | None = None
    login_attempts: int = 5  # failed logins allowed per account ...
    login_window_s: float = 900.0  # ... within this many seconds
    login_attempts_per_address: int = 20  # failed logins allowed per client address
    # Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed. The
    # default trusts only this host (the documented TLS proxy on the same host; a console on
    # loopback can only be reached from here anyway), so login limits count real client
    # addresses instead of one shared 127.0.0.1. Empty: the peer address is always the client.
    trusted_proxies: str = "127.0.0.1,::1"
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

    @property
    def review_key_file(self) -> Path:
        """The Ed25519 key that signs reviews and messages (kiosks: `review_public_key`)."""
        return self.state_dir / "review_signing.key"

    @property
    def trusted_proxy_addresses(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.trusted_proxies.split(",") if a.strip())


def load_cloud_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> CloudConfig:
    config = load_layered(CloudConfig, path, SYSTEM_CONFIG, environ, ENV_PREFIX)
    _validate(config)
    return config


def _validate(config: CloudConfig) -> None:
    for name in ("lease_s", "catch_up_interval_s", "session_hours", "login_window_s"):
        if getattr(config, name) <= 0:
            raise CloudConfigError(f"{name} must be positive, got {getattr(config, name)}")
    if config.threads < 1 or config.login_attempts < 1 or config.login_attempts_per_address < 1:
        raise CloudConfigError(
            "threads, login_attempts and login_attempts_per_address must be at least 1"
        )
    for address in config.trusted_proxy_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise CloudConfigError(f"trusted_proxies: {address!r} is not an IP address") from None
    if not 0 < config.port < 65536:
        raise CloudConfigError(f"port must be 1-65535, got {config.port}")
    if config.storage_emulator_host and "://" not in config.storage_emulator_host:
        raise CloudConfigError(
            f"STORAGE_EMULATOR_HOST needs a scheme, e.g. http://{config.storage_emulator_host}"
        )
