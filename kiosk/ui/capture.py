"""What the Capture button hands from the scan screen to the report and save screens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiosk.live.triage import Verdict


@dataclass(frozen=True)
class Capture:
    """What the Capture button froze: the verdict shown and the picture it was made from."""

    verdict: Verdict
    image: np.ndarray  # RGB uint8, the frame the model saw (Frame.image)
    hints: tuple[str, ...] = ()
