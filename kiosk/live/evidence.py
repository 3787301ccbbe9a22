"""The evidence behind a live verdict: the frame it came from, what the model read, and how.

A verdict shown on the scan screen and the picture saved with a case must describe the same
spot (issue 13). So the pipeline hands out, with every verdict, the newest frame that went into
it, the crop box, the model input, the gate's report and a `Provenance`; the capture stores
exactly that, never "the newest frame" paired with an older verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.cases.provenance import Provenance
from kiosk.live.frames import Frame
from kiosk.live.triage import Verdict
from kiosk.live.vision import QualityReport, crop_rect

# The picture saved with a case is the crop at the camera's resolution, so the dermatologist
# gets the detail the camera had (the Pi camera's 1280×960 main stream: a guide box of 576 px,
# a dermoscope field of ~650 px). A larger camera is area-shrunk to this longer side: 1600 px
# is more than a dermatologist's screen shows of a 1–2 cm spot, and keeps a case's JPEG under
# ~1 MB for the upload over a slow link.
SAVED_MAX_SIDE = 1600


@dataclass(frozen=True)
class Evidence:
    """One classified frame and the verdict of the scene it belongs to.

    `verdict` averages only frames of the current scene (the pipeline restarts its window at a
    cut, a guide-box move or a lens change), and `frame` is the newest of them.
    """

    frame: Frame
    crop_box: tuple[int, int, int, int]  # x, y, width, height in frame.image
    model_input: np.ndarray  # the side×side RGB image the model read
    quality: QualityReport
    verdict: Verdict
    provenance: Provenance

    @property
    def crop(self) -> np.ndarray:
        """The crop at the camera's resolution (a view of frame.image)."""
        return crop_rect(self.frame.image, self.crop_box)

    def saved_image(self, max_side: int = SAVED_MAX_SIDE) -> np.ndarray:
        """The picture to store: the crop, area-shrunk to at most `max_side` (never enlarged)."""
        return capped(self.crop, max_side)


def capped(image: np.ndarray, max_side: int = SAVED_MAX_SIDE) -> np.ndarray:
    """`image` with its longer side at most `max_side` (INTER_AREA), contiguous."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
