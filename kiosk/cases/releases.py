"""Signed model releases: the manifest format shared by `skinscan-cloud publish-model` (signs)
and the kiosk's model updater (verifies).

A release is two Storage blobs (the int8 model and its metadata JSON) and one Firestore
document `model_releases/{version}` holding this manifest. The Ed25519 signature covers every
manifest field but itself, serialised canonically, so the hashes, paths and version cannot be
changed without the private key, which stays on the release server.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import SkinscanError

_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(SkinscanError):
    """A model release is malformed, unsigned, badly signed, or its files do not match."""


@dataclass(frozen=True)
class ReleaseManifest:
    version: str
    model_path: str  # Storage blob of the int8 .tflite
    model_sha256: str
    model_bytes: int
    metadata_path: str  # Storage blob of the metadata JSON (classes, thresholds, files)
    metadata_sha256: str
    published_at: str  # ISO 8601 UTC; newest wins
    metrics: dict[str, float] = field(default_factory=dict)
    signature: str = ""  # base64 Ed25519 over signed_payload()

    def signed_payload(self) -> bytes:
        fields = dataclasses.asdict(self)
        fields.pop("signature")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ReleaseManifest:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            manifest = cls(**{k: v for k, v in doc.items() if k in names})
        except TypeError as e:
            raise ReleaseError(f"release manifest is incomplete: {e}") from None
        manifest.check_shape()
        return manifest

    def check_shape(self) -> None:
        if not isinstance(self.version, str) or not _VERSION_PATTERN.match(self.version):
            raise ReleaseError(f"release version {self.version!r} is not a valid version")
        for name in ("model_sha256", "metadata_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SHA256_PATTERN.match(value):
                raise ReleaseError(f"release {self.version}: {name} is not a sha256 hex digest")
        if not isinstance(self.model_bytes, int) or self.model_bytes <= 0:
            raise ReleaseError(f"release {self.version}: model_bytes must be a positive integer")


def sign_manifest(manifest: ReleaseManifest, private_key: Ed25519PrivateKey) -> ReleaseManifest:
    manifest.check_shape()
    signature = private_key.sign(manifest.signed_payload())
    return dataclasses.replace(manifest, signature=base64.b64encode(signature).decode("ascii"))


def verify_manifest(manifest: ReleaseManifest, public_key_b64: str) -> None:
    """Raise ReleaseError unless `manifest` carries a valid signature by the given key."""
    if not public_key_b64:
        raise ReleaseError("no model_public_key configured: model updates are refused")
    public_key = load_public_key(public_key_b64)
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseError(f"release {manifest.version}: signature is not base64") from None
    try:
        public_key.verify(signature, manifest.signed_payload())
    except InvalidSignature:
        raise ReleaseError(
            f"release {manifest.version}: signature does not verify against the configured key"
        ) from None


def load_public_key(public_key_b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ReleaseError(
            "model_public_key must be the base64 of a 32-byte Ed25519 public key"
        ) from None


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise ReleaseError(f"not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError("the release signing key must be an Ed25519 key")
    return key
