"""A capture's provenance, from the live pipeline through the store and sync to Firestore.

Real pipeline on demo-clip frames (shipped model), the capture the scan screen takes, the
case store, SyncService, and the Firestore and Storage emulators (fixtures of
tests/firebase_fixtures.py, as tests/cases/test_sync.py uses them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.provenance import Provenance
from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.cases.sync import SyncService
from kiosk.config import KioskConfig
from kiosk.live.camera import DEMO_NAME, SourceStatus
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.model.classifier import Classifier
from kiosk.ui.capture import capture_from
from tests.live.test_live import clip_frames
from tests.sync_faults import kiosk_docs

LIVE = SourceStatus("live", "Camera ready")


@dataclass
class NamedSource:
    """Stands in for the ResilientSource around a camera: its name and a live status."""

    name: str
    status: SourceStatus = LIVE

    def open(self) -> None: ...

    def close(self) -> None: ...


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata()


def captured(classifier: Classifier, source_name: str, lens: str):
    pipeline = LivePipeline(
        NamedSource(source_name), classifier, Triage(classifier.thresholds), lens=lens
    )
    for frame in clip_frames()[125:135]:  # the melanoma, sharp frames
        pipeline.process(frame)
    capture = capture_from(pipeline.snapshot())
    assert capture is not None
    return capture


def test_provenance_is_filled_at_capture(classifier):
    capture = captured(classifier, DEMO_NAME, "off")
    p = capture.provenance
    assert p is not None and p.demo and capture.demo
    assert p.source == "demo" and p.lens == "off" and p.picture_kind == ""
    assert p.frame_size == (352, 352)
    assert p.crop_box == (0, 0, 352, 352)  # lens off: the centre square, as `kiosk classify`
    assert capture.image.shape[:2] == (352, 352)  # the crop at camera resolution
    assert p.frames_averaged == capture.verdict.frames_used >= 3
    assert p.model_version == classifier.metadata.version
    assert p.reasons == () and {"sharpness", "skin_fraction", "luma_mean"} <= p.quality.keys()

    clinical = captured(classifier, "opencv:0", "clinical").provenance
    assert clinical.source == "opencv" and not clinical.demo
    assert clinical.picture_kind == "clinical"
    assert clinical.crop_box == (70, 70, 211, 211)  # the 0.6 guide box of a 352 frame


def test_provenance_round_trips_through_store_sync_and_firestore(
    classifier, kiosk_config: KioskConfig, cloud: FirebaseClients
):
    capture = captured(classifier, DEMO_NAME, "off")
    with CaseStore.open(kiosk_config) as store:
        on_device = OnDeviceResult.from_decision(capture.verdict.decision, "shipped")
        case = store.save_case(capture.image, on_device, provenance=capture.provenance)
        # Stored as sent: measures rounded to 4 places (Provenance.as_dict), all else exact.
        sent = Provenance.from_dict(capture.provenance.as_dict())
        assert store.get(case.case_id).provenance == sent
        file_case = store.save_case(
            np.full((64, 64, 3), 180, np.uint8), on_device, provenance=Provenance(source="file")
        )
        service = SyncService(kiosk_config, store)
        try:
            report = service.sync_once()
        finally:
            service.close()
        assert sorted(report.uploaded) == sorted([case.case_id, file_case.case_id])
        docs = kiosk_docs(cloud, store.kiosk_id)
    doc = docs[case.case_id]
    assert doc["demo"] is True
    assert Provenance.from_dict(doc["provenance"]) == sent
    assert doc["provenance"]["crop_box"] == [0, 0, 352, 352]
    assert docs[file_case.case_id]["demo"] is False
    assert docs[file_case.case_id]["provenance"]["source"] == "file"
