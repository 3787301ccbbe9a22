"""The unit that flows from a camera to the model: one captured frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One capture. `image` feeds the model; `preview` (larger, when the camera has a second
    stream) feeds the screen. Both are RGB uint8 (H, W, 3)."""

    image: np.ndarray
    timestamp: float  # time.monotonic() at capture
    sequence: int  # counts up from 0 per source; a gap means frames were dropped
    preview: np.ndarray | None = None

    @property
    def display(self) -> np.ndarray:
        return self.image if self.preview is None else self.preview
