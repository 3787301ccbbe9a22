"""Has the camera moved to another spot? A cheap test on the model input, frame to frame.

The live verdict averages several frames; averaging across a cut would pair the new spot's
picture with the old spot's result (issue 13: a basal cell carcinoma saved as "none found").
So the pipeline restarts its averaging window when this says the scene changed.

The signature is the model input area-shrunk to SIGNATURE_SIDE² RGB (0.02 ms); the distance is
the mean absolute difference of two signatures, in grey levels. Measured with
`scripts/measure_scene_change.py` (the demo clip and the six sample pictures):
    demo clip, consecutive sharp frames inside a segment (slow zoom + pan): max 4.2
    demo clip, the five cuts between samples:                    25.8, 26.0, 43.8, 44.8, 53.6
    a hand-held move between consecutive frames (≤ 1 % shift, ≤ 0.5°, ±2 % gain, noise): max 6.0
    a hand-held drift from the first frame (≤ 5 % shift, ≤ 4°, ±8 % gain): p95 16.0, max 29.0
    demo clip, from the first frame of its segment to any later one: max 13.8
A step above STEP_THRESHOLD (12: twice the largest hand-held step, under half the smallest cut)
or a drift above DRIFT_THRESHOLD from the window's first frame (30: above every hand-held drift
and in-segment zoom measured) is a new scene. A false alarm only costs settling time (3 frames);
a missed cut is what must not happen, so the step threshold sits well below every cut.
"""

from __future__ import annotations

import cv2
import numpy as np

SIGNATURE_SIDE = 16
STEP_THRESHOLD = 12.0
DRIFT_THRESHOLD = 30.0


def signature(model_input: np.ndarray) -> np.ndarray:
    """SIGNATURE_SIDE² RGB thumbnail (float32) of an RGB uint8 image."""
    small = cv2.resize(model_input, (SIGNATURE_SIDE, SIGNATURE_SIDE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


class SceneWatch:
    """Remembers the current scene's first and latest signatures; not thread-safe."""

    def __init__(
        self, step_threshold: float = STEP_THRESHOLD, drift_threshold: float = DRIFT_THRESHOLD
    ) -> None:
        self.step_threshold = step_threshold
        self.drift_threshold = drift_threshold
        self.restart()

    def restart(self) -> None:
        self._anchor: np.ndarray | None = None
        self._last: np.ndarray | None = None

    def changed(self, model_input: np.ndarray) -> bool:
        """Add a frame; True when it starts a new scene (it is then the new scene's first)."""
        sig = signature(model_input)
        new = self._last is not None and (
            distance(sig, self._last) > self.step_threshold
            or distance(sig, self._anchor) > self.drift_threshold
        )
        if new or self._anchor is None:
            self._anchor = sig
        self._last = sig
        return new
