"""Kiosk provisioning (issue 16): the part that runs offline here — the custom token carries the
kiosk's uid and the claims the security rules check. (Creating the Auth user, the exchange for a
refresh token and revocation need Firebase Auth, which has no emulator on these machines.)"""

from __future__ import annotations

import base64
import json
import uuid

import firebase_admin
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import credentials

from cloud.provision import kiosk_claims, kiosk_uid, mint_custom_token


def service_account() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "demo-skinscan",
        "private_key_id": "test",
        "private_key": pem,
        "client_email": "provisioner@demo-skinscan.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_the_custom_token_names_the_kiosk_and_carries_the_rules_claims() -> None:
    app = firebase_admin.initialize_app(
        credentials.Certificate(service_account()), name=f"provision-{uuid.uuid4().hex[:6]}"
    )
    try:
        token = mint_custom_token(app, "kiosk-7")
    finally:
        firebase_admin.delete_app(app)
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "RS256"
    assert signature, "signed with the service account's key"
    assert body["uid"] == kiosk_uid("kiosk-7") == "kiosk:kiosk-7"
    assert body["claims"] == kiosk_claims("kiosk-7") == {"role": "kiosk", "kiosk_id": "kiosk-7"}
    assert body["aud"].endswith("google.identity.identitytoolkit.v1.IdentityToolkit")
