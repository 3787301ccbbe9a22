"""Signed model releases: published to the emulators, verified and installed by the kiosk."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cloud.release import generate_signing_key, publish_release
from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.model_updates import active_metadata_path, current_release, rollback
from kiosk.cases.releases import ReleaseError, ReleaseManifest, verify_manifest
from kiosk.cases.store import CaseStore
from kiosk.cases.sync import SyncService
from kiosk.cases.sync_status import SyncProblem
from kiosk.config import KioskConfig
from kiosk.model.classifier import Classifier, default_metadata_path, load_metadata
from tests.sync_faults import sync_environment

SHIPPED = default_metadata_path()


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "release-key.pem"
    public = generate_signing_key(key)
    return key, public


@pytest.fixture
def kiosk(kiosk_config: KioskConfig, signing: tuple[Path, str]):
    config = replace(kiosk_config, model_public_key=signing[1])
    store = CaseStore.open(config)
    installed: list[Path] = []
    service = SyncService(config, store, on_model_installed=installed.append)
    yield config, service, installed
    service.close()
    store.close()


def works(metadata_path: Path) -> str:
    classifier = Classifier.open(metadata_path, num_threads=1)
    prediction = classifier.predict(np.full((224, 224, 3), 128, np.uint8))
    assert prediction.logits.shape == (7,)
    return classifier.metadata.version


def test_signed_release_is_installed_and_reloaded_and_can_be_rolled_back(
    kiosk, cloud: FirebaseClients, signing: tuple[Path, str]
) -> None:
    config, service, installed = kiosk
    shipped_version = load_metadata(SHIPPED).version
    assert active_metadata_path(config) == SHIPPED
    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="2099.01.01")
    report = service.sync_once()
    assert report.model_installed == "2099.01.01"
    assert report.model_rejected is None
    assert len(installed) == 1, "the running app is told to reload"
    assert active_metadata_path(config) == installed[0]
    assert works(installed[0]) == "2099.01.01"
    heartbeat = cloud.db.collection(schema.KIOSKS).document(config.kiosk_id).get().to_dict()
    assert heartbeat["model_version"] == "2099.01.01"
    # Nothing new: no second install.
    assert service.sync_once().model_installed is None

    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="2099.02.01")
    assert service.sync_once().model_installed == "2099.02.01"
    assert current_release(config.models_dir).version == "2099.02.01"
    back = rollback(config.models_dir)
    assert back.version == "2099.01.01"
    assert works(active_metadata_path(config)) == "2099.01.01"
    assert shipped_version != "2099.01.01"


def test_release_signed_with_another_key_is_rejected(
    kiosk, cloud: FirebaseClients, tmp_path: Path
) -> None:
    config, service, installed = kiosk
    impostor_key = tmp_path / "impostor.pem"
    generate_signing_key(impostor_key)
    publish_release(cloud.db, cloud.bucket, SHIPPED, impostor_key, version="2099.03.01")
    report = service.sync_once()
    assert report.model_installed is None
    assert "signature does not verify" in (report.model_rejected or "")
    assert service.status().last_error and "rejected" in service.status().last_error
    assert service.status().problem is SyncProblem.MODEL_REJECTED
    assert installed == []
    assert active_metadata_path(config) == SHIPPED
    assert works(active_metadata_path(config)) == load_metadata(SHIPPED).version
    heartbeat = cloud.db.collection(schema.KIOSKS).document(config.kiosk_id).get().to_dict()
    assert heartbeat["model_rejected"].startswith("2099.03.01")
    assert not any(p.name.startswith("2099") for p in config.models_dir.glob("*"))


def test_release_whose_model_bytes_were_swapped_is_rejected(
    kiosk, cloud: FirebaseClients, signing: tuple[Path, str]
) -> None:
    config, service, installed = kiosk
    manifest = publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="2099.04.01")
    blob = cloud.bucket.blob(manifest.model_path)
    tampered = bytearray(blob.download_as_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    blob.upload_from_string(bytes(tampered))
    report = service.sync_once()
    assert "sha256" in (report.model_rejected or "")
    assert installed == []
    assert active_metadata_path(config) == SHIPPED
    assert list(config.models_dir.glob(".*")) == [], "no staging folder left behind"


def test_manifest_fields_cannot_be_changed_without_the_key(signing: tuple[Path, str]) -> None:
    manifest = ReleaseManifest(
        version="1.0",
        model_path="models/1.0/m.tflite",
        model_sha256="a" * 64,
        model_bytes=10,
        metadata_path="models/1.0/skinscan.json",
        metadata_sha256="b" * 64,
        published_at="2099-01-01T00:00:00+00:00",
    )
    from kiosk.cases.releases import load_private_key_pem, sign_manifest

    signed = sign_manifest(manifest, load_private_key_pem(signing[0].read_bytes()))
    verify_manifest(signed, signing[1])
    with pytest.raises(ReleaseError, match="does not verify"):
        verify_manifest(replace(signed, model_sha256="c" * 64), signing[1])
    with pytest.raises(ReleaseError, match="refused"):
        verify_manifest(signed, "")
    with pytest.raises(ReleaseError, match="32-byte"):
        verify_manifest(signed, "bm90IGEga2V5")


def fake_release(cloud: FirebaseClients, version: str, published_at: str, **fields) -> None:
    """What any Firestore credential can write: a release document that looks right but is
    not signed with the release key."""
    doc = {
        "version": version,
        "model_path": f"models/{version}/skinscan_int8.tflite",
        "model_sha256": "a" * 64,
        "model_bytes": 1000,
        "metadata_path": f"models/{version}/skinscan.json",
        "metadata_sha256": "b" * 64,
        "published_at": published_at,
        "metrics": {"balanced_accuracy": 0.99},
        "signature": "bm90IGEgc2lnbmF0dXJl",
        **fields,
    }
    cloud.db.collection(schema.MODEL_RELEASES).document(version).set(doc)


def test_a_fake_future_release_does_not_block_a_valid_one(
    kiosk, cloud: FirebaseClients, signing: tuple[Path, str]
) -> None:
    from kiosk.cli.cases import model_status

    config, service, installed = kiosk
    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="2026.12.05")
    fake_release(cloud, "2099.12.31", "2099-12-31T00:00:00+00:00")
    cloud.db.collection(schema.MODEL_RELEASES).document("2099.12.30").set(
        {"version": "2099.12.30", "published_at": "2099-12-30T00:00:00+00:00"}  # no fields
    )
    report = service.sync_once()
    assert report.model_installed == "2026.12.05"
    assert works(active_metadata_path(config)) == "2026.12.05"
    assert "2099.12.31: " in report.model_rejected and "does not verify" in report.model_rejected
    assert "2099.12.30: " in report.model_rejected
    heartbeat = cloud.db.collection(schema.KIOSKS).document(config.kiosk_id).get().to_dict()
    assert heartbeat["model_version"] == "2026.12.05"
    assert heartbeat["model_rejected"].startswith("2099.12.31")
    assert service.status().model_rejected == report.model_rejected
    status = model_status(config)  # what `kiosk status` shows, from another process
    assert status["running"]["version"] == "2026.12.05"
    assert status["running"]["source"] == "release"
    assert [r["version"] for r in status["rejected"]] == ["2099.12.31", "2099.12.30"]
    text = subprocess.run(
        [sys.executable, "-m", "kiosk", "status"],
        env=sync_environment(config),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "rejected       release 2099.12.31: " in text
    assert "model          2026.12.05 (release)" in text
    # The next pass installs nothing and still reports the fake (without downloading it).
    again = service.sync_once()
    assert again.model_installed is None
    assert again.model_rejected and again.model_rejected.startswith("2099.12.31")
    assert not (config.models_dir / "2099.12.31").exists()
    assert [p.parent.name for p in installed] == ["2026.12.05"], "the app reloaded once"


def test_rollback_stays_pinned_across_syncs_until_a_newer_release_verifies(
    kiosk, cloud: FirebaseClients, signing: tuple[Path, str]
) -> None:
    import time

    from kiosk.cases.model_updates import current_pin, unpin

    config, service, installed = kiosk
    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="r1")
    assert service.sync_once().model_installed == "r1"
    time.sleep(1.1)  # publication times have one-second resolution
    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="r2")
    assert service.sync_once().model_installed == "r2"

    assert rollback(config.models_dir).version == "r1"
    assert current_pin(config.models_dir).version == "r2"
    for _ in range(2):
        report = service.sync_once()
        assert report.model_installed is None, "the rolled-back release is not reinstalled"
        assert report.model_rejected is None
        assert current_release(config.models_dir).version == "r1"
    heartbeat = cloud.db.collection(schema.KIOSKS).document(config.kiosk_id).get().to_dict()
    assert heartbeat["model_version"] == "r1"

    time.sleep(1.1)
    publish_release(cloud.db, cloud.bucket, SHIPPED, signing[0], version="r3")
    assert service.sync_once().model_installed == "r3", "a newer release lifts the pin"
    assert current_pin(config.models_dir) is None

    assert rollback(config.models_dir).version == "r1"
    assert service.sync_once().model_installed is None
    assert unpin(config.models_dir).version == "r3"
    assert service.sync_once().model_installed == "r3"
    assert works(active_metadata_path(config)) == "r3"
    assert [p.parent.name for p in installed] == ["r1", "r2", "r3", "r3"]
