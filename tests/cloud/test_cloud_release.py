"""Model releases: `skinscan-cloud keygen` and `publish-model` against the real emulators with
the shipped model, verified and installed by the kiosk's own updater."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
from pathlib import Path

import pytest

from cloud.release import generate_signing_key, publish_release
from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import connect as kiosk_connect
from kiosk.cases.model_updates import ModelUpdater
from kiosk.cases.releases import ReleaseError, ReleaseManifest, verify_manifest
from kiosk.model.classifier import Classifier, default_metadata_path, load_metadata
from tests.cloud_helpers import CLOUD_CLI, CloudEnv

SHIPPED = default_metadata_path()


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys" / "release.pem"
    return path, generate_signing_key(path)


def manifest_doc(env: CloudEnv, version: str) -> dict:
    return env.fb.db.collection(schema.MODEL_RELEASES).document(version).get().to_dict()


def test_cli_makes_a_private_key_and_publishes_a_verifiable_release(clean, tmp_path):
    key_path = tmp_path / "release.pem"
    made = subprocess.run(
        [str(CLOUD_CLI), "keygen", str(key_path)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public = made.stdout.strip().rsplit("= ", 1)[1]

    version = "2026.11.26-r1"
    published = subprocess.run(
        [
            str(CLOUD_CLI),
            "publish-model",
            "--model",
            str(SHIPPED),
            "--signing-key",
            str(key_path),
            "--version",
            version,
        ],
        capture_output=True,
        text=True,
        env=clean.environ(),
        timeout=120,
    )
    assert published.returncode == 0, published.stderr
    manifest = ReleaseManifest.from_document(manifest_doc(clean, version))
    verify_manifest(manifest, public)  # raises if the signature is bad
    assert manifest.model_path == schema.model_blob_path(version, "skinscan_int8.tflite")
    assert manifest.metadata_path == schema.model_blob_path(version, "skinscan.json")
    model = clean.fb.bucket.blob(manifest.model_path).download_as_bytes()
    shipped = load_metadata(SHIPPED)
    assert len(model) == manifest.model_bytes == shipped.model_file("int8").bytes
    assert manifest.model_sha256 == shipped.model_file("int8").sha256
    metadata = json.loads(clean.fb.bucket.blob(manifest.metadata_path).download_as_bytes())
    assert metadata["version"] == version
    assert list(metadata["files"]) == ["int8"]  # the float model stays on the cloud
    assert 0.5 < manifest.metrics["balanced_accuracy"] < 1
    assert 0.5 < manifest.metrics["melanoma_sensitivity_urgent"] <= 1


def test_a_tampered_manifest_fails_verification(clean, key):
    key_path, public = key
    manifest = publish_release(
        clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="t1", metrics={}
    )
    verify_manifest(manifest, public)
    for change in (
        {"model_sha256": "0" * 64},
        {"metrics": {"balanced_accuracy": 0.99}},
        {"model_path": "models/evil/skinscan_int8.tflite"},
        {"version": "t2"},
    ):
        with pytest.raises(ReleaseError, match="does not verify"):
            verify_manifest(dataclasses.replace(manifest, **change), public)
    other_key = generate_signing_key(key_path.with_name("other.pem"))
    with pytest.raises(ReleaseError, match="does not verify"):
        verify_manifest(manifest, other_key)


def test_a_signing_key_readable_by_others_is_refused_before_any_upload(clean, key):
    key_path, _ = key
    key_path.chmod(0o640)
    with pytest.raises(Exception, match="readable by others"):
        publish_release(clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="r-open")
    assert manifest_doc(clean, "r-open") is None
    assert list(clean.fb.bucket.list_blobs(prefix="models/")) == []


def test_a_published_version_cannot_be_replaced(clean, key):
    key_path, _ = key
    publish_release(clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="r-once")
    first = manifest_doc(clean, "r-once")
    with pytest.raises(ReleaseError, match="immutable"):
        publish_release(clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="r-once")
    assert manifest_doc(clean, "r-once") == first


def test_a_kiosk_verifies_and_installs_the_release_and_refuses_a_tampered_one(
    clean, key, firebase_env, tmp_path
):
    key_path, public = key
    publish_release(clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="2026.12.10")
    config = firebase_env.kiosk_config(tmp_path / "kiosk", model_public_key=public)
    clients = kiosk_connect(config)
    try:
        result = ModelUpdater(config).check(clients)
        assert result.installed == "2026.12.10", result
        installed = config.models_dir / "2026.12.10" / "skinscan.json"
        assert Classifier.open(installed).metadata.version == "2026.12.10"

        # A newer release whose manifest was edited after signing (a better-looking metric).
        publish_release(clean.fb.db, clean.fb.bucket, SHIPPED, key_path, version="2026.12.11")
        ref = clean.fb.db.collection(schema.MODEL_RELEASES).document("2026.12.11")
        ref.update({"metrics": {"balanced_accuracy": 0.99}})
        refused = ModelUpdater(config).check(clients)
        assert refused.installed is None
        assert refused.rejected and "does not verify" in refused.rejected
        assert not (config.models_dir / "2026.12.11").exists()
    finally:
        clients.close()
