"""Connecting to Firebase (Firestore + Cloud Storage) through firebase-admin.

Against the emulators (FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST) no credentials are
needed: firebase-admin still insists on one, so Google's anonymous credential is given. Against
real Firebase the service-account file from the config is used, and refused when anyone but
its owner can read it: it is the key to every patient image of the programme.
"""

from __future__ import annotations

import os
import socket
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from kiosk.config import FIRESTORE_EMULATOR_ENV, STORAGE_EMULATOR_ENV
from kiosk.errors import SkinscanError

if TYPE_CHECKING:
    from google.cloud.firestore import Client as FirestoreClient
    from google.cloud.storage import Bucket

    from kiosk.config import KioskConfig

FIRESTORE_HOST = ("firestore.googleapis.com", 443)
STORAGE_HOST = ("storage.googleapis.com", 443)


class CredentialsError(SkinscanError):
    """The service-account file is missing, unreadable or not private."""


class OfflineError(SkinscanError):
    """Firebase cannot be reached now; the message says which endpoint."""


class LinkDownError(OfflineError):
    """The network itself failed (refused, reset, timed out), as opposed to a server that
    answered with an error: sync probes for the link's return instead of backing off."""


def check_credentials_file(path: Path | None) -> Path:
    if path is None:
        raise CredentialsError(
            "no credentials configured: set `credentials` (SKINSCAN_CREDENTIALS) to the "
            "service-account JSON, or point FIRESTORE_EMULATOR_HOST/STORAGE_EMULATOR_HOST at "
            "emulators"
        )
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialsError(f"credentials file not found: {path}") from None
    except PermissionError:
        raise CredentialsError(f"credentials file not readable: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"credentials path is not a regular file: {path}")
    if st.st_mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    return path


def endpoints(config: KioskConfig) -> list[tuple[str, int]]:
    """The (host, port) pairs sync needs, for a quick reachability probe."""
    out: list[tuple[str, int]] = []
    if config.firestore_emulator_host:
        host, _, port = config.firestore_emulator_host.rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    else:
        out.append(FIRESTORE_HOST)
    if config.storage_emulator_host:
        parts = urlsplit(config.storage_emulator_host)
        out.append((parts.hostname or "127.0.0.1", parts.port or 80))
    else:
        out.append(STORAGE_HOST)
    return out


def probe(config: KioskConfig) -> None:
    """Raise OfflineError unless every endpoint accepts a TCP connection within the timeout.
    The Google clients retry a refused connection for up to two minutes; this answers in
    seconds, so an offline kiosk never sits in those retries."""
    for host, port in endpoints(config):
        try:
            with socket.create_connection((host, port), timeout=config.connect_timeout_s):
                pass
        except OSError as e:
            raise LinkDownError(f"cannot reach {host}:{port} ({e.strerror or e})") from None


@dataclass
class FirebaseClients:
    app: Any  # firebase_admin.App
    db: FirestoreClient
    bucket: Bucket
    own_db: bool = False  # db is the kiosk-identity client, not the app's (close it too)

    def close(self) -> None:
        import firebase_admin

        if self.own_db:
            self.db.close()
        firebase_admin.delete_app(self.app)


class FirebaseSettings(Protocol):
    """What connecting needs; the kiosk's and the cloud side's configs both have it."""

    firebase_project: str
    firebase_bucket: str
    credentials: Path | None
    firestore_emulator_host: str | None
    storage_emulator_host: str | None

    @property
    def uses_emulators(self) -> bool: ...


def connect(
    config: FirebaseSettings,
    name: str | None = None,
    allow_default_credentials: bool = False,
) -> FirebaseClients:
    """A new named firebase-admin app. `allow_default_credentials`: with no credentials file,
    use the machine's application-default credentials (a cloud server on GCP); a kiosk never
    has those and must name its file."""
    import firebase_admin
    from firebase_admin import credentials, firestore, storage

    credential: Any
    if config.uses_emulators:
        # The Google client libraries read these from the environment, not from options.
        if config.firestore_emulator_host:
            os.environ[FIRESTORE_EMULATOR_ENV] = config.firestore_emulator_host
        if config.storage_emulator_host:
            os.environ[STORAGE_EMULATOR_ENV] = config.storage_emulator_host
        from google.auth.credentials import AnonymousCredentials

        # The emulators accept anything; firebase-admin still insists on a credential.
        credential = AnonymousCredentials()
    elif config.credentials is None and allow_default_credentials:
        credential = credentials.ApplicationDefault()
    else:
        credential = credentials.Certificate(str(check_credentials_file(config.credentials)))
    # A named app per connection, so reconnects and tests never trip over a stale default app.
    app = firebase_admin.initialize_app(
        credential,
        {"projectId": config.firebase_project, "storageBucket": config.firebase_bucket},
        name=name or f"skinscan-{uuid.uuid4().hex[:8]}",
    )
    try:
        bucket = storage.bucket(app=app)
        if getattr(config, "identity", None) is None:
            return FirebaseClients(app=app, db=firestore.client(app), bucket=bucket)
        return FirebaseClients(app=app, db=_kiosk_firestore(config), bucket=bucket, own_db=True)
    except Exception:
        firebase_admin.delete_app(app)
        raise


def _kiosk_firestore(config: FirebaseSettings) -> FirestoreClient:
    """Firestore as the kiosk's own Auth user, under security rules (kiosk.cases.identity)."""
    from kiosk.cases.identity import KioskIdentity, firestore_client

    identity = KioskIdentity.load(Path(config.identity))  # type: ignore[attr-defined]
    kiosk_id = getattr(config, "kiosk_id", "")
    if kiosk_id and identity.kiosk_id != kiosk_id:
        raise CredentialsError(
            f"the identity file is for kiosk {identity.kiosk_id!r}, this kiosk is {kiosk_id!r}"
        )
    return firestore_client(identity, config.firebase_project)
