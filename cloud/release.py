"""`skinscan-cloud publish-model` and `keygen`: a signed model release for the kiosks.

A release is the int8 model and a metadata JSON in Storage (cloud_schema.model_blob_path) and a
manifest in `model_releases/{version}` signed with the release key (kiosk.cases.releases). Versions
are immutable: a kiosk that installed version X must never find different bytes under X, so
publishing an existing version is refused. The blobs go up before the manifest, so a kiosk
that sees a manifest always finds its files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.private_files import require_private, write_private
from kiosk.cases import cloud_schema as schema
from kiosk.cases.releases import (
    ReleaseError,
    ReleaseManifest,
    load_private_key_pem,
    private_key_pem,
    public_key_b64,
    sign_manifest,
)
from kiosk.model.classifier import Classifier, load_metadata

METADATA_NAME = "skinscan.json"
# Evaluation figures copied into the manifest (from evaluate.py's metrics.json, int8 model).
MANIFEST_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "melanoma_sensitivity_urgent",
    "bcc_sensitivity_urgent",
    "ece",
    "abstain_rate",
    "out_of_scope_rate",
)


@dataclass(frozen=True)
class ReleaseFiles:
    version: str
    model_name: str
    model_bytes: bytes
    metadata_bytes: bytes


def generate_signing_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, 0600) and return the public key for kiosks."""
    if path.exists():
        raise ReleaseError(f"{path} exists; refusing to replace a signing key")
    key = Ed25519PrivateKey.generate()
    write_private(path, private_key_pem(key))
    return public_key_b64(key)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    return load_private_key_pem(require_private(path, "release signing key"))


def prepare_release(metadata_path: Path, version: str | None = None) -> ReleaseFiles:
    """The kiosk's view of a model: its int8 file and a metadata JSON that lists only that file
    (the float model stays on the cloud), under `version` when given."""
    metadata = load_metadata(metadata_path)
    Classifier(metadata, "int8", num_threads=1)  # checks sha256, size, classes and tensors
    entry = metadata.model_file("int8")
    raw = json.loads(Path(metadata_path).read_text(encoding="utf-8"))
    raw["files"] = {"int8": raw["files"]["int8"]}
    raw["version"] = version or metadata.version
    return ReleaseFiles(
        version=raw["version"],
        model_name=entry.path,
        model_bytes=metadata.model_path("int8").read_bytes(),
        metadata_bytes=(json.dumps(raw, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    )


def metrics_for(metadata_path: Path, metrics_path: Path | None = None) -> dict[str, float]:
    """Scalar int8 figures from evaluate.py's metrics.json (default: the one beside the
    metadata), only when it describes this very model version."""
    path = metrics_path or Path(metadata_path).with_name("metrics.json")
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    if report.get("model_version") != load_metadata(metadata_path).version:
        return {}
    int8 = report.get("int8", {})
    return {k: float(int8[k]) for k in MANIFEST_METRICS if isinstance(int8.get(k), int | float)}


def publish_release(
    db: Any,
    bucket: Any,
    metadata_path: Path,
    signing_key_path: Path,
    *,
    version: str | None = None,
    metrics: dict[str, float] | None = None,
) -> ReleaseManifest:
    key = load_signing_key(signing_key_path)  # first: no upload without a usable key
    files = prepare_release(metadata_path, version)
    ref = db.collection(schema.MODEL_RELEASES).document(files.version)
    if ref.get().exists:
        raise ReleaseError(f"model release {files.version} exists; versions are immutable")
    model_path = schema.model_blob_path(files.version, files.model_name)
    metadata_blob = schema.model_blob_path(files.version, METADATA_NAME)
    manifest = sign_manifest(
        ReleaseManifest(
            version=files.version,
            model_path=model_path,
            model_sha256=hashlib.sha256(files.model_bytes).hexdigest(),
            model_bytes=len(files.model_bytes),
            metadata_path=metadata_blob,
            metadata_sha256=hashlib.sha256(files.metadata_bytes).hexdigest(),
            published_at=datetime.now(UTC).isoformat(timespec="seconds"),
            metrics=metrics if metrics is not None else metrics_for(metadata_path),
        ),
        key,
    )
    for path, data, content_type in (
        (model_path, files.model_bytes, "application/octet-stream"),
        (metadata_blob, files.metadata_bytes, "application/json"),
    ):
        blob = bucket.blob(path)
        blob.metadata = {"version": files.version, "sha256": hashlib.sha256(data).hexdigest()}
        blob.upload_from_string(data, content_type=content_type)
    ref.create(manifest.to_document())  # fails if a concurrent publish got there first
    return manifest
