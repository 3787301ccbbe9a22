"""Helpers for the cloud tests: real emulators (tests/servers.py), a configured cloud side, and
case documents written exactly as cloud_schema says a kiosk writes them."""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from firebase_admin import firestore

from cloud.config import CloudConfig
from cloud.firebase import Firebase, close, connect
from kiosk.cases import cloud_schema as schema
from kiosk.cases.case_code import case_code
from kiosk.model.conditions import CONDITIONS
from tests.servers import BUCKET, PROJECT, FirestoreEmulator, StorageEmulator

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "data" / "samples"
CLOUD_CLI = Path(sys.executable).with_name("skinscan-cloud")


@dataclass
class CloudEnv:
    firestore: FirestoreEmulator
    storage: StorageEmulator
    config: CloudConfig
    fb: Firebase

    def environ(self, **extra: str) -> dict[str, str]:
        """Environment for a `skinscan-cloud` subprocess talking to these emulators."""
        return {
            **os.environ,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "STORAGE_EMULATOR_HOST": self.storage.url,
            "SKINSCAN_CLOUD_FIREBASE_PROJECT": PROJECT,
            "SKINSCAN_CLOUD_FIREBASE_BUCKET": BUCKET,
            "SKINSCAN_CLOUD_STATE_DIR": str(self.config.state_dir),
            **extra,
        }

    def reset(self) -> None:
        # Another module's fault test may have stopped a server; start() is a no-op otherwise.
        self.firestore.start()
        self.storage.start()
        self.firestore.reset()
        self.storage.reset()


@contextmanager
def cloud_env(fs: FirestoreEmulator, st: StorageEmulator, state_dir: Path) -> Iterator[CloudEnv]:
    """The cloud side's own firebase-admin app on the session's emulators (the lead's
    `firestore_emulator` / `storage_emulator` fixtures)."""
    config = CloudConfig(
        firebase_project=PROJECT,
        firebase_bucket=BUCKET,
        firestore_emulator_host=fs.host,
        storage_emulator_host=st.url,
        state_dir=state_dir,
    )
    fb = connect(config)
    try:
        yield CloudEnv(firestore=fs, storage=st, config=config, fb=fb)
    finally:
        close(fb)


def sample_images() -> list[Path]:
    images = sorted(SAMPLES.glob("*.jpg"))
    assert images, f"no sample images in {SAMPLES}"
    return images


def put_case(
    fb: Firebase,
    *,
    image: Path | bytes,
    kiosk_id: str = "kiosk-test",
    case_id: str | None = None,
    urgency: str = "routine",
    status: str = schema.STATUS_UPLOADED,
    created_at: datetime | None = None,
    label: str = "eczema",
) -> str:
    """Upload an image and write its case document the way a kiosk does; return the id."""
    case_id = case_id or str(uuid.uuid4())
    data = image if isinstance(image, bytes) else image.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = schema.case_image_path(kiosk_id, case_id)
    blob = fb.bucket.blob(path)
    blob.metadata = {"case_id": case_id, "kiosk_id": kiosk_id, "sha256": digest}
    blob.upload_from_string(data, content_type=schema.IMAGE_CONTENT_TYPE)
    probabilities = {c: (0.94 if c == label else 0.01) for c in CONDITIONS}
    fb.db.collection(schema.CASES).document(case_id).set(
        {
            "kiosk_id": kiosk_id,
            "created_at": created_at or datetime.now(UTC) - timedelta(minutes=5),
            "updated_at": firestore.SERVER_TIMESTAMP,
            "patient_ref": "",
            "case_code": case_code(case_id),
            "body_site": "forearm",
            "consent": True,
            "image": {
                "path": path,
                "sha256": digest,
                "bytes": len(data),
                "content_type": schema.IMAGE_CONTENT_TYPE,
            },
            "on_device": {
                "label": label,
                "confidence": 0.94,
                "probabilities": probabilities,
                "abstained": False,
                "urgency": urgency,
                "model_version": "2026.11.26",
            },
            "urgency_rank": schema.URGENCY_RANK[urgency],
            "status": status,
        }
    )
    return case_id


def case_doc(fb: Firebase, case_id: str) -> dict:
    return fb.db.collection(schema.CASES).document(case_id).get().to_dict()
