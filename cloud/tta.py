"""The cloud's stronger reading of a case: the float model with test-time augmentation.

Skin pictures have no "up": a lesion rotated or mirrored is the same lesion, so the eight
rotations and mirrors of the square crop are eight honest views of it. Their calibrated
probabilities are averaged (not their logits: one over-confident view should not dominate) and
the kiosk's own decision rule (abstain, urgent-referral threshold) is applied to the average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiosk.live.imaging import square_resize
from kiosk.model.classifier import Classifier, softmax
from kiosk.model.decision import Decision, decide


@dataclass(frozen=True)
class CloudResult:
    decision: Decision
    model_version: str
    views: int


def dihedral_views(square: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations (0/90/180/270°) of the image and of its mirror."""
    views = []
    for image in (square, square[:, ::-1]):
        for k in range(4):
            views.append(np.ascontiguousarray(np.rot90(image, k)))
    return views


def classify_tta(classifier: Classifier, rgb: np.ndarray) -> CloudResult:
    square = square_resize(rgb, classifier.input_side)
    views = dihedral_views(square)
    probabilities = np.mean(
        [softmax(classifier.logits(v), classifier.temperature) for v in views], axis=0
    )
    probabilities = probabilities / probabilities.sum()  # exact 1 after float averaging
    return CloudResult(
        decision=decide(probabilities, classifier.thresholds),
        model_version=classifier.metadata.version,
        views=len(views),
    )
