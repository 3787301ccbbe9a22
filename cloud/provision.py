"""Kiosk identities: `skinscan-cloud provision-kiosk` and `revoke-kiosk` (issue 16).

Provisioning makes (or re-enables) the kiosk's Firebase Auth user `kiosk:<kiosk_id>` with the
custom claims {role: "kiosk", kiosk_id} that cloud/firestore.rules check, mints a custom token,
exchanges it once for a refresh token (Identity Toolkit REST, with the project's web API key)
and writes the kiosk's identity file (kiosk.cases.identity; 0600). Copy that file to the kiosk
(`identity = /etc/skinscan/identity.json` in kiosk.toml, owned by the service user, 0600).

Revoking disables the user and revokes its refresh tokens: the kiosk can no longer get an ID
token, and the one it holds expires within the hour (Firebase ID tokens live one hour).

What was run here: minting the custom token with its claims (offline, tests/cloud). What was
NOT run here: creating the Auth user, the token exchange and revocation — these machines have
no Firebase Auth emulator (firebase-tools needs Java 21 and downloads its jars).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cloud.private_files import write_private
from kiosk.cases.identity import AUTH_EMULATOR_ENV
from kiosk.config import KIOSK_ID_PATTERN
from kiosk.errors import SkinscanError

SIGN_IN_URL = "https://identitytoolkit.googleapis.com/v1/accounts:signInWithCustomToken"


class ProvisionError(SkinscanError):
    """A kiosk identity could not be made or revoked; the message says why."""


def kiosk_uid(kiosk_id: str) -> str:
    return f"kiosk:{kiosk_id}"


def kiosk_claims(kiosk_id: str) -> dict[str, str]:
    return {"role": "kiosk", "kiosk_id": kiosk_id}


def mint_custom_token(app: Any, kiosk_id: str) -> str:
    """A custom token for the kiosk's user, carrying its claims (signed with the app's service
    account key, offline)."""
    from firebase_admin import auth

    token = auth.create_custom_token(
        kiosk_uid(kiosk_id), developer_claims=kiosk_claims(kiosk_id), app=app
    )
    return token.decode() if isinstance(token, bytes) else str(token)


def provision_kiosk(app: Any, kiosk_id: str, api_key: str, out: Path) -> Path:
    from firebase_admin import auth

    if not KIOSK_ID_PATTERN.match(kiosk_id):
        raise ProvisionError(f"kiosk id {kiosk_id!r}: use 1-63 letters, digits, '.', '_' or '-'")
    uid = kiosk_uid(kiosk_id)
    try:
        auth.update_user(uid, disabled=False, app=app)  # re-provisioning a known kiosk
    except auth.UserNotFoundError:
        auth.create_user(uid=uid, display_name=f"Kiosk {kiosk_id}", app=app)
    # The claims also go on the user, so every refreshed ID token carries them.
    auth.set_custom_user_claims(uid, kiosk_claims(kiosk_id), app=app)
    refresh_token = _sign_in(mint_custom_token(app, kiosk_id), api_key)
    body = {"kiosk_id": kiosk_id, "api_key": api_key, "refresh_token": refresh_token}
    write_private(out, json.dumps(body).encode("utf-8"))
    return out


def revoke_kiosk(app: Any, kiosk_id: str) -> None:
    from firebase_admin import auth

    uid = kiosk_uid(kiosk_id)
    try:
        auth.update_user(uid, disabled=True, app=app)
    except auth.UserNotFoundError:
        raise ProvisionError(f"no kiosk identity {uid} to revoke") from None
    auth.revoke_refresh_tokens(uid, app=app)


def _sign_in(custom_token: str, api_key: str) -> str:
    emulator = os.environ.get(AUTH_EMULATOR_ENV)
    base = f"http://{emulator}/identitytoolkit.googleapis.com/v1" if emulator else None
    url = (base + "/accounts:signInWithCustomToken") if base else SIGN_IN_URL
    request = urllib.request.Request(
        f"{url}?{urllib.parse.urlencode({'key': api_key})}",
        data=json.dumps({"token": custom_token, "returnSecureToken": True}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return str(json.loads(r.read())["refreshToken"])
    except urllib.error.HTTPError as e:
        raise ProvisionError(f"Firebase Auth refused the sign-in (HTTP {e.code})") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise ProvisionError(f"cannot reach Firebase Auth: {e}") from None
