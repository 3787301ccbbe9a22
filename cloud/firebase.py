"""One firebase-admin app for the cloud side, and its Firestore client and Storage bucket.

Against the local emulators (FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST) no real
credentials exist, so the app gets anonymous ones; firebase-admin would otherwise fail at the
first call looking for application-default credentials.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import firebase_admin
from firebase_admin import credentials, firestore, storage

from cloud.config import CloudConfig
from cloud.private_files import require_private
from kiosk.config import FIRESTORE_EMULATOR_ENV, STORAGE_EMULATOR_ENV


class _AnonymousCredential(credentials.Base):
    def get_credential(self) -> Any:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()


@dataclass(frozen=True)
class Firebase:
    app: firebase_admin.App
    db: Any  # google.cloud.firestore.Client
    bucket: Any  # google.cloud.storage.Bucket


def connect(config: CloudConfig, name: str | None = None) -> Firebase:
    """A new named firebase-admin app for `config` (several may live in one process)."""
    if config.firestore_emulator_host:
        os.environ[FIRESTORE_EMULATOR_ENV] = config.firestore_emulator_host
    if config.storage_emulator_host:
        os.environ[STORAGE_EMULATOR_ENV] = config.storage_emulator_host
    if config.uses_emulators:
        credential: credentials.Base = _AnonymousCredential()
    elif config.credentials is not None:
        info = json.loads(require_private(config.credentials, "credentials file"))
        credential = credentials.Certificate(info)
    else:
        credential = credentials.ApplicationDefault()
    app = firebase_admin.initialize_app(
        credential,
        {"projectId": config.firebase_project, "storageBucket": config.firebase_bucket},
        name=name or f"skinscan-cloud-{uuid.uuid4().hex[:8]}",
    )
    return Firebase(app=app, db=firestore.client(app), bucket=storage.bucket(app=app))


def close(fb: Firebase) -> None:
    firebase_admin.delete_app(fb.app)
