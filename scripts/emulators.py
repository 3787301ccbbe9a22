"""Start the Firestore and Storage emulators for a script run (the same servers the tests use)
and hand back a kiosk config pointing at them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.config import KioskConfig
from tests.servers import BUCKET, PROJECT, FirestoreEmulator, StorageEmulator


@dataclass
class Emulators:
    firestore: FirestoreEmulator
    storage: StorageEmulator

    def kiosk_config(self, data_dir: Path, **overrides: object) -> KioskConfig:
        settings: dict[str, object] = {
            "data_dir": data_dir,
            "kiosk_id": "kiosk-bench",
            "firebase_project": PROJECT,
            "firebase_bucket": BUCKET,
            "firestore_emulator_host": self.firestore.host,
            "storage_emulator_host": self.storage.url,
            "min_free_mb": 0,
        }
        settings.update(overrides)
        return KioskConfig(**settings)  # type: ignore[arg-type]

    def reset(self) -> None:
        self.firestore.reset()
        self.storage.reset()


@contextmanager
def running_emulators(work_dir: Path) -> Iterator[Emulators]:
    firestore = FirestoreEmulator()
    storage = StorageEmulator(work_dir / "storage")
    firestore.start()
    try:
        storage.start()
        try:
            yield Emulators(firestore, storage)
        finally:
            storage.stop()
    finally:
        firestore.stop()
