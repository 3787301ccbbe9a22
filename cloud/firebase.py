"""The cloud side's Firebase connection: the kiosk's (kiosk.cases.firebase), with the server's
application-default credentials allowed when no service-account file is configured."""

from __future__ import annotations

from cloud.config import CloudConfig
from kiosk.cases.firebase import FirebaseClients as Firebase
from kiosk.cases.firebase import connect as _connect

__all__ = ["Firebase", "close", "connect"]


def connect(config: CloudConfig, name: str | None = None) -> Firebase:
    """A new named firebase-admin app for `config` (several may live in one process)."""
    return _connect(config, name=name, allow_default_credentials=True)


def close(fb: Firebase) -> None:
    fb.close()
