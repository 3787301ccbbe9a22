"""Fixtures around the real Firestore and Storage emulators (see tests/servers.py).

The servers start once per session; every test that asks for `firebase_env` gets them running
(a fault test may have stopped one) and empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiosk.cases.firebase import FirebaseClients, connect
from kiosk.config import KioskConfig
from tests.cloud_helpers import CloudEnv, cloud_env
from tests.servers import BUCKET, PROJECT, FirestoreEmulator, StorageEmulator


@dataclass
class FirebaseEnv:
    firestore: FirestoreEmulator
    storage: StorageEmulator
    project: str = PROJECT
    bucket: str = BUCKET

    def kiosk_config(
        self, data_dir: Path, kiosk_id: str = "kiosk-test", **overrides
    ) -> KioskConfig:
        settings = {
            "data_dir": data_dir,
            "kiosk_id": kiosk_id,
            "firebase_project": self.project,
            "firebase_bucket": self.bucket,
            "firestore_emulator_host": self.firestore.host,
            "storage_emulator_host": self.storage.url,
            "min_free_mb": 0,
            "connect_timeout_s": 2.0,
            "sync_interval_s": 0.5,
        }
        settings.update(overrides)
        return KioskConfig(**settings)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def storage_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageEmulator]:
    emulator = StorageEmulator(tmp_path_factory.mktemp("storage-emulator"))
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def firebase_env(
    firestore_emulator: FirestoreEmulator,
    storage_emulator: StorageEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> FirebaseEnv:
    firestore_emulator.start()
    storage_emulator.start()
    firestore_emulator.reset()
    storage_emulator.reset()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_emulator.url)
    return FirebaseEnv(firestore=firestore_emulator, storage=storage_emulator)


@pytest.fixture
def kiosk_config(tmp_path: Path, firebase_env: FirebaseEnv) -> KioskConfig:
    return firebase_env.kiosk_config(tmp_path / "kiosk")


@pytest.fixture
def cloud(kiosk_config: KioskConfig) -> Iterator[FirebaseClients]:
    """Direct access to the emulators, as the cloud side or a reviewer would have."""
    clients = connect(kiosk_config)
    yield clients
    clients.close()


# ---- the cloud side's tests (worker, console, releases, retraining) -------------------------


@pytest.fixture(scope="module")
def env(
    firestore_emulator: FirestoreEmulator,
    storage_emulator: StorageEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CloudEnv]:
    """The cloud side's config and a Firebase connection, once per test module."""
    state = tmp_path_factory.mktemp("cloud-state")
    with cloud_env(firestore_emulator, storage_emulator, state) as e:
        yield e


@pytest.fixture
def clean(env: CloudEnv) -> CloudEnv:
    """`env` with both emulators emptied first."""
    env.reset()
    return env
