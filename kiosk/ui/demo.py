"""Made-up screen contents for screenshots and tests: a fixed camera snapshot, sample cases.

Nothing here is a real patient: the picture is drawn with numpy and the references are codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from kiosk.cases.cloud_schema import AUTHOR_DERMATOLOGIST
from kiosk.cases.provenance import Provenance
from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.live.camera import MESSAGES, SourceStatus
from kiosk.live.evidence import Evidence
from kiosk.live.frames import Frame
from kiosk.live.pipeline import Snapshot
from kiosk.live.triage import Verdict
from kiosk.live.vision import (
    GuideBox,
    PictureKind,
    QualityIssue,
    QualityReport,
    crop_rect,
    dermoscope_field,
    field_rect,
    to_model_input,
)
from kiosk.model.conditions import CONDITIONS
from kiosk.model.decision import Decision, Thresholds, decide

THRESHOLDS = Thresholds(abstain_below=0.5, urgent_at=0.3)
LIVE = SourceStatus("live", MESSAGES["live"])
LOST = SourceStatus("reconnecting", MESSAGES["reconnecting"], retries=3)


def skin_picture(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A skin-toned picture with a darker, irregular spot in the middle (RGB uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.array([214, 160, 128], np.float32)
    shade = 1.0 - 0.12 * ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2)
    img = base * shade[..., None] + rng.normal(0, 4, (height, width, 3))
    angle = np.arctan2(yy - height / 2, xx - width / 2)
    radius = np.hypot(xx - width / 2, yy - height / 2)
    edge = height * (0.12 + 0.02 * np.sin(5 * angle) + 0.015 * np.cos(3 * angle + 1))
    spot = np.clip((edge - radius) / 6.0, 0.0, 1.0)[..., None]
    img = img * (1 - spot) + np.array([96, 58, 44], np.float32) * spot
    return np.clip(img, 0, 255).astype(np.uint8)


def dermoscope_picture(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """The skin picture as a 4:3 camera sees it through a clip-on dermoscope: a circle of skin
    inscribed in the frame's height, black around it."""
    img = skin_picture(width, height, seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img[np.hypot(yy - height / 2, xx - width / 2) > 0.49 * height] = 0
    return img


def decision_for(label: str, p: float) -> Decision:
    """A decision whose top class is `label` with probability `p` (the rest spread evenly)."""
    rest = (1.0 - p) / (len(CONDITIONS) - 1)
    return decide({c: p if c == label else rest for c in CONDITIONS}, THRESHOLDS)


def verdict_for(label: str, p: float, stable: bool = True) -> Verdict:
    return Verdict(decision_for(label, p), stable=stable, frames_used=8)


def escalated_verdict(label: str = "actinic_keratosis", p: float = 0.56) -> Verdict:
    """Top label `label` (not a cancer), but enough summed cancer probability to be urgent:
    the screens must say that skin cancer cannot be ruled out."""
    cancer = {"melanoma": 0.22, "basal_cell_carcinoma": 0.12}
    rest = (1.0 - p - sum(cancer.values())) / (len(CONDITIONS) - 1 - len(cancer))
    probs = {c: cancer.get(c, rest) for c in CONDITIONS}
    probs[label] = p
    return Verdict(decide(probs, THRESHOLDS), stable=True, frames_used=8)


@dataclass
class StaticPipeline:
    """A pipeline whose snapshot is whatever the test or renderer sets."""

    snap: Snapshot
    guide: GuideBox = field(default_factory=GuideBox)
    resets: int = 0

    def snapshot(self) -> Snapshot:
        return self.snap

    def reset(self) -> None:
        self.resets += 1
        self.snap = replace(self.snap, verdict=None)


def snapshot(
    verdict: Verdict | None,
    image: np.ndarray | None = None,
    source: SourceStatus = LIVE,
    hints: tuple[str, ...] = (),
    source_kind: str = "picamera2",
    evidence: bool = True,
    picture_kind: PictureKind | None = PictureKind.CLINICAL,
) -> Snapshot:
    """What the pipeline would hand out. `quality` codes on the verdict: the latest frame was
    rejected (Capture waits). `evidence`: a classified frame of this scene exists (its picture
    is what the pipeline's crop rule reads of `image`: the guide box of a clinical picture, the
    dermoscope's field otherwise); False: the scene has none yet (Capture says "hold still").
    `picture_kind` None: the lens mode "off" (replays, the demo clip)."""
    picture = skin_picture() if image is None else image
    frame = Frame(picture, timestamp=0.0, sequence=1) if source.state == "live" else None
    rejected = tuple(QualityIssue(c) for c in (verdict.quality if verdict else ()))
    quality = QualityReport(ok=not rejected, issues=rejected, measures={})
    kept: Evidence | None = None
    if evidence and frame is not None and verdict is not None and verdict.decision is not None:
        h, w = picture.shape[:2]
        if picture_kind == PictureKind.CLINICAL:
            box = GuideBox().rect(w, h)
        else:  # the field: inside the dermoscope's circle, or the centre square
            box = field_rect(dermoscope_field(picture), w, h)
        kept = Evidence(
            frame=frame,
            crop_box=box,
            model_input=to_model_input(crop_rect(picture, box)),
            quality=quality,
            verdict=verdict,
            provenance=Provenance(
                source=source_kind,
                lens="auto" if picture_kind is not None else "off",
                picture_kind=str(picture_kind) if picture_kind is not None else "",
                crop_box=box,
                frame_size=(w, h),
                frames_averaged=verdict.frames_used,
                model_version="",  # made up: the services' model version is said instead
            ),
        )
    return Snapshot(
        verdict,
        frame,
        source,
        frames_seen=40,
        frames_gated=32,
        picture_kind=picture_kind,
        hints=hints,
        evidence=kept,
        quality=quality if frame is not None else None,
        source_kind=source_kind,
    )


def fill_store(store: CaseStore, model_version: str = "demo-1") -> list[str]:
    """Three sample cases, one reviewed with a specialist's message and a reply. Returns the
    case ids, oldest first."""
    picture = skin_picture(320, 240, seed=1)
    ids = []
    for label, p, ref, site in (
        ("eczema", 0.81, "CL-0412", "arm"),
        ("melanoma", 0.64, "", "back"),
        ("acne", 0.42, "M-77", "face"),
    ):
        result = OnDeviceResult.from_decision(decision_for(label, p), model_version)
        ids.append(store.save_case(picture, result, ref, site).case_id)
    reviewed = ids[1]
    at = datetime.now(UTC) - timedelta(hours=3)
    store.apply_remote(
        reviewed,
        "reviewed",
        None,
        {
            "label": "melanoma",
            "recommendation": (
                "Likely melanoma. Refer to the district hospital's skin clinic this week "
                "for excision."
            ),
            "reviewer": "Dr. Haddad",
            "reviewed_at": at.isoformat(),
        },
    )
    store.add_remote_message(
        "msg-demo-1",
        reviewed,
        AUTHOR_DERMATOLOGIST,
        "Dr. Haddad",
        "Has the spot changed size in the last months?",
        at + timedelta(minutes=5),
    )
    store.add_message(reviewed, "Yes, it doubled since spring.")
    return ids
