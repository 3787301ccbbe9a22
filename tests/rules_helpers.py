"""Speaking to the Firestore emulator under security rules: load cloud/firestore.rules into a
project and make the unsigned ID tokens the emulator accepts (it judges them by the rules;
`Bearer owner`, which the Admin SDK sends, bypasses them)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import FirestoreEmulator

RULES = Path(__file__).resolve().parents[1] / "cloud" / "firestore.rules"


def unsigned_id_token(project: str, uid: str, **claims: Any) -> str:
    """A Firebase ID token for `project` with header alg "none" and an empty signature."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    payload = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "custom"},
        **claims,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def kiosk_token(project: str, kiosk_id: str) -> str:
    """What a provisioned kiosk's ID token carries (cloud/provision.py)."""
    return unsigned_id_token(project, kiosk_id, role="kiosk", kiosk_id=kiosk_id)


def load_rules(emulator: FirestoreEmulator, project: str) -> None:
    """Empty the project and load the repository's Firestore rules into it."""
    emulator.start()
    emulator.reset(project)
    body = {"rules": {"files": [{"name": "firestore.rules", "content": RULES.read_text()}]}}
    request = urllib.request.Request(
        f"http://{emulator.host}/emulator/v1/projects/{project}:securityRules",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
