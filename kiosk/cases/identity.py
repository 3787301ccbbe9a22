"""A kiosk's own Firebase identity, so that Firestore security rules apply to it.

With a service account (firebase-admin), a kiosk can read and write every case of the
programme: rules do not apply to server credentials. With an identity file, the kiosk talks to
Firestore as its own Firebase Auth user instead; its ID token carries the custom claims
`role: "kiosk"` and `kiosk_id`, and cloud/firestore.rules limit it to its own cases, threads and
heartbeat. A stolen kiosk then exposes its own patients only, and revoking its user (refresh
tokens revoked, account disabled) shuts it out within the ID token's lifetime (one hour).

The identity file (JSON, mode 0600, refused otherwise):
    {"kiosk_id": "...", "api_key": "<web API key>", "refresh_token": "..."}
ID tokens are fetched from the Secure Token API with the refresh token and renewed a minute
before they expire. For the Firestore emulator only, the file may instead hold a fixed
`"id_token"` (the emulator accepts unsigned tokens), which is what the tests use.

Cloud Storage still goes through the service account (GCS API, governed by IAM conditions on the
kiosk's prefix): see the README's security section for why and what remains.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.auth.credentials

from kiosk.cases.firebase import CredentialsError, OfflineError
from kiosk.files import atomic_write_json

SECURE_TOKEN_URL = "https://securetoken.googleapis.com/v1/token"
AUTH_EMULATOR_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
REFRESH_EARLY = timedelta(minutes=1)
TOKEN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KioskIdentity:
    path: Path
    kiosk_id: str
    api_key: str = ""
    refresh_token: str = ""
    id_token: str = ""  # emulator only: a fixed token instead of the refresh exchange

    @classmethod
    def load(cls, path: Path) -> KioskIdentity:
        try:
            st = path.stat()
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CredentialsError(f"kiosk identity file not found: {path}") from None
        except (OSError, ValueError) as e:
            raise CredentialsError(f"kiosk identity file {path} is unreadable: {e}") from None
        if st.st_mode & 0o077:
            raise CredentialsError(
                f"kiosk identity file {path} is readable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        if not isinstance(raw, dict) or not isinstance(raw.get("kiosk_id"), str):
            raise CredentialsError(f"kiosk identity file {path} has no kiosk_id")
        identity = cls(
            path=path,
            kiosk_id=raw["kiosk_id"],
            api_key=str(raw.get("api_key", "")),
            refresh_token=str(raw.get("refresh_token", "")),
            id_token=str(raw.get("id_token", "")),
        )
        if not identity.id_token and not (identity.api_key and identity.refresh_token):
            raise CredentialsError(
                f"kiosk identity file {path} needs api_key and refresh_token "
                "(made by `skinscan-cloud provision-kiosk`)"
            )
        return identity


class KioskIdTokenCredentials(google.auth.credentials.Credentials):
    """google-auth credentials whose bearer token is the kiosk's Firebase ID token."""

    def __init__(self, identity: KioskIdentity, emulator: bool) -> None:
        super().__init__()
        if identity.id_token and not emulator:
            raise CredentialsError(
                "a fixed id_token in the kiosk identity file is for the emulator only"
            )
        self._identity = identity
        self._lock = threading.Lock()

    @property
    def id_token(self) -> str:
        """The current token (what the Firestore client sends to the emulator)."""
        with self._lock:
            if not self.valid:
                self.refresh(None)
            return str(self.token)

    def refresh(self, request: Any) -> None:
        if self._identity.id_token:
            self.token, self.expiry = self._identity.id_token, None
            return
        token, refresh_token, lifetime = exchange_refresh_token(self._identity)
        # google-auth compares expiry with a naive UTC "now".
        expiry = datetime.now(UTC).replace(tzinfo=None) + lifetime - REFRESH_EARLY
        self.token, self.expiry = token, expiry
        if refresh_token and refresh_token != self._identity.refresh_token:
            self._identity = _rotate(self._identity, refresh_token)


def exchange_refresh_token(identity: KioskIdentity) -> tuple[str, str, timedelta]:
    """(id_token, refresh_token, lifetime) from the Secure Token API."""
    emulator = os.environ.get(AUTH_EMULATOR_ENV)
    base = f"http://{emulator}/securetoken.googleapis.com/v1/token" if emulator else None
    url = f"{base or SECURE_TOKEN_URL}?{urllib.parse.urlencode({'key': identity.api_key})}"
    body = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": identity.refresh_token}
    ).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TOKEN_TIMEOUT_S) as r:
            answer = json.loads(r.read())
    except urllib.error.HTTPError as e:
        # 400 TOKEN_EXPIRED / USER_DISABLED / INVALID_REFRESH_TOKEN: the kiosk was revoked.
        raise CredentialsError(
            f"the kiosk identity was refused by Firebase Auth (HTTP {e.code}): it may have "
            "been revoked; ask the administrator to provision this kiosk again"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise OfflineError(f"cannot reach Firebase Auth: {e}") from None
    return (
        str(answer["id_token"]),
        str(answer.get("refresh_token", "")),
        timedelta(seconds=int(answer.get("expires_in", 3600))),
    )


def _rotate(identity: KioskIdentity, refresh_token: str) -> KioskIdentity:
    updated = KioskIdentity(identity.path, identity.kiosk_id, identity.api_key, refresh_token)
    body = {"kiosk_id": updated.kiosk_id, "api_key": updated.api_key}
    atomic_write_json(identity.path, {**body, "refresh_token": refresh_token}, mode=0o600)
    return updated


def firestore_client(identity: KioskIdentity, project: str) -> Any:
    """A Firestore client that speaks as the kiosk (security rules apply)."""
    from google.cloud import firestore

    emulator = bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))
    credentials = KioskIdTokenCredentials(identity, emulator=emulator)

    class KioskFirestoreClient(firestore.Client):
        # Against the emulator the client library always adds "Bearer owner" (which bypasses
        # rules) to every call's metadata; send the kiosk's token instead. Against Firebase
        # the token travels with the channel's credentials and this changes nothing.
        @property
        def _rpc_metadata(self) -> list[tuple[str, str]]:
            metadata = list(super()._rpc_metadata)
            if not emulator:
                return metadata
            kept = [(k, v) for k, v in metadata if k != "authorization"]
            return [*kept, ("authorization", f"Bearer {credentials.id_token}")]

    return KioskFirestoreClient(project=project, credentials=credentials)
