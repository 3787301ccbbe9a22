"""What the Capture button hands from the scan screen to the report and save screens.

A capture is taken from the pipeline's evidence (kiosk.live.evidence): the verdict and the
picture of the same scene, never the newest frame paired with an older verdict (issue 13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from kiosk.cases.provenance import Provenance
from kiosk.cases.store import new_case_id
from kiosk.live.triage import TriageConfig, Verdict
from kiosk.model.conditions import Urgency

if TYPE_CHECKING:
    from kiosk.live.pipeline import Snapshot


@dataclass(frozen=True)
class Capture:
    """What the Capture button froze: the verdict shown and the picture it was made from."""

    verdict: Verdict
    image: np.ndarray  # RGB uint8: the crop the model read, at camera resolution (capped)
    hints: tuple[str, ...] = ()
    provenance: Provenance | None = None
    # Made at capture, so the report and the save screen can show the case code before saving.
    case_id: str = field(default_factory=new_case_id)

    @property
    def demo(self) -> bool:
        return self.provenance is not None and self.provenance.demo


class Readiness(StrEnum):
    """Whether Capture may be pressed now, and if not, why (the scan screen says it)."""

    READY = "ready"
    NO_CAMERA = "no_camera"
    NO_RESULT = "no_result"  # nothing classified yet: the preview says to aim at the spot
    REJECTED = "rejected"  # the gate rejects the current frame: its reason is on screen
    HOLD_STILL = "hold_still"  # the current scene has no steady verdict yet: a moment more


# A verdict is ready to be captured once it is steady (settled), or urgent (an urgent referral
# never waits), or has averaged this many frames of its scene (a steady "not sure" is an answer
# too: it never settles, by design).
MIN_FRAMES = TriageConfig().stable_frames


def _ready(verdict: Verdict) -> bool:
    return verdict.stable or verdict.urgency is Urgency.URGENT or verdict.frames_used >= MIN_FRAMES


def readiness(snapshot: Snapshot | None) -> Readiness:
    if snapshot is None or snapshot.frame is None or snapshot.source.state != "live":
        return Readiness.NO_CAMERA
    if snapshot.quality is not None and not snapshot.quality.ok:
        return Readiness.REJECTED
    verdict = snapshot.verdict
    if verdict is not None and verdict.quality:
        return Readiness.REJECTED
    if verdict is None or verdict.decision is None:
        return Readiness.NO_RESULT
    evidence = snapshot.evidence
    if evidence is None or evidence.verdict.decision is None or not _ready(evidence.verdict):
        return Readiness.HOLD_STILL
    return Readiness.READY


def capture_from(snapshot: Snapshot | None) -> Capture | None:
    """The capture the snapshot's evidence makes, or None when Capture must wait (readiness
    says why). The picture is the evidence frame's crop and the verdict that frame's scene's."""
    if readiness(snapshot) is not Readiness.READY:
        return None
    assert snapshot is not None and snapshot.evidence is not None
    evidence = snapshot.evidence
    return Capture(
        verdict=evidence.verdict,
        image=evidence.saved_image(),
        hints=snapshot.hints,
        provenance=evidence.provenance,
    )
